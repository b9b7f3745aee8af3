"""Playback under /play/: grant-checked HLS playlists and signed segment URLs.

    GET /play/{camera}.m3u8?from=T&to=T        playback of recorded time (VOD, or EVENT while
                                               the range is still being recorded)
    GET /play/{camera}.m3u8?mode=live          a sliding live playlist of the newest segments
    GET /play/seg/{segment}.ts?g=&e=&k=&s=     one segment: bytes (Range supported) from the
                                               local store, or 302 to a presigned S3 URL
    GET /play/{camera}.m3u8?...&rendition=h264 the same playlists for browsers without HEVC:
                                               non-H.264 segments point at /play/h264/
    GET /play/h264/{segment}.ts?g=&e=&k=&s=    its H.264 rendition (converted on first request,
                                               cached); 503 + Retry-After when every
                                               conversion slot stays busy, 422 when the
                                               segment cannot be converted

The grant comes in the `X-Vigil-Grant` header or `?grant=`; the presenter's session in
`Authorization: Bearer` or `?session=` (for ffmpeg/VLC). The playlist request is the audited
decision; each segment fetch is one HMAC check, audited in aggregate. A client whose segment
URLs keep being refused is throttled (429) before it can load the audit log.
"""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Annotated, BinaryIO

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import PlainTextResponse, RedirectResponse, StreamingResponse

from controller.api.common import camera_for, refuse
from controller.api.deps import ApiDeps, DepsDep, OptionalUserDep, client_address, grant_token
from controller.api.errors import ApiError, error_response
from controller.api.params import parse_time_us
from controller.api.ranges import ByteRange, RangeNotSatisfiable, parse_range
from controller.catalog import SEGMENT_STORED, SegmentRow
from controller.catalog.segment_queries import count_stored_between
from controller.grants.access import AccessRequest
from controller.grants.codec import decode_token
from controller.grants.errors import GrantRefused
from controller.grants.model import MAX_ID_CHARS, Operation
from controller.grants.policy import User
from controller.media.decisions import H264, ORIGINAL, parse_rendition
from controller.media.renditions import RenditionBusy
from controller.media.transcode import TranscodeError
from controller.playback.playlist import NoFootageError, SegmentRecord
from controller.playback.service import RenditionUnavailable
from controller.playback.urlsign import URL_TTL_US
from controller.storage import StorageError, content_type_for

router = APIRouter(tags=["playback"])

PLAYLIST_TYPE = "application/vnd.apple.mpegurl"
SEGMENT_TYPE = "video/mp2t"
CHUNK = 256 * 1024


def live_sequence(deps: ApiDeps, camera_id: str, anchor_us: int, first: SegmentRecord) -> int:
    """The media sequence number of `first` in a live playlist: the camera's stored segments
    that start in [anchor, first). The anchor is the grant's footage start, fixed for the
    grant's life, so numbers stay stable across reloads (HLS needs that) and the count is a
    bounded index range scan."""
    return count_stored_between(deps.catalog.engine, camera_id, anchor_us, first.start_us)


