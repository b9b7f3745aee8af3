"""GB/T 28181 devices registering to Vigil, played by SIPp (Debian `sip-tester`).

An NVR (SIPp, tests/integration/sipp/device_*.xml) REGISTERs through Vigil's digest
challenge with the password `vigil-controller gb28181 issue` gave it, sends keepalives, and
answers Vigil's Catalog query in two pages; its two camera channels then are catalog cameras
of that device, named and coded (their 20-digit codes) in the resource directory. Unknown
codes, forged digests, malformed SIP and XML, oversize bodies: each a SIP error, and the
endpoint goes on serving.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.api.gb_devices import GbFleet
from controller.assembly import Controller
from controller.catalog.db import make_engine
from controller.clock import SystemClock
from controller.config import UpperPlatformConfig
from controller.directory.scope import Term
from controller.directory.store import DirectoryStore, Filters
from controller.gb28181 import devplay, manscdp
from controller.gb28181.cascade import RegisterPlan
from controller.gb28181.devices import DeviceAccess
from controller.gb28181.devstore import GbDeviceStore
from controller.gb28181.manscdp import Channel
from controller.gb28181.ps import AccessUnit
from controller.gb28181.recorder import Recorder
from controller.gb28181.upper import UpperLink
from controller.ingest.commit import Committer
from controller.ingest.staging import Staging
from tests.integration.controller_proc import database_url
from tests.integration.gb_device_support import (
    device_controller,
    ffprobe_frames,
    make_ps,
    send_ps,
)
from tests.integration.test_gb28181_support import SIPP_DIR, free_udp_port, sipp_binary

SERVER_ID = "62120000002000000002"
REALM = "6212000000"
NVR = "62120200001110000001"
CH1, CH2 = "62120200001310000001", "62120200001310000002"
UNKNOWN = "62120200001110000099"
FOREIGN = "62120200001310000077"  # an agent's camera that happens to have a GB-looking id


@dataclass
class DeviceWorld:
    controller: Controller
    devices: DeviceAccess
    sip_port: int
    password: str
    tmp: Path
    data: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DeviceWorld]:
    tmp = tmp_path_factory.mktemp("gbdev")
    data = tmp / "ctl"
    controller, password, sip_port = device_controller(data, SERVER_ID, NVR)
    assert controller.gb28181 is not None
    try:
        devices = controller.gb28181.devices
        assert devices is not None
        yield DeviceWorld(controller, devices, sip_port, password, tmp, data)
    finally:
        controller.stop(grace_s=1.0)


def sipp(
    world: DeviceWorld,
    scenario: Path,
    device: str,
    password: str,
    *,
    ooc: bool = False,
    keep_ms: int = 1000,
    ooc_file: Path | None = None,
    keys: dict[str, str] | None = None,
) -> tuple[int, str]:
    log = world.tmp / f"{scenario.stem}.{time.monotonic_ns()}.log"
    cmd = [
        sipp_binary(), f"127.0.0.1:{world.sip_port}", "-sf", str(scenario),
        "-i", "127.0.0.1", "-p", str(free_udp_port()), "-m", "1", "-nostdin",
        "-au", device, "-ap", password,
        "-key", "device", device, "-key", "server_id", SERVER_ID, "-key", "realm", REALM,
        "-d", str(keep_ms),
        "-timeout", "30s", "-timeout_error", "-trace_msg", "-message_file", str(log),
    ]  # fmt: skip
    if ooc or ooc_file:
        cmd += ["-oocsf", str(ooc_file or SIPP_DIR / "device_ooc.xml")]
    # SIPp keeps the first -key of a name (a later one is ignored): the defaults merged first
    for key, value in ({"ch1": CH1, "ch2": CH2} | (keys or {})).items():
        cmd += ["-key", key, value]
    proc = subprocess.run(cmd, capture_output=True, timeout=60, check=False, cwd=world.tmp)
    messages = log.read_text(errors="replace") if log.exists() else ""
    return proc.returncode, (proc.stdout + proc.stderr).decode(errors="replace")[-3000:] + messages


def test_a_device_registers_keeps_alive_and_its_channels_become_cameras(
    world: DeviceWorld,
) -> None:
    rc, out = sipp(world, SIPP_DIR / "device_register.xml", NVR, world.password, ooc=True,
                   keep_ms=2500)  # fmt: skip
    assert rc == 0, out
    assert "WWW-Authenticate: Digest" in out and "Authorization: Digest" in out
    assert "<CmdType>Catalog</CmdType>" in out  # Vigil asked for its catalog
    dev = world.devices.devices[NVR]
    assert dev.keepalives == 2 and dev.channels == 2
    engine = make_engine(database_url(world.data))
    try:
        catalog = world.controller.core.catalog
        assert {c.camera_id for c in catalog.cameras() if c.device_id == NVR} == {CH1, CH2}
        row = GbDeviceStore(engine, SystemClock()).row(NVR)
        assert row is not None and row.channels == 2 and row.registered_us > 0
        assert row.contact.startswith("127.0.0.1:")
        listed, total = DirectoryStore(engine, SystemClock()).page([Term()], Filters(), 0, 50)
        named = {r.camera_id: (r.name, r.gb_code, r.county) for r in listed}
        assert named[CH1] == ("Gate camera 1", CH1, "wudu")
        assert named[CH2] == ("Yard camera 2", CH2, "wudu")
    finally:
        engine.dispose()


def test_a_device_that_registers_afresh_is_asked_for_its_catalog_and_a_refresh_is_not(
    world: DeviceWorld,
) -> None:
    """The NVR, registered here already (the test before), restarts: another SIPp, another
    Call-ID. Vigil asks for its catalog at once (channels it gained or lost while down are
    seen now, not at the next `catalog_refresh_s`); the refresh of that registration a
    second later (same Call-ID) is not asked again: one query in all."""
    assert NVR in world.devices.devices  # not a first registration
    before = world.devices.devices[NVR].catalog_asked
    rc, out = sipp(world, SIPP_DIR / "device_register_refresh.xml", NVR, world.password,
                   ooc=True, keep_ms=1500)  # fmt: skip
    assert rc == 0, out
    assert out.count("CSeq: 3 REGISTER") >= 2  # the refresh was sent and answered
    asked = out.count(f"MESSAGE sip:{NVR}@")  # Vigil's Catalog queries (not its SUBSCRIBE)
    assert asked == 1, out  # asked once: for the restart, not for the refresh
    dev = world.devices.devices[NVR]
    assert dev.catalog_asked != before and dev.channels == 2 and dev.catalog_wait is None
    assert dev.channel_status == {CH1: "on", CH2: "off"}  # device_ooc.xml's statuses


def test_unknown_codes_and_forged_digests_are_refused(world: DeviceWorld) -> None:
    refused = SIPP_DIR / "device_refused.xml"
    rc, out = sipp(world, refused, UNKNOWN, "whatever")
    assert rc == 0, out
    assert "403 device 62120200001110000099 is not known" in out
    assert "401 Unauthorized" not in out  # no challenge handed to an unknown code
    rc, out = sipp(world, refused, NVR, world.password + "x")
    assert rc == 0, out
    assert "401 Unauthorized" in out and "403 digest response does not verify" in out


def test_bad_input_from_a_registered_device_gets_errors_and_the_server_goes_on(
    world: DeviceWorld,
) -> None:
    text = (SIPP_DIR / "device_bad_input.xml").read_text()
    scenario = world.tmp / "device_bad_input.xml"
    scenario.write_text(text.replace("<!--PADDING-->", "<Pad>" + "x" * 40_000 + "</Pad>"))
    rc, out = sipp(world, scenario, NVR, world.password)
    assert rc == 0, out
    for said in ("400 malformed XML", "413 XML body of", "403 keepalive for", "400 malformed "
                 "header line", "415 MESSAGE body is not"):  # fmt: skip
        assert said in out, said
    assert world.controller.gb28181 is not None
    assert world.controller.gb28181.transport_bad_messages() >= 1


def test_a_channel_is_invited_and_its_ps_over_rtp_from_gstreamer_is_recorded(
    world: DeviceWorld,
) -> None:
    """Vigil INVITEs a channel of the registered SIPp device; GStreamer (mpegpsmux, then
    rtpmp2tpay: PS bytes cut into RTP as GB devices send them) sends 50 H.264 frames to the
    port and SSRC Vigil offered; every frame arrives whole (the last on BYE), keyframes
    marked, and the joined elementary stream decodes in ffprobe. BYE ends it. Recorded
    meanwhile: two keyframe-aligned 1 s MPEG-TS segments, committed through ingest's
    Committer into the store and catalog, chained, each decoding 25 frames."""
    source = make_ps(world.tmp / "channel.ps")
    port = free_udp_port()
    proc = subprocess.Popen(
        [sipp_binary(), f"127.0.0.1:{world.sip_port}", "-sf",
         str(SIPP_DIR / "device_register.xml"), "-oocsf", str(SIPP_DIR / "device_ooc_media.xml"),
         "-i", "127.0.0.1", "-p", str(port), "-m", "1", "-nostdin",
         "-au", NVR, "-ap", world.password, "-key", "device", NVR, "-key", "server_id",
         SERVER_ID, "-key", "realm", REALM, "-d", "5000", "-timeout", "40s"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    gb = world.controller.gb28181
    assert gb is not None and gb._loop is not None
    core = world.controller.core
    GbDeviceStore(core.engine, SystemClock()).set_channels(NVR, [Channel(CH1, "Gate camera 1")])
    camera = core.catalog.camera(CH1)
    assert camera is not None
    committer = Committer(
        core.catalog, core.store, Staging(world.tmp / "staging"), SystemClock(), False
    )
    recorder = Recorder(committer, core.store, camera, core.clock.now_us, segment_s=1.0)
    units: list[AccessUnit] = []

    def on_unit(au: AccessUnit) -> None:
        units.append(au)
        recorder.on_unit(au)

    try:
        end = time.monotonic() + 10
        while time.monotonic() < end and not (  # registered from this SIPp's port
            world.devices.online(NVR) and world.devices.devices[NVR].addr[1] == port
        ):
            time.sleep(0.1)
        future = asyncio.run_coroutine_threadsafe(
            devplay.play(world.devices, NVR, CH1, on_unit), gb._loop
        )
        stream = future.result(10)
        send_ps(source, stream.port, stream.ssrc)
        end = time.monotonic() + 5
        while len(units) < 49 and time.monotonic() < end:  # the 50th: on BYE
            time.sleep(0.1)
        bye = asyncio.run_coroutine_threadsafe(stream.stop(), gb._loop).result(10)
        asyncio.run_coroutine_threadsafe(recorder.close(), gb._loop).result(30)
    finally:
        proc.wait(30)
    assert bye == 200 and proc.returncode == 0
    assert len(units) == 50 and [n for n, u in enumerate(units) if u.key] == [0, 25]
    assert stream.rtp_in.rtp.lost == 0 and stream.rtp_in.rtp.foreign == 0
    es = world.tmp / "channel.h264"
    es.write_bytes(b"".join(u.data for u in units))
    probe = ffprobe_frames(es)
    assert "codec_name=h264" in probe and "nb_read_frames=50" in probe
    # recorded: two keyframe-aligned 1 s segments, chained, in the catalog and the store
    assert len(recorder.committed) == 2
    rows = core.catalog.segments_in_range(CH1, 0, 2**62, 100)
    assert len(rows) == 2 and [r.flag for r in rows] == ["", ""]  # the chain holds
    assert [r.duration_us for r in rows] == [1_000_000, 1_000_000]
    assert rows[1].start_us == rows[0].start_us + 1_000_000
    assert rows[1].prev_sha256 == rows[0].sha256
    for n, row in enumerate(rows):
        seg = world.tmp / f"recorded{n}.ts"
        seg.write_bytes(core.store.read_bytes(row.object_key))
        probe = ffprobe_frames(seg)
        assert "codec_name=h264" in probe and "nb_read_frames=25" in probe


def test_a_device_that_registers_over_tcp_is_queried_and_invited_over_its_connection(
    world: DeviceWorld,
) -> None:
    """SIPp over TCP (`-t t1`: one connection it opens): REGISTER and keepalives come over it,
    and Vigil's Catalog query, INVITE, ACK and BYE go back over the same connection; the
    media is UDP as usual (GStreamer)."""
    source = make_ps(world.tmp / "tcp-signalling.ps")
    log = world.tmp / "sip-tcp.log"
    port = free_udp_port()
    proc = subprocess.Popen(
        [sipp_binary(), f"127.0.0.1:{world.sip_port}", "-t", "t1", "-sf",
         str(SIPP_DIR / "device_register.xml"), "-oocsf", str(SIPP_DIR / "device_ooc_media.xml"),
         "-i", "127.0.0.1", "-p", str(port), "-m", "1", "-nostdin",
         "-au", NVR, "-ap", world.password, "-key", "device", NVR, "-key", "server_id",
         SERVER_ID, "-key", "realm", REALM, "-d", "5000", "-timeout", "40s",
         "-trace_msg", "-message_file", str(log)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=world.tmp,
    )  # fmt: skip
    gb = world.controller.gb28181
    assert gb is not None and gb._loop is not None
    units: list[AccessUnit] = []
    try:
        end = time.monotonic() + 10
        while time.monotonic() < end and not (
            NVR in world.devices.devices and world.devices.devices[NVR].tcp
        ):
            time.sleep(0.1)
        assert world.devices.devices[NVR].tcp, "not registered over TCP"
        ask = world.devices.ask_catalog(world.devices.devices[NVR])  # (sent once when fresh)
        assert asyncio.run_coroutine_threadsafe(ask, gb._loop).result(10)
        future = asyncio.run_coroutine_threadsafe(
            devplay.play(world.devices, NVR, CH1, units.append), gb._loop
        )
        stream = future.result(10)
        send_ps(source, stream.port, stream.ssrc)
        end = time.monotonic() + 5
        while len(units) < 49 and time.monotonic() < end:
            time.sleep(0.1)
        bye = asyncio.run_coroutine_threadsafe(stream.stop(), gb._loop).result(10)
    finally:
        proc.wait(30)
    assert bye == 200 and proc.returncode == 0
    assert len(units) == 50
    messages = log.read_text(errors="replace")
    for request in (
        f"MESSAGE sip:{NVR}@",
        f"INVITE sip:{CH1}@",
        f"ACK sip:{CH1}@",
        f"BYE sip:{CH1}@",
    ):
        sent = messages[messages.index(request) :][:400]  # Vigil's, over SIPp's TCP socket
        assert "Via: SIP/2.0/TCP" in sent, (request, sent)


def listed_statuses(
    world: DeviceWorld, st1: str, st2: str, ch2: str = CH2
) -> tuple[str, dict[str, tuple[bool | None, str, str]]]:
    """SIPp as the registered NVR sends a Catalog NOTIFY; Vigil asks for its catalog again;
    the answer (device_ooc_status.xml, after three bad pages) gives ch1 Status `st1` and
    `ch2` Status `st2`. Returns SIPp's output and the fleet view's channels: camera id ->
    (online, reason, status kept)."""
    scenario = world.tmp / "device_ooc_status.xml"
    text = (SIPP_DIR / "device_ooc_status.xml").read_text()
    scenario.write_text(text.replace("<!--PADDING-->", "<Pad>" + "x" * 40_000 + "</Pad>"))
    gb = world.controller.gb28181
    assert gb is not None and gb.devices is not None
    before = world.devices.devices[NVR].catalog_asked if NVR in world.devices.devices else None
    rc, out = sipp(world, SIPP_DIR / "device_notify.xml", NVR, world.password, keep_ms=2500,
                   ooc_file=scenario, keys={"st1": st1, "st2": st2, "ch2": ch2})  # fmt: skip
    assert rc == 0, out
    assert world.devices.devices[NVR].catalog_asked != before  # asked again
    core = world.controller.core
    fleet = GbFleet(GbDeviceStore(core.engine, core.clock), core.clock, 180.0, ttl_s=0.0)
    _state, shown = fleet.states()[NVR]
    return out, {c.camera_id: (c.online, c.reason, c.status) for c in shown.channel_states}


def upward(world: DeviceWorld) -> dict[str, str]:
    """The Status of each of the NVR's channels in Vigil's Catalog answer to an upper
    platform (organisation gongan, which sees the whole city)."""
    gb = world.controller.gb28181
    assert gb is not None and gb.service is not None
    cfg = UpperPlatformConfig(
        server_id="62000000002000000001", address="127.0.0.1:9", org="gongan",
        local_id="62120000002000000009", password_file="-",
    )  # fmt: skip
    link = UpperLink(cfg, "x", ("127.0.0.1", 9), RegisterPlan(3600, 60.0))
    query = manscdp.parse(b"<Query><CmdType>Catalog</CmdType><SN>9</SN><DeviceID>"
                          + cfg.local_id.encode() + b"</DeviceID></Query>")  # fmt: skip
    text = "".join(manscdp.decode(b) for b in gb.service._answer(link, query))
    items = [i.split("</Item>")[0] for i in text.split("<Item>")[1:]]
    found = {i.split("<DeviceID>")[1][:20]: i.split("<Status>")[1][:3].strip("<") for i in items}
    return {code: found[code] for code in (CH1, CH2)}


def test_a_channel_the_nvr_reports_off_is_offline_with_why_and_on_again_flips_back(
    world: DeviceWorld, caplog: pytest.LogCaptureFixture
) -> None:
    """The device online, its Catalog (asked again on its Catalog NOTIFY) says ch2 OFFLINE:
    ch2 is offline with the reason, ch1 online, and upper platforms are told ch2 is OFF; the
    next Catalog saying ch2 "on" (any case) flips it back. The bad pages before each answer
    (malformed, oversize, a short code) are refused and change nothing."""
    out, channels = listed_statuses(world, "ON", "OFFLINE")
    for said in ("400 malformed XML", "413 XML body of", "400 catalog item code '6212'"):
        assert said in out, said
    # the NOTIFY came before the query it caused
    notify = out.index("<SN>41</SN>")  # the NOTIFY (SIPp sends it as written)
    assert f"MESSAGE sip:{NVR}@" in out[notify:], "no Catalog query after the NOTIFY"
    assert world.devices.online(NVR)
    assert channels == {CH1: (True, "", "on"), CH2: (False, "catalog_off", "off")}
    gb = world.controller.gb28181
    assert gb is not None
    assert upward(world) == {CH1: "ON", CH2: "OFF"}  # the cascade's Catalog to a platform
    core = world.controller.core
    fleet = GbFleet(GbDeviceStore(core.engine, core.clock), core.clock, 180.0, ttl_s=0.0)
    assert fleet.channels_online(lambda _c: True) == {CH1: True, CH2: False}

    with caplog.at_level("WARNING", logger="vigil.gb28181"):
        _out, channels = listed_statuses(world, "BROKEN", "on")
    assert channels == {CH1: (True, "", "unknown"), CH2: (True, "", "on")}
    assert any("Status 'BROKEN' is not ON/OFF" in r.getMessage() for r in caplog.records)
    assert upward(world) == {CH1: "ON", CH2: "ON"}


def test_a_catalog_listing_another_devices_camera_changes_nothing_of_it(
    world: DeviceWorld,
) -> None:
    """An NVR listing a code that is another device's camera (an agent's) with Status OFF:
    the camera stays that device's, gets no GB status, is not offline and is not among the
    channels Vigil would INVITE through the NVR; the NVR's own channels are stored as
    listed."""
    catalog = world.controller.core.catalog
    catalog.upsert_device("edge-foreign", "wudu", "东关村", "agent")
    catalog.upsert_camera(FOREIGN, "edge-foreign")
    _out, channels = listed_statuses(world, "OFF", "OFF", ch2=FOREIGN)
    row = catalog.camera(FOREIGN)
    assert row is not None and row.device_id == "edge-foreign"
    assert (
        FOREIGN not in channels
        and FOREIGN not in GbDeviceStore(world.controller.core.engine, SystemClock()).all_channels()
    )
    assert channels[CH1] == (False, "catalog_off", "off")
    assert CH2 in channels  # not listed this time: kept with its last status
    # nor INVITEd through this NVR (recording, live): only its own channels are
    assert world.devices.devices[NVR].channel_codes == [CH1]
