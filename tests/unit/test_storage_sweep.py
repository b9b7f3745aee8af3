"""The sweep of unreferenced objects (controller/retention/orphans.py): the pure decision, and
the shell on a SQLite catalog and a local store (dry run, applied, audited, raced, refused)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.audit.chain import AuditEvent
from controller.catalog import Catalog, SegmentRow, make_engine
from controller.clock import SystemClock
from controller.ingest.ledger import RECEIVING, Ledger, UploadRow
from controller.ingest.rules import Header
from controller.retention.orphans import (
    PROBE_PREFIX,
    SweepPlan,
    plan_sweep,
    sweep_unreferenced,
)
from controller.storage import LocalObjectStore, object_key
from controller.storage.base import StoredObject

S = 1_000_000
NOW = 1_796_000_000 * S
PREFIX = "wudu/v001/cam1/"
HOUR = "2026/12/04/01"


def obj(name: str, age_s: float, prefix: str = PREFIX) -> StoredObject:
    return StoredObject(f"{prefix}{HOUR}/{name}.ts", 10, NOW - int(age_s * S))


def test_only_old_unreferenced_objects_of_our_layout_are_planned() -> None:
    objects = [
        obj("named", 9999),
        obj("young", 10),
        obj("queued", 9999),
        obj("stray", 9999),
        StoredObject(f"{PREFIX}notes.txt", 1, 0),  # not a segment key: never touched
        StoredObject(f"{PREFIX}{HOUR}/x/deeper.ts", 1, 0),
    ]
    plan = plan_sweep(
        objects,
        PREFIX,
        referenced={objects[0].key},
        in_ledger=lambda key: key == objects[2].key,
        now_us=NOW,
        grace_s=60,
    )
    assert plan == SweepPlan((objects[3],), young=1, referenced=1, in_ledger=1, foreign=2)


def test_the_grace_period_is_inclusive_of_its_edge_and_never_negative() -> None:
    edge = obj("edge", 60)
    assert plan_sweep([edge], PREFIX, set(), lambda _k: False, NOW, 60).delete == (edge,)
    assert plan_sweep([edge], PREFIX, set(), lambda _k: False, NOW, 61).young == 1
    with pytest.raises(ValueError):
        plan_sweep([], PREFIX, set(), lambda _k: False, NOW, -1)


class City:
    """A catalog with one camera, a local store, a ledger; objects aged by their mtime."""

    def __init__(self, tmp: Path) -> None:
        self.engine = make_engine(f"sqlite:///{tmp / 'catalog.db'}")
        self.clock = SystemClock()
        self.catalog = Catalog(self.engine, self.clock)
        self.catalog.upsert_device("dev1", "wudu", "v001", "nvr")
        self.catalog.upsert_camera("cam1", "dev1")
        self.store = LocalObjectStore(tmp / "objects")
        self.ledger = Ledger(self.engine)
        self.src = tmp / "seg.ts"
        self.now = self.clock.now_us()

    def put(self, segment_id: str, age_s: float, row: bool = False) -> str:
        start = self.now - 7200 * S
        key = object_key("wudu", "v001", "cam1", start, segment_id)
        data = segment_id.encode()
        self.src.write_bytes(data)
        sha = hashlib.sha256(data).hexdigest()
        self.store.put_file(key, self.src, sha)
        at = (self.now - age_s * S) / S
        os.utime(self.store.root.joinpath(*key.split("/")), (at, at))
        if row:
            self.add_row(segment_id, key, sha, start)
        return key

    def add_row(self, segment_id: str, key: str, sha: str = "0" * 64, start: int = 0) -> None:
        self.catalog.add_segment(
            SegmentRow(
                segment_id=segment_id, camera_id="cam1", device_id="dev1", start_us=start,
                duration_us=S, end_us=start + S, size_bytes=len(segment_id), sha256=sha,
                prev_sha256="", object_key=key, committed_at_us=self.now,
            )
        )  # fmt: skip

    def keys(self) -> set[str]:
        return set(self.store.list_keys())


@pytest.fixture
def city(tmp_path: Path) -> Iterator[City]:
    c = City(tmp_path)
    yield c
    c.engine.dispose()


def test_a_dry_run_reports_and_changes_nothing(city: City) -> None:
    named = city.put("named", 7200, row=True)
    young = city.put("young", 5)
    stray = city.put("stray", 7200)
    report = sweep_unreferenced(city.catalog, city.ledger, city.store, city.now, 3600)
    assert [o.key for o in report.found] == [stray]
    assert (report.listed, report.referenced, report.young, report.deleted) == (3, 1, 1, [])
    assert city.keys() == {named, young, stray}
    assert any("would delete" in line and stray in line for line in report.lines())


def test_an_applied_sweep_is_audited_first_then_deletes_and_records(city: City) -> None:
    named = city.put("named", 7200, row=True)
    stray = city.put("stray", 7200)
    queued = city.put("queued", 7200)
    header = Header("queued", "cam1", 0, S, 7, "0" * 64, "")
    city.ledger.insert(
        UploadRow("queued", "dev1", "cam1", queued, "u1", header, 5 * S, (), RECEIVING, 0, 0)
    )
    probe = f"{PROBE_PREFIX}abc.bin"
    city.src.write_bytes(b"x")
    city.store.put_file(probe, city.src, hashlib.sha256(b"x").hexdigest())
    events: list[AuditEvent] = []

    def audit(event: AuditEvent) -> None:
        assert stray in city.keys(), "audited before anything is deleted"
        events.append(event)

    report = sweep_unreferenced(
        city.catalog, city.ledger, city.store, city.now + 3600 * S, 60, apply=True, audit=audit
    )
    assert sorted(report.deleted) == sorted([stray, probe]), report.lines()
    assert report.in_ledger == 1 and not report.errors
    assert city.keys() == {named, queued}
    assert [e.action for e in events] == ["storage_sweep"]
    assert events[0].detail["objects"] == 2 and stray in events[0].detail["keys"]
    recorded = {r.object_key: r.reason for r in city.catalog.retention_records()}
    assert recorded[stray] == "orphan_object"


def test_a_row_that_arrives_before_the_deletion_keeps_the_object(city: City) -> None:
    stray = city.put("late", 7200)

    def audit(_event: AuditEvent) -> None:  # the agent re-sends meanwhile: its row lands
        city.add_row("late", stray)

    report = sweep_unreferenced(
        city.catalog, city.ledger, city.store, city.now, 60, apply=True, audit=audit
    )
    assert (report.kept, report.deleted) == ([stray], [])
    assert stray in city.keys()


def test_no_audit_no_deletion(city: City) -> None:
    stray = city.put("stray", 7200)
    unaudited = sweep_unreferenced(city.catalog, city.ledger, city.store, city.now, 60, apply=True)

    def broken(_event: AuditEvent) -> None:
        raise RuntimeError("audit log down")

    failed = sweep_unreferenced(
        city.catalog, city.ledger, city.store, city.now, 60, apply=True, audit=broken
    )
    assert unaudited.errors and failed.errors and not failed.deleted
    assert stray in city.keys()
