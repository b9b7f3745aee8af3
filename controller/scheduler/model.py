"""Plain data the scheduler decides over: links, devices, backlog, and its errors.

Everything here is a frozen dataclass that checks itself on construction, so an impossible
value (a negative capacity, a backlog smaller than the segments it lists) is refused where it
enters and the planner never has to defend against it. Errors form one small tree:

    SchedulerError (ValueError)
    ├── TopologyError   a link tree or device registry that cannot be used
    └── DemandError     a device's reported backlog that cannot be true

Every error message names the offending link, device, class or segment.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

# Defined below jobs and the scheduler (controller/traffic.py); still named from here too.
from controller.traffic import SchedulerError as SchedulerError
from controller.traffic import TrafficClass as TrafficClass

# Sanity bounds: an agent's buffer is terabytes, a link at most a few hundred Gbit/s. Anything
# above these is a corrupt or forged report, not a big one.
MAX_BACKLOG_BYTES = 1 << 50  # 1 PiB
MAX_RATE_BPS = 10**13  # 10 Tbit/s
MAX_ID_LENGTH = 128
MINUTES_PER_DAY = 1440


class TopologyError(SchedulerError):
    """A topology (links, windows, devices) that cannot be used."""


class DemandError(SchedulerError):
    """A device's backlog report that is malformed, oversize or impossible."""


CLASSES: tuple[TrafficClass, ...] = tuple(TrafficClass)


