"""Pure parts of the fleet's replica path: the in-memory directory's refresh and miss limits,
health split over replicas (no false gaps, merging another replica's report), the topics and
subscriptions of a replica, and which accounts get the controller's rights."""

from __future__ import annotations

from collections.abc import Hashable

from controller.fleet import monitor as mo
from controller.fleet.broker import acl_text, is_controller_account
from controller.fleet.directory import CachedDirectory, StaticDirectory, due_misses
from controller.fleet.shared import HealthRow
from controller.fleet.sync import newer
from controller.fleet.topics import (
    CONTROLLER_STATE_TOPIC,
    FLEET_SUBSCRIPTION,
    controller_state_topic,
    fleet_subscriptions,
    is_controller_state_topic,
)
from protos.vigil.v1 import fleet_pb2

T0 = 1_800_000_000_000_000
S = 1_000_000
P = mo.MonitorPolicy(default_health_interval_s=10.0)
SPLIT = mo.MonitorPolicy(default_health_interval_s=10.0, health_gaps=False)


class CountingSource(StaticDirectory):
    """A StaticDirectory counting what CachedDirectory asks of it (in memory, no I/O)."""

    def __init__(self, devices: dict[str, tuple[str, str]]) -> None:
        super().__init__(devices)
        self.loads = 0
        self.lookups: list[str] = []
        self.versions = 0

    def version(self) -> Hashable:
        self.versions += 1
        return super().version()

    def load(self) -> dict[str, tuple[str, str]]:
        self.loads += 1
        return super().load()

    def lookup(self, device_id: str) -> tuple[str, str] | None:
        self.lookups.append(device_id)
        return super().lookup(device_id)


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_due_misses_oldest_first_limited_and_not_retried_within_window() -> None:
    misses = {"b": 2.0, "a": 1.0, "c": 3.0}
    assert due_misses(misses, {}, 10.0, 5.0, 2) == ["a", "b"]
    assert due_misses(misses, {"a": 8.0}, 10.0, 5.0, 5) == ["b", "c"]
    assert due_misses(misses, {"a": 5.0}, 10.0, 5.0, 5) == ["a", "b", "c"]


def test_cached_directory_answers_from_memory_and_reloads_on_version_change() -> None:
    source = CountingSource({"nvr-1": ("wudu", "v001")})
    clock = Clock()
    d = CachedDirectory(source, clock, retry_s=5.0)
    d.refresh()
    assert source.loads == 1
    for _ in range(100):
        assert d.lookup("nvr-1") == ("wudu", "v001")
    assert source.lookups == []  # no per-message read
    d.refresh()
    assert source.loads == 1  # version unchanged: nothing reloaded
    source.add("nvr-2", "wudu", "v002")
    assert d.lookup("nvr-2") is None
    d.refresh()
    assert source.loads == 2 and d.lookup("nvr-2") == ("wudu", "v002")


def test_unknown_ids_looked_up_once_per_window_however_many_messages() -> None:
    source = CountingSource({})
    clock = Clock()
    d = CachedDirectory(source, clock, retry_s=5.0, miss_limit=10)
    d.refresh()
    for _ in range(1000):
        assert d.lookup("ghost") is None
    assert source.lookups == []  # never on the message path
    d.refresh()
    assert source.lookups == ["ghost"]
    for _ in range(1000):
        d.lookup("ghost")
    clock.t += 1.0
    d.refresh()
    assert source.lookups == ["ghost"]  # within the window: not again
    clock.t += 5.0
    d.refresh()
    assert source.lookups == ["ghost", "ghost"]


def test_miss_lookup_finds_a_device_the_version_did_not_reveal() -> None:
    source = CountingSource({})
    d = CachedDirectory(source, Clock())
    d.refresh()
    source._devices["late"] = ("wudu", "v009")  # written without a version change
    d.lookup("late")
    d.refresh()
    assert d.lookup("late") == ("wudu", "v009")


def test_miss_flood_is_bounded() -> None:
    source = CountingSource({})
    d = CachedDirectory(source, Clock(), miss_limit=3, misses_kept=5)
    d.refresh()
    for i in range(100):
        d.lookup(f"fake-{i}")
    d.refresh()
    assert len(source.lookups) == 3


def _online(policy: mo.MonitorPolicy, session: int = 5) -> mo.DeviceRecord:
    r = mo.DeviceRecord("nvr-1", "wudu", "v001")
    r = mo.on_state(
        r, fleet_pb2.DeviceState(device_id="nvr-1", online=True, session=session), T0, policy
    ).record
    b = fleet_pb2.Birth(device_id="nvr-1", session=session, health_interval_s=10.0)
    return mo.on_birth(r, b, T0, policy).record


def _health(seq: int, session: int = 5) -> fleet_pb2.Health:
    return fleet_pb2.Health(device_id="nvr-1", session=session, seq=seq, at_unix_us=T0)


