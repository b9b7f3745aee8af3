"""Two `vigil-controller serve` replicas on one PostgreSQL and one SeaweedFS, a real leased
agent listing both; the leader (also the agent's upload replica) is killed -9 mid-upload.

- the other replica leads within 10 s;
- the agent's lease stream and uploads move to it (follower redirect, upload failover);
- every segment ends up stored exactly once, with its hash, in S3 and the catalog.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from controller.catalog import Catalog, make_engine
from controller.clock import SystemClock as ControllerClock
from controller.storage import open_store
from edge_agent.clock import SystemClock
from edge_agent.config import UplinkConfig
from edge_agent.leases import LeaseClientOptions, leased_uplink
from edge_agent.store import SegmentBuffer
from edge_agent.uplink import RetryPolicy
from tests.fixtures.postgres import PgServer
from tests.fixtures.seaweedfs import SeaweedFS
from tests.integration.controller_proc import (
    ControllerProcess,
    issue_device,
    prepare_data_dir,
    register,
)
from tests.integration.test_uplink_support import QUOTA, verify_delivery, write_segments
from tests.support import wait_until

pytestmark = pytest.mark.postgres

SEGMENTS = 6
SIZE = 1_000_000  # at the 2 Mbit/s the plan gives the device: 4 s per segment


@pytest.fixture
def pg_db(pg_server: PgServer) -> Iterator[str]:
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


def leader_row(engine: Engine) -> tuple[str, int] | None:
    """(holder, epoch) of the unexpired scheduler lease, on the database's clock."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT holder, epoch FROM leader_lease WHERE name = 'scheduler' AND "
                "expires_at_us >= CAST(EXTRACT(EPOCH FROM now()) * 1000000 AS BIGINT)"
            )
        ).first()
    return None if row is None else (str(row[0]), int(row[1]))


def test_leader_killed_mid_upload_another_leads_and_every_segment_is_stored_once(
    pg_db: str, seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    site = tmp_path / "city"
    prepare_data_dir(site)
    engine = make_engine(pg_db)  # migrates the new database
    register(site, "dev1", ["cam1"], url=pg_db)
    dev = issue_device(site, "dev1", tmp_path / "dev1-certs")
    bucket = seaweedfs.new_bucket_name()
    storage = (
        f"s3://{bucket}?endpoint={seaweedfs.endpoint_url}"
        f"&access_key={seaweedfs.access_key}&secret_key={seaweedfs.secret_key}"
    )
    pki = site / "pki"

    def replica(name: str) -> ControllerProcess:
        return ControllerProcess(
            tmp_path / name,
            tmp_path,
            database_url=pg_db,
            storage_url=storage,
            grpc={
                "server_cert": str(pki / "server.crt"),
                "server_key": str(pki / "server.key"),
                "ca_cert": str(pki / "ca.crt"),
            },
            scheduler={"default_link_bps": 2_000_000, "replan_interval_s": 1.0},
            cluster={"enabled": True, "replica_id": name},
        )

    a, b = replica("a"), replica("b")
    buffer = SegmentBuffer.open(tmp_path / "agent-buffer", QUOTA, SystemClock())
    uploader = leases = None
    try:
        a.start()
        wait_until(lambda: leader_row(engine) == ("a", 1), 20, "replica a to lead")
        b.start()
        infos = write_segments(buffer, "cam1", SEGMENTS, size=SIZE, jitter=False)
        cfg = UplinkConfig(
            controllers=[f"127.0.0.1:{a.port}", f"127.0.0.1:{b.port}"],
            ca_cert=str(dev.ca_path),
            client_cert=str(dev.cert_path),
            client_key=str(dev.key_path),
            rate_bps=2_000_000,
            chunk_bytes=32 * 1024,
        )
        uploader, leases = leased_uplink(
            "dev1",
            cfg,
            buffer,
            SystemClock(),
            lambda _e: None,
            cameras=("cam1",),
            options=LeaseClientOptions(
                inventory_interval_s=0.5,
                change_poll_s=0.2,
                backoff_initial_s=0.1,
                backoff_cap_s=0.5,
                settle_s=5.0,
            ),  # fmt: skip
            policy=RetryPolicy(initial_s=0.1, cap_s=0.5, park_s=3600.0),
        )
        uploader.start()
        leases.start()

        # Uploads stream straight into the store now (no local part file on `a` to watch):
        # once one segment is stored, the next is under way at 2 Mbit/s for ~4 s, so 1.5 s
        # later `a` is killed in the middle of it.
        wait_until(lambda: buffer.stats().unsent_segments < SEGMENTS, 60, "one segment stored")
        time.sleep(1.5)
        assert buffer.stats().unsent_segments > 0, "every segment went before the kill"
        killed = time.monotonic()
        a.kill9()
        wait_until(lambda: (leader_row(engine) or ("", 0))[0] == "b", 10,
                   "replica b to lead within 10 s of the leader's kill -9")  # fmt: skip
        took = time.monotonic() - killed
        assert leader_row(engine) == ("b", 2)
        wait_until(lambda: buffer.stats().unsent_segments == 0, 90, "every segment uploaded")
        print(f"new leader {took:.2f} s after kill -9; all uploaded "
              f"{time.monotonic() - killed:.1f} s after it")  # fmt: skip
        assert leases.counters["leases"] >= 2  # from a, then from b
        assert leases.control.route.current() == f"127.0.0.1:{b.port}"
        catalog = Catalog(engine, ControllerClock())
        rows = verify_delivery(buffer, catalog, open_store(storage), ("cam1",))
        assert sorted(rows) == sorted(i.segment_id for i in infos)
        assert all(rows[i.segment_id].sha256 == i.sha256 for i in infos)
        assert len(list(open_store(storage).list_keys(""))) == SEGMENTS
    finally:
        if leases is not None:
            leases.stop()
        if uploader is not None:
            uploader.stop()
        buffer.close()
        a.kill9()
        b.stop()
        engine.dispose()
