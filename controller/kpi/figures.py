"""Per-camera figures and their roll-up to village, township, county, organisation and city
(pure). Every rate is a ratio of sums (never an average of rates), so a county's 在线率 is its
cameras' online time over their expected time, whatever their number.

- 在线率 online rate: time the camera was online (streaming, its device online) ÷ expected.
- 完好率 working rate: online time without an image fault (frozen, black, blurred, occluded)
  ÷ expected.
- 录像完整率 recording integrity: recorded ÷ expected; in the cloud: uploaded ÷ recorded.
- expected: the period, from the camera's registration if later.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from controller.kpi.classes import add_histograms, class_histograms
from controller.kpi.compute import (
    IMAGE_FAULTS,
    Change,
    Span,
    overlap,
    per_day,
    ratio,
    time_in,
    timeline,
)

KINDS = ("village_hd", "existing", "handheld")
HD_MIN_HEIGHT = 1080


@dataclass(frozen=True, slots=True)
class Place:
    camera_id: str
    device_id: str
    county: str
    township: str
    village: str
    device_kind: str  # nvr | handheld
    resource_class: str
    created_us: int = 0


def camera_kind(place: Place, video_height: int) -> str:
    """handheld terminals; cameras seen at 1080 lines or more are the new village HD ones;
    the rest are the existing cameras."""
    if place.device_kind == "handheld":
        return "handheld"
    return "village_hd" if video_height >= HD_MIN_HEIGHT else "existing"


def township_of(site: str) -> str:
    """Sites are named `<county>-<township>-<village>` (the Longnan registry and preset);
    the township is the site without its last part ("" when the name has no such parts)."""
    parts = site.split("-")
    return "-".join(parts[:-1]) if len(parts) >= 3 else ""


@dataclass(slots=True)
class Figures:
    """Sums for one camera or one group of cameras (microseconds unless named)."""

    cameras: int = 0
    connected: int = 0
    expected_us: int = 0
    online_us: int = 0
    working_us: int = 0
    image_fault_us: int = 0
    recorded_us: int = 0
    uploaded_us: int = 0
    evicted_us: int = 0
    gap_us: int = 0
    evicted_bytes: int = 0
    delays: list[int] = field(default_factory=list)
    # Upload-delay histogram per traffic class leased (controller.kpi.classes).
    class_delays: dict[str, list[int]] = field(default_factory=dict)

    def add(self, o: Figures) -> None:
        self.cameras += o.cameras
        self.connected += o.connected
        self.expected_us += o.expected_us
        self.online_us += o.online_us
        self.working_us += o.working_us
        self.image_fault_us += o.image_fault_us
        self.recorded_us += o.recorded_us
        self.uploaded_us += o.uploaded_us
        self.evicted_us += o.evicted_us
        self.gap_us += o.gap_us
        self.evicted_bytes += o.evicted_bytes
        if len(self.delays) < len(o.delays):
            self.delays += [0] * (len(o.delays) - len(self.delays))
        self.delays[: len(o.delays)] = map(operator.add, self.delays, o.delays)
        add_histograms(self.class_delays, o.class_delays)

    @property
    def online_rate(self) -> float | None:
        return ratio(self.online_us, self.expected_us)

    @property
    def working_rate(self) -> float | None:
        return ratio(self.working_us, self.expected_us)

    @property
    def integrity(self) -> float | None:
        return ratio(self.recorded_us, self.expected_us)

    @property
    def cloud_rate(self) -> float | None:
        return ratio(self.uploaded_us, self.recorded_us)


@dataclass(frozen=True, slots=True)
class CameraResult:
    place: Place
    kind: str
    figures: Figures
    online_per_day: list[int]
    working_per_day: list[int]


def camera_result(
    place: Place,
    camera_changes: Sequence[Change],
    image_changes: Sequence[Change],
    sums: Mapping[str, int],
    delay_columns: Sequence[str],
    start_us: int,
    end_us: int,
    days: int,
    class_hists: Mapping[int, Sequence[int]] | None = None,
) -> CameraResult:
    """One camera's figures over [start_us, end_us); `class_hists`: its classified upload
    delays per traffic class value (the rest are unclassified)."""
    begin = max(start_us, place.created_us)
    states = timeline(camera_changes, begin, end_us)
    online: list[Span] = [s for s in states if s.state == "online"]
    faults = [s for s in timeline(image_changes, begin, end_us) if s.state in IMAGE_FAULTS]
    fault_online = overlap(online, faults)
    online_us = time_in(online, ("online",))
    f = Figures(
        cameras=1,
        expected_us=max(0, end_us - begin),
        online_us=online_us,
        working_us=online_us - fault_online,
        image_fault_us=fault_online,
        recorded_us=sums.get("recorded_us", 0),
        uploaded_us=sums.get("uploaded_us", 0),
        evicted_us=sums.get("evicted_us", 0),
        gap_us=sums.get("gap_us", 0),
        evicted_bytes=sums.get("evicted_bytes", 0),
        delays=[sums.get(c, 0) for c in delay_columns],
    )
    f.class_delays = class_histograms(f.delays, class_hists or {})
    f.connected = 1 if f.online_us > 0 or f.recorded_us > 0 else 0
    on_days = per_day(online, ("online",), start_us, days)
    fault_days = per_day(_intersect(online, faults), ("online",), start_us, days)
    working = [a - b for a, b in zip(on_days, fault_days, strict=True)]
    return CameraResult(place, camera_kind(place, sums.get("video_height", 0)), f, on_days, working)


def _intersect(a: Sequence[Span], b: Sequence[Span]) -> list[Span]:
    out: list[Span] = []
    i = j = 0
    while i < len(a) and j < len(b):
        lo, hi = max(a[i].start_us, b[j].start_us), min(a[i].end_us, b[j].end_us)
        if hi > lo:
            out.append(Span(lo, hi, "online"))
        if a[i].end_us < b[j].end_us:
            i += 1
        else:
            j += 1
    return out


LEVELS = ("county", "township", "village")
# The smallest groups every table is a union of: (county, township, village, kind).
Leaf = tuple[str, str, str, str]


def leaves(results: Iterable[CameraResult]) -> dict[Leaf, Figures]:
    """Figures summed per county, township, village and kind, so each camera's figures are
    added once and the tables (`group_by`, `total`, `by_kind`) add these few thousand sums
    (17,088 cameras were added six times over: half of a month report's arithmetic)."""
    out: dict[Leaf, Figures] = {}
    for r in results:
        p = r.place
        key = (p.county, p.township, p.village, r.kind)
        f = out.get(key)
        if f is None:
            f = out[key] = Figures()
        f.add(r.figures)
    return out


def group_by(parts: Mapping[Leaf, Figures], level: str) -> dict[str, Figures]:
    """Figures summed per county, township or village (the name is the place's)."""
    i = LEVELS.index(level)
    out: dict[str, Figures] = {}
    for key, f in parts.items():
        out.setdefault(key[i] or "-", Figures()).add(f)
    return out


def total(parts: Mapping[Leaf, Figures]) -> Figures:
    f = Figures()
    for g in parts.values():
        f.add(g)
    return f


def by_kind(parts: Mapping[Leaf, Figures]) -> dict[str, Figures]:
    out = {k: Figures() for k in KINDS}
    for key, f in parts.items():
        out[key[3]].add(f)
    return out


def worst(results: Sequence[CameraResult], n: int) -> list[CameraResult]:
    """The cameras to fix first: lowest 完好率, then lowest 录像完整率, then id."""

    def key(r: CameraResult) -> tuple[float, float, str]:
        return (r.figures.working_rate or 0.0, r.figures.integrity or 0.0, r.place.camera_id)

    return sorted(results, key=key)[:n]
