"""Live view end to end, every part real: camsim (GStreamer RTSP) -> the agent's capture with
its live tee -> the outbound Feed stream over mutual-TLS gRPC -> the controller's hub ->
WebSocket viewers on the HTTP API exactly as `vigil-controller serve` wires it.

Each test can fail: the bytes are decoded with PyAV (they must start at a keyframe), the
agent's own count of start commands shows how many streams crossed the "village link", and
refusals are read from the close message and the audit log.
"""

from __future__ import annotations

import io
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import grpc
import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

from controller.api.component import HttpComponent
from controller.assembly import Controller, Parts, build_controller
from controller.clock import SystemClock as ControllerClock
from controller.config import ControllerConfig
from controller.grants.keys import ensure_keys
from controller.grants.policy import default_policy
from controller.live.feed import LiveOptions
from controller.live.hub import LiveHub
from controller.users import create_user
from edge_agent.app import Agent
from edge_agent.capture import CaptureSettings
from edge_agent.clock import SystemClock
from edge_agent.config import AgentConfig, BufferConfig, CameraConfig
from edge_agent.live import LiveClient, LiveClientOptions
from edge_agent.uplink.client import connect as grpc_connect
from edge_agent.uplink.client import load_credentials
from edge_agent.wiring import wire_components
from protos.vigil.v1 import live_pb2, live_pb2_grpc
from tests.fixtures.camsim import TEST_DEFAULTS
from tests.integration.controller_proc import DeviceCreds, issue_device, register
from tests.integration.test_uplink_support import make_site, uplink_config
from tests.support import wait_until
from vigil_camsim.launcher import CamsimProcess, check_gstreamer

PASSWORD = "correct horse battery"


@dataclass
class World:
    controller: Controller
    http: HttpComponent
    hub: LiveHub
    agent: Agent
    live: LiveClient
    dev2: DeviceCreds
    cams: CamsimProcess
    tmp: Path

    @property
    def base(self) -> str:
        return self.http.base_url

    @property
    def ws_base(self) -> str:
        return self.base.replace("http://", "ws://")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """dev1 runs cam1 (camsim H.264) and cam2 (camsim H.265); dev2 owns cam3. User wd-op
    (武都区 operator) may watch them all."""
    problem = check_gstreamer()
    if problem is not None:
        pytest.fail(f"camsim cannot run: {problem}", pytrace=False)
    tmp = tmp_path_factory.mktemp("live")
    site = make_site(tmp, cameras=("cam1", "cam2"))
    register(site.data_dir, "dev2", ["cam3"])
    dev2 = issue_device(site.data_dir, "dev2", tmp / "dev2-certs")
    ensure_keys(site.data_dir)
    config = ControllerConfig.model_validate(
        {
            "data_dir": str(site.data_dir),
            "grpc": {"listen": "127.0.0.1:0"},
            "http": {"listen": "127.0.0.1:0"},
        }
    )
    clock = ControllerClock()
    controller = build_controller(config, clock, Parts(http=True))
    assert controller.live is not None
    controller.live.options = LiveOptions(linger_s=1.0, viewer_chunks=40)
    controller.start()
    cams = CamsimProcess.start(
        2,
        **{**TEST_DEFAULTS, "profiles": {2: "h265"}, "log_path": tmp / "camsim.log"},
        stamp_wallclock=True,  # each frame's send time as SEI: glass-to-glass latency
    )
    agent: Agent | None = None
    live: LiveClient | None = None
    try:
        http = next(c for c in controller.components if isinstance(c, HttpComponent))
        for user, role in (("wd-op", "operator"), ("wd-admin", "admin")):
            policy = default_policy()
            create_user(controller.engine, clock, user, "wudu", role, PASSWORD, policy=policy)
        agent, live = live_agent(tmp, site.device, controller.grpc_port, cams, ("cam1", "cam2"))
        wait_until(
            lambda: any(s.camera_id == "cam1" and s.connected for s in agent.statuses()),
            30,
            "cam1 streaming at the agent",
        )
        yield World(controller, http, controller.live, agent, live, dev2, cams, tmp)
    finally:
        if agent is not None:
            agent.stop()
        cams.stop()
        controller.stop(grace_s=1.0)


