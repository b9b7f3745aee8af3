"""The live hub: one feed per camera from its agent, fanned out to every viewer.

However many people watch a camera, one stream crosses the village link: the first viewer
makes the hub ask the camera's agent to start, the last one leaving starts a short linger
after which the hub asks it to stop (a viewer who reloads the page does not restart the
feed). A viewer joining a running feed gets the current GOP first (the chunks since the last
keyframe chunk: FFmpeg repeats PAT/PMT there), so every viewer starts at a keyframe.

Threads: agents' chunks arrive on the gRPC event loop, viewers wait on the HTTP server's
event loop; the hub itself is plain data under one lock and wakes a viewer on its own loop
(`call_soon_threadsafe`) only when its queue goes from empty to non-empty. Each viewer's
queue is bounded: a viewer that stops reading (a stalled browser, a dead TCP peer) is dropped
once it falls `viewer_chunks` behind, and nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

log = logging.getLogger("vigil.live")

CommandSink = Callable[[str, bool], None]  # (camera_id, start) -> the agent's stream, any thread


class FeedState(StrEnum):
    CONNECTING = "connecting"  # asked the agent, no video yet
    LIVE = "live"
    CAMERA_OFFLINE = "camera_offline"  # the agent says the camera delivers nothing
    AGENT_UNREACHABLE = "agent_unreachable"  # the camera's agent has no live stream open


@dataclass(frozen=True, slots=True)
class LiveOptions:
    linger_s: float = 5.0  # a feed outlives its last viewer this long
    viewer_chunks: int = 600  # ~20 s of video at 30 chunks/s before a viewer is dropped
    gop_bytes: int = 8 * 1024 * 1024  # the cached GOP of a feed (a longer GOP is not cached)
    # A live feed with no chunk for this long reads agent_unreachable (a silently cut link
    # takes gRPC keepalive ~80 s to notice; the viewer should not see "live" meanwhile).
    silent_s: float = 5.0


class Viewer:
    """One WebSocket viewer's queue; `offer` from any thread, `next` on its own loop."""

    def __init__(self, camera_id: str, loop: asyncio.AbstractEventLoop, max_chunks: int) -> None:
        self.camera_id = camera_id
        self._loop = loop
        self._max = max_chunks
        self._lock = threading.Lock()
        self._chunks: deque[bytes] = deque()
        self._wake = asyncio.Event()
        self._gone = asyncio.Event()
        self.dropped = False
        self.closed = False
        self.bytes_sent = 0

    def offer(self, chunk: bytes) -> bool:
        """Queue a chunk; False (and the viewer closed) when it is too far behind."""
        with self._lock:
            if self.closed:
                return False
            if len(self._chunks) >= self._max:
                self.dropped = self.closed = True
                self._chunks.clear()
                first = True
            else:
                first = not self._chunks
                self._chunks.append(chunk)
        if first:
            self._poke()
        return not self.dropped

    def close(self) -> None:
        with self._lock:
            self.closed = True
        self._poke()

    def _poke(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._wakeup)
        except RuntimeError:
            pass  # the viewer's loop is gone: nobody waits

    def _wakeup(self) -> None:
        self._wake.set()
        if self.closed:
            self._gone.set()

    async def gone(self) -> None:
        """Returns once the viewer is closed or dropped (even while a send is stuck)."""
        await self._gone.wait()

    async def next(self) -> list[bytes] | None:
        """Every queued chunk (at least one), or None once the viewer is closed or dropped."""
        while True:
            with self._lock:
                if self.closed:
                    return None
                if self._chunks:
                    chunks = list(self._chunks)
                    self._chunks.clear()
                    return chunks
                self._wake.clear()
            await self._wake.wait()

    def pending(self) -> int:
        with self._lock:
            return len(self._chunks)


@dataclass(eq=False)
class _Feed:
    camera_id: str
    device_id: str
    viewers: set[Viewer] = field(default_factory=set)
    gop: list[bytes] = field(default_factory=list)
    gop_size: int = 0
    state: FeedState = FeedState.CONNECTING
    detail: str = ""
    asked: bool = False  # a start went to the agent's current stream
    idle_since: float | None = None
    frame_us: int = 0  # the agent's wall time of the newest frame
    since_us: int = 0  # when the state last changed (controller time)
    codec: str = ""  # the video codec (FFmpeg's name), from the last keyframe chunk
    chunk_at: float = 0.0  # monotonic time of the newest chunk (this controller's clock)


@dataclass(frozen=True, slots=True)
class Status:
    state: FeedState
    frame_us: int
    since_us: int
    detail: str
    viewers: int
    codec: str = ""


