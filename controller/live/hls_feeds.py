"""The live feeds HLS players watch: one hub viewer per camera, drained into an `HlsWindow`.

An HLS player is no connection: it fetches the playlist every target duration. So the first
playlist request for a camera joins the hub as one viewer (the feed starts like any other),
a task on the HTTP server's loop drains that viewer's chunks into the camera's window, and
the viewer leaves once no playlist was asked for `idle_s` (the feed then lingers and stops
as usual). Who watches is tracked per grant, for the audit: `live_view` at the first
playlist, `live_view_end` with from-to when that grant's player has been gone `idle_s`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from controller.live.hls import HlsWindow
from controller.live.hub import LiveHub
from controller.live.viewer import Viewer

log = logging.getLogger("vigil.live")

Ended = Callable[[str, int], None]  # (grant id, from_us) -> audit the end of that view


@dataclass(eq=False)
class _Entry:
    camera_id: str
    viewer: Viewer
    window: HlsWindow
    asked_at: float
    views: dict[str, tuple[int, float, Ended]] = field(default_factory=dict)
    task: asyncio.Task[None] | None = None


class HlsFeeds:
    def __init__(
        self,
        hub: LiveHub,
        monotonic: Callable[[], float],
        now_us: Callable[[], int],
        idle_s: float = 15.0,
    ) -> None:
        self._hub = hub
        self._mono = monotonic
        self._now_us = now_us
        self.idle_s = idle_s
        self._entries: dict[str, _Entry] = {}

    def window(
        self, camera_id: str, device_id: str, grant_id: str, ended: Ended
    ) -> tuple[HlsWindow, bool]:
        """The camera's window (its feed joined if it was not), and whether this grant's view
        is new (to audit its start); `ended` audits its end."""
        now = self._mono()
        entry = self._entries.get(camera_id)
        if entry is None:
            viewer = Viewer(camera_id, asyncio.get_running_loop(), 10_000)
            entry = _Entry(camera_id, viewer, HlsWindow(), now)
            self._entries[camera_id] = entry
            self._hub.join(camera_id, device_id, viewer)
            entry.task = asyncio.ensure_future(self._drain(entry))
        entry.asked_at = now
        first = entry.views.get(grant_id)
        entry.views[grant_id] = (first[0] if first else self._now_us(), now, ended)
        return entry.window, first is None

    def segment(self, camera_id: str, seq: int) -> bytes | None:
        entry = self._entries.get(camera_id)
        return None if entry is None else entry.window.segment(seq)

    async def _drain(self, entry: _Entry) -> None:
        try:
            while self._mono() - entry.asked_at < self.idle_s:
                self._end_idle_views(entry)
                try:
                    chunks = await asyncio.wait_for(entry.viewer.next(), 1.0)
                except TimeoutError:
                    continue
                if chunks is None:
                    break  # dropped (it never is: the queue is drained at once) or closed
                for chunk in chunks:
                    entry.window.add(chunk)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("camera %s: the live HLS window failed", entry.camera_id)
        finally:
            self._hub.leave(entry.viewer)
            if self._entries.get(entry.camera_id) is entry:
                del self._entries[entry.camera_id]
            for grant_id in list(entry.views):
                self._end(entry, grant_id)

    def _end_idle_views(self, entry: _Entry) -> None:
        now = self._mono()
        for grant_id, (_, last, _) in list(entry.views.items()):
            if now - last >= self.idle_s:
                self._end(entry, grant_id)

    def _end(self, entry: _Entry, grant_id: str) -> None:
        from_us, _, ended = entry.views.pop(grant_id)
        with contextlib.suppress(RuntimeError):  # the loop is closing: nothing more to say
            asyncio.get_running_loop().run_in_executor(None, ended, grant_id, from_us)

    async def close(self) -> None:
        tasks = [e.task for e in self._entries.values() if e.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
