"""AgentControl wire data to and from the scheduler's plain data. Pure.

Out: a lease (or "no lease") plus the device's complete hold set, as one `Lease` message;
every message carries the whole current state, so a slow stream only ever needs the latest.
In: the job-related parts of an `Inventory` (hold statuses, listed segments), checked with
the same rigour as the backlog (demand_from_inventory): a malformed entry refuses the whole
report with a DemandError naming the device and the entry.
"""

from __future__ import annotations

from collections.abc import Sequence

from controller.jobs.model import HOLD_TAG_PREFIX, SEG_PENDING, SegmentState
from controller.jobs.progress import HoldReport, Missing
from controller.jobs.tracker import DeviceReport, HoldWanted
from controller.scheduler.leases import IssuedLease
from controller.scheduler.model import MAX_BACKLOG_BYTES, DemandError, check_id
from protos.vigil.v1 import agent_control_pb2, common_pb2

MAX_HOLDS = 1024
MAX_MISSING = 256
MAX_REASON = 512
MAX_SEGMENT_US = 3600 * 1_000_000


def lease_message(
    lease: IssuedLease | None, holds: Sequence[HoldWanted], plan_version: int
) -> agent_control_pb2.Lease:
    """The stream message for a device: its lease (empty lease_id: none, stop uploading)."""
    msg = agent_control_pb2.Lease(holds_complete=True, plan_version=plan_version)
    if lease is not None:
        msg.lease_id = lease.lease_id
        msg.rate_bps = lease.rate_bps
        msg.expires_unix_us = lease.expires_us
        cls = lease.traffic_class
        if cls is not None:
            msg.traffic_class = int(cls)  # type: ignore[assignment]
        for seg in lease.segments:
            msg.segments.add(
                segment_id=seg.segment_id,
                camera_id=seg.camera_id,
                start_unix_us=seg.start_us,
                size_bytes=seg.size_bytes,
                traffic_class=int(seg.traffic_class),
            )
    for h in holds:
        msg.holds.add(
            hold_tag=h.tag,
            camera_id=h.camera_id,
            range=common_pb2.TimeRange(start_unix_us=h.start_us, end_unix_us=h.end_us),
            traffic_class=int(h.traffic_class),
            case_id=h.case_id,
        )
    return msg


def _range(r: common_pb2.TimeRange, where: str) -> tuple[int, int]:
    if r.start_unix_us < 0 or r.end_unix_us <= r.start_unix_us:
        raise DemandError(f"{where}: empty or reversed range [{r.start_unix_us}, {r.end_unix_us})")
    return r.start_unix_us, r.end_unix_us


def _hold_report(hs: agent_control_pb2.HoldStatus, where: str) -> tuple[str, str, HoldReport]:
    tag = check_id("hold tag", hs.hold_tag, DemandError)
    if not tag.startswith(HOLD_TAG_PREFIX):
        raise DemandError(f"{where}: hold tag {tag!r} is not one the controller issued")
    camera = check_id("camera", hs.camera_id, DemandError)
    where = f"{where}, hold {tag!r} camera {camera!r}"
    _range(hs.range, where)
    if hs.unsent_segments < 0 or not 0 <= hs.unsent_bytes <= MAX_BACKLOG_BYTES:
        raise DemandError(f"{where}: negative or impossible unsent backlog")
    if (hs.unsent_segments == 0) != (hs.unsent_bytes == 0):
        raise DemandError(
            f"{where}: {hs.unsent_segments} unsent segments cannot hold {hs.unsent_bytes} bytes"
        )
    if hs.recorded_until_unix_us < 0:
        raise DemandError(f"{where}: recorded_until must not be negative")
    if len(hs.missing) > MAX_MISSING:
        raise DemandError(f"{where}: more than {MAX_MISSING} missing ranges")
    missing = []
    for m in hs.missing:
        start, end = _range(m.range, f"{where} missing range")
        if m.camera_id and m.camera_id != camera:
            raise DemandError(f"{where}: missing range names another camera {m.camera_id!r}")
        reason = m.reason.strip() or "not on the agent"
        if len(reason) > MAX_REASON or not reason.isprintable():
            raise DemandError(f"{where}: missing-range reason is not short printable text")
        missing.append(Missing(start, end, reason))
    report = HoldReport(
        hs.unsent_segments,
        hs.unsent_bytes,
        hs.recorded_until_unix_us,
        tuple(missing),
        hs.unknown_camera,
    )
    return tag, camera, report


def device_report(inv: agent_control_pb2.Inventory) -> DeviceReport:
    """The job-related parts of an inventory (call after demand_from_inventory accepted it)."""
    where = f"inventory of device {inv.device_id!r}"
    if len(inv.holds) > MAX_HOLDS:
        raise DemandError(f"{where}: more than {MAX_HOLDS} hold statuses")
    report = DeviceReport()
    for hs in inv.holds:
        tag, camera, hold = _hold_report(hs, where)
        if (tag, camera) in report.holds:
            raise DemandError(f"{where}: hold {tag!r} camera {camera!r} reported twice")
        report.holds[(tag, camera)] = hold
    for ref in inv.unsent:
        if not 0 < ref.duration_us <= MAX_SEGMENT_US:
            continue  # older agents do not send durations; such refs only feed the planner
        report.pending.setdefault(ref.camera_id, []).append(
            SegmentState(
                ref.segment_id,
                ref.camera_id,
                ref.start_unix_us,
                ref.duration_us,
                ref.size_bytes,
                SEG_PENDING,
            )
        )
    return report
