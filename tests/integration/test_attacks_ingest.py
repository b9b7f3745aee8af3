"""Attacks on ingest (issue 10, failures 1 and 2) against a real `vigil-controller serve`.

Two devices in different counties, each with its own city-CA client certificate: the victim
uploads real segments while the attacker (an authenticated device, so past mutual TLS) tries

1. to starve ingest: 20 upload streams that send a header and a chunk, then stall (each would
   hold a slot until the idle timeout), and dozens of abandoned partial uploads in staging;
2. to squat segment ids: commit ids in the victim's naming scheme (`{camera}-{start_us}`) on
   its own camera before the victim does, and ask QueryOffset whether the victim's ids exist.

Each test asserts the refusal, that nothing changed (catalog rows, stored objects), that the
victim's segments all arrive with matching hashes, and that the controller stayed alive.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from controller.clock import SystemClock
from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc
from tests.integration.controller_proc import (
    CHUNK,
    ControllerProcess,
    Segment,
    device_channel,
    ingest_stub,
    issue_device,
    prepare_data_dir,
    register,
    status,
    upload,
)
from tests.support import wait_until

MiB = 1024 * 1024
POOL = 10  # upload slots of the whole controller; 4 per device by default
INGEST = {
    "max_concurrent_uploads": POOL,
    "max_segment_bytes": 4 * MiB,
    "max_chunk_bytes": CHUNK,
}
GRPC = {"max_workers": 48, "max_message_bytes": CHUNK + 64 * 1024}
OK = ingest_pb2.UploadResponse.OUTCOME_COMMITTED
VICTIM, VICTIM_CAM = "nvr-wudu-001", "wd-cam-1"
ATTACKER, ATTACKER_CAM = "nvr-cx-001", "cx-cam-1"


@dataclass
class Rig:
    data: Path
    ctl: ControllerProcess
    victim: ingest_pb2_grpc.IngestStub
    attacker: ingest_pb2_grpc.IngestStub
    attacker_channel: grpc.Channel

    def rows(self, sql: str, *args: object) -> list[tuple[object, ...]]:
        with sqlite3.connect(self.data / "catalog.db") as db:
            return list(db.execute(sql, args).fetchall())

    def stored(self) -> dict[str, bytes]:
        """Every stored object (local store), path -> bytes."""
        root = self.data / "objects"
        if not root.is_dir():
            return {}
        return {
            str(p.relative_to(root)): p.read_bytes()
            for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        }

    def staged_bytes(self, device: str) -> int:
        root = self.data / "staging" / device
        return sum(p.stat().st_size for p in root.glob("*.part")) if root.is_dir() else 0

    def assert_alive(self) -> None:
        assert self.ctl.alive(), self.ctl.log_text()[-3000:]

    def assert_victim_stored(self, segs: list[Segment]) -> None:
        """Every victim segment has its row, for its camera and device, and its bytes stored."""
        objects = self.stored()
        for seg in segs:
            row = self.rows(
                "SELECT camera_id, device_id, sha256, object_key FROM segment WHERE segment_id = ?",
                seg.segment_id,
            )
            assert row, f"{seg.segment_id} never reached the city"
            camera, device, sha, key = row[0]
            assert (camera, device, sha) == (VICTIM_CAM, VICTIM, seg.sha256.hex())
            assert hashlib.sha256(objects[str(key)]).hexdigest() == seg.sha256.hex()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with _open_rig(tmp_path, {}) as r:
        yield r


@contextmanager
def _open_rig(tmp_path: Path, ingest: dict[str, object]) -> Iterator[Rig]:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    register(data, VICTIM, [VICTIM_CAM], county="wudu", site="v001")
    register(data, ATTACKER, [ATTACKER_CAM], county="chengxian", site="v002")
    victim = issue_device(data, VICTIM, tmp_path / "victim")
    attacker = issue_device(data, ATTACKER, tmp_path / "attacker")
    ctl = ControllerProcess(data, tmp_path, ingest=INGEST | ingest, grpc=GRPC).start()
    channels = [device_channel(ctl.port, victim), device_channel(ctl.port, attacker)]
    try:
        yield Rig(data, ctl, ingest_stub(channels[0]), ingest_stub(channels[1]), channels[1])
    finally:
        for channel in channels:
            channel.close()
        ctl.stop()


def _stalled(seg: Segment, release: threading.Event) -> Iterator[ingest_pb2.UploadRequest]:
    """A header and one chunk, then nothing until released (a slot held on purpose)."""
    yield ingest_pb2.UploadRequest(header=seg.header())
    yield ingest_pb2.UploadRequest(chunk=seg.data[:CHUNK])
    release.wait(120)


def _victim_segments(n: int, start_us: int) -> list[Segment]:
    """Chained segments named the way the agent names them: `{camera}-{start_us}`."""
    segs: list[Segment] = []
    for i in range(n):
        start = start_us + i * 10_000_000
        prev = segs[-1] if segs else None
        seg = Segment.make(VICTIM_CAM, size=200_000, start_us=start, prev=prev)
        seg.segment_id = f"{VICTIM_CAM}-{start}"
        segs.append(seg)
    return segs


# --- 1. one device starves all ingest -----------------------------------------------------


def test_a_device_holding_stalled_streams_cannot_starve_another_device(rig: Rig) -> None:
    release = threading.Event()
    stalls = [Segment.make(ATTACKER_CAM, size=2 * CHUNK) for _ in range(20)]
    futures = [rig.attacker.Upload.future(_stalled(s, release), timeout=120) for s in stalls]
    try:
        # The attacker's excess streams are refused at once; it keeps only its own share.
        wait_until(lambda: sum(f.done() for f in futures) >= 16, 15, "all but 4 streams refused")
        wait_until(lambda: rig.staged_bytes(ATTACKER) > 0, 15, "the attacker's streams to stall")
        refused = [f for f in futures if f.done()]
        for f in refused:
            assert f.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, f.details()
        held = 20 - len(refused)
        assert held <= 4, f"one device holds {held} of {POOL} upload slots"

        # Meanwhile every upload of the victim commits, several at once.
        segs = _victim_segments(6, SystemClock().now_us() - 3_600_000_000)
        with ThreadPoolExecutor(3) as pool:
            replies = list(pool.map(lambda s: upload(rig.victim, s), segs))
        for seg, reply in zip(segs, replies, strict=True):
            assert reply.outcome == OK and reply.sha256 == seg.sha256
        rig.assert_victim_stored(segs)
        assert rig.rows("SELECT count(*) FROM segment WHERE device_id = ?", ATTACKER) == [(0,)]
        rig.assert_alive()
    finally:
        release.set()
    for f in futures:
        f.cancel()


def test_stalled_streams_are_reaped_fast_when_the_pool_runs_short(tmp_path: Path) -> None:
    """A device allowed the whole pool (per-device share = pool) fills all but the reserve
    with stalled streams: once the pool is short, streams silent for the stall time are
    cancelled (not after the 120 s idle timeout) and the slots come back."""
    with _open_rig(tmp_path, {"max_uploads_per_device": POOL, "stall_timeout_s": 1.0}) as rig:
        release = threading.Event()
        stalls = [Segment.make(ATTACKER_CAM, size=2 * CHUNK) for _ in range(POOL)]
        futures = [rig.attacker.Upload.future(_stalled(s, release), timeout=120) for s in stalls]
        try:
            wait_until(lambda: sum(f.done() for f in futures) >= 2, 15, "the reserve refused")
            held = [f for f in futures if not f.done()]
            assert len(held) == POOL - 2  # the reserve stays free for other devices
            victim = _victim_segments(2, SystemClock().now_us() - 600_000_000)
            assert [upload(rig.victim, s).outcome for s in victim] == [OK, OK]
            # Silent past the stall time: the next refusal cancels them at once.
            wait_until(lambda: rig.staged_bytes(ATTACKER) >= (POOL - 2) * CHUNK, 15, "stall")
            time.sleep(1.5)
            late = Segment.make(ATTACKER_CAM, size=CHUNK)
            with pytest.raises(grpc.RpcError) as info:
                upload(rig.attacker, late)
            assert status(info.value)[0] == grpc.StatusCode.RESOURCE_EXHAUSTED
            wait_until(lambda: all(f.done() for f in held), 10, "stalled streams cancelled")
            assert all(f.code() == grpc.StatusCode.CANCELLED for f in held)
            # The slots are back: the attacker's own next upload commits (it only slowed itself).
            assert upload(rig.attacker, Segment.make(ATTACKER_CAM, size=CHUNK)).outcome == OK
            rig.assert_victim_stored(victim)
            rig.assert_alive()
        finally:
            release.set()


def test_abandoned_partial_uploads_are_bounded_per_device(rig: Rig) -> None:
    """40 uploads declaring 4 MiB that stop after 1 MiB: the attacker's staging stays bounded
    (the oldest partials of that device go), the victim's partial upload is untouched."""
    victim_part = Segment.make(VICTIM_CAM, size=2 * MiB)
    with pytest.raises(grpc.RpcError):
        rig.victim.Upload(victim_part.requests(end=MiB), timeout=30)
    for _ in range(40):
        seg = Segment.make(ATTACKER_CAM, size=4 * MiB)
        with pytest.raises(grpc.RpcError) as info:
            rig.attacker.Upload(seg.requests(end=MiB), timeout=30)
        code, _ = status(info.value)
        assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
    # Default per-device budget: 4 x max_segment_bytes (16 MiB here), not 40 MiB.
    assert rig.staged_bytes(ATTACKER) <= 16 * MiB, rig.staged_bytes(ATTACKER)
    assert rig.staged_bytes(VICTIM) == MiB
    reply = rig.victim.QueryOffset(
        ingest_pb2.QueryOffsetRequest(segment_id=victim_part.segment_id, camera_id=VICTIM_CAM),
        timeout=10,
    )
    assert reply.offset == MiB  # the victim resumes where it was
    assert upload(rig.victim, victim_part, offset=MiB).outcome == OK
    rig.assert_victim_stored([victim_part])
    assert rig.rows("SELECT count(*) FROM segment WHERE device_id = ?", ATTACKER) == [(0,)]
    rig.assert_alive()