def live_agent(
    tmp: Path,
    dev: DeviceCreds,
    grpc_port: int,
    cams: CamsimProcess,
    cameras: tuple[str, ...],
    route: Callable[[], str] | None = None,
) -> tuple[Agent, LiveClient]:
    """dev's agent capturing `cameras` (camsim's 1, 2, ... in order) with its live Feed client
    on a mutual-TLS channel to the controller, started and connected (no uplink). `route`:
    the control route's address instead (it may move: a channel per address)."""
    config = AgentConfig(
        device_id=dev.device_id,
        data_dir=str(tmp / "agent"),
        cameras=[
            CameraConfig(id=cid, url=cams.url(n), segment_seconds=2.0)
            for n, cid in enumerate(cameras, start=1)
        ],
        buffer=BufferConfig(quota_bytes=256 * 1024 * 1024),
    )
    clock = SystemClock()
    settings = CaptureSettings(
        state_dir=tmp / "agent" / "capture", backoff_initial_s=0.2, backoff_cap_s=1.0
    )
    agent = Agent.open(config, clock, settings)
    address = f"127.0.0.1:{grpc_port}"
    credentials = load_credentials(dev.ca_path, dev.cert_path, dev.key_path)
    channels = {address: grpc_connect(address, credentials, 64 * 1024)}

    def channel_for(to: str) -> grpc.Channel:
        if route is None:
            return channels[address]
        if to not in channels:
            channels[to] = grpc_connect(to, credentials, 64 * 1024)
        return channels[to]

    options = LiveClientOptions(backoff_initial_s=0.1, backoff_cap_s=0.5)
    live = LiveClient(agent.live, route or (lambda: address), channel_for, clock, options)
    agent.add_component(live)
    agent.start()
    try:
        wait_until(live.connected.is_set, 20, "the agent's live feed stream")
    except BaseException:
        agent.stop()
        raise
    return agent, live


