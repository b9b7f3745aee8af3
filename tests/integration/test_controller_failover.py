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
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from controller.assembly import Controller, build_controller
from controller.clock import SystemClock as ControllerClock
from controller.leader import LEADER_METADATA_KEY
from edge_agent.clock import SystemClock
from edge_agent.config import UplinkConfig
from edge_agent.leases import LeaseClient, LeaseClientOptions, leased_uplink
from edge_agent.leases.source import FinishedLease
from edge_agent.store import SegmentBuffer
from edge_agent.uplink import FailoverIngestClient, Outcome, RetryPolicy, Uploader, open_client
from edge_agent.uplink.client import load_credentials
from edge_agent.uplink.routing import ChannelPool, failover_client
from protos.vigil.v1 import agent_control_pb2_grpc
from tests.integration.controller_proc import (
    database_url,
    free_low_port,
    make_config,
    staged_size,
)
from tests.integration.test_agent_control_support import FAST, scheduled_controller
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

FAST_RETRY = RetryPolicy(initial_s=0.1, cap_s=0.5, park_s=3600.0)
FAST_LEASES = LeaseClientOptions(
    inventory_interval_s=0.5, change_poll_s=0.2, backoff_initial_s=0.1, backoff_cap_s=0.5,
    settle_s=5.0,
)  # fmt: skip


class Replica:
    """One controller replica on a fixed port: the shared catalog and store of `site_dir`,
    its own data dir (staging) `own_dir`; stoppable and restartable on the same port."""

    def __init__(self, site_dir: Path, own_dir: Path) -> None:
        self.port = free_low_port()
        pki = site_dir / "pki"
        self.config = make_config(
            own_dir,
            self.port,
            database_url=database_url(site_dir),
            storage_url=f"file://{site_dir / 'objects'}",
            grpc={
                "server_cert": str(pki / "server.crt"),
                "server_key": str(pki / "server.key"),
                "ca_cert": str(pki / "ca.crt"),
            },
        )
        self.own_dir = own_dir
        self.controller: Controller | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Replica:
        self.controller = build_controller(self.config, ControllerClock())
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop(grace_s=0.2)
            self.controller = None


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


def uplink(site: Site, addresses: list[str], rate_bps: int = 400_000_000) -> UplinkConfig:
    dev = site.device
    return UplinkConfig(
        controllers=addresses,
        ca_cert=str(dev.ca_path),
        client_cert=str(dev.cert_path),
        client_key=str(dev.key_path),
        rate_bps=rate_bps,
        chunk_bytes=32 * 1024,
    )


def dead_address() -> str:
    """A loopback port nothing listens on (a replica that is down)."""
    return f"127.0.0.1:{free_low_port()}"


def agent_uploader(buffer: SegmentBuffer, client: FailoverIngestClient) -> Uploader:
    return Uploader(buffer, client, SystemClock(), lambda _e: None, FAST_RETRY, idle_poll_s=0.05)


# -- uploads ---------------------------------------------------------------------------------


def test_first_address_down_the_agent_uploads_via_the_second(
    site: Site, buffer: SegmentBuffer, replicas: tuple[Replica, Replica]
) -> None:
    _, b = replicas
    b.start()
    write_segments(buffer, "cam1", 4, size=100_000)
    down = dead_address()
    client = open_client(uplink(site, [down, b.address]), SystemClock())
    uploader = Uploader(
        buffer, client, SystemClock(), lambda _e: None, FAST_RETRY, idle_poll_s=0.05
    )
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
    uploader = Uploader(
        buffer, client, SystemClock(), lambda _e: None, FAST_RETRY, idle_poll_s=0.05
    )
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


class Relay:
    """A TCP relay on loopback in front of a replica: the agent's link to it, which the test
    can cut (every open connection reset) while the replica itself keeps running."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._open: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def cut(self) -> None:
        """The link drops: every connection through the relay is reset."""
        with self._lock:
            conns, self._open = self._open, []
        for s in conns:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()

    def close(self) -> None:
        self.listener.close()
        self.cut()


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
    uploader = Uploader(
        buffer, client, SystemClock(), lambda _e: None, FAST_RETRY, idle_poll_s=0.05
    )
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


class Follower(agent_control_pb2_grpc.AgentControlServicer):
    """Refuses every AgentControl call as a follower replica, naming `leader`."""

    def __init__(self, leader: str) -> None:
        self.leader = leader
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()

    def _refuse(self, context: grpc.ServicerContext, name: str) -> None:
        with self._lock:
            self.calls[name] += 1
        if self.leader:
            context.set_trailing_metadata(((LEADER_METADATA_KEY, self.leader),))
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "this replica is not the leader")

    def ReportInventory(self, request, context):  # type: ignore[no-untyped-def]
        self._refuse(context, "ReportInventory")

    def StreamLeases(self, request, context):  # type: ignore[no-untyped-def]
        self._refuse(context, "StreamLeases")

    def FinishLease(self, request, context):  # type: ignore[no-untyped-def]
        self._refuse(context, "FinishLease")

    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())


class FollowerServer:
    """A real gRPC server (TLS with the city's server certificate) around a Follower."""

    def __init__(self, site: Site, leader: str) -> None:
        pki = site.data_dir / "pki"
        creds = grpc.ssl_server_credentials(
            [((pki / "server.key").read_bytes(), (pki / "server.crt").read_bytes())]
        )
        self.servicer = Follower(leader)
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        agent_control_pb2_grpc.add_AgentControlServicer_to_server(self.servicer, self.server)
        self.port = self.server.add_secure_port("127.0.0.1:0", creds)
        self.server.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.server.stop(0)


@pytest.fixture
def servers() -> Iterator[list[FollowerServer]]:
    started: list[FollowerServer] = []
    yield started
    for s in started:
        s.stop()


def lease_client(
    site: Site,
    buffer: SegmentBuffer,
    addresses: list[str],
    options: LeaseClientOptions = FAST_LEASES,
) -> LeaseClient:
    """The leased agent's control half as the agent wires it (leased_uplink)."""
    _uploader, leases = leased_uplink(
        site.device.device_id,
        uplink(site, addresses),
        buffer,
        SystemClock(),
        lambda _e: None,
        cameras=site.cameras,
        options=options,
    )
    return leases


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
