"""GB/T 28181 cascade, driven by SIPp as the upper platform (Debian `sip-tester`).

Vigil registers to the SIPp upper platform through its digest challenge, answers its Catalog
query with only the cameras in scope, and answers its live INVITE with PS over RTP carrying
the offered SSRC, which ffprobe decodes; BYE ends it; the viewing is audited.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from controller.audit.log import search
from controller.clock import SystemClock
from controller.gb28181 import manscdp, sdp
from controller.gb28181.cascade import gb_time
from controller.gb28181.livewatch import LIVE_GONE_S
from controller.gb28181.rtp import parse_rtp
from controller.jobs import JobService
from controller.scheduler.options import SchedulerOptions
from controller.scheduler.service import SchedulerService
from controller.traffic import TrafficClass
from protos.vigil.v1 import agent_control_pb2
from tests.integration.test_gb28181_support import (
    CAM1_CODE,
    NO_AGENT,
    OUT_OF_SCOPE,
    PASSWORD,
    GbWorld,
    RtpReceiver,
    SipClient,
    ffprobe,
    gb_world,
    read_rfc4571,
    run_sipp,
    tcp_offer,
)

US = 1_000_000


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


def test_bad_input_gets_clear_sip_errors_and_changes_nothing(world: GbWorld) -> None:
    rx = RtpReceiver()
    try:
        run = run_sipp(
            world,
            "upper_bad_input.xml",
            {
                "camera": world.codes["cam-1"],
                "other": world.codes[OUT_OF_SCOPE],
                "rtp_port": str(rx.port),
                "big": "A" * (manscdp.MAX_XML_BYTES + 100),
                "password": PASSWORD,
            },
        )
    finally:
        rx.close()
    assert run.returncode == 0, run.output + run.messages[-3000:]
    for reason in (
        "SIP/2.0 400 malformed header line",
        "SIP/2.0 505 version",
        "SIP/2.0 415 MESSAGE body is not Application/MANSCDP+xml",
        "SIP/2.0 400 DOCTYPE and ENTITY declarations are not accepted",
        "SIP/2.0 413 XML body of",
        "SIP/2.0 404 no camera",
        "SIP/2.0 403 camera not in this platform's scope",
        "SIP/2.0 404 no footage in the time range",
    ):
        assert reason in run.messages, reason
    assert rx.packets == [] and world.gb.service is not None and not world.gb.service.sessions
    refused = [
        e for e in search(world.controller.engine, camera=OUT_OF_SCOPE) if e.outcome == "refused"
    ]
    assert refused and refused[0].actor_org == "gongan"
    assert world.gb.transport_bad_messages() >= 2  # the bad header line and the SIP/3.0


def test_download_sends_the_recorded_range_then_bye(world: GbWorld) -> None:
    segs = world.segments
    start_s = segs[0].start_us // 1_000_000
    end_s = (segs[-1].start_us + segs[-1].duration_us) // 1_000_000 + 1
    rx = RtpReceiver()
    began = time.monotonic()
    try:
        run = run_sipp(
            world,
            "upper_download.xml",
            {
                "camera": world.codes["cam-1"],
                "rtp_port": str(rx.port),
                "start": str(start_s),
                "end": str(end_s),
                "password": PASSWORD,
            },
        )
    finally:
        rx.close()
    took = time.monotonic() - began
    assert run.returncode == 0, run.output + run.messages[-3000:]
    assert "<NotifyType>121</NotifyType>" in run.messages  # MediaStatus: the end of the file
    ps = world.tmp / "download.ps"
    ps.write_bytes(rx.ps())
    probe = ffprobe(ps)
    recorded_s = sum(s.duration_us for s in segs) / 1e6
    assert probe["codec_name"] == "h264"
    assert abs(int(probe["nb_read_frames"]) - recorded_s * 25) <= 25, probe  # all of it
    assert abs(float(probe["duration"]) - recorded_s) <= 1.0, probe
    assert took < recorded_s  # downloadspeed 4: faster than real time
    assert rx.ssrcs() == {1100000002}


@pytest.mark.parametrize("setup", ["passive", "active"])
def test_live_over_tcp_both_ways_with_rfc4571_framing(world: GbWorld, setup: str) -> None:
    """setup:passive in the offer: Vigil connects to the platform; setup:active: the platform
    connects to the port in Vigil's answer. Either way RTP framed by RFC 4571 decodes."""
    code, client = world.codes["cam-2"], SipClient(world)
    listener = socket.create_server(("127.0.0.1", 0))
    call_id = f"tcp-{setup}-{time.monotonic_ns()}"
    try:
        offer = tcp_offer(listener.getsockname()[1], setup, "0200000003")
        ok = client.request("INVITE", code, call_id, 1, body=offer)
        assert ok.status == 200, ok.reason
        answer = sdp.parse_offer(ok.body)  # the answer reads like an offer
        assert answer.transport.startswith("tcp") and answer.ssrc == "0200000003"
        client.request("ACK", code, call_id, 1, to=ok.get("To"))
        if setup == "passive":
            listener.settimeout(10)
            conn, _ = listener.accept()
        else:
            conn = socket.create_connection(("127.0.0.1", answer.port), timeout=10)
        with conn:
            packets = read_rfc4571(conn, 3.5)
        bye = client.request("BYE", code, call_id, 2, to=ok.get("To"))
        assert bye.status == 200
    finally:
        listener.close()
        client.close()
    assert packets and {parse_rtp(p)[3] for p in packets} == {200000003}
    ps = world.tmp / f"tcp-{setup}.ps"
    ps.write_bytes(b"".join(parse_rtp(p)[4] for p in packets))
    probe = ffprobe(ps)
    assert probe["codec_name"] == "h264" and int(probe["nb_read_frames"]) >= 40, probe


