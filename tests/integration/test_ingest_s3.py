"""Ingest into S3 object storage (a real SeaweedFS), including a storage outage mid-commit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc
from tests.fixtures.seaweedfs import SeaweedFS
from tests.integration.controller_proc import (
    InProcessController,
    Segment,
    device_channel,
    ingest_stub,
    issue_device,
    prepare_data_dir,
    register,
    status,
    upload,
)

OK = ingest_pb2.UploadResponse.OUTCOME_COMMITTED


@dataclass
class S3Rig:
    ctl: InProcessController
    stub: ingest_pb2_grpc.IngestStub
    bucket: str
    weed: SeaweedFS

    def object(self, key: str) -> bytes:
        body = self.weed.client().get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return bytes(body)

    def keys(self) -> list[str]:
        listing = self.weed.client().list_objects_v2(Bucket=self.bucket)
        return [o["Key"] for o in listing.get("Contents", [])]


@pytest.fixture
def s3rig(tmp_path: Path, seaweedfs: SeaweedFS) -> Iterator[S3Rig]:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    register(data, "dev1", ["cam1"])
    dev = issue_device(data, "dev1", tmp_path / "dev1")
    bucket = seaweedfs.new_bucket_name()
    url = (
        f"s3://{bucket}?endpoint={seaweedfs.endpoint_url}"
        f"&access_key={seaweedfs.access_key}&secret_key={seaweedfs.secret_key}"
    )
    with InProcessController(data, {"storage_url": url}) as ctl:
        channel = device_channel(ctl.port, dev)
        try:
            yield S3Rig(ctl, ingest_stub(channel), bucket, seaweedfs)
        finally:
            channel.close()


def test_segments_land_in_s3_once_with_their_bytes(s3rig: S3Rig) -> None:
    seg = Segment.make("cam1", size=600_000)
    reply = upload(s3rig.stub, seg)
    assert reply.outcome == OK
    assert s3rig.object(reply.object_key) == seg.data
    assert upload(s3rig.stub, seg).outcome == ingest_pb2.UploadResponse.OUTCOME_ALREADY_COMMITTED
    assert s3rig.keys() == [reply.object_key]


def test_a_storage_outage_commits_nothing_and_leaves_nothing_half_written(
    s3rig: S3Rig,
) -> None:
    """Ingest streams into the store (no staging file): with the store down the agent hears
    UNAVAILABLE, nothing is committed or kept, and its retry after the outage commits."""
    seg = Segment.make("cam1", size=300_000)
    s3rig.weed.stop()
    try:
        with pytest.raises(grpc.RpcError) as info:
            upload(s3rig.stub, seg)
        code, details = status(info.value)
        assert code == grpc.StatusCode.UNAVAILABLE
        assert "object store" in details
        assert s3rig.ctl.catalog.get_segment(seg.segment_id) is None
    finally:
        s3rig.weed.start()
    held = s3rig.stub.QueryOffset(
        ingest_pb2.QueryOffsetRequest(segment_id=seg.segment_id, camera_id="cam1")
    )
    assert not held.committed and held.offset == 0
    reply = upload(s3rig.stub, seg, offset=held.offset)
    assert reply.outcome == OK
    assert s3rig.object(reply.object_key) == seg.data
