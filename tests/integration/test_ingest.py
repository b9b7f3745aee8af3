"""Ingest over real gRPC with mutual TLS, a real SQLite catalog and a local object store.

Each test starts its own controller in-process on a free loopback port. Every refusal is
checked three ways: the gRPC status and message, nothing committed (catalog and store), and
the server still serving (a good upload succeeds afterwards).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from controller.catalog import SegmentRow
from controller.clock import ManualClock, SystemClock
from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc
from tests.integration.controller_proc import (
    CHUNK,
    DeviceCreds,
    InProcessController,
    Segment,
    device_channel,
    ingest_stub,
    issue_device,
    prepare_data_dir,
    register,
    staged_size,
    status,
    upload,
)
from tests.support import wait_until
from tests.unit.test_ts_params import segment as ts_segment

IDLE_TIMEOUT_S = 30.0
MAX_SEGMENT = 4 * 1024 * 1024
MAX_UPLOADS = 3
LIMITS = {
    "max_segment_bytes": MAX_SEGMENT,
    "max_chunk_bytes": CHUNK,
    "max_concurrent_uploads": MAX_UPLOADS,
    "idle_timeout_s": IDLE_TIMEOUT_S,
}
GRPC = {"max_workers": 8, "max_message_bytes": CHUNK + 64 * 1024}
OK = ingest_pb2.UploadResponse.OUTCOME_COMMITTED
ALREADY = ingest_pb2.UploadResponse.OUTCOME_ALREADY_COMMITTED


@dataclass
class Rig:
    data: Path
    ctl: InProcessController
    dev1: DeviceCreds
    dev2: DeviceCreds
    stub: ingest_pb2_grpc.IngestStub  # dev1's
    channel: grpc.Channel
    clock: ManualClock

    def committed(self, segment_id: str) -> bool:
        return self.ctl.catalog.get_segment(segment_id) is not None

    def stored_keys(self) -> list[str]:
        assert self.ctl.controller is not None
        return list(self.ctl.controller.store.list_keys(""))

    def assert_nothing_committed(self, seg: Segment) -> None:
        assert self.ctl.catalog.get_segment(seg.segment_id) is None
        assert not [k for k in self.stored_keys() if seg.segment_id in k]

    def assert_serving(self) -> None:
        seg = Segment.make("cam2", size=50_000)
        assert upload(self.stub, seg).outcome == OK

    def query(self, seg: Segment, stub: ingest_pb2_grpc.IngestStub | None = None) -> int:
        reply = (stub or self.stub).QueryOffset(
            ingest_pb2.QueryOffsetRequest(segment_id=seg.segment_id, camera_id=seg.camera_id),
            timeout=10,
        )
        return -2 if reply.committed else reply.offset

    def idle(self) -> bool:
        assert self.ctl.controller is not None
        return self.ctl.controller.ingest.slots.in_use == 0


@contextmanager
def open_rig(tmp_path: Path) -> Iterator[Rig]:
    """A started controller with dev1 (cam1, cam2) and dev2 (cam9) registered."""
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    register(data, "dev1", ["cam1", "cam2"])
    register(data, "dev2", ["cam9"], site="village2")
    dev1 = issue_device(data, "dev1", tmp_path / "dev1")
    dev2 = issue_device(data, "dev2", tmp_path / "dev2")
    clock = ManualClock(SystemClock().now_us())
    ctl = InProcessController(data, {"ingest": LIMITS, "grpc": GRPC}, clock).start()
    channel = device_channel(ctl.port, dev1)
    try:
        yield Rig(data, ctl, dev1, dev2, ingest_stub(channel), channel, clock)
    finally:
        channel.close()
        ctl.stop()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    with open_rig(tmp_path) as r:
        yield r


def refused(call: object, code: grpc.StatusCode, words: str) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    got, details = status(info.value)
    assert got == code, details
    assert words in details, details
    return details


# --- the happy path, idempotency, conflicts -----------------------------------------------


def test_upload_commits_identical_bytes_and_a_catalog_row(rig: Rig) -> None:
    seg = Segment.make("cam1", size=700_000)
    reply = upload(rig.stub, seg)
    assert reply.outcome == OK and reply.chain_ok
    assert reply.sha256 == seg.sha256
    assert reply.object_key.startswith("wudu/village1/cam1/")
    assert reply.object_key.endswith(f"/{seg.segment_id}.ts")
    assert rig.ctl.controller is not None
    assert rig.ctl.controller.store.read_bytes(reply.object_key) == seg.data
    row = rig.ctl.catalog.get_segment(seg.segment_id)
    assert row is not None
    assert (row.device_id, row.size_bytes, row.sha256) == ("dev1", 700_000, seg.sha256.hex())
    assert row.object_key == reply.object_key and row.flag == ""
    assert staged_size(rig.data, "dev1", seg.segment_id) == -1  # staging cleaned up
    assert rig.query(seg) == -2  # committed


def test_reupload_of_a_committed_segment_is_a_success_that_changes_nothing(rig: Rig) -> None:
    seg = Segment.make("cam1")
    first = upload(rig.stub, seg)
    before = rig.ctl.catalog.get_segment(seg.segment_id)
    again = upload(rig.stub, seg)
    assert again.outcome == ALREADY
    assert (again.sha256, again.object_key) == (first.sha256, first.object_key)
    assert rig.ctl.catalog.get_segment(seg.segment_id) == before
    assert len([k for k in rig.stored_keys() if seg.segment_id in k]) == 1
    reply = rig.stub.QueryOffset(
        ingest_pb2.QueryOffsetRequest(segment_id=seg.segment_id, camera_id="cam1")
    )
    assert reply.committed and reply.sha256 == seg.sha256 and reply.offset == len(seg.data)


def test_same_id_with_other_bytes_is_a_conflict_recorded_as_tampering(rig: Rig) -> None:
    seg = Segment.make("cam1")
    key = upload(rig.stub, seg).object_key
    forged = Segment.make("cam1", segment_id=seg.segment_id, start_us=seg.start_us)
    refused(lambda: upload(rig.stub, forged), grpc.StatusCode.ALREADY_EXISTS, "tampering")
    conflicts = rig.ctl.catalog.conflicts("cam1")
    assert len(conflicts) == 1
    assert conflicts[0].existing_sha256 == seg.sha256.hex()
    assert conflicts[0].offered_sha256 == forged.sha256.hex()
    assert conflicts[0].device_id == "dev1"
    assert rig.ctl.controller is not None
    assert rig.ctl.controller.store.read_bytes(key) == seg.data  # original untouched
    rig.assert_serving()


def test_an_id_of_another_camera_is_refused_whether_or_not_it_exists(rig: Rig) -> None:
    seg = Segment.make("cam1")
    upload(rig.stub, seg)
    unused = Segment.make("cam1")
    for probe in (seg, unused):
        other = Segment.make("cam2", segment_id=probe.segment_id)
        other.data = probe.data  # even the same bytes: the id belongs to cam1
        up = refused(lambda o=other: upload(rig.stub, o), grpc.StatusCode.INVALID_ARGUMENT, "cam2")
        q = refused(lambda o=other: rig.query(o), grpc.StatusCode.INVALID_ARGUMENT, "namespace")
        assert "cam2-" in up and "cam2-" in q
    assert rig.ctl.catalog.conflicts() == []
    assert rig.ctl.catalog.count_segments("cam2") == 0


def test_a_legacy_cross_camera_row_is_a_conflict_naming_the_device_that_made_it(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    """A row committed in cam1's namespace for dev2's camera (before ids were scoped, by a
    squatting device) makes dev1's real segment a conflict; the log names dev2 as its cause."""
    seg = Segment.make("cam1")
    rig.ctl.catalog.add_segment(
        SegmentRow(
            segment_id=seg.segment_id,
            camera_id="cam9",
            device_id="dev2",
            start_us=seg.start_us,
            duration_us=seg.duration_us,
            end_us=seg.start_us + seg.duration_us,
            size_bytes=10,
            sha256="ab" * 32,
            object_key="legacy/squatted.ts",
        )
    )
    with caplog.at_level("WARNING", logger="vigil.ingest"):
        refused(lambda: upload(rig.stub, seg), grpc.StatusCode.ALREADY_EXISTS, "camera")
    assert "possible tampering by device dev2" in caplog.text, caplog.text
    assert [(c.camera_id, c.device_id) for c in rig.ctl.catalog.conflicts()] == [("cam1", "dev2")]


