"""`SchedulerService`: the planner in a running controller (the imperative shell).

It holds the topology, each connected agent's latest inventory and its lease stream, and
one loop thread that:

- re-plans when something relevant changed (an inventory, a device connecting or going
  away, a lease finished or reclaimed, a new or closed footage request, a topology change),
  at most once per tick, and periodically anyway; hysteresis keeps leases calm;
- issues a new lease to each device whose plan changed, and withdraws leases the plan no
  longer backs (an empty lease: the agent stops uploading);
- reclaims leases not finished by their expiry;
- reads open footage requests, pushes the holds they need to their agents (in every lease
  message, and over MQTT when a fleet service is wired), feeds their deadlines to the
  planner, and saves their progress;
- measures delivered bytes per device from catalog commits of leased segments, to compare
  per link with the plan (`delivery()`).

RPC handlers (grpc_service.py) call `report_inventory`, `connect`/`disconnect` and
`finish_lease`; they never plan themselves, so a burst of inventories costs one replan.
A bad inventory raises DemandError and changes nothing. One lock guards the state;
database reads and writes happen outside it.

Only the city's leader plans (controller/leader): the service asks its `Leadership` at every
tick and input. On a follower it plans nothing, runs no job upkeep and refuses inputs
(NotLeaderError). When this replica loses the leadership it closes every lease stream (the
agents reconnect, to the new leader) and forgets all state; when it gains a term (a new
epoch) it starts empty and reads the jobs from the database at once: the old leader's leases
are void and agents report their inventories again when their streams open. Uploads need no
lease to be safe: ingest commits a segment once by id and hash, whoever leased it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid

from controller.catalog import Catalog
from controller.clock import Clock
from controller.jobs.store import JobStore
from controller.jobs.tracker import DeviceReport, HoldWanted, JobTracker
from controller.leader import Leadership, NotLeaderError, SoleLeader
from controller.scheduler import upkeep
from controller.scheduler.board import PUBLISH_S, FollowerView, PlanBoard
from controller.scheduler.convert import device_report, lease_message
from controller.scheduler.inventory import demand_from_inventory
from controller.scheduler.leases import (
    DeliveryMeter,
    IssuedLease,
    LeaseBook,
    LinkDelivery,
    lease_ttl_us,
    link_delivery,
    make_lease,
    without_segments,
)
from controller.scheduler.mailbox import Mailbox
from controller.scheduler.model import DemandError
from controller.scheduler.options import (
    SchedulerOptions,
    default_topology,
    load_topology,
    with_default_links,
)
from controller.scheduler.state import Planner
from controller.scheduler.topology import Topology
from controller.scheduler.upkeep import CommandSender, Snapshot
from protos.vigil.v1 import agent_control_pb2

log = logging.getLogger("vigil.scheduler")

LeaseBox = Mailbox[agent_control_pb2.Lease]


class SchedulerService:
    """See the module docstring. `start()`/`stop()` run the loop thread."""

    def __init__(
        self,
        catalog: Catalog,
        clock: Clock,
        options: SchedulerOptions | None = None,
        *,
        topology: Topology | None = None,
        fleet: CommandSender | None = None,
        jobs: JobTracker | None = None,
        leadership: Leadership | None = None,
        fence_writes: bool = False,
        board: PlanBoard | None = None,
    ) -> None:
        self.options = opt = options or SchedulerOptions()
        self._leadership: Leadership = leadership or SoleLeader()
        self._fence_writes = fence_writes  # job writes checked against the lease row's epoch
        # Replicas: the leader publishes its plan on the board, followers show that one.
        self._board = board
        self._follower_view = FollowerView(board, clock) if board is not None else None
        self._last_publish = -1e18
        self._clock = clock
        self._catalog = catalog
        if topology is None:
            topology = (
                load_topology(opt.topology_path)
                if opt.topology_path
                else default_topology(opt.root_bps)
            )
        self._planner = Planner(topology, opt.plan_config(), opt.hysteresis)
        self._ttl_us = lease_ttl_us(opt.plan_config(), opt.lease_grace_s)
        self._book = LeaseBook()
        self._meter = DeliveryMeter(opt.delivery_window_s)
        self._upkeep = upkeep.Upkeep(
            catalog, clock, jobs or JobTracker(JobStore(catalog.engine), catalog, clock), fleet
        )
        self._lock = threading.Lock()
        self._streams: dict[str, LeaseBox] = {}
        self._waiting: dict[str, agent_control_pb2.Inventory] = {}
        self._reports: dict[str, DeviceReport] = {}
        self._holds: dict[str, tuple[HoldWanted, ...]] = {}
        self._deadlines: dict[str, int] = {}
        self._probe: set[str] = set()  # segment ids of leases to look for in the catalog
        self._dirty = True
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_replan = -1e18
        self._last_upkeep = -1e18
        # The leadership epoch this state belongs to (0: following, nothing planned).
        self._term = self._leadership.epoch() if self._leadership.is_leader() else 0
        self.counters = {
            k: 0
            for k in ("replans", "leases_issued", "leases_withdrawn", "leases_reclaimed",
                      "leases_finished", "leases_forgotten", "lease_reports", "inventories",
                      "refused", "replan_us", "terms", "upkeeps")
        }  # fmt: skip

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        with self._lock:
            for box in self._streams.values():
                box.close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def poke(self) -> None:
        """Something outside changed (a footage request was made): look now, not later."""
        with self._lock:
            self._last_upkeep = -1e18
            self._dirty = True
        self._wake.set()

    # -- inputs from agents (called by the gRPC servicer) ------------------------------------

    def report_inventory(self, device_id: str, inv: agent_control_pb2.Inventory) -> int:
        """Accept an agent's backlog (DemandError, nothing changed, if it cannot be true;
        NotLeaderError on a follower)."""
        self._require_leader()
        now = self._clock.now_us()
        with self._lock:
            deadlines = dict(self._deadlines)
        try:
            demand = demand_from_inventory(
                inv,
                authenticated_device=device_id,
                now_us=now,
                evidence_deadlines=deadlines,
                max_age_s=self.options.inventory_max_age_s,
            )
            report = device_report(inv)
        except DemandError:
            with self._lock:
                self.counters["refused"] += 1
            raise
        with self._lock:
            self.counters["inventories"] += 1
            self._ensure_device(device_id)
            self._reports[device_id] = report
            if device_id in self._streams:
                self._planner.report(demand)
                self._dirty = True
            else:
                self._waiting[device_id] = inv  # planned once its lease stream opens
            version = self._planner.plan.version
        self._wake.set()
        return version

    def connect(self, device_id: str) -> LeaseBox:
        """A lease stream opened; an older stream of the same device is closed
        (NotLeaderError on a follower)."""
        self._require_leader()
        box: LeaseBox = Mailbox()
        with self._lock:
            if not self._term or self._term != self._current_term():  # lost meanwhile
                box.close()
                raise NotLeaderError("not the scheduler leader (the leadership just changed)")
            old = self._streams.get(device_id)
            if old is not None:
                old.close()
            self._streams[device_id] = box
            self._ensure_device(device_id)
            waiting = self._waiting.pop(device_id, None)
            if waiting is not None:
                try:
                    self._planner.report(
                        demand_from_inventory(
                            waiting,
                            authenticated_device=device_id,
                            now_us=self._clock.now_us(),
                            evidence_deadlines=self._deadlines,
                            max_age_s=self.options.inventory_max_age_s,
                        )
                    )
                except DemandError as exc:
                    log.info("device %s: stale inventory dropped: %s", device_id, exc)
            self._push(device_id)
            self._dirty = True
        log.info("device %s: lease stream open", device_id)
        self._wake.set()
        return box

    def disconnect(self, device_id: str, box: LeaseBox) -> None:
        """A lease stream ended: the device's leases and demand are void."""
        box.close()
        with self._lock:
            if self._streams.get(device_id) is not box:
                return  # replaced by a newer stream of the same device
            del self._streams[device_id]
            lease = self._book.forget(device_id)
            if lease is not None:
                self.counters["leases_forgotten"] += 1
                self._probe.update(lease.segment_ids())
            self._planner.forget(device_id)
            self._planner.release([device_id])
            self._dirty = True
        log.info("device %s: lease stream closed; its leases are void", device_id)
        self._wake.set()

    def finish_lease(self, device_id: str, report: agent_control_pb2.LeaseReport) -> None:
        """The agent is done with a lease (LeaseError if it is not this device's;
        NotLeaderError on a follower)."""
        self._require_leader()
        with self._lock:
            finished = self._book.finish(
                device_id, report.lease_id, report.done_segment_ids, report.failed_segment_ids
            )
            self.counters["lease_reports"] += 1
            if finished.lease is None:
                return  # a lease replaced meanwhile: nothing to re-plan
            self.counters["leases_finished"] += 1
            self._probe.update(finished.lease.segment_ids())
            demand = self._planner.demand(device_id)
            if demand is not None:
                self._planner.report(without_segments(demand, finished.done))
            self._planner.release([device_id])
            self._dirty = True
        self._wake.set()

    # -- views -------------------------------------------------------------------------------

    @property
    def topology(self) -> Topology:
        return self._planner.topology

    def lease(self, device_id: str) -> IssuedLease | None:
        with self._lock:
            return self._book.active(device_id)

    def connected(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._streams)

    def delivery(self) -> list[LinkDelivery]:
        """Planned against delivered bit/s per link carrying anything."""
        if self._follower_view is not None and not self._current_term():
            return self._leaders_snapshot(self._follower_view).links
        now = self._clock.now_us()
        with self._lock:
            return self._delivery(now)

    def snapshot(self) -> Snapshot:
        """The city's plan: this replica's, or on a follower with a board the leader's as
        published (what the HTTP API shows)."""
        if self._follower_view is not None and not self._current_term():
            return self._leaders_snapshot(self._follower_view)
        return self.local_snapshot()

    def local_snapshot(self) -> Snapshot:
        """This replica's own scheduler state (empty on a follower): what /metrics counts,
        so a sum over replicas counts every lease once."""
        now = self._clock.now_us()
        with self._lock:
            return upkeep.snapshot(
                self._planner, self._book, self._meter, frozenset(self._streams), now,
                dict(self.counters), self._delivery(now),
            )  # fmt: skip

    def _leaders_snapshot(self, view: FollowerView) -> Snapshot:
        """The published plan; its devices get default links here too (topology views)."""
        snap = view.snapshot()
        with self._lock:
            topology = self._planner.topology
            known = topology.compiled.device_index
            unknown = [d.device_id for d in snap.devices if d.device_id not in known]
            if unknown:  # one recompile for all of them
                self._planner.set_topology(
                    with_default_links(topology, unknown, self.options.default_link_bps)
                )
        return snap

    def _publish(self, term: int) -> None:
        """(leader) Pin the plan for the followers, every PUBLISH_S at most."""
        mono = self._clock.monotonic()
        if self._board is None or mono - self._last_publish < PUBLISH_S:
            return
        self._last_publish = mono
        self._board.publish(self.snapshot(), term)

    def _delivery(self, now_us: int) -> list[LinkDelivery]:
        plan = self._planner.plan
        planned = {link: sum(loads) for link, loads in plan.link_loads.items()}
        return link_delivery(self._planner.topology, planned, self._meter.rates(now_us))

    # -- topology ------------------------------------------------------------------------------

    def set_topology(self, topology: Topology) -> None:
        """Plan on `topology` from now on (TopologyError/DemandError: nothing changes).

        Connected devices it does not list keep their default links.
        """
        with self._lock:
            known = topology.compiled.device_index
            extra = [d for d in self._streams.keys() | self._reports.keys() if d not in known]
            if extra:
                topology = with_default_links(topology, extra, self.options.default_link_bps)
            self._planner.set_topology(topology)
            self._dirty = True
        self._wake.set()

    def reload_topology(self) -> None:
        """Re-read the topology file (a bad file raises and the plan stays as it was)."""
        if not self.options.topology_path:
            raise DemandError("no topology file is configured")
        self.set_topology(load_topology(self.options.topology_path))

    def _ensure_device(self, device_id: str) -> None:
        """(lock held) Give a device missing from the topology its own default link."""
        topology = self._planner.topology
        if device_id in topology.compiled.device_index:
            return
        log.info("device %s is not in the topology: own link of %d bit/s under the root",
                 device_id, self.options.default_link_bps)  # fmt: skip
        self._planner.set_topology(
            with_default_links(topology, [device_id], self.options.default_link_bps)
        )

    # -- the loop ------------------------------------------------------------------------------

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.options.tick_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.tick()
            except Exception:
                log.exception("scheduler tick failed; will retry")

    def tick(self) -> None:
        """One round of the loop (public so tests can drive it with a manual clock)."""
        if not self._follow_leadership():
            return
        mono = self._clock.monotonic()
        if mono - self._last_upkeep >= self.options.progress_interval_s:
            self._last_upkeep = mono
            self.counters["upkeeps"] += 1
            try:
                self._run_upkeep()
            except NotLeaderError as exc:  # deposed: the next tick closes everything
                log.info("scheduler upkeep stopped: %s", exc)
            except Exception:  # the database may be down: leases must keep flowing
                log.exception("scheduler upkeep (jobs, delivery) failed; will retry")
        now = self._clock.now_us()
        with self._lock:
            for lease in self._book.expired(now):
                self.counters["leases_reclaimed"] += 1
                self._probe.update(lease.segment_ids())
                self._planner.release([lease.device_id])
                self._dirty = True
                log.info("lease %s of %s reclaimed: not finished in time",
                         lease.lease_id, lease.device_id)  # fmt: skip
            if self._dirty or mono - self._last_replan >= self.options.replan_interval_s:
                if self._term == self._current_term():  # not lost while upkeep ran
                    self._replan(now, mono)

    # -- leadership ----------------------------------------------------------------------------

    @property
    def leadership(self) -> Leadership:
        return self._leadership

    def _current_term(self) -> int:
        """The epoch this replica leads in now, 0 if it does not (memory only, no I/O)."""
        return self._leadership.epoch() if self._leadership.is_leader() else 0

    def _follow_leadership(self) -> bool:
        """Bring the state to the current term (see the module docstring); True if leading."""
        term = self._current_term()
        if term == self._term:
            return term != 0
        with self._lock:
            if term != self._term:
                self._change_term(term)
        self._wake.set()
        return term != 0

    def _require_leader(self) -> None:
        if not self._follow_leadership():
            raise NotLeaderError(
                f"not the scheduler leader (leader: {self._leadership.leader_address() or '?'})"
            )

    def _change_term(self, term: int) -> None:
        """(lock held) Close every lease stream and start from nothing in `term`."""
        streams = len(self._streams)
        for box in self._streams.values():
            box.close()
        self._streams.clear()
        self._waiting.clear()
        self._reports.clear()
        self._holds.clear()
        self._deadlines = {}
        self._probe.clear()
        opt = self.options
        self._planner = Planner(self._planner.topology, opt.plan_config(), opt.hysteresis)
        self._book = LeaseBook()
        self._meter = DeliveryMeter(opt.delivery_window_s)
        self._upkeep.new_term(term if self._fence_writes else 0)
        self._last_upkeep = self._last_replan = self._last_publish = -1e18  # all at once
        self._dirty = True
        if term:
            self.counters["terms"] += 1
            log.info("scheduler leads (epoch %d): planning from scratch; %d stream(s) closed",
                     term, streams)  # fmt: skip
        else:
            log.info("scheduler follows (epoch %d ended): %d lease stream(s) closed, "
                     "leases void", self._term, streams)  # fmt: skip
        self._term = term

    def _replan(self, now: int, mono: float) -> None:
        """(lock held) Plan afresh and hand out the leases that changed."""
        self._dirty = False
        self._last_replan = mono
        started = time.perf_counter()
        changed = self._planner.replan(now)
        self.counters["replans"] += 1
        # Total time spent planning (µs): /metrics shows it, rate ÷ rate(replans) = mean.
        self.counters["replan_us"] += int((time.perf_counter() - started) * 1_000_000)
        plan = self._planner.plan
        for device_id in self._streams:
            dp = plan.devices.get(device_id)
            active = self._book.active(device_id)
            has_work = dp is not None and bool(dp.segments) and dp.total_bps > 0
            if has_work and dp is not None and (device_id in changed or active is None):
                lease = make_lease(uuid.uuid4().hex[:16], dp, now, self._ttl_us, plan.version)
                replaced = self._book.issue(lease)
                if replaced is not None:  # its commits still count as delivered
                    self._probe.update(replaced.segment_ids())
                self.counters["leases_issued"] += 1
                self._push(device_id)
            elif not has_work and active is not None:
                self._book.forget(device_id)
                self.counters["leases_withdrawn"] += 1
                self._probe.update(active.segment_ids())
                self._push(device_id)

    def _push(self, device_id: str) -> None:
        """(lock held) Send the device its current lease and holds (replacing anything
        not yet sent: every message carries the whole state)."""
        box = self._streams.get(device_id)
        if box is not None:
            msg = lease_message(
                self._book.active(device_id),
                self._holds.get(device_id, ()),
                self._planner.plan.version,
            )
            box.put(msg)

    def _run_upkeep(self) -> None:
        """Jobs (holds, deadlines, progress) and delivery measurement; database I/O."""
        with self._lock:
            term = self._term
            probe = set(self._probe)
            for lease in self._book.leases():
                probe.update(lease.segment_ids())
            probe -= {sid for sid in probe if self._meter.counted(sid)}
            online = frozenset(self._streams)
            reports = dict(self._reports)
            rates = self._meter.rates(self._clock.now_us())
            for device, dp in self._planner.plan.devices.items():
                rates[device] = rates.get(device) or dp.total_bps
        result = self._upkeep.run(probe, online, reports, rates)
        with self._lock:
            if self._term != term:
                return  # the leadership changed meanwhile: this result belongs to no one
            for device_id, segment_id, size, at_us in result.committed:
                self._meter.record(device_id, segment_id, size, at_us)
            self._probe -= probe
            if result.deadlines != self._deadlines:
                self._deadlines = result.deadlines
                self._dirty = True
            for device_id in set(result.holds) | set(self._holds):
                new = result.holds.get(device_id, ())
                if new != self._holds.get(device_id, ()):
                    self._holds[device_id] = new
                    self._push(device_id)
                    self._dirty = True
        self._publish(term)


__all__ = ["SchedulerOptions", "SchedulerService"]
