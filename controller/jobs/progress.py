"""A job's progress, computed from what the cloud holds and what the agent reports. Pure.

Per camera of a job, three sources meet:

- the catalog: segments already stored that overlap the requested range (done);
- the agent's `HoldStatus` for the job's hold: how many segments of the range are still
  unsent, until when it has recorded, and which parts of the range it does not have, why;
- the segments the agent listed (its inventory head), kept as the job's pending segments.

What the agent lacks and the cloud does not hold either is gone, with the agent's reason.
A camera is complete when nothing of the range is left on the agent and every part of the
range is either stored or accounted for as gone (the camera is not still recording it). A
job is done when every camera is complete.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from controller.jobs.model import (
    SEG_GONE,
    SEG_PENDING,
    SEG_UPLOADED,
    US,
    CameraStatus,
    GoneRange,
    SegmentState,
)
from vigil_common.spans import Span, clip, covered, merge, subtract

# Segments of one camera are cut back to back but may leave sub-second slivers between
# them (keyframe timing); holes shorter than this are not missing footage.
HOLE_TOLERANCE_US = 1 * US


@dataclass(frozen=True, slots=True)
class Stored:
    """A catalog segment overlapping a job's range."""

    segment_id: str
    start_us: int
    duration_us: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class Missing:
    start_us: int
    end_us: int
    reason: str


@dataclass(frozen=True, slots=True)
class HoldReport:
    """The agent's latest HoldStatus for one camera of one job (plain data)."""

    unsent_segments: int
    unsent_bytes: int
    recorded_until_us: int
    missing: tuple[Missing, ...] = ()
    unknown_camera: bool = False


@dataclass(frozen=True, slots=True)
class CameraOutcome:
    status: CameraStatus
    bytes_done: int
    segments_done: int
    bytes_pending: int
    segments_pending: int
    gone: tuple[GoneRange, ...]
    segments: tuple[SegmentState, ...]


def camera_outcome(
    camera_id: str,
    device_id: str,
    start_us: int,
    end_us: int,
    stored: Sequence[Stored],
    report: HoldReport | None,
    pending: Sequence[SegmentState],
    online: bool,
) -> CameraOutcome:
    """Progress of one camera of a job (see the module docstring)."""
    cloud = merge(((s.start_us, s.start_us + s.duration_us) for s in stored), HOLE_TOLERANCE_US)
    gone: list[GoneRange] = []
    missing_spans: list[Span] = []
    for m in report.missing if report else ():
        for start, end in subtract(clip([(m.start_us, m.end_us)], start_us, end_us), cloud):
            if end - start > HOLE_TOLERANCE_US:
                gone.append(GoneRange(camera_id, start, end, m.reason))
        missing_spans.append((m.start_us, m.end_us))
    gone.sort(key=lambda g: (g.start_us, g.end_us))
    lost = merge(missing_spans)
    stored_ids = {s.segment_id for s in stored}
    states = [
        SegmentState(s.segment_id, camera_id, s.start_us, s.duration_us, s.size_bytes, SEG_UPLOADED)
        for s in stored
    ]
    waiting_segments = 0
    waiting_bytes = 0
    for p in pending:
        if p.segment_id in stored_ids:
            continue
        span = (p.start_us, p.start_us + max(p.duration_us, 1))
        is_gone = p.state == SEG_GONE or (
            report is not None and covered(lost, span[0], span[1], HOLE_TOLERANCE_US)
        )
        states.append(
            SegmentState(
                p.segment_id,
                camera_id,
                p.start_us,
                p.duration_us,
                p.size_bytes,
                SEG_GONE if is_gone else SEG_PENDING,
            )
        )
        if not is_gone:
            waiting_segments += 1
            waiting_bytes += p.size_bytes
    if report is not None:  # the agent's counts cover segments it has not listed yet
        waiting_segments, waiting_bytes = report.unsent_segments, report.unsent_bytes
    done_bytes = sum(s.size_bytes for s in stored)
    waiting = _waiting(device_id, start_us, end_us, report, cloud, lost, online)
    return CameraOutcome(
        CameraStatus(camera_id, device_id, not waiting, waiting),
        done_bytes,
        len(stored),
        waiting_bytes,
        waiting_segments,
        tuple(gone),
        tuple(states),
    )


def _waiting(
    device_id: str,
    start_us: int,
    end_us: int,
    report: HoldReport | None,
    cloud: list[Span],
    lost: list[Span],
    online: bool,
) -> str:
    """Why the camera is not complete ("" if it is)."""
    if report is None:
        if covered(cloud, start_us, end_us, HOLE_TOLERANCE_US):
            return ""  # already in the cloud entirely: nothing to wait for
        state = "connected" if online else "offline"
        return f"waiting for device {device_id} ({state}) to report on the range"
    if report.unsent_segments:
        return (
            f"{report.unsent_segments} segment(s), {report.unsent_bytes} bytes still on "
            f"device {device_id}"
        )
    if report.unknown_camera:
        return ""
    tail = max(start_us, report.recorded_until_us)
    if tail < end_us and not covered(cloud + lost, tail, end_us, HOLE_TOLERANCE_US):
        return f"the camera is still recording the requested range on device {device_id}"
    return ""


def eta_us(remaining_bytes: Mapping[str, int], rate_bps: Mapping[str, int], now_us: int) -> int:
    """When the remaining bytes (per device) arrive at the devices' rates; 0 if unknown.

    Devices upload in parallel, so the job ends with its slowest device. A device with
    bytes left and no rate makes the ETA unknown.
    """
    worst = 0.0
    for device, left in remaining_bytes.items():
        if left <= 0:
            continue
        rate = rate_bps.get(device, 0)
        if rate <= 0:
            return 0
        worst = max(worst, left * 8 / rate)
    return now_us + int(worst * US)
