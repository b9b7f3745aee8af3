"""The sweep of unreferenced objects: segment bytes in the store that no catalog row names.

A controller killed between an object's write and its catalog row leaves the object behind
(nothing is lost: the agent was never told the segment is safe, so it sends it again, which
writes the row, or it records the eviction). When the agent never sends it again the object is
stray bytes, billed for ever and never played back. The sweep removes those, and only those:

- only objects of the camera key layout (`{county}/{site}/{camera}/YYYY/MM/DD/HH/{id}.{ext}`)
  under a camera the catalog knows, and the controller's own checksum probes: nothing else in
  the bucket is ever touched;
- only objects older than a grace period (their last write, as the store's listing tells):
  an ingest writes its row milliseconds after the object, so a young object without a row is
  an ingest in flight, not an orphan;
- never an object the catalog names (any row state: a `deleting` row is retention's business)
  or the multipart ledger names (the commit queue: verified bytes waiting for the store, and
  uploads being received);
- dry run by default: the report says what would go. Applied, the run is audited first (one
  `storage_sweep` event naming the objects; no audit, no deletion), each object's row is
  checked once more just before its deletion, each deletion is recorded in the retention
  records (reason `orphan_object`), and a row that appeared in between is reported as a race.

`plan_sweep` is the pure decision; `sweep_unreferenced` the shell (one camera prefix at a time,
so a city's listing is never held whole). Meant to run on one controller at a time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from controller.audit.chain import AuditEvent
from controller.catalog import Catalog, CatalogError
from controller.ingest.ledger import Ledger, LedgerError
from controller.retention.plan import key_hour_us
from controller.retention.sweep import REASON_ORPHAN, camera_prefix
from controller.storage import ObjectStore, StorageError
from controller.storage.base import ListingStore, StoredObject

log = logging.getLogger("vigil.controller.retention")

SECOND_US = 1_000_000
DEFAULT_GRACE_S = 24 * 3600.0
PROBE_PREFIX = "vigil-checksum-probe/"  # controller/ingest/checksum_probe.py
AUDIT_ACTION = "storage_sweep"
AUDIT_KEYS = 200  # objects named in the audit event (the count is always whole)


@dataclass(frozen=True, slots=True)
class SweepPlan:
    """What one listing holds: the unreferenced objects past the grace period, and why the
    others stay."""

    delete: tuple[StoredObject, ...]
    young: int = 0  # unreferenced, but written within the grace period
    referenced: int = 0  # a catalog row names it
    in_ledger: int = 0  # a multipart upload (the commit queue) names it
    foreign: int = 0  # not a key this controller writes: never touched


def segment_id_of(key: str) -> str:
    """The segment id a segment key ends in (`.../{segment_id}.{ext}`), '' if none."""
    name = key.rpartition("/")[2]
    return name.rpartition(".")[0]


def is_sweepable_key(key: str, prefix: str) -> bool:
    """A key this controller writes under `prefix`: a camera's segment or a checksum probe."""
    if key.startswith(PROBE_PREFIX):
        return True
    rest = key[len(prefix) :] if key.startswith(prefix) else ""
    return rest.count("/") == 4 and key_hour_us(key) is not None and bool(segment_id_of(key))


def plan_sweep(
    objects: Iterable[StoredObject],
    prefix: str,
    referenced: set[str],
    in_ledger: Callable[[str], bool],
    now_us: int,
    grace_s: float,
) -> SweepPlan:
    """Pure (but for `in_ledger`, asked only of old unreferenced objects: few)."""
    if grace_s < 0:
        raise ValueError(f"grace_s must be >= 0, got {grace_s!r}")
    before_us = now_us - int(grace_s * SECOND_US)
    delete: list[StoredObject] = []
    young = held = ledger = foreign = 0
    for obj in objects:
        if not is_sweepable_key(obj.key, prefix):
            foreign += 1
        elif obj.key in referenced:
            held += 1
        elif obj.modified_us > before_us:
            young += 1
        elif in_ledger(obj.key):
            ledger += 1
        else:
            delete.append(obj)
    delete.sort(key=lambda o: o.key)
    return SweepPlan(tuple(delete), young, held, ledger, foreign)


