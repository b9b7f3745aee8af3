"""The scheduler's side of jobs: which holds agents must keep, which deadlines the planner
must meet, and writing each open job's progress (the imperative shell around progress.py).

The scheduler service owns the live inputs (agents' latest hold statuses and listed
segments, which devices are connected, delivered rates); the tracker adds what the cloud
holds (catalog range queries) and saves the outcome. Nothing here talks to agents.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from controller.catalog import Catalog
from controller.clock import Clock
from controller.jobs.model import (
    JOB_DONE,
    SEG_PENDING,
    CameraStatus,
    GoneRange,
    JobView,
    SegmentState,
    describe_gone,
    hold_tag,
)
from controller.jobs.progress import HoldReport, Stored, camera_outcome, eta_us
from controller.jobs.store import JobStore
from controller.traffic import TrafficClass

log = logging.getLogger("vigil.jobs")


@dataclass(frozen=True, slots=True)
class HoldWanted:
    """A range one agent must keep until uploaded (becomes a HoldSpec on the wire)."""

    tag: str
    camera_id: str
    start_us: int
    end_us: int
    traffic_class: TrafficClass
    case_id: str


@dataclass(slots=True)
class DeviceReport:
    """What a device's latest inventory said about jobs: per (tag, camera) hold status, and
    the listed unsent segments per camera (with their durations)."""

    holds: dict[tuple[str, str], HoldReport] = field(default_factory=dict)
    pending: dict[str, list[SegmentState]] = field(default_factory=dict)


def desired_holds(
    jobs: Sequence[JobView], camera_device: Mapping[str, str]
) -> dict[str, tuple[HoldWanted, ...]]:
    """Per device, the holds its agent must keep for the open jobs (pure)."""
    out: dict[str, list[HoldWanted]] = {}
    for job in jobs:
        for camera in job.cameras:
            device = camera_device.get(camera)
            if device is None:
                continue
            out.setdefault(device, []).append(
                HoldWanted(
                    hold_tag(job.job_id),
                    camera,
                    job.start_us,
                    job.end_us,
                    job.traffic_class,
                    job.case_id,
                )
            )
    return {d: tuple(hs) for d, hs in out.items()}


def evidence_deadlines(jobs: Sequence[JobView]) -> dict[str, int]:
    """Camera -> the earliest deadline of the open evidence jobs naming it (pure)."""
    out: dict[str, int] = {}
    for job in jobs:
        if job.traffic_class is not TrafficClass.EVIDENCE:
            continue
        for camera in job.cameras:
            if camera not in out or job.deadline_us < out[camera]:
                out[camera] = job.deadline_us
    return out


class JobTracker:
    """Computes and saves the progress of open jobs."""

    def __init__(self, store: JobStore, catalog: Catalog, clock: Clock) -> None:
        self._store = store
        self._catalog = catalog
        self._clock = clock
        self._saved: dict[str, object] = {}  # job id -> what was last written
        self.fence_epoch = 0  # > 0: progress is written only under this leadership epoch

    def forget(self, fence_epoch: int) -> None:
        """A new leadership term: another leader may have written meanwhile, so nothing
        written before counts as current; writes are fenced by `fence_epoch` (0: none)."""
        self._saved.clear()
        self.fence_epoch = fence_epoch

    def open_jobs(self) -> list[JobView]:
        return self._store.open_jobs()

    def update(
        self,
        job: JobView,
        camera_device: Mapping[str, str],
        reports: Mapping[str, DeviceReport],
        online: frozenset[str],
        rates: Mapping[str, int],
    ) -> JobView | None:
        """Recompute and save `job`'s progress; returns the saved view (None if it was
        cancelled meanwhile)."""
        now = self._clock.now_us()
        tag = hold_tag(job.job_id)
        known_pending: dict[str, list[SegmentState]] = {}
        for seg in self._store.segments(job.job_id, SEG_PENDING):
            known_pending.setdefault(seg.camera_id, []).append(seg)
        statuses: list[CameraStatus] = []
        segments: list[SegmentState] = []
        gone: list[GoneRange] = []
        done = total = seg_done = seg_total = 0
        remaining: dict[str, int] = {}
        for camera in job.cameras:
            device = camera_device.get(camera, "")
            report = reports.get(device)
            listed = [
                s
                for s in (report.pending.get(camera, []) if report else [])
                if s.start_us < job.end_us and s.start_us + s.duration_us > job.start_us
            ]
            pending = {s.segment_id: s for s in known_pending.get(camera, [])}
            pending.update((s.segment_id, s) for s in listed)
            stored = [
                Stored(r.segment_id, r.start_us, r.duration_us, r.size_bytes)
                for r in self._catalog.segments_in_range(camera, job.start_us, job.end_us)
            ]
            if not device:
                statuses.append(
                    CameraStatus(camera, "", False, "the camera is not attached to any device")
                )
                continue
            outcome = camera_outcome(
                camera,
                device,
                job.start_us,
                job.end_us,
                stored,
                report.holds.get((tag, camera)) if report else None,
                list(pending.values()),
                device in online,
            )
            statuses.append(outcome.status)
            segments.extend(outcome.segments)
            gone.extend(outcome.gone)
            done += outcome.bytes_done
            seg_done += outcome.segments_done
            total += outcome.bytes_done + outcome.bytes_pending
            seg_total += outcome.segments_done + outcome.segments_pending
            remaining[device] = remaining.get(device, 0) + outcome.bytes_pending
        complete = all(s.complete for s in statuses)
        eta = 0 if complete else eta_us(remaining, rates, now)
        changes: dict[str, object] = {
            "bytes_done": done,
            "bytes_total": total,
            "segments_done": seg_done,
            "segments_total": seg_total,
            "eta_us": eta,
        }
        if complete:
            changes.update(state=JOB_DONE, finished_at_us=now)
            changes["detail"] = (
                "complete; " + describe_gone(gone) if gone else "complete: all footage stored"
            )
        else:
            waiting = [f"{s.camera_id}: {s.waiting}" for s in statuses if not s.complete]
            changes["detail"] = "; ".join(waiting)[:1024]
        # ETA drifting by a few seconds alone is not news: no write for it.
        key = (tuple(sorted((k, str(v)) for k, v in changes.items() if k != "eta_us")),
               eta // 5_000_000,
               tuple(segments), tuple(gone), tuple(statuses))  # fmt: skip
        if self._saved.get(job.job_id) == key:
            return job  # nothing changed: spare the database a write
        saved = self._store.save_progress(
            job.job_id, now, changes, segments, gone, statuses, self.fence_epoch
        )
        if not saved:
            self._saved.pop(job.job_id, None)
            return None
        self._saved[job.job_id] = key
        if complete:
            self._saved.pop(job.job_id, None)
            log.info("job %s done (%s)", job.job_id, changes["detail"])
        return self._store.get(job.job_id)
