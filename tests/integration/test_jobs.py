"""Footage requests end to end: JobService and the CLI on a real database, and jobs tracked
by a running controller against a real leased agent (holds, progress, gone footage).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.catalog import Catalog, make_engine
from controller.clock import SystemClock as ControllerClock
from controller.jobs import (
    JOB_CANCELLED,
    JOB_DONE,
    JOB_OPEN,
    JobError,
    JobRequest,
    JobService,
    JobStateError,
)
from controller.scheduler.model import TrafficClass
from edge_agent.clock import SystemClock
from edge_agent.store import SegmentBuffer
from tests.integration.controller_proc import database_url, register
from tests.integration.test_agent_control_support import (
    FAST_AGENT,
    LeasedAgent,
    scheduled_controller,
)
from tests.integration.test_uplink_support import SEGMENT_US, Site, make_site, write_segments
from tests.support import wait_until

S = 1_000_000


@pytest.fixture
def site(tmp_path: Path) -> Site:
    s = make_site(tmp_path)
    register(s.data_dir, "dev2", ["cam9"], site="village2")
    return s


@pytest.fixture
def jobs(site: Site) -> Iterator[JobService]:
    engine = make_engine(database_url(site.data_dir))
    yield JobService(Catalog(engine, ControllerClock()), ControllerClock())
    engine.dispose()


def now() -> int:
    return ControllerClock().now_us()


def request(cameras: tuple[str, ...] = ("cam1",), **changes: object) -> JobRequest:
    t = now()
    fields: dict[str, object] = dict(
        cameras=cameras, start_us=t - 600 * S, end_us=t - 60 * S, deadline_us=t + 3600 * S,
        case_id="case-17",
    )  # fmt: skip
    fields.update(changes)
    return JobRequest(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"cameras": ("nope",)}, "unknown camera"),
        ({"cameras": ()}, "at least one camera"),
        ({"start_us": now() - 60 * S, "end_us": now() - 600 * S}, "reversed"),
        ({"end_us": now() + 3600 * S}, "in the future"),
        ({"start_us": now() - 40 * 86400 * S}, "longer than"),
        ({"deadline_us": now() - 10 * S}, "in the past"),
        ({"deadline_us": now() + 400 * 86400 * S}, "days away"),
        ({"case_id": "bad case/../x"}, "case id"),
        ({"traffic_class": TrafficClass.LIVE}, "cannot be requested"),
    ],
)
def test_bad_requests_are_refused_and_change_nothing(
    jobs: JobService, changes: dict[str, object], message: str
) -> None:
    with pytest.raises(JobError, match=message):
        jobs.request(request(**changes))  # type: ignore[arg-type]
    assert jobs.jobs() == []
    assert jobs._catalog.holds() == []


def test_jobs_survive_restart_and_cancel_releases_cloud_holds(site: Site) -> None:
    engine = make_engine(database_url(site.data_dir))
    first = JobService(Catalog(engine, ControllerClock()), ControllerClock())
    job = first.request(request(("cam1", "cam2", "cam1")))
    assert job.cameras == ("cam1", "cam2") and job.state == JOB_OPEN
    assert {h.camera_id for h in first._catalog.holds()} == {"cam1", "cam2"}
    engine.dispose()
    engine = make_engine(database_url(site.data_dir))
    again = JobService(Catalog(engine, ControllerClock()), ControllerClock())
    try:
        assert again.get(job.job_id).case_id == "case-17"
        assert [j.job_id for j in again.jobs(state=JOB_OPEN)] == [job.job_id]
        assert again.cancel(job.job_id).state == JOB_CANCELLED
        assert again._catalog.holds() == []
        with pytest.raises(JobStateError, match="already cancelled"):
            again.cancel(job.job_id)
        with pytest.raises(JobError, match="no job"):
            again.get("0123456789abcdef")
    finally:
        engine.dispose()


def cli(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "controller", "footage", *args, "--data-dir", str(site.data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_footage_cli_requests_lists_shows_and_cancels(site: Site) -> None:
    made = cli(
        site, "request", "--camera", "cam1", "--from", "now-30m", "--to", "now-5m",
        "--deadline", "now+2h", "--case", "case-9", "--json",
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    job = json.loads(made.stdout)
    assert job["state"] == "open" and job["traffic_class"] == "evidence"
    listed = cli(site, "list", "--json")
    assert [j["job_id"] for j in json.loads(listed.stdout)] == [job["job_id"]]
    shown = cli(site, "show", job["job_id"])
    assert shown.returncode == 0 and "case case-9" in shown.stdout
    bad = cli(
        site, "request", "--camera", "cam1", "--from", "2026-01-01T10:00:00", "--to", "now",
        "--deadline", "now+1h", "--case", "c",
    )  # fmt: skip
    assert bad.returncode == 1 and "no UTC offset" in bad.stderr
    future = cli(
        site, "request", "--camera", "cam1", "--from", "now", "--to", "now+1h",
        "--deadline", "now+2h", "--case", "c",
    )  # fmt: skip
    assert future.returncode == 1 and "in the future" in future.stderr
    assert cli(site, "cancel", job["job_id"]).returncode == 0
    again = cli(site, "cancel", job["job_id"])
    assert again.returncode == 1 and "already cancelled" in again.stderr
    assert cli(site, "show", "ffffffffffff").returncode == 1


def test_a_job_completes_and_says_precisely_what_is_gone(site: Site, tmp_path: Path) -> None:
    """12 segments recorded, the 4 oldest evicted unsent by the quota; the request also
    covers 30 s before the recording began. The rest arrives; the gone parts are named."""
    buffer = SegmentBuffer.open(tmp_path / "small-buffer", 8 * 50_000, SystemClock())
    try:
        infos = write_segments(buffer, "cam1", 12, size=48_000)
        kept = buffer.segments(camera_id="cam1")
        evicted = [i for i in infos if i.segment_id not in {k.segment_id for k in kept}]
        assert evicted and kept, "the quota must have evicted the oldest, unsent"
        start, end = infos[0].start_us - 30 * S, infos[-1].end_us
        with scheduled_controller(site.data_dir) as ctl:
            job = ctl.jobs().request(request(start_us=start, end_us=end))
            ctl.scheduler.poke()
            with LeasedAgent(buffer, ctl.port, site.device, FAST_AGENT):
                wait_until(lambda: ctl.jobs().get(job.job_id).state == JOB_DONE, 30, "job done")
                wait_until(lambda: buffer.holds() == [], 10, "the agent to release the hold")
            view = ctl.jobs().get(job.job_id)
            states = {s.segment_id: s.state for s in ctl.jobs().segments(job.job_id)}
    finally:
        buffer.close()
    assert view.bytes_done == view.bytes_total == sum(k.size_bytes for k in kept)
    assert view.segments_done == len(kept)
    assert states == {k.segment_id: "uploaded" for k in kept}
    gone = [(g.start_us, g.end_us, g.reason) for g in view.gone]
    assert gone == [
        (start, infos[0].start_us, "not in the agent buffer"),
        (
            evicted[0].start_us,
            evicted[-1].start_us + SEGMENT_US,
            "evicted from the agent buffer before upload (quota)",
        ),
    ]
    assert "2 range(s)" in view.detail


def test_open_job_holds_on_the_agent_until_cancelled_and_survives_restart(
    site: Site, tmp_path: Path
) -> None:
    buffer = SegmentBuffer.open(tmp_path / "buffer", 1 << 30, SystemClock())
    try:
        write_segments(buffer, "cam1", 3, size=20_000, start_us=now() - 300 * S)
        slow = dataclasses.replace(FAST_AGENT, settle_s=3600.0)
        with scheduled_controller(site.data_dir) as ctl:
            # Ends "now": the camera may still be recording it, so the job stays open.
            job = ctl.jobs().request(request(start_us=now() - 400 * S, end_us=now()))
            with LeasedAgent(buffer, ctl.port, site.device, slow):
                wait_until(lambda: len(buffer.holds()) == 1, 10, "the hold on the agent")
                wait_until(lambda: buffer.stats().unsent_segments == 0, 20, "upload")
        assert buffer.holds()[0].case_id == f"vigil-job-{job.job_id}"
        with scheduled_controller(site.data_dir) as ctl:
            with LeasedAgent(buffer, ctl.port, site.device, slow):
                wait_until(
                    lambda: "still recording" in ctl.jobs().get(job.job_id).detail,
                    10,
                    "the restarted controller to track the job",
                )
                assert len(buffer.holds()) == 1
                ctl.jobs().cancel(job.job_id)
                wait_until(lambda: buffer.holds() == [], 10, "the agent to release the hold")
            assert ctl.jobs().get(job.job_id).state == JOB_CANCELLED
    finally:
        buffer.close()
