"""Login, the current user, and account administration (audited as admin changes)."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response

from controller.api.common import refuse
from controller.api.deps import ApiDeps, DepsDep, UserDep, client_address, note_source
from controller.api.errors import ApiError
from controller.api.schemas import (
    AccountOut,
    LoginRequest,
    OrganisationOut,
    SessionOut,
    UserCreate,
    UserOut,
)
from controller.audit.chain import AuditEvent
from controller.grants.policy import Role, User
from controller.users.sessions import (
    issue_known_client,
    issue_session,
    known_client_id,
    session_fingerprint,
)
from controller.users.store import UserAccountRow, UserError

router = APIRouter(prefix="/api/v1", tags=["users"])


def _out(row: UserAccountRow) -> UserOut:
    return UserOut(
        user_id=row.user_id, org_id=row.org_id, role=row.role, display_name=row.display_name
    )


def _account(row: UserAccountRow) -> AccountOut:
    return AccountOut(
        **_out(row).model_dump(), disabled=row.disabled, last_login_us=row.last_login_us
    )


def _audit_login(
    deps: ApiDeps, user_id: str, org_id: str, refused: str, detail: dict[str, str]
) -> None:
    """Every attempt, with the refusal reason; never the password or the session itself."""
    deps.audit.append(
        AuditEvent(
            action="login",
            actor_user=user_id[:64],
            actor_org=org_id,
            outcome="refused" if refused else "ok",
            reason=refused,
            detail=detail,
        )
    )


KNOWN_CLIENT_COOKIE = "vigil_client"
KNOWN_CLIENT_HEADER = "x-vigil-client"
KNOWN_CLIENT_MAX_AGE_S = 90 * 86400


@router.post("/login", response_model=SessionOut)
def login(
    body: LoginRequest,
    request: Request,
    response: Response,
    deps: DepsDep,
    _source: Annotated[str, Depends(note_source)],
) -> SessionOut:
    """Exchange a user id and password for a session bearer token.

    Throttled before any password work (`controller.api.limits.login_gate`): per address, per
    user id, per known client. Every attempt that reaches the password check is audited; a
    throttled burst is one audit row now and one aggregated row with its count."""
    ip = client_address(request)
    presented = request.cookies.get(KNOWN_CLIENT_COOKIE) or request.headers.get(KNOWN_CLIENT_HEADER)
    known = known_client_id(deps.session_key, body.user_id, presented)
    mono = deps.clock.monotonic()
    throttle = deps.login_throttle
    assert throttle is not None
    gate = throttle.check(ip, body.user_id, known, mono)
    if not gate.allowed:
        deps.audit.append_unauthenticated(
            AuditEvent(
                action="login",
                actor_user=body.user_id[:64],
                outcome="refused",
                reason="rate_limited",
                detail={"ip": ip, "budget": gate.budget},
            ),
            sample=body.user_id[:64],
        )
        deps.metrics.inc("vigil_logins_total", outcome="rate_limited")
        retry = max(1, math.ceil(min(gate.retry_after_s, 86400.0)))
        raise ApiError(
            "rate_limited",
            f"too many failed logins: try again in {retry} s",
            headers={"Retry-After": str(retry)},
        )
    row = deps.users.authenticate(body.user_id, body.password)
    if row is None:
        throttle.charge_failure(ip, body.user_id, known, mono)
        _audit_login(
            deps, body.user_id, "", "unauthenticated", {"ip": ip, "why": "bad credentials"}
        )
        deps.metrics.inc("vigil_logins_total", outcome="refused")
        raise ApiError("unauthenticated", "wrong user id or password")
    ttl_us = int(deps.settings.session_ttl_s * 1_000_000)
    token, claims = issue_session(
        deps.session_key,
        row.user_id,
        row.org_id,
        row.role,
        row.session_version,
        deps.clock.now_us(),
        ttl_us,
    )
    _audit_login(
        deps, row.user_id, row.org_id, "", {"ip": ip, "session": session_fingerprint(token)}
    )
    deps.metrics.inc("vigil_logins_total", outcome="ok")
    # A session must never be stored by a browser or proxy cache.
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    if not known:
        response.set_cookie(
            KNOWN_CLIENT_COOKIE,
            issue_known_client(deps.session_key, row.user_id),
            max_age=KNOWN_CLIENT_MAX_AGE_S,
            path="/api/v1/login",
            secure=request.url.scheme == "https",
            httponly=True,
            samesite="strict",
        )
    return SessionOut(token=token, expires_us=claims.expires_us, user=_out(row))


@router.get("/me", response_model=UserOut)
def me(user: UserDep, deps: DepsDep) -> UserOut:
    row = deps.users.get(user.user_id)
    assert row is not None  # authenticate() loaded it a moment ago
    return _out(row)


def _admin_over(deps: DepsDep, user: User, org_id: str, what: str) -> None:
    """Admins manage their own organisation's accounts; the city's admins every one."""
    city_admin = user.role is Role.ADMIN and user.org_id == deps.policy.city_org
    if user.role is not Role.ADMIN or (org_id != user.org_id and not city_admin):
        refuse(
            deps,
            "admin_change",
            user,
            "role_not_allowed",
            f"{user.user_id!r} may not {what} in organisation {org_id!r}",
        )


@router.post("/users", response_model=UserOut, status_code=201)
def create_account(body: UserCreate, user: UserDep, deps: DepsDep) -> UserOut:
    org_id = body.org_id or user.org_id
    _admin_over(deps, user, org_id, "create users")
    try:
        row = deps.users.create(
            body.user_id,
            org_id,
            body.role,
            body.password,
            display_name=body.display_name,
            policy=deps.policy,
        )
    except UserError as exc:
        refuse(deps, "admin_change", user, "bad_request", str(exc))
    deps.grants.record_admin_change(
        user, "user_created", {"user": row.user_id, "org": row.org_id, "role": row.role}
    )
    return _out(row)


@router.get("/organisations", response_model=list[OrganisationOut])
def organisations(user: UserDep, deps: DepsDep) -> list[OrganisationOut]:
    """The policy's organisations (ids and names): the console names them everywhere."""
    return [
        OrganisationOut(org_id=o.org_id, name=o.name, kind=o.kind)
        for o in deps.policy.organisations.values()
    ]


