"""Sites of the installer API (`vigil-provision site add` / `site list`).

    POST /api/v1/install/sites            register (or rename) a site of the county's list
    GET  /api/v1/install/sites?county=C   the county's sites, each with its devices

Included in install.py's router (same prefix, same rules): installers and admins only, a
county's users only in their county (403, audited), every change audited. `device add`
accepts only a registered site of the device's county (install.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from controller.api.deps import ApiDeps, DepsDep, UserDep
from controller.api.errors import ApiError
from controller.api.routes.install_scope import may_act
from controller.enrollment.operations import Operations
from controller.enrollment.siterules import Site, SiteError, check_site

router = APIRouter()
ID = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class SiteIn(BaseModel):
    county: str = Field(pattern=ID)
    site_id: str = Field(pattern=ID)
    name: str = Field(min_length=1, max_length=64)
    township: str = Field(default="", max_length=64)
    lat: float | None = None
    lon: float | None = None


class SiteOut(BaseModel):
    county: str
    site_id: str
    name: str
    township: str
    lat: float | None
    lon: float | None
    devices: list[str]


def _ops(deps: ApiDeps) -> Operations:
    if deps.enrollment is None:
        raise ApiError("enrollment_unavailable", "this controller runs no enrollment", status=503)
    return deps.enrollment


def _out(deps: ApiDeps, site: Site) -> SiteOut:
    devices = sorted(
        d.device_id
        for d in deps.catalog.devices()
        if d.county == site.county and d.site == site.site_id
    )
    return SiteOut(
        county=site.county, site_id=site.site_id, name=site.name, township=site.township,
        lat=site.lat, lon=site.lon, devices=devices,
    )  # fmt: skip


@router.post("/sites", response_model=SiteOut)
def add_site(body: SiteIn, user: UserDep, deps: DepsDep) -> SiteOut:
    action = "install.site_add"
    may_act(deps, user, body.county, action, body.site_id)
    try:
        site = check_site(
            Site(body.county, body.site_id, body.name, body.township, body.lat, body.lon)
        )
    except SiteError as exc:
        raise ApiError("invalid_site", str(exc)) from None
    ops = _ops(deps)
    ops.store.save_site(site, user.user_id, deps.clock.now_us())
    deps.grants.record(
        action, user, detail={"county": site.county, "site": site.site_id, "name": site.name}
    )
    return _out(deps, site)


@router.get("/sites", response_model=list[SiteOut])
def list_sites(
    user: UserDep, deps: DepsDep, county: str = Query(pattern=ID, max_length=64)
) -> list[SiteOut]:
    may_act(deps, user, county, "install.site_list", "*")
    return [_out(deps, s) for s in _ops(deps).store.sites(county)]
