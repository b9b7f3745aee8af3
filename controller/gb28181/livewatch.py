"""A live cascade stream whose feed stopped is ended with BYE, not left frozen.

The hub keeps a cascade viewer attached while its camera's feed is link-busy, its agent gone
or its camera dark (a console viewer is shown that state and waits); an upper platform is
shown nothing but a picture that stopped. So once a second, while live cascade streams run,
each stream's feed state is looked at, and a stream whose feed has not been live for
`LIVE_GONE_S` is ended (a feed still starting that long is as dead: an agent starts one in
2-3 s, the next keyframe included): Vigil sends BYE with the reason in its audit entry, and
the platform can INVITE again when it likes. `gone` is the rule (pure); `LiveWatch` the
timer on the SIP loop (one wake-up a second for all streams, nothing per frame).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from controller.live.feed import FeedState, Status

LIVE_GONE_S = 10.0  # a feed not live this long ends its cascade streams
WATCH_EVERY_S = 1.0


def gone(
    status: Status | None, bad_since: float | None, now: float, grace_s: float
) -> tuple[float | None, str | None]:
    """(since when the feed has not been live, or None while it is; the reason to end the
    stream, or None). No feed at all (`status` None) counts as not live."""
    if status is not None and status.state is FeedState.LIVE:
        return None, None
    since = now if bad_since is None else bad_since
    if now - since < grace_s:
        return since, None
    state = status.state.value if status is not None else "gone"
    detail = f": {status.detail}" if status is not None and status.detail else ""
    return since, f"feed {state} for {now - since:.0f} s{detail}"


class LiveWatch:
    """Looks at every watched stream's feed once a second; `end(call_id, why)` for one gone."""

    def __init__(
        self,
        status: Callable[[str], Status | None],
        end: Callable[[str, str], None],
        grace_s: float = LIVE_GONE_S,
        every_s: float = WATCH_EVERY_S,
    ) -> None:
        self.status = status
        self.end = end
        self.grace_s = grace_s
        self.every_s = every_s
        self.watched: dict[str, tuple[str, float | None]] = {}  # call id -> (camera, bad since)
        self._timer: asyncio.TimerHandle | None = None

    def add(self, call_id: str, camera_id: str) -> None:
        self.watched[call_id] = (camera_id, None)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.every_s, self._check)

    def remove(self, call_id: str) -> None:
        self.watched.pop(call_id, None)

    def _check(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        for call_id, (camera_id, since) in list(self.watched.items()):
            since, why = gone(self.status(camera_id), since, now, self.grace_s)
            if why is None:
                self.watched[call_id] = (camera_id, since)
                continue
            del self.watched[call_id]
            self.end(call_id, why)
        self._timer = loop.call_later(self.every_s, self._check) if self.watched else None
