"""Per-client throttles for what costs the controller work on every bad attempt, and the
client address behind trusted proxies.

A refused segment URL or a failed login is audited (a serialised write), and a login costs a
password KDF (~0.1 s of CPU): a client hammering the controller would otherwise turn the audit
log and the CPU into a bottleneck for everyone. Each budget is a token bucket (the pure
`controller.fleet.ratelimit.take`) charged once per *refusal*: legitimate traffic never
touches it, and an over-budget client gets 429 with a Retry-After (its backoff) without any
further checking or writing until its bucket refills. Bounded: a table forgets full buckets
when it grows.

Logins (`login_gate`, pure: budgets as data, time as an argument) have three budgets:

- per client address: one source spraying one password over many user ids is stopped;
- per user id, for clients that never logged in as that user: a botnet spreading guesses for
  one account over many addresses is stopped;
- per known client: a browser that logged in as the user before carries a signed
  known-client token (an HttpOnly cookie). Its attempts are charged to its own budget only,
  so an attacker exhausting the address or user budget (even from the same proxy address)
  does not lock the owner out of the clients they use.
"""

from __future__ import annotations

import ipaddress
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from controller.fleet.ratelimit import Bucket, RatePolicy, take

MAX_KEYS = 10_000
MAX_FORWARDED_HOPS = 16


def _refill(bucket: Bucket, now: float, policy: RatePolicy) -> float:
    return min(policy.burst, bucket.tokens + max(0.0, now - bucket.at) * policy.rate_per_s)


def wait_s(bucket: Bucket | None, now: float, policy: RatePolicy) -> float:
    """Seconds until `bucket` holds one token again (0 when it does now)."""
    if bucket is None:
        return 0.0
    tokens = _refill(bucket, now, policy)
    if tokens >= 1.0:
        return 0.0
    if policy.rate_per_s <= 0:
        return math.inf
    return (1.0 - tokens) / policy.rate_per_s


class RefusalLimiter:
    def __init__(self, policy: RatePolicy, max_keys: int = MAX_KEYS) -> None:
        self.policy = policy
        self._max_keys = max_keys
        self._buckets: dict[str, Bucket] = {}
        self._lock = threading.Lock()

    def over(self, key: str, now: float) -> bool:
        """Is `key` out of refusals right now? (Does not charge.)"""
        return self.retry_after(key, now) > 0.0

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until `key` may be refused again (0: it has budget now)."""
        with self._lock:
            return wait_s(self._buckets.get(key), now, self.policy)

    def bucket(self, key: str) -> Bucket | None:
        with self._lock:
            return self._buckets.get(key)

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


# --- logins --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LoginBudgets:
    """Failed-login budgets (burst, then one per 1/rate seconds: the backoff)."""

    per_address: RatePolicy = field(default_factory=lambda: RatePolicy(1 / 30, 20.0))
    per_user: RatePolicy = field(default_factory=lambda: RatePolicy(1 / 60, 10.0))
    per_known_client: RatePolicy = field(default_factory=lambda: RatePolicy(0.1, 10.0))


@dataclass(frozen=True, slots=True)
class LoginGate:
    """The decision for one login attempt: allowed, or refused by `budget` for `retry_after_s`.
    `charge` names the budgets a failure of this attempt is charged to."""

    allowed: bool
    budget: str
    retry_after_s: float
    charge: tuple[str, ...]


def login_keys(address: str, user_id: str, known_client: str) -> dict[str, str]:
    """The bucket keys of an attempt, by budget name."""
    if known_client:
        return {"per_known_client": f"k|{user_id}|{known_client}"}
    return {"per_address": f"a|{address}", "per_user": f"u|{user_id}"}


def login_gate(
    buckets: dict[str, Bucket | None],
    address: str,
    user_id: str,
    known_client: str,
    now: float,
    budgets: LoginBudgets,
) -> LoginGate:
    """Decide one attempt from the current buckets (by key). Pure.

    A known client (a valid token for this user) is judged by its own budget only; any other
    client by the address and the user budgets, the longer wait winning."""
    keys = login_keys(address, user_id, known_client)
    worst_name, worst_wait = "", 0.0
    for name, key in keys.items():
        wait = wait_s(buckets.get(key), now, getattr(budgets, name))
        if wait > worst_wait:
            worst_name, worst_wait = name, wait
    return LoginGate(worst_wait == 0.0, worst_name, worst_wait, tuple(keys))


class LoginThrottle:
    """The login budgets' buckets (the shell around `login_gate`); thread-safe, bounded."""

    def __init__(self, budgets: LoginBudgets, max_keys: int = MAX_KEYS) -> None:
        self.budgets = budgets
        self._limiters = {
            name: RefusalLimiter(getattr(budgets, name), max_keys)
            for name in ("per_address", "per_user", "per_known_client")
        }

    def check(self, address: str, user_id: str, known_client: str, now: float) -> LoginGate:
        keys = login_keys(address, user_id, known_client)
        buckets = {key: self._limiters[name].bucket(key) for name, key in keys.items()}
        return login_gate(buckets, address, user_id, known_client, now, self.budgets)

    def charge_failure(self, address: str, user_id: str, known_client: str, now: float) -> None:
        for name, key in login_keys(address, user_id, known_client).items():
            self._limiters[name].charge(key, now)


# --- client address ------------------------------------------------------------------------

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_proxies(entries: Iterable[str]) -> tuple[Network, ...]:
    """Trusted proxy addresses or networks ("10.0.0.5", "10.0.0.0/24"); ValueError if bad."""
    return tuple(ipaddress.ip_network(e.strip(), strict=False) for e in entries)


def _trusted(address: str, proxies: Sequence[Network]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in proxies)


def forwarded_client(peer: str, forwarded: Sequence[str], proxies: Sequence[Network]) -> str:
    """The client address of a request. X-Forwarded-For is honoured only when the peer is a
    trusted proxy; then the nearest address in it that is not itself a trusted proxy is the
    client (what the left-most entries say is the client's own claim, so never taken on trust).
    Malformed entries end the walk at the last trustworthy hop."""
    if not proxies or not _trusted(peer, proxies):
        return peer
    hops = [h.strip() for line in forwarded for h in line.split(",") if h.strip()]
    client = peer
    for hop in reversed(hops[-MAX_FORWARDED_HOPS:]):
        try:
            ipaddress.ip_address(hop)
        except ValueError:
            return client
        client = hop
        if not _trusted(hop, proxies):
            return client
    return client
