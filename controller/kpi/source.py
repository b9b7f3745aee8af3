"""What the report reads: the catalog's registry, history and accounting, the audit log's
sharing actions and the footage requests (the imperative shell of the KPI package).

Each read is one query over the period (sums per camera and per hour in the database, not
row by row), so a month of a 17,088-endpoint city is read in seconds (bench/report.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from controller.audit.log import action_counts
from controller.catalog.history import HistoryCatalog
from controller.catalog.history_models import LossEventRow
from controller.clock import Clock
from controller.directory.scope import visibility
from controller.directory.store import DirectoryStore, Filters
from controller.grants.policy import Policy, camera_info, entitled
from controller.jobs.store import requests_made
from controller.kpi.aggregates import PeriodSums
from controller.kpi.compute import Change
from controller.kpi.figures import Place, township_of

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine


class ReportInputError(ValueError):
    """A report cannot be made for what was asked (period, organisation): says why."""


@dataclass(slots=True)
class Facts:
    """Everything a report needs, read for one period (and one organisation's cameras)."""

    start_us: int
    end_us: int
    places: list[Place]
    camera_changes: dict[str, list[Change]] = field(default_factory=dict)
    image_changes: dict[str, list[Change]] = field(default_factory=dict)
    alert_changes: list[tuple[str, Change]] = field(default_factory=list)
    camera_sums: dict[str, dict[str, int]] = field(default_factory=dict)
    # hour or day start -> sums of DAILY_COLUMNS (each bucket within one day of the period)
    hour_sums: dict[int, dict[str, int]] = field(default_factory=dict)
    # camera -> traffic class value -> upload-delay histogram (classified uploads only)
    class_sums: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    losses: list[LossEventRow] = field(default_factory=list)
    # (action, actor org) -> (entries, distinct grants)
    sharing: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    # footage requests made in the period: (requester's org, state, seconds to finish or -1)
    footage: list[tuple[str, str, int]] = field(default_factory=list)


def places(history: HistoryCatalog, clock: Clock, policy: Policy, org: str | None) -> list[Place]:
    """Every registered camera with its place; only those `org` is entitled to see when
    given (ReportInputError for an organisation the policy does not know)."""
    if org is not None and policy.organisation(org) is None:
        known = ", ".join(sorted(policy.organisations))
        raise ReportInputError(f"unknown organisation {org!r} (one of: {known})")
    named = _directory_places(history.engine, clock, policy)
    out = []
    for cam in history.registry():
        if org is not None:
            info = camera_info(policy, cam.camera_id, cam.county, cam.site, cam.resource_class)
            if not entitled(policy, org, info):
                continue
        out.append(
            Place(
                camera_id=cam.camera_id,
                device_id=cam.device_id,
                county=cam.county,
                township=named.get(cam.camera_id, ("", ""))[0] or township_of(cam.site),
                village=named.get(cam.camera_id, ("", ""))[1] or cam.site,
                device_kind=cam.device_kind,
                resource_class=cam.resource_class,
                created_us=cam.created_at_us,
            )
        )
    return out


def _directory_places(engine: Engine, clock: Clock, policy: Policy) -> dict[str, tuple[str, str]]:
    """camera -> (township, village) as the resource directory names them (controller/
    directory; empty where not filled in: the site name stands in)."""
    store = DirectoryStore(engine, clock)
    rows = store.places(visibility(policy, policy.city_org), Filters())
    return {camera: (township, village) for camera, _c, township, village, _d in rows}


def read_facts(
    engine: Engine,
    clock: Clock,
    policy: Policy,
    start_us: int,
    end_us: int,
    org: str | None = None,
) -> Facts:
    """Check the period and organisation, then read everything for the report."""
    if start_us >= end_us:
        raise ReportInputError("--from must be before --to (the period is empty or reversed)")
    history = HistoryCatalog(engine, clock)
    first = history.first_data_us()
    if first is None:
        raise ReportInputError("no history or accounting recorded yet: nothing to report")
    if end_us <= first:
        raise ReportInputError(
            f"the period ends before the first recorded data ({first} us since the epoch)"
        )
    with PeriodSums(history, start_us, end_us) as sums:
        if org is None:  # all cameras: the sums need not wait for the registry
            sums.begin(None)
        chosen = places(history, clock, policy, org)
        cams = {p.camera_id for p in chosen}
        if org is not None:
            sums.begin(sorted(cams))
        devices = {p.device_id for p in chosen}
        facts = Facts(start_us, end_us, chosen)
        for row in history.transitions(start_us, end_us):
            ch = Change(row.at_us, row.state, row.reason)
            if row.subject == "camera" and row.camera_id in cams:
                facts.camera_changes.setdefault(row.camera_id, []).append(ch)
            elif row.subject == "image" and row.camera_id in cams:
                facts.image_changes.setdefault(row.camera_id, []).append(ch)
            elif row.subject == "alert" and row.device_id in devices:
                key = f"{row.device_id}/{row.reason}/{row.camera_id}"
                facts.alert_changes.append((key, ch))
        read = sums.result()
    facts.camera_sums = {str(s.key): s.sums for s in read.per_camera if s.key in cams}
    facts.class_sums = {c: v for c, v in read.per_class.items() if c in cams}
    facts.hour_sums = {int(s.key): s.sums for s in read.per_day}
    facts.losses = [x for x in history.losses(start_us, end_us) if x.camera_id in cams]
    facts.sharing = _sharing(engine, start_us, end_us)
    facts.footage = _footage(engine, start_us, end_us)
    return facts


_USE_ACTIONS = (
    "grant_minted",
    "grant_delegated",
    "live_view",
    "playlist",
    "segment_fetch",
    "download",
    "footage_request",
)


def _sharing(engine: Engine, start_us: int, end_us: int) -> dict[tuple[str, str], tuple[int, int]]:
    """Successful sharing actions per (action, organisation): entries and distinct grants.
    A view's tally (`segment_fetch`) counts as one entry: the figure is views, not segments."""
    return action_counts(engine, start_us, end_us, _USE_ACTIONS)


def _footage(engine: Engine, start_us: int, end_us: int) -> list[tuple[str, str, int]]:
    return [
        ("-", state, (fin - made) // 1_000_000 if fin else -1)
        for state, made, fin in requests_made(engine, start_us, end_us)
    ]
