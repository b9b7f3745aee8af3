"""What the HTTP API is given (`ApiDeps`, a plain dataclass) and the typed dependencies routes
declare (`DepsDep`, `UserDep`, `OptionalUserDep`).

No globals: `create_app(deps)` stores the dataclass on `app.state`, and every dependency reads
it from the request. Tests build an `ApiDeps` around real services with a manual clock.

Authentication: a session bearer token from `POST /api/v1/login`, sent as
`Authorization: Bearer <token>` (or, for players that cannot set headers, `?session=`). The
signature and expiry are checked without I/O; the account is then loaded so a disabled
account or a changed password (both bump `session_version`) ends its sessions at once, and a
role change takes effect on the next request.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Protocol

from fastapi import Depends, Request

from controller.api.errors import ApiError
from controller.api.limits import RefusalLimiter
from controller.api.metrics import Metrics
from controller.audit.log import AuditLog
from controller.catalog import Catalog
from controller.clock import Clock
from controller.exports.service import ExportService
from controller.fleet.alerts import Alert
from controller.fleet.history import HealthPoint
from controller.fleet.monitor import DeviceRecord
from controller.fleet.ratelimit import RatePolicy
from controller.grants.policy import Policy, User
from controller.grants.service import GrantService
from controller.jobs import JobService
from controller.playback.service import PlaybackService
from controller.scheduler.leases import LinkDelivery
from controller.scheduler.topology import Topology
from controller.scheduler.upkeep import Snapshot
from controller.storage import ObjectStore
from controller.users.sessions import SessionError, check_session
from controller.users.store import UserStore

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
GRANT_HEADER = "x-vigil-grant"


class FleetView(Protocol):
    """What the API reads from `controller.fleet.service.FleetService`."""

    def devices(self) -> list[DeviceRecord]: ...

    def device(self, device_id: str) -> DeviceRecord | None: ...

    def alerts(self, device_id: str | None = None) -> list[Alert]: ...

    def history(self, device_id: str) -> list[HealthPoint]: ...


class SchedulerView(Protocol):
    """What the API calls on `controller.scheduler.service.SchedulerService`."""

    def poke(self) -> None: ...

    def snapshot(self) -> Snapshot: ...

    def delivery(self) -> list[LinkDelivery]: ...

    @property
    def topology(self) -> Topology: ...


@dataclass(frozen=True, slots=True)
class ApiSettings:
    session_ttl_s: float = 8 * 3600.0
    max_body_bytes: int = 256 * 1024  # a 64 KiB grant token in JSON, with room to spare
    # Failed logins per (client address, user id): 10 at once, then one per 10 s.
    login_failures: RatePolicy = field(default_factory=lambda: RatePolicy(0.1, 10.0))
    # Refused segment URLs per client address: 30 at once, then one per second.
    segment_refusals: RatePolicy = field(default_factory=lambda: RatePolicy(1.0, 30.0))
    max_listed_segments: int = 5000
    max_listed_range_us: int = 7 * 24 * 3600 * 1_000_000
    flush_interval_s: float = 60.0


@dataclass
class ApiDeps:
    """Everything the HTTP layer calls. `fleet` is None when the MQTT fleet view is not run;
    `jobs` None answers footage requests with 503. The scheduler is `scheduler`, or else
    whatever `scheduler_lookup` finds at request time (in `serve` the scheduler component
    is built after the HTTP one), or None: scheduler views answer 503."""

    catalog: Catalog
    store: ObjectStore
    clock: Clock
    grants: GrantService
    playback: PlaybackService
    exports: ExportService
    audit: AuditLog
    users: UserStore
    session_key: bytes
    export_dir: Path
    fleet: FleetView | None = None
    web_dir: Path = WEB_DIR
    settings: ApiSettings = field(default_factory=ApiSettings)
    metrics: Metrics = field(default_factory=Metrics)
    login_limiter: RefusalLimiter | None = None
    segment_limiter: RefusalLimiter | None = None
    jobs: JobService | None = None
    scheduler: SchedulerView | None = None
    scheduler_lookup: Callable[[], SchedulerView | None] | None = None

    def current_scheduler(self) -> SchedulerView | None:
        if self.scheduler is not None:
            return self.scheduler
        return self.scheduler_lookup() if self.scheduler_lookup is not None else None

    def __post_init__(self) -> None:
        if self.login_limiter is None:
            self.login_limiter = RefusalLimiter(self.settings.login_failures)
        if self.segment_limiter is None:
            self.segment_limiter = RefusalLimiter(self.settings.segment_refusals)

    @property
    def policy(self) -> Policy:
        return self.grants.policy


def get_deps(request: Request) -> ApiDeps:
    deps: ApiDeps = request.app.state.deps
    return deps


DepsDep = Annotated[ApiDeps, Depends(get_deps)]


def session_token(request: Request) -> str | None:
    """The session token from the Authorization header or the `session` query parameter."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError("unauthenticated", "Authorization must be 'Bearer <session token>'")
        return value.strip()
    return request.query_params.get("session") or None


def authenticate(deps: ApiDeps, token: str) -> User:
    """The user a session token stands for, or ApiError(401) saying why not."""
    try:
        claims = check_session(deps.session_key, token, deps.clock.now_us())
    except SessionError as exc:
        raise ApiError("unauthenticated", f"session {exc.reason}: {exc.message}") from None
    account = deps.users.get(claims.user_id)
    if account is None or account.disabled or account.session_version != claims.version:
        raise ApiError("unauthenticated", "session ended (account changed or disabled)")
    return account.as_user()


def optional_user(request: Request, deps: DepsDep) -> User | None:
    token = session_token(request)
    return None if token is None else authenticate(deps, token)


def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise ApiError("unauthenticated", "log in first: POST /api/v1/login")
    return user


UserDep = Annotated[User, Depends(current_user)]
OptionalUserDep = Annotated[User | None, Depends(optional_user)]


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def grant_token(request: Request, query_value: str | None) -> str:
    """The grant token from the `X-Vigil-Grant` header or the `grant` query parameter."""
    return request.headers.get(GRANT_HEADER) or query_value or ""
