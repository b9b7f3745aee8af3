"""Generated protobuf code must match protos/: stale code fails here, not in production."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_generated_protobuf_code_is_current() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_protos.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_generated_code_imports_and_round_trips() -> None:
    from protos.vigil.v1 import ingest_pb2

    header = ingest_pb2.SegmentHeader(segment_id="s1", camera_id="c1", size_bytes=5)
    req = ingest_pb2.UploadRequest(header=header)
    again = ingest_pb2.UploadRequest.FromString(req.SerializeToString())
    assert again.WhichOneof("part") == "header"
    assert again.header.segment_id == "s1"
