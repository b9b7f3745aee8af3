"""What the console's sharing and fleet views need beyond the core API: the grants shared by
and with the caller's organisation, and acknowledging an alert.

Shares are read from the audit chain (`grant_minted` and `grant_revoked` entries), not from a
second table: the list is then exactly the chain of custody an auditor would check, and no
second record can drift from it. Tokens are never listed (the audit log has none).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from controller.api.deps import DepsDep, UserDep
from controller.api.errors import ApiError
from controller.api.routes.fleet import _visible
from controller.audit.chain import AuditEntry

router = APIRouter(prefix="/api/v1", tags=["sharing"])

MAX_SCANNED = 1000  # newest grant_minted entries looked at (the audit search's own bound)


class ShareOut(BaseModel):
    grant_id: str
    issuer_org: str
    issuer_user: str
    holder_org: str
    holder_user: str
    operations: list[str]
    cameras: list[str]
    areas: list[str]
    from_us: int
    to_us: int
    expires_us: int
    minted_us: int
    case_id: str
    delegable: bool
    revoked: bool


class AckIn(BaseModel):
    device_id: str = Field(max_length=128)
    kind: str = Field(max_length=64)
    camera_id: str = Field(default="", max_length=128)
    raised_us: int = Field(ge=0)


class AckOut(BaseModel):
    acknowledged: bool


def _detail(entry: AuditEntry) -> dict[str, Any]:
    try:
        value = json.loads(entry.detail or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def share_of(entry: AuditEntry, revoked: set[str]) -> ShareOut:
    d = _detail(entry)
    return ShareOut(
        grant_id=entry.grant_id,
        issuer_org=entry.actor_org,
        issuer_user=entry.actor_user,
        holder_org=str(d.get("holder_org", "")),
        holder_user=str(d.get("holder_user", "")),
        operations=[str(x) for x in d.get("operations", [])],
        cameras=[str(x) for x in d.get("cameras", [])],
        areas=[str(x) for x in d.get("areas", [])],
        from_us=int(d.get("from_us", 0)),
        to_us=int(d.get("to_us", 0)),
        expires_us=int(d.get("expires_us", 0)),
        minted_us=entry.at_us,
        case_id=entry.case_id,
        delegable=bool(d.get("delegable", False)),
        revoked=entry.grant_id in revoked,
    )


@router.get("/shares", response_model=list[ShareOut])
def shares(
    user: UserDep,
    deps: DepsDep,
    direction: Annotated[str, Query(pattern="^(mine|with_me)$")] = "mine",
) -> list[ShareOut]:
    """`mine`: grants my organisation minted for another organisation (or a person in it);
    `with_me`: grants another organisation minted for mine (or for me). Newest first."""
    minted = deps.audit.search(action="grant_minted", limit=MAX_SCANNED)
    revoked = {e.grant_id for e in deps.audit.search(action="grant_revoked", limit=MAX_SCANNED)}
    out: list[ShareOut] = []
    for entry in minted:
        holder = str(_detail(entry).get("holder_org", ""))
        if direction == "mine":
            if entry.actor_org == user.org_id and holder and holder != user.org_id:
                out.append(share_of(entry, revoked))
        elif holder == user.org_id and entry.actor_org != user.org_id:
            holder_user = str(_detail(entry).get("holder_user", ""))
            if not holder_user or holder_user == user.user_id:
                out.append(share_of(entry, revoked))
    return out


@router.post("/alerts/ack", response_model=AckOut)
def ack(body: AckIn, user: UserDep, deps: DepsDep) -> AckOut:
    """Acknowledge an alert: recorded in the audit chain (who saw it, when). The alert itself
    stays until its cause clears: acknowledging never hides a fault."""
    if body.device_id not in _visible(deps, user):
        raise ApiError("unknown_device", f"no device {body.device_id[:64]!r} visible to you")
    deps.grants.record(
        "alert_acknowledged",
        user,
        outcome="ok",
        camera_id=body.camera_id,
        detail={"device_id": body.device_id, "kind": body.kind, "raised_us": body.raised_us},
    )
    return AckOut(acknowledged=True)
