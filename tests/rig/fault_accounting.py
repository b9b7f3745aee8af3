"""The outside accounting of a fault run: the agent's index, the catalog and the store.

Every segment the agent ever recorded (its index rows plus its eviction records) must be in
exactly one of: uploaded (a catalog row whose object holds bytes with that SHA-256), still
buffered (unsent in the index), or evicted with a record (the agent's durable loss record).
Anything else is lost. Also counted: duplicates (an id or a camera time stored twice),
catalog/store disagreement, chain breaks not explained by recorded evictions or buffered
segments, and avoidable losses: segments the agent evicted unsent although their complete,
verified bytes were in the controller's staging (issue 19, item 2).

`account` is pure over the facts gathered by `gather` (tests/rig/test_fault_run.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Recorded:
    segment_id: str
    camera_id: str
    start_us: int
    size_bytes: int
    sha256: str  # "" for an eviction record (the index no longer has it)
    state: str  # "uploaded" | "unsent" | "evicted_unsent" | "evicted_uploaded"


@dataclass(frozen=True, slots=True)
class CityRow:
    segment_id: str
    camera_id: str
    start_us: int
    sha256: str
    prev_sha256: str
    object_key: str
    stored_sha256: str | None  # what the store holds under object_key (None: missing)


@dataclass(frozen=True, slots=True)
class Facts:
    recorded: list[Recorded]
    catalog: list[CityRow]
    store_keys: list[str]
    staged_complete: set[str]  # segment ids with all their bytes in the controller's staging


@dataclass
class Accounting:
    recorded: int = 0
    uploaded: int = 0
    buffered: int = 0
    evicted_with_record: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    avoidable: list[str] = field(default_factory=list)
    disagree: list[str] = field(default_factory=list)
    # Objects no catalog row names: a controller killed between the store's write and the
    # catalog row (nothing lost: the agent still holds, re-sends or recorded the segment).
    orphan_objects: list[str] = field(default_factory=list)
    unexplained_breaks: list[str] = field(default_factory=list)
    breaks: int = 0

    def table(self) -> str:
        rows = [
            ("recorded", self.recorded),
            ("uploaded (hash matches)", self.uploaded),
            ("buffered", self.buffered),
            ("evicted with record", self.evicted_with_record),
            ("lost", len(self.lost)),
            ("duplicated", len(self.duplicated)),
            ("avoidable losses", len(self.avoidable)),
            ("catalog rows the store disagrees with", len(self.disagree)),
            ("objects without a catalog row", len(self.orphan_objects)),
            ("chain breaks (all)", self.breaks),
            ("chain breaks unexplained", len(self.unexplained_breaks)),
        ]
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"  {name:<{width}}  {value:>6}" for name, value in rows)


def account(facts: Facts) -> Accounting:
    acc = Accounting()
    by_id = {r.segment_id: r for r in facts.catalog}
    ids = Counter(r.segment_id for r in facts.recorded)
    acc.duplicated += [f"recorded twice: {sid}" for sid, n in ids.items() if n > 1]
    times = Counter((r.camera_id, r.start_us) for r in facts.catalog)
    acc.duplicated += [f"catalog time twice: {k}" for k, n in times.items() if n > 1]
    stems = Counter(k.rsplit("/", 1)[-1].split(".", 1)[0] for k in facts.store_keys)
    acc.duplicated += [f"stored twice: {s}" for s, n in stems.items() if n > 1]
    row_keys = {r.object_key for r in facts.catalog}
    acc.orphan_objects += sorted(set(facts.store_keys) - row_keys)
    for row in facts.catalog:
        if row.stored_sha256 != row.sha256:
            acc.disagree.append(f"{row.segment_id}: store holds {row.stored_sha256!r}")
    acc.recorded = len(ids)
    for rec in {r.segment_id: r for r in facts.recorded}.values():
        city = by_id.get(rec.segment_id)
        in_city = (
            city is not None
            and city.stored_sha256 == city.sha256
            and (not rec.sha256 or rec.sha256 == city.sha256)
        )
        if in_city:
            acc.uploaded += 1
        elif rec.state == "unsent":
            acc.buffered += 1
        elif rec.state == "evicted_unsent":
            acc.evicted_with_record += 1
            if rec.segment_id in facts.staged_complete:
                acc.avoidable.append(rec.segment_id)
        else:  # marked uploaded (or evicted as uploaded) but the city does not hold it
            acc.lost.append(f"{rec.segment_id} ({rec.state})")
    _chains(facts, acc)
    return acc


def _chains(facts: Facts, acc: Accounting) -> None:
    """Each catalog chain break must sit where recorded-but-not-uploaded segments are."""
    missing: dict[str, list[int]] = {}
    uploaded = {r.segment_id for r in facts.catalog}
    for rec in facts.recorded:
        if rec.segment_id not in uploaded and rec.state in ("unsent", "evicted_unsent"):
            missing.setdefault(rec.camera_id, []).append(rec.start_us)
    cams = sorted({r.camera_id for r in facts.catalog})
    for cam in cams:
        rows = sorted((r for r in facts.catalog if r.camera_id == cam), key=lambda r: r.start_us)
        for before, after in zip(rows, rows[1:], strict=False):
            if after.prev_sha256 == before.sha256:
                continue
            acc.breaks += 1
            between = [t for t in missing.get(cam, []) if before.start_us < t < after.start_us]
            if not between:
                acc.unexplained_breaks.append(f"{cam}: {before.segment_id} -> {after.segment_id}")
