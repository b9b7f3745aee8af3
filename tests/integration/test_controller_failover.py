"""An agent with several controller addresses against real controller replicas.

Two controllers built in this process on two ports share one catalog (SQLite) and one object
store, each with its own staging directory, as replicas on a shared PostgreSQL and S3 store
do. The agent is the real one: SegmentBuffer on disk, the failover upload client and the
Uploader; for the control route, the real LeaseClient over `leased_uplink`. The follower is a
small real gRPC server (mutual TLS with the city's server certificate) that refuses every
AgentControl call the way a follower replica does: FAILED_PRECONDITION with the leader's
address in the `vigil-leader` trailing metadata. It tests the agent's side of that contract.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.clock import SystemClock
from edge_agent.leases.source import FinishedLease
from edge_agent.store import SegmentBuffer
from edge_agent.uplink import FailoverIngestClient, Outcome, open_client
from edge_agent.uplink.client import load_credentials
from edge_agent.uplink.routing import ChannelPool, failover_client
from tests.integration.controller_proc import staged_size
from tests.integration.test_agent_control_support import FAST, scheduled_controller
from tests.integration.test_controller_failover_support import (
    FAST_LEASES,
    FollowerServer,
    Relay,
    Replica,
    agent_uploader,
    dead_address,
    lease_client,
    uplink,
)
from tests.integration.test_uplink_support import (
    QUOTA,
    Site,
    catalog_rows,
    local_store,
    make_site,
    open_catalog,
    verify_delivery,
    write_segments,
)
from tests.support import wait_until


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path, cameras=("cam1",))


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[SegmentBuffer]:
    buf = SegmentBuffer.open(tmp_path / "agent-buffer", QUOTA, SystemClock())
    yield buf
    buf.close()


@pytest.fixture
def replicas(site: Site, tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    a = Replica(site.data_dir, site.data_dir)
    b = Replica(site.data_dir, tmp_path / "replica-b")
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


# -- uploads ---------------------------------------------------------------------------------


def test_first_address_down_the_agent_uploads_via_the_second(
    site: Site, buffer: SegmentBuffer, replicas: tuple[Replica, Replica]
) -> None:
    _, b = replicas
    b.start()
    write_segments(buffer, "cam1", 4, size=100_000)
    down = dead_address()
    client = open_client(uplink(site, [down, b.address]), SystemClock())
    uploader = agent_uploader(buffer, client)
    uploader.start()
    try:
        wait_until(lambda: buffer.stats().unsent_segments == 0, 30, "uploads via the second")
    finally:
        uploader.stop()
        client.close()
    route = client.route.snapshot()
    assert (route.address, route.failovers, route.failures) == (b.address, 1, 0)
    catalog, engine = open_catalog(site.data_dir)
    try:
        rows = verify_delivery(buffer, catalog, local_store(site.data_dir), site.cameras)
    finally:
        engine.dispose()
    assert len(rows) == 4
    assert uploader.stats().committed == 4


def test_upload_interrupted_on_one_replica_restarts_on_the_other_and_is_stored_once(
    site: Site, buffer: SegmentBuffer, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    a.start()
    b.start()
    size = 2_000_000
    (info,) = write_segments(buffer, "cam1", 1, size=size, jitter=False)
    # 4 Mbit/s: the 2 MB segment takes ~4 s, long enough to stop its replica mid-upload.
    cfg = uplink(site, [a.address, b.address], rate_bps=4_000_000)
    client = open_client(cfg, SystemClock())
    uploader = agent_uploader(buffer, client)
    uploader.start()
    try:
        wait_until(
            lambda: staged_size(a.own_dir, site.device.device_id, info.segment_id) > 200_000,
            20,
            "part of the segment staged on replica A",
        )
        a.stop()  # the replica goes away mid-upload
        staged_on_a = staged_size(a.own_dir, site.device.device_id, info.segment_id)
        assert 0 < staged_on_a < size
        wait_until(lambda: buffer.stats().unsent_segments == 0, 60, "the segment to commit on B")
    finally:
        uploader.stop()
    stats = uploader.stats()
    assert client.route.current() == b.address and client.route.snapshot().failovers == 1
    # B held nothing of it (its own staging): the whole segment was sent again from 0.
    assert stats.committed == 1 and stats.bytes_sent == size
    catalog, engine = open_catalog(site.data_dir)
    try:
        rows = verify_delivery(buffer, catalog, local_store(site.data_dir), site.cameras)
        assert rows[info.segment_id].sha256 == info.sha256
        assert rows[info.segment_id].size_bytes == size
        # Replica A back with its stale partial: it knows the segment is committed (same
        # id and hash) and stores nothing again.
        a.start()
        again = open_client(uplink(site, [a.address]), SystemClock())
        try:
            offset = again.query_offset(info.segment_id, "cam1")
            assert offset.committed and offset.sha256 == info.sha256
            result = again.upload(info, buffer.path_of(info))
        finally:
            again.close()
        assert result.outcome is Outcome.ALREADY_COMMITTED and result.bytes_sent == 0
        rows = verify_delivery(buffer, catalog, local_store(site.data_dir), site.cameras)
        assert list(rows) == [info.segment_id]
        assert len(list(local_store(site.data_dir).list_keys(""))) == 1
    finally:
        engine.dispose()
        client.close()


def test_a_link_cut_mid_upload_resumes_on_the_same_replica(
    site: Site, buffer: SegmentBuffer, replicas: tuple[Replica, Replica]
) -> None:
    """The replica is fine, the agent's link dropped: the upload resumes where that replica
    left off instead of starting over on the next replica."""
    a, b = replicas
    a.start()
    b.start()
    relay = Relay(a.port)
    size = 2_000_000
    (info,) = write_segments(buffer, "cam1", 1, size=size, jitter=False)
    client = open_client(
        uplink(site, [relay.address, b.address], rate_bps=4_000_000), SystemClock()
    )
    uploader = agent_uploader(buffer, client)
    uploader.start()
    try:
        wait_until(
            lambda: staged_size(a.own_dir, site.device.device_id, info.segment_id) > 300_000,
            20,
            "part of the segment staged on replica A",
        )
        relay.cut()
        wait_until(lambda: buffer.stats().unsent_segments == 0, 60, "the segment to commit")
    finally:
        uploader.stop()
        client.close()
        relay.close()
    stats = uploader.stats()
    assert stats.committed == 1 and stats.retries >= 1
    assert stats.bytes_sent < size  # resumed: only the rest went again
    route = client.route.snapshot()
    assert (route.address, route.failovers) == (relay.address, 0)
    assert staged_size(b.own_dir, site.device.device_id, info.segment_id) == -1  # B never used
    catalog, engine = open_catalog(site.data_dir)
    try:
        rows = verify_delivery(buffer, catalog, local_store(site.data_dir), site.cameras)
    finally:
        engine.dispose()
    assert rows[info.segment_id].sha256 == info.sha256


def test_uploads_return_home_once_it_is_back(
    site: Site, buffer: SegmentBuffer, replicas: tuple[Replica, Replica]
) -> None:
    a, b = replicas
    b.start()
    dev = site.device
    pool = ChannelPool(load_credentials(dev.ca_path, dev.cert_path, dev.key_path), 32 * 1024)
    client: FailoverIngestClient = failover_client(
        [a.address, b.address], pool, 32 * 1024, None, SystemClock(), home_after_s=0.5
    )
    first = write_segments(buffer, "cam1", 1, size=50_000)
    uploader = agent_uploader(buffer, client)
    uploader.start()
    try:
        wait_until(lambda: buffer.stats().unsent_segments == 0, 30, "upload via B")
        assert client.route.current() == b.address
        a.start()
        time.sleep(0.6)  # longer than home_after_s on B
        later = write_segments(buffer, "cam1", 1, size=50_000)
        wait_until(lambda: buffer.stats().unsent_segments == 0, 30, "upload after A is back")
    finally:
        uploader.stop()
        client.close()
    assert client.route.current() == a.address
    catalog, engine = open_catalog(site.data_dir)
    try:
        rows = catalog_rows(catalog, site.cameras)
    finally:
        engine.dispose()
    assert set(rows) == {first[0].segment_id, later[0].segment_id}


# -- the control route -----------------------------------------------------------------------


@pytest.fixture
def servers() -> Iterator[list[FollowerServer]]:
    started: list[FollowerServer] = []
    yield started
    for s in started:
        s.stop()


def test_follower_redirect_moves_the_control_channel_to_the_listed_leader(
    site: Site, buffer: SegmentBuffer, servers: list[FollowerServer]
) -> None:
    write_segments(buffer, "cam1", 3, size=50_000)
    with scheduled_controller(site.data_dir, FAST) as leader:
        leader_address = f"127.0.0.1:{leader.port}"
        follower = FollowerServer(site, leader_address)
        servers.append(follower)
        # The leader is third: a redirect goes straight there, skipping the dead second.
        leases = lease_client(site, buffer, [follower.address, dead_address(), leader_address])
        leases.start()
        try:
            wait_until(lambda: leases.connected.is_set(), 20, "a lease stream on the leader")
            wait_until(lambda: leases.counters["leases"] >= 1, 20, "a lease from the leader")
            wait_until(lambda: leases.counters["inventories"] >= 1, 20, "an inventory accepted")
        finally:
            leases.stop()
        route = leases.control.route.snapshot()
        assert route.address == leader_address
        assert route.failovers == 1  # one move, follower -> leader
        assert leases.counters["redirects"] >= 1
        assert follower.servicer.total() >= 1


def test_redirect_to_an_unlisted_address_is_never_followed(
    site: Site, buffer: SegmentBuffer, servers: list[FollowerServer]
) -> None:
    write_segments(buffer, "cam1", 2, size=50_000)
    with scheduled_controller(site.data_dir, FAST) as leader:
        leader_address = f"127.0.0.1:{leader.port}"
        # A compromised follower names a server the agent was never configured with.
        elsewhere = FollowerServer(site, "")
        rogue = FollowerServer(site, elsewhere.address)
        servers.extend([elsewhere, rogue])
        leases = lease_client(site, buffer, [rogue.address, leader_address])
        leases.start()
        try:
            wait_until(lambda: leases.counters["leases"] >= 1, 20, "a lease from the leader")
        finally:
            leases.stop()
        assert elsewhere.servicer.total() == 0, "the agent went to an address outside its list"
        assert rogue.servicer.total() >= 1
        assert leases.control.route.current() == leader_address


def test_only_followers_naming_strangers_the_agent_stays_within_its_list(
    site: Site, buffer: SegmentBuffer, servers: list[FollowerServer]
) -> None:
    elsewhere = FollowerServer(site, "")
    first = FollowerServer(site, elsewhere.address)
    second = FollowerServer(site, elsewhere.address)
    servers.extend([elsewhere, first, second])
    leases = lease_client(site, buffer, [first.address, second.address])
    leases.start()
    try:
        wait_until(
            lambda: first.servicer.total() >= 3 and second.servicer.total() >= 3,
            20,
            "the agent to try its own list in turn",
        )
    finally:
        leases.stop()
    assert elsewhere.servicer.total() == 0
    assert not leases.connected.is_set()
    assert leases.control.route.current() in (first.address, second.address)


def test_a_lease_the_new_leader_does_not_know_is_dropped_and_inventory_resent(
    site: Site, buffer: SegmentBuffer
) -> None:
    write_segments(buffer, "cam1", 2, size=50_000)
    with scheduled_controller(site.data_dir, FAST) as leader:
        # No periodic inventory in the test's time: only the drop can send one again.
        quiet = dataclasses.replace(FAST_LEASES, inventory_interval_s=600.0)
        leases = lease_client(site, buffer, [f"127.0.0.1:{leader.port}"], quiet)
        leases.start()
        try:
            wait_until(lambda: leases.connected.is_set(), 20, "a lease stream")
            wait_until(lambda: leases.counters["inventories"] >= 1, 20, "a first inventory")
            before = leases.counters["inventories"]
            # A lease issued by a leader that died: the new leader has never heard of it.
            leases.lease_finished(FinishedLease("lease-of-a-dead-leader", ("seg-x",), (), False))
            wait_until(lambda: leases.counters["unknown_leases"] == 1, 10, "the NOT_FOUND drop")
            # One inventory goes before the report (every report round starts with one), and
            # one more after the drop, so the new leader re-plans from what the agent holds.
            wait_until(
                lambda: leases.counters["inventories"] >= before + 2, 10, "the inventory again"
            )
            # The queue is not stuck behind it: a later report still goes out.
            finished = leases.counters["finished"]
            leases.lease_finished(FinishedLease("lease-of-a-dead-leader-2", (), (), True))
            wait_until(lambda: leases.counters["unknown_leases"] == 2, 10, "the second drop")
        finally:
            leases.stop()
        assert leases.counters["finished"] == finished
        assert leases.control.route.snapshot().failovers == 0
