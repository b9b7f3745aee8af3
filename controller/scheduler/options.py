"""The scheduler service's tunables and where its topology comes from.

A topology file (TOML or JSON, see topology_file.py) describes the city's links; without
one, every device gets its own uplink of `default_link_bps` under one city root. A device
that connects but is not in the file is attached the same way (and logged), so a new NVR
uploads at a modest default rate until an operator places it in the topology.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from controller.scheduler.model import Device, Link
from controller.scheduler.plan import PlanConfig
from controller.scheduler.topology import Topology
from controller.scheduler.topology_file import format_of, parse_topology

ROOT_LINK = "city"


@dataclass(frozen=True, slots=True)
class SchedulerOptions:
    """Tunables; the defaults suit a city, tests shorten the times."""

    topology_path: str = ""  # TOML or JSON (see topology_file.py); "" = the default topology
    default_link_bps: int = 8_000_000  # a device not in the topology gets its own link
    root_bps: int = 10_000_000_000
    horizon_s: float = 10.0
    evidence_horizon_s: float = 1.0
    max_lease_segments: int = 64
    hysteresis: float = 0.1
    lease_grace_s: float = 5.0
    tick_s: float = 0.5  # how often leases are checked (expiry) and changes planned
    replan_interval_s: float = 5.0  # a replan at least this often, changes or not
    # After a replan, changes wait this long (or as long as that replan took, if longer)
    # for the next one, so a burst of inputs is planned together, not one plan per input.
    coalesce_s: float = 0.2
    progress_interval_s: float = 2.0  # jobs and delivery read from the database
    delivery_window_s: float = 30.0
    inventory_max_age_s: float = 300.0

    def plan_config(self) -> PlanConfig:
        return PlanConfig(self.horizon_s, self.evidence_horizon_s, self.max_lease_segments)


def load_topology(path: str) -> Topology:
    """A topology file (TopologyError naming the problem if unusable)."""
    text = Path(path).read_text(encoding="utf-8")
    topology, _sites = parse_topology(text, format_of(path))
    return topology


def default_topology(root_bps: int) -> Topology:
    return Topology((Link(ROOT_LINK, None, root_bps),))


def with_default_links(topology: Topology, devices: Sequence[str], bps: int) -> Topology:
    """`topology` plus, for each device, its own `bps` link under the root."""
    root = topology.compiled.link_ids[0]
    links = [Link(f"{d}.uplink", root, bps) for d in devices]
    return topology.with_changes(
        upsert_links=links, upsert_devices=[Device(d, f"{d}.uplink") for d in devices]
    )