def session(base: str, user: str = "wd-op") -> str:
    r = httpx.post(f"{base}/api/v1/login", json={"user_id": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    token: str = r.json()["token"]
    return token


def grant(base: str, token: str, cameras: list[str], op: str = "live") -> dict[str, Any]:
    now = int(time.time() * 1e6)
    r = httpx.post(
        f"{base}/api/v1/grants",
        headers={"Authorization": f"Bearer {token}"},
        json={
            "operations": [op],
            "cameras": cameras,
            "from_us": now - 600_000_000,
            "to_us": now + 900_000_000,
            "purpose": "live view test",
        },
    )
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def open_view(world: World, camera: str, hello: dict[str, str]) -> ClientConnection:
    ws = connect(
        f"{world.ws_base}/api/v1/live/{camera}/ws", max_size=None, max_queue=None, legacy=True
    )
    ws.send(json.dumps(hello))
    return ws


def watcher(world: World, camera: str = "cam1") -> tuple[ClientConnection, str]:
    token = session(world.base)
    g = grant(world.base, token, [camera])
    return open_view(world, camera, {"session": token, "grant": g["token"]}), g["grant_id"]


def read_media(ws: ClientConnection, seconds: float) -> tuple[bytes, list[dict[str, Any]]]:
    """Binary bytes and text messages received for `seconds`."""
    data, texts = bytearray(), []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = ws.recv(timeout=left)
        except TimeoutError:
            break
        if isinstance(msg, bytes):
            data += msg
        else:
            texts.append(json.loads(msg))
    return bytes(data), texts


def first_media(ws: ClientConnection, limit: float = 8.0) -> bytes:
    """Read until the first media bytes have come (and half a second more), up to `limit`:
    on a loaded machine the feed's first keyframe can take more than a second to arrive."""
    deadline = time.monotonic() + limit
    data = b""
    while not data and time.monotonic() < deadline:
        data = read_media(ws, 0.5)[0]
    return data + read_media(ws, 0.5)[0] if data else data


def closing_message(ws: ClientConnection, timeout: float) -> dict[str, Any]:
    """The error message the server sends before it closes the socket."""
    deadline = time.monotonic() + timeout
    error: dict[str, Any] = {}
    try:
        while time.monotonic() < deadline:
            msg = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(msg, str) and "error" in (parsed := json.loads(msg)):
                error = parsed
    except ConnectionClosed:
        return error
    except TimeoutError:
        pass
    raise AssertionError(f"the socket stayed open for {timeout} s (last error {error})")


def audit_rows(world: World, grant_id: str) -> list[tuple[str, str]]:
    """(action, detail JSON) of the audit entries naming this grant, oldest first."""
    with world.controller.engine.connect() as db:
        rows = db.exec_driver_sql(
            "SELECT action, detail FROM audit_entry WHERE grant_id = ? ORDER BY seq",
            (grant_id,),
        ).fetchall()
    return [(a, d) for a, d in rows]


def decode(data: bytes) -> list[av.VideoFrame]:
    with av.open(io.BytesIO(data), mode="r", format="mpegts") as container:
        return list(container.decode(video=0))


def idle(world: World) -> None:
    """No feed at the hub and no tap running at the agent (the linger is 1 s here)."""
    wait_until(lambda: not world.hub.feeds() and not world.agent.live.active(), 15, "feeds idle")


def test_a_viewer_gets_mpegts_from_a_keyframe_within_two_seconds(world: World) -> None:
    idle(world)
    token = session(world.base)
    g = grant(world.base, token, ["cam1"])
    opened = time.monotonic()
    with open_view(world, "cam1", {"session": token, "grant": g["token"]}) as ws:
        first = ws.recv(timeout=5)
        while not isinstance(first, bytes):
            first = ws.recv(timeout=5)
        startup = time.monotonic() - opened
        rest, texts = read_media(ws, 2.0)
    data = first + rest
    assert startup < 2.0, f"first bytes after {startup:.2f} s"
    assert data[0] == 0x47 and len(data) % 188 == 0
    frames = decode(data)
    assert len(frames) >= 25, f"{len(frames)} frames in ~2 s"
    assert frames[0].key_frame, "the feed did not start at a keyframe"
    assert (frames[0].width, frames[0].height) == (320, 180)
    states = [t["state"] for t in texts if "state" in t]
    assert states and states[-1] == "live", texts
    live = [t for t in texts if t.get("state") == "live"][-1]
    assert live["codec"] == "h264"
    assert 0 <= live["now_us"] - live["frame_us"] < 2_000_000  # the newest frame's age


def test_many_viewers_share_one_feed_and_the_feed_stops_after_the_last(world: World) -> None:
    idle(world)
    starts, stops = world.hub.starts_sent, world.hub.stops_sent
    opened = world.live.starts
    views = [watcher(world)[0] for _ in range(20)]
    try:
        got: list[bytes] = [b""] * len(views)

        def read(i: int) -> None:
            got[i] = first_media(views[i])

        readers = [threading.Thread(target=read, args=(i,)) for i in range(len(views))]
        for t in readers:
            t.start()
        for t in readers:
            t.join(20)
        for data in got:
            assert data and decode(data)[0].key_frame
        assert world.hub.viewers("cam1") == 20
        assert world.agent.live.active() == ["cam1"]
        assert world.hub.starts_sent - starts == 1, "more than one feed was asked for"
        assert world.live.starts - opened == 1, "the agent got more than one start"
    finally:
        for ws in views:
            ws.close()
    wait_until(lambda: world.hub.viewers("cam1") == 0, 5, "viewers gone")
    left = time.monotonic()
    idle(world)
    lingered = time.monotonic() - left
    assert lingered >= 0.7, f"the feed stopped {lingered:.2f} s after the last viewer (linger 1 s)"
    assert world.hub.stops_sent - stops == 1


def test_viewers_without_the_right_grant_are_refused(world: World) -> None:
    token = session(world.base)
    playback = grant(world.base, token, ["cam1"], "playback")
    cases = [
        ({"grant": "x"}, "unauthenticated"),
        ({"session": token}, "grant_required"),
        ({"session": token, "grant": grant(world.base, token, ["cam2"])["token"]}, None),
        ({"session": token, "grant": playback["token"]}, None),
        ({"session": token, "grant": "not-a-grant"}, None),
    ]
    reasons = []
    for hello, expected in cases:
        with open_view(world, "cam1", hello) as ws:
            error = closing_message(ws, 5)
        reasons.append(error.get("error"))
        if expected:
            assert error.get("error") == expected, error
    assert reasons[2] == "camera_out_of_scope", reasons
    assert reasons[3] == "operation_not_granted", reasons
    assert reasons[4] and reasons[4] not in ("unauthenticated", "grant_required"), reasons
    g = grant(world.base, token, ["cam1"])
    with open_view(world, "nope", {"session": token, "grant": g["token"]}) as ws:
        assert closing_message(ws, 5).get("error") == "unknown_camera"


def test_revoking_the_grant_closes_the_socket(world: World) -> None:
    token, admin = session(world.base), session(world.base, "wd-admin")
    g = grant(world.base, token, ["cam1"])
    with open_view(world, "cam1", {"session": token, "grant": g["token"]}) as ws:
        data = first_media(ws)
        assert data, "nothing before the revocation"
        r = httpx.post(
            f"{world.base}/api/v1/grants/{g['grant_id']}/revoke",
            headers={"Authorization": f"Bearer {admin}"},
            json={"reason": "test"},
        )
        assert r.status_code == 200, r.text
        revoked = time.monotonic()
        error = closing_message(ws, 15)
        took = time.monotonic() - revoked
    assert error.get("error") == "revoked", error
    assert took < 10, f"closed {took:.1f} s after the revocation"
    rows = audit_rows(world, g["grant_id"])
    actions = [a for a, _ in rows]
    assert actions.count("live_view") == 1 and actions.count("live_view_end") == 1, actions
    end = json.loads(next(d for a, d in rows if a == "live_view_end"))
    assert end["to_us"] > end["from_us"] and end["bytes"] > 0 and end["ended"] == "revoked"


def test_a_device_cannot_feed_another_devices_camera(world: World) -> None:
    dev = world.dev2
    creds = load_credentials(dev.ca_path, dev.cert_path, dev.key_path)
    with grpc_connect(f"127.0.0.1:{world.controller.grpc_port}", creds, 64 * 1024) as channel:
        stub = live_pb2_grpc.LiveStub(channel)
        packets = [
            live_pb2.LivePacket(),
            live_pb2.LivePacket(camera_id="cam1", data=b"\x47" + bytes(187), keyframe=True),
        ]
        with pytest.raises(grpc.RpcError) as caught:
            for _ in stub.Feed(iter(packets), timeout=10):
                pass
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED, caught.value


def test_a_viewer_that_never_reads_is_dropped_and_others_go_on(world: World) -> None:
    token = session(world.base)
    g = grant(world.base, token, ["cam1"])
    stuck = stuck_viewer(world, {"session": token, "grant": g["token"]})
    try:
        with watcher(world)[0] as good:
            wait_until(lambda: world.hub.viewers("cam1") == 2, 5, "both viewers joined")
            deadline = time.monotonic() + 60
            received = 0
            last_data = time.monotonic()
            while world.hub.viewers("cam1") > 1 and time.monotonic() < deadline:
                data, _ = read_media(good, 0.5)
                received += len(data)
                if data:
                    last_data = time.monotonic()
                # a stall behind the stuck viewer lasts until it is dropped (many seconds); a
                # loaded machine may leave one half-second window empty
                stalled = time.monotonic() - last_data
                assert stalled < 3.0, "the good viewer stalled while the other one was stuck"
            assert world.hub.viewers("cam1") == 1, "the stuck viewer was never dropped"
            after, _ = read_media(good, 1.5)
            assert received and decode(after[after.find(b"\x47") :] if after else b"") is not None
            assert len(after) > 10_000, "the good viewer stopped after the drop"
    finally:
        stuck.close()


def stuck_viewer(world: World, hello: dict[str, str]) -> socket.socket:
    """A WebSocket client on a tiny receive buffer that sends its hello and never reads."""
    host, port = world.base.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    sock.sendall(
        (
            "GET /api/v1/live/cam1/ws HTTP/1.1\r\n"
            f"Host: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    reply = b""
    while b"\r\n\r\n" not in reply:
        reply += sock.recv(1)
    assert b" 101 " in reply, reply
    payload = json.dumps(hello).encode()
    header = bytes([0x81, 0xFE]) + len(payload).to_bytes(2, "big") + b"\x00\x00\x00\x00"
    sock.sendall(header + payload)  # masked with a zero key: the payload goes as it is
    threading.Event().wait(0.2)
    return sock


def test_a_stopped_camera_reads_offline_and_live_again_when_it_returns(world: World) -> None:
    ws, _ = watcher(world)
    with ws:
        data = first_media(ws)
        assert data
        world.cams.client.stop(1)
        stopped = time.monotonic()
        states: list[str] = []
        while "camera_offline" not in states and time.monotonic() - stopped < 15:
            states += [t["state"] for t in read_media(ws, 0.5)[1] if "state" in t]
        took = time.monotonic() - stopped
        assert "camera_offline" in states, states
        assert took < 10, f"offline shown {took:.1f} s after the camera stopped"
        world.cams.client.start(1)
        resumed = bytearray()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk, texts = read_media(ws, 0.5)
            resumed += chunk
            if [t for t in texts if t.get("state") == "live"] and len(resumed) > 20_000:
                break
        frames = decode(bytes(resumed))
        assert frames and frames[0].key_frame, "the feed did not resume at a keyframe"


def test_the_agent_as_wired_feeds_live_on_its_control_route(world: World) -> None:
    """dev2 built by `wire_components` (leased uplink, as `vigil-agent run` does): its live
    feed rides the control route's channel, and its camera plays."""
    config = AgentConfig(
        device_id="dev2",
        data_dir=str(world.tmp / "agent2"),
        cameras=[CameraConfig(id="cam3", url=world.cams.url(1), segment_seconds=2.0)],
        buffer=BufferConfig(quota_bytes=64 * 1024 * 1024),
        uplink=uplink_config(world.controller.grpc_port, world.dev2),
    )
    clock = SystemClock()
    settings = CaptureSettings(state_dir=world.tmp / "agent2" / "capture", backoff_cap_s=1.0)
    agent = Agent.open(config, clock, settings)
    try:
        wire_components(agent, config, clock)
        agent.start()
        ws, _ = watcher(world, "cam3")
        with ws:
            data = b""
            deadline = time.monotonic() + 20
            while len(data) < 20_000 and time.monotonic() < deadline:
                data += read_media(ws, 0.5)[0]
        frames = decode(data)
        assert frames and frames[0].key_frame
    finally:
        agent.stop()


def test_a_flood_of_opens_and_closes_leaves_nothing_behind(world: World) -> None:
    idle(world)
    token = session(world.base)
    g = grant(world.base, token, ["cam1"])
    hello = {"session": token, "grant": g["token"]}
    starts = world.live.starts
    for i in range(30):
        ws = connect(f"{world.ws_base}/api/v1/live/cam1/ws", open_timeout=5, legacy=True)
        if i % 3:
            ws.send(json.dumps(hello))  # a third close before saying who they are
            if i % 5 == 0:
                ws.recv(timeout=5)  # some wait for the first message
        ws.close()
    wait_until(lambda: world.hub.viewers("cam1") == 0, 10, "every flooded viewer gone")
    assert world.live.starts - starts <= 2, "the flood restarted the feed again and again"
    idle(world)
    with watcher(world)[0] as ws:
        data = b""
        deadline = time.monotonic() + 10
        while len(data) < 10_000 and time.monotonic() < deadline:
            data += read_media(ws, 0.5)[0]
    assert decode(data)[0].key_frame


def test_an_h265_camera_feeds_hevc_from_a_keyframe(world: World) -> None:
    """The tee remuxes whatever the camera sends (no transcoding): H.265 arrives as H.265."""
    ws, _ = watcher(world, "cam2")
    with ws:
        data, texts = b"", list[dict[str, Any]]()
        deadline = time.monotonic() + 15
        while (len(data) < 20_000 or not texts) and time.monotonic() < deadline:
            chunk, more = read_media(ws, 0.5)
            data, texts = data + chunk, texts + [t for t in more if t.get("state") == "live"]
    assert texts and texts[-1]["codec"] == "hevc", texts  # the console warns browsers without HEVC
    with av.open(io.BytesIO(data), mode="r", format="mpegts") as container:
        assert container.streams.video[0].codec_context.name == "hevc"
        frames = list(container.decode(video=0))
    assert frames and frames[0].key_frame


def test_the_feed_follows_a_moved_control_route(world: World) -> None:
    address = f"127.0.0.1:{world.controller.grpc_port}"
    opened = world.live.streams_opened
    world.live.route_moved(address)  # the route is where the stream is: nothing to do
    time.sleep(0.5)
    assert world.live.streams_opened == opened and world.live.connected.is_set()
    world.live.route_moved("ctl2.city.local:7443")  # a new leader: leave this replica
    wait_until(lambda: world.live.streams_opened > opened, 10, "the feed reopened")
    wait_until(world.live.connected.is_set, 10, "the feed connected again")
    with watcher(world)[0] as ws:
        data = b""
        deadline = time.monotonic() + 10
        while len(data) < 10_000 and time.monotonic() < deadline:
            data += read_media(ws, 0.5)[0]
    assert decode(data)[0].key_frame


def test_an_expiring_grant_closes_the_socket_unless_renewed(world: World) -> None:
    token = session(world.base)
    now = int(time.time() * 1e6)
    body = {
        "operations": ["live"],
        "cameras": ["cam1"],
        "from_us": now - 60_000_000,
        "to_us": now + 3_600_000_000,
        "purpose": "expiry test",
        "lifetime_s": 3,
    }
    auth = {"Authorization": f"Bearer {token}"}
    short, renewed_one = (
        httpx.post(f"{world.base}/api/v1/grants", headers=auth, json=body).json() for _ in range(2)
    )
    with (
        open_view(world, "cam1", {"session": token, "grant": short["token"]}) as expiring,
        open_view(world, "cam1", {"session": token, "grant": renewed_one["token"]}) as renewed,
    ):
        r = httpx.post(
            f"{world.base}/api/v1/grants/renew", headers=auth, json={"token": renewed_one["token"]}
        )
        assert r.status_code == 200, r.text
        renewed.send(json.dumps({"grant": r.json()["token"]}))
        error = closing_message(expiring, 12)
        assert error.get("error") == "expired", error
        data, texts = read_media(renewed, 2.5)  # a re-check past the old expiry: still on
        assert data and not [t for t in texts if "error" in t], texts
    with open_view(world, "cam1", {"session": token, "grant": short["token"]}) as late:
        assert closing_message(late, 5).get("error") == "expired"
