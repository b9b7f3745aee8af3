"""What an organisation may see in the catalog: its cameras and their recorded segments.

Visibility is the policy's entitlement (the same rule grants are minted under), so the console
never lists a camera its user could not get a grant for. Seeing *that* footage exists is not
seeing it: playback still needs a grant.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response

from controller.api.camera_list import directory, listed_out, online_map, terms_for
from controller.api.common import camera_for, may_see, refuse
from controller.api.deps import ApiDeps, DepsDep, UserDep, grant_token
from controller.api.params import parse_time_us
from controller.api.schemas import CameraOut, MediaOut, SegmentList, SegmentOut
from controller.catalog import CameraRow, SegmentMediaRow
from controller.directory.scope import Term, county_filter
from controller.directory.store import MAX_PAGE, Filters
from controller.grants.access import AccessRequest
from controller.grants.model import CameraInfo, Operation
from controller.grants.policy import User

router = APIRouter(prefix="/api/v1", tags=["catalog"])


AGENT_FLAGS = ((1, "discontinuity"), (2, "truncated"), (4, "clock_skew"))  # ingest SegmentFlag


def agent_flag_names(bits: int) -> list[str]:
    """The agent's flag bits by name (unknown bits as "bit_N")."""
    names = [name for bit, name in AGENT_FLAGS if bits & bit]
    known = sum(bit for bit, _ in AGENT_FLAGS)
    names += [f"bit_{i}" for i in range(bits.bit_length()) if bits & ~known & (1 << i)]
    return names


def media_out(row: SegmentMediaRow | None) -> MediaOut | None:
    """The API's view of a media row; None when unknown (no row, or the probe failed)."""
    if row is None or row.probe_error:
        return None
    return MediaOut(
        video_codec=row.video_codec,
        video_profile=row.video_profile,
        width=row.width,
        height=row.height,
        frame_rate=row.frame_rate,
        audio_codec=row.audio_codec,
        audio_sample_rate=row.audio_sample_rate,
        audio_channels=row.audio_channels,
    )


def camera_out(row: CameraRow, info: CameraInfo, media: SegmentMediaRow | None) -> CameraOut:
    return CameraOut(
        camera_id=row.camera_id,
        device_id=row.device_id,
        county=row.county,
        site=row.site,
        area=info.area,
        resource_class=row.resource_class,
        owner_org=info.owner_org,
        retention_days=row.retention_days,
        media=media_out(media),
    )


CAMERA_STATES = ("online", "offline", "unknown")


@router.get("/cameras", response_model=list[CameraOut])
def cameras(
    user: UserDep,
    deps: DepsDep,
    response: Response,
    county: Annotated[str, Query(max_length=128)] = "",
    township: Annotated[str | None, Query(max_length=64)] = None,
    village: Annotated[str | None, Query(max_length=64)] = None,
    device: Annotated[str, Query(max_length=128)] = "",
    q: Annotated[str, Query(max_length=64)] = "",
    resource_class: Annotated[str, Query(alias="class", pattern="^(I|II|III)?$")] = "",
    state: Annotated[str, Query(pattern="^(online|offline|unknown)?$")] = "",
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
) -> list[CameraOut]:
    """The cameras this user may see, filtered and paged (ordered by camera id). The total
    matching is in the `X-Total-Count` header: a client that gets fewer rows than the total
    knows there are more pages (17,088 cameras are never sent in one answer)."""
    store = directory(deps)
    terms = terms_for(deps, user)
    filters = Filters(
        counties=county_filter(deps.policy, county) if county else frozenset(),
        township=township,
        village=village,
        device=device,
        search=q.strip(),
        resource_class=resource_class,
    )
    if state:
        online = online_map(deps)
        wanted = {"online": True, "offline": False, "unknown": None}[state]
        ids = [c for c in store.ids(terms, filters) if online.get(c) is wanted]
        rows, total = store.listed(terms, filters, ids[offset : offset + limit]), len(ids)
    else:
        rows, total = store.page(terms, filters, offset, limit)
    out = [c for c in (listed_out(deps, r) for r in rows) if c is not None]
    # Defence in depth: the SQL scope is the policy's rule (unit-tested equal); a row the
    # policy itself refuses is still never shown.
    out = [
        c
        for c in out
        if may_see(deps, user, CameraInfo(c.camera_id, c.area, c.resource_class, c.owner_org))
    ]
    media = deps.catalog.camera_media([c.camera_id for c in out])
    for c in out:
        c.media = media_out(media.get(c.camera_id))
    response.headers["X-Total-Count"] = str(total)
    return out


