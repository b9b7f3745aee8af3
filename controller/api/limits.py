"""Per-client throttles for what costs the controller work on every bad attempt.

A refused segment URL or a failed login is audited (a serialised write); a client hammering
the controller with forged URLs or guessed passwords would otherwise turn the audit log into
a bottleneck for everyone. Each client (address, or address + user for logins) has a token
bucket (the pure `controller.fleet.ratelimit.take`) charged once per *refusal*: legitimate
traffic never touches it, and an over-limit client gets 429 without any further checking or
writing until its bucket refills. Bounded: the table forgets full buckets when it grows.
"""

from __future__ import annotations

import threading

from controller.fleet.ratelimit import Bucket, RatePolicy, take

MAX_KEYS = 10_000


def _refill(bucket: Bucket, now: float, policy: RatePolicy) -> float:
    return min(policy.burst, bucket.tokens + max(0.0, now - bucket.at) * policy.rate_per_s)


class RefusalLimiter:
    def __init__(self, policy: RatePolicy, max_keys: int = MAX_KEYS) -> None:
        self.policy = policy
        self._max_keys = max_keys
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    def over(self, key: str, now: float) -> bool:
        """Is `key` out of refusals right now? (Does not charge.)"""
        with self._lock:
            bucket = self._buckets.get(key)
            return bucket is not None and _refill(bucket, now, self.policy) < 1.0

    def charge(self, key: str, now: float) -> bool:
        """Count one refusal; True exactly when this one used the last token."""
        with self._lock:
            if len(self._buckets) >= self._max_keys:
                self._forget_full(now)
            _allowed, bucket = take(self._buckets.get(key), now, self.policy)
            self._buckets[key] = bucket
            return _allowed and bucket.tokens < 1.0

    def _forget_full(self, now: float) -> None:
        full = [k for k, b in self._buckets.items() if _refill(b, now, self.policy) >= 1.0]
        for k in full:
            del self._buckets[k]
        if len(self._buckets) >= self._max_keys:  # everyone is over: keep the newest half
            for k in list(self._buckets)[: len(self._buckets) // 2]:
                del self._buckets[k]
