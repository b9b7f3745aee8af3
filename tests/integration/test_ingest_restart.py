"""Ingest across controller crashes: `vigil-controller serve` as a subprocess, killed with
SIGKILL mid-upload and restarted on the same port and data dir.

The client below behaves like the agent's uplink: ask QueryOffset, send the rest, retry on
UNAVAILABLE. A gate in its request stream pauses after a chosen number of chunks, so each
kill lands at a known point (mid-stream, or right after the last byte while the server
commits) without any sleeping.
"""

from __future__ import annotations

import hashlib
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from controller.catalog import Catalog, make_engine
from controller.clock import SystemClock
from controller.storage import LocalObjectStore
from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc
from tests.integration.controller_proc import (
    ControllerProcess,
    DeviceCreds,
    Segment,
    database_url,
    device_channel,
    ingest_stub,
    issue_device,
    prepare_data_dir,
    register,
    staged_size,
)
from tests.support import wait_until

CHUNK = 64 * 1024
FAULTS = 22


@dataclass
class Gate:
    """Pauses a request stream after `after` chunks until released."""

    after: int
    reached: threading.Event
    release: threading.Event


def _stream(seg: Segment, offset: int, gate: Gate | None) -> Iterator[ingest_pb2.UploadRequest]:
    yield ingest_pb2.UploadRequest(header=seg.header(offset))
    sent = 0
    for pos in range(offset, len(seg.data), CHUNK):
        if gate is not None and sent == gate.after:
            gate.reached.set()
            gate.release.wait(30)
            return
        yield ingest_pb2.UploadRequest(chunk=seg.data[pos : pos + CHUNK])
        sent += 1
    if gate is not None:
        gate.reached.set()  # every byte sent: the kill races the commit


def _offset(stub: ingest_pb2_grpc.IngestStub, seg: Segment) -> ingest_pb2.QueryOffsetResponse:
    request = ingest_pb2.QueryOffsetRequest(segment_id=seg.segment_id, camera_id=seg.camera_id)
    return stub.QueryOffset(request, timeout=60, wait_for_ready=True)


def _crash_mid_upload(
    ctl: ControllerProcess, stub: ingest_pb2_grpc.IngestStub, seg: Segment, chunks: int
) -> int:
    """Upload until `chunks` more chunks arrived, kill -9 the controller, restart it.
    Returns the offset the upload started from."""
    offset = _offset(stub, seg).offset
    gate = Gate(chunks, threading.Event(), threading.Event())
    future = stub.Upload.future(_stream(seg, offset, gate), timeout=60)
    wait_until(lambda: gate.reached.is_set() or future.done(), 30, "the gate")
    expected = min(len(seg.data), offset + chunks * CHUNK)
    if not future.done():
        wait_until(
            lambda: staged_size(ctl.data_dir, "dev1", seg.segment_id) >= expected or future.done(),
            30,
            "the server to stage what was sent",
        )
    ctl.kill9()
    gate.release.set()
    try:
        future.result(timeout=30)
    except grpc.RpcError:
        pass  # UNAVAILABLE / CANCELLED: the controller died under us
    ctl.start()
    return offset


def _finish(stub: ingest_pb2_grpc.IngestStub, seg: Segment) -> None:
    for _ in range(5):
        reply = _offset(stub, seg)
        if reply.committed:
            assert reply.sha256 == seg.sha256
            return
        try:
            stub.Upload(_stream(seg, reply.offset, None), timeout=60, wait_for_ready=True)
            return
        except grpc.RpcError as exc:
            assert exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED), exc
    raise AssertionError(f"segment {seg.segment_id} never committed")


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, DeviceCreds]:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    register(data, "dev1", ["cam1"])
    return data, issue_device(data, "dev1", tmp_path / "dev1")


def test_upload_resumes_from_the_offset_after_a_kill_9(
    setup: tuple[Path, DeviceCreds], tmp_path: Path
) -> None:
    data, dev = setup
    ctl = ControllerProcess(data, tmp_path).start()
    channel = device_channel(ctl.port, dev)
    try:
        stub = ingest_stub(channel)
        seg = Segment.make("cam1", size=10 * CHUNK + 77)
        _crash_mid_upload(ctl, stub, seg, chunks=4)
        held = _offset(stub, seg)
        assert not held.committed and held.offset == 4 * CHUNK
        sent: list[int] = []

        def rest() -> Iterator[ingest_pb2.UploadRequest]:
            for request in _stream(seg, held.offset, None):
                sent.append(len(request.chunk))
                yield request

        reply = stub.Upload(rest(), timeout=60)
        assert reply.outcome == ingest_pb2.UploadResponse.OUTCOME_COMMITTED
        assert sum(sent) == len(seg.data) - 4 * CHUNK  # nothing re-sent
    finally:
        channel.close()
        ctl.stop()
    store = LocalObjectStore(data / "objects")
    assert store.read_bytes(reply.object_key) == seg.data


@pytest.mark.rig
def test_kill_9_loop_loses_nothing_and_duplicates_nothing(
    setup: tuple[Path, DeviceCreds], tmp_path: Path
) -> None:
    data, dev = setup
    rng = random.Random(20261128)
    faults = 0
    segs: list[Segment] = []
    prev: Segment | None = None
    start = SystemClock().now_us() - 600_000_000
    for _ in range(10):
        seg = Segment.make(
            "cam1",
            size=rng.randrange(4, 12) * CHUNK + rng.randrange(CHUNK),
            prev=prev,
            start_us=None if prev else start,
        )
        segs.append(seg)
        prev = seg
    ctl = ControllerProcess(data, tmp_path).start()
    channel = device_channel(ctl.port, dev)
    try:
        stub = ingest_stub(channel)
        for seg in segs:
            total = -(-len(seg.data) // CHUNK)
            for _ in range(4):
                if faults >= FAULTS:
                    break
                held = _offset(stub, seg)
                if held.committed:
                    break
                left = total - held.offset // CHUNK
                # Mid-stream most of the time; sometimes after the last byte (races the commit).
                chunks = left if left == 0 or rng.random() < 0.25 else rng.randrange(0, left)
                _crash_mid_upload(ctl, stub, seg, chunks)
                faults += 1
            _finish(stub, seg)
        ctl.stop()
        ctl.start()  # a clean start runs staging recovery once more
    finally:
        channel.close()
        ctl.stop()
    assert faults >= FAULTS
    # Every segment is in storage exactly once with its hash, and the catalog agrees.
    store = LocalObjectStore(data / "objects")
    keys = sorted(store.list_keys(""))
    engine = make_engine(database_url(data))
    try:
        catalog = Catalog(engine, SystemClock())
        rows = [catalog.get_segment(s.segment_id) for s in segs]
        assert all(r is not None for r in rows)
        assert sorted(r.object_key for r in rows if r) == keys
        for seg, row in zip(segs, rows, strict=True):
            assert row is not None
            body = store.read_bytes(row.object_key)
            assert hashlib.sha256(body).hexdigest() == row.sha256 == seg.sha256.hex()
            assert body == seg.data
            assert row.chain_ok, row  # uploaded in order: the chain holds through every crash
        assert catalog.count_segments("cam1") == len(segs)
    finally:
        engine.dispose()
    leftovers = list((data / "staging").rglob("*.part")) if (data / "staging").exists() else []
    assert leftovers == []
