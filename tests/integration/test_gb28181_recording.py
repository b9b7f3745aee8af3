"""Continuous recording of a GB/T 28181 device channel, with SIPp playing the NVR.

The controller runs with `[gb28181] record` naming one channel. SIPp registers as the NVR
(tests/integration/sipp/device_register.xml) and answers every INVITE Vigil sends with its
out-of-call scenario; GStreamer sends the PS over RTP to the port and SSRC of each session.
A stream that goes silent is dropped (BYE), INVITEd again and recorded on; the time between
is a recording gap in the catalog's accounting and the camera's state history says why. A
device that ends the call with its own BYE is INVITEd again too. Live view of a channel that
does not record goes through the console's WebSocket route with a user's grant: the first
viewer INVITEs, a second shares the session, the last leaving BYEs (after the hub's linger),
and both views are audited like an agent camera's.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection, connect

from controller.api.component import HttpComponent
from controller.assembly import Controller
from controller.catalog.history import HistoryCatalog
from controller.clock import SystemClock
from controller.gb28181 import supervise
from controller.gb28181.channel_sessions import Channel as Recorded
from controller.gb28181.channel_sessions import RecordingSupervisor
from controller.gb28181.devstore import GbDeviceStore
from controller.gb28181.manscdp import OFF, ON, Channel
from controller.grants.policy import default_policy
from controller.users import create_user
from tests.integration.gb_device_support import (
    REALM,
    device_controller,
    ffprobe_frames,
    framed_rtp,
    make_ps,
    send_ps,
    sipp_device,
)
from tests.integration.test_gb28181_support import free_udp_port
from tests.integration.test_live_view import PASSWORD, decode, grant, read_media, session

SERVER_ID = "62120000002000000003"
NVR = "62120200001110000007"
CH1 = "62120200001310000071"  # recorded
CH2 = "62120200001310000072"  # not selected: never INVITEd
NVR_TCP = "62120200001110000008"  # media over TCP (`media_tcp`)
CH_TCP = "62120200001310000081"
NVR_LISTEN = "62120200001110000009"  # listens for TCP media (`media_tcp_active`)
CH_LISTEN = "62120200001310000091"
RTP_TIMEOUT_S = 3.0


@dataclass
class RecWorld:
    controller: Controller
    supervisor: RecordingSupervisor
    sip_port: int
    password: str
    tmp: Path
    source: Path
    tcp_password: str
    listen_password: str


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RecWorld]:
    tmp = tmp_path_factory.mktemp("gbrec")
    top = {"http": {"listen": "127.0.0.1:0"}, "live": {"linger_s": 1.0}}
    controller, password, sip_port = device_controller(
        tmp / "ctl", SERVER_ID, NVR, [Channel(CH1, "Gate"), Channel(CH2, "Yard")], top,
        record=[CH1, CH_TCP, CH_LISTEN], record_segment_s=1.0, rtp_timeout_s=RTP_TIMEOUT_S,
        reinvite_min_s=0.5, media_tcp=[NVR_TCP], media_tcp_active=[NVR_LISTEN],
    )  # fmt: skip
    store = GbDeviceStore(controller.engine, SystemClock())
    tcp_password = store.issue(NVR_TCP, "wudu", "东关村", REALM)
    store.set_channels(NVR_TCP, [Channel(CH_TCP, "Bridge")])
    listen_password = store.issue(NVR_LISTEN, "wudu", "东关村", REALM)
    store.set_channels(NVR_LISTEN, [Channel(CH_LISTEN, "Ford")])
    assert controller.gb28181 is not None
    create_user(controller.engine, SystemClock(), "wd-op", "wudu", "operator", PASSWORD,
                policy=default_policy())  # fmt: skip
    try:
        supervisor = controller.gb28181.recording
        assert supervisor is not None
        source = make_ps(tmp / "channel.ps")
        yield RecWorld(controller, supervisor, sip_port, password, tmp, source, tcp_password,
                       listen_password)  # fmt: skip
    finally:
        controller.stop(grace_s=1.0)


def device(
    world: RecWorld, ooc: str, log: Path, nvr: str = NVR, password: str = "", port: int = 0
) -> subprocess.Popen[bytes]:
    """SIPp as the NVR: registered for 60 s, answering Vigil's requests with `ooc`."""
    pw = password or world.password
    return sipp_device(world.sip_port, world.tmp, ooc, log, nvr, pw, SERVER_ID, port)


