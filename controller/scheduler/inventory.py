"""An agent's `Inventory` report, checked and turned into the planner's `DeviceDemand`.

The one place wire data enters the scheduler, so it refuses anything it cannot trust whole:
a report signed by one device naming another, a stale or future timestamp, an unknown class,
duplicate entries, segments that do not fit the totals they are counted in, or an oversize
head. The error names the device and the entry; the caller keeps the device's last good
report.
"""

from __future__ import annotations

from collections.abc import Mapping

from controller.scheduler.model import (
    ClassBacklog,
    DemandError,
    DeviceDemand,
    PendingSegment,
    SchedulerError,
    TrafficClass,
    check_id,
)
from protos.vigil.v1 import agent_control_pb2

_VALID_CLASSES = {int(c) for c in TrafficClass}
MAX_HEAD_SEGMENTS = 1024
MAX_ENTRIES = 4096


def _cls(value: int, where: str) -> TrafficClass:
    if value not in _VALID_CLASSES:
        raise DemandError(f"{where}: unknown traffic class {value}")
    return TrafficClass(value)


def demand_from_inventory(
    inv: agent_control_pb2.Inventory,
    *,
    authenticated_device: str,
    now_us: int,
    evidence_deadlines: Mapping[str, int] | None = None,
    max_age_s: float = 300.0,
    max_skew_s: float = 60.0,
) -> DeviceDemand:
    """The demand `inv` describes, or DemandError saying what cannot be true.

    `authenticated_device` is the device id from the client certificate: a report about any
    other device is forged. `evidence_deadlines` maps a camera id to the deadline of the
    footage requested from it; its evidence segments are due then (or earlier, if the
    buffer would evict them first).
    """
    device = inv.device_id
    where = f"inventory of device {device!r}"
    if device != authenticated_device:
        raise DemandError(
            f"{where}: sent by device {authenticated_device!r}; a device reports only for itself"
        )
    check_id("device", device, DemandError)
    if inv.reported_unix_us > now_us + int(max_skew_s * 1e6):
        raise DemandError(f"{where}: reported in the future ({inv.reported_unix_us} > now)")
    if inv.reported_unix_us < now_us - int(max_age_s * 1e6):
        raise DemandError(f"{where}: expired (older than {max_age_s:.0f} s)")
    if len(inv.backlog) > MAX_ENTRIES or len(inv.unsent) > MAX_HEAD_SEGMENTS:
        raise DemandError(
            f"{where}: oversize ({len(inv.backlog)} entries, {len(inv.unsent)} segments; "
            f"at most {MAX_ENTRIES} and {MAX_HEAD_SEGMENTS})"
        )
    asked = evidence_deadlines or {}
    # (camera, class) -> [bytes, segments, deadline]
    entries: dict[tuple[str, TrafficClass], list[int]] = {}
    totals: dict[TrafficClass, list[int]] = {}  # bytes, segments, oldest, deadline, due
    for e in inv.backlog:
        cam = check_id("camera", e.camera_id, DemandError)
        cls = _cls(e.traffic_class, f"{where}, camera {cam!r}")
        if (cam, cls) in entries:
            raise DemandError(f"{where}: camera {cam!r} {cls.name.lower()} reported twice")
        if e.bytes < 0 or e.segments < 0 or e.evict_at_unix_us < 0 or e.oldest_start_unix_us < 0:
            raise DemandError(f"{where}: camera {cam!r} reports negative backlog")
        deadline = e.evict_at_unix_us
        requested = asked.get(cam, 0) if cls is TrafficClass.EVIDENCE else 0
        if requested:
            deadline = min(deadline, requested) if deadline else requested
        entries[(cam, cls)] = [e.bytes, e.segments, deadline]
        t = totals.setdefault(cls, [0, 0, 0, 0, 0])
        t[0] += e.bytes
        t[1] += e.segments
        if e.oldest_start_unix_us and (not t[2] or e.oldest_start_unix_us < t[2]):
            t[2] = e.oldest_start_unix_us
        if deadline and e.bytes:
            if not t[3] or deadline < t[3]:
                t[3], t[4] = deadline, e.bytes
            elif deadline == t[3]:
                t[4] += e.bytes
    try:
        backlog = {
            cls: ClassBacklog(b, n, oldest, dl, due)
            for cls, (b, n, oldest, dl, due) in totals.items()
        }
    except SchedulerError as exc:
        raise DemandError(f"{where}: {exc}") from exc
    head: list[PendingSegment] = []
    used: dict[tuple[str, TrafficClass], list[int]] = {}
    for ref in inv.unsent:
        seg_where = f"{where}, segment {ref.segment_id!r}"
        if ref.traffic_class:
            cls = _cls(ref.traffic_class, seg_where)
        else:
            classes = [c for cam, c in entries if cam == ref.camera_id]
            if len(classes) != 1:
                raise DemandError(f"{seg_where}: no class given and camera has {len(classes)}")
            cls = classes[0]
        entry = entries.get((ref.camera_id, cls))
        if entry is None:
            raise DemandError(
                f"{seg_where}: camera {ref.camera_id!r} has no {cls.name.lower()} backlog"
            )
        u = used.setdefault((ref.camera_id, cls), [0, 0])
        u[0] += ref.size_bytes
        u[1] += 1
        if u[0] > entry[0] or u[1] > entry[1]:
            raise DemandError(
                f"{seg_where}: camera {ref.camera_id!r} lists more {cls.name.lower()} segments "
                f"than its backlog of {entry[1]} segments, {entry[0]} bytes"
            )
        try:
            head.append(
                PendingSegment(
                    ref.segment_id, ref.camera_id, cls, ref.start_unix_us, ref.size_bytes, entry[2]
                )
            )
        except SchedulerError as exc:
            raise DemandError(f"{where}: {exc}") from exc
    return DeviceDemand(device, backlog, tuple(head))
