"""Limits per kind of call and per device (controller/grpcserver/limits.py), and the
mailbox's wake-up for an async lease stream."""

from __future__ import annotations

from controller.grpcserver.limits import Budget, Gate, refusal
from controller.scheduler.mailbox import Mailbox

UPLOADS = Budget("uploads", total=3, per_device=2)
STREAMS = Budget("lease streams", total=2, per_device=2, replaces=True)


def test_a_device_is_held_to_its_share_and_the_total_to_the_budget() -> None:
    assert refusal(UPLOADS, "a", total=0, held=0) is None
    why = refusal(UPLOADS, "a", total=2, held=2)
    assert why is not None and "per device" in why and "device a" in why
    why = refusal(UPLOADS, "b", total=3, held=0)
    assert why is not None and "limit 3" in why
    assert refusal(UPLOADS, "b", total=2, held=0) is None


def test_a_replacing_stream_is_admitted_when_full_but_a_new_device_is_not() -> None:
    assert refusal(STREAMS, "a", total=2, held=1) is None  # its successor
    assert refusal(STREAMS, "c", total=2, held=0) is not None
    assert refusal(STREAMS, "a", total=2, held=2) is not None  # never more than two


def test_gate_counts_and_gives_back() -> None:
    gate = Gate(UPLOADS)
    assert gate.acquire("a") is None and gate.acquire("a") is None
    assert gate.acquire("a") is not None  # its share
    assert gate.acquire("b") is None
    assert gate.acquire("c") is not None  # the total
    assert (gate.in_flight, gate.held("a"), gate.refused) == (3, 2, 2)
    gate.release("a")
    assert gate.acquire("c") is None
    for device in ("a", "b", "c"):
        gate.release(device)
    assert gate.in_flight == 0 and gate.held("a") == 0


def test_mailbox_wakes_its_watcher_on_put_and_close_and_at_once_when_pending() -> None:
    box: Mailbox[int] = Mailbox()
    woken: list[str] = []
    box.put(1)
    box.watch(lambda: woken.append("w"))
    assert woken == ["w"]  # something was already waiting
    assert box.poll() == 1 and box.poll() is None
    box.put(2)
    box.put(3)
    assert woken == ["w", "w", "w"] and box.poll() == 3 and box.replaced == 1
    box.close()
    assert woken[-1] == "w" and len(woken) == 4
    box.put(4)
    assert box.poll() is None and box.closed
