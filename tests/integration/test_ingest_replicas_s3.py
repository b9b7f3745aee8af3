"""Two live controller replicas on one PostgreSQL and one SeaweedFS: a multipart upload begun
on one replica resumes on the other while both run (the ledger in the shared database is the
staging any replica continues; ListParts in the store confirms it).

Both replicas are real controllers in this process (clustered, each with its own port and
data dir, the same PKI); the database is the suite's PostgreSQL (a private server where none
answers on 5432, tests/fixtures/postgres.py) and the store a real SeaweedFS.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from sqlalchemy import text

from controller.assembly import Controller, build_controller
from controller.catalog import make_engine
from controller.clock import SystemClock
from controller.ingest.ledger import Ledger
from protos.vigil.v1 import ingest_pb2
from tests.fixtures.postgres import PgServer
from tests.fixtures.seaweedfs import SeaweedFS
from tests.integration.controller_proc import (
    Segment,
    device_channel,
    free_low_port,
    ingest_stub,
    issue_device,
    make_config,
    prepare_data_dir,
    register,
)
from tests.integration.test_ingest_stream import CHUNK, PART, Paused
from tests.support import wait_until

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_db(pg_server: PgServer) -> Iterator[str]:
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


def _replica(pg_db: str, data_dir: Path, pki: Path, storage_url: str, name: str) -> Controller:
    port = free_low_port()
    config = make_config(
        data_dir,
        port,
        database_url=pg_db,
        storage_url=storage_url,
        grpc={
            "server_cert": str(pki / "server.crt"),
            "server_key": str(pki / "server.key"),
            "ca_cert": str(pki / "ca.crt"),
        },
        cluster={"enabled": True, "replica_id": name, "advertise": f"127.0.0.1:{port}"},
    )
    controller = build_controller(config, SystemClock())
    controller.start()
    return controller


def test_an_upload_begun_on_one_live_replica_resumes_on_the_other(
    pg_db: str, seaweedfs: SeaweedFS, tmp_path: Path
) -> None:
    city = tmp_path / "city"
    prepare_data_dir(city)
    bucket = seaweedfs.new_bucket_name()
    url = (
        f"s3://{bucket}?endpoint={seaweedfs.endpoint_url}&access_key={seaweedfs.access_key}"
        f"&secret_key={seaweedfs.secret_key}&part_size_mib=5"
    )
    a = _replica(pg_db, city, city / "pki", url, "replica-a")
    b = _replica(pg_db, tmp_path / "b", city / "pki", url, "replica-b")
    engine = make_engine(pg_db)
    ledger = Ledger(engine)
    seg = Segment.make("cam1", size=2 * PART + 300_000)  # three parts
    try:
        register(city, "dev1", ["cam1"], url=pg_db)
        dev = issue_device(city, "dev1", tmp_path / "dev1")
        to_a, to_b = device_channel(a.grpc_port, dev), device_channel(b.grpc_port, dev)
        try:
            # On A: the first part is stored, then the agent's link breaks (A keeps running).
            stream = Paused(seg, 0, PART + 2 * CHUNK, finish=False)
            future = ingest_stub(to_a).Upload.future(iter(stream), timeout=60)
            wait_until(stream.reached.is_set, 30, "the stream to pause")

            def one_part() -> bool:
                row = ledger.get(seg.segment_id)
                return row is not None and len(row.parts) == 1

            wait_until(one_part, 30, "part 1 in the store, in the shared ledger")
            future.cancel()
            stream.release.set()
            with pytest.raises(grpc.FutureCancelledError):
                future.result(timeout=30)

            # On B: what A stored counts; only the rest crosses the link.
            stub_b = ingest_stub(to_b)
            query = ingest_pb2.QueryOffsetRequest(segment_id=seg.segment_id, camera_id="cam1")
            wait_until(
                lambda: stub_b.QueryOffset(query, timeout=30).offset == PART,
                30,
                "B to see A's part (A's stream let go of the segment)",
            )
            rest = Paused(seg, PART, len(seg.data))
            rest.release.set()
            reply = stub_b.Upload(iter(rest), timeout=60)
            assert reply.outcome == ingest_pb2.UploadResponse.OUTCOME_COMMITTED
            assert rest.sent == len(seg.data) - PART  # nothing re-sent
            # A answers from the same catalog: committed, with the segment's hash.
            held = ingest_stub(to_a).QueryOffset(query, timeout=30)
            assert held.committed and held.sha256 == hashlib.sha256(seg.data).digest()
        finally:
            to_a.close()
            to_b.close()
    finally:
        a.stop(grace_s=0.5)
        b.stop(grace_s=0.5)
        engine.dispose()
    s3 = seaweedfs.client()
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    assert keys == [reply.object_key]
    assert s3.get_object(Bucket=bucket, Key=reply.object_key)["Body"].read() == seg.data
    head = s3.head_object(Bucket=bucket, Key=reply.object_key, ChecksumMode="ENABLED")
    assert head.get("ChecksumSHA256", "").endswith("-3")  # each part checked by the store
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []
    assert ledger.get(seg.segment_id) is None
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT count(*) FROM segment WHERE camera_id = 'cam1'")).scalar()
    engine.dispose()
    assert rows == 1
