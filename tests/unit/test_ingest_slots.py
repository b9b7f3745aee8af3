"""Upload slots: the concurrency limit, one stream per segment, idle reaping."""

from __future__ import annotations

import pytest

from controller.clock import ManualClock
from controller.ingest.fairness import Shares
from controller.ingest.rules import Code, IngestError
from controller.ingest.slots import UploadSlots


def test_uploads_beyond_the_limit_are_refused_and_slots_come_back() -> None:
    slots = UploadSlots(2, ManualClock())
    with slots.upload(), slots.upload():
        assert slots.in_use == 2
        with pytest.raises(IngestError) as info, slots.upload():
            pass
        assert info.value.code is Code.RESOURCE_EXHAUSTED
        assert "limit 2" in info.value.message
    assert slots.in_use == 0
    with slots.upload():
        assert slots.in_use == 1


def test_a_slot_is_released_when_the_upload_fails() -> None:
    slots = UploadSlots(1, ManualClock())
    with pytest.raises(RuntimeError), slots.upload():
        raise RuntimeError("boom")
    assert slots.in_use == 0


def test_one_stream_per_segment() -> None:
    slots = UploadSlots(4, ManualClock())
    with slots.segment("dev1", "seg1"):
        assert slots.is_active("dev1", "seg1")
        with pytest.raises(IngestError) as info, slots.segment("dev1", "seg1"):
            pass
        assert info.value.code is Code.ABORTED
        with slots.segment("dev2", "seg1"):  # another device's namespace
            pass
    assert not slots.is_active("dev1", "seg1")


def test_idle_streams_are_cancelled_once_per_idle_period() -> None:
    clock = ManualClock()
    slots = UploadSlots(4, clock)
    cancelled: list[str] = []
    with (
        slots.upload(lambda: cancelled.append("idle")),
        slots.upload(lambda: cancelled.append("busy")) as touch_busy,
    ):
        clock.advance(5)
        touch_busy()
        assert slots.reap_idle(10) == 0
        clock.advance(6)
        assert slots.reap_idle(10) == 1
        assert cancelled == ["idle"]
        assert slots.reap_idle(10) == 0  # not cancelled again right away


def test_each_device_holds_at_most_its_share_and_others_still_get_slots() -> None:
    shares = Shares(pool=8, per_device=2, reserve=2)
    slots = UploadSlots(8, ManualClock(), shares)
    with slots.upload(device_id="noisy"), slots.upload(device_id="noisy"):
        with pytest.raises(IngestError) as info, slots.upload(device_id="noisy"):
            pass
        assert info.value.code is Code.RESOURCE_EXHAUSTED
        assert "device noisy" in info.value.message
        assert slots.in_flight("noisy") == 2
        with slots.upload(device_id="quiet"):
            assert slots.in_flight("quiet") == 1
    assert slots.in_use == 0 and slots.in_flight("noisy") == 0


def test_a_pool_refusal_cancels_stalled_streams_at_once() -> None:
    clock = ManualClock()
    shares = Shares(pool=2, per_device=2, reserve=0, stall_s=15.0)
    slots = UploadSlots(2, clock, shares)
    cancelled: list[str] = []
    with slots.upload(lambda: cancelled.append("stalled"), device_id="a"):
        with slots.upload(lambda: cancelled.append("fresh"), device_id="a") as touch:
            clock.advance(20)
            touch()
            with pytest.raises(IngestError), slots.upload(device_id="b"):
                pass
            assert cancelled == ["stalled"]  # stalled past stall_s, well before idle timeout
