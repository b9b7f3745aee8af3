"""Downloads as evidence: `POST /api/v1/exports` returns the signed export file itself.

The export service decides (grant, download operation, one use consumed along the chain) and
audits; the file is written into the API's export directory and removed once sent, so the
controller keeps no second copy of footage it handed out.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from fastapi import APIRouter
from fastapi.responses import FileResponse
from starlette.background import BackgroundTask

from controller.api.common import camera_for
from controller.api.deps import DepsDep, UserDep
from controller.api.errors import ApiError
from controller.api.schemas import ExportRequest
from controller.catalog import SegmentRow
from controller.exports.bundle import ExportError
from controller.exports.manifest import ExportSegment
from controller.grants.access import AccessRequest
from controller.grants.model import Operation

router = APIRouter(prefix="/api/v1", tags=["exports"])

EXPORT_TYPE = "application/x-tar"


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)


@router.post(
    "/exports",
    response_class=FileResponse,
    responses={200: {"content": {EXPORT_TYPE: {}}, "description": "the signed export (tar)"}},
)
def export(body: ExportRequest, user: UserDep, deps: DepsDep) -> FileResponse:
    _row, info = camera_for(deps, body.camera_id, "download", user)
    request = AccessRequest(
        Operation.DOWNLOAD, info, body.from_us, body.to_us, user.org_id, user.user_id
    )
    keys: dict[str, str] = {}

    def segments(camera_id: str, lo: int, hi: int) -> list[SegmentRow]:
        rows = deps.catalog.segments_in_range(camera_id, lo, hi)
        keys.update((r.segment_id, r.object_key) for r in rows)
        return rows

    def open_segment(seg: ExportSegment) -> BinaryIO:
        return deps.store.open_read(keys[seg.segment_id])

    deps.export_dir.mkdir(parents=True, exist_ok=True)
    try:
        path = deps.exports.export(
            body.token,
            request,
            user,
            segments,
            open_segment,
            deps.export_dir,
        )
    except ExportError as exc:  # audited by the service as a failed download
        raise ApiError("export_failed", f"export failed: {exc}") from None
    deps.metrics.inc("vigil_exports_total")
    return FileResponse(
        path,
        media_type=EXPORT_TYPE,
        filename=path.name,
        headers={"Cache-Control": "no-store"},
        background=BackgroundTask(_remove, path),
    )
