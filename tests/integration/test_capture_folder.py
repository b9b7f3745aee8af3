"""Folder sources (NVR recordings, handheld clips) into a real buffer, with real media files."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import pytest

from edge_agent.capture import CaptureManager, CaptureSettings, SegmentWriter
from edge_agent.clock import ManualClock, SystemClock
from edge_agent.config import CameraConfig
from edge_agent.model import AgentEvent, SegmentFlag, SegmentInfo
from edge_agent.segmenter import CutPolicy
from edge_agent.store import SegmentBuffer
from tests.integration.media import (
    Clip,
    probe,
    set_mtime,
    truncate,
    write_garbage,
    write_h264,
    write_other_codec,
)
from tests.support import wait_until
from vigil_camsim.handheld import HandheldConfig, HandheldEmulator

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
S = 1_000_000


class Rig:
    """A buffer, folders and a capture manager in tmp_path."""

    def __init__(self, root: Path, buffer_root: Path | None = None) -> None:
        self.root = root
        self.state = root / "state"
        self.buffer = SegmentBuffer.open(buffer_root or root / "buffer", 10**9, SystemClock())
        self.events: list[AgentEvent] = []
        self.manager: CaptureManager | None = None

    def folder(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(exist_ok=True)
        return path

    def start(self, *cameras: CameraConfig) -> CaptureManager:
        settings = CaptureSettings(state_dir=self.state, folder_poll_s=0.05, backoff_cap_s=1)
        self.manager = CaptureManager(
            cameras, self.buffer, SystemClock(), settings, self.events.append
        )
        self.manager.start()
        return self.manager

    def stop(self) -> None:
        if self.manager is not None:
            self.manager.stop()
            self.manager = None

    def ledger(self, camera_id: str) -> dict[str, str]:
        try:
            data = json.loads((self.state / f"{camera_id}.json").read_text())
        except FileNotFoundError:
            return {}
        return {name: entry["outcome"] for name, entry in data["files"].items()}

    def wait_handled(self, camera_id: str, names: set[str], timeout: float = 30) -> None:
        wait_until(lambda: names <= set(self.ledger(camera_id)), timeout, f"{camera_id}: {names}")

    def drop(self, folder: Path, name: str, clips: list[Clip]) -> Path:
        """Write a recording elsewhere and move it in whole, as an NVR finishing a file does
        (with settle_seconds=0 a file written in place could be taken half-written)."""
        staged = write_h264(self.root / f"staged-{name}", clips)
        os.replace(staged, folder / name)
        return folder / name

    def segments(self, camera_id: str) -> list[SegmentInfo]:
        return self.buffer.segments(camera_id)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.stop()
    r.buffer.close()


def nvr(camera_id: str, path: Path) -> CameraConfig:
    return CameraConfig(
        id=camera_id,
        kind="nvr_folder",
        path=str(path),
        segment_seconds=2,
        settle_seconds=0,
        timezone="UTC",  # these names are written in UTC (the default is Asia/Shanghai)
    )


def assert_playable(rig: Rig, segments: list[SegmentInfo]) -> None:
    for seg in segments:
        facts = probe(rig.buffer.path_of(seg))
        assert facts["first_key"] is True, seg
        assert facts["codec"] == "h264"
        assert facts["frames"] == round(seg.duration_us / 40_000), seg


def assert_no_overlap(segments: list[SegmentInfo]) -> None:
    ordered = sorted(segments, key=lambda s: s.start_us)
    for a, b in zip(ordered, ordered[1:], strict=False):
        assert b.start_us >= a.end_us, (a, b)


def test_nvr_recordings_become_keyframe_segments_that_tile_time(rig: Rig) -> None:
    folder = rig.folder("nvr")
    write_h264(folder / "ch1_20260101T000000.ts", [Clip(frames=150)])  # 6 s
    write_h264(folder / "ch1_20260101T000006.mp4", [Clip(frames=150)])  # continues it
    write_h264(folder / "ch1_20260101T000100.ts", [Clip(frames=75)])  # after 48 s of nothing
    rig.start(nvr("n1", folder))
    rig.wait_handled("n1", {p.name for p in folder.iterdir()})
    segs = rig.segments("n1")
    assert [(s.start_us - T0) // 1000 for s in segs] == [
        0,
        2000,
        4000,
        6000,
        8000,
        10000,
        60000,
        62000,
    ]
    assert [s.duration_us // 1000 for s in segs] == [2000] * 7 + [1000]
    assert segs[6].flags == SegmentFlag.DISCONTINUITY
    assert all(s.flags == SegmentFlag.NONE for s in segs[:6])
    gaps = rig.buffer.gaps("n1")
    assert [(g.start_us - T0, g.end_us - T0, g.reason) for g in gaps] == [
        (12 * S, 60 * S, "no recording in the NVR folder")
    ]
    covered = sum(s.duration_us for s in segs) + sum(g.end_us - g.start_us for g in gaps)
    assert covered == segs[-1].end_us - segs[0].start_us
    assert_playable(rig, segs)
    assert rig.buffer.verify_chain("n1", check_files=True) == []


def test_bad_files_are_refused_by_name_and_capture_goes_on(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    folder, other = rig.folder("nvr"), rig.folder("other")
    good = write_h264(folder / "a_20260101T000000.ts", [Clip(frames=100)])
    write_h264(other / "b_20260101T000000.ts", [Clip(frames=100)])
    rig.start(nvr("n1", folder), nvr("n2", other))
    rig.wait_handled("n1", {good.name})
    before = rig.segments("n1")
    assert len(before) == 2

    src = write_h264(rig.root / "src.ts", [Clip(frames=125)])
    mp4 = write_h264(rig.root / "src.mp4", [Clip(frames=50)])
    bad = {
        "c_20260101T000100.ts": lambda p: write_garbage(p),
        "d_20260101T000200.ts": lambda p: p.write_bytes(b""),
        "e_20260101T000300.mp4": lambda p: write_other_codec(p, "mpeg4"),
        "f_20260101T000400.mkv": lambda p: write_other_codec(p, "mjpeg"),
        "g_20260101T000500.mp4": lambda p: truncate(mp4, p, 0.5),
        "h_20260101T000600.ts": lambda p: truncate(src, p, 0.7),
    }
    for n, (name, make) in enumerate(bad.items()):
        make(rig.root / name)
        set_mtime(rig.root / name, 100 - n)  # handled in this order
        os.replace(rig.root / name, folder / name)
    last = rig.drop(folder, "z_20260101T000700.ts", [Clip(frames=50)])
    rig.wait_handled("n1", {*bad, last.name})

    outcomes = rig.ledger("n1")
    assert {n: outcomes[n] for n in bad} == {
        "c_20260101T000100.ts": "rejected",
        "d_20260101T000200.ts": "rejected",
        "e_20260101T000300.mp4": "rejected",
        "f_20260101T000400.mkv": "rejected",
        "g_20260101T000500.mp4": "rejected",
        "h_20260101T000600.ts": "done",  # the part before the cut is kept
    }
    errors = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    for name in bad:
        assert f"camera n1: {folder / name}" in errors, name
    assert "sends mpeg4 video; only H.264" in errors
    assert "sends mjpeg video" in errors
    assert "is empty" in errors
    assert "is truncated" in errors

    segs = rig.segments("n1")
    assert segs[:2] == before  # what was buffered is untouched
    truncated = [s for s in segs if T0 + 360 * S <= s.start_us < T0 + 420 * S]
    assert truncated and truncated[-1].flags & SegmentFlag.TRUNCATED
    assert segs[-1].start_us == T0 + 420 * S  # the good file after the bad ones
    assert_playable(rig, segs)
    assert rig.buffer.verify_chain("n1", check_files=True) == []
    assert len(rig.segments("n2")) == 2  # the other camera never noticed


def test_restart_neither_reingests_nor_duplicates(rig: Rig) -> None:
    folder = rig.folder("nvr")
    write_h264(folder / "a_20260101T000000.ts", [Clip(frames=150)])
    rig.start(nvr("n1", folder))
    rig.wait_handled("n1", {"a_20260101T000000.ts"})
    rig.stop()
    first = rig.segments("n1")
    assert len(first) == 3

    # Restart with the ledger: a new file is taken, the old one is not read again.
    rig.drop(folder, "b_20260101T000006.ts", [Clip(frames=50)])
    rig.start(nvr("n1", folder))
    rig.wait_handled("n1", {"b_20260101T000006.ts"})
    rig.stop()
    second = rig.segments("n1")
    assert second[:3] == first and len(second) == 4
    assert second[3].start_us == first[2].end_us  # continues the timeline across the restart
    assert second[3].flags == SegmentFlag.NONE

    # Restart with the ledger lost: both files are read again, nothing is duplicated.
    (rig.state / "n1.json").unlink()
    rig.start(nvr("n1", folder))
    rig.wait_handled("n1", {"a_20260101T000000.ts", "b_20260101T000006.ts"})
    assert rig.segments("n1") == second
    assert rig.buffer.verify_chain("n1") == []


def test_a_file_cut_short_by_a_crash_resumes_after_what_is_buffered(rig: Rig) -> None:
    folder = rig.folder("nvr")
    path = write_h264(folder / "a_20260101T000000.ts", [Clip(frames=250)])  # 10 s
    # A previous run committed two segments of this file, then died (no ledger entry).
    writer = SegmentWriter("n1", rig.buffer, CutPolicy.for_seconds(2))
    with av.open(str(path)) as c:
        stream = c.streams.video[0]
        writer.begin(stream, T0, live=False)
        for packet in c.demux(stream):
            if packet.size:
                writer.feed(packet)
            if writer.segments_committed == 2:
                break
    writer.cancel()  # the killed run's unfinished segment never reached the index
    crashed = rig.segments("n1")
    assert [s.start_us - T0 for s in crashed] == [0, 2 * S]

    rig.start(nvr("n1", folder))
    rig.wait_handled("n1", {path.name})
    segs = rig.segments("n1")
    assert segs[:2] == crashed
    assert [s.start_us - T0 for s in segs] == [0, 2 * S, 4 * S, 6 * S, 8 * S]
    assert_no_overlap(segs)
    assert rig.buffer.gaps("n1") == []


def test_handheld_clips_are_separate_recordings(rig: Rig) -> None:
    folder = rig.folder("phone")
    write_h264(folder / "clip1.mp4", [Clip(frames=75)])
    set_mtime(folder / "clip1.mp4", 600)
    write_h264(folder / "clip2.mp4", [Clip(frames=50)])
    set_mtime(folder / "clip2.mp4", 300)
    cam = CameraConfig(
        id="h1", kind="handheld_folder", path=str(folder), segment_seconds=2, settle_seconds=0
    )
    rig.start(cam)
    rig.wait_handled("h1", {"clip1.mp4", "clip2.mp4"})
    segs = rig.segments("h1")
    assert [s.duration_us for s in segs] == [2 * S, 1 * S, 2 * S]
    assert segs[2].flags & SegmentFlag.DISCONTINUITY  # a clip starts its own timeline
    mtime2 = (folder / "clip2.mp4").stat().st_mtime_ns // 1000
    assert segs[2].start_us == mtime2 - 2 * S  # no name time, no tag: mtime minus duration
    assert rig.buffer.gaps("h1") == []  # time between clips is not a fault
    assert_playable(rig, segs)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 2 MiB tmpfs: a disk that really fills up."""
    if os.geteuid() != 0:
        pytest.fail("the full-disk test mounts a tmpfs and must run as root", pytrace=False)
    mount = tmp_path / "tiny"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=True)


