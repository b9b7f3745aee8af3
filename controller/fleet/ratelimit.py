"""Per-device token bucket: one flooding device is throttled, the rest of the fleet is not.

Pure: the bucket is a value, time is passed in (monotonic seconds from the injected clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple


@dataclass(frozen=True, slots=True)
class RatePolicy:
    # A healthy agent sends ~1 health per 10-30 s plus occasional events and a birth burst.
    rate_per_s: float = 2.0
    burst: float = 40.0


class Bucket(NamedTuple):
    tokens: float
    at: float


def take(bucket: Bucket | None, now: float, policy: RatePolicy) -> tuple[bool, Bucket]:
    """(allowed, new bucket) for one message arriving at `now`."""
    if bucket is None:
        tokens = policy.burst
    else:
        elapsed = max(0.0, now - bucket.at)
        tokens = min(policy.burst, bucket.tokens + elapsed * policy.rate_per_s)
    if tokens >= 1.0:
        return True, Bucket(tokens - 1.0, now)
    return False, Bucket(tokens, now)