def test_live_invite_for_a_camera_whose_agent_is_away_is_refused_480(world: GbWorld) -> None:
    client = SipClient(world)
    try:
        offer = tcp_offer(9, "active", "0300000004")
        reply = client.request("INVITE", world.codes[NO_AGENT], "away-1", 1, body=offer)
    finally:
        client.close()
    assert reply.status == 480 and "agent is not connected" in reply.reason
    assert world.controller.live is not None and NO_AGENT not in world.controller.live.feeds()


def test_a_live_stream_whose_feed_stops_is_ended_with_the_reason(world: GbWorld) -> None:
    """The camera's feed stops (its agent sends nothing more): the hub reads it unreachable
    after `silent_s`, and once the watch's grace is over Vigil ends the cascade stream (BYE)
    and audits why, instead of leaving the platform a frozen picture."""
    assert world.gb.service is not None
    world.gb.service.watch.grace_s = 1.0
    code, client, rx = world.codes["cam-2"], SipClient(world), RtpReceiver()
    call_id = f"gone-{time.monotonic_ns()}"
    offer = (
        "v=0\r\no=34020000002000000001 0 0 IN IP4 127.0.0.1\r\ns=Play\r\n"
        f"c=IN IP4 127.0.0.1\r\nt=0 0\r\nm=video {rx.port} RTP/AVP 96\r\na=recvonly\r\n"
        "a=rtpmap:96 PS/90000\r\ny=0200000021\r\n"
    )
    try:
        ok = client.request("INVITE", code, call_id, 1, body=offer)
        assert ok.status == 200, ok.reason
        client.request("ACK", code, call_id, 1, to=ok.get("To"))
        assert wait_for(lambda: len(rx.packets) > 20, 10.0), "no RTP before the feed stopped"
        world.feeder.command("cam-2", False)  # the agent's feed goes silent
        stopped = time.monotonic()
        assert wait_for(lambda: call_id not in world.gb.service.sessions, 15.0)  # type: ignore[union-attr]
        took = time.monotonic() - stopped
    finally:
        world.gb.service.watch.grace_s = LIVE_GONE_S
        rx.close()
        client.close()
    assert 5.0 <= took <= 9.0, took  # silent_s (5 s), the grace (1 s), one look a second

    def ends() -> list[str]:
        return [
            e.detail for e in search(world.controller.engine, camera="cam-2")
            if e.action == "gb_cascade_view_end"
        ]  # fmt: skip

    assert wait_for(lambda: any("feed agent_unreachable" in d for d in ends()), 5.0), ends()


