"""The scheduler's current state: topology, each device's latest demand, the current plan.

An in-memory object (no I/O, no threads), owned by whoever wires the controller. Each input
is checked whole before anything changes: a bad topology, an unknown device's report or a
report that cannot be true raises SchedulerError and leaves topology, demand and plan as
they were, so one faulty agent or one typo in an operator's change never disturbs the city.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from controller.scheduler.incremental import replan
from controller.scheduler.model import DemandError, DeviceDemand
from controller.scheduler.plan import Plan, PlanConfig
from controller.scheduler.topology import Topology


class Planner:
    """Holds the inputs of the next plan and the plan in force."""

    def __init__(
        self, topology: Topology, config: PlanConfig | None = None, hysteresis: float = 0.1
    ) -> None:
        self._topology = topology
        self._config = config or PlanConfig()
        self._hysteresis = hysteresis
        self._demands: dict[str, DeviceDemand] = {}
        self._plan = Plan.empty()
        # Released devices not yet dropped from `_plan`: dropping copies the plan's device
        # map, so a burst of releases (a thousand finished leases a second) costs one copy.
        self._released: set[str] = set()
        # Devices whose demand or plan in force changed since the plan in force was made:
        # the incremental replan looks only at their parts (incremental.py).
        self._touched: set[str] = set()

    @property
    def topology(self) -> Topology:
        return self._topology

    @property
    def plan(self) -> Plan:
        """The plan in force, without the devices released since it was made."""
        if self._released:
            drop = self._released & self._plan.devices.keys()
            self._released = set()
            if drop:
                kept = {d: p for d, p in self._plan.devices.items() if d not in drop}
                self._plan = replace(self._plan, devices=kept)
        return self._plan

    @property
    def version(self) -> int:
        """The plan's version (cheap: applies no pending release)."""
        return self._plan.version

    def demand(self, device_id: str) -> DeviceDemand | None:
        return self._demands.get(device_id)

    def set_topology(self, topology: Topology) -> None:
        """Use `topology` from the next replan on; refuse it if a reporting device is gone."""
        missing = sorted(d for d in self._demands if d not in topology.compiled.device_index)
        if missing:
            raise DemandError(
                "the new topology drops devices with backlog (forget them first): "
                + ", ".join(repr(m) for m in missing[:10])
            )
        self._topology = topology

    def report(self, demand: DeviceDemand) -> None:
        """Record a device's latest backlog, replacing its previous report."""
        if not isinstance(demand, DeviceDemand):
            raise DemandError(f"demand must be DeviceDemand, got {type(demand).__name__}")
        if demand.device_id not in self._topology.compiled.device_index:
            raise DemandError(f"device {demand.device_id!r} is not in the topology")
        self._demands[demand.device_id] = demand
        self._touched.add(demand.device_id)

    def forget(self, device_id: str) -> None:
        """Drop a device's demand (it went offline); unknown ids are ignored."""
        self._demands.pop(device_id, None)
        self._touched.add(device_id)

    def release(self, device_ids: Iterable[str]) -> None:
        """Drop these devices' share of the plan in force (their lease finished, expired or
        died with the connection): the next replan gives them a fresh plan and a new lease
        instead of keeping the old one through hysteresis. Applied when the plan is next
        read or replaced, so each call costs only the ids given."""
        ids = set(device_ids)
        self._released.update(ids)
        self._touched.update(ids)

    def replan(self, now_us: int) -> frozenset[str]:
        """Plan afresh at `now_us`; returns the devices whose leases must change."""
        inputs = self.prepare()
        merged, changed = compute(inputs, now_us)
        adopted = self.adopt(inputs, merged, changed, frozenset())
        assert adopted is not None  # nothing changed in between
        return adopted

    # A replan in three steps, so the caller can plan without holding its lock: `prepare`
    # and `adopt` under it (cheap), `compute` outside it (the work, pure).

    def prepare(self) -> PlanInputs:
        """What the next plan is made from (the demands copied: they may change meanwhile)."""
        return PlanInputs(
            self._topology, tuple(self._demands.values()), self.plan, self._config,
            self._hysteresis, frozenset(self._touched), dict(self._demands),
        )  # fmt: skip

    def adopt(
        self, inputs: PlanInputs, merged: Plan, changed: frozenset[str], stale: Iterable[str]
    ) -> frozenset[str] | None:
        """Put a computed plan in force; returns the devices whose leases must change, or
        None if the topology changed since `prepare` (nothing adopted: plan again).

        `stale`: devices with inputs since `prepare` (a new report, a finished lease, gone).
        Their part of `merged` was made from old inputs, so they keep their previous plan
        (the lease they hold), or none if released; their next replan decides for them.
        """
        if self._topology is not inputs.topology:
            return None
        stale = set(stale)
        released, self._released = self._released, set()
        adopted = frozenset(changed - stale - released)
        # What the next replan must look at: inputs since `prepare`, and every device whose
        # plan in force is not the one `merged` made for it (or is new).
        self._touched -= inputs.touched
        self._touched |= stale | released | adopted
        devices = dict(merged.devices)
        for d in stale:
            old = inputs.previous.devices.get(d)
            if old is None or d in released or d not in self._demands:
                devices.pop(d, None)
            else:
                devices[d] = old
        for d in released - stale:
            devices.pop(d, None)
        self._plan = replace(merged, devices=devices) if stale or released else merged
        return adopted


@dataclass(frozen=True, slots=True)
class PlanInputs:
    """A snapshot of a Planner's inputs (`Planner.prepare`)."""

    topology: Topology
    demands: tuple[DeviceDemand, ...]
    previous: Plan
    config: PlanConfig
    hysteresis: float
    touched: frozenset[str] = frozenset()  # see Planner._touched
    latest: Mapping[str, DeviceDemand] | None = None  # the demands by device (None: unknown)


def compute(inputs: PlanInputs, now_us: int) -> tuple[Plan, frozenset[str]]:
    """The plan for `inputs` at `now_us`, stabilised against the previous one, and the
    devices whose leases must change. Pure: safe to run without the caller's lock.

    Incremental (incremental.py): only the parts of the tree whose inputs changed since
    `inputs.previous` was made are planned again; the result is the full recompute's."""
    touched = inputs.touched if inputs.latest is not None else None
    return replan(
        inputs.topology, inputs.demands, inputs.previous, now_us, inputs.config,
        inputs.hysteresis, touched, inputs.latest,
    )  # fmt: skip
