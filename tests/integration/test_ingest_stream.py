"""Ingest streaming into S3 (a real SeaweedFS): multipart uploads as the shared staging.

The controller writes no staging file for an S3 store: a segment up to one part is one
streamed PUT the store verifies against the header's SHA-256; a larger one is a multipart
upload whose parts the store verifies one by one, recorded in the ledger so any controller
resumes it. These tests drive the real controller (in this process, or `vigil-controller
serve` killed with SIGKILL) with a client that pauses its stream at chosen points, so each
fault lands where the test says without sleeping.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from sqlalchemy import text

from controller.catalog import make_engine
from controller.clock import SystemClock
from controller.ingest.ledger import VERIFIED, Ledger, UploadRow
from controller.retention.uploads import sweep_uploads
from controller.storage import open_store
from edge_agent.store import SegmentBuffer
from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc
from tests.fixtures.seaweedfs import SeaweedFS
from tests.integration.controller_proc import (
    ControllerProcess,
    DeviceCreds,
    InProcessController,
    Segment,
    database_url,
    device_channel,
    ingest_stub,
    issue_device,
    prepare_data_dir,
    register,
    status,
    upload,
)
from tests.integration.test_uplink_support import Agent, uplink_config, write_segments
from tests.support import wait_until

MiB = 1024 * 1024
PART = 5 * MiB
CHUNK = 256 * 1024
OK = ingest_pb2.UploadResponse.OUTCOME_COMMITTED
ACCEPTED = ingest_pb2.UploadResponse.OUTCOME_ACCEPTED


@dataclass
class Rig:
    data: Path
    dev: DeviceCreds
    weed: SeaweedFS
    bucket: str
    url: str

    def s3(self) -> Any:
        return self.weed.client()

    def keys(self) -> list[str]:
        listing = self.s3().list_objects_v2(Bucket=self.bucket)
        return [o["Key"] for o in listing.get("Contents", [])]

    def uploads(self) -> list[str]:
        listing = self.s3().list_multipart_uploads(Bucket=self.bucket)
        return [u["UploadId"] for u in listing.get("Uploads", [])]

    def object(self, key: str) -> bytes:
        return bytes(self.s3().get_object(Bucket=self.bucket, Key=key)["Body"].read())

    def ledger(self) -> Ledger:
        return Ledger(make_engine(database_url(self.data)))


@pytest.fixture
def rig(tmp_path: Path, seaweedfs: SeaweedFS) -> Iterator[Rig]:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    register(data, "dev1", ["cam1"])
    dev = issue_device(data, "dev1", tmp_path / "dev1")
    bucket = seaweedfs.new_bucket_name()
    url = (
        f"s3://{bucket}?endpoint={seaweedfs.endpoint_url}&access_key={seaweedfs.access_key}"
        f"&secret_key={seaweedfs.secret_key}&part_size_mib=5"
    )
    try:
        yield Rig(data, dev, seaweedfs, bucket, url)
    finally:
        seaweedfs.start()  # a test that stopped it and failed


class Paused:
    """A request stream that stops after `after` bytes (or at the end, before half-closing)
    until `release` is set; `end` then decides: finish the stream or just return."""

    def __init__(self, seg: Segment, offset: int, after: int, finish: bool = True) -> None:
        self.seg = seg
        self.offset = offset
        self.after = after
        self.finish = finish
        self.reached = threading.Event()
        self.release = threading.Event()
        self.sent = 0

    def __iter__(self) -> Iterator[ingest_pb2.UploadRequest]:
        yield ingest_pb2.UploadRequest(header=self.seg.header(self.offset))
        for pos in range(self.offset, len(self.seg.data), CHUNK):
            if self.sent >= self.after and not self.reached.is_set():
                self.reached.set()
                self.release.wait(60)
                if not self.finish:
                    return
            chunk = self.seg.data[pos : pos + CHUNK]
            yield ingest_pb2.UploadRequest(chunk=chunk)
            self.sent += len(chunk)
        if not self.reached.is_set():
            self.reached.set()
            self.release.wait(60)


def _offset(stub: ingest_pb2_grpc.IngestStub, seg: Segment) -> ingest_pb2.QueryOffsetResponse:
    request = ingest_pb2.QueryOffsetRequest(segment_id=seg.segment_id, camera_id=seg.camera_id)
    return stub.QueryOffset(request, timeout=60, wait_for_ready=True)


def _row(rig: Rig, seg: Segment) -> UploadRow | None:
    return rig.ledger().get(seg.segment_id)


def _parts_stored(rig: Rig, seg: Segment, n: int) -> bool:
    row = _row(rig, seg)
    return row is not None and len(row.parts) >= n


def test_kill_9_mid_upload_resumes_on_another_port_complete_once(rig: Rig, tmp_path: Path) -> None:
    seg = Segment.make("cam1", size=2 * PART + 300_000)  # three parts
    first = ControllerProcess(rig.data, tmp_path, storage_url=rig.url).start()
    channel = device_channel(first.port, rig.dev)
    try:
        stream = Paused(seg, 0, PART + 2 * CHUNK, finish=False)
        future = ingest_stub(channel).Upload.future(iter(stream), timeout=60)
        wait_until(stream.reached.is_set, 30, "the stream to pause")
        wait_until(lambda: _parts_stored(rig, seg, 1), 30, "part 1 in the store")
        first.kill9()
        stream.release.set()
        with pytest.raises(grpc.RpcError):
            future.result(timeout=30)
    finally:
        channel.close()
        first.stop()
    second = ControllerProcess(rig.data, tmp_path, storage_url=rig.url).start()
    assert second.port != first.port
    channel = device_channel(second.port, rig.dev)
    try:
        stub = ingest_stub(channel)
        held = _offset(stub, seg)
        assert not held.committed and held.offset == PART
        rest = Paused(seg, held.offset, len(seg.data))
        rest.release.set()
        reply = stub.Upload(iter(rest), timeout=60)
        assert reply.outcome == OK
        assert rest.sent == len(seg.data) - PART  # nothing re-sent
        assert upload(stub, seg).outcome == ingest_pb2.UploadResponse.OUTCOME_ALREADY_COMMITTED
    finally:
        channel.close()
        second.stop()
    assert rig.keys() == [reply.object_key]
    assert rig.object(reply.object_key) == seg.data
    head = rig.s3().head_object(Bucket=rig.bucket, Key=reply.object_key, ChecksumMode="ENABLED")
    assert head["Metadata"]["sha256"] == hashlib.sha256(seg.data).hexdigest()
    assert head.get("ChecksumSHA256", "").endswith("-3")  # three parts, each checked by the store
    assert rig.uploads() == []
    assert _row(rig, seg) is None
    engine = make_engine(database_url(rig.data))
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM segment WHERE camera_id = 'cam1'")).scalar()
    assert rows == 1


@pytest.mark.parametrize("size", [300_000, PART + 400_000], ids=["single-put", "multipart"])
def test_a_wrong_hash_is_data_loss_and_leaves_nothing(rig: Rig, size: int) -> None:
    seg = Segment.make("cam1", size=size)
    with InProcessController(rig.data, {"storage_url": rig.url}) as ctl:
        channel = device_channel(ctl.port, rig.dev)
        try:
            stub = ingest_stub(channel)
            wrong = hashlib.sha256(b"other bytes").digest()
            with pytest.raises(grpc.RpcError) as info:
                stub.Upload(seg.requests(sha256=wrong), timeout=60)
            code, details = status(info.value)
            assert code == grpc.StatusCode.DATA_LOSS, details
            assert ctl.catalog.get_segment(seg.segment_id) is None
            assert _offset(stub, seg).offset == 0
        finally:
            channel.close()
    assert rig.keys() == []
    assert rig.uploads() == []
    assert _row(rig, seg) is None


def test_store_stopped_mid_upload_is_unavailable_then_resumes(rig: Rig) -> None:
    seg = Segment.make("cam1", size=2 * PART + 100_000)
    with InProcessController(rig.data, {"storage_url": rig.url}) as ctl:
        channel = device_channel(ctl.port, rig.dev)
        try:
            stub = ingest_stub(channel)
            stream = Paused(seg, 0, PART + CHUNK)
            future = stub.Upload.future(iter(stream), timeout=60)
            wait_until(stream.reached.is_set, 30, "the stream to pause")
            wait_until(lambda: _parts_stored(rig, seg, 1), 30, "part 1 in the store")
            rig.weed.stop()
            try:
                stream.release.set()
                with pytest.raises(grpc.RpcError) as info:
                    future.result(timeout=60)
                assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
                assert ctl.catalog.get_segment(seg.segment_id) is None
            finally:
                rig.weed.start()
            assert rig.keys() == []
            held = _offset(stub, seg)
            assert not held.committed and held.offset == PART
            rest = Paused(seg, held.offset, len(seg.data))
            rest.release.set()
            assert stub.Upload(iter(rest), timeout=60).outcome == OK
            assert rest.sent == len(seg.data) - PART
        finally:
            channel.close()
    assert rig.uploads() == []
    assert len(rig.keys()) == 1 and rig.object(rig.keys()[0]) == seg.data


def test_abandoned_uploads_are_bounded_and_aborted_by_the_sweep(rig: Rig) -> None:
    limit = 3
    sections = {"storage_url": rig.url, "ingest": {"max_staged_uploads_per_device": limit}}
    segs = [Segment.make("cam1", size=2 * PART + 100_000) for _ in range(6)]
    with InProcessController(rig.data, sections) as ctl:
        channel = device_channel(ctl.port, rig.dev)
        try:
            stub = ingest_stub(channel)
            for seg in segs:
                stream = Paused(seg, 0, PART + CHUNK, finish=False)
                future = stub.Upload.future(iter(stream), timeout=60)
                wait_until(lambda s=seg: _parts_stored(rig, s, 1), 30, "part 1 in the store")
                future.cancel()  # the device walks away, its parts stay
                stream.release.set()
                assert len(rig.ledger().device_rows("dev1")) <= limit
                wait_until(lambda: len(rig.uploads()) <= limit, 10, "older uploads aborted")
        finally:
            channel.close()
    assert len(rig.uploads()) == limit
    # One more the ledger never heard of (a controller killed between create and record).
    rig.s3().create_multipart_upload(Bucket=rig.bucket, Key="cam1/orphan.ts")
    store = open_store(rig.url)
    now = SystemClock().now_us()
    report = sweep_uploads(store, rig.ledger(), now, max_age_s=3600.0)
    assert report.aborted == 0 and report.orphans == 0  # young: kept for resume
    report = sweep_uploads(store, rig.ledger(), now + 7200 * 1_000_000, max_age_s=3600.0)
    assert report.errors == []
    assert report.aborted == limit and report.orphans == 1
    assert rig.uploads() == [] and rig.ledger().device_rows("dev1") == []
    assert rig.keys() == []


def test_store_down_after_verification_is_committed_later_and_never_evicted_as_unsent(
    rig: Rig, tmp_path: Path
) -> None:
    with InProcessController(rig.data, {"storage_url": rig.url}) as ctl:
        buffer = SegmentBuffer.open(tmp_path / "agent", 2 * PART + 2 * MiB, SystemClock())
        try:
            (info,) = write_segments(buffer, "cam1", 1, size=PART + 200_000, jitter=False)
            seg = Segment(
                info.segment_id,
                "cam1",
                buffer.path_of(info).read_bytes(),
                info.start_us,
                bytes.fromhex(info.prev_sha256) if info.prev_sha256 else b"",
                info.duration_us,
            )
            channel = device_channel(ctl.port, rig.dev)
            try:
                # Every byte reaches the store; it goes down before the upload completes.
                stream = Paused(seg, 0, len(seg.data))
                future = ingest_stub(channel).Upload.future(iter(stream), timeout=60)
                wait_until(stream.reached.is_set, 30, "every byte sent")
                wait_until(lambda: _parts_stored(rig, seg, 2), 30, "both parts in the store")
                rig.weed.stop()
                stream.release.set()
                assert future.result(timeout=60).outcome == ACCEPTED
            finally:
                channel.close()
            row = _row(rig, seg)
            assert row is not None and row.state == VERIFIED
            assert ctl.catalog.get_segment(seg.segment_id) is None
            # The agent's own uploader (store still down) learns it is safe, and marks it so.
            with Agent(buffer, uplink_config(ctl.port, rig.dev)) as agent:
                wait_until(lambda: agent.unsent() == 0, 30, "the segment marked safe")
                assert agent.uploader.stats().committed == 1
            # Recording goes on: the buffer must evict; the city holds this one, no loss.
            write_segments(buffer, "cam1", 3, size=PART, jitter=False)
            evicted = buffer.evictions(only_unreported=False)
            mine = [e for e in evicted if e.segment_id == seg.segment_id]
            assert mine and mine[0].was_uploaded  # not a loss
            assert evicted[0].segment_id == seg.segment_id  # and it went first
        finally:
            buffer.close()
            rig.weed.start()
        wait_until(
            lambda: ctl.catalog.get_segment(seg.segment_id) is not None,
            30,
            "the commit queue to commit it",
        )
        committed = ctl.catalog.get_segment(seg.segment_id)
    assert committed is not None and committed.sha256 == hashlib.sha256(seg.data).hexdigest()
    assert rig.object(committed.object_key) == seg.data
    assert rig.uploads() == [] and _row(rig, seg) is None


def test_the_agent_rides_out_a_store_outage_mid_upload(rig: Rig, tmp_path: Path) -> None:
    """The real agent (buffer, client, uploader) uploads a three-part segment, paced; the
    store stops after part 1: the agent hears UNAVAILABLE and keeps the segment unsent; once
    the store is back it resumes from the stored part and the segment is committed once."""
    with InProcessController(rig.data, {"storage_url": rig.url}) as ctl:
        buffer = SegmentBuffer.open(tmp_path / "agent", 64 * MiB, SystemClock())
        try:
            (info,) = write_segments(buffer, "cam1", 1, size=2 * PART + 300_000, jitter=False)
            seg = Segment(info.segment_id, "cam1", b"", info.start_us)
            cfg = uplink_config(ctl.port, rig.dev, rate_bps=40_000_000)  # ~3 s for the segment
            with Agent(buffer, cfg) as agent:
                wait_until(lambda: _parts_stored(rig, seg, 1), 30, "part 1 in the store")
                rig.weed.stop()
                try:
                    wait_until(
                        lambda: "UNAVAILABLE" in agent.uploader.stats().last_error,
                        30,
                        "the agent to hear UNAVAILABLE",
                    )
                    assert agent.unsent() == 1  # nothing marked uploaded
                    assert ctl.catalog.get_segment(info.segment_id) is None
                finally:
                    rig.weed.start()
                wait_until(lambda: agent.unsent() == 0, 60, "the upload to resume and commit")
                assert agent.uploader.stats().committed == 1
        finally:
            buffer.close()
        row = ctl.catalog.get_segment(info.segment_id)
        assert row is not None and row.sha256 == info.sha256
        stored = rig.object(row.object_key)
    assert hashlib.sha256(stored).hexdigest() == info.sha256
    assert rig.uploads() == [] and _row(rig, seg) is None
