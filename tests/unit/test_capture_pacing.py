"""When a live camera's reader pauses (edge_agent/capture/pacing.py, pure)."""

from __future__ import annotations

import pytest

from edge_agent.capture.pacing import CAUGHT_UP_US, pause_after


def test_a_packet_that_was_waited_for_starts_a_pause() -> None:
    assert pause_after(1_000_000, 1_040_000, 0.25, watched=False, udp=False) == 0.25
    assert pause_after(1_000_000, 1_000_000 + CAUGHT_UP_US, 0.25, watched=False, udp=False)


def test_queued_packets_are_read_without_a_pause() -> None:
    # Behind the camera (the packet came at once): read on until caught up.
    assert pause_after(1_000_000, 1_000_300, 0.25, watched=False, udp=False) == 0.0
    assert pause_after(1_000_000, 1_000_000 + CAUGHT_UP_US - 1, 0.25, watched=False, udp=False) == 0
    # The wall clock went back: not a wait.
    assert pause_after(1_000_000, 900_000, 0.25, watched=False, udp=False) == 0.0


@pytest.mark.parametrize(
    ("previous", "pause", "watched", "udp"),
    [
        (None, 0.25, False, False),  # the session's first packet
        (1_000_000, 0.0, False, False),  # pausing switched off
        (1_000_000, 0.25, True, False),  # a live viewer: latency counts
        (1_000_000, 0.25, False, True),  # UDP: datagrams beyond the socket buffer are lost
    ],
)
def test_no_pause(previous: int | None, pause: float, watched: bool, udp: bool) -> None:
    assert pause_after(previous, 1_100_000, pause, watched=watched, udp=udp) == 0.0
