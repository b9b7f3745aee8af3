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

import hmac
import ipaddress
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Annotated, Protocol

from fastapi import Depends, Request

from controller.api.errors import ApiError
from controller.api.gb_devices import GbFleet
from controller.api.limits import (
    LoginBudgets,
    LoginThrottle,
    Network,
    RefusalLimiter,
    forwarded_client,
    parse_proxies,
)
from controller.api.metrics import Metrics
from controller.api.readiness import Readiness
from controller.audit.aggregate import REQUEST_SOURCE
from controller.audit.log import AuditLog
from controller.catalog import Catalog
from controller.clock import Clock
from controller.config import KpiConfig
from controller.enrollment.operations import Operations
from controller.exports.service import ExportService
from controller.fleet.alerts import Alert
from controller.fleet.history import HealthPoint
from controller.fleet.monitor import DeviceRecord
from controller.fleet.ratelimit import RatePolicy
from controller.grants.policy import Policy, User
from controller.grants.service import GrantService
from controller.jobs import JobService
from controller.playback.service import PlaybackService
from controller.runtime import StartupError
from controller.scheduler.leases import LinkDelivery
from controller.scheduler.topology import Topology
from controller.scheduler.upkeep import Snapshot
from controller.storage import ObjectStore
from controller.users.sessions import SessionError, check_session, session_fingerprint
from controller.users.store import UserStore

log = logging.getLogger("vigil.api")

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

    def unsent(self, device_id: str, camera_id: str) -> list[tuple[int, int]]: ...

    @property
    def topology(self) -> Topology: ...


@dataclass(frozen=True, slots=True)
class ApiSettings:
    session_ttl_s: float = 8 * 3600.0
    max_body_bytes: int = 256 * 1024  # a 64 KiB grant token in JSON, with room to spare
    # Failed-login budgets per address, per user id and per known client (limits.py).
    login_budgets: LoginBudgets = field(default_factory=LoginBudgets)
    # Proxies whose X-Forwarded-For names the client (addresses or networks).
    trusted_proxies: tuple[Network, ...] = ()
    # /metrics: a bearer token when set; without one only loopback clients may scrape.
    metrics_token: str = ""
    # Refused segment URLs per client address: 30 at once, then one per second.
    segment_refusals: RatePolicy = field(default_factory=lambda: RatePolicy(1.0, 30.0))
    max_listed_segments: int = 5000
    max_listed_range_us: int = 7 * 24 * 3600 * 1_000_000
    flush_interval_s: float = 60.0


@dataclass
class ApiDeps:
    """Everything the HTTP layer calls. `fleet` is None when the MQTT fleet view is not run;
    `jobs` None answers footage requests with 503, `scheduler` None the scheduler views."""

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
    login_throttle: LoginThrottle | None = None
    segment_limiter: RefusalLimiter | None = None
    jobs: JobService | None = None
    scheduler: SchedulerView | None = None
    # What /readyz checks (name -> probe returning why not ready, or None); None: nothing.
    readiness: Readiness | None = None
    # Enrollment for the installer API (controller/enrollment/routes.py); None: 503.
    enrollment: Operations | None = None
    # Connected-camera targets by kind for the KPI report (config [kpi]).
    kpi_targets: dict[str, int] = field(default_factory=lambda: KpiConfig().targets())
    # GB/T 28181 devices' state for the fleet view ([gb28181] enabled); None: not listed so.
    gb: GbFleet | None = None

    def __post_init__(self) -> None:
        if self.login_throttle is None:
            self.login_throttle = LoginThrottle(self.settings.login_budgets)
        if self.segment_limiter is None:
            self.segment_limiter = RefusalLimiter(self.settings.segment_refusals)

    @property
    def policy(self) -> Policy:
        return self.grants.policy


def get_deps(request: Request) -> ApiDeps:
    deps: ApiDeps = request.app.state.deps
    return deps


DepsDep = Annotated[ApiDeps, Depends(get_deps)]


MEDIA_PREFIXES = ("/play/",)


def query_session_allowed(method: str, path: str) -> bool:
    """`?session=` only for media GETs (players that cannot set headers): a URL is logged and
    shared far more easily than a header, so it never authorises a state change."""
    live_hls = path.startswith("/api/v1/live/") and path.endswith("/hls/index.m3u8")
    return method in ("GET", "HEAD") and (path.startswith(MEDIA_PREFIXES) or live_hls)