# --- 2. segment-id squatting ----------------------------------------------------------------


def test_a_device_cannot_squat_another_devices_segment_ids(rig: Rig) -> None:
    segs = _victim_segments(6, SystemClock().now_us() - 7_200_000_000)
    # The victim's first segment is committed; the attacker probes it and an unused id.
    assert upload(rig.victim, segs[0]).outcome == OK
    before_rows = rig.rows("SELECT segment_id, camera_id, device_id, sha256 FROM segment")
    before_objects = rig.stored()

    answers = []
    for seg in (segs[0], segs[1]):
        with pytest.raises(grpc.RpcError) as info:
            rig.attacker.QueryOffset(
                ingest_pb2.QueryOffsetRequest(segment_id=seg.segment_id, camera_id=ATTACKER_CAM),
                timeout=10,
            )
        code, details = status(info.value)
        answers.append((code, details.replace(seg.segment_id, "<id>")))
    # No existence oracle: a committed id and an unused one get the very same answer.
    assert answers[0] == answers[1], answers
    assert answers[0][0] == grpc.StatusCode.INVALID_ARGUMENT, answers

    # The attacker commits ids in the victim's scheme on its own camera: refused, each one.
    for seg in segs[1:]:
        fake = Segment.make(ATTACKER_CAM, size=50_000, start_us=seg.start_us)
        fake.segment_id = seg.segment_id
        with pytest.raises(grpc.RpcError) as info:
            upload(rig.attacker, fake)
        code, details = status(info.value)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, details
        assert ATTACKER_CAM in details and VICTIM not in details, details
    assert rig.rows("SELECT segment_id, camera_id, device_id, sha256 FROM segment") == before_rows
    assert rig.stored() == before_objects
    assert rig.rows("SELECT count(*) FROM segment_conflict") == [(0,)]

    # The victim's real segments all arrive, with their hashes, no conflict.
    for seg in segs[1:]:
        reply = upload(rig.victim, seg)
        assert reply.outcome == OK and reply.sha256 == seg.sha256 and reply.chain_ok
    rig.assert_victim_stored(segs)
    assert rig.rows("SELECT count(*) FROM segment_conflict") == [(0,)]
    assert rig.rows("SELECT count(*) FROM segment WHERE device_id = ?", ATTACKER) == [(0,)]
    log = rig.ctl.log_text()
    assert "possible tampering" not in log
    rig.assert_alive()
