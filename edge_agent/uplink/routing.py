"""The shell around failover.py: thread-safe routes, one channel per address, and the upload
client that moves to the next replica when one is unusable.

- `RouteKeeper` holds one `Route` for several threads (upload workers, the lease stream and
  report threads), logs every move and tells listeners (the lease client cancels a stream
  left on an address the route has moved away from).
- `ChannelPool` makes one mutual-TLS channel per controller address, lazily, shared by the
  upload and control routes when they point at the same replica.
- `FailoverIngestClient` is the uploader's `SegmentSender` over the upload route. It only
  moves the route (failover.upload_failed: a broken stream is resumed on the same replica, a
  replica that does not answer is left) and re-raises: the Uploader's retry policy
  (capped backoff with jitter, cut short by resume()) paces the next attempt, which goes to
  the route's address then. A segment interrupted on a replica that went away restarts on
  the next from what that one holds (QueryOffset: its own staging, usually 0); the
  controller commits a segment id once and answers a repeat with the same hash
  ALREADY_COMMITTED, so a failover never stores a segment twice or half.
"""

from __future__ import annotations

import logging
import random
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc

from edge_agent.clock import Clock
from edge_agent.config import UplinkConfig
from edge_agent.model import SegmentInfo
from edge_agent.uplink import failover as fo
from edge_agent.uplink.client import IngestClient, connect, load_credentials
from edge_agent.uplink.errors import RetryableError, UplinkError
from edge_agent.uplink.plan import ServerOffset, UploadResult
from edge_agent.uplink.ratelimit import TokenBucket

log = logging.getLogger(__name__)

# The upload route goes back to the home replica after this long on another one.
HOME_AFTER_S = 600.0


