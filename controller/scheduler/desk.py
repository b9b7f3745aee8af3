"""`LeaseDesk`: the scheduler's state in one leadership term and what each input does to it.

Pure: no I/O, no threads, no clock (times are arguments, lease ids come from a callable), so
it is unit-tested directly. SchedulerService (service.py) wraps it in a lock, a loop thread
and the agents' lease streams, and does the database work around it.

Inputs only record and mark the desk dirty; planning happens in `replan`, which the service
calls at most once per tick (and not sooner than the last replan took), so a storm of ten
thousand connects and inventories costs a few plans, not one per agent:

- a device missing from the topology is queued, and `replan` places every queued device
  under the root with its own default link in ONE topology change (one compile, not one
  per device: compiling a 10,000-device topology takes ~50 ms);
- the demand of a device not placed yet waits beside the queue and joins the planner once
  the device is placed; an inventory that arrives before the device's lease stream opens
  waits until it opens (it is checked again for age then);
- a finished, expired or forgotten lease releases the device's share lazily
  (Planner.release), so a thousand lease reports a second do not copy the plan each.

`replan` returns the devices whose stream message changed (a new lease or a withdrawn one);
the service pushes those at once, so a lease reaches its agent right after the plan is made.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from controller.jobs.tracker import DeviceReport, HoldWanted
from controller.scheduler.convert import lease_message
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
from controller.scheduler.live_feeds import lease_plan, with_live
from controller.scheduler.model import DemandError, DeviceDemand
from controller.scheduler.options import SchedulerOptions, with_default_links
from controller.scheduler.plan import Plan
from controller.scheduler.state import PlanInputs, Planner, compute
from controller.scheduler.topology import Topology
from protos.vigil.v1 import agent_control_pb2

COUNTERS = (
    "replans", "leases_issued", "leases_withdrawn", "leases_reclaimed", "leases_finished",
    "leases_forgotten", "lease_reports", "inventories", "refused", "replan_us", "terms",
    "upkeeps", "devices_placed", "placements",
)  # fmt: skip


def new_counters() -> dict[str, int]:
    return dict.fromkeys(COUNTERS, 0)


@dataclass(frozen=True, slots=True)
class UpkeepInput:
    """What the database round needs from the desk (copied: it runs outside the lock)."""

    probe: set[str]
    online: frozenset[str]
    reports: dict[str, DeviceReport]
    rates: dict[str, int]
    classes: dict[str, int] = field(default_factory=dict)  # probed segment -> leased class
    at_us: int = 0  # when asked


class LeaseDesk:
    """See the module docstring. `counters` is the service's, kept across terms."""

    def __init__(
        self,
        topology: Topology,
        options: SchedulerOptions,
        lease_ids: Callable[[], str],
        counters: dict[str, int] | None = None,
    ) -> None:
        self.options = options
        self.planner = Planner(topology, options.plan_config(), options.hysteresis)
        self.book = LeaseBook()
        self.meter = DeliveryMeter(options.delivery_window_s)
        self.counters = counters if counters is not None else new_counters()
        self._ttl_us = lease_ttl_us(options.plan_config(), options.lease_grace_s)
        self._lease_ids = lease_ids
        self.online: set[str] = set()  # devices with an open lease stream
        self.reports: dict[str, DeviceReport] = {}
        self.holds: dict[str, tuple[HoldWanted, ...]] = {}
        # Replaced whole by each database round, never changed in place (callers may keep it).
        self.deadlines: dict[str, int] = {}
        self.probe: set[str] = set()  # segment ids of leases to look for in the catalog
        self.probe_classes: dict[str, int] = {}  # their classes as leased (same keys)
        self.probe_until: dict[str, int] = {}  # when to stop looking for each (same keys)
        self.dirty = True
        self._waiting: dict[str, agent_control_pb2.Inventory] = {}  # no stream open yet
        self._unplaced: dict[str, None] = {}  # devices to give a default link (in order)
        self._parked: dict[str, DeviceDemand] = {}  # demand of online devices not placed yet
        self.live: dict[str, int] = {}  # bit/s of each device's running live feeds (live_feeds.py)
        self._stale: set[str] = set()  # devices with inputs since the replan began

    def fresh(self) -> LeaseDesk:
        """An empty desk for a new leadership term, on the same topology; running live
        feeds carry over (they do not depend on the term)."""
        desk = LeaseDesk(self.planner.topology, self.options, self._lease_ids, self.counters)
        desk.live = self.live
        return desk

    # -- inputs ----------------------------------------------------------------------------

    def inventory(
        self,
        device_id: str,
        inv: agent_control_pb2.Inventory,
        demand: DeviceDemand,
        report: DeviceReport,
    ) -> None:
        """A checked inventory (`demand` and `report` derived from `inv`)."""
        self.counters["inventories"] += 1
        self._stale.add(device_id)
        self._queue_placement(device_id)
        self.reports[device_id] = report
        if device_id in self.online:
            self._report(demand)
            self.dirty = True
        else:
            self._waiting[device_id] = inv  # planned once its lease stream opens

    def connect(self, device_id: str, now_us: int) -> str:
        """A lease stream opened. Returns why an inventory that waited for it was dropped
        ('' if none was, or it was planned)."""
        self.online.add(device_id)
        self._stale.add(device_id)
        self._queue_placement(device_id)
        self.dirty = True
        waiting = self._waiting.pop(device_id, None)
        if waiting is None:
            return ""
        try:
            self._report(
                demand_from_inventory(
                    waiting,
                    authenticated_device=device_id,
                    now_us=now_us,
                    evidence_deadlines=self.deadlines,
                    max_age_s=self.options.inventory_max_age_s,
                )
            )
        except DemandError as exc:
            return str(exc)
        return ""

    def disconnect(self, device_id: str) -> None:
        """A lease stream ended: the device's lease and demand are void."""
        self.online.discard(device_id)
        self._stale.add(device_id)
        self._parked.pop(device_id, None)
        lease = self.book.forget(device_id)
        if lease is not None:
            self.counters["leases_forgotten"] += 1
            self._probe(lease)
        self.planner.forget(device_id)
        self.planner.release([device_id])
        self.dirty = True

    def finish(self, device_id: str, report: agent_control_pb2.LeaseReport) -> None:
        """The agent is done with a lease (LeaseError if it is not this device's)."""
        finished = self.book.finish(
            device_id, report.lease_id, report.done_segment_ids, report.failed_segment_ids
        )
        self.counters["lease_reports"] += 1
        if finished.lease is None:
            return  # a lease replaced meanwhile: nothing to re-plan
        self.counters["leases_finished"] += 1
        self._stale.add(device_id)
        self._probe(finished.lease)
        demand = self.planner.demand(device_id)
        if demand is not None:
            self.planner.report(without_segments(demand, finished.done))
        self.planner.release([device_id])
        self.dirty = True

    def reclaim(self, now_us: int) -> list[IssuedLease]:
        """Take back the leases not finished by their expiry; returns them."""
        expired = self.book.expired(now_us)
        for lease in expired:
            self.counters["leases_reclaimed"] += 1
            self._stale.add(lease.device_id)
            self._probe(lease)
            self.planner.release([lease.device_id])
            self.dirty = True
        return expired

    # -- topology --------------------------------------------------------------------------

    def set_topology(self, topology: Topology) -> None:
        """Plan on `topology` from now on (TopologyError/DemandError: nothing changes).
        Devices it does not list that are connected, reported or queued keep (or get)
        their default links."""
        known = topology.compiled.device_index
        extra = [
            d for d in dict.fromkeys([*self.online, *self.reports, *self._unplaced])
            if d not in known
        ]  # fmt: skip
        if extra:
            topology = with_default_links(topology, extra, self.options.default_link_bps)
        self.planner.set_topology(topology)
        self._unplaced.clear()
        self._unpark()
        self.dirty = True

    def add_devices(self, device_ids: Iterable[str]) -> list[str]:
        """Give the devices missing from the topology their default links, all in one
        topology change; returns those added."""
        topology = self.planner.topology
        new = [d for d in dict.fromkeys(device_ids) if d not in topology.compiled.device_index]
        if new:
            self.planner.set_topology(
                with_default_links(topology, new, self.options.default_link_bps)
            )
            self.counters["placements"] += 1
            self.counters["devices_placed"] += len(new)
        return new

    def place_queued(self) -> list[str]:
        """Place every queued device (one topology change) and plan their parked demand."""
        if not self._unplaced:
            return []
        queued, self._unplaced = list(self._unplaced), {}
        added = self.add_devices(queued)
        self._unpark()
        return added

    def _queue_placement(self, device_id: str) -> None:
        if device_id not in self.planner.topology.compiled.device_index:
            self._unplaced[device_id] = None

    def set_live(self, device_id: str, bps: int) -> None:
        """The device's live feeds now run at `bps` in all (0: none): LIVE demand, planned first."""
        if bps > 0:
            self.live[device_id] = bps
        elif self.live.pop(device_id, None) is None:
            return
        if device_id in self.planner.topology.compiled.device_index:
            self.planner.report(with_live(self.planner.demand(device_id), device_id, bps))
            self._stale.add(device_id)
            self.dirty = True

    def _report(self, demand: DeviceDemand) -> None:
        demand = with_live(demand, demand.device_id, self.live.get(demand.device_id, 0))
        if demand.device_id in self._unplaced:
            self._parked[demand.device_id] = demand
        else:
            self.planner.report(demand)

    def _unpark(self) -> None:
        parked, self._parked = self._parked, {}
        for demand in parked.values():
            self._report(demand)

    # -- planning --------------------------------------------------------------------------

    def replan(self, now_us: int) -> list[str]:
        """Place queued devices, plan afresh, issue and withdraw leases; returns the online
        devices whose stream message changed. (`begin_replan`, `compute`, `end_replan` in
        one, for a caller that has nothing to do meanwhile.)"""
        inputs = self.begin_replan()
        merged, changed = compute(inputs, now_us)
        return self.end_replan(inputs, merged, changed, now_us)

    def begin_replan(self) -> PlanInputs:
        """Place queued devices and take the planner's inputs; the caller may `compute` the
        plan without its lock while inputs keep arriving, then `end_replan`."""
        self.place_queued()
        self.dirty = False
        self._stale = set()
        return self.planner.prepare()

    def end_replan(
        self, inputs: PlanInputs, merged: Plan, changed: frozenset[str], now_us: int
    ) -> list[str]:
        """Put the computed plan in force, issue and withdraw leases; returns the online
        devices whose stream message changed. Devices with inputs since `begin_replan`
        keep their lease and wait for the next replan (the desk stays dirty)."""
        stale, self._stale = self._stale, set()
        adopted = self.planner.adopt(inputs, merged, changed, stale)
        if adopted is None:  # the topology changed meanwhile
            self.dirty = True
            return []
        if stale:
            self.dirty = True
        self.counters["replans"] += 1
        plan = self.planner.plan
        touched = []
        for device_id in self.online:
            if device_id in stale:
                continue
            dp = plan.devices.get(device_id)
            if dp is not None:
                dp = lease_plan(dp, self.live.get(device_id, 0))  # the live feed is no lease's
            active = self.book.active(device_id)
            has_work = dp is not None and bool(dp.segments) and dp.total_bps > 0
            if has_work and dp is not None and (device_id in adopted or active is None):
                lease = make_lease(self._lease_ids(), dp, now_us, self._ttl_us, plan.version)
                replaced = self.book.issue(lease)
                if replaced is not None:  # its commits still count as delivered
                    self._probe(replaced)
                self.counters["leases_issued"] += 1
                touched.append(device_id)
            elif not has_work and active is not None:
                self.book.forget(device_id)
                self.counters["leases_withdrawn"] += 1
                self._probe(active)
                touched.append(device_id)
        return touched

    def unsent(self, device_id: str, camera_id: str) -> list[tuple[int, int]]:
        """(start, end) µs of the camera's unsent segments its last inventory listed."""
        report = self.reports.get(device_id)
        segments = report.pending.get(camera_id, []) if report is not None else []
        return [(s.start_us, s.start_us + s.duration_us) for s in segments]

    def message(self, device_id: str) -> agent_control_pb2.Lease:
        """The device's whole current state as one stream message (lease and holds)."""
        return lease_message(
            self.book.active(device_id), self.holds.get(device_id, ()), self.planner.version
        )

    # -- the database round ----------------------------------------------------------------

    def _probe(self, lease: IssuedLease) -> None:
        """A lease left the book: look for its segments in the catalog until they are found
        or an upload under it can no longer be under way: the agent may go on with one until
        the lease expires, and one in flight then commits within about one lease lifetime
        more. (Looked for once only, an upload committed after that round stayed
        unclassified, with no leader change: a reclaimed or replaced lease's last upload.)"""
        self.probe.update(lease.segment_ids())
        self.probe_classes.update(lease.classes())
        until = lease.expires_us + self._ttl_us
        for sid in lease.segment_ids():
            self.probe_until[sid] = max(until, self.probe_until.get(sid, 0))

    def upkeep_input(self, now_us: int) -> UpkeepInput:
        probe = set(self.probe)
        classes = dict(self.probe_classes)
        for lease in self.book.leases():
            probe.update(lease.segment_ids())
            classes.update(lease.classes())  # the active lease's class wins
        probe -= {sid for sid in probe if self.meter.counted(sid)}
        rates = self.meter.rates(now_us)
        for device, dp in self.planner.plan.devices.items():
            rates[device] = rates.get(device) or dp.total_bps
        classes = {sid: classes[sid] for sid in probe if sid in classes}
        return UpkeepInput(
            probe, frozenset(self.online), dict(self.reports), rates, classes, now_us
        )

    def upkeep_done(
        self,
        asked: UpkeepInput,
        committed: Iterable[tuple[str, str, int, int]],
        holds: dict[str, tuple[HoldWanted, ...]],
        deadlines: dict[str, int],
    ) -> list[str]:
        """Record a database round's findings; returns the devices whose holds changed."""
        found = set()
        for device_id, segment_id, size, at_us in committed:
            self.meter.record(device_id, segment_id, size, at_us)
            found.add(segment_id)
        settled = {
            sid for sid in self.probe if sid in found or self.probe_until.get(sid, 0) <= asked.at_us
        }
        self.probe -= settled
        for sid in settled:
            self.probe_classes.pop(sid, None)
            self.probe_until.pop(sid, None)
        if deadlines != self.deadlines:
            self.deadlines = deadlines
            self.dirty = True
        touched = []
        for device_id in set(holds) | set(self.holds):
            new = holds.get(device_id, ())
            if new != self.holds.get(device_id, ()):
                self.holds[device_id] = new
                touched.append(device_id)
                self.dirty = True
        return touched

    def delivery(self, now_us: int) -> list[LinkDelivery]:
        """Planned against delivered bit/s per link carrying anything."""
        plan = self.planner.plan
        planned = {link: sum(loads) for link, loads in plan.link_loads.items()}
        return link_delivery(self.planner.topology, planned, self.meter.rates(now_us))
