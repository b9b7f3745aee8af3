"""The upload loop's decisions, with an in-memory buffer and a scripted transport (no I/O).

What must hold: marked uploaded only after an acknowledgement; transient errors retried until
they pass; conflicts reported once and skipped; refusals parked, then retried; per-camera order;
stop is prompt even in the middle of a long backoff.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import pytest

from edge_agent.clock import ManualClock
from edge_agent.model import AgentEvent, SegmentFlag, SegmentInfo, SegmentState
from edge_agent.uplink.errors import (
    ConflictError,
    PermanentError,
    RetryableError,
    SegmentGoneError,
    UploadCancelled,
)
from edge_agent.uplink.plan import Outcome, UploadResult
from edge_agent.uplink.uploader import RetryPolicy, Uploader
from tests.support import wait_until

FAST = RetryPolicy(initial_s=0.01, cap_s=0.05, park_s=30.0)


def seg(camera: str, start: int) -> SegmentInfo:
    return SegmentInfo(
        segment_id=f"{camera}-{start}",
        camera_id=camera,
        start_us=start,
        duration_us=1_000,
        size_bytes=100,
        sha256="ab" * 32,
        prev_sha256="",
        container="ts",
        flags=SegmentFlag.NONE,
        state=SegmentState.UNSENT,
        filename=f"{camera}/{start}.ts",
    )


class FakeBuffer:
    def __init__(self, infos: list[SegmentInfo]) -> None:
        self._lock = threading.Lock()
        self.infos = {i.segment_id: i for i in infos}
        self.marked: list[str] = []

    def unsent(self, limit: int = 100, camera_id: str | None = None) -> list[SegmentInfo]:
        with self._lock:
            rows = [i for i in self.infos.values() if i.state is SegmentState.UNSENT]
        return sorted(rows, key=lambda i: (i.start_us, i.camera_id))[:limit]

    def path_of(self, info: SegmentInfo) -> Path:
        return Path("/nonexistent") / info.filename

    def mark_uploaded(self, segment_id: str) -> None:
        with self._lock:
            self.infos[segment_id] = replace(self.infos[segment_id], state=SegmentState.UPLOADED)
            self.marked.append(segment_id)


class ScriptedSender:
    """Answers each segment's attempts from a script: exceptions first, then success."""

    def __init__(self, script: dict[str, list[BaseException | UploadResult]] | None = None) -> None:
        self.script = defaultdict(list, script or {})
        self.calls: list[str] = []
        self.marked_before: dict[str, bool] = {}
        self.buffer: FakeBuffer | None = None
        self.active: set[str] = set()
        self.overlap = False
        self._lock = threading.Lock()

    def upload(self, info, path, lease_id="", cancel=None) -> UploadResult:
        with self._lock:
            self.calls.append(info.segment_id)
            if info.camera_id in self.active:
                self.overlap = True
            self.active.add(info.camera_id)
            steps = self.script[info.segment_id]
            step = steps.pop(0) if steps else None
        try:
            time.sleep(0.002)  # let other workers interleave
            if isinstance(step, BaseException):
                raise step
            if isinstance(step, UploadResult):
                return step
            return UploadResult(info.segment_id, Outcome.COMMITTED, True, "k", 0, info.size_bytes)
        finally:
            with self._lock:
                self.active.discard(info.camera_id)


def make(infos, script=None, concurrency=1, policy=FAST, clock=None):
    buffer = FakeBuffer(infos)
    sender = ScriptedSender(script)
    events: list[AgentEvent] = []
    uploader = Uploader(
        buffer,
        sender,
        clock or ManualClock(),
        events.append,
        policy=policy,
        concurrency=concurrency,
        idle_poll_s=0.02,
    )
    return buffer, sender, events, uploader


def run_until(uploader: Uploader, predicate, what: str, timeout: float = 10.0) -> None:
    uploader.start()
    try:
        wait_until(predicate, timeout, what)
    finally:
        uploader.stop()