class RouteKeeper:
    """One `Route` shared by threads; every change goes through failover.py."""

    def __init__(
        self,
        addresses: Sequence[str],
        clock: Clock,
        name: str,
        home_after_s: float | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._clock = clock
        self._name = name
        self._home_after_s = home_after_s
        self._rng = rng or random.Random()  # noqa: S311 - retry jitter, not secrets
        self._lock = threading.Lock()
        self._route = fo.start(addresses, clock.monotonic())
        self._listeners: list[Callable[[str], None]] = []

    @property
    def name(self) -> str:
        return self._name

    def snapshot(self) -> fo.Route:
        with self._lock:
            return self._route

    def current(self) -> str:
        with self._lock:
            return self._route.address

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call `callback(new_address)` after every move (outside the route's lock)."""
        with self._lock:
            self._listeners.append(callback)

    def for_next_call(self) -> str:
        """The address for a new piece of work (a segment), returning home when due."""
        if self._home_after_s is None:
            return self.current()
        now = self._clock.monotonic()
        after_s = self._home_after_s
        return self._change(lambda r: fo.prefer_home(r, now, after_s), "back home", logging.INFO)

    def succeeded(self, address: str) -> None:
        with self._lock:
            self._route = fo.succeeded(self._route, address)

    def failed(self, address: str, reason: str) -> str:
        """`address` is unusable; returns the address to use now."""
        now = self._clock.monotonic()
        return self._change(lambda r: fo.failed(r, address, now), reason)

    def upload_failed(self, address: str, code: str, stage: str) -> str:
        """An upload through `address` failed (failover.upload_failed); the address now."""
        now = self._clock.monotonic()
        return self._change(
            lambda r: fo.upload_failed(r, address, code, stage, now), f"{stage or 'call'}: {code}"
        )

    def redirected(self, address: str, leader: str) -> str:
        """`address` is a follower naming `leader`; returns the address to use now."""
        now = self._clock.monotonic()
        return self._change(
            lambda r: fo.redirected(r, address, leader, now), f"not the leader (leader: {leader!r})"
        )

    def delay_s(self, initial_s: float, cap_s: float, attempt: int = 0) -> float:
        """The wait before the next attempt (failover.retry_delay_s with fresh jitter);
        `attempt` keeps errors that do not count against the address growing too."""
        with self._lock:
            route = self._route
        failures = max(route.failures, attempt)
        return fo.retry_delay_s(
            failures, len(route.addresses), initial_s, cap_s, self._rng.random()
        )

    def _change(
        self, step: Callable[[fo.Route], fo.Route], reason: str, level: int = logging.WARNING
    ) -> str:
        with self._lock:
            before = self._route
            self._route = after = step(before)
            listeners = list(self._listeners) if after.address != before.address else []
        if after.address != before.address:
            log.log(
                level,
                "%s route: %s -> %s (%s; failovers so far %d)",
                self._name,
                before.address,
                after.address,
                reason,
                after.failovers,
            )
        for callback in listeners:
            try:
                callback(after.address)
            except Exception:
                log.exception("%s route: listener failed", self._name)
        return after.address


class ChannelPool:
    """One lazily made TLS channel per controller address (connections are made on use)."""

    def __init__(
        self,
        credentials: grpc.ChannelCredentials,
        chunk_bytes: int,
        server_name: str | None = None,
    ) -> None:
        self._credentials = credentials
        self._chunk = chunk_bytes
        self._server_name = server_name
        self._lock = threading.Lock()
        self._channels: dict[str, grpc.Channel] = {}

    def get(self, address: str) -> grpc.Channel:
        with self._lock:
            channel = self._channels.get(address)
            if channel is None:
                channel = connect(address, self._credentials, self._chunk, self._server_name)
                self._channels[address] = channel
            return channel

    def close(self) -> None:
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()


class FailoverIngestClient:
    """Uploads through the upload route's current address (a SegmentSender)."""

    def __init__(
        self, route: RouteKeeper, client_for: Callable[[str], IngestClient], pool: ChannelPool
    ) -> None:
        self._route = route
        self._client_for = client_for
        self._pool = pool
        self._lock = threading.Lock()
        self._clients: dict[str, IngestClient] = {}

    @property
    def route(self) -> RouteKeeper:
        return self._route

    def _client(self, address: str) -> IngestClient:
        with self._lock:
            client = self._clients.get(address)
            if client is None:
                client = self._clients[address] = self._client_for(address)
            return client

    def upload(
        self,
        info: SegmentInfo,
        path: Path,
        lease_id: str = "",
        cancel: threading.Event | None = None,
    ) -> UploadResult:
        address = self._route.for_next_call()
        try:
            result = self._client(address).upload(info, path, lease_id, cancel)
        except RetryableError as exc:
            self._route.upload_failed(address, exc.code, exc.stage)
            raise
        self._route.succeeded(address)
        return result

    def query_offset(self, segment_id: str, camera_id: str) -> ServerOffset:
        """What the replica at the current address holds of a segment (no failover)."""
        return self._client(self._route.current()).query_offset(segment_id, camera_id)

    def close(self) -> None:
        """Close every channel of the pool (the control route's too, if it shares it)."""
        self._pool.close()


def failover_client(
    addresses: Sequence[str],
    pool: ChannelPool,
    chunk_bytes: int,
    bucket: TokenBucket | None,
    clock: Clock,
    home_after_s: float | None = HOME_AFTER_S,
) -> FailoverIngestClient:
    """The upload client over `addresses`, every per-address client sharing `bucket`."""
    route = RouteKeeper(addresses, clock, "upload", home_after_s=home_after_s)
    return FailoverIngestClient(
        route, lambda a: IngestClient(pool.get(a), chunk_bytes, bucket, clock), pool
    )


def open_pool(cfg: UplinkConfig, server_name: str | None = None) -> ChannelPool:
    """The channel pool for `[uplink]` (TLS files read now; UplinkError if unreadable)."""
    if not cfg.addresses:
        raise UplinkError("uplink.controller(s) is empty: uploading is disabled")
    credentials = load_credentials(Path(cfg.ca_cert), Path(cfg.client_cert), Path(cfg.client_key))
    return ChannelPool(credentials, cfg.chunk_bytes, server_name)


def open_client(
    cfg: UplinkConfig, clock: Clock, bucket: TokenBucket | None = None
) -> FailoverIngestClient:
    """Build the upload client from `[uplink]` in agent.toml (TLS files read now, connections
    lazy), over every configured controller address.

    Without an explicit bucket one is made from `rate_bps`, with a burst of one chunk: after an
    idle spell at most one chunk goes out un-paced.
    """
    pool = open_pool(cfg)
    if bucket is None:
        bucket = TokenBucket(cfg.rate_bps, cfg.chunk_bytes, clock)
    return failover_client(cfg.addresses, pool, cfg.chunk_bytes, bucket, clock)
