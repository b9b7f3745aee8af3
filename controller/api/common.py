"""Helpers the routes share: audited refusals, camera lookup, what an organisation may see."""

from __future__ import annotations

from typing import Any, NoReturn

from controller.api.deps import ApiDeps
from controller.api.errors import ApiError
from controller.catalog import CameraRow
from controller.grants.model import MAX_ID_CHARS, CameraInfo
from controller.grants.policy import User, camera_info, entitled


def refuse(
    deps: ApiDeps,
    action: str,
    who: User | None,
    reason: str,
    message: str,
    *,
    status: int | None = None,
    **fields: Any,
) -> NoReturn:
    """Audit a refusal decided by the HTTP layer itself, then raise it as an ApiError."""
    detail = {"message": message, **fields.pop("detail", {})}
    deps.grants.record(action, who, outcome="refused", reason=reason, detail=detail, **fields)
    raise ApiError(reason, message, status)


def info_for(deps: ApiDeps, row: CameraRow) -> CameraInfo:
    """The policy's view of a catalog camera (area from county and site, owner from county)."""
    city = deps.policy.organisation(deps.policy.city_org)
    return camera_info(
        deps.policy,
        row.camera_id,
        row.county,
        row.site,
        row.resource_class,
        city=city.home_area if city is not None else "-",
    )


def camera_for(
    deps: ApiDeps, camera_id: str, action: str, who: User | None
) -> tuple[CameraRow, CameraInfo]:
    """The catalog camera and its policy view; an audited 404 when the catalog has none."""
    row = None
    if 0 < len(camera_id) <= MAX_ID_CHARS:
        row = deps.catalog.camera(camera_id)
    if row is None:
        refuse(
            deps,
            action,
            who,
            "unknown_camera",
            f"camera {camera_id[:64]!r} is not in the catalog",
            camera_id=camera_id[:128],
        )
    try:
        return row, info_for(deps, row)
    except ValueError as exc:  # a county or site name that cannot form an area path
        refuse(deps, action, who, "unknown_camera", f"camera {camera_id!r}: {exc}")


def may_see(deps: ApiDeps, who: User, info: CameraInfo) -> bool:
    return entitled(deps.policy, who.org_id, info)


def sees_county(deps: ApiDeps, who: User, county: str) -> bool:
    """Fleet visibility: the city and city-wide departments see every device, a county its own."""
    org = deps.policy.organisation(who.org_id)
    if org is None:
        return False
    if org.kind != "county":
        return True
    return county in (org.org_id, org.name)
