"""Searching the audit log: by user, camera, case, grant, action and time; newest first.

Admins only. The city's admins see every entry; another organisation's admins see the
entries their own organisation's people caused, and every entry under a request made *to*
their organisation (`share_requests`): who asked for its cameras, collected the grant and
played its footage — the owner's chain of custody.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query

from controller.api.common import refuse
from controller.api.deps import DepsDep, UserDep
from controller.api.params import parse_time_us
from controller.api.schemas import AuditOut
from controller.audit.log import MAX_SEARCH
from controller.grants.policy import Role

router = APIRouter(prefix="/api/v1", tags=["audit"])

Text = Annotated[str | None, Query(max_length=256)]


def _detail(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        return {"raw": text}
    return value if isinstance(value, dict) else {"value": value}


def _requests_to(deps: DepsDep, org_id: str) -> set[str]:
    """Ids of the newest cross-organisation requests addressed to `org_id`."""
    asked = deps.audit.search(action="share_requested", limit=MAX_SEARCH)
    return {e.grant_id for e in asked if _detail(e.detail).get("owner_org") == org_id}


@router.get("/audit", response_model=list[AuditOut])
def search_audit(
    user: UserDep,
    deps: DepsDep,
    user_id: Annotated[str | None, Query(alias="user", max_length=256)] = None,
    camera: Text = None,
    case: Text = None,
    grant: Text = None,
    action: Text = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_SEARCH)] = 100,
) -> list[AuditOut]:
    if user.role is not Role.ADMIN:
        refuse(
            deps, "audit_search", user, "role_not_allowed", "only an admin may search the audit log"
        )
    try:
        since = None if from_ is None else parse_time_us(from_, "from")
        until = None if to is None else parse_time_us(to, "to")
    except ValueError as exc:
        refuse(deps, "audit_search", user, "bad_request", str(exc))
    everything = user.org_id == deps.policy.city_org
    found = deps.audit.search(
        user=user_id,
        camera=camera,
        case=case,
        grant=grant,
        action=action,
        since_us=since,
        until_us=until,
        limit=limit if everything else MAX_SEARCH,
    )
    if not everything:
        asked_of_us = _requests_to(deps, user.org_id)
        found = [e for e in found if e.actor_org == user.org_id or e.grant_id in asked_of_us]
        found = found[:limit]
    return [
        AuditOut(
            seq=e.seq,
            at_us=e.at_us,
            action=e.action,
            actor_user=e.actor_user,
            actor_org=e.actor_org,
            camera_id=e.camera_id,
            case_id=e.case_id,
            grant_id=e.grant_id,
            outcome=e.outcome,
            reason=e.reason,
            detail=_detail(e.detail),
        )
        for e in found
    ]