def _visible_camera(
    deps: ApiDeps, user: User, camera_id: str, action: str
) -> tuple[CameraRow, CameraInfo]:
    """The camera and its place, or the refusal (audited) when this user may not see it."""
    row, info = camera_for(deps, camera_id, action, user)
    if not may_see(deps, user, info):
        refuse(
            deps,
            action,
            user,
            "not_entitled",
            f"{user.org_id!r} is not entitled to camera {camera_id!r}",
            camera_id=camera_id,
        )
    return row, info


@router.get("/cameras/{camera_id}", response_model=CameraOut)
def camera(camera_id: str, user: UserDep, deps: DepsDep) -> CameraOut:
    action = "catalog_camera"
    row, info = _visible_camera(deps, user, camera_id, action)
    media = deps.catalog.camera_media([row.camera_id]).get(row.camera_id)
    found = directory(deps).listed((Term(),), Filters(), [row.camera_id])
    out = listed_out(deps, found[0]) if found else None
    if out is None:
        return camera_out(row, info, media)
    out.media = media_out(media)
    return out


@router.get("/cameras/{camera_id}/segments", response_model=SegmentList)
def segments(
    camera_id: str,
    request: Request,
    user: UserDep,
    deps: DepsDep,
    from_: Annotated[str, Query(alias="from")],
    to: Annotated[str, Query()],
) -> SegmentList:
    """The camera's segments in [from, to). A camera the caller's organisation is not entitled
    to is listed only under a playback grant for it (`X-Vigil-Grant`, as a share link's
    recipient plays it), and only within the grant's window."""
    action = "catalog_segments"
    try:
        lo, hi = parse_time_us(from_, "from"), parse_time_us(to, "to")
    except ValueError as exc:
        refuse(deps, action, user, "bad_request", str(exc), camera_id=camera_id[:128])
    token = grant_token(request, None)
    if token and hi > lo:
        row, info = camera_for(deps, camera_id, action, user)
        if not may_see(deps, user, info):
            ask = AccessRequest(Operation.PLAYBACK, info, lo, hi, user.org_id, user.user_id)
            access = deps.grants.authorize(token, ask, user, action)
            lo, hi = access.from_us, access.to_us
    else:
        row, info = _visible_camera(deps, user, camera_id, action)
    if not 0 < hi - lo <= deps.settings.max_listed_range_us:
        refuse(
            deps,
            action,
            user,
            "bad_request",
            "from must be before to, and the range at most "
            f"{deps.settings.max_listed_range_us // 3_600_000_000} h",
            camera_id=camera_id,
        )
    limit = deps.settings.max_listed_segments
    rows = deps.catalog.segments_in_range(row.camera_id, lo, hi, limit=limit + 1)
    media = deps.catalog.segment_media(s.segment_id for s in rows[:limit])
    return SegmentList(
        camera_id=row.camera_id,
        from_us=lo,
        to_us=hi,
        truncated=len(rows) > limit,
        segments=[
            SegmentOut(
                segment_id=s.segment_id,
                start_us=s.start_us,
                end_us=s.end_us,
                duration_us=s.duration_us,
                size_bytes=s.size_bytes,
                flag=s.flag,
                chain_ok=s.chain_ok,
                media=media_out(media.get(s.segment_id)),
                agent_flags=agent_flag_names(s.agent_flags),
            )
            for s in rows[:limit]
        ],
    )