class LiveHub:
    def __init__(
        self,
        now_us: Callable[[], int],
        monotonic: Callable[[], float],
        options: LiveOptions | None = None,
    ) -> None:
        self._now_us = now_us
        self._mono = monotonic
        self.options = options or LiveOptions()
        self._lock = threading.Lock()
        self._feeds: dict[str, _Feed] = {}
        self._agents: dict[str, CommandSink] = {}  # device -> its open Feed stream
        self.starts_sent = 0
        self.stops_sent = 0

    # -- agents -----------------------------------------------------------------------------

    def attach(self, device_id: str, commands: CommandSink) -> None:
        """The device opened its Feed stream (a newer one replaces an older one)."""
        with self._lock:
            self._agents[device_id] = commands
            wanted = [f for f in self._feeds.values() if f.device_id == device_id and f.viewers]
            for feed in wanted:
                feed.asked = True
                self._set(feed, FeedState.CONNECTING, "")
        for feed in wanted:
            self._send(commands, feed.camera_id, True)

    def detach(self, device_id: str, commands: CommandSink) -> None:
        with self._lock:
            if self._agents.get(device_id) is not commands:
                return  # a newer stream took over already
            del self._agents[device_id]
            for feed in self._feeds.values():
                if feed.device_id == device_id:
                    feed.asked = False
                    feed.gop, feed.gop_size = [], 0
                    self._set(feed, FeedState.AGENT_UNREACHABLE, "")

    def wanted(self, device_id: str, camera_id: str) -> bool:
        """Whether this device's chunks for this camera are expected (feed asked of it)."""
        with self._lock:
            feed = self._feeds.get(camera_id)
            return feed is not None and feed.device_id == device_id

    def chunk(
        self, device_id: str, camera_id: str, data: bytes, key: bool, frame_us: int, codec: str = ""
    ) -> None:
        with self._lock:
            feed = self._feeds.get(camera_id)
            if feed is None or feed.device_id != device_id:
                return  # a late chunk of a stopped feed
            if key:
                feed.gop, feed.gop_size = [], 0
                feed.codec = codec or feed.codec
            if feed.gop or key:
                if feed.gop_size + len(data) <= self.options.gop_bytes:
                    feed.gop.append(data)
                    feed.gop_size += len(data)
                else:
                    feed.gop, feed.gop_size = [], 0
            feed.frame_us = frame_us
            feed.chunk_at = self._mono()
            if feed.state is not FeedState.LIVE:
                self._set(feed, FeedState.LIVE, "")
            viewers = list(feed.viewers)
        slow = [v for v in viewers if not v.offer(data)]
        if slow:
            with self._lock:
                for viewer in slow:
                    feed.viewers.discard(viewer)
                    log.warning("camera %s: a live viewer fell behind and was dropped", camera_id)
                self._maybe_idle(feed)

    def camera_down(self, device_id: str, camera_id: str, detail: str) -> None:
        with self._lock:
            feed = self._feeds.get(camera_id)
            if feed is None or feed.device_id != device_id:
                return
            feed.gop, feed.gop_size = [], 0
            self._set(feed, FeedState.CAMERA_OFFLINE, detail)

    def sweep(self) -> None:
        """Stop feeds whose linger is over (called every ~0.5 s by the servicer)."""
        now = self._mono()
        stops: list[tuple[CommandSink, str]] = []
        with self._lock:
            for camera_id, feed in list(self._feeds.items()):
                if feed.viewers or feed.idle_since is None:
                    continue
                if now - feed.idle_since < self.options.linger_s:
                    continue
                del self._feeds[camera_id]
                commands = self._agents.get(feed.device_id)
                if commands is not None and feed.asked:
                    stops.append((commands, camera_id))
        for commands, camera_id in stops:
            self._send(commands, camera_id, False)

    # -- viewers ----------------------------------------------------------------------------

    def join(self, camera_id: str, device_id: str, viewer: Viewer) -> None:
        start: CommandSink | None = None
        with self._lock:
            feed = self._feeds.get(camera_id)
            if feed is None or feed.device_id != device_id:
                feed = self._feeds[camera_id] = _Feed(camera_id, device_id)
                feed.since_us = self._now_us()
            feed.viewers.add(viewer)
            feed.idle_since = None
            for chunk in feed.gop:
                viewer.offer(chunk)
            commands = self._agents.get(device_id)
            if commands is None:
                self._set(feed, FeedState.AGENT_UNREACHABLE, "")
            elif not feed.asked:
                feed.asked = True
                start = commands
        if start is not None:
            self._send(start, camera_id, True)

    def leave(self, viewer: Viewer) -> None:
        viewer.close()
        with self._lock:
            feed = self._feeds.get(viewer.camera_id)
            if feed is not None and viewer in feed.viewers:
                feed.viewers.discard(viewer)
                self._maybe_idle(feed)

    def status(self, camera_id: str) -> Status | None:
        with self._lock:
            feed = self._feeds.get(camera_id)
            if feed is None:
                return None
            silent = self._mono() - feed.chunk_at
            if feed.state is FeedState.LIVE and silent >= self.options.silent_s:
                return Status(
                    FeedState.AGENT_UNREACHABLE,
                    feed.frame_us,
                    feed.since_us,
                    f"no video for {silent:.0f} s",
                    len(feed.viewers),
                    feed.codec,
                )
            return Status(
                feed.state, feed.frame_us, feed.since_us, feed.detail, len(feed.viewers), feed.codec
            )

    def viewers(self, camera_id: str) -> int:
        with self._lock:
            feed = self._feeds.get(camera_id)
            return len(feed.viewers) if feed else 0

    def feeds(self) -> list[str]:
        with self._lock:
            return sorted(self._feeds)

    # -- inside the lock --------------------------------------------------------------------

    def _maybe_idle(self, feed: _Feed) -> None:
        if feed.viewers:
            return
        if feed.device_id not in self._agents:
            self._feeds.pop(feed.camera_id, None)  # no agent to stop and no sweep to come
        elif feed.idle_since is None:
            feed.idle_since = self._mono()

    def _set(self, feed: _Feed, state: FeedState, detail: str) -> None:
        if feed.state is not state:
            feed.since_us = self._now_us()
        feed.state, feed.detail = state, detail

    def _send(self, commands: CommandSink, camera_id: str, start: bool) -> None:
        if start:
            self.starts_sent += 1
        else:
            self.stops_sent += 1
        try:
            commands(camera_id, start)
        except Exception:
            what = "start" if start else "stop"
            log.exception("camera %s: cannot send a live %s", camera_id, what)