def session_token(request: Request) -> str | None:
    """The session token from the Authorization header or (media GETs only) `?session=`."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            log.info("session refused (not a bearer token) from %s", REQUEST_SOURCE.get())
            raise ApiError("unauthenticated", "Authorization must be 'Bearer <session token>'")
        return value.strip()
    query = request.query_params.get("session") or None
    if query is not None and not query_session_allowed(request.method, request.url.path):
        log.info(
            "session refused (in the query of %s) from %s", request.method, REQUEST_SOURCE.get()
        )
        raise ApiError(
            "unauthenticated",
            "a session in the query string is accepted only for media GETs: "
            "send Authorization: Bearer",
        )
    return query


def authenticate(deps: ApiDeps, token: str) -> User:
    """The user a session token stands for, or ApiError(401) saying why not.

    Every malformed credential is a 401 with one log line (never a traceback): the token is
    checked as text before anything decodes it, and only its fingerprint is logged."""
    try:
        claims = check_session(deps.session_key, token, deps.clock.now_us())
    except SessionError as exc:
        log.info(
            "session refused (%s) from %s, token %s",
            exc.reason,
            REQUEST_SOURCE.get(),
            session_fingerprint(token),
        )
        raise ApiError("unauthenticated", f"session {exc.reason}: {exc.message}") from None
    account = deps.users.get(claims.user_id)
    if account is None or account.disabled or account.session_version != claims.version:
        raise ApiError("unauthenticated", "session ended (account changed or disabled)")
    return account.as_user()


async def note_source(request: Request) -> str:
    """Remember the client address for this request's audit aggregation (an async
    dependency, so the value is set in the request's own context and the sync route and
    services that run after it in a worker thread see it)."""
    source = client_address(request)
    REQUEST_SOURCE.set(source)
    return source


def optional_user(
    request: Request, deps: DepsDep, _source: Annotated[str, Depends(note_source)]
) -> User | None:
    token = session_token(request)
    return None if token is None else authenticate(deps, token)


def current_user(user: Annotated[User | None, Depends(optional_user)]) -> User:
    if user is None:
        raise ApiError("unauthenticated", "log in first: POST /api/v1/login")
    return user


UserDep = Annotated[User, Depends(current_user)]
OptionalUserDep = Annotated[User | None, Depends(optional_user)]


def client_address(request: Request) -> str:
    """The client's address: the peer, or, when the peer is a configured trusted proxy, the
    nearest address in X-Forwarded-For that is not itself a trusted proxy."""
    peer = request.client.host if request.client else "unknown"
    deps: ApiDeps | None = getattr(request.app.state, "deps", None)
    proxies = deps.settings.trusted_proxies if deps is not None else ()
    forwarded = request.headers.getlist("x-forwarded-for")
    return forwarded_client(peer, forwarded, proxies)


def grant_token(request: Request, query_value: str | None) -> str:
    """The grant token from the `X-Vigil-Grant` header or the `grant` query parameter."""
    return request.headers.get(GRANT_HEADER) or query_value or ""


class HttpSettingsLike(Protocol):
    """The fields of `controller.config.HttpConfig` the API reads."""

    @property
    def trusted_proxies(self) -> list[str]: ...
    @property
    def metrics_token_file(self) -> str: ...
    @property
    def login_failures_per_address(self) -> int: ...
    @property
    def login_failures_per_user(self) -> int: ...


def settings_from_config(http: HttpSettingsLike) -> ApiSettings:
    """ApiSettings from `[http]` (the metrics token read from its file now, so a missing file
    stops start-up with its name rather than leaving /metrics open)."""
    token = ""
    if http.metrics_token_file:
        try:
            token = Path(http.metrics_token_file).read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise StartupError(f"http.metrics_token_file: {exc}") from exc
        if len(token) < 16:
            raise StartupError("http.metrics_token_file: the token needs at least 16 characters")
    defaults = LoginBudgets()
    budgets = replace(
        defaults,
        per_address=replace(defaults.per_address, burst=float(http.login_failures_per_address)),
        per_user=replace(defaults.per_user, burst=float(http.login_failures_per_user)),
    )
    return ApiSettings(
        trusted_proxies=parse_proxies(http.trusted_proxies),
        metrics_token=token,
        login_budgets=budgets,
    )


def metrics_access(request: Request, deps: DepsDep) -> None:
    """/metrics: the configured bearer token, or (without one) a loopback peer only. The
    peer itself, not X-Forwarded-For: a proxy on loopback must not open it to the world."""
    token = deps.settings.metrics_token
    if token:
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        given = value.strip().encode("utf-8", "replace")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given, token.encode()):
            raise ApiError("unauthenticated", "/metrics needs its bearer token")
        return
    peer = request.client.host if request.client else ""
    try:
        loopback = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        loopback = False
    forwarded = bool(request.headers.get("x-forwarded-for"))
    if not loopback or forwarded:
        raise ApiError("not_found", "/metrics answers loopback only (set http.metrics_token_file)")


MetricsAccessDep = Annotated[None, Depends(metrics_access)]
