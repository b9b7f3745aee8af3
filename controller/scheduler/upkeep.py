"""The scheduler's periodic database work, kept out of its lock: jobs and delivery.

Each round reads which leased segments the catalog has committed (delivered bytes per
device, by commit time), reads the open footage requests, works out the holds and evidence
deadlines they imply, sends `hold`/`release` commands over MQTT when a fleet service is
wired (the lease stream carries the holds too, so MQTT is a second path, not the only one),
and saves every open job's progress. `snapshot` gathers the service's state for the API.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from controller.catalog import Catalog, segment_queries
from controller.catalog.errors import CatalogError
from controller.catalog.history import HistoryCatalog
from controller.clock import Clock
from controller.fleet.commands import CommandError, build_command
from controller.jobs.model import JOB_OPEN, JobView
from controller.jobs.tracker import (
    DeviceReport,
    HoldWanted,
    JobTracker,
    desired_holds,
    evidence_deadlines,
)
from controller.leader import NotLeaderError
from controller.scheduler.leases import DeliveryMeter, LeaseBook, LinkDelivery
from controller.scheduler.model import CLASSES
from controller.scheduler.state import Planner
from protos.vigil.v1 import fleet_pb2

log = logging.getLogger("vigil.scheduler")


class CommandSender(Protocol):
    """What the scheduler needs of the fleet service (controller.fleet.FleetService)."""

    def send_command(self, device_id: str, command: fleet_pb2.Command) -> str: ...


@dataclass(frozen=True, slots=True)
class UpkeepResult:
    committed: list[tuple[str, str, int, int]]  # device, segment, bytes, committed_at_us
    holds: dict[str, tuple[HoldWanted, ...]]
    deadlines: dict[str, int]


def committed_segments(catalog: Catalog, ids: Iterable[str]) -> list[tuple[str, str, int, int]]:
    """(device, segment, size, committed_at_us) of those `ids` the catalog holds."""
    return segment_queries.committed_segments(catalog.engine, ids)


class HoldCommands:
    """`hold` over MQTT when a job is first seen open, `release` once it no longer is.

    Best effort, a second path: the lease stream carries every hold too. Commands use the
    job's hold tag as case id, so the agent's buffer hold is the very one the lease stream
    manages (idempotent by camera, range and case).
    """

    def __init__(self, fleet: CommandSender | None) -> None:
        self._fleet = fleet
        self._sent: dict[str, list[tuple[str, HoldWanted]]] = {}  # hold tag -> (device, hold)

    def sync(self, holds: Mapping[str, tuple[HoldWanted, ...]]) -> None:
        if self._fleet is None:
            return
        wanted: dict[str, list[tuple[str, HoldWanted]]] = {}
        for device, hs in holds.items():
            for h in hs:
                wanted.setdefault(h.tag, []).append((device, h))
        for tag, entries in wanted.items():
            if tag not in self._sent:
                self._sent[tag] = entries
                for device, h in entries:
                    self._command(device, "hold", h)
        for tag in [t for t in self._sent if t not in wanted]:
            for device, h in self._sent.pop(tag):
                self._command(device, "release", h)

    def forget(self) -> None:
        """Forget what was sent (a new leadership term: holds are sent again, idempotent)."""
        self._sent.clear()

    def _command(self, device: str, verb: str, h: HoldWanted) -> None:
        assert self._fleet is not None
        try:
            cmd = build_command(
                verb, camera_id=h.camera_id, start_us=h.start_us, end_us=h.end_us, case_id=h.tag
            )
            self._fleet.send_command(device, cmd)
        except CommandError as exc:
            log.warning("%s for %s on %s not sent: %s", verb, h.tag, device, exc)
        except Exception as exc:  # broker down: the lease stream carries the hold anyway
            log.info("%s for %s on %s not sent over MQTT: %s", verb, h.tag, device, exc)


def leased_classes(
    committed: Iterable[tuple[str, str, int, int]], classes: Mapping[str, int]
) -> dict[str, int]:
    """segment id -> class leased, for the committed segments a lease named."""
    return {sid: classes[sid] for _d, sid, _n, _at in committed if sid in classes}


class Upkeep:
    def __init__(
        self, catalog: Catalog, clock: Clock, tracker: JobTracker, fleet: CommandSender | None
    ) -> None:
        self._catalog = catalog
        self._clock = clock
        self._tracker = tracker
        self._commands = HoldCommands(fleet)

    def _classify(
        self, committed: Iterable[tuple[str, str, int, int]], classes: Mapping[str, int]
    ) -> None:
        """Record the class each committed segment was leased under (the KPIs' upload
        timeliness per class). Best effort: a failed write leaves those segments
        unclassified; leases and jobs go on."""
        leased = leased_classes(committed, classes)
        try:
            HistoryCatalog(self._catalog.engine, self._clock).classify_segments(leased)
        except CatalogError as exc:
            log.warning("traffic class of %d committed segment(s) not recorded: %s",
                        len(leased), exc)  # fmt: skip

    def new_term(self, fence_epoch: int) -> None:
        """Forget what the previous term sent and wrote; fence job writes with `fence_epoch`."""
        self._commands.forget()
        self._tracker.forget(fence_epoch)

    def run(
        self,
        probe: set[str],
        online: frozenset[str],
        reports: Mapping[str, DeviceReport],
        rates: Mapping[str, int],
        classes: Mapping[str, int] | None = None,
    ) -> UpkeepResult:
        committed = committed_segments(self._catalog, probe) if probe else []
        if classes and committed:
            self._classify(committed, classes)
        jobs = self._tracker.open_jobs()
        camera_device = {c.camera_id: c.device_id for c in self._catalog.cameras()}
        still_open: list[JobView] = []
        for job in jobs:
            try:
                view = self._tracker.update(job, camera_device, reports, online, rates)
            except NotLeaderError:
                raise  # deposed meanwhile: no holds synced, nothing more written
            except Exception:
                log.exception("progress of job %s could not be updated", job.job_id)
                view = job
            if view is not None and view.state == JOB_OPEN:
                still_open.append(view)
        holds = desired_holds(still_open, camera_device)
        self._commands.sync(holds)
        return UpkeepResult(committed, holds, evidence_deadlines(still_open))


@dataclass(frozen=True, slots=True)
class DeviceSnapshot:
    device_id: str
    connected: bool
    link_id: str
    rates_bps: dict[str, int]  # per class name, planned
    planned_bps: int
    delivered_bps: int
    lease_id: str
    lease_segments: int
    lease_expires_us: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The scheduler at one instant: for the HTTP API, the CLI and tests."""

    at_us: int
    plan_version: int
    devices: list[DeviceSnapshot]
    links: list[LinkDelivery]
    counters: dict[str, int] = field(default_factory=dict)


def snapshot(
    planner: Planner,
    book: LeaseBook,
    meter: DeliveryMeter,
    connected: frozenset[str],
    now_us: int,
    counters: dict[str, int],
    links: list[LinkDelivery],
) -> Snapshot:
    plan = planner.plan
    ct = planner.topology.compiled
    devices = []
    for device_id in sorted(set(plan.devices) | connected):
        dp = plan.devices.get(device_id)
        lease = book.active(device_id)
        i = ct.device_index.get(device_id)
        devices.append(
            DeviceSnapshot(
                device_id=device_id,
                connected=device_id in connected,
                link_id=ct.link_ids[ct.device_link[i]] if i is not None else "",
                rates_bps={c.name.lower(): dp.rate(c) for c in CLASSES if dp and dp.rate(c)},
                planned_bps=dp.total_bps if dp else 0,
                delivered_bps=meter.rate_bps(device_id, now_us),
                lease_id=lease.lease_id if lease else "",
                lease_segments=len(lease.segments) if lease else 0,
                lease_expires_us=lease.expires_us if lease else 0,
            )
        )
    return Snapshot(now_us, plan.version, devices, links, counters)