@router.get("/users", response_model=list[AccountOut])
def list_accounts(user: UserDep, deps: DepsDep) -> list[AccountOut]:
    """The accounts an admin manages: their organisation's; every one for the city's admins."""
    city_admin = user.role is Role.ADMIN and user.org_id == deps.policy.city_org
    _admin_over(deps, user, user.org_id, "list users")
    return [_account(r) for r in deps.users.list(None if city_admin else user.org_id)]


def _set_disabled(user_id: str, disabled: bool, user: User, deps: ApiDeps) -> AccountOut:
    row = deps.users.get(user_id)
    if row is None:
        raise ApiError("not_found", f"no user {user_id[:64]!r}")
    what = "disable users" if disabled else "enable users"
    _admin_over(deps, user, row.org_id, what)
    if disabled and user_id == user.user_id:
        refuse(deps, "admin_change", user, "bad_request", "an admin cannot disable themself")
    deps.users.set_disabled(user_id, disabled)
    change = "user_disabled" if disabled else "user_enabled"
    deps.grants.record_admin_change(user, change, {"user": user_id, "org": row.org_id})
    now = deps.users.get(user_id)
    assert now is not None
    return _account(now)


@router.post("/users/{user_id}/disable", response_model=AccountOut)
def disable_account(user_id: str, user: UserDep, deps: DepsDep) -> AccountOut:
    return _set_disabled(user_id, True, user, deps)


@router.post("/users/{user_id}/enable", response_model=AccountOut)
def enable_account(user_id: str, user: UserDep, deps: DepsDep) -> AccountOut:
    return _set_disabled(user_id, False, user, deps)