def test_playback_speeds_up_on_info_scale_and_sends_every_frame(world: GbWorld) -> None:
    segs = world.segments
    recorded_s = sum(s.duration_us for s in segs) / 1e6
    rx = RtpReceiver()
    began = time.monotonic()
    try:
        run = run_sipp(
            world,
            "upper_playback_info.xml",
            {
                "camera": world.codes["cam-1"],
                "rtp_port": str(rx.port),
                "start": str(segs[0].start_us // 1_000_000),
                "end": str((segs[-1].start_us + segs[-1].duration_us) // 1_000_000 + 1),
                "password": PASSWORD,
            },
        )
    finally:
        rx.close()
    took = time.monotonic() - began
    assert run.returncode == 0, run.output + run.messages[-3000:]
    ps = world.tmp / "playback.ps"
    ps.write_bytes(rx.ps())
    probe = ffprobe(ps)
    assert abs(int(probe["nb_read_frames"]) - recorded_s * 25) <= 25, probe
    # 1 s at 1x, the rest at 4x: well under the recording's length, yet not a download burst
    assert 1.0 < took < recorded_s - 1.5, (took, recorded_s)


@contextmanager
def footage_window(world: GbWorld, days: int, boundary_us: int) -> Iterator[None]:
    """The platform limited to `days`, with the cascade's clock set so that the window starts
    at `boundary_us` (the footage is minutes old; the window is whole days)."""
    link, service = world.gb.links[0], world.gb.service
    assert service is not None
    old_cfg, old_now = link.cfg, service.now_us
    link.cfg = link.cfg.model_copy(update={"footage_days": days})
    service.now_us = lambda: boundary_us + days * 86_400 * US
    try:
        yield
    finally:
        link.cfg, service.now_us = old_cfg, old_now


def test_footage_window_clips_record_info_refuses_older_and_plays_the_rest(
    world: GbWorld,
) -> None:
    """footage_days = 1 with the window starting mid-recording: RecordInfo lists the range
    from the window's start; a Playback wholly before it is 403 with a Warning naming the
    window; oversize and reversed ranges are 400; a Download over the whole recording sends
    only the part inside the window, which ffprobe decodes."""
    segs = world.segments
    cut = segs[len(segs) // 2]
    boundary = cut.start_us
    first, end_us = segs[0].start_us, segs[-1].start_us + segs[-1].duration_us
    rx = RtpReceiver()
    try:
        with footage_window(world, 1, boundary):
            run = run_sipp(
                world,
                "upper_footage_window.xml",
                {
                    "camera": world.codes["cam-1"],
                    "rtp_port": str(rx.port),
                    "rec_start": gb_time(first - 60 * US),
                    "rec_end": gb_time(end_us + 60 * US),
                    "old_start": str(first // US - 60),
                    "old_end": str(boundary // US),
                    "far_end": str(first // US + 40 * 86_400),
                    "password": PASSWORD,
                },
            )
            assert run.returncode == 0, run.output + run.messages[-3000:]
            assert rx.packets == []
            download = run_sipp(
                world,
                "upper_download.xml",
                {
                    "camera": world.codes["cam-1"],
                    "rtp_port": str(rx.port),
                    "start": str(first // US),
                    "end": str(end_us // US + 1),
                    "password": PASSWORD,
                },
            )
    finally:
        rx.close()
    # RecordInfo: one range, starting where the window starts (not at the first segment)
    answer = run.messages[run.messages.index("<Response>") :]
    assert "<SumNum>1</SumNum>" in answer, answer[:1500]
    assert f"<StartTime>{gb_time(boundary)}</StartTime>" in answer
    assert f"<StartTime>{gb_time(first)}</StartTime>" not in answer
    assert "SIP/2.0 403 time range is outside this platform's footage window (the last 1 days)" in (
        run.messages
    )
    sent = run.raw.decode("utf-8", errors="replace")  # SIP headers are UTF-8
    assert 'Warning: 399 127.0.0.1 "超出本平台可调阅的录像时限（最近 1 天）"' in sent
    assert "SIP/2.0 400 time range of 40.0 days is longer than 31 days" in run.messages
    reversed_range = f"{boundary // US}..{first // US - 60} is empty or reversed"
    assert f"SIP/2.0 400 time range {reversed_range}" in run.messages
    refused = [
        e for e in search(world.controller.engine, camera="cam-1")
        if e.action == "gb_cascade_view" and e.outcome == "refused" and "footage window" in e.reason
    ]  # fmt: skip
    assert refused and refused[0].actor_user == "gb28181:34020000002000000001"
    # the Download over the whole recording: only the part inside the window is sent
    assert download.returncode == 0, download.output + download.messages[-3000:]
    ps = world.tmp / "window.ps"
    ps.write_bytes(rx.ps())
    probe = ffprobe(ps)
    inside_s = (end_us - boundary) / 1e6
    assert probe["codec_name"] == "h264"
    assert abs(int(probe["nb_read_frames"]) - inside_s * 25) <= 25, (probe, inside_s)
    assert int(probe["nb_read_frames"]) < (end_us - first) / 1e6 * 25 - 25  # not all of it


def test_an_upper_platform_that_restarted_is_registered_to_again(world: GbWorld) -> None:
    """Keepalives refused (the restarted platform forgot Vigil): Vigil registers again at once,
    through the challenge; when the platform then refuses the password, Vigil says so and backs
    off instead of flooding it. (Last in this module: it leaves the link backing off.)"""
    link = world.gb.links[0]
    before = link.registrations
    keys = {"password": PASSWORD, "play_ms": "3500"}
    run = run_sipp(world, "upper_idle.xml", keys, ooc="upper_forgot_ooc.xml")
    assert run.returncode == 0, run.output
    assert "SIP/2.0 403 Not registered" in run.messages
    assert link.registrations >= before + 2, (before, link.registrations, link.state)
    keys["password"] = "a-password-vigil-does-not-have"
    run = run_sipp(world, "upper_idle.xml", keys, ooc="upper_forgot_ooc.xml")
    assert run.returncode == 0, run.output
    assert wait_for(lambda: link.state == "wrong password", 5.0), link.state
    registers = run.messages.count("REGISTER sip:")
    assert registers <= 4, registers  # one challenged pair, then the 60 s backoff


def test_footage_still_on_the_agent_is_listed_and_its_playback_files_one_fetch(
    world: GbWorld,
) -> None:
    """RecordInfo counts the unsent segments the agent's inventory listed; a Playback of a
    range that is only there files the console's footage request (once, however often it is
    asked) and is answered 480 with Retry-After and a Warning; 404 when there is nothing."""
    # The scheduler the controller runs when [scheduler] is on (this world runs none: its
    # live feeds are not link-planned), as the one answering for agents' backlogs.
    sched = SchedulerService(world.controller.core.catalog, SystemClock(), SchedulerOptions())
    world.gb.backend._unsent = sched.unsent
    try:
        _footage_on_the_agent(world, sched)
    finally:
        world.gb.backend._unsent = None


def _footage_on_the_agent(world: GbWorld, sched: SchedulerService) -> None:
    # Recorded two hours before the stored ones and not uploaded yet.
    start = world.segments[0].start_us - 7_200_000_000
    inv = agent_control_pb2.Inventory(device_id="dev1", reported_unix_us=time.time_ns() // 1000)
    inv.backlog.add(
        camera_id="cam-1", traffic_class=TrafficClass.BACKFILL, bytes=2000, segments=2,
        oldest_start_unix_us=start,
    )  # fmt: skip
    for n in range(2):
        inv.unsent.add(
            segment_id=f"unsent-{n}", camera_id="cam-1", start_unix_us=start + n * 10_000_000,
            size_bytes=1000, traffic_class=TrafficClass.BACKFILL, duration_us=10_000_000,
        )  # fmt: skip
    sched.report_inventory("dev1", inv)
    stored_to = world.segments[-1].start_us + world.segments[-1].duration_us
    spans = world.gb.backend.on_device("cam-1", start - 3_600_000_000, stored_to)
    assert spans == [(start, start + 20_000_000)]
    assert world.gb.backend.on_device("cam-2", start - 3_600_000_000, stored_to) == []
    query = manscdp.parse(
        f"<Query><CmdType>RecordInfo</CmdType><SN>5</SN><DeviceID>{world.codes['cam-1']}"
        f"</DeviceID><StartTime>{gb_time(start - 60_000_000)}</StartTime><EndTime>"
        f"{gb_time(stored_to + 60_000_000)}</EndTime></Query>".encode()
    )
    assert world.gb.service is not None
    text = manscdp.decode(world.gb.service._answer(world.gb.links[0], query)[0])
    assert "<SumNum>2</SumNum>" in text  # the one still on the agent and the stored range
    assert f"<StartTime>{gb_time(start)}</StartTime>" in text
    assert f"<EndTime>{gb_time(start + 20_000_000)}</EndTime>" in text
    jobs = JobService(world.controller.core.catalog, SystemClock())
    before = {j.job_id for j in jobs.jobs()}
    t0 = (start + 5_000_000) // US
    keys = {
        "camera": world.codes["cam-1"], "rtp_port": "9", "start": str(t0),
        "end": str(t0 + 10), "password": PASSWORD,
    }  # fmt: skip
    runs = [run_sipp(world, "upper_playback_fetch.xml", keys) for _ in range(3)]
    for run in runs:
        assert run.returncode == 0, run.output + run.messages[-3000:]
        assert "SIP/2.0 480 footage still on the camera's agent: fetch" in run.messages
        assert "Retry-After: 60" in run.messages  # no ETA planned yet: the default
        assert "录像仍在设备上，已向设备调取" in run.raw.decode("utf-8", errors="replace")
    assert "fetch requested (job" in runs[0].messages
    assert all("fetch already requested" in r.messages for r in runs[1:])
    filed = [j for j in jobs.jobs() if j.job_id not in before]
    assert len(filed) == 1, filed  # three INVITEs, one footage request
    job = filed[0]
    assert job.cameras == ("cam-1",) and job.state == "open"
    assert (job.start_us, job.end_us) == (t0 * US, (t0 + 10) * US)
    assert job.requested_by == "gb28181:34020000002000000001"
    assert job.case_id == "gb28181-34020000002000000001"
    assert job.traffic_class is TrafficClass.EVIDENCE  # the console's "fetch from device"
    assert job.job_id[:8] in runs[0].messages
    audited = [
        e for e in search(world.controller.engine, camera="cam-1") if e.action == "footage_request"
    ]
    assert len(audited) == 1 and audited[0].actor_org == "gongan"
    assert audited[0].case_id == job.case_id and f'"job_id":"{job.job_id}"' in audited[0].detail
    client = SipClient(world)  # nothing anywhere in the range: 404, no request filed
    try:
        t1 = (start - 3_600_000_000) // US
        offer = (
            "v=0\r\no=34020000002000000001 0 0 IN IP4 127.0.0.1\r\ns=Playback\r\n"
            f"c=IN IP4 127.0.0.1\r\nt={t1} {t1 + 10}\r\n"
            "m=video 9 RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\ny=1100000009\r\n"
        )
        reply = client.request("INVITE", world.codes["cam-1"], "pb-404", 1, body=offer)
        assert reply.status == 404, (reply.status, reply.reason)
    finally:
        client.close()
    assert len([j for j in jobs.jobs() if j.job_id not in before]) == 1
    jobs.cancel(job.job_id)  # releases its catalog hold
    _partly_stored(world, sched, jobs)


def _partly_stored(world: GbWorld, sched: SchedulerService, jobs: JobService) -> None:
    """A range stored up to a point and on the agent after it: the stored part plays (200),
    and the request for the rest is filed once for the platform's next try."""
    stored_from = world.segments[0].start_us
    stored_to = world.segments[-1].start_us + world.segments[-1].duration_us
    inv = agent_control_pb2.Inventory(device_id="dev1", reported_unix_us=time.time_ns() // 1000)
    inv.backlog.add(
        camera_id="cam-1", traffic_class=TrafficClass.BACKFILL, bytes=1000, segments=1,
        oldest_start_unix_us=stored_to,
    )  # fmt: skip
    inv.unsent.add(
        segment_id="unsent-after", camera_id="cam-1", start_unix_us=stored_to,
        size_bytes=1000, traffic_class=TrafficClass.BACKFILL, duration_us=20_000_000,
    )  # fmt: skip
    sched.report_inventory("dev1", inv)
    before = {j.job_id for j in jobs.jobs()}
    t0, t1 = stored_from // US, (stored_to + 10_000_000) // US
    offer = (
        "v=0\r\no=34020000002000000001 0 0 IN IP4 127.0.0.1\r\ns=Playback\r\n"
        f"c=IN IP4 127.0.0.1\r\nt={t0} {t1}\r\n"
        "m=video 9 RTP/AVP 96\r\na=recvonly\r\na=rtpmap:96 PS/90000\r\ny=1100000019\r\n"
    )
    code = world.codes["cam-1"]
    client = SipClient(world)
    try:
        for n in range(2):  # asked twice: one request
            ok = client.request("INVITE", code, f"pb-part-{n}", 1, body=offer)
            assert ok.status == 200, (ok.status, ok.reason)  # the stored part plays
            client.request("ACK", code, f"pb-part-{n}", 1, to=ok.get("To"))
            bye = client.request("BYE", code, f"pb-part-{n}", 2, to=ok.get("To"))
            assert bye.status == 200
    finally:
        client.close()
    filed = [j for j in jobs.jobs() if j.job_id not in before]
    assert len(filed) == 1, filed
    assert (filed[0].start_us, filed[0].end_us) == (stored_to, t1 * US)
    assert filed[0].cameras == ("cam-1",) and filed[0].requested_by.startswith("gb28181:")
    jobs.cancel(filed[0].job_id)