# --- resume ---------------------------------------------------------------------------------


def _held_stream(
    seg: Segment, chunks: int, release: threading.Event
) -> Iterator[ingest_pb2.UploadRequest]:
    """Header and `chunks` chunks, then block until `release` (a stalled or cut upload)."""
    yield ingest_pb2.UploadRequest(header=seg.header())
    for i in range(chunks):
        yield ingest_pb2.UploadRequest(chunk=seg.data[i * CHUNK : (i + 1) * CHUNK])
    release.wait(30)


def test_resume_after_a_broken_stream_sends_only_the_rest(rig: Rig) -> None:
    seg = Segment.make("cam1", size=5 * CHUNK + 1234)
    release = threading.Event()
    future = rig.stub.Upload.future(_held_stream(seg, 3, release), timeout=30)
    wait_until(lambda: rig.query(seg) == 3 * CHUNK, 10, "3 chunks staged")
    future.cancel()  # the link breaks (an HTTP/2 reset, as the agent does)
    release.set()
    wait_until(rig.idle, 10, "the broken stream to be released")
    assert rig.query(seg) == 3 * CHUNK
    sent: list[int] = []

    def rest() -> Iterator[ingest_pb2.UploadRequest]:
        for request in seg.requests(offset=3 * CHUNK):
            sent.append(len(request.chunk))
            yield request

    reply = rig.stub.Upload(rest(), timeout=30)
    assert reply.outcome == OK
    assert sum(sent) == len(seg.data) - 3 * CHUNK
    assert rig.ctl.controller is not None
    assert rig.ctl.controller.store.read_bytes(reply.object_key) == seg.data


