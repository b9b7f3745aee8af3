"""The fleet history queue when full (controller/fleet/history_writer.py): losses are kept
first, then unannounced losses, then state changes, and what is not kept is counted exactly."""

from __future__ import annotations

from collections.abc import Sequence

from controller.catalog.history_models import LossEventRow, StateChangeRow
from controller.fleet.history_writer import HistoryWriter


class NoStore:
    """Never called: `note` does no I/O."""

    def record_changes(self, rows: Sequence[StateChangeRow]) -> None:
        raise AssertionError("note() wrote")

    def record_losses(self, rows: Sequence[LossEventRow]) -> int:
        raise AssertionError("note() wrote")

    def record_owned_losses(self, rows: Sequence[LossEventRow]) -> list[LossEventRow]:
        raise AssertionError("note() wrote")


def _changes(n: int) -> list[StateChangeRow]:
    return [
        StateChangeRow(subject="device", device_id="d", state="online", at_us=i) for i in range(n)
    ]


def _losses(n: int) -> list[LossEventRow]:
    return [
        LossEventRow(
            device_id="d",
            camera_id="c",
            session=1,
            seq=i,
            start_us=i,
            end_us=i + 1,
            reason="evicted_unsent",
            at_us=i,
            received_us=i,
        )  # fmt: skip
        for i in range(n)
    ]


def test_a_full_queue_keeps_losses_first_and_counts_exactly_what_it_drops() -> None:
    writer = HistoryWriter(NoStore(), max_queued=10)
    writer.note(_changes(5), _losses(6), _losses(3))
    # 6 losses and 3 unannounced kept, 1 of the 5 changes: 4 not kept.
    assert writer.overflowed == 4
    writer.note(_changes(2), _losses(1))
    assert writer.overflowed == 4 + 3  # full: nothing more is kept
    writer.note((), (), ())
    assert writer.overflowed == 7


def test_a_queue_with_room_keeps_everything() -> None:
    writer = HistoryWriter(NoStore(), max_queued=10)
    writer.note(_changes(4), _losses(3), _losses(3))
    assert writer.overflowed == 0
