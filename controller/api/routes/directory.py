"""The resource directory over HTTP: the camera tree one level at a time, CSV export and
import (admins and operators; per-row rejection report), and the console's live feed of
fleet state (`/api/v1/events`, Server-Sent Events).

The tree and the list answer only what the caller may see (controller/directory/scope.py):
a county's operator never learns that another county's cameras exist, not even as a count.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel

from controller.api.camera_list import directory, online_map, terms_for
from controller.api.common import refuse, sees_county
from controller.api.deps import ApiDeps, DepsDep, UserDep
from controller.api.routes.fleet import _alert
from controller.directory.rows import CsvError, judge, read_csv, write_csv
from controller.directory.scope import county_filter, county_label
from controller.directory.store import Filters
from controller.directory.tree import children
from controller.grants.policy import Role, User

router = APIRouter(prefix="/api/v1", tags=["directory"])

MAX_IMPORT_BYTES = 4 * 1024 * 1024
EVENT_PERIOD_S = 1.0
HEARTBEAT_S = 15.0


class NodeOut(BaseModel):
    level: str
    key: str
    label: str
    total: int
    online: int
    offline: int


class RejectedOut(BaseModel):
    line: int
    camera_id: str
    reason: str


class ImportOut(BaseModel):
    accepted: int
    rejected: list[RejectedOut]
    dry_run: bool


@router.get("/directory/tree", response_model=list[NodeOut])
def tree(
    user: UserDep,
    deps: DepsDep,
    county: Annotated[str | None, Query(max_length=128)] = None,
    township: Annotated[str | None, Query(max_length=64)] = None,
    village: Annotated[str | None, Query(max_length=64)] = None,
) -> list[NodeOut]:
    """The children of one node: no county → counties; county → townships; + township →
    villages; + village → devices. Counts are cameras (total, online, offline)."""
    if county is None:
        level, filters = "county", Filters()
    else:
        counties = county_filter(deps.policy, county)
        if township is None:
            level, filters = "township", Filters(counties=counties)
        elif village is None:
            level, filters = "village", Filters(counties=counties, township=township)
        else:
            level = "device"
            filters = Filters(counties=counties, township=township, village=village)
    places = directory(deps).places(terms_for(deps, user), filters)
    nodes = children(places, level, online_map(deps), lambda c: county_label(deps.policy, c))
    if level == "county":  # the policy's order (the city's own listing), not code points
        order = {o.name: i for i, o in enumerate(deps.policy.organisations.values())}
        nodes.sort(key=lambda n: (order.get(n.key, len(order)), n.key))
    return [NodeOut(**asdict(n)) for n in nodes]


@router.get("/directory/export")
def export(user: UserDep, deps: DepsDep) -> Response:
    """Every visible camera's directory row as CSV (UTF-8 with BOM, for Excel)."""
    store = directory(deps)
    terms = terms_for(deps, user)
    rows, offset = [], 0
    while True:
        page, total = store.page(terms, Filters(), offset, 500)
        rows += page
        offset += len(page)
        if not page or offset >= total:
            break
    deps.grants.record("directory_export", user, outcome="ok", detail={"rows": len(rows)})
    body = write_csv(
        {
            "camera_id": r.camera_id,
            "name": r.name,
            "county": county_label(deps.policy, r.county),
            "township": r.township,
            "village": r.village,
            "lat": r.lat,
            "lon": r.lon,
            "gb_code": r.gb_code,
            "class": r.resource_class,
        }
        for r in rows
    )
    return Response(
        body.encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="vigil-directory.csv"'},
    )


