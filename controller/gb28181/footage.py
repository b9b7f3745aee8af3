"""What recorded footage an upper platform may see, and what its Playback/Download gets: pure.

An upper platform is an organisation with a grant scope: the cameras its organisation is
entitled to (controller/grants/policy.py) and a footage window, how far back it may look
(`[[gb28181.upper]] footage_days`). The tier policy has no organisation-level look-back
(entitlements are areas and classes; time windows live on grants, which an upper platform
never presents), so the window is the platform's own setting: 0 keeps the old behaviour (no
limit, only retention bounds it).

RecordInfo answers are clipped to the window. A Playback/Download INVITE is checked here
before anything is read: an empty or reversed range is 400, one over `MAX_RANGE_US` is 400
(a month, the longest footage request), one wholly before the window is 403 with the window
said in the Warning, one partly before it is served from the window's start.

Footage that is only on the camera's agent cannot be played until it is uploaded. Its INVITE
files the same footage request the console's "fetch from device" files (a job, evidence
class) and is answered 480 with `Retry-After` (the job's ETA once the scheduler has planned
it, else `RETRY_DEFAULT_S`) and a Warning saying the footage is being fetched. The INVITE is
not held open with provisional answers until the footage arrives: upper platforms give an
INVITE a fixed wait of seconds (WVP-PRO: `user-settings.play-timeout`, 18 s by default) and
then tell their user the play timed out, while fetching from an agent over a village link
takes minutes; a clear 480 the user can act on beats a time-out that says nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

US = 1_000_000
DAY_US = 86_400 * US
MAX_FOOTAGE_DAYS = 3660  # ten years: beyond any retention; larger is a typo
MAX_RANGE_US = 31 * DAY_US  # like a footage request (controller/jobs/model.py MAX_RANGE_US)
RETRY_DEFAULT_S = 60  # before the scheduler has planned the fetch (no ETA yet)
RETRY_MIN_S, RETRY_MAX_S = 10, 3600
FETCH_DEADLINE_US = 3600 * US  # the deadline the console's "fetch from device" sets: an hour
GB_CASE_PREFIX = "gb28181-"


@dataclass(frozen=True, slots=True)
class Refusal:
    """A SIP error for an INVITE: status, the reason phrase (ASCII, for the log and the
    status line), the Warning text (zh-CN, shown by upper platforms) and Retry-After (s)."""

    status: int
    reason: str
    warning: str
    retry_after_s: int = 0


@dataclass(frozen=True, slots=True)
class OpenJob:
    """An open footage request, as far as deduplication needs it."""

    job_id: str
    cameras: tuple[str, ...]
    start_us: int
    end_us: int
    eta_us: int = 0


def window_from(footage_days: int, now_us: int) -> int:
    """The earliest footage time the platform may see (UTC µs); 0: no limit."""
    return now_us - footage_days * DAY_US if footage_days > 0 else 0


def clip_ranges(ranges: Sequence[tuple[int, int]], from_us: int) -> list[tuple[int, int]]:
    """`ranges` with what lies before `from_us` cut off (a range ending by then dropped)."""
    return [(max(a, from_us), b) for a, b in ranges if b > from_us]


def check_range(
    start_us: int, end_us: int, from_us: int, footage_days: int
) -> tuple[int, int] | Refusal:
    """The part of an INVITE's `t=` range that may be served, or why none may."""
    if end_us <= start_us:
        return Refusal(400, "time range is empty or reversed", "录像时间段为空或起止颠倒")
    if end_us - start_us > MAX_RANGE_US:
        days = (end_us - start_us) / DAY_US
        limit = MAX_RANGE_US // DAY_US
        return Refusal(
            400,
            f"time range of {days:.1f} days is longer than {limit} days",
            f"录像时间段 {days:.1f} 天，超过 {limit} 天上限",
        )
    if from_us and end_us <= from_us:
        return Refusal(
            403,
            f"time range is outside this platform's footage window (the last {footage_days} days)",
            f"超出本平台可调阅的录像时限（最近 {footage_days} 天）",
        )
    return max(start_us, from_us), end_us


def fetch_span(
    on_device: Sequence[tuple[int, int]], start_us: int, end_us: int
) -> tuple[int, int] | None:
    """The range to fetch: the on-agent spans' hull within [start_us, end_us)."""
    inside = [(max(a, start_us), min(b, end_us)) for a, b in on_device if b > start_us]
    inside = [(a, b) for a, b in inside if b > a]
    if not inside:
        return None
    return min(a for a, _ in inside), max(b for _, b in inside)


def covering(jobs: Sequence[OpenJob], camera_id: str, start_us: int, end_us: int) -> OpenJob | None:
    """An open request that already covers this camera's [start_us, end_us) (by anyone: the
    console's or an earlier INVITE's), so a repeated INVITE files nothing new."""
    for job in jobs:
        if camera_id in job.cameras and job.start_us <= start_us and job.end_us >= end_us:
            return job
    return None


def retry_after_s(eta_us: int, now_us: int) -> int:
    """Seconds the platform should wait before asking again: the job's ETA, bounded."""
    if eta_us <= now_us:
        return RETRY_DEFAULT_S
    return min(max(math.ceil((eta_us - now_us) / US), RETRY_MIN_S), RETRY_MAX_S)


def fetching(job_id: str, eta_us: int, now_us: int, filed: bool) -> Refusal:
    """The answer to an INVITE for footage still only on the agent, being fetched."""
    wait = retry_after_s(eta_us, now_us)
    what = "fetch requested" if filed else "fetch already requested"
    return Refusal(
        480,
        f"footage still on the camera's agent: {what} (job {job_id[:8]}), retry in {wait} s",
        f"录像仍在设备上，已向设备调取（请求 {job_id[:8]}），请约 {wait} 秒后重试",
        wait,
    )


def case_id(server_id: str) -> str:
    """The case id of the requests an upper platform's INVITEs file (jobs' CASE_ID form)."""
    return GB_CASE_PREFIX + server_id[:64]


def warning(host: str, text: str) -> str:
    """A Warning header value (RFC 3261 §20.43: code 399, misc.), the text quoted."""
    safe = text.replace("\\", "").replace('"', "'")[:200]
    return f'399 {host} "{safe}"'


@dataclass(frozen=True, slots=True)
class Filed:
    """The request covering an INVITE's on-agent footage: `new` when this INVITE filed it."""

    job: OpenJob
    new: bool


class FetchError(RuntimeError):
    """No footage request could be filed (no job service, the database, a refused request)."""
