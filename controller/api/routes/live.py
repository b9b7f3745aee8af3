"""Live view over WebSocket: `GET /api/v1/live/{camera}/ws` streams MPEG-TS for mpegts.js.

    client -> {"session": "<session token>", "grant": "<grant token>"}   first message, ≤ 10 s
    server -> binary messages: MPEG-TS, starting at the most recent keyframe
    server -> text {"state": "connecting|live|camera_offline|agent_unreachable",
                    "frame_us": T, "now_us": T, "since_us": T, "detail": "...",
                    "codec": "h264|hevc|..."}                               every second
    client -> {"grant": "<renewed grant token>"}                            any time
    server -> text {"error": reason, "message": "..."} then close (1008) on any refusal

Browsers without Media Source Extensions (iPhone Safari) play the same feed as short-segment
HLS (controller/live/hls.py):

    GET /api/v1/live/{camera}/hls/index.m3u8       session (Authorization or ?session=) and a
                                                   live grant (X-Vigil-Grant or ?grant=); 503
                                                   with the feed's state while it has no video
    GET /api/v1/live/{camera}/hls/live.{camera}.{n}.ts?g=&e=&k=&s=   a segment, signed like
                                                   playback's (rendition "live"), ≤ 5 min

A native player cannot set headers, so its playlist URL carries the tokens (as /play/ does for
ffmpeg/VLC); the segment URLs carry only a short signature. Each playlist request checks the
grant again (a revoked grant stops the player at its next reload, ~1 s); the view is audited
once per grant (`live_view`, `live_view_end` with from-to), never per request.

Why the tokens travel in the first message and not the URL: URLs end up in proxy and access
logs, a message does not; and with no cookie involved a cross-site page cannot ride on a
user's login. The grant needs the `live` operation and is checked again every
`RECHECK_S` (a revoked or expired grant closes the socket within that plus the revocation
cache, ~7 s; the bound is 60 s). Each view is audited twice (`live_view` when it opens and
`live_view_end` with from-to and bytes when it ends), never per packet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect

from controller.api.common import camera_for
from controller.api.deps import ApiDeps, DepsDep, OptionalUserDep, authenticate, grant_token
from controller.api.errors import ApiError
from controller.grants.access import AccessRequest
from controller.grants.errors import GrantRefused
from controller.grants.model import MAX_ID_CHARS, CameraInfo, Operation
from controller.grants.policy import User
from controller.live.feed import FeedState
from controller.live.hls_feeds import HlsFeeds
from controller.live.hub import LiveHub
from controller.live.viewer import Viewer
from controller.playback.urlsign import UrlSigner

router = APIRouter(tags=["live"])
log = logging.getLogger("vigil.live")

HELLO_TIMEOUT_S = 10.0
STATUS_S = 1.0
RECHECK_S = 2.0
POLICY_CLOSE = 1008
MAX_MESSAGE = 70 * 1024  # a 64 KiB grant token and a session, as JSON


class _Closed(Exception):
    """End the view: (reason, message) go to the client before the socket closes."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


class _View:
    def __init__(self, ws: WebSocket, deps: ApiDeps, camera_id: str) -> None:
        self.ws, self.deps, self.camera_id = ws, deps, camera_id
        self.user: User | None = None
        self.token = ""
        self.info: CameraInfo | None = None
        self.grant_id = ""

    async def hello(self) -> str:
        """Authenticate and authorize the first message; returns the camera's device."""
        try:
            text = await asyncio.wait_for(self.ws.receive_text(), HELLO_TIMEOUT_S)
        except TimeoutError:
            raise _Closed("unauthenticated", "send {session, grant} first") from None
        hello = _message(text)
        session, token = hello.get("session"), hello.get("grant")
        if not isinstance(session, str) or not session:
            raise _Closed("unauthenticated", "log in first: the first message needs a session")
        self.user = await run_in_threadpool(authenticate, self.deps, session)
        if not isinstance(token, str) or not token:
            raise _Closed("grant_required", "live view needs a grant with the live operation")
        row, self.info = await run_in_threadpool(
            camera_for, self.deps, self.camera_id, "live", self.user
        )
        await self.authorize(token)
        return row.device_id

    async def authorize(self, token: str) -> None:
        assert self.info is not None
        user = self.user
        assert user is not None
        request = AccessRequest(Operation.LIVE, self.info, 0, 0, user.org_id, user.user_id)
        access = await run_in_threadpool(self.deps.grants.authorize, token, request, user, "live")
        self.token, self.grant_id = token, access.grant_id

    def record(self, action: str, **detail: Any) -> None:
        self.deps.grants.record(
            action, self.user, camera_id=self.camera_id, grant_id=self.grant_id, detail=detail
        )


