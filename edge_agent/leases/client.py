"""`LeaseClient`: the agent's half of `vigil.v1.AgentControl` (the imperative shell).

Two threads:

- the stream thread keeps `StreamLeases` open, reconnecting with a short, capped backoff
  and jitter (tenacity; 0.25-1 s by default) so the agent is back within about a second of
  the controller, and a city of agents does not return in lockstep after an outage. Each
  message is checked (lease.parse_lease), its holds are reconciled with the buffer (pinned /
  released), and its lease handed to the LeasedJobSource, which sets the
  token bucket to the leased rate. When the stream breaks, the lease is dropped at once:
  the controller voids the leases of a device that disconnected.
- the report thread sends the inventory every `inventory_interval_s`, and at once when
  something changed (connected, holds changed, a lease finished), then any finished-lease
  reports (FinishLease) in order; inventory first, so the controller re-plans from fresh
  numbers. Reports the controller refuses are dropped, others retried.

All three calls go to the control route's current address (control.py): with several
controller replicas, the scheduler leader. A follower's redirect or an unusable address moves
the route, and a lease stream still open on an address the route has left is cancelled so it
reconnects to the new one. A lease report the new leader does not know (NOT_FOUND: its lease
was issued by a leader that died) is dropped and the inventory sent again at once, so the new
leader plans from what the agent still holds.

A third thread (ready.ReadyWatch) watches the controller's store health; it and a lease
stream that connects call `resume_uploads` (the uploader's resume(): backoffs end at once).

Nothing here decides anything; the decisions are in lease.py and inventory.py.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import threading
from collections.abc import Callable, Collection
from dataclasses import dataclass

import grpc
import tenacity

from edge_agent.clock import Clock, ClockOffset
from edge_agent.leases.control import ControlChannel
from edge_agent.leases.inventory import (
    build_inventory,
    evict_at,
    held_ranges,
    hold_status,
    reconcile_holds,
)
from edge_agent.leases.lease import AgentLease, LeaseRejected, WantedHold, parse_lease
from edge_agent.leases.ready import ReadyWatch
from edge_agent.leases.source import FinishedLease, LeasedJobSource
from edge_agent.model import EvictionRecord
from edge_agent.store import SegmentBuffer, StoreError
from edge_agent.uplink.failover import ControlAction
from protos.vigil.v1 import agent_control_pb2

log = logging.getLogger(__name__)

US = 1_000_000
_REFUSED = {
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
}


@dataclass(frozen=True, slots=True)
class LeaseClientOptions:
    inventory_interval_s: float = 30.0
    # How often the report thread looks at the buffer: a changed backlog (a new segment, an
    # upload) is reported at once rather than at the next interval, so footage is leased
    # within seconds of being recorded.
    change_poll_s: float = 2.0
    max_head: int = 512
    # Reconnecting the lease stream (and the ready watch): short and capped, so uploads go on
    # within ~1 s of the controller being back (issue 19: a 30 s cap stopped uploads for
    # up to 73 s after three controller restarts in a row).
    backoff_initial_s: float = 0.25
    backoff_cap_s: float = 1.0
    rpc_timeout_s: float = 15.0
    settle_s: float = 120.0  # a live camera commits a segment well within this
    record_window_s: float = 600.0  # recording rate measured over this much recent footage
    max_unsent_scan: int = 100_000


class _StreamEnded(Exception):
    """The lease stream failed before delivering anything (so: back off)."""


class LeaseClient:
    def __init__(
        self,
        device_id: str,
        channel: grpc.Channel | ControlChannel,
        buffer: SegmentBuffer,
        source: LeasedJobSource,
        clock: Clock,
        options: LeaseClientOptions | None = None,
        archive_cameras: Collection[str] = (),
        known_cameras: Collection[str] | None = None,
        wake_uploader: Callable[[], None] = lambda: None,
        clock_offset: ClockOffset | None = None,
        resume_uploads: Callable[[], None] = lambda: None,
    ) -> None:
        self._device = device_id
        # A bare channel (a lone controller) is a route of one address that never moves.
        self._control = (
            channel if isinstance(channel, ControlChannel) else ControlChannel.fixed(channel, clock)
        )
        self._buffer = buffer
        self._source = source
        self._clock = clock
        self._opt = options or LeaseClientOptions()
        self._archive = frozenset(archive_cameras)
        self._known = None if known_cameras is None else frozenset(known_cameras)
        self._wake_uploader = wake_uploader
        self._resume_uploads = resume_uploads
        self._offset = clock_offset
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._report_now = threading.Event()
        self._finished: collections.deque[FinishedLease] = collections.deque(maxlen=1000)
        self._wanted: tuple[WantedHold, ...] = ()
        self._call: grpc.RpcContext | None = None  # the open stream, to cancel on stop
        self._call_address = ""  # where that stream is open
        self._threads: list[threading.Thread] = []
        self.connected = threading.Event()
        self.counters = collections.Counter[str]()
        self.last_error = ""
        source.add_finished_listener(self.lease_finished)
        self._control.route.add_listener(self._route_moved)
        self.ready_watch = ReadyWatch(
            self._control, resume_uploads, self._opt.backoff_initial_s, self._opt.backoff_cap_s
        )

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        for name, target in (("lease-stream", self._stream_loop), ("lease-report", self._reports)):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        self.ready_watch.start()

    def stop(self) -> None:
        self._stop.set()
        self._report_now.set()
        self.ready_watch.stop()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()
        for t in self._threads:
            t.join(timeout=10)
        self._threads = []

    def lease_finished(self, finished: FinishedLease) -> None:
        """LeasedJobSource's callback (runs under the uploader's lock: only queue)."""
        self._finished.append(finished)
        self._report_now.set()

    def report_soon(self) -> None:
        self._report_now.set()

    @property
    def wanted_holds(self) -> tuple[WantedHold, ...]:
        with self._lock:
            return self._wanted

    @property
    def control(self) -> ControlChannel:
        return self._control

    def _route_moved(self, address: str) -> None:
        """The control route moved (e.g. an inventory was redirected to the leader): a
        stream open elsewhere is cancelled, and reconnects to the new address."""
        with self._lock:
            call = self._call if self._call_address != address else None
        if call is not None:
            call.cancel()

    # -- the lease stream ------------------------------------------------------------------------

    def _stream_loop(self) -> None:
        while not self._stop.is_set():
            retrying = tenacity.Retrying(
                retry=tenacity.retry_if_exception_type(_StreamEnded),
                wait=self._wait,
                stop=lambda _s: self._stop.is_set(),
                sleep=self._sleep,
                reraise=True,
            )
            try:
                retrying(self._stream_once)
            except _StreamEnded:
                return  # stopping
            # The stream ended after working (controller restart, or a newer stream of
            # ours replaced it): reconnect soon, but never in a tight loop.
            self._stop.wait(self._opt.backoff_initial_s)

    def _sleep(self, seconds: float) -> None:
        self._stop.wait(seconds)

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Backoff: short while replicas are left to try, doubling after each full pass."""
        return self._control.route.delay_s(
            self._opt.backoff_initial_s, self._opt.backoff_cap_s, state.attempt_number
        )

    def _stream_once(self) -> None:
        """One StreamLeases call; returns normally if it delivered anything (reconnect
        without waiting), raises _StreamEnded if it failed before (back off)."""
        address, stub = self._control.stub()
        call = stub.StreamLeases(agent_control_pb2.LeaseStreamRequest(device_id=self._device))
        with self._lock:
            self._call, self._call_address = call, address
        if self._control.route.current() != address:
            call.cancel()  # the route moved while we were calling: go where it points now
        received = 0
        try:
            for msg in call:
                if received == 0:
                    self._control.ok(address)
                    self.connected.set()
                    self.counters["connects"] += 1
                    self._report_now.set()
                    self._resume_uploads()  # the controller is back: no backoff left
                received += 1
                self._apply(msg)
        except grpc.RpcError as exc:
            if not self._stop.is_set():
                self.last_error = f"lease stream {address}: {exc.code()}: {exc.details()}"
                log.info("%s", self.last_error)
                self._route_outcome(address, exc)
        finally:
            with self._lock:
                self._call, self._call_address = None, ""
            self.connected.clear()
            self._source.clear()
        if not received:
            raise _StreamEnded(self.last_error)

    def _apply(self, msg: agent_control_pb2.Lease) -> None:
        self.counters["messages"] += 1
        try:
            update = parse_lease(msg)
        except LeaseRejected as exc:
            self.counters["rejected"] += 1
            log.warning("lease message refused: %s", exc)
            return
        if update.holds is not None:
            with self._lock:
                self._wanted = update.holds
            if self._reconcile(update.holds):
                self._report_now.set()
        self._source.set_lease(self._on_our_clock(update.lease))
        if update.lease is not None:
            self.counters["leases"] += 1
        self._wake_uploader()

    def _on_our_clock(self, lease: AgentLease | None) -> AgentLease | None:
        """The lease with its expiry moved onto the agent's clock by the measured skew: an
        NVR whose clock is ahead by more than a lease's lifetime would otherwise find every
        lease expired on arrival and never upload."""
        est = self._offset.estimate() if self._offset is not None else None
        if lease is None or est is None or not est.skew_us:
            return lease
        return dataclasses.replace(lease, expires_us=lease.expires_us + est.skew_us)

    def _reconcile(self, wanted: tuple[WantedHold, ...]) -> bool:
        """Pin new holds and release dropped ones; True if the buffer's holds changed."""
        try:
            pin, release = reconcile_holds(wanted, self._buffer.holds())
        except StoreError as exc:
            log.warning("cannot read holds: %s", exc)
            return False
        for w in pin:
            try:
                self._buffer.hold(w.camera_id, w.start_us, w.end_us, w.tag)
            except StoreError as exc:  # e.g. a camera id this buffer cannot hold
                log.warning("hold %s on %s not pinned: %s", w.tag, w.camera_id, exc)
        for hold_id in release:
            try:
                self._buffer.release(hold_id)
            except StoreError as exc:
                log.warning("hold %s not released: %s", hold_id, exc)
        return bool(pin or release)

    # -- reports ---------------------------------------------------------------------------------

    def _reports(self) -> None:
        last_sent = float("-inf")
        last_unsent: int | None = None
        while not self._stop.is_set():
            asked = self._report_now.wait(self._opt.change_poll_s)
            self._report_now.clear()
            if self._stop.is_set():
                return
            try:
                unsent: int | None = self._buffer.stats().unsent_segments
            except StoreError:
                unsent = None
            due = self._clock.monotonic() - last_sent >= self._opt.inventory_interval_s
            if asked or due or unsent != last_unsent:
                if self.send_inventory():
                    last_sent, last_unsent = self._clock.monotonic(), unsent
            self._send_finished()

    def _route_outcome(self, address: str, exc: grpc.RpcError) -> ControlAction:
        action = self._control.failed(address, exc)
        if action is ControlAction.REDIRECT:
            self.counters["redirects"] += 1
        return action

    def send_inventory(self) -> bool:
        address, stub = self._control.stub()
        try:
            inv = self.inventory()
            sent = self._clock.now_us()
            ack = stub.ReportInventory(inv, timeout=self._opt.rpc_timeout_s)
            if self._offset is not None and ack.server_unix_us:
                # The answer carries the controller's clock: one NTP-like sample of ours.
                self._offset.observe(sent, self._clock.now_us(), ack.server_unix_us)
        except grpc.RpcError as exc:
            self.last_error = f"inventory {address}: {exc.code()}: {exc.details()}"
            self.counters["inventory_errors"] += 1
            log.info("%s", self.last_error)
            self._route_outcome(address, exc)
            return False
        except StoreError as exc:
            self.last_error = f"inventory: {exc}"
            log.warning("%s", self.last_error)
            return False
        self._control.ok(address)
        self.counters["inventories"] += 1
        return True

    def _send_finished(self) -> None:
        while self._finished and not self._stop.is_set():
            fin = self._finished[0]
            report = agent_control_pb2.LeaseReport(
                lease_id=fin.lease_id, done_segment_ids=fin.done, failed_segment_ids=fin.failed
            )
            address, stub = self._control.stub()
            try:
                stub.FinishLease(report, timeout=self._opt.rpc_timeout_s)
                self._control.ok(address)
                self.counters["finished"] += 1
            except grpc.RpcError as exc:
                action = self._route_outcome(address, exc)
                if action is not ControlAction.STAY or exc.code() not in _REFUSED:
                    # Not the leader, unreachable, or a passing error: the report is kept
                    # and goes (to the leader, if the route moved) with the next round.
                    self.last_error = f"lease report {address}: {exc.code()}: {exc.details()}"
                    return
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    # A lease this controller never issued: after a takeover, the new leader
                    # does not know the old one's leases. Drop it; re-plan from a fresh
                    # inventory.
                    self.counters["unknown_leases"] += 1
                    self._report_now.set()
                log.info("lease report %s refused: %s", fin.lease_id, exc.details())
            self._finished.popleft()

    def inventory(self) -> agent_control_pb2.Inventory:
        """The Inventory message from the buffer as it is now."""
        now = self._clock.now_us()
        buf = self._buffer
        wanted = self.wanted_holds
        unsent = buf.unsent(limit=self._opt.max_unsent_scan)
        held = held_ranges(buf.holds(), wanted)
        window_us = int(self._opt.record_window_s * US)
        recent = buf.segments(start_us=max(0, now - window_us))
        record_bps = sum(s.size_bytes for s in recent) * 8 * US // window_us
        pressure = evict_at(buf.stats(), record_bps, now)
        statuses = []
        if wanted:
            evictions = buf.evictions(only_unreported=False, limit=self._opt.max_unsent_scan)
            reasons = buf.eviction_reasons([e.record_id for e in evictions])
            for w in wanted:
                statuses.append(self._hold_status(w, evictions, reasons, now))
        return build_inventory(
            self._device, now, unsent, held, self._archive, pressure, self._opt.max_head, statuses
        )

    def _hold_status(
        self, w: WantedHold, evictions: list[EvictionRecord], reasons: dict[int, str], now: int
    ) -> agent_control_pb2.HoldStatus:
        settle = int(self._opt.settle_s * US)
        known = self._known is None or w.camera_id in self._known
        try:
            segments = self._buffer.segments(w.camera_id, w.start_us, w.end_us + settle)
            gaps = self._buffer.gaps(w.camera_id, w.start_us, w.end_us)
        except StoreError:  # a camera id this agent could never have recorded
            segments, gaps, known = [], [], False
        mine = [e for e in evictions if e.camera_id == w.camera_id]
        return hold_status(w, segments, mine, reasons, gaps, known, now, settle)