def test_uploads_everything_oldest_first_and_marks_after_ack() -> None:
    infos = [seg("a", 3), seg("a", 1), seg("b", 2)]
    buffer, sender, events, uploader = make(infos)
    run_until(uploader, lambda: len(buffer.marked) == 3, "all marked")
    assert sender.calls == ["a-1", "b-2", "a-3"]
    assert buffer.marked == ["a-1", "b-2", "a-3"]
    assert uploader.stats().committed == 3 and uploader.stats().bytes_sent == 300
    assert events == []


def test_transient_errors_are_retried_and_nothing_is_marked_before_the_ack() -> None:
    boom = [RetryableError("Upload a-1: UNAVAILABLE: down", "UNAVAILABLE")] * 4
    buffer, sender, _events, uploader = make([seg("a", 1)], {"a-1": list(boom)})
    uploader.start()
    try:
        wait_until(lambda: len(sender.calls) >= 3, 10, "a few failed attempts")
        assert buffer.marked == []  # failed attempts never mark anything
        wait_until(lambda: buffer.marked == ["a-1"], 10, "marked after success")
    finally:
        uploader.stop()
    assert sender.calls == ["a-1"] * 5
    assert uploader.stats().retries == 4


def test_already_committed_counts_as_success() -> None:
    done = UploadResult("a-1", Outcome.ALREADY_COMMITTED, None, "", 0, 0)
    buffer, _sender, events, uploader = make([seg("a", 1)], {"a-1": [done]})
    run_until(uploader, lambda: buffer.marked == ["a-1"], "marked")
    assert uploader.stats().already_committed == 1 and events == []


def test_conflict_is_reported_once_skipped_and_left_unsent() -> None:
    conflict = ConflictError("Upload a-1: ALREADY_EXISTS: other hash", "ALREADY_EXISTS")
    buffer, sender, events, uploader = make([seg("a", 1), seg("a", 2)], {"a-1": [conflict]})
    run_until(uploader, lambda: buffer.marked == ["a-2"], "the next segment uploaded")
    assert sender.calls.count("a-1") == 1  # never retried
    assert buffer.infos["a-1"].state is SegmentState.UNSENT  # still visible
    assert [e.kind for e in events] == ["chain_break"]
    assert events[0].camera_id == "a" and "conflict" in events[0].detail
    assert uploader.stats().conflicts == ("a-1",)
    assert uploader.idle()  # nothing left that could be tried now


def test_chain_flag_from_the_controller_raises_an_event_but_counts_as_uploaded() -> None:
    flagged = UploadResult("a-1", Outcome.COMMITTED, False, "k", 0, 100)
    buffer, _sender, events, uploader = make([seg("a", 1)], {"a-1": [flagged]})
    run_until(uploader, lambda: buffer.marked == ["a-1"], "marked")
    assert [(e.kind, e.camera_id, e.start_us) for e in events] == [("chain_break", "a", 1)]


def test_refused_segment_is_parked_then_retried_after_park_time() -> None:
    clock = ManualClock()
    refused = PermanentError("Upload a-1: NOT_FOUND: unknown camera", "NOT_FOUND")
    buffer, sender, events, uploader = make([seg("a", 1)], {"a-1": [refused]}, clock=clock)
    uploader.start()
    try:
        wait_until(lambda: uploader.stats().refused == ("a-1",), 10, "refusal recorded")
        wait_until(uploader.idle, 10, "idle with the segment parked")
        assert buffer.marked == [] and sender.calls == ["a-1"]
        clock.advance(FAST.park_s + 1)  # an operator registered the camera meanwhile
        wait_until(lambda: buffer.marked == ["a-1"], 10, "retried after park time")
    finally:
        uploader.stop()
    assert events == []


def test_vanished_file_is_parked_without_an_event() -> None:
    gone = SegmentGoneError("segment a-1: cannot open: No such file")
    buffer, sender, events, uploader = make([seg("a", 1), seg("b", 2)], {"a-1": [gone]})
    run_until(uploader, lambda: buffer.marked == ["b-2"], "the other segment uploaded")
    assert events == [] and sender.calls.count("a-1") == 1
    assert "No such file" in uploader.stats().last_error


