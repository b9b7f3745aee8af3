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

Replicas: a feed whose device has no stream open here is asked of the `upstream` (the live
relay, controller/live/relay.py: the replica that holds the feed sends its chunks over), so
the relay is just another source here; at the holder it is just another viewer
(`join(..., local=True)`: never relayed on, so replicas that disagree for a moment about who
holds a camera cannot relay it around in a circle). Links are asked only for feeds from
this replica's own devices: the holder admits and plans the relayed ones.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from controller.live.feed import (
    CommandSink,
    Feed,
    FeedState,
    LinkGate,
    LiveOptions,
    Status,
    Upstream,
)
from controller.live.viewer import Viewer

log = logging.getLogger("vigil.live")


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
        self._feeds: dict[str, Feed] = {}
        self._agents: dict[str, CommandSink] = {}  # device -> its open Feed stream
        self._rates: dict[str, int] = {}  # camera -> its last measured rate
        self.links: LinkGate | None = None  # set by the assembly when a scheduler runs
        self.upstream: Upstream | None = None  # the live relay, set by the assembly (replicas)
        self.starts_sent = 0
        self.stops_sent = 0
        self.viewers_dropped = 0  # fell `viewer_chunks` behind (too_slow)
        self.link_busy = 0  # feeds the links refused (each refusal, retries included)
        self.bytes_in = 0  # media bytes from agents (each is fanned out to every viewer)

    # -- agents -----------------------------------------------------------------------------

    def attach(self, device_id: str, commands: CommandSink) -> None:
        """The device opened its Feed stream (a newer one replaces an older one)."""
        with self._lock:
            self._agents[device_id] = commands
            wanted = [
                f
                for f in self._feeds.values()
                if f.device_id == device_id
                and f.viewers
                and (f.state is not FeedState.LINK_BUSY or f.relayed)  # the holder's busy
            ]
            unrelay = [f.camera_id for f in wanted if f.relayed]
            for feed in wanted:
                if feed.relayed:  # another stream's GOP: the agent's starts afresh
                    feed.gop, feed.gop_size = [], 0
                feed.asked, feed.relayed = True, False
                self._set(feed, FeedState.CONNECTING, "")
        for camera_id in unrelay:  # the device's stream is here now: the relay stops
            self._relay(device_id, camera_id, False)
        for feed in wanted:
            self._send(commands, feed.camera_id, True)
        self._feeding(device_id)

    def detach(self, device_id: str, commands: CommandSink) -> None:
        with self._lock:
            if self._agents.get(device_id) is not commands:
                return  # a newer stream took over already
            del self._agents[device_id]
            moved: list[str] = []  # the device may feed another replica now (a new leader)
            for feed in self._feeds.values():
                if feed.device_id == device_id and not feed.relayed:
                    feed.asked = False
                    feed.gop, feed.gop_size = [], 0
                    self._set(feed, FeedState.AGENT_UNREACHABLE, "")
                    if feed.viewers and self._relayable(feed):
                        feed.asked = feed.relayed = True
                        self._set(feed, FeedState.CONNECTING, "")
                        moved.append(feed.camera_id)
        for camera_id in moved:
            self._relay(device_id, camera_id, True)
        self._feeding(device_id)

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
            self.bytes_in += len(data)
            changed = self._measure(feed, len(data)) and not feed.relayed
            if feed.state is not FeedState.LIVE:
                self._set(feed, FeedState.LIVE, "")
            viewers = list(feed.viewers)
        if changed:
            self._feeding(device_id)
        slow = [v for v in viewers if not v.offer(data)]
        if slow:
            with self._lock:
                for viewer in slow:
                    feed.viewers.discard(viewer)
                    self.viewers_dropped += 1
                    log.warning("camera %s: a live viewer fell behind and was dropped", camera_id)
                self._maybe_idle(feed)

    def relay_state(self, device_id: str, camera_id: str, state: FeedState, detail: str) -> None:
        """The holding replica's word on a relayed feed, or why the relay is down (LIVE
        comes with chunks, never from here)."""
        with self._lock:
            feed = self._feeds.get(camera_id)
            if feed is None or feed.device_id != device_id or not feed.relayed:
                return
            if state is not FeedState.LIVE:
                feed.gop, feed.gop_size = [], 0
                self._set(feed, state, detail)

    def camera_down(self, device_id: str, camera_id: str, detail: str) -> None:
        with self._lock:
            feed = self._feeds.get(camera_id)
            if feed is None or feed.device_id != device_id:
                return
            feed.gop, feed.gop_size = [], 0
            self._set(feed, FeedState.CAMERA_OFFLINE, detail)

    def sweep(self) -> None:
        """Stop feeds whose linger is over and start "link busy" feeds the links can now
        carry (called every ~0.5 s by the servicer)."""
        now = self._mono()
        stops: list[tuple[CommandSink, str]] = []
        starts: list[tuple[CommandSink, str]] = []
        unrelay: list[tuple[str, str]] = []
        devices: set[str] = set()  # whose running feeds changed
        with self._lock:
            for camera_id, feed in list(self._feeds.items()):
                commands = self._agents.get(feed.device_id)
                if (
                    feed.viewers
                    and feed.state is FeedState.LINK_BUSY
                    and commands is not None
                    and not feed.relayed
                    and now - feed.busy_at >= self.options.busy_retry_s
                    and self._admit(feed)
                ):
                    feed.asked = True
                    self._set(feed, FeedState.CONNECTING, "")
                    starts.append((commands, camera_id))
                    devices.add(feed.device_id)
                if feed.viewers or feed.idle_since is None:
                    continue
                if now - feed.idle_since < self.options.linger_s:
                    continue
                del self._feeds[camera_id]
                commands = self._agents.get(feed.device_id)
                if feed.relayed:
                    unrelay.append((feed.device_id, camera_id))
                elif commands is not None and feed.asked:
                    stops.append((commands, camera_id))
                    devices.add(feed.device_id)
        for commands, camera_id in stops:
            self._send(commands, camera_id, False)
        for commands, camera_id in starts:
            self._send(commands, camera_id, True)
        for device_id, camera_id in unrelay:
            self._relay(device_id, camera_id, False)
        for device_id in devices:
            self._feeding(device_id)

    # -- viewers ----------------------------------------------------------------------------

    def join(self, camera_id: str, device_id: str, viewer: Viewer, local: bool = False) -> bool:
        """Add a viewer (its feed started if it was not). `local`: another replica's relay
        watching through this one, served only from this replica's own devices; refused
        (False, nothing changed) when this replica relays the camera itself."""
        start: CommandSink | None = None
        relay = False
        with self._lock:
            feed = self._feeds.get(camera_id)
            if feed is None or feed.device_id != device_id:
                feed = self._feeds[camera_id] = Feed(camera_id, device_id)
                feed.since_us = self._now_us()
            if local and feed.relayed:
                return False
            feed.pinned = feed.pinned or local
            feed.viewers.add(viewer)
            feed.idle_since = None
            for chunk in feed.gop:
                viewer.offer(chunk)
            commands = self._agents.get(device_id)
            if feed.relayed:
                pass  # the relay is on it (retrying while the holder is away)
            elif commands is None and self._relayable(feed):
                feed.asked = feed.relayed = relay = True
                self._set(feed, FeedState.CONNECTING, "")
            elif commands is None:
                self._set(feed, FeedState.AGENT_UNREACHABLE, "")
            elif not feed.asked and feed.state is not FeedState.LINK_BUSY and self._admit(feed):
                feed.asked = True
                start = commands
        if relay:
            self._relay(device_id, camera_id, True)
        if start is not None:
            self._send(start, camera_id, True)
            self._feeding(device_id)
        return True

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

    def census(self) -> tuple[dict[str, int], int]:
        """(feeds per state, viewers in all): for /metrics."""
        with self._lock:
            states = dict.fromkeys((s.value for s in FeedState), 0)
            for feed in self._feeds.values():
                states[feed.state.value] += 1
            return states, sum(len(f.viewers) for f in self._feeds.values())

    def feeds(self) -> list[str]:
        with self._lock:
            return sorted(self._feeds)

    # -- inside the lock --------------------------------------------------------------------

    def _measure(self, feed: Feed, size: int) -> bool:
        """Count `size` bytes into the feed's rate; True when the rate moved by > 20 %."""
        now = feed.chunk_at
        start, total = feed.window
        if not start or now - start < self.options.rate_window_s:
            feed.window = (start or now, total + size)
            return False
        measured = int(total * 8 / (now - start))
        self._rates[feed.camera_id], feed.window = measured, (now, size)
        if abs(measured - feed.bps) <= 0.2 * max(measured, feed.bps):
            return False
        feed.bps = measured
        return True

    def _rate(self, feed: Feed) -> int:
        return feed.bps or self._rates.get(feed.camera_id, self.options.assumed_bps)

    def _admit(self, feed: Feed) -> bool:
        """Ask the links whether this feed may start; on "no" it reads link_busy."""
        if self.links is None:
            return True
        running = [
            (f.device_id, f.camera_id, self._rate(f))
            for f in self._feeds.values()
            if f.asked and not f.relayed
        ]
        new = (feed.device_id, feed.camera_id, self._rate(feed))
        try:
            busy = self.links.admit(new, running, self.options.max_streams_per_link)
        except Exception:
            log.exception("camera %s: the link check failed; the feed starts", feed.camera_id)
            busy = None
        if busy is None:
            return True
        feed.busy_at = self._mono()
        self.link_busy += 1
        self._set(feed, FeedState.LINK_BUSY, busy)
        return False

    def _maybe_idle(self, feed: Feed) -> None:
        if feed.viewers:
            return
        if feed.device_id not in self._agents and not feed.relayed:
            self._feeds.pop(feed.camera_id, None)  # no agent to stop and no sweep to come
        elif feed.idle_since is None:
            feed.idle_since = self._mono()

    def _relayable(self, feed: Feed) -> bool:
        return self.upstream is not None and not feed.pinned

    def _set(self, feed: Feed, state: FeedState, detail: str) -> None:
        if feed.state is not state:
            feed.since_us = self._now_us()
        feed.state, feed.detail = state, detail

    def _feeding(self, device_id: str) -> None:
        """Tell the links what the device's running feeds take now (outside the lock)."""
        if self.links is None:
            return
        with self._lock:
            feeds = [
                f
                for f in self._feeds.values()
                if f.device_id == device_id and f.asked and not f.relayed
            ]
            bps = sum(self._rate(f) for f in feeds) if device_id in self._agents else 0
        try:
            self.links.feeding(device_id, bps)
        except Exception:
            log.exception("device %s: cannot plan its live feeds", device_id)

    def _relay(self, device_id: str, camera_id: str, start: bool) -> None:
        """Ask the upstream (outside the lock) to start or stop relaying a camera."""
        upstream = self.upstream
        if upstream is None:
            return
        try:
            upstream(device_id, camera_id, start)
        except Exception:
            log.exception("camera %s: cannot ask the live relay", camera_id)

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
