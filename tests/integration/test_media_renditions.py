"""The rendition cache on a real disk with the real converter: one conversion per segment
however many ask at once, LRU eviction within the byte bound, corrupt input remembered."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest

from controller.media.renditions import RenditionCache
from controller.media.transcode import TranscodeError, TranscodeStats, transcode_h264
from tests.integration.test_media_support import MadeSegment, corrupt, make_segments


@pytest.fixture(scope="module")
def segments(tmp_path_factory: pytest.TempPathFactory) -> list[MadeSegment]:
    return make_segments(tmp_path_factory.mktemp("rend"), 8.0, "libx265")


def fetcher(seg: MadeSegment):  # type: ignore[no-untyped-def]
    def fetch(dst: Path) -> None:
        shutil.copyfile(seg.path, dst)

    return fetch


def key(n: int) -> str:
    return f"{n:064x}"


def test_concurrent_requests_share_one_conversion(
    segments: list[MadeSegment], tmp_path: Path
) -> None:
    calls: list[str] = []

    def counted(src: Path, dst: Path, preset: str) -> TranscodeStats:
        calls.append(src.name)
        return transcode_h264(src, dst, preset)

    cache = RenditionCache(tmp_path, 64 << 20, 2, 5.0, convert=counted)
    bodies: list[bytes] = []
    lock = threading.Lock()

    def viewer() -> None:
        with cache.open(key(1), fetcher(segments[0])) as handle:
            data = handle.read()
        with lock:
            bodies.append(data)

    threads = [threading.Thread(target=viewer) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(bodies) == 6 and len(set(bodies)) == 1 and bodies[0][:1] == b"\x47"
    assert len(calls) == 1, calls
    assert cache.counters.conversions == 1 and cache.counters.hits == 5
    assert list((tmp_path / "tmp").iterdir()) == []  # no leftovers


def test_lru_eviction_keeps_the_cache_within_its_bound(
    segments: list[MadeSegment], tmp_path: Path
) -> None:
    probe = RenditionCache(tmp_path / "probe", 64 << 20, 1, 1.0)
    with probe.open(key(9), fetcher(segments[0])) as handle:
        size = len(handle.read())
    cache = RenditionCache(tmp_path / "c", int(size * 2.5), 1, 1.0)
    for n in range(3):
        cache.open(key(n), fetcher(segments[n])).close()
    assert not cache.cached(key(0)) and cache.cached(key(1)) and cache.cached(key(2))
    cache.open(key(1), fetcher(segments[1])).close()  # used again: now the newest
    cache.open(key(3), fetcher(segments[3])).close()
    assert cache.cached(key(1)) and cache.cached(key(3)) and not cache.cached(key(2))
    total = sum(p.stat().st_size for p in (tmp_path / "c").glob("*.ts"))
    assert total <= size * 2.5


def test_a_corrupt_segment_fails_once_and_is_remembered(
    segments: list[MadeSegment], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.ts"
    bad.write_bytes(corrupt(segments[1].data))
    attempts: list[int] = []

    def counted(src: Path, dst: Path, preset: str) -> TranscodeStats:
        attempts.append(1)
        return transcode_h264(src, dst, preset)

    cache = RenditionCache(tmp_path / "c", 64 << 20, 1, 1.0, convert=counted)

    def fetch(dst: Path) -> None:
        shutil.copyfile(bad, dst)

    for _ in range(3):
        with pytest.raises(TranscodeError, match="no picture could be decoded"):
            cache.open(key(7), fetch)
    assert len(attempts) == 1 and cache.counters.failures == 1
    assert not cache.cached(key(7))
    with cache.open(key(8), fetcher(segments[2])) as handle:  # the cache still works
        assert handle.read(1) == b"\x47"