def test_full_disk_drops_new_segments_keeps_old_ones_and_recovers(
    tmp_path: Path, tiny_disk: Path, caplog: pytest.LogCaptureFixture
) -> None:
    rig = Rig(tmp_path, buffer_root=tiny_disk / "buffer")
    folder = rig.folder("nvr")
    try:
        write_h264(folder / "a_20260101T000000.ts", [Clip(frames=100)])
        rig.start(nvr("n1", folder))
        rig.wait_handled("n1", {"a_20260101T000000.ts"})
        kept = rig.segments("n1")
        assert len(kept) == 2

        free = os.statvfs(tiny_disk).f_bavail * os.statvfs(tiny_disk).f_frsize
        filler = tiny_disk / "filler"
        filler.write_bytes(b"\0" * max(0, free - 8 * 1024))
        rig.drop(folder, "b_20260101T000004.ts", [Clip(frames=250)])
        rig.wait_handled("n1", {"b_20260101T000004.ts"})
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert any("camera n1" in e and "No space left" in e for e in errors), errors
        assert rig.segments("n1")[:2] == kept
        assert rig.buffer.verify_chain("n1", check_files=True) == []

        filler.unlink()  # space comes back: capture carries on without a restart
        rig.drop(folder, "c_20260101T000100.ts", [Clip(frames=50)])
        rig.wait_handled("n1", {"c_20260101T000100.ts"})
        segs = rig.segments("n1")
        assert segs[-1].start_us == T0 + 60 * S
        assert_no_overlap(segs)
        assert rig.buffer.verify_chain("n1", check_files=True) == []
    finally:
        rig.stop()
        rig.buffer.close()


