"""A leased agent with two controller replicas in a real cluster (PostgreSQL leader election).

Two controllers share one PostgreSQL database (catalog and the leadership lease row) and one
object store, each with its own staging directory and `[cluster] advertise` address. The
agent lists the follower first: its uploads go there (its home replica: ingest runs on every
replica), while its control channel is redirected by the follower's FAILED_PRECONDITION +
`vigil-leader` to the leader, which hands out the leases. When the leader stops, the other
replica takes over and the agent's control channel follows; every segment is stored once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.assembly import Controller, Parts, build_controller
from controller.clock import SystemClock as ControllerClock
from edge_agent.clock import SystemClock
from edge_agent.config import UplinkConfig
from edge_agent.leases import LeaseClientOptions, leased_uplink
from edge_agent.store import SegmentBuffer
from edge_agent.uplink import RetryPolicy
from tests.fixtures.postgres import PgServer
from tests.integration.controller_proc import (
    free_low_port,
    issue_device,
    make_config,
    prepare_data_dir,
    register,
)
from tests.integration.test_agent_control_support import FAST
from tests.integration.test_uplink_support import (
    QUOTA,
    catalog_rows,
    local_store,
    verify_delivery,
    write_segments,
)
from tests.support import wait_until

pytestmark = pytest.mark.postgres

AGENT = LeaseClientOptions(
    inventory_interval_s=0.5, change_poll_s=0.2, backoff_initial_s=0.1, backoff_cap_s=0.5,
    settle_s=5.0,
)  # fmt: skip


@pytest.fixture
def pg_db(pg_server: PgServer) -> Iterator[str]:
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


class ClusterReplica:
    """A clustered controller on a fixed port with the city PKI of `pki_dir`."""

    def __init__(self, pg_db: str, data_dir: Path, pki_dir: Path, objects: Path, name: str):
        self.port = free_low_port()
        self.name = name
        self.config = make_config(
            data_dir,
            self.port,
            database_url=pg_db,
            storage_url=f"file://{objects}",
            grpc={
                "server_cert": str(pki_dir / "server.crt"),
                "server_key": str(pki_dir / "server.key"),
                "ca_cert": str(pki_dir / "ca.crt"),
            },
            cluster={
                "enabled": True,
                "replica_id": name,
                "advertise": f"127.0.0.1:{self.port}",
                "lease_s": 3.0,
                "renew_s": 1.0,
            },
        )
        self.controller: Controller | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> ClusterReplica:
        self.controller = build_controller(self.config, ControllerClock(), Parts(scheduler=FAST))
        self.controller.start()
        return self

    def leads(self) -> bool:
        return self.controller is not None and self.controller.leadership.is_leader()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop(grace_s=0.5)
            self.controller = None


def test_agent_uploads_home_leases_from_the_leader_and_follows_a_takeover(
    pg_db: str, tmp_path: Path
) -> None:
    city = tmp_path / "city"
    prepare_data_dir(city)  # the PKI both replicas serve with
    objects = tmp_path / "objects"
    a = ClusterReplica(pg_db, city, city / "pki", objects, "replica-a")
    b = ClusterReplica(pg_db, tmp_path / "b", city / "pki", objects, "replica-b")
    buffer = SegmentBuffer.open(tmp_path / "agent-buffer", QUOTA, SystemClock())
    try:
        a.start()  # first up: the leader
        wait_until(a.leads, 10, "replica A to lead")
        b.start()
        assert not b.leads()
        register(city, "dev1", ["cam1"], url=pg_db)
        dev = issue_device(city, "dev1", tmp_path / "dev1-certs")
        cfg = UplinkConfig(
            controllers=[b.address, a.address],  # the follower is the agent's home replica
            ca_cert=str(dev.ca_path),
            client_cert=str(dev.cert_path),
            client_key=str(dev.key_path),
            chunk_bytes=32 * 1024,
        )
        first = write_segments(buffer, "cam1", 4, size=60_000)
        uploader, leases = leased_uplink(
            "dev1", cfg, buffer, SystemClock(), lambda _e: None, cameras=["cam1"],
            options=AGENT, policy=RetryPolicy(initial_s=0.1, cap_s=0.5, park_s=3600),
        )  # fmt: skip
        uploader.start()
        leases.start()
        try:
            wait_until(lambda: buffer.stats().unsent_segments == 0, 40, "uploads under leases")
            assert leases.control.route.current() == a.address  # redirected to the leader
            assert leases.counters["redirects"] >= 1
            upload_route = uploader.sender.route.snapshot()  # type: ignore[attr-defined]
            assert upload_route.address == b.address and upload_route.failovers == 0

            a.stop()  # the leader goes away: B takes over within the lease
            wait_until(b.leads, 10, "replica B to take over")
            later = write_segments(buffer, "cam1", 3, size=60_000)
            wait_until(lambda: buffer.stats().unsent_segments == 0, 40, "uploads after takeover")
            assert leases.control.route.current() == b.address
        finally:
            leases.stop()
            uploader.stop()
            uploader.sender.close()  # type: ignore[attr-defined]
        assert b.controller is not None
        rows = verify_delivery(buffer, b.controller.catalog, local_store(tmp_path), ("cam1",))
        expected = {i.segment_id for i in first + later}
        assert set(rows) == expected
        assert set(catalog_rows(b.controller.catalog, ("cam1",))) == expected
    finally:
        buffer.close()
        b.stop()
        a.stop()
