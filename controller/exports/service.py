"""Downloads as evidence: a grant-checked, use-counted, signed export of granted footage.

One download use is consumed (atomically, along the whole chain) before anything is written;
a segment whose stored bytes do not match the catalog stops the export, which is audited as
failed. Callers pass `segments(camera_id, from_us, to_us)` and `open_segment(seg)` (e.g. the
catalog's `segments_in_range` and `lambda s: store.open_read(s.object_key)`); `media` (the
catalog's `segment_media`) puts each segment's codecs into the manifest.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import BinaryIO

from controller.audit.publisher import current_witness
from controller.exports.bundle import ExportError, write_export
from controller.exports.manifest import ExportInfo, ExportSegment, media_facts
from controller.grants.access import AccessRequest
from controller.grants.errors import GrantRefused, Reason
from controller.grants.policy import User
from controller.grants.service import GrantService
from controller.playback.playlist import select_segments

# segment ids -> media rows (the catalog's `segment_media` fits)
MediaLookup = Callable[[Iterable[str]], Mapping[str, object]]


class ExportService:
    def __init__(self, grants: GrantService, media: MediaLookup | None = None) -> None:
        self.grants = grants
        self.media = media

    def export(
        self,
        token: str,
        request: AccessRequest,
        presenter: User | None,
        segments: Callable[[str, int, int], Sequence[ExportSegment]],
        open_segment: Callable[[ExportSegment], BinaryIO],
        out_dir: Path,
    ) -> Path:
        """A signed evidence export of the granted footage; consumes one download use."""
        access = self.grants.authorize(token, request, presenter, "download")
        leaf = access.verified.leaf
        cam = request.camera
        found = segments(cam.camera_id, access.from_us, access.to_us)
        chosen = select_segments(
            found, access.from_us, access.to_us, leaf.footage_from_us, leaf.footage_to_us
        )
        try:
            if not chosen:
                raise GrantRefused(
                    Reason.OUTSIDE_WINDOW, "no recorded footage in the granted range"
                )
            self.grants.store.consume_download(access.verified.chain)
        except GrantRefused as exc:
            self.grants.refuse(
                exc,
                "download",
                presenter,
                grant_id=leaf.grant_id,
                camera_id=cam.camera_id,
                case_id=leaf.case_id,
            )
        export_id = self.grants.new_id()
        info = ExportInfo(
            export_id=export_id,
            camera_id=cam.camera_id,
            camera_area=cam.area,
            from_us=access.from_us,
            to_us=access.to_us,
            grant_id=leaf.grant_id,
            grant_chain=access.verified.grant_ids,
            watermark_id=leaf.watermark_id,
            case_id=leaf.case_id,
            purpose=leaf.purpose,
            requested_by=presenter.user_id if presenter else "",
            organisation=presenter.org_id if presenter else leaf.holder_org,
            created_at_us=self.grants.clock.now_us(),
            audit_checkpoint=current_witness(self.grants.audit),
        )
        out = out_dir / f"vigil-export-{export_id}.tar"
        facts = self._media([s.segment_id for s in chosen])
        try:
            write_export(out, info, chosen, open_segment, self.grants.keys.evidence, facts)
        except ExportError as exc:
            self.grants.record(
                "download",
                presenter,
                grant_id=leaf.grant_id,
                camera_id=cam.camera_id,
                case_id=leaf.case_id,
                outcome="failed",
                detail={"export_id": export_id, "error": str(exc)[:512]},
            )
            raise
        self.grants.record(
            "download",
            presenter,
            grant_id=leaf.grant_id,
            camera_id=cam.camera_id,
            case_id=leaf.case_id,
            detail={
                "export_id": export_id,
                "segments": len(chosen),
                "from_us": access.from_us,
                "to_us": access.to_us,
                "watermark_id": leaf.watermark_id,
            },
        )
        return out

    def _media(self, segment_ids: list[str]) -> dict[str, dict[str, object]]:
        if self.media is None:
            return {}
        return {sid: media_facts(row) for sid, row in self.media(segment_ids).items()}
