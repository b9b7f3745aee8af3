"""The leader's plan as the followers read it: encode/decode round trip (pure)."""

from __future__ import annotations

import json

import pytest

from controller.scheduler.board import decode, encode
from controller.scheduler.leases import LinkDelivery
from controller.scheduler.upkeep import DeviceSnapshot, Snapshot


def snapshot() -> Snapshot:
    return Snapshot(
        at_us=1_767_225_600_000_000,
        plan_version=42,
        devices=[
            DeviceSnapshot(
                "dev1",
                True,
                "L-dev1",
                {"evidence": 2_000_000},
                2_000_000,
                1_500_000,
                "abc123",
                3,
                1_767_225_610_000_000,
            ),  # fmt: skip
            DeviceSnapshot("dev2", False, "", {}, 0, 0, "", 0, 0),
        ],
        links=[LinkDelivery("root", 10**10, 2_000_000, 1_500_000)],
        counters={"replans": 7, "leases_issued": 3},
    )


def test_a_snapshot_survives_the_board_unchanged() -> None:
    snap = snapshot()
    assert decode(encode(snap)) == snap


def test_an_empty_plan_survives_too() -> None:
    empty = Snapshot(1, 0, [], [], {})
    assert decode(encode(empty)) == empty


def test_something_else_on_the_board_is_refused() -> None:
    with pytest.raises(KeyError):
        decode(json.dumps({"at_us": 1}))
    with pytest.raises(TypeError):
        decode(encode(snapshot()).replace('"device_id"', '"device"'))
