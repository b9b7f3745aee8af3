"""Playback: the grant-checked HLS playlist and the cheap check of each signed segment URL.

The HTTP routes call this. A playlist request is the audited decision (`GrantService.
authorize`), the playlist lists only what the grant covers with URLs signed for 5 minutes,
and each segment fetch is then one HMAC check, audited in aggregate (`FetchAggregator`,
flushed by `flush()` on a timer). The catalog stays outside: callers pass
`segments(camera_id, from_us, to_us)` (the catalog's `segments_in_range` fits).

Renditions: a playlist asked for with `rendition="h264"` (browsers without HEVC) points each
segment that is not H.264 at `/play/h264/{segment}.ts`, signed for that rendition only; H.264
segments keep their original URL (decisions.segment_rendition). The conversion itself is the
`renditions` cache's (controller/media); the check and the audit of each fetch are the same
as for originals.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence

from controller.audit.aggregate import FetchAggregator
from controller.grants.access import AccessRequest
from controller.grants.errors import GrantRefused
from controller.grants.model import US_PER_S, Operation
from controller.grants.policy import User
from controller.grants.service import GrantService
from controller.media.decisions import H264, ORIGINAL, segment_rendition
from controller.media.renditions import RenditionCache
from controller.playback.playlist import (
    NoFootageError,
    SegmentRecord,
    build_live_playlist,
    build_vod_playlist,
    discontinuities,
    select_segments,
)
from controller.playback.urlsign import UrlSigner

LIVE_LOOKBACK_US = 10 * 60 * US_PER_S  # how far back a live playlist looks for segments
H264_PREFIX = "/play/h264/"

# segment ids -> their video codec ("" or missing when unknown); the catalog's media fits.
CodecLookup = Callable[[Sequence[str]], Mapping[str, str]]


class RenditionUnavailable(LookupError):
    """The playlist needs converted segments and this controller does not convert."""


class PlaybackService:
    def __init__(
        self,
        grants: GrantService,
        url_prefix: str = "/play/seg/",
        renditions: RenditionCache | None = None,
    ) -> None:
        self.grants = grants
        self.signer = UrlSigner.single(grants.keys.url_hmac)
        self.url_prefix = url_prefix
        self.renditions = renditions
        self._lock = threading.Lock()
        self._fetches = FetchAggregator()

    def playlist(
        self,
        token: str,
        request: AccessRequest,
        presenter: User | None,
        segments: Callable[[str, int, int], Sequence[SegmentRecord]],
        *,
        live_first_sequence: Callable[[SegmentRecord], int] | None = None,
        rendition: str = ORIGINAL,
        codecs: CodecLookup | None = None,
    ) -> str:
        """An HLS playlist (playback, or live when request.operation is LIVE) with URLs signed
        for 5 minutes. `live_first_sequence(first_segment)` numbers live playlists;
        `rendition` and `codecs` choose converted segment URLs (see the module docstring)."""
        access = self.grants.authorize(token, request, presenter, "playlist")
        leaf, now = access.verified.leaf, self.grants.clock.now_us()
        expires_s = UrlSigner.expiry_s(now, access.expires_us)
        original = self.signer.url_maker(self.url_prefix, leaf.grant_id, expires_s)
        cam = request.camera.camera_id
        live = request.operation is Operation.LIVE
        lo = max(leaf.footage_from_us, now - LIVE_LOOKBACK_US) if live else access.from_us
        hi = min(leaf.footage_to_us, now + 1) if live else access.to_us
        chosen = select_segments(
            segments(cam, lo, hi), lo, hi, leaf.footage_from_us, leaf.footage_to_us
        )
        converted: set[str] = set()
        if rendition != ORIGINAL:
            known = codecs([s.segment_id for s in chosen]) if codecs else {}
            converted = {
                s.segment_id
                for s in chosen
                if segment_rendition(rendition, known.get(s.segment_id, "")) == H264
            }
        if converted and self.renditions is None:
            raise RenditionUnavailable(
                "this controller does not convert H.265 for browsers ([transcode] enabled = "
                "false): play with a client that decodes HEVC (ffplay, VLC)"
            )
        h264 = self.signer.url_maker(H264_PREFIX, leaf.grant_id, expires_s, rendition=H264)

        def url_for(segment_id: str) -> str:
            return h264(segment_id) if segment_id in converted else original(segment_id)

        detail = {
            "operation": request.operation.value,
            "from_us": lo,
            "to_us": hi,
            "segments": len(chosen),
            "gaps": sum(discontinuities(chosen)),
        }
        if rendition != ORIGINAL:
            detail |= {"rendition": rendition, "converted": len(converted)}
        try:
            if live:
                first = live_first_sequence(chosen[0]) if (live_first_sequence and chosen) else 0
                text = build_live_playlist(chosen, url_for, first_sequence=first)
            else:
                text = build_vod_playlist(chosen, url_for, complete=access.to_us <= now)
        except NoFootageError:
            self.grants.record(
                "playlist",
                presenter,
                grant_id=leaf.grant_id,
                camera_id=cam,
                case_id=leaf.case_id,
                outcome="empty",
                detail=detail,
            )
            raise
        self.grants.record(
            "playlist",
            presenter,
            grant_id=leaf.grant_id,
            camera_id=cam,
            case_id=leaf.case_id,
            detail=detail,
        )
        return text

    def check_segment(
        self,
        segment_id: str,
        query: str,
        presenter: User | None,
        camera_id: str,
        size_bytes: int,
        rendition: str = "",
    ) -> str:
        """Check a segment URL (of the original, or of `rendition`); returns its grant id.
        Fetches are audited in aggregate."""
        now = self.grants.clock.now_us()
        try:
            grant_id = self.signer.check_query(
                segment_id, query, now, self.grants.revoked(), rendition
            )
        except GrantRefused as exc:
            self.grants.refuse(
                exc,
                "segment_fetch",
                presenter,
                camera_id=camera_id[:128],
                detail={"segment_id": segment_id[:128], "rendition": rendition or ORIGINAL},
            )
        with self._lock:
            due = self._fetches.record(
                grant_id,
                camera_id,
                presenter.user_id if presenter else "",
                presenter.org_id if presenter else "",
                segment_id,
                size_bytes,
                now,
            )
        if due:
            self.flush()
        return grant_id

    def flush(self) -> int:
        """Write pending fetch tallies to the audit log and sign a checkpoint; call on a
        timer (every ~60 s) and at shutdown. Returns the number of entries written."""
        with self._lock:
            events = self._fetches.drain()
        self.grants.audit.append_many(events)
        self.grants.audit.checkpoint()
        return len(events)
