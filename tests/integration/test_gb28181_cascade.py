"""GB/T 28181 cascade, driven by SIPp as the upper platform (Debian `sip-tester`).

Vigil registers to the SIPp upper platform through its digest challenge, answers its Catalog
query with only the cameras in scope, and answers its live INVITE with PS over RTP carrying
the offered SSRC, which ffprobe decodes; BYE ends it; the viewing is audited.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from controller.audit.log import search
from tests.integration.test_gb28181_support import (
    CAM1_CODE,
    OUT_OF_SCOPE,
    PASSWORD,
    GbWorld,
    RtpReceiver,
    ffprobe,
    gb_world,
    run_sipp,
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GbWorld]:
    with gb_world(tmp_path_factory.mktemp("gb")) as w:
        yield w


def catalog_bodies(messages: str) -> list[str]:
    return [
        part[part.index("<Response>") :].split("</Response>")[0]
        for part in messages.split("MESSAGE sip:")
        if "<CmdType>Catalog</CmdType>" in part and "<Response>" in part
    ]


def wait_for(predicate, timeout_s: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_register_challenge_catalog_in_scope_and_live_play_decodes(world: GbWorld) -> None:
    cam = world.codes["cam-1"]
    rx = RtpReceiver()
    try:
        run = run_sipp(
            world,
            "upper_register_play.xml",
            {"camera": cam, "rtp_port": str(rx.port), "play_ms": "4000", "password": PASSWORD},
        )
    finally:
        rx.close()
    assert run.returncode == 0, run.output
    assert world.gb.links[0].registrations >= 1 and world.link_state() == "registered"
    # the REGISTER answered the challenge (SIPp's verifyauth checked the digest)
    assert (
        "Authorization: Digest" in run.messages
        and 'username="62120000002000000001"' in run.messages
    )
    assert "<CmdType>Keepalive</CmdType>" in run.messages  # keepalive every second
    pages = catalog_bodies(run.messages)
    text = "".join(pages)
    assert len(pages) >= 2 and all("<SumNum>" in p for p in pages)  # paged, 2 items each
    assert world.codes["cam-1"] in text and world.codes["cam-2"] in text
    assert world.codes[OUT_OF_SCOPE] not in text and "成县" not in text
    assert "东关村" in text and "武都区" in text and "<Name>东关村路口1号</Name>" in text
    assert world.codes["cam-1"] == CAM1_CODE  # the resource directory's code, not a derived one
    # media: PS over RTP with the offered SSRC, decodable, about as long as the play time
    assert rx.ssrcs() == {100000001}
    ps = world.tmp / "live.ps"
    ps.write_bytes(rx.ps())
    assert ps.read_bytes().startswith(b"\x00\x00\x01\xba")
    probe = ffprobe(ps)
    assert probe["codec_name"] == "h264" and probe["format_name"] == "mpeg"
    assert 60 <= int(probe["nb_read_frames"]) <= 4.6 * 25, probe  # 4 s of 25 fps, start delay
    entries = search(world.controller.engine, camera="cam-1")
    actions = [e.action for e in entries if e.actor_org == "gongan"]
    assert "gb_cascade_view" in actions
    assert wait_for(lambda: "gb_cascade_view_end" in [
        e.action for e in search(world.controller.engine, camera="cam-1")
    ])  # fmt: skip
    assert wait_for(lambda: not world.gb.service or not world.gb.service.sessions)
