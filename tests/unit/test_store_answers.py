"""The store-health loop skips its probe while the store answers the uploads themselves."""

from __future__ import annotations

from controller.grpcserver.observe import Health
from controller.grpcserver.store_health import StoreHealth
from controller.storage.answers import StoreAnswers, answered_recently


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_answered_recently_needs_a_fresh_success_and_no_failure_after_it() -> None:
    assert not answered_recently(None, None, 10.0, 0.5)
    assert answered_recently(9.8, None, 10.0, 0.5)
    assert not answered_recently(9.5, None, 10.0, 0.5)  # exactly the interval: stale
    assert not answered_recently(9.8, 9.9, 10.0, 0.5)  # failed since
    assert answered_recently(9.9, 9.8, 10.0, 0.5)  # failed before, answered since


def test_store_answers_follow_the_clock() -> None:
    clock = FakeClock()
    answers = StoreAnswers(clock)
    assert not answers.recent(0.5)
    answers.ok()
    assert answers.recent(0.5)
    clock.t += 0.6
    assert not answers.recent(0.5)
    answers.ok()
    answers.failed()
    assert not answers.recent(0.5)


def test_probe_skipped_while_writes_succeed_and_run_again_after_a_failure() -> None:
    clock = FakeClock()
    answers = StoreAnswers(clock)
    problems: list[str | None] = [None]
    health = StoreHealth(Health(), lambda: problems[-1], 0.5, recent=answers.recent)

    assert health.tick() and health.probes == 1 and health.serving
    answers.ok()
    assert health.tick() and health.tick()
    assert health.probes == 1  # the writes were the evidence

    answers.failed()  # a write failed: ask the store itself
    problems.append("connection refused")
    assert not health.tick()
    assert health.probes == 2 and health.serving is False

    clock.t += 1.0
    answers.ok()  # a write got through: serving again without waiting for a probe
    assert health.tick() and health.serving and health.probes == 2
    clock.t += 0.5  # no traffic for the interval: probe again
    assert not health.tick()
    assert health.probes == 3 and health.serving is False


def test_without_recent_answers_every_tick_probes() -> None:
    health = StoreHealth(Health(), lambda: None, 0.5)
    for _ in range(3):
        assert health.tick()
    assert health.probes == 3
