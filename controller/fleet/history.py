"""Short, downsampled health history per device: enough for a chart, bounded in memory.

Health arrives every 10-30 s from ~12,000 devices; keeping it raw would grow without bound.
Samples falling in the same time bucket are merged (averages for load figures, worst case for
what alerts care about: least disk free, oldest backlog, oldest frame), and only the newest
`keep` buckets are retained. Pure: a tuple in, a new tuple out.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.fleet.monitor import US
from protos.vigil.v1 import fleet_pb2


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    bucket_s: float = 300.0
    keep: int = 96  # 8 hours at 5 minutes
    # Fold every sample into its bucket (averages, worst cases). Off: keep the first sample
    # of each bucket only, which costs nothing per message (the live values are in the
    # device record anyway); the benchmark measures both.
    merge: bool = True


@dataclass(frozen=True, slots=True)
class HealthPoint:
    bucket_start_us: int
    samples: int
    cpu_pct: float
    mem_pct: float
    disk_free_bytes: int
    buffer_bytes: int
    segments_unsent: int
    oldest_unsent_age_s: float
    upload_rate_bps: float
    max_frame_age_s: float
    cameras_connected: int


def point_from_health(h: fleet_pb2.Health, bucket_start_us: int) -> HealthPoint:
    frame_ages = [c.frame_age_s for c in h.cameras]
    return HealthPoint(
        bucket_start_us=bucket_start_us,
        samples=1,
        cpu_pct=h.cpu_pct,
        mem_pct=h.mem_pct,
        disk_free_bytes=h.disk_free_bytes,
        buffer_bytes=h.buffer_bytes,
        segments_unsent=h.segments_unsent,
        oldest_unsent_age_s=h.oldest_unsent_age_s,
        upload_rate_bps=float(h.upload_rate_bps),
        max_frame_age_s=max(frame_ages, default=0.0),
        cameras_connected=sum(1 for c in h.cameras if c.connected),
    )


def _mean(a: float, n: int, b: float) -> float:
    return (a * n + b) / (n + 1)


def merge(p: HealthPoint, q: HealthPoint) -> HealthPoint:
    """Fold one more sample `q` into bucket `p`."""
    n = p.samples
    return HealthPoint(
        bucket_start_us=p.bucket_start_us,
        samples=n + 1,
        cpu_pct=_mean(p.cpu_pct, n, q.cpu_pct),
        mem_pct=_mean(p.mem_pct, n, q.mem_pct),
        disk_free_bytes=min(p.disk_free_bytes, q.disk_free_bytes),
        buffer_bytes=max(p.buffer_bytes, q.buffer_bytes),
        segments_unsent=max(p.segments_unsent, q.segments_unsent),
        oldest_unsent_age_s=max(p.oldest_unsent_age_s, q.oldest_unsent_age_s),
        upload_rate_bps=_mean(p.upload_rate_bps, n, q.upload_rate_bps),
        max_frame_age_s=max(p.max_frame_age_s, q.max_frame_age_s),
        cameras_connected=min(p.cameras_connected, q.cameras_connected),
    )


def add_sample(
    series: tuple[HealthPoint, ...], h: fleet_pb2.Health, at_us: int, policy: HistoryPolicy
) -> tuple[HealthPoint, ...]:
    """The series with `h` (received at `at_us`) folded in; samples older than the last
    bucket are dropped rather than reordering history."""
    bucket_us = int(policy.bucket_s * US)
    start = at_us - at_us % bucket_us
    if series:
        last = series[-1]
        if start == last.bucket_start_us:
            if policy.merge:
                return (*series[:-1], merge(last, point_from_health(h, start)))
            return series
        if start < last.bucket_start_us:
            return series
    return (*series, point_from_health(h, start))[-policy.keep :]
