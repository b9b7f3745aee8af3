"""A cascade live stream whose feed stopped is ended, after a grace, with the reason."""

from __future__ import annotations

import asyncio

from controller.gb28181.livewatch import LiveWatch, gone
from controller.live.feed import FeedState, Status


def status(state: FeedState, detail: str = "") -> Status:
    return Status(state, frame_us=0, since_us=0, detail=detail, viewers=1)


def test_a_live_feed_is_never_gone_and_forgets_a_bad_spell() -> None:
    assert gone(status(FeedState.LIVE), None, 100.0, 10.0) == (None, None)
    assert gone(status(FeedState.LIVE), 50.0, 100.0, 10.0) == (None, None)


def test_a_feed_not_live_for_the_grace_ends_the_stream_with_why() -> None:
    busy = status(FeedState.LINK_BUSY, "link wudu-uplink full")
    assert gone(busy, None, 100.0, 10.0) == (100.0, None)  # the spell starts
    assert gone(busy, 100.0, 109.9, 10.0) == (100.0, None)
    since, why = gone(busy, 100.0, 110.0, 10.0)
    assert since == 100.0 and why == "feed link_busy for 10 s: link wudu-uplink full"
    assert gone(None, 90.0, 100.0, 10.0)[1] == "feed gone for 10 s"  # no feed at all
    assert gone(status(FeedState.CONNECTING), 80.0, 100.0, 10.0)[1] is not None  # stuck


def test_the_watch_ends_only_the_stream_whose_feed_stopped() -> None:
    states = {"cam-1": status(FeedState.LIVE), "cam-2": status(FeedState.AGENT_UNREACHABLE)}
    ended: list[tuple[str, str]] = []

    async def main() -> LiveWatch:
        watch = LiveWatch(states.get, lambda c, w: ended.append((c, w)), 0.05, 0.01)
        watch.add("call-1", "cam-1")
        watch.add("call-2", "cam-2")
        watch.add("call-3", "cam-2")
        watch.remove("call-3")  # its BYE came first
        await asyncio.sleep(0.2)
        return watch

    watch = asyncio.run(main())
    assert [c for c, _ in ended] == ["call-2"] and "agent_unreachable" in ended[0][1]
    assert list(watch.watched) == ["call-1"]
