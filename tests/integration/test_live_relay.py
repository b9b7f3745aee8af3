"""Live view across replicas, every part real: two controller replicas on one PostgreSQL, the
leader (`vigil-controller serve`, a subprocess so it can be killed -9) fed by a real agent
capturing a camsim camera, and console viewers (WebSocket and HLS) on the follower, which
relays the feed from the leader over `LiveRelay/Watch` (mutual TLS, the replicas' own
certificate).

Each test can fail on the code before the relay: the follower answered agent_unreachable.
The frames are decoded with PyAV (they must start at a keyframe); the agent's own count of
start commands shows one stream crossed the village link for all the follower's viewers;
the audit rows are read from the shared database.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import av
import grpc
import httpx
import pytest
from prometheus_client import generate_latest
from sqlalchemy import text
from websockets.sync.client import ClientConnection, connect

from controller.api.component import HttpComponent
from controller.assembly import Controller, Parts, build_controller
from controller.clock import SystemClock as ControllerClock
from controller.grants.keys import ensure_keys
from controller.grants.policy import default_policy
from controller.live.feed import LiveOptions
from controller.users import create_user
from edge_agent.app import Agent
from edge_agent.live import LiveClient
from protos.vigil.v1 import live_relay_pb2, live_relay_pb2_grpc
from tests.fixtures.camsim import TEST_DEFAULTS
from tests.fixtures.postgres import PgServer
from tests.integration.controller_proc import (
    ControllerProcess,
    DeviceCreds,
    free_low_port,
    issue_device,
    make_config,
    prepare_data_dir,
    register,
)
from tests.integration.test_live_view import (
    PASSWORD,
    decode,
    first_media,
    grant,
    live_agent,
    read_media,
    session,
)
from tests.support import wait_until
from vigil_camsim.launcher import CamsimProcess, check_gstreamer

pytestmark = pytest.mark.postgres

WATCH = "/vigil.v1.LiveRelay/Watch"


@dataclass
class City:
    leader: ControllerProcess  # holds the feed: the agent's control route points here
    follower: Controller  # the console viewers' replica
    http: HttpComponent
    agent: Agent
    live: LiveClient
    dev: DeviceCreds
    pki: Path
    pg_url: str
    route: list[str]  # the agent's control route (what moves when another replica leads)

    @property
    def base(self) -> str:
        return self.http.base_url

    @property
    def leader_address(self) -> str:
        return f"127.0.0.1:{self.leader.port}"


@pytest.fixture(scope="module")
def city(pg_server: PgServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[City]:
    problem = check_gstreamer()
    if problem is not None:
        pytest.fail(f"camsim cannot run: {problem}", pytrace=False)
    tmp = tmp_path_factory.mktemp("relay")
    pg_url = pg_server.create_database()
    site = tmp / "city"
    prepare_data_dir(site)
    ensure_keys(site)
    pki = site / "pki"
    tls = {
        "server_cert": str(pki / "server.crt"),
        "server_key": str(pki / "server.key"),
        "ca_cert": str(pki / "ca.crt"),
    }
    port_a = free_low_port()
    leader = ControllerProcess(
        site, tmp, port=port_a, database_url=pg_url, storage_url=f"file://{tmp / 'objects'}",
        grpc=tls, live={"linger_s": 1.0},
        cluster={"enabled": True, "replica_id": "a", "advertise": f"127.0.0.1:{port_a}",
                 "lease_s": 3.0, "renew_s": 1.0},
    )  # fmt: skip
    follower: Controller | None = None
    cams: CamsimProcess | None = None
    agent: Agent | None = None
    try:
        leader.start()
        register(site, "dev1", ["cam1"], url=pg_url)
        dev = issue_device(site, "dev1", tmp / "dev1-certs")
        wait_until(lambda: leader_holder(pg_url) == "a", 20, "replica a to lead")
        port_b = free_low_port()
        config = make_config(
            tmp / "b", port_b, database_url=pg_url, storage_url=f"file://{tmp / 'objects'}",
            grpc=tls, http={"enabled": True, "listen": "127.0.0.1:0"},
            cluster={"enabled": True, "replica_id": "b", "advertise": f"127.0.0.1:{port_b}",
                     "lease_s": 3.0, "renew_s": 1.0},
        )  # fmt: skip
        follower = build_controller(config, ControllerClock(), Parts(http=True))
        assert follower.live is not None and follower.relay is not None
        follower.live.options = LiveOptions(linger_s=1.0, viewer_chunks=100)
        follower.start()
        assert not follower.leadership.is_leader()
        wait_until(
            lambda: follower.leadership.leader_address() == f"127.0.0.1:{port_a}",
            10,
            "the follower to know the leader",
        )
        clock = ControllerClock()
        for user, role in (("wd-op", "operator"), ("wd-admin", "admin")):
            policy = default_policy()
            create_user(follower.engine, clock, user, "wudu", role, PASSWORD, policy=policy)
        cams = CamsimProcess.start(1, **{**TEST_DEFAULTS, "log_path": tmp / "camsim.log"})
        route = [f"127.0.0.1:{port_a}"]
        agent, live = live_agent(tmp, dev, port_a, cams, ("cam1",), lambda: route[0])
        wait_until(
            lambda: any(s.camera_id == "cam1" and s.connected for s in agent.statuses()),
            30,
            "cam1 streaming at the agent",
        )
        http = next(c for c in follower.components if isinstance(c, HttpComponent))
        yield City(leader, follower, http, agent, live, dev, pki, pg_url, route)
    finally:
        if agent is not None:
            agent.stop()
        if cams is not None:
            cams.stop()
        if follower is not None:
            follower.stop(grace_s=0.5)
        leader.kill9()
        pg_server.drop_database(pg_url)


def leader_holder(pg_url: str) -> str:
    from controller.catalog import make_engine

    engine = make_engine(pg_url)
    try:
        with engine.connect() as conn:
            row = conn.execute(
                text(
                    "SELECT holder FROM leader_lease WHERE name = 'scheduler' AND "
                    "expires_at_us >= CAST(EXTRACT(EPOCH FROM now()) * 1000000 AS BIGINT)"
                )
            ).first()
    finally:
        engine.dispose()
    return "" if row is None else str(row[0])


def view(city: City, camera: str = "cam1") -> tuple[ClientConnection, str]:
    token = session(city.base)
    g = grant(city.base, token, [camera])
    ws = connect(
        f"{city.base.replace('http://', 'ws://')}/api/v1/live/{camera}/ws",
        max_size=None,
        max_queue=None,
        legacy=True,
    )
    ws.send(json.dumps({"session": token, "grant": g["token"]}))
    return ws, g["grant_id"]


def relay_stub(city: City, cert: Path, key: Path) -> tuple[grpc.Channel, Any]:
    creds = grpc.ssl_channel_credentials(
        (city.pki / "ca.crt").read_bytes(), key.read_bytes(), cert.read_bytes()
    )
    channel = grpc.secure_channel(city.leader_address, creds)
    return channel, live_relay_pb2_grpc.LiveRelayStub(channel)


def as_replica(city: City) -> tuple[grpc.Channel, Any]:
    return relay_stub(city, city.pki / "server.crt", city.pki / "server.key")


def audit(city: City, grant_id: str) -> list[tuple[str, str]]:
    assert city.follower is not None
    with city.follower.engine.connect() as db:
        rows = db.execute(
            text(
                "SELECT action, actor_user FROM audit_entry WHERE grant_id = :g "
                "AND action LIKE 'live_view%' ORDER BY seq"
            ),
            {"g": grant_id},
        ).all()
    return [(str(a), str(u)) for a, u in rows]


def idle(city: City) -> None:
    relay = city.follower.relay
    assert relay is not None and city.follower.live is not None
    wait_until(lambda: not relay.relaying() and not city.follower.live.feeds(), 15, "no relay left")
    wait_until(lambda: not city.agent.live.active(), 15, "the agent's tap stopped")


def test_viewers_on_the_follower_watch_the_leaders_feed_through_one_relay(city: City) -> None:
    relay, hub = city.follower.relay, city.follower.live
    assert relay is not None and hub is not None
    idle(city)
    calls, starts = relay.calls, city.live.starts
    opened = time.monotonic()
    (first, grant_id), (second, _) = view(city), view(city)
    with first, second:
        data = first_media(first, 15)
        assert data, "no video reached the follower's viewer"
        print(f"relayed: first video on the follower {time.monotonic() - opened:.2f} s after open")
        frames = decode(data)
        assert frames and frames[0].key_frame, "the relayed feed did not start at a keyframe"
        assert (frames[0].width, frames[0].height) == (320, 180)
        more, texts = read_media(second, 2.0)
        assert more and decode(more[more.find(b"\x47") :]) is not None
        live = [t for t in texts if t.get("state") == "live"]
        assert live and live[-1]["codec"] == "h264", texts
        ages = [(t["now_us"] - t["frame_us"]) / 1000 for t in live]
        print(f"relayed: newest frame's age at the follower {min(ages):.0f}-{max(ages):.0f} ms")
        assert 0 <= live[-1]["now_us"] - live[-1]["frame_us"] < 3_000_000
        assert relay.relaying() == ["cam1"] and hub.viewers("cam1") == 2
        assert relay.calls - calls == 1, "one relay for both viewers"
        scraped = generate_latest(city.follower.registry).decode()
        assert "vigil_live_relayed_feeds 1.0" in scraped
        assert "vigil_live_relay_calls_total" in scraped
        assert city.live.starts - starts == 1, "the agent got more than one start"
    wait_until(lambda: not relay.relaying(), 10, "the relay to end after the last viewer")
    idle(city)  # and the leader stopped the agent's feed (its own linger)
    # audited once, by the replica the viewer was connected to, as the user who watched
    wait_until(lambda: len(audit(city, grant_id)) >= 2, 10, "the end of the view audited")
    assert audit(city, grant_id) == [("live_view", "wd-op"), ("live_view_end", "wd-op")]


def test_a_browser_without_mse_plays_the_relayed_feed_as_hls(city: City) -> None:
    token = session(city.base)
    g = grant(city.base, token, ["cam1"])
    path = f"/api/v1/live/cam1/hls/index.m3u8?session={quote(token)}&grant={quote(g['token'])}"
    deadline = time.monotonic() + 30
    r = httpx.get(city.base + path, timeout=15)
    while r.status_code == 503 and time.monotonic() < deadline:
        r = httpx.get(city.base + path, timeout=15)
    assert r.status_code == 200, r.text
    uris = [ln for ln in r.text.splitlines() if ln and not ln.startswith("#")]
    seg = httpx.get(f"{city.base}/api/v1/live/cam1/hls/{uris[-1]}", timeout=10)
    assert seg.status_code == 200
    with av.open(io.BytesIO(seg.content), mode="r", format="mpegts") as container:
        frames = list(container.decode(video=0))
    assert frames and frames[0].key_frame


def test_an_agent_certificate_cannot_relay(city: City) -> None:
    channel, stub = relay_stub(city, city.dev.cert_path, city.dev.key_path)
    with channel, pytest.raises(grpc.RpcError) as caught:
        next(iter(stub.Watch(live_relay_pb2.RelayRequest(camera_id="cam1"), timeout=10)))
    assert caught.value.code() is grpc.StatusCode.PERMISSION_DENIED, caught.value
    assert "controller replica" in (caught.value.details() or "")


def test_bad_relay_requests_get_clear_errors_and_the_holder_goes_on(city: City) -> None:
    channel, stub = as_replica(city)
    with channel:
        cases: list[tuple[str, grpc.StatusCode, str]] = [
            ("nope", grpc.StatusCode.NOT_FOUND, "unknown camera"),
            ("", grpc.StatusCode.INVALID_ARGUMENT, "camera_id"),
            ("c" * 200, grpc.StatusCode.INVALID_ARGUMENT, "camera_id"),
            ("cam\x00", grpc.StatusCode.INVALID_ARGUMENT, "camera_id"),
        ]
        for camera, code, words in cases:
            with pytest.raises(grpc.RpcError) as caught:
                next(iter(stub.Watch(live_relay_pb2.RelayRequest(camera_id=camera), timeout=10)))
            assert caught.value.code() is code, (camera[:20], caught.value)
            assert words in (caught.value.details() or ""), caught.value
        raw = channel.unary_stream(WATCH)  # bytes as they are: no serializer
        for payload, code, words in (
            # not a protobuf message: grpc.aio's own answer names the message type
            (b"\xff\xff\xff", grpc.StatusCode.UNKNOWN, "RelayRequest"),
            (bytes(6 * 1024 * 1024), grpc.StatusCode.RESOURCE_EXHAUSTED, "larger than max"),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                next(iter(raw(payload, timeout=10)))
            assert caught.value.code() is code, caught.value
            assert words in (caught.value.details() or ""), caught.value
        # still serving: a replica's relay of cam1 gets the feed's state, then its chunks
        packets = stub.Watch(live_relay_pb2.RelayRequest(camera_id="cam1"), timeout=20)
        got = 0
        for packet in packets:
            got += sum(len(c) for c in packet.chunks)
            if got > 20_000:
                break
        packets.cancel()
    assert got > 20_000 and city.leader.alive()


def media_for(ws: ClientConnection, seconds: float, least: int = 20_000) -> bytes:
    data = b""
    deadline = time.monotonic() + seconds
    while len(data) < least and time.monotonic() < deadline:
        data += read_media(ws, 0.5)[0]
    return data


def test_the_agents_stream_moving_here_takes_over_and_moving_away_relays_again(
    city: City,
) -> None:
    """What a change of leader does to the agent's Feed stream, both ways, under a viewer."""
    relay, hub = city.follower.relay, city.follower.live
    assert relay is not None and hub is not None
    follower = f"127.0.0.1:{city.follower.grpc_port}"
    ws, _ = view(city)
    try:
        assert media_for(ws, 15), "no relayed video"
        assert relay.relaying() == ["cam1"]
        city.route[0] = follower
        city.live.route_moved(follower)  # the agent now feeds the follower itself
        wait_until(lambda: not relay.relaying(), 10, "the relay to give way to the agent")
        data = media_for(ws, 15)
        assert data and decode(data[data.find(b"\x47") :]), "no video from the local stream"
        calls = relay.calls
        city.route[0] = city.leader_address
        city.live.route_moved(city.leader_address)  # and back: relayed from the leader again
        wait_until(lambda: relay.calls > calls, 10, "the relay to start again")
        data = media_for(ws, 15)
        assert data and decode(data[data.find(b"\x47") :]), "no video relayed again"
        assert relay.relaying() == ["cam1"]
    finally:
        ws.close()