def test_one_upload_per_camera_at_a_time_even_with_many_workers() -> None:
    infos = [seg(cam, t) for t in range(1, 9) for cam in ("a", "b", "c")]
    buffer, sender, _events, uploader = make(infos, concurrency=4)
    run_until(uploader, lambda: len(buffer.marked) == len(infos), "all marked")
    assert not sender.overlap
    for cam in ("a", "b", "c"):
        mine = [s for s in buffer.marked if s.startswith(cam)]
        assert mine == [f"{cam}-{t}" for t in range(1, 9)]  # per-camera order kept


def test_stop_is_prompt_during_a_long_backoff() -> None:
    slow = RetryPolicy(initial_s=30.0, cap_s=60.0)
    down = [RetryableError("UNAVAILABLE", "UNAVAILABLE")] * 10
    buffer, sender, _events, uploader = make([seg("a", 1)], {"a-1": down}, policy=slow)
    uploader.start()
    wait_until(lambda: len(sender.calls) == 1, 10, "first attempt")
    started = time.monotonic()
    uploader.stop(timeout=5)
    assert time.monotonic() - started < 2.0
    assert buffer.marked == []


def test_resume_ends_a_long_backoff_and_starts_it_over() -> None:
    """The controller said it is ready again: the upload goes at once, not after 30-60 s."""
    slow = RetryPolicy(initial_s=30.0, cap_s=60.0)
    down = [RetryableError("UNAVAILABLE", "UNAVAILABLE")] * 2
    buffer, sender, _events, uploader = make([seg("a", 1)], {"a-1": down}, policy=slow)
    uploader.start()
    try:
        wait_until(lambda: len(sender.calls) == 1, 10, "first attempt")
        uploader.resume()  # second attempt fails too: its wait is initial_s again, not 60 s
        wait_until(lambda: len(sender.calls) == 2, 2, "the retry right after resume()")
        uploader.resume()
        wait_until(lambda: buffer.marked == ["a-1"], 2, "the upload after the second resume()")
    finally:
        uploader.stop()
    assert uploader.stats().retries == 2


def test_cancelled_upload_is_neither_marked_nor_parked() -> None:
    cancelled = UploadCancelled("segment a-1: uploader stopping")
    buffer, sender, _events, uploader = make([seg("a", 1)], {"a-1": [cancelled]})
    run_until(uploader, lambda: buffer.marked == ["a-1"], "uploaded on the next try")
    assert sender.calls == ["a-1", "a-1"]


def test_a_failing_event_handler_and_a_crashing_sender_do_not_kill_the_loop() -> None:
    flagged = UploadResult("a-1", Outcome.COMMITTED, False, "k", 0, 100)
    buffer = FakeBuffer([seg("a", 1), seg("b", 2), seg("c", 3)])
    sender = ScriptedSender({"a-1": [flagged], "b-2": [RuntimeError("bug")]})

    def explode(event: AgentEvent) -> None:
        raise OSError("mqtt queue full")

    uploader = Uploader(buffer, sender, ManualClock(), explode, policy=FAST, idle_poll_s=0.02)
    run_until(uploader, lambda: buffer.marked == ["a-1", "c-3"], "others uploaded")
    assert buffer.infos["b-2"].state is SegmentState.UNSENT
    assert "bug" in uploader.stats().last_error


def test_unpark_lets_a_conflict_be_tried_again() -> None:
    conflict = ConflictError("ALREADY_EXISTS", "ALREADY_EXISTS")
    buffer, sender, _events, uploader = make([seg("a", 1)], {"a-1": [conflict]})
    uploader.start()
    try:
        wait_until(lambda: uploader.stats().conflicts == ("a-1",), 10, "conflict")
        uploader.unpark("a-1")
        wait_until(lambda: buffer.marked == ["a-1"], 10, "uploaded after unpark")
    finally:
        uploader.stop()


def test_bad_construction_and_double_start_are_refused() -> None:
    with pytest.raises(ValueError, match="concurrency"):
        make([], concurrency=0)
    _buffer, _sender, _events, uploader = make([])
    uploader.start()
    try:
        with pytest.raises(RuntimeError, match="already started"):
            uploader.start()
    finally:
        uploader.stop()
