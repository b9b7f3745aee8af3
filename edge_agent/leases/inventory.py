"""What the agent tells the controller about its backlog, and which holds to keep. Pure.

- `classify`: everything unsent is backfill, unless a hold covers it (evidence, or the class
  the controller's hold asks for) or its camera is archived to the cloud by policy (archive).
- `build_inventory`: backlog per camera and class, and the head of the unsent segments
  (held ones first, then oldest first), bounded: the scheduler only needs the head.
- `evict_at`: when the buffer would start evicting unsent footage at the current recording
  rate (0: not under pressure), so the planner can rescue it first.
- `hold_status`: for one requested range, what is still unsent, until when the camera has
  recorded, and which parts of the range the agent does not have and why (evicted before
  upload, a recorded gap, or simply not in the buffer).
- `reconcile_holds`: which controller holds to pin and which to release.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from edge_agent.leases.lease import EVIDENCE, TAG_PREFIX, WantedHold
from edge_agent.model import BufferStats, EvictionRecord, Gap, Hold, SegmentInfo, SegmentState
from protos.vigil.v1 import agent_control_pb2, common_pb2
from vigil_common.spans import Span, clip, merge, subtract

ARCHIVE = 4
BACKFILL = 5
US = 1_000_000
HOLE_US = 1 * US  # slivers between back-to-back segments are not missing footage
MAX_MISSING = 256
MAX_PRESSURE_S = 7 * 86400  # further away than this is "no pressure"


@dataclass(frozen=True, slots=True)
class HeldRange:
    camera_id: str
    start_us: int
    end_us: int
    traffic_class: int


def held_ranges(buffer_holds: Sequence[Hold], wanted: Sequence[WantedHold]) -> list[HeldRange]:
    """Every range pinned in the buffer or asked for by the controller, with its class.

    Holds made by operators over MQTT carry no class: they are evidence.
    """
    cls = {w.key(): w.traffic_class for w in wanted}
    out = [
        HeldRange(h.camera_id, h.start_us, h.end_us, cls.get(_key(h), EVIDENCE))
        for h in buffer_holds
    ]
    pinned = {_key(h) for h in buffer_holds}
    out += [
        HeldRange(w.camera_id, w.start_us, w.end_us, w.traffic_class)
        for w in wanted
        if w.key() not in pinned
    ]
    return out


def _key(h: Hold) -> tuple[str, int, int, str]:
    return (h.camera_id, h.start_us, h.end_us, h.case_id)


def classify(info: SegmentInfo, held: Sequence[HeldRange], archive: Collection[str]) -> int:
    """The traffic class the agent files an unsent segment under."""
    classes = [
        h.traffic_class
        for h in held
        if h.camera_id == info.camera_id and h.start_us < info.end_us and h.end_us > info.start_us
    ]
    if classes:
        return min(classes)
    return ARCHIVE if info.camera_id in archive else BACKFILL


def evict_at(stats: BufferStats, record_bps: int, now_us: int) -> int:
    """When the buffer would start evicting unsent segments (0: no pressure in sight).

    Uploaded segments go first, so unsent ones are at risk once the free room and the
    uploaded bytes are used up by new recording.
    """
    if record_bps <= 0:
        return 0
    room = max(0, stats.quota_bytes - stats.total_bytes) + stats.uploaded_bytes
    seconds = room * 8 / record_bps
    return 0 if seconds > MAX_PRESSURE_S else now_us + int(seconds * US)


def build_inventory(
    device_id: str,
    now_us: int,
    unsent: Sequence[SegmentInfo],
    held: Sequence[HeldRange],
    archive: Collection[str],
    evict_at_us: int,
    max_head: int,
    statuses: Iterable[agent_control_pb2.HoldStatus] = (),
) -> agent_control_pb2.Inventory:
    """The Inventory message (backlog totals cover every segment in `unsent`)."""
    classed = [(classify(info, held, archive), info) for info in unsent]
    entries: dict[tuple[str, int], list[int]] = {}  # bytes, segments, oldest
    for cls, info in classed:
        e = entries.setdefault((info.camera_id, cls), [0, 0, 0])
        e[0] += info.size_bytes
        e[1] += 1
        if not e[2] or info.start_us < e[2]:
            e[2] = info.start_us
    inv = agent_control_pb2.Inventory(device_id=device_id, reported_unix_us=now_us)
    for (camera, cls), (size, count, oldest) in sorted(entries.items()):
        at_risk = cls in (ARCHIVE, BACKFILL)  # held segments are never evicted
        inv.backlog.add(
            camera_id=camera,
            traffic_class=cls,
            bytes=size,
            segments=count,
            oldest_start_unix_us=oldest,
            evict_at_unix_us=evict_at_us if at_risk else 0,
        )
    head = sorted(classed, key=lambda ci: (ci[0], ci[1].start_us, ci[1].segment_id))
    for cls, info in head[:max_head]:
        inv.unsent.add(
            segment_id=info.segment_id,
            camera_id=info.camera_id,
            start_unix_us=info.start_us,
            size_bytes=info.size_bytes,
            traffic_class=cls,
            duration_us=info.duration_us,
        )
    inv.holds.extend(statuses)
    return inv


def hold_status(
    hold: WantedHold,
    segments: Sequence[SegmentInfo],
    evictions: Sequence[EvictionRecord],
    reasons: Mapping[int, str],
    gaps: Sequence[Gap],
    camera_known: bool,
    now_us: int,
    settle_us: int,
) -> agent_control_pb2.HoldStatus:
    """What the agent holds of one requested range (`segments` overlap it, any state).

    Only the part of the range that has settled is judged: up to what the camera has
    recorded, or up to `settle_us` ago (a live camera commits a segment well within that),
    whichever is later. The rest may still be recording.
    """
    start, end = hold.start_us, hold.end_us
    status = agent_control_pb2.HoldStatus(
        hold_tag=hold.tag,
        camera_id=hold.camera_id,
        range=common_pb2.TimeRange(start_unix_us=start, end_unix_us=end),
    )
    if not camera_known:
        status.unknown_camera = True
        _missing(status, hold.camera_id, [(start, end, "camera is not configured on this device")])
        return status
    mine = [s for s in segments if s.start_us < end and s.end_us > start]
    unsent = [s for s in mine if s.state is SegmentState.UNSENT]
    status.unsent_segments = len(unsent)
    status.unsent_bytes = sum(s.size_bytes for s in unsent)
    status.recorded_until_unix_us = max((s.end_us for s in segments), default=0)
    judged_until = min(end, max(status.recorded_until_unix_us, now_us - settle_us))
    have = merge(((s.start_us, s.end_us) for s in mine), HOLE_US)
    holes = subtract([(start, judged_until)], have)
    labelled: list[tuple[Span, str]] = []
    for e in evictions:
        if e.camera_id == hold.camera_id:
            why = reasons.get(e.record_id, "quota")
            text = (
                f"uploaded, then evicted from the agent buffer ({why})"
                if e.was_uploaded
                else f"evicted from the agent buffer before upload ({why})"
            )
            labelled.append(((e.start_us, e.end_us), text))
    labelled += [((g.start_us, g.end_us), f"not recorded: {g.reason}") for g in gaps]
    found: list[tuple[int, int, str]] = []
    for hole in holes:
        rest = [hole]
        for span, reason in labelled:
            found += [(lo, hi, reason) for lo, hi in clip(rest, *span)]
            rest = subtract(rest, [span])
        found += [(lo, hi, "not in the agent buffer") for lo, hi in rest if hi - lo > HOLE_US]
    _missing(status, hold.camera_id, found)
    return status


def _missing(
    status: agent_control_pb2.HoldStatus, camera: str, found: list[tuple[int, int, str]]
) -> None:
    """Add missing ranges, joining touching ones with the same reason; at most MAX_MISSING."""
    joined: list[tuple[int, int, str]] = []
    for s, e, reason in sorted(found):
        if joined and joined[-1][2] == reason and s <= joined[-1][1] + HOLE_US:
            joined[-1] = (joined[-1][0], max(e, joined[-1][1]), reason)
        else:
            joined.append((s, e, reason))
    if len(joined) > MAX_MISSING:
        last = joined[MAX_MISSING - 1 :]
        joined = joined[: MAX_MISSING - 1] + [
            (last[0][0], max(e for _, e, _ in last), f"{len(last)} ranges, several reasons")
        ]
    for s, e, reason in joined:
        status.missing.add(
            camera_id=camera,
            range=common_pb2.TimeRange(start_unix_us=s, end_unix_us=e),
            reason=reason,
        )


def reconcile_holds(
    wanted: Sequence[WantedHold], existing: Sequence[Hold]
) -> tuple[list[WantedHold], list[str]]:
    """(holds to pin, buffer hold ids to release). Only holds whose case id carries the
    controller's tag prefix are ever released; operators' own holds are left alone."""
    have = {_key(h) for h in existing}
    want = {w.key() for w in wanted}
    pin = [w for w in wanted if w.key() not in have]
    release = [
        h.hold_id for h in existing if h.case_id.startswith(TAG_PREFIX) and _key(h) not in want
    ]
    return pin, release
