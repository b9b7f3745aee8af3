"""A GB/T 28181 channel watched from the replica its device did not register to: two
controller replicas on one PostgreSQL, SIPp as the NVR registered to replica A (a follower),
a WebSocket viewer on replica B (the scheduler leader). B relays the channel from A, the
replica `gb_device.replica` names (not from the leader, which is B itself); A INVITEs the
NVR once for the viewer and its PS/RTP (from GStreamer) reaches the viewer on B as MPEG-TS
that decodes. Before the relay B answered agent_unreachable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.sync.client import connect

from controller.api.component import HttpComponent
from controller.assembly import Controller, Parts, build_controller
from controller.clock import SystemClock
from controller.gb28181.devstore import GbDeviceStore
from controller.gb28181.manscdp import Channel
from controller.grants.keys import ensure_keys
from controller.grants.policy import default_policy
from controller.live.feed import LiveOptions
from controller.users import create_user
from tests.fixtures.postgres import PgServer
from tests.integration.controller_proc import free_low_port, make_config, prepare_data_dir
from tests.integration.gb_device_support import REALM, PacedPs, make_ps, sipp_device
from tests.integration.test_gb28181_support import free_udp_port
from tests.integration.test_live_view import PASSWORD, decode, grant, read_media, session
from tests.support import wait_until

pytestmark = pytest.mark.postgres

SERVER_ID = "62120000002000000007"
NVR = "62120200001110000071"
CH1 = "62120200001310000711"


def replica(
    name: str, data: Path, pki: Path, pg_url: str, objects: Path, **more: Any
) -> Controller:
    port = free_low_port()
    tls = {
        "server_cert": str(pki / "server.crt"),
        "server_key": str(pki / "server.key"),
        "ca_cert": str(pki / "ca.crt"),
    }
    config = make_config(
        data, port, database_url=pg_url, storage_url=f"file://{objects}", grpc=tls,
        live={"linger_s": 1.0},
        cluster={"enabled": True, "replica_id": name, "advertise": f"127.0.0.1:{port}",
                 "lease_s": 3.0, "renew_s": 1.0},
        **more,
    )  # fmt: skip
    controller = build_controller(config, SystemClock(), Parts(http="http" in more))
    assert controller.live is not None
    controller.live.options = LiveOptions(linger_s=1.0, viewer_chunks=200)
    controller.start()
    return controller


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


def test_a_gb_channel_is_relayed_from_the_replica_its_device_registered_to(
    pg_url: str, tmp_path: Path
) -> None:
    city, other = tmp_path / "a", tmp_path / "b"
    prepare_data_dir(city)
    ensure_keys(city)
    ensure_keys(other)  # B starts first and publishes its keys; A takes them
    objects = tmp_path / "objects"
    sip_port = free_udp_port()
    b = replica("b", other, city / "pki", pg_url, objects, http={"listen": "127.0.0.1:0"})
    a: Controller | None = None
    proc = sender = None
    try:
        wait_until(b.leadership.is_leader, 10, "replica b to lead")
        store = GbDeviceStore(b.engine, SystemClock())
        password = store.issue(NVR, "wudu", "东关村", REALM)
        store.set_channels(NVR, [Channel(CH1, "东门")])
        create_user(b.engine, SystemClock(), "wd-op", "wudu", "operator", PASSWORD,
                    policy=default_policy())  # fmt: skip
        a = replica(
            "a", city, city / "pki", pg_url, objects,
            gb28181={"enabled": True, "listen": f"127.0.0.1:{sip_port}", "server_id": SERVER_ID,
                     "invite_answer_s": 2.0},
        )  # fmt: skip
        assert a.gb28181 is not None and a.gb28181.recording is not None
        supervisor = a.gb28181.recording
        proc = sipp_device(sip_port, tmp_path, "device_ooc_media.xml", tmp_path / "nvr.log",
                           NVR, password, SERVER_ID)  # fmt: skip
        wait_until(lambda: NVR in supervisor.access.devices, 20, "the NVR registered to A")
        source = make_ps(tmp_path / "live.ps", 250)  # 10 s at 25 fps
        base = next(c for c in b.components if isinstance(c, HttpComponent)).base_url
        token = session(base)
        ws = connect(f"{base.replace('http://', 'ws://')}/api/v1/live/{CH1}/ws",
                     max_size=None, max_queue=None, legacy=True)  # fmt: skip
        with ws:
            ws.send(json.dumps({"session": token, "grant": grant(base, token, [CH1])["token"]}))

            def play() -> Any:
                ch = supervisor.channels.get((NVR, CH1))
                return None if ch is None else ch.play

            wait_until(lambda: play() is not None, 15, "A to INVITE the NVR for B's viewer")
            sender = PacedPs(source, play().port, play().ssrc)
            sender.start()
            data = b""
            texts: list[dict[str, Any]] = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (
                len(data) < 60_000 or not [t for t in texts if t.get("state") == "live"]
            ):
                got, said = read_media(ws, 0.5)
                data, texts = data + got, texts + said
        frames = decode(data)
        assert len(frames) >= 10 and frames[0].key_frame, len(frames)
        assert [t for t in texts if t.get("state") == "live"], texts
        assert b.relay is not None and b.relay.calls >= 1
        assert b.live is not None and b.live.starts_sent == 0  # B asked no device itself
    finally:
        if sender is not None:
            sender.stop()
        if proc is not None:
            proc.kill()
            proc.wait(10)
        if a is not None:
            a.stop(grace_s=0.5)
        b.stop(grace_s=0.5)
