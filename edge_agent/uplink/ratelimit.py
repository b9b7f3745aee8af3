"""A token bucket that caps the agent's upload rate (bytes over an injected clock).

Village uplinks are thin (4-50 Mbit/s) and shared with live viewing, so the agent must never
saturate them: the scheduler hands out a rate per lease and the uplink paces its chunks to it.

The bucket only *decides*: `take(n)` debits `n` bytes and returns how long the caller must wait
before sending them. It never sleeps and reads time only from the injected clock, so the
arithmetic is unit-tested with a manual clock. The balance may go negative (a debt): a chunk
larger than the burst is still allowed, the caller just waits longer, and the long-run rate
stays exactly the configured one. Refill is capped at `burst_bytes`, which bounds how much can
go out back-to-back after an idle period.
"""

from __future__ import annotations

import threading

from edge_agent.clock import Clock

# Rates are bits per second (how links are sold and how leases state them); tokens are bytes.
_BITS_PER_BYTE = 8


class TokenBucket:
    """Upload pacing shared by the upload workers of one agent (thread-safe).

    `rate_bps=None` means unlimited (no pacing). `set_rate` takes effect for the next `take`.
    """

    def __init__(self, rate_bps: int | None, burst_bytes: int, clock: Clock) -> None:
        if burst_bytes <= 0:
            raise ValueError(f"burst_bytes must be positive, got {burst_bytes}")
        _check_rate(rate_bps)
        self._rate_bps = rate_bps
        self._burst = float(burst_bytes)
        self._clock = clock
        self._tokens = float(burst_bytes)
        self._last = clock.monotonic()
        self._lock = threading.Lock()

    @property
    def rate_bps(self) -> int | None:
        return self._rate_bps

    @property
    def burst_bytes(self) -> int:
        return int(self._burst)

    def set_rate(self, rate_bps: int | None) -> None:
        """Change the rate (a lease arrived or ended). Tokens accrued so far are kept."""
        _check_rate(rate_bps)
        with self._lock:
            self._refill()
            self._rate_bps = rate_bps

    def take(self, n: int) -> float:
        """Debit `n` bytes; return the seconds to wait before sending them (0.0 = send now)."""
        if n < 0:
            raise ValueError(f"cannot take a negative number of bytes ({n})")
        with self._lock:
            self._refill()
            if self._rate_bps is None:
                return 0.0
            self._tokens -= n
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / (self._rate_bps / _BITS_PER_BYTE)

    def refund(self, n: int) -> None:
        """Give back bytes that were debited but never sent (an upload was aborted)."""
        if n < 0:
            raise ValueError(f"cannot refund a negative number of bytes ({n})")
        with self._lock:
            self._refill()
            self._tokens = min(self._burst, self._tokens + n)

    def _refill(self) -> None:
        now = self._clock.monotonic()
        elapsed = max(0.0, now - self._last)
        self._last = now
        if self._rate_bps is None:
            self._tokens = self._burst
            return
        self._tokens = min(self._burst, self._tokens + elapsed * self._rate_bps / _BITS_PER_BYTE)


def _check_rate(rate_bps: int | None) -> None:
    if rate_bps is not None and rate_bps <= 0:
        raise ValueError(f"rate_bps must be positive or None (unlimited), got {rate_bps}")