def test_split_health_jump_is_no_gap_and_asks_no_rebirth() -> None:
    out = mo.on_health(_online(SPLIT), _health(4), T0 + S, SPLIT)
    assert out.verdict is mo.Verdict.ACCEPTED and out.actions == ()
    assert out.record.health_seq == 4 and out.record.gaps == 0
    # The lone controller still treats it as a gap.
    alone = mo.on_health(_online(P), _health(4), T0 + S, P)
    assert alone.verdict is mo.Verdict.GAP and alone.actions


def test_split_health_older_number_is_still_a_replay() -> None:
    r = mo.on_health(_online(SPLIT), _health(4), T0 + S, SPLIT).record
    assert mo.on_health(r, _health(3), T0 + 2 * S, SPLIT).verdict is mo.Verdict.REPLAY


def test_merge_shared_health_takes_newer_of_current_session_only() -> None:
    r = mo.on_health(_online(SPLIT), _health(2), T0 + S, SPLIT).record
    merged = mo.merge_shared_health(r, _health(3), T0 + 3 * S, 0.5)
    assert merged is not None
    assert merged.health_seq == 3 and merged.last_seen_us == T0 + 3 * S
    assert merged.clock_skew_s == 0.5
    assert mo.merge_shared_health(merged, _health(3), T0 + 4 * S, 0.0) is None
    assert mo.merge_shared_health(merged, _health(9, session=4), T0 + 4 * S, 0.0) is None


def test_merge_keeps_a_device_alive_that_reports_to_another_replica() -> None:
    r = _online(SPLIT)
    late = T0 + 40 * S  # past the 30 s timeout of a 10 s interval
    merged = mo.merge_shared_health(r, _health(1), late - S, 0.0)
    assert merged is not None
    assert mo.expire(merged, late, SPLIT).online
    assert not mo.expire(r, late, SPLIT).online


def test_merge_revives_timed_out_but_not_a_device_that_said_goodbye() -> None:
    r = _online(SPLIT)
    timed_out = mo.expire(r, T0 + 40 * S, SPLIT)
    assert not timed_out.online
    back = mo.merge_shared_health(timed_out, _health(1), T0 + 41 * S, 0.0)
    assert back is not None and back.online
    gone = mo.on_state(
        r,
        fleet_pb2.DeviceState(device_id="nvr-1", online=False, session=5, reason="will"),
        T0 + S,
        SPLIT,
    ).record
    assert mo.merge_shared_health(gone, _health(1), T0 + 2 * S, 0.0) is None


def test_newer_report_by_session_then_seq() -> None:
    def row(session: int, seq: int) -> HealthRow:
        return HealthRow("d", session, seq, 0, 0.0, b"")

    assert newer(row(1, 1), None)
    assert newer(row(1, 2), row(1, 1))
    assert newer(row(2, 1), row(1, 9))
    assert not newer(row(1, 1), row(1, 1))


def test_lone_controller_keeps_its_topics_and_one_subscription() -> None:
    assert controller_state_topic("vigil-controller") == CONTROLLER_STATE_TOPIC
    assert fleet_subscriptions(None) == [FLEET_SUBSCRIPTION]


def test_replica_topics_and_subscriptions() -> None:
    topic = controller_state_topic("vigil-controller-a")
    assert topic == "vigil/v1/controller/vigil-controller-a/state"
    assert is_controller_state_topic(topic) and is_controller_state_topic(CONTROLLER_STATE_TOPIC)
    assert not is_controller_state_topic("vigil/v1/wudu/v001/nvr-1/state")
    subs = fleet_subscriptions("g1")
    assert "$share/g1/vigil/v1/+/+/+/health" in subs
    assert sorted(s.rsplit("/", 1)[1] for s in subs if not s.startswith("$share/")) == [
        "birth",
        "cmd_ack",
        "event",
        "state",
    ]


def test_replica_accounts_get_the_controllers_rights_devices_do_not() -> None:
    assert is_controller_account("vigil-controller")
    assert is_controller_account("vigil-controller-b")
    assert not is_controller_account("vigil-controllerx")
    assert not is_controller_account("nvr-1")
    acl = acl_text(controllers=("vigil-controller-b",))
    block = acl.split("user vigil-controller-b\n", 1)[1].split("\n\n", 1)[0]
    assert "topic read vigil/v1/#" in block
    assert "topic readwrite vigil/v1/controller/#" in block


def test_a_cluster_replica_must_name_its_own_mqtt_account() -> None:
    from types import SimpleNamespace

    import pytest

    from controller import components
    from controller.config import ClusterConfig, ControllerConfig
    from controller.runtime import StartupError

    config = ControllerConfig(
        database_url="postgresql+psycopg://vigil@db/vigil", cluster=ClusterConfig(enabled=True)
    )
    with pytest.raises(StartupError, match="client_id"):
        components.fleet(SimpleNamespace(config=config))  # type: ignore[arg-type]