def test_clips_from_the_handheld_emulator(rig: Rig) -> None:
    folder = rig.folder("drop")
    clock = ManualClock(T0)
    phone = HandheldEmulator(HandheldConfig(drop_dir=folder, clip_seconds=2.0), clock)
    good1 = phone.write_clip()
    clock.advance(30)
    bad1 = phone.write_clip("truncated")
    clock.advance(30)
    bad2 = phone.write_clip("garbage")
    clock.advance(30)
    good2 = phone.write_clip()
    cam = CameraConfig(
        id="hh", kind="handheld_folder", path=str(folder), segment_seconds=2, settle_seconds=0
    )
    rig.start(cam)
    rig.wait_handled("hh", {p.name for p in (good1, bad1, bad2, good2)})
    assert rig.ledger("hh") == {
        good1.name: "done",
        bad1.name: "rejected",
        bad2.name: "rejected",
        good2.name: "done",
    }
    segs = rig.segments("hh")
    assert [(s.start_us - T0, s.duration_us) for s in segs] == [(0, 2 * S), (90 * S, 2 * S)]
    assert segs[1].flags & SegmentFlag.DISCONTINUITY
    assert rig.buffer.gaps("hh") == []
    assert_playable(rig, segs)


def test_mp4_container_segments_decode_on_their_own(rig: Rig) -> None:
    folder = rig.folder("nvr")
    write_h264(folder / "a_20260101T000000.ts", [Clip(frames=100)])
    cam = CameraConfig(
        id="m1",
        kind="nvr_folder",
        path=str(folder),
        segment_seconds=2,
        settle_seconds=0,
        container="mp4",
        timezone="UTC",
    )
    rig.start(cam)
    rig.wait_handled("m1", {"a_20260101T000000.ts"})
    segs = rig.segments("m1")
    assert [s.container for s in segs] == ["mp4", "mp4"]
    assert all(rig.buffer.path_of(s).suffix == ".mp4" for s in segs)
    assert_playable(rig, segs)
