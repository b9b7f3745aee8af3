"""Which controller address the agent talks to: the pure decisions of failover (no I/O).

An agent is configured with one or more controller replicas (`uplink.controllers`, in order of
preference). It keeps two routes over that list, each a `Route` value moved only by the
functions here (the thread-safe holders and channels are in `routing.py`):

- the upload route (Ingest: QueryOffset/Upload) prefers the first reachable address (the
  agent's home replica): any replica accepts uploads, so spreading agents over replicas is a
  matter of ordering their lists. After a failover it returns home once it has worked
  elsewhere for a while (`prefer_home`), so replicas back from maintenance get their agents
  back instead of one replica keeping everyone forever.
- the control route (AgentControl: inventories, the lease stream, lease reports) follows the
  scheduler leader. A follower refuses with FAILED_PRECONDITION and names the leader in the
  `vigil-leader` trailing metadata; the route moves there only if that address is one of the
  configured ones (`redirected`): a compromised follower must not steer agents to a host of
  its choosing. An unlisted or unknown leader means: try the next address in order.

A failure that says "this address is unusable" (UNAVAILABLE, DEADLINE_EXCEEDED, or no status
at all: the connection failed) moves a route to the next address; other errors (a refusal,
a busy server) do not, since another replica would answer the same. Uploads are more patient
(`upload_failed`): a village link that drops mid-upload looks the same as a replica dying,
and the replica holds the bytes staged so far, which another replica does not have. So an
Upload stream that breaks keeps the address (the retry resumes there) and only a QueryOffset
that fails, or `UPLOAD_STRIKES` broken streams in a row, move the upload route on.

After a success a route stays where it is. Failures are reported with the address the call
used: a late report about an address the route already left changes nothing, so concurrent
callers failing together move a route by one step, not one step each. Retries are paced by
`retry_delay_s`: quick while there are untried addresses in this pass, doubling with each
full pass that failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum

# gRPC status names after which the address itself is the problem.
FAILOVER_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", ""})
# What a follower replica answers AgentControl calls with (controller/leader/__init__.py).
NOT_LEADER_CODE = "FAILED_PRECONDITION"
# Broken Upload streams in a row on one address before the upload route gives up on it.
UPLOAD_STRIKES = 3


def moves_on(code: str) -> bool:
    """Whether a failed call with this gRPC status name should try the next address."""
    return code in FAILOVER_CODES


def same_address(a: str, b: str) -> bool:
    """Addresses compare without case and surrounding blanks (host names are case-blind)."""
    return a.strip().lower() == b.strip().lower()


def find_address(addresses: Sequence[str], candidate: str) -> int | None:
    """The index of `candidate` in the configured list, or None if it is not there."""
    for i, address in enumerate(addresses):
        if candidate and same_address(address, candidate):
            return i
    return None


@dataclass(frozen=True, slots=True)
class Route:
    """Where one channel of the agent points now, and how it got there."""

    addresses: tuple[str, ...]
    index: int = 0
    failures: int = 0  # consecutive failed calls since the last success
    failovers: int = 0  # times this route moved to another address (failure or redirect)
    since: float = 0.0  # monotonic time the current address was chosen
    strikes: int = 0  # uploads broken mid-stream on this address since it last worked

    def __post_init__(self) -> None:
        if not self.addresses:
            raise ValueError("a route needs at least one controller address")
        if not 0 <= self.index < len(self.addresses):
            raise ValueError(f"index {self.index} outside {len(self.addresses)} addresses")

    @property
    def address(self) -> str:
        return self.addresses[self.index]


def start(addresses: Sequence[str], now: float) -> Route:
    """A route at the first (home) address."""
    return Route(tuple(addresses), since=now)


def succeeded(route: Route, address: str) -> Route:
    """A call to `address` worked: the route stays, its failure streak ends."""
    if address != route.address or (route.failures == 0 and route.strikes == 0):
        return route
    return replace(route, failures=0, strikes=0)


def _move(route: Route, index: int, now: float) -> Route:
    moved = index != route.index
    return replace(
        route,
        index=index,
        failures=route.failures + 1,
        failovers=route.failovers + (1 if moved else 0),
        since=now if moved else route.since,
        strikes=0,
    )


def failed(route: Route, address: str, now: float) -> Route:
    """A call to `address` found it unusable: move to the next address (wrapping around).

    A report about an address the route already left is stale and changes nothing.
    """
    if address != route.address:
        return route
    return _move(route, (route.index + 1) % len(route.addresses), now)


def upload_failed(
    route: Route, address: str, code: str, stage: str, now: float, strikes: int = UPLOAD_STRIKES
) -> Route:
    """An upload attempt through `address` failed with status `code` during `stage`.

    "query" (QueryOffset, or any stage but a started stream): the replica does not answer, so
    move on as `failed` does. "upload" (the stream broke after it started): stay, so the retry
    resumes from what this replica staged, unless that happened `strikes` times in a row.
    Codes that do not say the address is unusable change nothing.
    """
    if address != route.address or not moves_on(code):
        return route
    if stage != "upload" or route.strikes + 1 >= strikes:
        return failed(route, address, now)
    return replace(route, failures=route.failures + 1, strikes=route.strikes + 1)


def redirected(route: Route, address: str, leader: str, now: float) -> Route:
    """The replica at `address` is not the leader and names `leader`.

    Accepted only if `leader` is one of the configured addresses (and not the one that just
    refused); otherwise the route tries the next address in order, as after a failure.
    """
    if address != route.address:
        return route
    target = find_address(route.addresses, leader)
    if target is None or target == route.index:
        return failed(route, address, now)
    return _move(route, target, now)


def prefer_home(route: Route, now: float, after_s: float) -> Route:
    """Back to the first address once the route has worked elsewhere for `after_s` seconds.

    Only from a healthy state (no failure streak): a route still failing over keeps going.
    If home is still down, the next failure moves the route on again and the clock restarts.
    """
    if route.index == 0 or route.failures or now - route.since < after_s:
        return route
    return replace(route, index=0, since=now)


def retry_delay_s(
    failures: int, n_addresses: int, initial_s: float, cap_s: float, jitter: float
) -> float:
    """Seconds to wait before the next attempt after `failures` consecutive failures.

    0 without failures. While a pass over the addresses has untried ones the ceiling stays at
    twice `initial_s` (the next replica is probably up); each full pass that failed doubles it,
    up to `cap_s`. `jitter` in [0, 1] picks a point between `initial_s` and the ceiling, so a
    city of agents redirected or cut off at the same moment does not come back in lockstep, and
    never below `initial_s`, so there is no tight loop however the jitter falls.
    """
    if failures <= 0:
        return 0.0
    passes = (failures - 1) // max(1, n_addresses)
    ceiling = min(cap_s, initial_s * 2.0 ** min(passes + 1, 32))
    ceiling = max(ceiling, initial_s)
    return initial_s + min(1.0, max(0.0, jitter)) * (ceiling - initial_s)


@dataclass(frozen=True, slots=True)
class RouteStatus:
    """What health reports show of the uplink's routes ('' control: no lease client)."""

    control_address: str
    upload_address: str
    failovers: int


class ControlAction(Enum):
    """What a failed AgentControl call means for the control route."""

    STAY = "stay"  # not about the address (a refusal, a busy server, our own cancel)
    NEXT = "next"  # the address is unusable: try the next one
    REDIRECT = "redirect"  # a follower answered: go to the leader it names, if listed


def control_action(code: str, leader_named: bool) -> ControlAction:
    """Decide from a failed AgentControl call's status name and whether it named a leader.

    FAILED_PRECONDITION is what followers answer; with the `vigil-leader` metadata it is a
    redirect, without it the replica is still not one to talk to (its leader is unknown for
    now), so the route tries the next address.
    """
    if code == NOT_LEADER_CODE:
        return ControlAction.REDIRECT if leader_named else ControlAction.NEXT
    if moves_on(code):
        return ControlAction.NEXT
    return ControlAction.STAY
