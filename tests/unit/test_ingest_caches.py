"""What ingest remembers between uploads: cameras (with a TTL) and each camera's chain tip."""

from __future__ import annotations

from controller.catalog import CameraRow
from controller.clock import ManualClock
from controller.ingest.caches import CameraCache, ChainTips
from controller.ingest.rules import Neighbour

SEG_US = 10_000_000


def camera(camera_id: str, device_id: str = "dev1") -> CameraRow:
    return CameraRow(camera_id=camera_id, device_id=device_id, county="wudu", site="v1")


def seg(i: int) -> Neighbour:
    return Neighbour(f"s{i}", i * SEG_US, (i + 1) * SEG_US, f"{i:064x}", "", "")


def test_a_camera_is_trusted_for_the_ttl_then_asked_again() -> None:
    clock = ManualClock()
    cache = CameraCache(clock, ttl_s=10.0)
    assert cache.get("cam1") is None
    cache.put(camera("cam1"))
    got = cache.get("cam1")
    assert got is not None and got.device_id == "dev1"
    clock.advance(9.9)
    assert cache.get("cam1") is not None
    clock.advance(0.2)
    assert cache.get("cam1") is None  # expired: the catalog decides again
    cache.put(camera("cam1", device_id="dev2"))  # moved to another device
    got = cache.get("cam1")
    assert got is not None and got.device_id == "dev2"


def test_the_camera_cache_is_bounded() -> None:
    cache = CameraCache(ManualClock(), limit=2)
    for name in ("cam1", "cam2", "cam3"):
        cache.put(camera(name))
    assert cache.get("cam1") is None  # least recently used went first
    assert cache.get("cam2") is not None and cache.get("cam3") is not None


def test_the_tip_answers_only_for_segments_after_it() -> None:
    tips = ChainTips()
    assert tips.after_tip("cam1", 5 * SEG_US) is None  # nothing known: ask the catalog
    tips.committed("cam1", seg(5), is_latest=True)
    assert tips.after_tip("cam1", 6 * SEG_US) == seg(5)
    assert tips.after_tip("cam1", 5 * SEG_US) is None  # same start: could be the tip itself
    assert tips.after_tip("cam1", 3 * SEG_US) is None  # a late segment: ask the catalog
    assert tips.after_tip("cam2", 6 * SEG_US) is None  # per camera


def test_a_first_commit_becomes_the_tip_only_when_nothing_follows_it() -> None:
    tips = ChainTips()
    tips.committed("cam1", seg(3), is_latest=False)  # a later segment exists in the catalog
    assert tips.after_tip("cam1", 4 * SEG_US) is None
    tips.committed("cam1", seg(7), is_latest=True)
    assert tips.after_tip("cam1", 8 * SEG_US) == seg(7)


def test_the_tip_only_moves_forward() -> None:
    tips = ChainTips()
    tips.committed("cam1", seg(7), is_latest=True)
    tips.committed("cam1", seg(4), is_latest=True)  # a late one: not the latest
    assert tips.after_tip("cam1", 8 * SEG_US) == seg(7)
    tips.committed("cam1", seg(8), is_latest=False)  # after the tip: the newest there is
    assert tips.after_tip("cam1", 9 * SEG_US) == seg(8)


def test_the_tips_are_bounded() -> None:
    tips = ChainTips(limit=1)
    tips.committed("cam1", seg(1), is_latest=True)
    tips.committed("cam2", seg(1), is_latest=True)
    assert tips.after_tip("cam1", 2 * SEG_US) is None  # forgotten: the catalog answers
    assert tips.after_tip("cam2", 2 * SEG_US) == seg(1)