def test_the_holder_killed_the_follower_viewers_are_told_and_the_follower_goes_on(
    city: City,
) -> None:
    relay = city.follower.relay
    assert relay is not None
    ws, _ = view(city)
    with ws:
        assert first_media(ws, 15), "no video before the kill"
        city.leader.kill9()
        killed = time.monotonic()
        said: list[dict[str, Any]] = []
        while time.monotonic() - killed < 10:
            said += [t for t in read_media(ws, 0.5)[1] if t.get("state") == "agent_unreachable"]
            if any("副本" in t["detail"] for t in said):
                break
        took = time.monotonic() - killed
        print(f"holder killed -9: the follower's viewer told {took:.2f} s later: {said[-1]}")
        assert any(city.leader_address in t["detail"] for t in said), said
        assert took < 5, f"told {took:.1f} s after the kill"
        # the follower goes on: it takes over the lead, keeps the viewer, and serves new ones
        wait_until(city.follower.leadership.is_leader, 15, "the follower to lead")
        _, texts = read_media(ws, 2.0)
        assert [t for t in texts if t.get("state") == "agent_unreachable"], texts
    with view(city)[0] as again:
        _, texts = read_media(again, 2.5)
    assert [t for t in texts if t.get("state") == "agent_unreachable"], texts
    r = httpx.get(f"{city.base}/healthz", timeout=5)
    assert r.status_code == 200
