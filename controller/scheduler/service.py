"""`SchedulerService`: the planner in a running controller (the imperative shell).

The state and what each input does to it live in `LeaseDesk` (desk.py, pure). This shell
owns the rest: one lock around the desk, each agent's lease stream (a mailbox), the
leadership, and two threads:

- "scheduler" reclaims expired leases and replans when something changed (an inventory, a
  stream opening or ending, a lease finished, a footage request, a topology change) and
  every `replan_interval_s` anyway. Changes are coalesced: a replan comes no sooner after
  the previous one than `coalesce_s` or the time that one took, so ten thousand agents
  connecting cost a handful of plans, never one each, and planning takes at most half of
  this thread's time. Each changed lease is pushed right after its replan.
- "scheduler-upkeep", every `progress_interval_s` and outside the lock (a slow database
  never delays a replan), reads footage requests (holds go to the agents in every lease
  message and over MQTT, deadlines to the planner, progress is saved) and the catalog's
  commits of leased segments (`delivery()`).

RPC handlers (grpc_service.py) only record (microseconds under the lock); an inventory is
checked by its caller and queued without the lock (`_locked` records it for whoever takes the
lock next), so reports never queue behind a replan; a bad one raises DemandError and changes
nothing. Only the city's leader plans (controller/leader); a
follower plans nothing, runs no upkeep, refuses inputs (NotLeaderError). Losing the
leadership closes every lease stream and forgets all state; a new term starts empty and
reads the jobs at once (the old leader's leases are void; agents report again). Uploads need
no lease to be safe: ingest commits a segment once by id and hash.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial

from controller.catalog import Catalog
from controller.clock import Clock
from controller.jobs.store import JobStore
from controller.jobs.tracker import JobTracker
from controller.leader import Leadership, NotLeaderError, SoleLeader
from controller.scheduler import upkeep
from controller.scheduler.board import PUBLISH_S, FollowerView, PlanBoard
from controller.scheduler.convert import device_report
from controller.scheduler.desk import LeaseDesk, new_counters
from controller.scheduler.inventory import demand_from_inventory
from controller.scheduler.leases import IssuedLease, LinkDelivery, lease_ids
from controller.scheduler.loops import SchedulerLoops
from controller.scheduler.mailbox import Mailbox
from controller.scheduler.model import DemandError
from controller.scheduler.options import SchedulerOptions, default_topology, load_topology
from controller.scheduler.state import compute
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
        self.counters = new_counters()
        self._desk = LeaseDesk(topology, opt, lease_ids(), self.counters)
        self._upkeep = upkeep.Upkeep(
            catalog, clock, jobs or JobTracker(JobStore(catalog.engine), catalog, clock), fleet
        )
        self._lock = threading.Lock()
        # Reports checked but not yet on the desk (report_inventory; `_locked` records them).
        self._inbox: deque[Callable[[LeaseDesk], None]] = deque()  # append/popleft: atomic
        self._planning = threading.Lock()
        self._streams: dict[str, LeaseBox] = {}
        self._loops = SchedulerLoops(
            opt, clock, self._plan_round, self._upkeep_round,
            lambda: (self._last_replan, self._replan_s),
        )  # fmt: skip
        self._last_replan = -1e18
        self._replan_s = 0.0  # how long the last replan took
        self._last_upkeep = -1e18
        # The leadership epoch this state belongs to (0: following, nothing planned).
        self._term = self._leadership.epoch() if self._leadership.is_leader() else 0

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """The desk's lock, with the inventories checked since it was last taken recorded
        first (in arrival order): whoever reads or changes the desk sees every report made
        before, as if each had taken the lock itself."""
        with self._lock:
            inbox, desk = self._inbox, self._desk
            while inbox:
                try:
                    inbox.popleft()(desk)
                except Exception:  # checked before queueing: a bug, not the caller's fault
                    log.exception("recording a queued inventory failed; it is dropped")
            yield

    def start(self) -> None:
        self._loops.start()

    def stop(self) -> None:
        with self._locked():
            for box in self._streams.values():
                box.close()
        self._loops.stop()

    def poke(self) -> None:
        """Something outside changed (a footage request was made): look now, not later."""
        with self._locked():
            self._last_upkeep = -1e18
            self._desk.dirty = True
        self._loops.wake_upkeep()
        self._loops.wake()

    def set_live(self, device_id: str, bps: int) -> None:
        """The device's live feeds now total `bps` (live_feeds.py): LIVE demand, planned first."""
        with self._locked():
            self._desk.set_live(device_id, bps)
        self._loops.wake()

    # -- inputs from agents (called by the gRPC servicer) ------------------------------------

    def report_inventory(self, device_id: str, inv: agent_control_pb2.Inventory) -> int:
        """Accept an agent's backlog (DemandError, nothing changed, if it cannot be true;
        NotLeaderError on a follower). Planned at the next replan, not here.

        Checked here, recorded by whoever takes the lock next (`_locked`): a report never
        waits for the lock, which a replan of a large fleet holds for tens of milliseconds
        (10,000 agents reporting: ~0.3 s mean per call queued on it)."""
        self._require_leader()
        now = self._clock.now_us()
        deadlines = self._desk.deadlines  # replaced whole, never changed in place
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
            self._inbox.append(_count_refusal)
            raise
        self._inbox.append(partial(LeaseDesk.inventory, device_id=device_id, inv=inv,
                                   demand=demand, report=report))  # fmt: skip
        self._loops.wake()
        return self._desk.planner.version  # an int, replaced whole

    def connect(self, device_id: str) -> LeaseBox:
        """A lease stream opened; an older stream of the same device is closed
        (NotLeaderError on a follower). Its first lease follows the next replan."""
        self._require_leader()
        box: LeaseBox = Mailbox()
        with self._locked():
            if not self._term or self._term != self._current_term():  # lost meanwhile
                box.close()
                raise NotLeaderError("not the scheduler leader (the leadership just changed)")
            old = self._streams.get(device_id)
            if old is not None:
                old.close()
            self._streams[device_id] = box
            dropped = self._desk.connect(device_id, self._clock.now_us())
            box.put(self._desk.message(device_id))
        if dropped:
            log.info("device %s: stale inventory dropped: %s", device_id, dropped)
        log.debug("device %s: lease stream open", device_id)
        self._loops.wake()
        return box

    def disconnect(self, device_id: str, box: LeaseBox) -> None:
        """A lease stream ended: the device's leases and demand are void."""
        box.close()
        with self._locked():
            if self._streams.get(device_id) is not box:
                return  # replaced by a newer stream of the same device
            del self._streams[device_id]
            self._desk.disconnect(device_id)
        log.debug("device %s: lease stream closed; its leases are void", device_id)
        self._loops.wake()

    def finish_lease(self, device_id: str, report: agent_control_pb2.LeaseReport) -> None:
        """The agent is done with a lease (LeaseError if it is not this device's;
        NotLeaderError on a follower)."""
        self._require_leader()
        with self._locked():
            self._desk.finish(device_id, report)
        self._loops.wake()

    # -- views -------------------------------------------------------------------------------

    @property
    def topology(self) -> Topology:
        return self._desk.planner.topology

    def lease(self, device_id: str) -> IssuedLease | None:
        with self._locked():
            return self._desk.book.active(device_id)

    def unsent(self, device_id: str, camera_id: str) -> list[tuple[int, int]]:
        """(start, end) µs of the camera's unsent segments in its agent's last inventory."""
        with self._locked():
            return self._desk.unsent(device_id, camera_id)

    def connected(self) -> frozenset[str]:
        with self._locked():
            return frozenset(self._streams)

    def delivery(self) -> list[LinkDelivery]:
        """Planned against delivered bit/s per link carrying anything."""
        if self._follower_view is not None and not self._current_term():
            return self._leaders_snapshot(self._follower_view).links
        now = self._clock.now_us()
        with self._locked():
            return self._desk.delivery(now)

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
        with self._locked():
            desk = self._desk
            return upkeep.snapshot(
                desk.planner, desk.book, desk.meter, frozenset(self._streams), now,
                dict(self.counters), desk.delivery(now),
            )  # fmt: skip

    def _leaders_snapshot(self, view: FollowerView) -> Snapshot:
        """The published plan; its devices get default links here too (topology views)."""
        snap = view.snapshot()
        with self._locked():  # one topology change for all of them
            self._desk.add_devices(d.device_id for d in snap.devices)
        return snap

    # -- topology ------------------------------------------------------------------------------

    def set_topology(self, topology: Topology) -> None:
        """Plan on `topology` from now on (TopologyError/DemandError: nothing changes).

        Connected devices it does not list keep their default links.
        """
        with self._locked():
            self._desk.set_topology(topology)
        self._loops.wake()

    def reload_topology(self) -> None:
        """Re-read the topology file (a bad file raises and the plan stays as it was)."""
        if not self.options.topology_path:
            raise DemandError("no topology file is configured")
        self.set_topology(load_topology(self.options.topology_path))

    # -- the rounds ----------------------------------------------------------------------------

    def tick(self) -> None:
        """One round of both loops (public so tests can drive it with a manual clock)."""
        self._upkeep_round()
        self._plan_round()

    def _upkeep_round(self) -> None:
        """The database round, when due (on the upkeep thread)."""
        if not self._follow_leadership():
            return
        mono = self._clock.monotonic()
        if mono - self._last_upkeep < self.options.progress_interval_s:
            return
        self._last_upkeep = mono
        self.counters["upkeeps"] += 1
        try:
            self._run_upkeep()
        except NotLeaderError as exc:  # deposed: the next round closes everything
            log.info("scheduler upkeep stopped: %s", exc)
        except Exception:  # the database may be down: leases must keep flowing
            log.exception("scheduler upkeep (jobs, delivery) failed; will retry")
        self._loops.wake()  # new holds or deadlines: plan with them now

    def _plan_round(self) -> None:
        """Reclaim expired leases; replan if anything changed and push the changed leases
        at once. The plan is computed outside the lock: inputs keep flowing meanwhile (the
        desk defers the devices they touch to the next replan)."""
        if self._follow_leadership():
            with self._planning:  # one replan at a time (the loop, or a test's tick())
                self._replan()

    def _replan(self) -> None:
        mono = self._clock.monotonic()
        now = self._clock.now_us()
        started = time.perf_counter()
        with self._locked():
            for lease in self._desk.reclaim(now):
                log.info("lease %s of %s reclaimed: not finished in time",
                         lease.lease_id, lease.device_id)  # fmt: skip
            due = mono - self._last_replan >= self.options.replan_interval_s
            if not (self._desk.dirty or due) or self._term != self._current_term():
                return
            self._last_replan = mono
            desk, placed = self._desk, self.counters["devices_placed"]
            inputs = desk.begin_replan()
        merged, changed = compute(inputs, now)
        with self._locked():
            if self._desk is not desk:
                return  # the leadership changed meanwhile: this plan belongs to no one
            for device_id in desk.end_replan(inputs, merged, changed, now):
                self._push(device_id)
        self._replan_s = time.perf_counter() - started
        # Total time spent planning (µs): /metrics shows it, rate ÷ rate(replans) = mean.
        self.counters["replan_us"] += int(self._replan_s * 1_000_000)
        if self.counters["devices_placed"] > placed:
            log.info("%d device(s) not in the topology: own link of %d bit/s under the root",
                     self.counters["devices_placed"] - placed,
                     self.options.default_link_bps)  # fmt: skip

    def _push(self, device_id: str) -> None:
        """(lock held) Its lease and holds to the device (replacing what was not sent)."""
        box = self._streams.get(device_id)
        if box is not None:
            box.put(self._desk.message(device_id))

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
        with self._locked():
            if term != self._term:
                self._change_term(term)
        self._loops.wake()
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
        self._desk = self._desk.fresh()
        self._upkeep.new_term(term if self._fence_writes else 0)
        self._last_upkeep = self._last_replan = self._last_publish = -1e18  # all at once
        if term:
            self.counters["terms"] += 1
            log.info("scheduler leads (epoch %d): planning from scratch; %d stream(s) closed",
                     term, streams)  # fmt: skip
        else:
            log.info("scheduler follows (epoch %d ended): %d lease stream(s) closed, "
                     "leases void", self._term, streams)  # fmt: skip
        self._term = term

    # -- the database round --------------------------------------------------------------------

    def _run_upkeep(self) -> None:
        """Jobs (holds, deadlines, progress) and delivery measurement; database I/O."""
        with self._locked():
            term = self._term
            desk = self._desk
            asked = desk.upkeep_input(self._clock.now_us())
        result = self._upkeep.run(
            asked.probe, asked.online, asked.reports, asked.rates, asked.classes
        )
        with self._locked():
            if self._term != term or self._desk is not desk:
                return  # the leadership changed meanwhile: this result belongs to no one
            for device_id in desk.upkeep_done(
                asked, result.committed, result.holds, result.deadlines
            ):
                self._push(device_id)
        mono = self._clock.monotonic()
        if self._board is not None and mono - self._last_publish >= PUBLISH_S:
            self._last_publish = mono  # (leader) the plan pinned for the followers
            self._board.publish(self.snapshot(), term)


def _count_refusal(desk: LeaseDesk) -> None:
    desk.counters["refused"] += 1


__all__ = ["LeaseBox", "SchedulerOptions", "SchedulerService"]
