"""ACCEPTED (the controller's commit queue holds the verified bytes) is a success the agent
records like a commit; an outcome it does not know is still refused."""

from __future__ import annotations

import hashlib

import pytest

from edge_agent.model import SegmentFlag, SegmentInfo, SegmentState
from edge_agent.uplink.client import _result
from edge_agent.uplink.errors import PermanentError
from edge_agent.uplink.plan import Outcome
from protos.vigil.v1 import ingest_pb2


def _info() -> SegmentInfo:
    sha = hashlib.sha256(b"segment").hexdigest()
    return SegmentInfo(
        segment_id="cam1-1",
        camera_id="cam1",
        start_us=1_800_000_000_000_000,
        duration_us=4_000_000,
        size_bytes=7,
        sha256=sha,
        prev_sha256="",
        flags=SegmentFlag.NONE,
        state=SegmentState.UNSENT,
        container="ts",
        filename="cam1/1.ts",
    )


def test_accepted_is_a_success() -> None:
    info = _info()
    reply = ingest_pb2.UploadResponse(
        segment_id=info.segment_id,
        outcome=ingest_pb2.UploadResponse.OUTCOME_ACCEPTED,
        sha256=bytes.fromhex(info.sha256),
        chain_ok=True,
    )
    result = _result(info, reply, 0, 7)
    assert result.outcome is Outcome.ACCEPTED


def test_an_unknown_outcome_is_refused() -> None:
    info = _info()
    reply = ingest_pb2.UploadResponse(segment_id=info.segment_id, outcome=99)  # type: ignore[arg-type]
    with pytest.raises(PermanentError):
        _result(info, reply, 0, 7)