def test_resume_from_a_wrong_offset_is_aborted_with_the_right_one(rig: Rig) -> None:
    seg = Segment.make("cam1", size=4 * CHUNK)
    refused(
        lambda: rig.stub.Upload(seg.requests(end=2 * CHUNK), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "fewer than declared",
    )
    assert rig.query(seg) == 2 * CHUNK
    refused(
        lambda: upload(rig.stub, seg, offset=3 * CHUNK),
        grpc.StatusCode.ABORTED,
        f"resume from {2 * CHUNK}",
    )
    assert rig.query(seg) == 2 * CHUNK  # the refusal kept what was held
    assert upload(rig.stub, seg, offset=CHUNK).outcome == OK  # lower is fine
    assert rig.ctl.catalog.get_segment(seg.segment_id) is not None


def test_a_second_stream_for_the_same_segment_is_aborted(rig: Rig) -> None:
    seg = Segment.make("cam1", size=3 * CHUNK)
    release = threading.Event()
    future = rig.stub.Upload.future(_held_stream(seg, 1, release), timeout=30)
    wait_until(lambda: rig.query(seg) == CHUNK, 10, "1 chunk staged")
    refused(lambda: upload(rig.stub, seg, offset=CHUNK), grpc.StatusCode.ABORTED, "another stream")
    future.cancel()
    release.set()
    wait_until(rig.idle, 10, "the first stream to be released")
    assert upload(rig.stub, seg, offset=CHUNK).outcome == OK


def test_idle_streams_are_cancelled_and_free_their_slot(rig: Rig) -> None:
    seg = Segment.make("cam1", size=3 * CHUNK)
    release = threading.Event()
    future = rig.stub.Upload.future(_held_stream(seg, 1, release), timeout=30)
    wait_until(lambda: rig.query(seg) == CHUNK, 10, "1 chunk staged")
    assert rig.ctl.controller is not None
    housekeeper = rig.ctl.controller.components[0]
    rig.clock.advance(IDLE_TIMEOUT_S + 1)
    housekeeper.run_once()  # type: ignore[attr-defined]
    wait_until(future.done, 10, "the idle stream to be cancelled")
    release.set()
    assert future.exception() is not None
    wait_until(rig.idle, 10, "the slot to be free")
    assert rig.query(seg) == CHUNK  # what arrived stays for a resume
    assert upload(rig.stub, seg, offset=CHUNK).outcome == OK


def test_abandoned_staging_is_swept_after_its_ttl(rig: Rig) -> None:
    seg = Segment.make("cam1", size=2 * CHUNK)
    refused(
        lambda: rig.stub.Upload(seg.requests(end=CHUNK), timeout=10),
        grpc.StatusCode.INVALID_ARGUMENT,
        "fewer",
    )
    assert rig.ctl.controller is not None
    ingest = rig.ctl.controller.ingest
    assert ingest.recover(max_age_s=3600) == 0
    assert rig.query(seg) == CHUNK
    rig.clock.advance(2 * 3600)
    assert ingest.recover(max_age_s=3600) == 1
    assert rig.query(seg) == 0


# --- the chain ------------------------------------------------------------------------------


def test_chain_links_gaps_and_breaks_are_flagged_in_the_catalog(rig: Rig) -> None:
    s1 = Segment.make("cam1", start_us=rig.clock.now_us() - 3_600_000_000)
    s2 = Segment.make("cam1", prev=s1)
    assert upload(rig.stub, s1).chain_ok
    assert upload(rig.stub, s2).chain_ok
    # s3 is back to back with s2 but names another predecessor: a break.
    s3 = Segment.make("cam1", prev=s2)
    s3.prev_sha256 = hashlib.sha256(b"forged").digest()
    reply = upload(rig.stub, s3)
    assert reply.outcome == OK and not reply.chain_ok
    # s5 names s4, which never arrived: a gap (stored, flagged).
    s4 = Segment.make("cam1", prev=s3)
    s5 = Segment.make("cam1", prev=s4)
    assert not upload(rig.stub, s5).chain_ok
    rows = {s.segment_id: rig.ctl.catalog.get_segment(s.segment_id) for s in (s1, s2, s3, s5)}
    assert {k: (r.chain_ok, r.flag) for k, r in rows.items() if r} == {
        s1.segment_id: (True, ""),
        s2.segment_id: (True, ""),
        s3.segment_id: (False, "chain_break"),
        s5.segment_id: (False, "gap"),
    }
    flags = {(f.segment_id, f.flag) for f in rig.ctl.catalog.flags("cam1")}
    assert flags == {(s3.segment_id, "chain_break"), (s5.segment_id, "gap")}
    # s4 arriving late links both ways: it is fine itself.
    assert upload(rig.stub, s4).chain_ok


def test_a_segment_contradicted_by_a_later_one_is_a_chain_break(rig: Rig) -> None:
    s1 = Segment.make("cam1", start_us=rig.clock.now_us() - 3_600_000_000)
    s2 = Segment.make("cam1", prev=s1)
    assert not upload(rig.stub, s2).chain_ok  # s1 not there yet: gap
    impostor = Segment.make("cam1", start_us=s1.start_us, segment_id="cam1-impostor")
    reply = upload(rig.stub, impostor)
    assert not reply.chain_ok
    row = rig.ctl.catalog.get_segment("cam1-impostor")
    assert row is not None and row.flag == "chain_break"
    assert upload(rig.stub, s1).outcome == OK  # the real one is still accepted


def test_a_store_failure_commits_nothing_and_the_retry_resends_nothing(rig: Rig) -> None:
    objects = rig.data / "objects"
    assert not objects.exists()
    objects.write_bytes(b"not a directory")  # the local store cannot create its tree
    seg = Segment.make("cam1", size=3 * CHUNK)
    refused(lambda: upload(rig.stub, seg), grpc.StatusCode.UNAVAILABLE, "object store")
    assert rig.ctl.catalog.get_segment(seg.segment_id) is None
    objects.unlink()
    assert rig.query(seg) == len(seg.data)  # every byte still staged
    reply = upload(rig.stub, seg, offset=len(seg.data))  # header only
    assert reply.outcome == OK
    assert rig.ctl.controller is not None
    assert rig.ctl.controller.store.read_bytes(reply.object_key) == seg.data


# --- healing, caches, and the adopted object ------------------------------------------------


def test_a_late_predecessor_clears_the_gap_flag_it_proves(rig: Rig) -> None:
    s1 = Segment.make("cam1", start_us=rig.clock.now_us() - 3_600_000_000)
    s2 = Segment.make("cam1", prev=s1)
    s3 = Segment.make("cam1", prev=s2)
    s4 = Segment.make("cam1", prev=s3)
    assert upload(rig.stub, s1).chain_ok
    assert not upload(rig.stub, s3).chain_ok  # s2 missing: a gap
    assert upload(rig.stub, s4).chain_ok
    row = rig.ctl.catalog.get_segment(s3.segment_id)
    assert row is not None and (row.flag, row.chain_ok) == ("gap", False)
    assert upload(rig.stub, s2).chain_ok  # the missing link arrives late
    row = rig.ctl.catalog.get_segment(s3.segment_id)
    assert row is not None and (row.flag, row.flag_detail, row.chain_ok) == ("", "", True)
    # the history still tells it was flagged once, and nothing else was
    assert [(f.segment_id, f.flag) for f in rig.ctl.catalog.flags("cam1")] == [
        (s3.segment_id, "gap")
    ]
    for seg in (s1, s2, s4):
        row = rig.ctl.catalog.get_segment(seg.segment_id)
        assert row is not None and row.flag == "" and row.chain_ok


def test_a_late_segment_does_not_clear_a_chain_break(rig: Rig) -> None:
    """A break may be about the flagged segment's own successor: only operators clear it."""
    s1 = Segment.make("cam1", start_us=rig.clock.now_us() - 3_600_000_000)
    s2 = Segment.make("cam1", prev=s1)
    s3 = Segment.make("cam1", prev=s2)
    s4 = Segment.make("cam1", prev=s3)
    s4.prev_sha256 = hashlib.sha256(b"forged").digest()
    assert upload(rig.stub, s1).chain_ok
    assert not upload(rig.stub, s4).chain_ok  # gap: s3 missing (s2 as well)
    assert not upload(rig.stub, s3).chain_ok  # s4 back to back names another: s3 breaks
    row = rig.ctl.catalog.get_segment(s3.segment_id)
    assert row is not None and row.flag == "chain_break" and not row.chain_ok
    assert upload(rig.stub, s2).chain_ok  # proves s3's link to s2, says nothing of s4
    row = rig.ctl.catalog.get_segment(s3.segment_id)
    assert row is not None and row.flag == "chain_break" and not row.chain_ok


def test_camera_registrations_are_seen_at_once_and_moves_within_the_ttl(rig: Rig) -> None:
    seg = Segment.make("cam-new", size=10_000)
    refused(lambda: upload(rig.stub, seg), grpc.StatusCode.NOT_FOUND, "unknown camera")
    rig.ctl.catalog.upsert_camera("cam-new", "dev1")
    assert upload(rig.stub, seg).outcome == OK  # an unknown camera is never cached
    rig.ctl.catalog.upsert_camera("cam-new", "dev2")  # moved to another device
    rig.clock.advance(11)  # past the 10 s the registration is trusted for
    moved = Segment.make("cam-new", size=10_000)
    refused(lambda: upload(rig.stub, moved), grpc.StatusCode.PERMISSION_DENIED, "not registered")
    rig.assert_nothing_committed(moved)


def test_the_stored_object_is_the_staged_file_with_its_hash_on_the_inode(rig: Rig) -> None:
    seg = Segment.make("cam1", size=3 * CHUNK + 17)
    reply = upload(rig.stub, seg)
    assert reply.outcome == OK
    assert rig.ctl.controller is not None
    store = rig.ctl.controller.store
    info = store.head(reply.object_key)
    assert info is not None and info.sha256_hex == seg.sha256.hex()
    assert info.size == len(seg.data) and store.read_bytes(reply.object_key) == seg.data
    path = rig.data / "objects" / reply.object_key
    assert path.stat().st_nlink == 1  # the staging name is gone, the inode stays
    assert staged_size(rig.data, "dev1", seg.segment_id) == -1  # staging deleted


def test_media_facts_of_each_segment_come_from_its_head_probed_once_per_change(rig: Rig) -> None:
    """Local store: the staged file's head is read for the media row; equal stream
    parameters reuse the camera's facts, a new picture size is probed (caches.ProbeMemo)."""
    first = Segment.make("cam1")
    first.data = ts_segment(shade=0)
    second = Segment.make("cam1", prev=first)
    second.data = ts_segment(shade=90)
    third = Segment.make("cam1", prev=second)
    third.data = ts_segment(width=640, height=360)
    for seg in (first, second, third):
        assert upload(rig.stub, seg).outcome == OK
    got = rig.ctl.catalog.segment_media([s.segment_id for s in (first, second, third)])
    facts = [
        (m.video_codec, m.width, m.height, m.frame_rate, m.probe_error)
        for m in (got[first.segment_id], got[second.segment_id], got[third.segment_id])
    ]
    assert facts == [
        ("h264", 320, 180, 25.0, ""),
        ("h264", 320, 180, 25.0, ""),
        ("h264", 640, 360, 25.0, ""),
    ]
