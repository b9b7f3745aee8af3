"""Mutual TLS at the ingest port: only a current certificate from the city CA gets in, and a
device speaks only for its own cameras. Refused peers never reach a handler: nothing is staged.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
import pytest

from controller.pki import create_ca, issue_device_cert
from protos.vigil.v1 import ingest_pb2
from tests.integration.controller_proc import (
    DeviceCreds,
    InProcessController,
    Segment,
    device_channel,
    expired_window,
    ingest_stub,
    issue_device,
    now_dt,
    prepare_data_dir,
    register,
    status,
    upload,
)


@dataclass
class Env:
    data: Path
    tmp: Path
    ctl: InProcessController
    dev1: DeviceCreds


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    data = tmp_path / "ctl"
    prepare_data_dir(data)
    register(data, "dev1", ["cam1"])
    register(data, "dev2", ["cam2"])
    dev1 = issue_device(data, "dev1", tmp_path / "dev1")
    with InProcessController(data) as ctl:
        yield Env(data, tmp_path, ctl, dev1)


def _try_upload(
    port: int, creds: DeviceCreds | None, ca_pem: bytes, camera: str = "cam1"
) -> tuple[grpc.RpcError, Segment]:
    channel = device_channel(port, creds, ca_pem=ca_pem)
    try:
        seg = Segment.make(camera, size=10_000)
        with pytest.raises(grpc.RpcError) as info:
            upload(ingest_stub(channel), seg)
        return info.value, seg
    finally:
        channel.close()


def _assert_refused_before_upload(env: Env, err: BaseException, seg: Segment) -> None:
    code, details = status(err)
    assert code == grpc.StatusCode.UNAVAILABLE, details
    assert env.ctl.catalog.get_segment(seg.segment_id) is None
    assert not (env.data / "staging").exists() or not any((env.data / "staging").iterdir())
    # The server is unharmed: the right device still uploads.
    channel = device_channel(env.ctl.port, env.dev1)
    try:
        assert upload(ingest_stub(channel), Segment.make("cam1", size=10_000)).outcome == 1
    finally:
        channel.close()


def test_the_right_device_gets_in(env: Env) -> None:
    channel = device_channel(env.ctl.port, env.dev1)
    try:
        reply = upload(ingest_stub(channel), Segment.make("cam1", size=10_000))
    finally:
        channel.close()
    assert reply.outcome == ingest_pb2.UploadResponse.OUTCOME_COMMITTED


def test_a_client_without_a_certificate_is_refused(env: Env) -> None:
    err, seg = _try_upload(env.ctl.port, None, env.dev1.ca_pem)
    _assert_refused_before_upload(env, err, seg)


def test_a_certificate_from_another_ca_is_refused(env: Env) -> None:
    rogue_ca = create_ca(now_dt(), name="Rogue CA")
    pair = issue_device_cert(rogue_ca, "dev1", now_dt())  # even with the right CN
    rogue = DeviceCreds(
        "dev1", pair.cert_pem, pair.key_pem, env.dev1.ca_pem, Path(), Path(), Path()
    )
    err, seg = _try_upload(env.ctl.port, rogue, env.dev1.ca_pem)
    _assert_refused_before_upload(env, err, seg)


def test_an_expired_certificate_is_refused(env: Env) -> None:
    start, end = expired_window()
    expired = issue_device(env.data, "dev1", env.tmp / "expired", not_before=start, not_after=end)
    err, seg = _try_upload(env.ctl.port, expired, env.dev1.ca_pem)
    _assert_refused_before_upload(env, err, seg)


def test_a_not_yet_valid_certificate_is_refused(env: Env) -> None:
    now = now_dt()
    future = issue_device(
        env.data,
        "dev1",
        env.tmp / "future",
        not_before=now + timedelta(days=1),
        not_after=now + timedelta(days=2),
    )
    err, seg = _try_upload(env.ctl.port, future, env.dev1.ca_pem)
    _assert_refused_before_upload(env, err, seg)


def test_another_devices_certificate_cannot_upload_this_camera(env: Env) -> None:
    dev2 = issue_device(env.data, "dev2", env.tmp / "dev2")
    channel = device_channel(env.ctl.port, dev2)
    try:
        seg = Segment.make("cam1", size=10_000)
        with pytest.raises(grpc.RpcError) as info:
            upload(ingest_stub(channel), seg)
        code, details = status(info.value)
        assert code == grpc.StatusCode.PERMISSION_DENIED
        assert "not registered to device 'dev2'" in details
        with pytest.raises(grpc.RpcError) as query:
            ingest_stub(channel).QueryOffset(
                ingest_pb2.QueryOffsetRequest(segment_id=seg.segment_id, camera_id="cam1")
            )
        assert status(query.value)[0] == grpc.StatusCode.PERMISSION_DENIED
        # Its own camera works.
        assert upload(ingest_stub(channel), Segment.make("cam2", size=10_000)).outcome == 1
    finally:
        channel.close()
    assert env.ctl.catalog.get_segment(seg.segment_id) is None


def test_a_valid_certificate_of_an_unregistered_device_has_no_cameras(env: Env) -> None:
    stranger = issue_device(env.data, "dev-unknown", env.tmp / "stranger")
    channel = device_channel(env.ctl.port, stranger)
    try:
        with pytest.raises(grpc.RpcError) as info:
            upload(ingest_stub(channel), Segment.make("cam1", size=10_000))
    finally:
        channel.close()
    assert status(info.value)[0] == grpc.StatusCode.PERMISSION_DENIED


def test_the_agent_refuses_a_server_it_cannot_verify(env: Env) -> None:
    """The other direction: a client trusting another CA will not talk to this server."""
    other_ca = create_ca(now_dt(), name="Other CA")
    err, _seg = _try_upload(env.ctl.port, env.dev1, other_ca.cert_pem)
    assert status(err)[0] == grpc.StatusCode.UNAVAILABLE
