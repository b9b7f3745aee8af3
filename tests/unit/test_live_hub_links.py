"""The live hub and the links under its feeds: a feed the links cannot carry reads
"link busy" (no start goes to the agent), is asked again every `busy_retry_s` and starts once
it fits; running feeds' measured rates are handed on as LIVE demand, and 0 when they stop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from controller.live.feed import FeedState, Load
from controller.live.viewer import Viewer
from tests.unit.test_live_hub import Clock, hub_with


class Gate:
    """Links with room for `room` bit/s of live in all (a stand-in for the scheduler's)."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.asked: list[tuple[Load, list[Load], int]] = []
        self.fed: list[tuple[str, int]] = []

    def admit(self, new: Load, running: list[Load], limit: int) -> str | None:
        self.asked.append((new, running, limit))
        used = sum(bps for _, _, bps in running)
        return None if used + new[2] <= self.room else f"link v1 full ({used} in use)"

    def feeding(self, device_id: str, bps: int) -> None:
        self.fed.append((device_id, bps))


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def test_a_feed_that_does_not_fit_reads_link_busy_and_starts_when_it_does(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    hub, sent = hub_with(clock, assumed_bps=1_000_000, busy_retry_s=5.0, linger_s=1.0)
    gate = Gate(room=500_000)
    hub.links = gate
    viewer = Viewer("cam1", loop, 10)
    hub.join("cam1", "dev1", viewer)
    status = hub.status("cam1")
    assert status is not None and status.state is FeedState.LINK_BUSY
    assert "link v1 full" in status.detail
    assert sent == [] and gate.asked[0][0] == ("dev1", "cam1", 1_000_000)
    hub.join("cam1", "dev1", Viewer("cam1", loop, 10))  # a second viewer asks nothing new
    assert len(gate.asked) == 1
    gate.room = 2_000_000
    clock.t += 4.0
    hub.sweep()
    assert sent == []  # not before busy_retry_s
    clock.t += 1.5
    hub.sweep()
    assert sent == [("cam1", True)]
    status = hub.status("cam1")
    assert status is not None and status.state is FeedState.CONNECTING
    assert gate.fed[-1] == ("dev1", 1_000_000)  # the assumed rate until measured


def test_the_measured_rate_is_planned_and_zero_after_the_stop(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    hub, sent = hub_with(clock, assumed_bps=2_000_000, rate_window_s=2.0, linger_s=1.0)
    gate = Gate(room=10_000_000)
    hub.links = gate
    viewer = Viewer("cam1", loop, 1000)
    hub.join("cam1", "dev1", viewer)
    assert gate.fed == [("dev1", 2_000_000)]
    for _ in range(50):  # 50 chunks of 5 kB over 2.5 s: 800 kbit/s
        hub.chunk("dev1", "cam1", b"x" * 5000, False, clock.now_us())
        clock.t += 0.05
    hub.chunk("dev1", "cam1", b"x" * 5000, False, clock.now_us())
    assert gate.fed[-1][0] == "dev1" and 700_000 < gate.fed[-1][1] < 1_100_000
    hub.leave(viewer)
    clock.t += 1.5
    hub.sweep()
    assert sent[-1] == ("cam1", False)
    assert gate.fed[-1] == ("dev1", 0)


def test_a_broken_gate_never_stops_live(loop: asyncio.AbstractEventLoop) -> None:
    class Broken(Gate):
        def admit(self, new: Load, running: list[Load], limit: int) -> str | None:
            raise RuntimeError("boom")

    clock = Clock()
    hub, sent = hub_with(clock)
    hub.links = Broken(0)
    hub.join("cam1", "dev1", Viewer("cam1", loop, 10))
    assert sent == [("cam1", True)]