@router.post("/directory/import", response_model=ImportOut)
async def import_csv(
    request: Request,
    user: UserDep,
    deps: DepsDep,
    dry_run: Annotated[bool, Query()] = False,
) -> ImportOut:
    """Apply a CSV (body, text/csv) to the directory: good rows applied, bad rows reported
    with line and reason. Only cameras the caller may see can be described by them."""
    action = "directory_import"
    if user.role not in (Role.ADMIN, Role.OPERATOR):
        refuse(deps, action, user, "role_not_allowed", "only admins and operators may import")
    raw = await request.body()
    if len(raw) > MAX_IMPORT_BYTES:
        refuse(deps, action, user, "oversize", f"CSV over {MAX_IMPORT_BYTES} bytes: split it")
    try:
        text = raw.decode("utf-8")
        rows = read_csv(text)
    except UnicodeDecodeError:
        refuse(deps, action, user, "bad_request", "the CSV is not UTF-8 (save it as UTF-8)")
    except CsvError as exc:
        refuse(deps, action, user, "bad_request", str(exc))
    return await asyncio.to_thread(_apply, deps, user, rows, dry_run)


def _apply(
    deps: ApiDeps, user: User, rows: list[tuple[int, dict[str, str]]], dry_run: bool
) -> ImportOut:
    store = directory(deps)
    counties = store.counties_of(terms_for(deps, user))
    known = {cam: county_filter(deps.policy, county) for cam, county in counties.items()}
    codes = store.codes_in_use(r.get("gb_code", "").strip() for _, r in rows if r.get("gb_code"))
    accepted, rejected = judge(rows, known, codes)
    if not dry_run:
        store.apply(accepted)
    deps.grants.record(
        "directory_import",
        user,
        outcome="ok",
        detail={"accepted": len(accepted), "rejected": len(rejected), "dry_run": dry_run},
    )
    return ImportOut(
        accepted=len(accepted),
        rejected=[
            RejectedOut(line=r.line, camera_id=r.camera_id, reason=r.reason) for r in rejected
        ],
        dry_run=dry_run,
    )


def fleet_snapshot(deps: ApiDeps, user: User) -> dict[str, object]:
    """What the console's live feed carries: the reporting devices' online state, their
    cameras' and the active alerts, only of the counties the caller sees (the rule the
    device list uses). Read from the fleet view's memory alone: the stream polls it every
    second per open console, so it never touches the database."""
    gb = gb_online(deps, user)
    gb_cameras = deps.gb.channels_online(lambda c: sees_county(deps, user, c)) if deps.gb else {}
    if deps.fleet is None:
        return {"devices": gb, "cameras": gb_cameras, "alerts": []}
    records = [r for r in deps.fleet.devices() if sees_county(deps, user, r.county)]
    visible = {r.device_id for r in records}
    online = online_map(deps)
    cameras = {
        c.camera_id: online.get(c.camera_id, False)
        for r in records
        if r.health is not None
        for c in r.health.cameras
    }
    alerts = [_alert(a).model_dump() for a in deps.fleet.alerts() if a.device_id in visible]
    return {
        "devices": gb | {r.device_id: r.online for r in records},
        "cameras": gb_cameras | cameras,
        "alerts": alerts,
    }


def gb_online(deps: ApiDeps, user: User) -> dict[str, bool | None]:
    """The visible GB/T 28181 devices' online state (their rows, read at most every 2 s for
    every console together), so the pushed view moves when one goes silent or comes back."""
    if deps.gb is None:
        return {}
    rows = deps.gb.rows()
    states = deps.gb.states()
    return {
        r.device_id: states[r.device_id][0].online
        for r in rows
        if r.device_id in states and sees_county(deps, user, r.county)
    }


@router.get("/events")
async def events(request: Request, user: UserDep, deps: DepsDep) -> StreamingResponse:
    """Server-Sent Events: a `fleet` event with the whole snapshot first, then again each time
    it changes (checked every second), and a comment every 15 s so proxies keep the stream
    open. The console reads it with fetch (the session goes in the Authorization header)."""

    async def stream() -> AsyncIterator[bytes]:
        last = ""
        quiet = 0.0
        while not await request.is_disconnected():
            snap = await asyncio.to_thread(fleet_snapshot, deps, user)
            text = json.dumps(snap, sort_keys=True, ensure_ascii=False)
            if text != last:
                last, quiet = text, 0.0
                yield f"event: fleet\ndata: {text}\n\n".encode()
            elif quiet >= HEARTBEAT_S:
                quiet = 0.0
                yield b": keep-alive\n\n"
            await asyncio.sleep(EVENT_PERIOD_S)
            quiet += EVENT_PERIOD_S

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )
