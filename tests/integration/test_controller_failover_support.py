"""Helpers for the agent failover tests (no tests in here): controller replicas sharing one
catalog and store, a TCP relay whose connections the test can cut (a dropped link), a
follower replica's AgentControl refusals as a small real gRPC server, and the agent's parts
wired as the agent wires them.
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from concurrent import futures
from pathlib import Path

import grpc

from controller.assembly import Controller, build_controller
from controller.clock import SystemClock as ControllerClock
from controller.leader import LEADER_METADATA_KEY
from edge_agent.clock import SystemClock
from edge_agent.config import UplinkConfig
from edge_agent.leases import LeaseClient, LeaseClientOptions, leased_uplink
from edge_agent.store import SegmentBuffer
from edge_agent.uplink import FailoverIngestClient, RetryPolicy, Uploader
from protos.vigil.v1 import agent_control_pb2_grpc
from tests.integration.controller_proc import database_url, free_low_port, make_config
from tests.integration.test_uplink_support import Site

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