def _message(text: str) -> dict[str, Any]:
    if len(text) > MAX_MESSAGE:
        raise _Closed("bad_request", "message too long")
    try:
        value = json.loads(text)
    except ValueError:
        raise _Closed("bad_request", "messages are JSON objects") from None
    if not isinstance(value, dict):
        raise _Closed("bad_request", "messages are JSON objects")
    return value


@router.websocket("/api/v1/live/{camera_id}/ws")
async def live(websocket: WebSocket, camera_id: str) -> None:
    deps: ApiDeps = websocket.app.state.deps
    hub: LiveHub | None = getattr(websocket.app.state, "live", None)
    await websocket.accept()
    view = _View(websocket, deps, camera_id)
    try:
        if hub is None:
            raise _Closed("live_unavailable", "this controller does not serve live view")
        if not 0 < len(camera_id) <= MAX_ID_CHARS:
            raise _Closed("unknown_camera", "bad camera id")
        device_id = await view.hello()
    except _Closed as exc:
        await _close(websocket, exc.reason, exc.message)
        return
    except ApiError as exc:
        await _close(websocket, exc.reason, exc.message)
        return
    except GrantRefused as exc:
        await _close(websocket, exc.reason.value, exc.message)
        return
    except WebSocketDisconnect:
        return
    await _watch(view, hub, device_id)


async def _watch(view: _View, hub: LiveHub, device_id: str) -> None:
    deps, ws = view.deps, view.ws
    viewer = Viewer(view.camera_id, asyncio.get_running_loop(), hub.options.viewer_chunks)
    started_us = deps.clock.now_us()
    await run_in_threadpool(view.record, "live_view", from_us=started_us)
    hub.join(view.camera_id, device_id, viewer)
    ended = ("closed", "the viewer left")

    async def send() -> None:
        while (chunks := await viewer.next()) is not None:
            for chunk in chunks:
                await ws.send_bytes(chunk)
                viewer.bytes_sent += len(chunk)

    async def status() -> None:
        last_check = deps.clock.monotonic()
        while True:
            st = hub.status(view.camera_id)
            if st is not None:
                await ws.send_text(
                    json.dumps(
                        {
                            "state": st.state.value,
                            "frame_us": st.frame_us,
                            "since_us": st.since_us,
                            "now_us": deps.clock.now_us(),
                            "detail": st.detail,
                            "codec": st.codec,
                        }
                    )
                )
            await asyncio.sleep(STATUS_S)
            if deps.clock.monotonic() - last_check >= RECHECK_S:
                last_check = deps.clock.monotonic()
                await view.authorize(view.token)

    async def receive() -> None:
        while True:
            message = _message(await ws.receive_text())
            token = message.get("grant")
            if isinstance(token, str) and token:
                await view.authorize(token)  # a renewed grant replaces the old one

    tasks = [asyncio.ensure_future(c) for c in (send(), status(), receive(), viewer.gone())]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            error = task.exception() if not task.cancelled() else None
            if isinstance(error, GrantRefused):
                ended = (error.reason.value, error.message)
            elif isinstance(error, _Closed | ApiError):
                ended = (error.reason, error.message)
            elif viewer.dropped:
                ended = ("too_slow", "the viewer fell too far behind and was dropped")
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        hub.leave(viewer)
        reason, message = ended
        await run_in_threadpool(
            view.record,
            "live_view_end",
            from_us=started_us,
            to_us=deps.clock.now_us(),
            bytes=viewer.bytes_sent,
            ended=reason,
        )
        if reason != "closed":
            await _close(ws, reason, message)


async def _close(ws: WebSocket, reason: str, message: str) -> None:
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.send_text(json.dumps({"error": reason, "message": message})), 2)
    with contextlib.suppress(Exception):
        await asyncio.wait_for(ws.close(POLICY_CLOSE, reason[:100]), 2)