def epoch_of(world: RecWorld) -> int:
    """The NVR's registration epoch (0: never registered): a new SIPp makes it grow."""
    dev = world.supervisor.access.devices.get(NVR)
    return dev.epoch if dev is not None else 0


def wait_for(what: str, ok: Callable[[], bool], seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def channel(world: RecWorld, code: str, nvr: str = NVR) -> Recorded | None:
    return world.supervisor.channels.get((nvr, code))


def camera_changes(world: RecWorld) -> list[tuple[str, str]]:
    core = world.controller.core
    rows = HistoryCatalog(core.engine, core.clock).changes(0, 2**62)
    return [(r.state, r.reason) for r in rows if r.subject == "camera" and r.camera_id == CH1]


def session_up(world: RecWorld, n: int) -> Recorded:
    """Wait until CH1's session number `n` is answered; the channel."""
    wait_for(f"session {n}", lambda: (c := channel(world, CH1)) is not None
             and c.sessions >= n and c.play is not None)  # fmt: skip
    ch = channel(world, CH1)
    assert ch is not None and ch.play is not None and ch.sessions == n
    return ch


def test_a_silent_stream_is_invited_again_and_the_gap_is_accounted(world: RecWorld) -> None:
    log = world.tmp / "silent.log"
    epoch = epoch_of(world)
    seen = len(camera_changes(world))
    proc = device(world, "device_ooc_media.xml", log)
    core = world.controller.core
    try:
        wait_for("this SIPp registered", lambda: epoch_of(world) > epoch)
        known_ch = channel(world, CH1)
        before = known_ch.sessions if known_ch is not None else 0
        ch = session_up(world, before + 1)
        assert ch.play is not None
        first = ch.play
        send_ps(world.source, first.port, first.ssrc)
        wait_for("50 frames", lambda: first.frames >= 49)
        # silence: dropped after RTP_TIMEOUT_S, BYE, INVITEd again, recorded on
        ch = session_up(world, before + 2)
        assert first.stopped and ch.play is not None and ch.play is not first
        second = ch.play
        send_ps(world.source, second.port, second.ssrc)
        wait_for("50 frames again", lambda: second.frames >= 49)
        wait_for("the second drop", lambda: second.stopped and not ch.busy, RTP_TIMEOUT_S + 10)
        wait_for("4 segments", lambda: core.catalog.count_segments(CH1) == 4)
    finally:
        proc.terminate()
        proc.wait(10)
    messages = log.read_text(errors="replace")
    assert messages.count("INVITE sip:" + CH1) >= 2 and "BYE sip:" + CH1 in messages
    assert "INVITE sip:" + CH2 not in messages  # not selected by `record`
    assert channel(world, CH2) is None
    rows = core.catalog.segments_in_range(CH1, 0, 2**62, 100)
    assert [r.duration_us for r in rows] == [1_000_000] * 4
    assert [r.flag for r in rows] == [""] * 4  # one chain across the two sessions
    assert [r.prev_sha256 for r in rows[1:]] == [r.sha256 for r in rows[:-1]]
    gap = rows[2].start_us - rows[1].end_us
    assert gap >= (RTP_TIMEOUT_S - 2.0) * 1_000_000  # sent 2 s of video, silent 3 s
    assert rows[1].start_us == rows[0].end_us and rows[3].start_us == rows[2].end_us
    sums = HistoryCatalog(core.engine, core.clock).hour_sums(0, 2**62, "camera", [CH1])
    assert sum(s.sums["gap_us"] for s in sums) == gap  # the gap is accounted, exactly
    assert sum(s.sums["recorded_us"] for s in sums) == 4_000_000
    silent = f"gb: RTP silent for {RTP_TIMEOUT_S:g} s"
    # (what an earlier test's device left running may add before: a restart, a failed INVITE)

    def changes_now() -> list[tuple[str, str]]:
        return [c for c in camera_changes(world)[seen:] if c[1] in ("gb: recording", silent)]

    wait_for("4 state changes written", lambda: len(changes_now()) >= 4)  # written in order
    changes = changes_now()
    assert changes[:4] == [("online", "gb: recording"), ("offline", silent),
                           ("online", "gb: recording"), ("offline", silent)]  # fmt: skip
    seg = world.tmp / "after-gap.ts"
    seg.write_bytes(core.store.read_bytes(rows[2].object_key))
    probe = ffprobe_frames(seg)
    assert "codec_name=h264" in probe and "nb_read_frames=25" in probe


def test_a_device_bye_ends_the_session_and_it_is_invited_again(world: RecWorld) -> None:
    log = world.tmp / "bye.log"
    ch = channel(world, CH1)
    before = ch.sessions if ch is not None else 0
    proc = device(world, "device_ooc_bye.xml", log)
    try:
        ch = session_up(world, before + 1)
        session = ch.play
        assert session is not None
        wait_for("the device's BYE", lambda: session.remote_bye)
        session_up(world, before + 2)
    finally:
        proc.terminate()
        proc.wait(10)
    messages = log.read_text(errors="replace")
    assert "BYE sip:" + SERVER_ID in messages and "SIP/2.0 200 OK" in messages
    bye = ("offline", "gb: device sent BYE")
    wait_for("the BYE state change", lambda: bye in camera_changes(world))


def test_a_device_that_registers_afresh_is_invited_again_where_it_is_now(world: RecWorld) -> None:
    """An NVR that restarted registers with another Call-ID (here: from another port): the
    session Vigil held is gone with it, so it is dropped at once (no RTP timeout) and the
    channel INVITEd at its new address."""
    first_log, second_log = world.tmp / "before-restart.log", world.tmp / "after-restart.log"
    epoch = epoch_of(world)
    first = device(world, "device_ooc_media.xml", first_log)
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for("this SIPp registered", lambda: epoch_of(world) > epoch)
        ch = channel(world, CH1)
        before = ch.sessions if ch is not None else 0
        ch = session_up(world, before + 1)
        old = ch.play
        assert old is not None
        port = free_udp_port()
        second = device(world, "device_ooc_media.xml", second_log, port=port)
        ch = session_up(world, before + 2)
        assert ch.play is not None and ch.play.peer[1] == port and old.stopped
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
    again = ("offline", "gb: device registered again (restarted)")
    wait_for("the restart state change", lambda: again in camera_changes(world))
    assert "INVITE sip:" + CH1 in second_log.read_text(errors="replace")


def test_live_view_of_a_channel_invites_once_for_two_viewers_and_byes_after_them(
    world: RecWorld,
) -> None:
    log = world.tmp / "live.log"
    epoch = epoch_of(world)
    proc = device(world, "device_ooc_media.xml", log)
    controller = world.controller
    base = http_base(world)
    views = []
    try:
        wait_for("this SIPp registered", lambda: epoch_of(world) > epoch)
        token = session(base)
        grants = [grant(base, token, [CH2]) for _ in range(2)]
        views += [open_live(base, CH2, token, g["token"]) for g in grants]
        wait_for("the live session", lambda: (c := channel(world, CH2)) is not None
                 and c.play is not None)  # fmt: skip
        ch = channel(world, CH2)
        assert ch is not None and ch.play is not None and not ch.record
        time.sleep(0.5)  # both viewers joined the one feed
        assert ch.sessions == 1
        send_ps(world.source, ch.play.port, ch.play.ssrc)
        for ws in views:  # from the first keyframe, every frame (the 50th waits for a 51st)
            assert frames_from(ws, 49) == 49
        status = controller.live.status(CH2) if controller.live is not None else None
        assert status is not None and status.state == "live" and status.codec == "h264"
        assert ch.sessions == 1
        session_up = ch.play
        for ws in views:
            ws.close()
        wait_for("BYE after the linger", lambda: channel(world, CH2) is None, 10)
        assert session_up.stopped
    finally:
        for ws in views:
            ws.close()
        proc.terminate()
        proc.wait(10)
    messages = log.read_text(errors="replace")
    assert "BYE sip:" + CH2 in messages
    with controller.engine.connect() as db:
        for g in grants:
            rows = db.exec_driver_sql(
                "SELECT action FROM audit_entry WHERE grant_id = ? ORDER BY seq", (g["grant_id"],)
            ).fetchall()
            actions = [r[0] for r in rows]
            assert "live_view" in actions and "live_view_end" in actions, actions


def http_base(world: RecWorld) -> str:
    http = next(c for c in world.controller.components if isinstance(c, HttpComponent))
    return http.base_url


def open_live(base: str, camera: str, session_token: str, grant_token: str) -> ClientConnection:
    """A console live view (the WebSocket route), hello sent."""
    url = f"{base.replace('http://', 'ws://')}/api/v1/live/{camera}/ws"
    ws = connect(url, max_size=None, max_queue=None, legacy=True)
    ws.send(json.dumps({"session": session_token, "grant": grant_token}))
    return ws


def test_live_view_of_a_recorded_channel_shares_its_recording_session(world: RecWorld) -> None:
    log = world.tmp / "live-recorded.log"
    epoch = epoch_of(world)
    proc = device(world, "device_ooc_media.xml", log)
    core = world.controller.core
    ws: ClientConnection | None = None
    try:
        wait_for("this SIPp registered", lambda: epoch_of(world) > epoch)
        wait_for("CH1 recording with this SIPp", lambda: (c := channel(world, CH1)) is not None
                 and c.play is not None and c.epoch == epoch_of(world))  # fmt: skip
        ch = channel(world, CH1)
        assert ch is not None and ch.play is not None and ch.record
        sessions, play, segments = ch.sessions, ch.play, core.catalog.count_segments(CH1)
        base = http_base(world)
        token = session(base)
        ws = open_live(base, CH1, token, grant(base, token, [CH1])["token"])
        wait_for("the live consumer", lambda: ch.live is not None)
        send_ps(world.source, play.port, play.ssrc)
        assert frames_from(ws, 49) == 49
        assert ch.sessions == sessions and ch.play is play  # no second INVITE
        wait_for("recorded meanwhile", lambda: core.catalog.count_segments(CH1) > segments)
        ws.close()
        wait_for("the viewer's feed gone", lambda: ch.live is None, 10)
        assert ch.play is play and not play.stopped  # recording goes on
    finally:
        if ws is not None:
            ws.close()
        proc.terminate()
        proc.wait(10)
    assert log.read_text(errors="replace").count("INVITE sip:" + CH1) == 1


def frames_from(ws: ClientConnection, frames: int) -> int:
    """Read a live view until `frames` decode (at most 5 s); how many did."""
    data = b""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        data += read_media(ws, 0.2)[0]
        if data and len(decode(data)) >= frames:
            break
    return len(decode(data)) if data else 0


def test_media_over_tcp_with_vigil_passive_is_recorded(world: RecWorld) -> None:
    """`media_tcp` names the NVR: the INVITE offers TCP/RTP/AVP with a=setup:passive, the
    device (GStreamer, rtpstreampay: RFC 4571 framing) connects to the offered port."""
    log = world.tmp / "tcp.log"
    proc = device(world, "device_ooc_media.xml", log, NVR_TCP, world.tcp_password)
    core = world.controller.core
    try:
        wait_for("the TCP session", lambda: (c := channel(world, CH_TCP, NVR_TCP)) is not None
                 and c.play is not None)  # fmt: skip
        ch = channel(world, CH_TCP, NVR_TCP)
        assert ch is not None and ch.play is not None
        play = ch.play
        send_ps(world.source, play.port, play.ssrc, tcp=True)
        wait_for("49 frames over TCP", lambda: play.frames >= 49)
        wait_for("a segment", lambda: core.catalog.count_segments(CH_TCP) >= 1)
    finally:
        proc.terminate()
        proc.wait(10)
    assert play.rtp_in.rtp.lost == 0
    messages = log.read_text(errors="replace")
    invite = messages[messages.index("INVITE sip:" + CH_TCP) :]
    assert "TCP/RTP/AVP" in invite[:2000] and "a=setup:passive" in invite[:2000]
    row = core.catalog.segments_in_range(CH_TCP, 0, 2**62, 10)[0]
    seg = world.tmp / "tcp.ts"
    seg.write_bytes(core.store.read_bytes(row.object_key))
    probe = ffprobe_frames(seg)
    assert "codec_name=h264" in probe and "nb_read_frames=25" in probe


def test_media_over_tcp_from_a_device_that_only_listens_is_recorded(world: RecWorld) -> None:
    """`media_tcp_active` names the NVR: the INVITE offers TCP/RTP/AVP, a=setup:active, port
    9; the device (SIPp) answers with the port it listens on, Vigil connects there and reads
    what the device sends (GStreamer's rtpstreampay framing)."""
    log = world.tmp / "listen.log"
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(20)
    port = server.getsockname()[1]
    keys = {"tcp_port": str(port)}
    proc = sipp_device(world.sip_port, world.tmp, "device_ooc_listen.xml", log, NVR_LISTEN,
                       world.listen_password, SERVER_ID, keys=keys)  # fmt: skip
    core = world.controller.core
    try:
        conn, _ = server.accept()  # Vigil connects after the 200 and its ACK
        with conn:
            wait_for("the session", lambda: (c := channel(world, CH_LISTEN, NVR_LISTEN))
                     is not None and c.play is not None)  # fmt: skip
            ch = channel(world, CH_LISTEN, NVR_LISTEN)
            assert ch is not None and ch.play is not None
            play = ch.play
            conn.sendall(framed_rtp(world.source, world.tmp / "framed.bin", play.ssrc))
            wait_for("49 frames over TCP", lambda: play.frames >= 49)
            wait_for("a segment", lambda: core.catalog.count_segments(CH_LISTEN) >= 1)
    finally:
        server.close()
        proc.terminate()
        proc.wait(10)
    assert play.rtp_in.rtp.lost == 0
    messages = log.read_text(errors="replace")
    invite = messages[messages.index("INVITE sip:" + CH_LISTEN) :][:2000]
    assert "m=video 9 TCP/RTP/AVP" in invite and "a=setup:active" in invite
    row = core.catalog.segments_in_range(CH_LISTEN, 0, 2**62, 10)[0]
    seg = world.tmp / "listen.ts"
    seg.write_bytes(core.store.read_bytes(row.object_key))
    probe = ffprobe_frames(seg)
    assert "codec_name=h264" in probe and "nb_read_frames=25" in probe


def test_a_channel_the_nvr_reports_off_is_not_invited_until_it_is_reported_on(
    world: RecWorld,
) -> None:
    """The NVR registers afresh and its Catalog answer (asked because it registered afresh)
    reports the recorded channel OFF: it is not INVITEd (SIPp's log has no INVITE for it
    however long the backoff would have taken), and the history says why. The NVR registers
    again (restarted) reporting it ON: INVITEd at once, recorded."""
    off_log, on_log = world.tmp / "reported-off.log", world.tmp / "reported-on.log"
    statuses = {"ch1": CH1, "ch2": CH2, "st2": "ON"}
    held = ("offline", supervise.CATALOG_OFF_NOTE)
    recording = ("online", "gb: recording")
    seen = len(camera_changes(world))
    segments = world.controller.core.catalog.count_segments(CH1)
    epoch = epoch_of(world)
    first = sipp_device(world.sip_port, world.tmp, "device_ooc_catalog.xml", off_log, NVR,
                        world.password, SERVER_ID, keys={**statuses, "st1": "OFF"})  # fmt: skip
    second: subprocess.Popen[bytes] | None = None
    try:
        wait_for("this SIPp registered", lambda: epoch_of(world) > epoch)
        devices = world.supervisor.access.devices
        wait_for("CH1 reported OFF", lambda: devices[NVR].channel_status.get(CH1) == OFF)
        wait_for("the held state change", lambda: held in camera_changes(world)[seen:])
        ch = channel(world, CH1)
        assert ch is not None and ch.held and ch.play is None
        sessions = ch.sessions
        time.sleep(3.0)  # reinvite_min_s 0.5 s: several INVITEs would have gone by now
        assert ch.play is None and ch.sessions == sessions and not ch.busy
        first.terminate()
        first.wait(10)
        off_messages = off_log.read_text(errors="replace")
        assert "<CmdType>Catalog</CmdType>" in off_messages  # asked: it registered afresh
        assert "INVITE sip:" + CH1 not in off_messages
        # restarted, now reporting it ON: INVITEd at once and recorded
        epoch = epoch_of(world)
        second = sipp_device(world.sip_port, world.tmp, "device_ooc_catalog.xml", on_log, NVR,
                             world.password, SERVER_ID, keys={**statuses, "st1": "ON"})  # fmt: skip
        wait_for("this SIPp registered", lambda: epoch_of(world) > epoch)
        ch = session_up(world, sessions + 1)
        play = ch.play
        assert play is not None and not ch.held and devices[NVR].channel_status[CH1] == ON
        send_ps(world.source, play.port, play.ssrc)
        wait_for("50 frames", lambda: play.frames >= 49)
        wait_for("a new segment", lambda: world.controller.core.catalog.count_segments(CH1)
                 > segments)  # fmt: skip
    finally:
        for proc in (first, second):
            if proc is not None:
                proc.terminate()
                proc.wait(10)
    assert "INVITE sip:" + CH1 in on_log.read_text(errors="replace")
    wait_for("the recording state change", lambda: recording in camera_changes(world)[seen:])
    changes = camera_changes(world)[seen:]
    assert changes.index(held) < changes.index(recording)