@dataclass
class OrphanSweep:
    """One run: what it found, and (applied) what it deleted."""

    applied: bool
    grace_s: float
    listed: int = 0
    young: int = 0
    referenced: int = 0
    in_ledger: int = 0
    foreign: int = 0
    found: list[StoredObject] = field(default_factory=list)  # unreferenced, past the grace
    deleted: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # a row appeared before the deletion
    raced: list[str] = field(default_factory=list)  # a row appeared during the deletion
    errors: list[str] = field(default_factory=list)

    @property
    def found_bytes(self) -> int:
        return sum(o.size for o in self.found)

    def lines(self) -> list[str]:
        verb = "deleted" if self.applied else "would delete (dry run; --apply deletes)"
        out = [
            f"listed {self.listed} objects: {self.referenced} named by the catalog, "
            f"{self.in_ledger} by the multipart ledger, {self.young} younger than "
            f"{self.grace_s:.0f} s, {self.foreign} not ours (left alone)",
            f"unreferenced past the grace period: {len(self.found)} ({self.found_bytes} bytes)",
        ]
        done = self.deleted if self.applied else [o.key for o in self.found]
        out += [f"  {verb}: {key}" for key in done]
        out += [f"  kept (its row arrived): {key}" for key in self.kept]
        out += [f"  RACE (row arrived while deleting; object gone): {key}" for key in self.raced]
        out += [f"  error: {e}" for e in self.errors]
        return out


def _in_ledger(ledger: Ledger | None, key: str) -> bool:
    if ledger is None:
        return False
    row = ledger.get(segment_id_of(key))
    return row is not None and row.object_key == key


def _has_row(catalog: Catalog, key: str) -> bool:
    seg = catalog.get_segment(segment_id_of(key))
    return seg is not None and seg.object_key == key


def sweep_unreferenced(
    catalog: Catalog,
    ledger: Ledger | None,
    store: ObjectStore,
    now_us: int,
    grace_s: float = DEFAULT_GRACE_S,
    *,
    apply: bool = False,
    audit: Callable[[AuditEvent], object] | None = None,
    cameras: Iterable[str] | None = None,
) -> OrphanSweep:
    """Find (and with `apply`, delete) unreferenced objects past `grace_s`; never raises
    (errors are in the report). Applying needs `audit`: the run is recorded before any
    deletion, and nothing is deleted if that fails."""
    report = OrphanSweep(apply, grace_s)
    if not isinstance(store, ListingStore):
        report.errors.append("this store cannot list its objects' ages: nothing swept")
        return report
    if apply and audit is None:
        report.errors.append("an applied sweep must be audited: nothing deleted")
        return report
    wanted = None if cameras is None else set(cameras)
    try:
        scopes = [
            (camera_prefix(c), c.camera_id)
            for c in catalog.cameras()
            if wanted is None or c.camera_id in wanted
        ]
        if wanted is None:
            scopes.append((PROBE_PREFIX, ""))
        for prefix, camera_id in scopes:
            listed = list(store.list_objects(prefix))
            referenced = set(catalog.object_keys(camera_id)) if camera_id else set()
            plan = plan_sweep(
                listed, prefix, referenced, lambda k: _in_ledger(ledger, k), now_us, grace_s
            )
            report.listed += len(listed)
            report.young += plan.young
            report.referenced += plan.referenced
            report.in_ledger += plan.in_ledger
            report.foreign += plan.foreign
            report.found += plan.delete
    except (CatalogError, LedgerError, StorageError) as exc:
        report.errors.append(str(exc))
        return report
    if apply and report.found and audit is not None:
        _apply(catalog, store, report, audit)
    return report


def _apply(
    catalog: Catalog, store: ObjectStore, report: OrphanSweep, audit: Callable[[AuditEvent], object]
) -> None:
    keys = [o.key for o in report.found]
    try:
        audit(
            AuditEvent(
                action=AUDIT_ACTION,
                actor_user="system",
                detail={
                    "objects": len(keys),
                    "bytes": report.found_bytes,
                    "grace_s": report.grace_s,
                    "keys": keys[:AUDIT_KEYS],
                },
            )
        )
    except Exception as exc:  # any: no record of the run, no deletion
        report.errors.append(f"audit failed, nothing deleted: {exc}")
        return
    for key in keys:
        camera_id = key.split("/")[2] if key.count("/") >= 3 else ""
        try:
            if _has_row(catalog, key):
                report.kept.append(key)
                continue
            store.delete(key)
            if _has_row(catalog, key):
                report.raced.append(key)
                log.error("sweep: %s got its catalog row while it was deleted", key)
                continue
            catalog.record_object_deletion(
                key, camera_id, REASON_ORPHAN, "no catalog row past the grace period"
            )
            report.deleted.append(key)
        except (CatalogError, StorageError) as exc:
            report.errors.append(f"{key}: {exc}")
            return  # the store or the database is in trouble: stop, run again later
    log.info("sweep of unreferenced objects: %d deleted", len(report.deleted))
