"""Agent buffer -> uplink -> real controller (gRPC, mutual TLS) -> local store or SeaweedFS.

Real components only: the agent's SegmentBuffer on disk, the real IngestClient and Uploader, the
controller's real ingest (in this process, or `vigil-controller serve` as a subprocess where it
gets killed), real SQLite catalog, a local object directory or a real SeaweedFS S3 server.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.assembly import build_controller
from controller.clock import SystemClock as ControllerClock
from controller.config import ControllerConfig
from controller.storage import open_store
from edge_agent.clock import SystemClock
from edge_agent.model import SegmentState
from edge_agent.store import SegmentBuffer
from edge_agent.uplink import Outcome, RetryPolicy, UploadCancelled, open_client
from tests.fixtures.seaweedfs import SeaweedFS
from tests.integration.controller_proc import ControllerProcess, InProcessController, staged_size
from tests.integration.test_uplink_support import (
    QUOTA,
    Agent,
    Site,
    catalog_rows,
    chain_problems,
    local_store,
    make_site,
    open_catalog,
    uplink_config,
    verify_delivery,
    write_segments,
)
from tests.support import wait_until


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


@pytest.fixture
def buffer(tmp_path: Path) -> Iterator[SegmentBuffer]:
    buf = SegmentBuffer.open(tmp_path / "agent-buffer", QUOTA, SystemClock())
    yield buf
    buf.close()


def s3_url(weed: SeaweedFS, bucket: str) -> str:
    return (
        f"s3://{bucket}?endpoint={weed.endpoint_url}"
        f"&access_key={weed.access_key}&secret_key={weed.secret_key}"
    )


def test_buffer_drains_into_the_local_store_byte_identical(site, buffer) -> None:
    infos = [*write_segments(buffer, "cam1", 4), *write_segments(buffer, "cam2", 4)]
    with InProcessController(site.data_dir) as ctl:
        with Agent(buffer, uplink_config(ctl.port, site.device)) as agent:
            wait_until(lambda: agent.unsent() == 0, 30, "buffer drained")
            stats = agent.uploader.stats()
        rows = verify_delivery(buffer, ctl.catalog, local_store(site.data_dir), site.cameras)
    assert stats.committed == 8 and stats.bytes_sent == sum(i.size_bytes for i in infos)
    assert len(rows) == 8 and agent.events == []
    for camera in site.cameras:
        assert chain_problems(rows, camera) == []
        assert buffer.verify_chain(camera) == []


def test_buffer_drains_into_seaweedfs(site, buffer, seaweedfs) -> None:
    write_segments(buffer, "cam1", 3)
    write_segments(buffer, "cam2", 2)
    url = s3_url(seaweedfs, seaweedfs.new_bucket_name())
    with controller_with_store(site, url) as ctl:
        with Agent(buffer, uplink_config(ctl.grpc_port, site.device), concurrency=2) as agent:
            wait_until(lambda: agent.unsent() == 0, 60, "buffer drained into S3")
        rows = verify_delivery(buffer, ctl.catalog, open_store(url), site.cameras)
    assert len(rows) == 5
    assert all(chain_problems(rows, c) == [] for c in site.cameras)


def test_storage_outage_waits_and_resumes_nothing_marked_that_is_not_stored(
    site, buffer, seaweedfs
) -> None:
    url = s3_url(seaweedfs, seaweedfs.new_bucket_name())
    write_segments(buffer, "cam1", 2, size=100_000)
    with controller_with_store(site, url) as ctl:
        with Agent(buffer, uplink_config(ctl.grpc_port, site.device)) as agent:
            wait_until(lambda: agent.unsent() == 0, 60, "first segments uploaded")
            seaweedfs.stop()
            try:
                write_segments(buffer, "cam1", 2, size=100_000)
                write_segments(buffer, "cam2", 1, size=100_000)
                agent.uploader.wake()
                wait_until(lambda: agent.uploader.stats().retries >= 3, 60, "failing retries")
                assert agent.unsent() == 3, "marked uploaded while storage was down"
                assert "UNAVAILABLE" in agent.uploader.stats().last_error
                rows = catalog_rows(ctl.catalog, site.cameras)
                assert len(rows) == 2  # nothing committed without storage
            finally:
                seaweedfs.start()
            wait_until(lambda: agent.unsent() == 0, 60, "uploads resumed after the outage")
        rows = verify_delivery(buffer, ctl.catalog, open_store(url), site.cameras)
    assert len(rows) == 5
    assert all(chain_problems(rows, c) == [] for c in site.cameras)


def test_resume_after_a_cancelled_stream_sends_only_the_missing_bytes(site, buffer) -> None:
    (info,) = write_segments(buffer, "cam1", 1, size=1_000_000, rng=None)
    path = buffer.path_of(info)
    with InProcessController(site.data_dir) as ctl:
        # 1.6 Mbit/s = 200 kB/s: the upload takes ~5 s; it is broken off after ~1 s.
        cfg = uplink_config(ctl.port, site.device, rate_bps=1_600_000, chunk_bytes=32 * 1024)
        client = open_client(cfg, SystemClock())
        try:
            cancel = threading.Event()
            failure: list[BaseException] = []

            def first_attempt() -> None:
                try:
                    client.upload(info, path, cancel=cancel)
                except BaseException as exc:  # handed to the test thread
                    failure.append(exc)

            worker = threading.Thread(target=first_attempt)
            worker.start()
            wait_until(
                lambda: staged_size(site.data_dir, "dev1", info.segment_id) >= 150_000,
                20,
                "some bytes staged",
            )
            cancel.set()
            worker.join(10)
            assert len(failure) == 1 and isinstance(failure[0], UploadCancelled)
            held = client.query_offset(info.segment_id, "cam1").offset
            assert 150_000 <= held < info.size_bytes
            assert staged_size(site.data_dir, "dev1", info.segment_id) == held
            result = client.upload(info, path)
        finally:
            client.close()
        assert result.outcome is Outcome.COMMITTED
        assert result.resumed_from == held
        assert result.bytes_sent == info.size_bytes - held  # nothing sent twice
        verify_delivery(buffer, ctl.catalog, local_store(site.data_dir), site.cameras, False)
        assert ctl.catalog.get_segment(info.segment_id) is not None


def test_resume_across_a_controller_kill9(site, buffer, tmp_path) -> None:
    (info,) = write_segments(buffer, "cam1", 1, size=1_000_000)
    ctl = ControllerProcess(site.data_dir, tmp_path).start()
    try:
        cfg = uplink_config(ctl.port, site.device, rate_bps=2_400_000, chunk_bytes=32 * 1024)
        policy = RetryPolicy(initial_s=0.2, cap_s=0.5)
        with Agent(buffer, cfg, policy=policy) as agent:
            wait_until(
                lambda: staged_size(site.data_dir, "dev1", info.segment_id) >= 150_000,
                20,
                "some bytes staged",
            )
            ctl.kill9()
            held = staged_size(site.data_dir, "dev1", info.segment_id)
            assert 0 < held < info.size_bytes
            assert agent.unsent() == 1
            ctl.start()
            wait_until(lambda: agent.unsent() == 0, 30, "upload finished after restart")
            stats = agent.uploader.stats()
    finally:
        ctl.stop()
    catalog, engine = open_catalog(site.data_dir)
    try:
        verify_delivery(buffer, catalog, local_store(site.data_dir), site.cameras)
    finally:
        engine.dispose()
    assert stats.retries >= 1
    # The attempt that committed resumed where the dead controller's staging ended: it sent
    # at most what was missing at the kill.
    assert stats.bytes_sent <= info.size_bytes - held


def test_rate_cap_is_honoured_end_to_end(site, buffer) -> None:
    infos = write_segments(buffer, "cam1", 3, size=200_000)
    total = sum(i.size_bytes for i in infos)
    rate_bps = 1_600_000  # 200 kB/s: ~3 s for ~600 kB
    with InProcessController(site.data_dir) as ctl:
        cfg = uplink_config(ctl.port, site.device, rate_bps=rate_bps, chunk_bytes=32 * 1024)
        started = time.monotonic()
        with Agent(buffer, cfg) as agent:
            wait_until(lambda: agent.unsent() == 0, 60, "drained")
            elapsed = time.monotonic() - started
    measured_bps = total * 8 / elapsed
    # Only the first chunk rides on the burst; a generous upper margin for a busy machine.
    assert measured_bps <= rate_bps * 1.1, f"{measured_bps:.0f} bit/s beats {rate_bps}"
    assert elapsed < (total * 8 / rate_bps) + 20


def test_conflict_is_reported_and_left_unsent(site, buffer, tmp_path) -> None:
    (info,) = write_segments(buffer, "cam1", 1, size=50_000)
    with InProcessController(site.data_dir) as ctl:
        with Agent(buffer, uplink_config(ctl.port, site.device)) as agent:
            wait_until(lambda: agent.unsent() == 0, 30, "original uploaded")
        # Another buffer (a re-flashed NVR, or a forger) makes different bytes under the same
        # id (same camera and start time).
        with SegmentBuffer.open(tmp_path / "other", QUOTA, SystemClock()) as other:
            (forged,) = write_segments(other, "cam1", 1, size=60_000, start_us=info.start_us)
            assert forged.segment_id == info.segment_id and forged.sha256 != info.sha256
            write_segments(other, "cam1", 1, size=50_000)  # a later, fine segment
            with Agent(other, uplink_config(ctl.port, site.device)) as agent2:
                wait_until(lambda: agent2.uploader.stats().conflicts != (), 30, "conflict")
                wait_until(lambda: agent2.unsent() == 1, 30, "the later segment uploaded")
            kept = other.get(forged.segment_id)
            assert kept is not None and kept.state is SegmentState.UNSENT
        events = [(e.kind, e.camera_id) for e in agent2.events]
        assert ("chain_break", "cam1") in events
        assert any("conflict" in e.detail for e in agent2.events)
        row = ctl.catalog.get_segment(info.segment_id)
        assert row is not None and row.sha256 == info.sha256  # the original is untouched
        assert [c.offered_sha256 for c in ctl.catalog.conflicts("cam1")] == [forged.sha256]


def test_unknown_camera_is_refused_and_others_keep_flowing(site, buffer) -> None:
    (stray,) = write_segments(buffer, "cam9", 1, size=20_000)
    write_segments(buffer, "cam1", 2, size=20_000)
    with InProcessController(site.data_dir) as ctl:
        with Agent(buffer, uplink_config(ctl.port, site.device)) as agent:
            wait_until(lambda: agent.unsent() == 1, 30, "registered camera uploaded")
            wait_until(lambda: agent.uploader.stats().refused == (stray.segment_id,), 30, "refused")
            assert "NOT_FOUND" in agent.uploader.stats().last_error
        kept = buffer.get(stray.segment_id)
        assert kept is not None and kept.state is SegmentState.UNSENT
        assert ctl.catalog.get_segment(stray.segment_id) is None
        assert agent.events == []


def test_an_evicted_unsent_segment_shows_as_a_chain_event(site, tmp_path) -> None:
    """A segment lost in the buffer before upload: the next one's link names a missing hash."""
    clock = SystemClock()
    with SegmentBuffer.open(tmp_path / "small", 2_000_000, clock) as small:
        infos = write_segments(small, "cam1", 3, size=800_000, jitter=False)
        assert small.get(infos[0].segment_id) is None  # evicted unsent (recorded by the store)
        with InProcessController(site.data_dir) as ctl:
            with Agent(small, uplink_config(ctl.port, site.device)) as agent:
                wait_until(lambda: agent.unsent() == 0, 30, "drained")
            rows = catalog_rows(ctl.catalog, site.cameras)
        assert set(rows) == {infos[1].segment_id, infos[2].segment_id}
        assert [(e.kind, e.start_us) for e in agent.events] == [("chain_break", infos[1].start_us)]
        assert rows[infos[1].segment_id].flag == "gap" and rows[infos[2].segment_id].chain_ok


class _Ctl:
    """A controller with a chosen storage URL, built in this process."""

    def __init__(self, site: Site, storage_url: str) -> None:
        config = ControllerConfig.model_validate(
            {
                "data_dir": str(site.data_dir),
                "storage_url": storage_url,
                "grpc": {"listen": "127.0.0.1:0"},
            }
        )
        self.controller = build_controller(config, ControllerClock())

    def __enter__(self):
        self.controller.start()
        return self.controller

    def __exit__(self, *exc: object) -> None:
        self.controller.stop(grace_s=1.0)


def controller_with_store(site: Site, storage_url: str) -> _Ctl:
    return _Ctl(site, storage_url)
