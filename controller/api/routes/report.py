"""The evaluation report over HTTP: `GET /api/v1/report?from=&to=[&org=][&format=json]`.

The same report as `vigil-controller report` (controller/kpi): JSON by default, `csv`, or the
self-contained `html` page. Admins only: the city's admins may ask for any organisation (or
the whole city), another organisation's admins get their own organisation's cameras whatever
they ask. Bad periods and unknown organisations are 400 with the reason.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response

from controller.api.common import refuse
from controller.api.deps import DepsDep, UserDep
from controller.api.params import parse_time_us
from controller.grants.policy import Role
from controller.kpi.service import ReportInputError, make_report, render

router = APIRouter(prefix="/api/v1", tags=["report"])

MEDIA = {
    "json": "application/json; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "html": "text/html; charset=utf-8",
}


@router.get("/report")
def report(
    user: UserDep,
    deps: DepsDep,
    from_: Annotated[str, Query(alias="from", max_length=64)],
    to: Annotated[str, Query(max_length=64)],
    org: Annotated[str | None, Query(max_length=128)] = None,
    format: Annotated[str, Query(pattern="^(json|csv|html)$")] = "json",
) -> Response:
    action = "kpi_report"
    if user.role is not Role.ADMIN:
        refuse(deps, action, user, "role_not_allowed", "only an admin may read the report")
    try:
        start = parse_time_us(from_, "from")
        end = parse_time_us(to, "to")
    except ValueError as exc:
        refuse(deps, action, user, "bad_request", str(exc))
    if user.org_id != deps.policy.city_org:
        org = user.org_id
    detail: dict[str, Any] = {"from_us": start, "to_us": end, "org": org or ""}
    try:
        made = make_report(
            deps.catalog.engine, deps.clock, deps.policy, deps.kpi_targets, start, end, org
        )
    except ReportInputError as exc:
        refuse(deps, action, user, "bad_request", str(exc), detail=detail)
    deps.grants.record(action, user, detail=detail)
    return Response(render(made, format), media_type=MEDIA[format])
