"""What the console's timeline knows beyond the cloud's segments, from data the controller
already has: footage evicted from the agent before upload (the loss reports, `loss_event`);
the camera's unsent segments its agent's last inventory listed (`unsent`: the scheduler
leader's view, exact but only the oldest-first head); and whether the agent holds unsent
footage at all (its last health report: the oldest unsent segment's age). The last is per
device, not per camera: a gap in the cloud after `unsent_since_us` is footage that is probably
still on the device (or a recording gap), which the console says in those words; a footage
request finds out exactly.

    GET /api/v1/cameras/{camera}/on-device?from=T&to=T
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from controller.api.common import camera_for, may_see, refuse
from controller.api.deps import DepsDep, UserDep
from controller.api.params import parse_time_us
from controller.catalog.history import HistoryCatalog

router = APIRouter(prefix="/api/v1", tags=["catalog"])

MAX_RANGES = 2000  # evicted ranges listed (touching ones merged first)
MAX_SPAN_US = 31 * 24 * 3600 * 1_000_000


class RangeOut(BaseModel):
    start_us: int
    end_us: int
    reason: str


class OnDeviceOut(BaseModel):
    camera_id: str
    device_id: str
    evicted: list[RangeOut]
    unsent: list[RangeOut]  # from the last inventory (empty on a follower replica)
    truncated: bool
    unsent_segments: int  # the device's, at its last health report (0: none or no report)
    unsent_since_us: int  # start of its oldest unsent segment (0: nothing unsent)
    reported_us: int  # when that report was made (0: none)


def merge(ranges: list[tuple[int, int, str]], slack_us: int = 1_500_000) -> list[RangeOut]:
    """Sorted ranges with the same reason that touch (within `slack_us`) joined (pure)."""
    out: list[RangeOut] = []
    for lo, hi, reason in sorted(ranges):
        last = out[-1] if out else None
        if last is not None and last.reason == reason and lo - last.end_us <= slack_us:
            last.end_us = max(last.end_us, hi)
        else:
            out.append(RangeOut(start_us=lo, end_us=hi, reason=reason))
    return out


@router.get("/cameras/{camera_id}/on-device", response_model=OnDeviceOut)
def on_device(
    camera_id: str,
    user: UserDep,
    deps: DepsDep,
    from_: Annotated[str, Query(alias="from")],
    to: Annotated[str, Query()],
) -> OnDeviceOut:
    action = "catalog_on_device"
    row, info = camera_for(deps, camera_id, action, user)
    if not may_see(deps, user, info):
        refuse(
            deps,
            action,
            user,
            "not_entitled",
            f"{user.org_id!r} is not entitled to camera {camera_id!r}",
            camera_id=camera_id,
        )
    try:
        lo, hi = parse_time_us(from_, "from"), parse_time_us(to, "to")
    except ValueError as exc:
        refuse(deps, action, user, "bad_request", str(exc), camera_id=camera_id)
    if not 0 < hi - lo <= MAX_SPAN_US:
        refuse(deps, action, user, "bad_request", "from must be before to, within 31 days")
    # Every camera's reports over the range, filtered here: the history catalog has no
    # per-camera read yet (a day of a city's evictions is thousands of rows at most).
    losses = HistoryCatalog(deps.catalog.engine, deps.clock).losses(lo, hi)
    evicted = merge([(r.start_us, r.end_us, r.reason) for r in losses if r.camera_id == camera_id])
    since = unsent = reported = 0
    record = deps.fleet.device(row.device_id) if deps.fleet is not None else None
    health = record.health if record is not None else None
    if health is not None and health.segments_unsent > 0:
        unsent = health.segments_unsent
        reported = health.at_unix_us
        since = reported - int(health.oldest_unsent_age_s * 1_000_000)
    spans = deps.scheduler.unsent(row.device_id, row.camera_id) if deps.scheduler else []
    unsent_ranges = merge([(a, b, "unsent") for a, b in spans if a < hi and b > lo])
    return OnDeviceOut(
        camera_id=row.camera_id,
        device_id=row.device_id,
        evicted=evicted[:MAX_RANGES],
        unsent=unsent_ranges[:MAX_RANGES],
        truncated=len(evicted) > MAX_RANGES,
        unsent_segments=unsent,
        unsent_since_us=since,
        reported_us=reported,
    )
