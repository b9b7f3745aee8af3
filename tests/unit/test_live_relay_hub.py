"""The live relay's decisions: which replica holds a camera's feed (controller/live/holder.py)
and the hub with an upstream (controller/live/hub.py): a feed whose device has no stream here
is relayed once per camera, shared by every local viewer, stopped after the linger, handed
back to a local stream when the device connects here, never relayed on from a holder, and
never counted on this replica's links."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from controller.live.feed import FeedState, LiveOptions, Load
from controller.live.holder import Facts, Holder, holder_of
from controller.live.hub import LiveHub
from controller.live.viewer import Viewer

ME, OTHER = "10.0.0.1:7443", "10.0.0.2:7443"


def facts(gb: str | None = None, gb_address: str = "", leader: str = OTHER) -> Facts:
    return Facts(gb, gb_address, leader, "replica-a", ME)


@pytest.mark.parametrize(
    ("given", "address"),
    [
        (facts(), OTHER),  # an agent camera: the leader's
        (facts(leader=ME), ""),  # we lead: the feed is ours (its agent is simply not here)
        (facts(leader=""), ""),  # nobody leads right now
        (facts("replica-b", OTHER, leader=ME), OTHER),  # a GB device: its replica, not the leader
        (facts("replica-a", ME), ""),  # registered here
        (facts("replica-b", ME), ""),  # another name for this address: still here
        (facts("replica-b", ""), ""),  # its replica never announced where it is
        (facts(""), ""),  # a GB device that never registered
    ],
)
def test_the_holder_of_a_cameras_feed(given: Facts, address: str) -> None:
    assert holder_of(given).address == address


def test_no_holder_says_why_unless_it_is_this_replica() -> None:
    assert holder_of(facts(leader="")).why
    assert holder_of(facts("")).why
    assert "replica-b" in holder_of(facts("replica-b", "")).why
    assert holder_of(facts(leader=ME)) == Holder("", "")
    assert holder_of(facts("replica-a", ME)) == Holder("", "")


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def now_us(self) -> int:
        return int(self.t * 1e6)

    def monotonic(self) -> float:
        return self.t


class Links:
    def __init__(self) -> None:
        self.admitted: list[Load] = []
        self.fed: list[tuple[str, int]] = []

    def admit(self, new: Load, running: list[Load], limit: int) -> str | None:
        self.admitted.append(new)
        return None

    def feeding(self, device_id: str, bps: int) -> None:
        self.fed.append((device_id, bps))


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def relaying_hub(clock: Clock) -> tuple[LiveHub, list[tuple[str, str, bool]], Links]:
    hub = LiveHub(clock.now_us, clock.monotonic, LiveOptions(linger_s=5.0))
    asked: list[tuple[str, str, bool]] = []
    hub.upstream = lambda dev, cam, start: asked.append((dev, cam, start))
    links = hub.links = Links()
    return hub, asked, links


def drain(loop: asyncio.AbstractEventLoop, viewer: Viewer) -> list[bytes]:
    loop.run_until_complete(asyncio.sleep(0))
    if not viewer.pending():
        return []
    return loop.run_until_complete(viewer.next()) or []


def test_one_relay_for_every_local_viewer_stopped_after_the_linger(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    hub, asked, links = relaying_hub(clock)
    viewers = [Viewer("cam1", loop, 10) for _ in range(5)]
    for v in viewers:
        assert hub.join("cam1", "dev1", v)
    assert asked == [("dev1", "cam1", True)]
    st = hub.status("cam1")
    assert st is not None and st.state is FeedState.CONNECTING  # not agent_unreachable
    hub.chunk("dev1", "cam1", b"k", True, 5, "h264")
    assert all(drain(loop, v) == [b"k"] for v in viewers)
    assert links.admitted == [] and links.fed == []  # the holder admits and plans it
    for v in viewers:
        hub.leave(v)
    clock.t += 4.9
    hub.sweep()
    assert asked == [("dev1", "cam1", True)]
    clock.t += 0.2
    hub.sweep()
    assert asked == [("dev1", "cam1", True), ("dev1", "cam1", False)]
    assert hub.feeds() == []


def test_the_holders_state_and_a_broken_relay_reach_the_viewers(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    hub, _, _ = relaying_hub(clock)
    hub.join("cam1", "dev1", Viewer("cam1", loop, 10))
    hub.relay_state("dev1", "cam1", FeedState.LINK_BUSY, "uplink full")
    st = hub.status("cam1")
    assert st is not None and (st.state, st.detail) == (FeedState.LINK_BUSY, "uplink full")
    hub.relay_state("dev1", "cam1", FeedState.AGENT_UNREACHABLE, "副本 x 转发中断")
    st = hub.status("cam1")
    assert st is not None and st.state is FeedState.AGENT_UNREACHABLE and "副本" in st.detail
    hub.chunk("dev1", "cam1", b"k", True, 5)
    st = hub.status("cam1")
    assert st is not None and st.state is FeedState.LIVE


def test_a_device_connecting_here_takes_over_from_the_relay(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    hub, asked, _ = relaying_hub(clock)
    viewer = Viewer("cam1", loop, 10)
    hub.join("cam1", "dev1", viewer)
    sent: list[tuple[str, bool]] = []
    commands = lambda cam, start: sent.append((cam, start))  # noqa: E731
    hub.attach("dev1", commands)
    assert asked == [("dev1", "cam1", True), ("dev1", "cam1", False)]
    assert sent == [("cam1", True)]
    hub.relay_state("dev1", "cam1", FeedState.AGENT_UNREACHABLE, "late word")  # ignored now
    st = hub.status("cam1")
    assert st is not None and st.state is FeedState.CONNECTING
    hub.detach("dev1", commands)  # it moved on (a new leader): relayed again
    assert asked[-1] == ("dev1", "cam1", True)
    st = hub.status("cam1")
    assert st is not None and st.state is FeedState.CONNECTING


def test_a_holder_never_relays_on_what_another_replica_watches_through_it(
    loop: asyncio.AbstractEventLoop,
) -> None:
    clock = Clock()
    hub, asked, _ = relaying_hub(clock)
    peer = Viewer("cam1", loop, 10)
    assert hub.join("cam1", "dev1", peer, local=True)
    assert asked == []
    st = hub.status("cam1")
    assert st is not None and st.state is FeedState.AGENT_UNREACHABLE
    hub.join("cam1", "dev1", Viewer("cam1", loop, 10))  # a local viewer of the same feed
    assert asked == []
    # and a replica relaying a camera refuses another replica's relay of it (no circles)
    hub.join("cam2", "dev2", Viewer("cam2", loop, 10))
    assert asked == [("dev2", "cam2", True)]
    refused = Viewer("cam2", loop, 10)
    assert not hub.join("cam2", "dev2", refused, local=True)
    assert hub.viewers("cam2") == 1


def test_without_an_upstream_nothing_changes(loop: asyncio.AbstractEventLoop) -> None:
    clock = Clock()
    hub = LiveHub(clock.now_us, clock.monotonic)
    viewer = Viewer("cam1", loop, 10)
    hub.join("cam1", "dev1", viewer)
    st = hub.status("cam1")
    assert st is not None and st.state is FeedState.AGENT_UNREACHABLE
    hub.leave(viewer)
    assert hub.feeds() == []