# -- short-segment HLS (browsers without MSE) ------------------------------------------------

HLS_WAIT_S = 8.0  # a playlist waits this long for the first two segments of a new feed
HLS_RENDITION = "live"  # segment URLs are signed in their own namespace (urlsign.py)
_STOPPED = (FeedState.CAMERA_OFFLINE, FeedState.AGENT_UNREACHABLE, FeedState.LINK_BUSY)


def _hls_feeds(request: Request, hub: LiveHub, deps: ApiDeps) -> HlsFeeds:
    feeds: HlsFeeds | None = getattr(request.app.state, "live_hls", None)
    if feeds is None:
        feeds = request.app.state.live_hls = HlsFeeds(hub, deps.clock.monotonic, deps.clock.now_us)
    return feeds


@router.get("/api/v1/live/{camera_id}/hls/index.m3u8")
async def live_playlist(
    request: Request,
    camera_id: str,
    deps: DepsDep,
    user: OptionalUserDep,
    grant: Annotated[str | None, Query(max_length=MAX_MESSAGE)] = None,
) -> Response:
    hub: LiveHub | None = getattr(request.app.state, "live", None)
    if hub is None:
        raise ApiError("live_unavailable", "this controller does not serve live view", 503)
    if user is None:
        raise ApiError("unauthenticated", "log in first: a session is needed", 401)
    token = grant_token(request, grant)
    if not token:
        raise ApiError("grant_required", "live view needs a grant with the live operation", 403)
    row, info = await run_in_threadpool(camera_for, deps, camera_id, "live", user)
    request_ = AccessRequest(Operation.LIVE, info, 0, 0, user.org_id, user.user_id)
    access = await run_in_threadpool(deps.grants.authorize, token, request_, user, "live")

    def ended(grant_id: str, from_us: int) -> None:
        to_us = deps.clock.now_us()
        detail = {"from_us": from_us, "to_us": to_us, "via": "hls"}
        deps.grants.record(
            "live_view_end", user, camera_id=camera_id, grant_id=grant_id, detail=detail
        )

    feeds = _hls_feeds(request, hub, deps)
    window, new = feeds.window(camera_id, row.device_id, access.grant_id, ended)
    if new:
        detail = {"from_us": deps.clock.now_us(), "via": "hls"}
        await run_in_threadpool(
            deps.grants.record,
            "live_view",
            user,
            camera_id=camera_id,
            grant_id=access.grant_id,
            detail=detail,
        )
    deadline = deps.clock.monotonic() + HLS_WAIT_S
    while not window.ready():
        st = hub.status(camera_id)
        if st is not None and st.state in _STOPPED:
            raise ApiError(st.state.value, st.detail or st.state.value, 503, {"Retry-After": "5"})
        if deps.clock.monotonic() >= deadline:
            raise ApiError("connecting", "no live video yet", 503, {"Retry-After": "2"})
        await asyncio.sleep(0.1)
    expires_s = UrlSigner.expiry_s(deps.clock.now_us(), access.expires_us)
    url_for = deps.playback.signer.url_maker(
        "", access.grant_id, expires_s, rendition=HLS_RENDITION
    )
    text = window.playlist(lambda seq: url_for(f"live.{camera_id}.{seq}"))
    return Response(
        text, media_type="application/vnd.apple.mpegurl", headers={"Cache-Control": "no-store"}
    )


@router.get("/api/v1/live/{camera_id}/hls/{name}.ts")
async def live_segment(request: Request, camera_id: str, name: str, deps: DepsDep) -> Response:
    hub: LiveHub | None = getattr(request.app.state, "live", None)
    prefix, _, seq = name.rpartition(".")
    if hub is None or prefix != f"live.{camera_id}" or not seq.isdigit() or len(seq) > 12:
        raise ApiError("not_found", "no such live segment", 404)
    revoked = await run_in_threadpool(deps.grants.revoked)
    deps.playback.signer.check_query(
        name, request.url.query, deps.clock.now_us(), revoked, HLS_RENDITION
    )
    data = _hls_feeds(request, hub, deps).segment(camera_id, int(seq))
    if data is None:
        raise ApiError("segment_gone", "this live segment left the window: reload", 404)
    return Response(data, media_type="video/mp2t", headers={"Cache-Control": "no-store"})