def check_id(kind: str, value: object, error: type[SchedulerError]) -> str:
    """A non-empty, bounded, printable identifier, or `error` naming what was wrong."""
    if not isinstance(value, str) or not value or len(value) > MAX_ID_LENGTH:
        raise error(f"{kind} id must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    if not value.isprintable():
        raise error(f"{kind} id {value!r} contains control characters")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Window:
    """A daily local-time window [start, end) during which `traffic_class` may use a link.

    Minutes of the local day; `start > end` wraps past midnight (22:00-06:00). A class with
    windows on a link may cross that link only inside one of them; other classes always may.
    """

    traffic_class: TrafficClass
    start_minute: int
    end_minute: int

    def __post_init__(self) -> None:
        if not isinstance(self.traffic_class, TrafficClass):
            raise TopologyError(f"window class must be a TrafficClass, got {self.traffic_class!r}")
        for name in ("start_minute", "end_minute"):
            v = getattr(self, name)
            if not _is_int(v) or not 0 <= v <= MINUTES_PER_DAY:
                raise TopologyError(f"window {name} must be 0..{MINUTES_PER_DAY}, got {v!r}")
        if self.start_minute % MINUTES_PER_DAY == self.end_minute % MINUTES_PER_DAY:
            raise TopologyError(
                f"window for {self.traffic_class.name.lower()} is empty or the whole day "
                f"({self.start_minute}-{self.end_minute}); omit it to allow all day"
            )

    def contains(self, minute_of_day: float) -> bool:
        """Whether the local time `minute_of_day` (0 <= m < 1440) lies inside the window."""
        start, end = self.start_minute % MINUTES_PER_DAY, self.end_minute % MINUTES_PER_DAY
        if start < end:
            return start <= minute_of_day < end
        return minute_of_day >= start or minute_of_day < end


@dataclass(frozen=True, slots=True)
class Link:
    """One link of the network tree, carrying traffic from its subtree towards `parent`.

    `live_reserve` is the share of capacity guaranteed to live viewing ahead of evidence
    (so a burst of evidence requests never freezes a camera someone is watching); live may
    use more, and whatever live leaves unused goes to the other classes.
    """

    link_id: str
    parent: str | None
    capacity_bps: int
    windows: tuple[Window, ...] = ()
    live_reserve: float = 0.0

    def __post_init__(self) -> None:
        check_id("link", self.link_id, TopologyError)
        if self.parent is not None:
            check_id("parent link", self.parent, TopologyError)
        if not _is_int(self.capacity_bps) or not 0 < self.capacity_bps <= MAX_RATE_BPS:
            raise TopologyError(
                f"link {self.link_id!r}: capacity_bps must be a positive integer up to "
                f"{MAX_RATE_BPS}, got {self.capacity_bps!r}"
            )
        reserve = self.live_reserve
        if not isinstance(reserve, int | float) or isinstance(reserve, bool):
            raise TopologyError(f"link {self.link_id!r}: live_reserve must be a number")
        if not (math.isfinite(reserve) and 0.0 <= reserve < 1.0):
            raise TopologyError(
                f"link {self.link_id!r}: live_reserve must be in [0, 1), got {reserve!r}"
            )
        if not isinstance(self.windows, tuple) or not all(
            isinstance(w, Window) for w in self.windows
        ):
            raise TopologyError(f"link {self.link_id!r}: windows must be a tuple of Window")


@dataclass(frozen=True, slots=True)
class Device:
    """An agent (NVR or handheld) attached to `link_id`.

    `weight` sets its share inside a class (weighted max-min); `max_bps` is its own uplink
    cap (0: none beyond the links), the cheap way to model a device's access link.
    """

    device_id: str
    link_id: str
    weight: float = 1.0
    max_bps: int = 0

    def __post_init__(self) -> None:
        check_id("device", self.device_id, TopologyError)
        check_id(f"device {self.device_id!r} link", self.link_id, TopologyError)
        w = self.weight
        if isinstance(w, bool) or not isinstance(w, int | float) or not 1e-3 <= w <= 1e3:
            raise TopologyError(
                f"device {self.device_id!r}: weight must be in [0.001, 1000], got {w!r}"
            )
        if not _is_int(self.max_bps) or not 0 <= self.max_bps <= MAX_RATE_BPS:
            raise TopologyError(
                f"device {self.device_id!r}: max_bps must be 0 (none) or a positive integer, "
                f"got {self.max_bps!r}"
            )


@dataclass(frozen=True, slots=True)
class PendingSegment:
    """One unsent segment an agent listed (the head of its backlog)."""

    segment_id: str
    camera_id: str
    traffic_class: TrafficClass
    start_us: int
    size_bytes: int
    deadline_us: int = 0  # requested deadline or buffer eviction time; 0: none

    def __post_init__(self) -> None:
        check_id("segment", self.segment_id, DemandError)
        check_id(f"segment {self.segment_id!r} camera", self.camera_id, DemandError)
        if not isinstance(self.traffic_class, TrafficClass):
            raise DemandError(f"segment {self.segment_id!r}: unknown traffic class")
        if not _is_int(self.size_bytes) or not 0 < self.size_bytes <= MAX_BACKLOG_BYTES:
            raise DemandError(
                f"segment {self.segment_id!r}: size_bytes must be positive and at most "
                f"{MAX_BACKLOG_BYTES}, got {self.size_bytes!r}"
            )
        if not _is_int(self.start_us) or self.start_us < 0:
            raise DemandError(f"segment {self.segment_id!r}: start_us must be >= 0")
        if not _is_int(self.deadline_us) or self.deadline_us < 0:
            raise DemandError(f"segment {self.segment_id!r}: deadline_us must be >= 0")


@dataclass(frozen=True, slots=True)
class ClassBacklog:
    """What a device holds of one class: totals, oldest start, and the earliest deadline.

    `due_bytes` of it must be in the cloud by `deadline_us` (a requested deadline, or the
    moment the buffer would evict them). `arrival_bps` is a steady inflow (a watched
    camera's bitrate) that the planner adds to the rate the backlog itself needs.
    """

    bytes: int
    segments: int
    oldest_start_us: int = 0
    deadline_us: int = 0
    due_bytes: int = 0
    arrival_bps: int = 0

    def check(self, where: str) -> None:
        """Raise DemandError (prefixed with `where`) unless these numbers can be true."""
        for name in ("bytes", "segments", "oldest_start_us", "deadline_us", "due_bytes"):
            v = getattr(self, name)
            if not _is_int(v) or v < 0:
                raise DemandError(f"{where}: {name} must be a non-negative integer, got {v!r}")
        if self.bytes > MAX_BACKLOG_BYTES:
            raise DemandError(
                f"{where}: backlog of {self.bytes} bytes exceeds the {MAX_BACKLOG_BYTES} "
                "bytes any agent can hold"
            )
        if (self.bytes == 0) != (self.segments == 0):
            raise DemandError(f"{where}: {self.segments} segments cannot hold {self.bytes} bytes")
        if self.segments > self.bytes:
            raise DemandError(f"{where}: {self.segments} segments cannot fit in {self.bytes} bytes")
        if self.due_bytes > self.bytes:
            raise DemandError(
                f"{where}: due_bytes {self.due_bytes} exceeds the backlog of {self.bytes}"
            )
        if self.due_bytes and not self.deadline_us:
            raise DemandError(f"{where}: due_bytes given without a deadline")
        if not _is_int(self.arrival_bps) or not 0 <= self.arrival_bps <= MAX_RATE_BPS:
            raise DemandError(f"{where}: arrival_bps must be 0..{MAX_RATE_BPS}")

    def __post_init__(self) -> None:
        self.check("backlog")


@dataclass(frozen=True, slots=True)
class DeviceDemand:
    """One device's report: backlog per class and the oldest-first head of its segments.

    Refuses a report whose listed segments do not fit the totals (more segments or bytes
    than the backlog claims, duplicates, a class with segments but no backlog).
    """

    device_id: str
    backlog: Mapping[TrafficClass, ClassBacklog]
    head: tuple[PendingSegment, ...] = ()

    def __post_init__(self) -> None:
        check_id("device", self.device_id, DemandError)
        where = f"device {self.device_id!r}"
        if not isinstance(self.backlog, Mapping):
            raise DemandError(f"{where}: backlog must be a mapping of class to ClassBacklog")
        for cls, entry in self.backlog.items():
            if not isinstance(cls, TrafficClass) or not isinstance(entry, ClassBacklog):
                raise DemandError(
                    f"{where}: backlog keys must be TrafficClass, values ClassBacklog"
                )
        if not isinstance(self.head, tuple):
            raise DemandError(f"{where}: head must be a tuple of PendingSegment")
        if not self.head:
            return
        count: dict[TrafficClass, int] = {}
        size: dict[TrafficClass, int] = {}
        ids: set[str] = set()
        for seg in self.head:
            if not isinstance(seg, PendingSegment):
                raise DemandError(f"{where}: head must hold PendingSegment values")
            if seg.segment_id in ids:
                raise DemandError(f"{where}: segment {seg.segment_id!r} listed twice")
            ids.add(seg.segment_id)
            c = seg.traffic_class
            count[c] = count.get(c, 0) + 1
            size[c] = size.get(c, 0) + seg.size_bytes
        for c, n in count.items():
            totals = self.backlog.get(c)
            name = c.name.lower()
            if totals is None:
                raise DemandError(f"{where}: lists {name} segments but reports no {name} backlog")
            if n > totals.segments or size[c] > totals.bytes:
                raise DemandError(
                    f"{where}: lists {n} {name} segments of {size[c]} bytes but reports a "
                    f"{name} backlog of {totals.segments} segments, {totals.bytes} bytes"
                )
