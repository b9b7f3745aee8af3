"""The live hub's decisions: one feed per camera however many viewers, a linger before the
stop, GOP replay so a late viewer starts at a keyframe, bounded viewers, honest states."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from controller.live.feed import FeedState, LiveOptions
from controller.live.hub import LiveHub
from controller.live.viewer import Viewer


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def now_us(self) -> int:
        return int(self.t * 1e6)

    def monotonic(self) -> float:
        return self.t


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def hub_with(clock: Clock, **options: float) -> tuple[LiveHub, list[tuple[str, bool]]]:
    hub = LiveHub(clock.now_us, clock.monotonic, LiveOptions(**options))  # type: ignore[arg-type]
    sent: list[tuple[str, bool]] = []
    hub.attach("dev1", lambda cam, start: sent.append((cam, start)))
    return hub, sent


def drain(loop: asyncio.AbstractEventLoop, viewer: Viewer) -> list[bytes]:
    loop.run_until_complete(asyncio.sleep(0))  # run the wake-ups queued from "other threads"
    if not viewer.pending() and not viewer.closed:
        return []
    return loop.run_until_complete(viewer.next()) or []


def test_one_start_for_many_viewers_and_a_stop_after_the_linger(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    hub, sent = hub_with(clock, linger_s=5.0)
    viewers = [Viewer("cam1", loop, 10) for _ in range(20)]
    for v in viewers:
        hub.join("cam1", "dev1", v)
    assert sent == [("cam1", True)]
    for v in viewers:
        hub.leave(v)
    clock.t += 4.9
    hub.sweep()
    assert sent == [("cam1", True)]
    rejoin = Viewer("cam1", loop, 10)  # a page reload within the linger: no restart
    hub.join("cam1", "dev1", rejoin)
    hub.leave(rejoin)
    clock.t += 5.0
    hub.sweep()
    assert sent == [("cam1", True), ("cam1", False)]
    assert hub.feeds() == []


def test_a_late_viewer_starts_at_the_last_keyframe(loop: asyncio.AbstractEventLoop) -> None:
    clock = Clock()
    hub, _ = hub_with(clock)
    first = Viewer("cam1", loop, 100)
    hub.join("cam1", "dev1", first)
    for data, key in [(b"K1", True), (b"p1", False), (b"K2", True), (b"p2", False)]:
        hub.chunk("dev1", "cam1", data, key, clock.now_us())
    assert drain(loop, first) == [b"K1", b"p1", b"K2", b"p2"]
    late = Viewer("cam1", loop, 100)
    hub.join("cam1", "dev1", late)
    assert drain(loop, late) == [b"K2", b"p2"]


def test_a_gop_over_the_cache_bound_is_not_replayed(loop: asyncio.AbstractEventLoop) -> None:
    clock = Clock()
    hub, _ = hub_with(clock, gop_bytes=10)
    hub.join("cam1", "dev1", Viewer("cam1", loop, 100))
    hub.chunk("dev1", "cam1", b"K" * 6, True, 1)
    hub.chunk("dev1", "cam1", b"p" * 6, False, 2)  # over 10 bytes: the GOP is dropped
    hub.chunk("dev1", "cam1", b"p", False, 3)
    late = Viewer("cam1", loop, 100)
    hub.join("cam1", "dev1", late)
    assert drain(loop, late) == []


def test_a_viewer_that_falls_behind_is_dropped_alone(loop: asyncio.AbstractEventLoop) -> None:
    clock = Clock()
    hub, _ = hub_with(clock)
    slow, fast = Viewer("cam1", loop, 3), Viewer("cam1", loop, 3)
    hub.join("cam1", "dev1", slow)
    hub.join("cam1", "dev1", fast)
    got: list[bytes] = []
    for i in range(6):
        hub.chunk("dev1", "cam1", bytes([i]), i == 0, i)
        got += drain(loop, fast)
    assert got == [bytes([i]) for i in range(6)]
    assert slow.dropped and not fast.dropped
    assert drain(loop, slow) == []  # next() answers None: closed
    assert hub.viewers("cam1") == 1


def test_states_follow_the_agent_and_the_camera(loop: asyncio.AbstractEventLoop) -> None:
    clock = Clock()
    hub = LiveHub(clock.now_us, clock.monotonic)
    viewer = Viewer("cam1", loop, 10)
    hub.join("cam1", "dev1", viewer)
    status = hub.status("cam1")
    assert status is not None and status.state is FeedState.AGENT_UNREACHABLE
    sent: list[tuple[str, bool]] = []
    commands = lambda cam, start: sent.append((cam, start))  # noqa: E731
    hub.attach("dev1", commands)  # the agent connects: the waiting feed is asked for
    assert sent == [("cam1", True)]
    assert hub.status("cam1").state is FeedState.CONNECTING  # type: ignore[union-attr]
    hub.chunk("dev1", "cam1", b"K", True, 123)
    st = hub.status("cam1")
    assert st is not None and st.state is FeedState.LIVE and st.frame_us == 123
    clock.t += 3
    hub.camera_down("dev1", "cam1", "camera lost")
    st = hub.status("cam1")
    assert st is not None and st.state is FeedState.CAMERA_OFFLINE and st.detail == "camera lost"
    assert st.since_us == clock.now_us()
    hub.detach("dev1", lambda c, s: None)  # an older stream's goodbye changes nothing
    assert hub.status("cam1").state is FeedState.CAMERA_OFFLINE  # type: ignore[union-attr]
    hub.detach("dev1", commands)
    assert hub.status("cam1").state is FeedState.AGENT_UNREACHABLE  # type: ignore[union-attr]


def test_chunks_of_another_device_or_a_stopped_feed_go_nowhere(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    hub, _ = hub_with(clock)
    viewer = Viewer("cam1", loop, 10)
    hub.join("cam1", "dev1", viewer)
    hub.chunk("dev2", "cam1", b"K", True, 1)
    hub.chunk("dev1", "cam9", b"K", True, 1)
    assert drain(loop, viewer) == []
    assert hub.wanted("dev1", "cam1") and not hub.wanted("dev2", "cam1")


def test_a_feed_without_an_agent_is_forgotten_with_its_last_viewer(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    hub = LiveHub(clock.now_us, clock.monotonic)
    viewer = Viewer("cam1", loop, 10)
    hub.join("cam1", "dev1", viewer)
    assert hub.feeds() == ["cam1"]
    hub.leave(viewer)
    assert hub.feeds() == []


def test_a_live_feed_that_goes_silent_reads_unreachable(loop: asyncio.AbstractEventLoop) -> None:
    clock = Clock()
    hub, _ = hub_with(clock, silent_s=5.0)
    hub.join("cam1", "dev1", Viewer("cam1", loop, 10))
    hub.chunk("dev1", "cam1", b"K", True, 1, "h264")
    clock.t += 4.9
    st = hub.status("cam1")
    assert st is not None and st.state is FeedState.LIVE and st.codec == "h264"
    clock.t += 0.2
    st = hub.status("cam1")
    assert st is not None and st.state is FeedState.AGENT_UNREACHABLE
    assert st.detail == "no video for 5 s"
    hub.chunk("dev1", "cam1", b"p", False, 2)
    assert hub.status("cam1").state is FeedState.LIVE  # type: ignore[union-attr]