@router.get(
    "/play/{camera_id}.m3u8",
    response_class=PlainTextResponse,
    responses={200: {"content": {PLAYLIST_TYPE: {}}}},
)
def playlist(
    camera_id: str,
    request: Request,
    deps: DepsDep,
    user: OptionalUserDep,
    grant: Annotated[str | None, Query()] = None,
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    mode: Annotated[str | None, Query(pattern="^(live|playback)$")] = None,
    rendition: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    action = "playlist"
    token = grant_token(request, grant)
    if user is None:
        refuse(
            deps,
            action,
            None,
            "unauthenticated",
            "playback needs a session: log in and send Authorization: Bearer (or ?session=)",
            camera_id=camera_id[:MAX_ID_CHARS],
        )
    _row, info = camera_for(deps, camera_id, action, user)
    live = mode == "live" or (mode is None and from_ is None and to is None)
    if live:
        lo = hi = 0
    else:
        try:
            if from_ is None or to is None:
                raise ValueError("playback needs from and to (or mode=live)")
            lo, hi = parse_time_us(from_, "from"), parse_time_us(to, "to")
        except ValueError as exc:
            refuse(deps, action, user, "bad_request", str(exc), camera_id=camera_id)
    try:
        wanted = parse_rendition(rendition)
    except ValueError as exc:
        refuse(deps, action, user, "bad_request", str(exc), camera_id=camera_id)
    op = Operation.LIVE if live else Operation.PLAYBACK
    access = AccessRequest(op, info, lo, hi, user.org_id, user.user_id)

    def codecs(segment_ids: Sequence[str]) -> dict[str, str]:
        media = deps.catalog.segment_media(segment_ids)
        return {sid: m.video_codec for sid, m in media.items()}

    def first_sequence(first: SegmentRecord) -> int:
        anchor = decode_token(token).leaf.footage_from_us  # authorized a moment ago
        return live_sequence(deps, info.camera_id, anchor, first)

    try:
        text = deps.playback.playlist(
            token,
            access,
            user,
            deps.catalog.segments_in_range,
            live_first_sequence=first_sequence if live else None,
            rendition=wanted,
            codecs=codecs if wanted != ORIGINAL else None,
        )
    except NoFootageError as exc:  # audited by the service as outcome "empty"
        raise ApiError("no_footage", str(exc)) from None
    except RenditionUnavailable as exc:
        raise ApiError("rendition_unavailable", str(exc), 503) from None
    kind = "live" if live else ("vod" if "#EXT-X-ENDLIST" in text else "event")
    deps.metrics.inc("vigil_playlists_total", kind=kind)
    return Response(
        text,
        media_type=PLAYLIST_TYPE,
        headers={"Cache-Control": "no-store"},
    )


def _stream(handle: BinaryIO, span: ByteRange | None, size: int) -> Iterator[bytes]:
    try:
        start, remaining = (span.start, span.length) if span else (0, size)
        if start:
            handle.seek(start)
        while remaining > 0:
            data = handle.read(min(CHUNK, remaining))
            if not data:
                return
            remaining -= len(data)
            yield data
    finally:
        handle.close()


def _size(handle: BinaryIO, catalog_size: int) -> int:
    try:
        if handle.seekable():
            end = handle.seek(0, io.SEEK_END)
            handle.seek(0)
            return int(end)
    except OSError:
        pass
    return catalog_size


@router.get(
    "/play/seg/{segment_id}.ts",
    response_class=StreamingResponse,
    responses={200: {"content": {SEGMENT_TYPE: {}}}, 206: {}, 302: {}, 416: {}},
)
def segment(segment_id: str, request: Request, deps: DepsDep, user: OptionalUserDep) -> Response:
    row = _checked_row(segment_id, request, deps, user, "")
    remaining_s = max(1, min(URL_TTL_US // 1_000_000, _url_expiry_s(request) - _now_s(deps)))
    try:
        presigned = deps.store.presigned_get(row.object_key, remaining_s)
        if presigned is not None:
            deps.metrics.inc("vigil_segments_served_total", how="redirect")
            return RedirectResponse(presigned, 302, headers={"Cache-Control": "no-store"})
        handle = deps.store.open_read(row.object_key)
    except StorageError as exc:
        raise ApiError("storage_unavailable", f"segment bytes unavailable: {exc}") from None
    size = _size(handle, row.size_bytes)
    return _ranged(request, handle, size, "segment", _media_type(row.object_key), deps)


def _checked_row(
    segment_id: str, request: Request, deps: ApiDeps, user: User | None, rendition: str
) -> SegmentRow:
    """The stored segment a signed URL names, after the HMAC check (audited in aggregate;
    refusals throttled per client)."""
    client = client_address(request)
    mono = deps.clock.monotonic()
    limiter = deps.segment_limiter
    assert limiter is not None
    if limiter.over(client, mono):
        deps.metrics.inc("vigil_http_refusals_total", reason="rate_limited")
        raise ApiError("rate_limited", "too many refused segment URLs: slow down")
    row = deps.catalog.get_segment(segment_id) if len(segment_id) <= MAX_ID_CHARS else None
    camera = row.camera_id if row else ""
    try:
        deps.playback.check_segment(
            segment_id, request.url.query, user, camera, row.size_bytes if row else 0, rendition
        )
    except GrantRefused:
        if limiter.charge(client, mono):
            deps.grants.record(
                "segment_fetch",
                user,
                outcome="refused",
                reason="rate_limited",
                camera_id=camera,
                detail={"client": client, "message": "refused URLs over the limit: throttled"},
            )
        raise
    if row is None or row.state != SEGMENT_STORED:
        raise ApiError("unknown_segment", "segment is not (or no longer) stored")
    return row


@router.get(
    "/play/h264/{segment_id}.ts",
    response_class=StreamingResponse,
    responses={200: {"content": {SEGMENT_TYPE: {}}}, 206: {}, 416: {}, 422: {}, 503: {}},
)
def segment_h264(
    segment_id: str, request: Request, deps: DepsDep, user: OptionalUserDep
) -> Response:
    """The H.264 rendition of a segment (for browsers without HEVC), from the cache or
    converted now; signed and audited like the original's URL."""
    row = _checked_row(segment_id, request, deps, user, H264)
    cache = deps.playback.renditions
    if cache is None:
        raise ApiError("rendition_unavailable", "this controller does not convert video", 503)

    def fetch(path: Path) -> None:
        try:
            with deps.store.open_read(row.object_key) as src, path.open("wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)
        except (StorageError, OSError) as exc:
            raise ApiError("storage_unavailable", f"segment bytes unavailable: {exc}") from None

    try:
        handle = cache.open(row.sha256, fetch)
    except RenditionBusy as exc:
        deps.metrics.inc("vigil_renditions_total", outcome="busy")
        raise ApiError(
            "transcode_busy", str(exc), 503, headers={"Retry-After": str(exc.retry_after)}
        ) from None
    except TranscodeError as exc:
        deps.metrics.inc("vigil_renditions_total", outcome="failed")
        raise ApiError(
            "transcode_failed",
            f"segment {segment_id} cannot be converted to H.264: {exc}",
            422,
        ) from None
    deps.metrics.inc("vigil_renditions_total", outcome="served")
    size = _size(handle, 0)
    return _ranged(request, handle, size, "rendition", SEGMENT_TYPE, None)


def _ranged(
    request: Request,
    handle: BinaryIO,
    size: int,
    what: str,
    media_type: str,
    counted: ApiDeps | None,
) -> Response:
    """The file's bytes, or the Range asked for (206), or 416; `counted` updates the
    original-segment byte counters (renditions are counted by their own metric)."""
    try:
        span = parse_range(request.headers.get("range"), size)
    except RangeNotSatisfiable:
        handle.close()
        return error_response(
            416,
            "range_not_satisfiable",
            f"the {what} has {size} bytes",
            {"Content-Range": f"bytes */{size}"},
        )
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=300",
        "Content-Length": str(span.length if span else size),
    }
    if span is not None:
        headers["Content-Range"] = span.content_range(size)
    if counted is not None:
        counted.metrics.inc("vigil_segments_served_total", how="bytes")
        counted.metrics.inc("vigil_segment_bytes_total", span.length if span else size)
    return StreamingResponse(
        _stream(handle, span, size),
        status_code=206 if span else 200,
        media_type=media_type,
        headers=headers,
    )


def _media_type(key: str) -> str:
    kind = content_type_for(key)
    return SEGMENT_TYPE if kind == "application/octet-stream" else kind


def _url_expiry_s(request: Request) -> int:
    value = request.query_params.get("e", "")
    return int(value) if value.isdigit() and len(value) <= 12 else 0


def _now_s(deps: ApiDeps) -> int:
    return deps.clock.now_us() // 1_000_000
