"""What the camera list and the camera tree share: the directory store on the API's engine,
the caller's visibility terms, each camera's online state from the fleet view, and the
listing row as the API shows it."""

from __future__ import annotations

from controller.api.deps import ApiDeps
from controller.api.schemas import CameraOut
from controller.directory.scope import Term, city_area, county_label, visibility
from controller.directory.store import DirectoryStore, Listed
from controller.grants.policy import User, camera_info


def directory(deps: ApiDeps) -> DirectoryStore:
    return DirectoryStore(deps.catalog.engine, deps.clock)


def terms_for(deps: ApiDeps, user: User) -> tuple[Term, ...]:
    return visibility(deps.policy, user.org_id)


def online_map(deps: ApiDeps) -> dict[str, bool]:
    """camera id -> streaming now (False: reported but not, or its device offline); cameras
    the fleet has no report for are absent (unknown). GB/T 28181 channels: their device's
    state (`deps.gb`)."""
    out = deps.gb.channels_online(lambda _county: True) if deps.gb else {}
    if deps.fleet is None:
        return out
    for record in deps.fleet.devices():
        if record.health is None:
            continue
        for c in record.health.cameras:
            streaming = (c.state or ("streaming" if c.connected else "")) == "streaming"
            out[c.camera_id] = bool(record.online) and streaming
    return out


def listed_out(deps: ApiDeps, row: Listed) -> CameraOut | None:
    """The API row, or None when the camera's place cannot form an area path."""
    try:
        info = camera_info(
            deps.policy,
            row.camera_id,
            row.county,
            row.site,
            row.resource_class,
            city=city_area(deps.policy) or "-",
        )
    except ValueError:
        return None
    return CameraOut(
        camera_id=row.camera_id,
        device_id=row.device_id,
        county=row.county,
        site=row.site,
        area=info.area,
        resource_class=row.resource_class,
        owner_org=info.owner_org,
        retention_days=row.retention_days,
        name=row.name,
        county_name=county_label(deps.policy, row.county),
        township=row.township,
        village=row.village,
        lat=row.lat,
        lon=row.lon,
        gb_code=row.gb_code,
    )
