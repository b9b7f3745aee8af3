"""Controller failover, the pure part: which address next, which redirects are accepted, how
long to wait; the `controllers` setting; what health and the textfile show of the routes."""

from __future__ import annotations

import tomllib

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edge_agent.clock import ManualClock
from edge_agent.config import ConfigError, parse_config
from edge_agent.health import payloads as pl
from edge_agent.health import textfile
from edge_agent.uplink import failover as fo
from edge_agent.uplink.failover import ControlAction, Route, RouteStatus
from edge_agent.uplink.routing import ChannelPool, RouteKeeper, failover_client
from edge_agent.wiring import route_status
from provisioning.bundle import agent_toml
from provisioning.spec import CameraSpec, DeviceSpec
from provisioning.workspace import City, DeviceRecord

A, B, C = "ctl-a.city:7443", "ctl-b.city:7443", "ctl-c.city:7443"


def route(*addresses: str) -> Route:
    return fo.start(addresses or (A, B, C), now=100.0)


# -- next address ------------------------------------------------------------------------------


def test_failure_moves_to_the_next_address_and_wraps_around() -> None:
    r = route()
    r = fo.failed(r, A, 101.0)
    assert (r.address, r.failures, r.failovers, r.since) == (B, 1, 1, 101.0)
    r = fo.failed(r, B, 102.0)
    r = fo.failed(r, C, 103.0)
    assert (r.address, r.failures, r.failovers) == (A, 3, 3)


def test_success_stays_and_ends_the_failure_streak() -> None:
    r = fo.failed(route(), A, 101.0)
    r = fo.succeeded(r, B)
    assert (r.address, r.failures, r.failovers) == (B, 0, 1)
    assert fo.succeeded(r, B) is r


def test_a_stale_report_about_an_address_already_left_changes_nothing() -> None:
    """Two upload threads failing on A together move the route one step, not two."""
    r = fo.failed(route(), A, 101.0)
    assert fo.failed(r, A, 101.5) == r
    assert fo.succeeded(fo.failed(r, B, 102.0), A).failures == 2


def test_one_address_never_counts_a_failover() -> None:
    r = fo.failed(route(A), A, 101.0)
    assert (r.address, r.failures, r.failovers, r.since) == (A, 1, 0, 100.0)


def test_only_address_errors_move_on() -> None:
    assert fo.moves_on("UNAVAILABLE") and fo.moves_on("DEADLINE_EXCEEDED") and fo.moves_on("")
    for code in ("RESOURCE_EXHAUSTED", "PERMISSION_DENIED", "ALREADY_EXISTS", "CANCELLED"):
        assert not fo.moves_on(code), code


def test_a_route_needs_an_address() -> None:
    with pytest.raises(ValueError, match="at least one"):
        fo.start((), 0.0)


def test_upload_moves_on_when_the_replica_does_not_answer_query_offset() -> None:
    r = fo.upload_failed(route(), A, "UNAVAILABLE", "query", 101.0)
    assert (r.address, r.failovers) == (B, 1)
    assert fo.upload_failed(route(), A, "DEADLINE_EXCEEDED", "", 101.0).address == B


def test_a_broken_upload_stream_resumes_on_the_same_replica_until_three_in_a_row() -> None:
    """A village link dropping mid-upload: the replica keeps the staged bytes, stay there."""
    r = fo.upload_failed(route(), A, "UNAVAILABLE", "upload", 101.0)
    assert (r.address, r.strikes, r.failures, r.failovers) == (A, 1, 1, 0)
    r = fo.upload_failed(r, A, "DEADLINE_EXCEEDED", "upload", 102.0)
    assert (r.address, r.strikes) == (A, 2)
    r = fo.upload_failed(r, A, "UNAVAILABLE", "upload", 103.0)
    assert (r.address, r.strikes, r.failovers) == (B, 0, 1)


def test_a_working_upload_clears_the_strikes() -> None:
    r = fo.upload_failed(route(), A, "UNAVAILABLE", "upload", 101.0)
    r = fo.upload_failed(fo.succeeded(r, A), A, "UNAVAILABLE", "upload", 102.0)
    r = fo.upload_failed(r, A, "UNAVAILABLE", "upload", 103.0)
    assert (r.address, r.strikes) == (A, 2)


def test_upload_errors_that_are_not_about_the_address_never_move() -> None:
    for code in ("RESOURCE_EXHAUSTED", "INTERNAL", "ABORTED", "CANCELLED"):
        for stage in ("query", "upload"):
            assert fo.upload_failed(route(), A, code, stage, 101.0) == route(), (code, stage)
    stale = fo.upload_failed(route(), B, "UNAVAILABLE", "query", 101.0)
    assert stale == route()


# -- leader redirects --------------------------------------------------------------------------


def test_redirect_to_a_listed_leader_is_accepted() -> None:
    r = fo.redirected(route(), A, C, 101.0)
    assert (r.address, r.failovers) == (C, 1)


def test_redirect_matches_addresses_without_case() -> None:
    assert fo.redirected(route(), A, " CTL-B.City:7443 ", 101.0).address == B


@pytest.mark.parametrize(
    "leader",
    ["evil.example:7443", "ctl-b.city:7444", "ctl-b.city", "", f"{B},{C}", "10.0.0.1:7443"],
)
def test_redirect_outside_the_list_is_refused_and_the_list_tried_in_order(leader: str) -> None:
    r = fo.redirected(route(), A, leader, 101.0)
    assert r.address == B  # the next configured address, never the named one
    r = fo.redirected(r, B, leader, 102.0)
    assert r.address == C


def test_redirect_to_the_refusing_address_itself_moves_on() -> None:
    assert fo.redirected(route(), A, A, 101.0).address == B


def test_stale_redirect_changes_nothing() -> None:
    r = fo.redirected(route(), A, C, 101.0)
    assert fo.redirected(r, A, B, 102.0) == r


def test_control_action_from_status_and_metadata() -> None:
    assert fo.control_action("FAILED_PRECONDITION", True) is ControlAction.REDIRECT
    assert fo.control_action("FAILED_PRECONDITION", False) is ControlAction.NEXT
    assert fo.control_action("UNAVAILABLE", False) is ControlAction.NEXT
    assert fo.control_action("DEADLINE_EXCEEDED", True) is ControlAction.NEXT
    for code in ("NOT_FOUND", "PERMISSION_DENIED", "INVALID_ARGUMENT", "CANCELLED", "INTERNAL"):
        assert fo.control_action(code, False) is ControlAction.STAY, code


# -- home replica ------------------------------------------------------------------------------


def test_upload_route_returns_home_after_working_elsewhere() -> None:
    r = fo.succeeded(fo.failed(route(), A, 100.0), B)
    assert fo.prefer_home(r, 699.0, 600.0) is r
    home = fo.prefer_home(r, 700.0, 600.0)
    assert (home.address, home.since, home.failovers) == (A, 700.0, 1)


def test_no_return_home_while_failing_over() -> None:
    r = fo.failed(route(), A, 100.0)
    assert fo.prefer_home(r, 10_000.0, 600.0) is r
    assert fo.prefer_home(route(), 10_000.0, 600.0).address == A


# -- backoff schedule --------------------------------------------------------------------------


def test_no_wait_without_failures() -> None:
    assert fo.retry_delay_s(0, 3, 1.0, 60.0, 0.7) == 0.0


def test_quick_within_a_pass_doubling_per_failed_pass_capped() -> None:
    ceilings = [fo.retry_delay_s(f, 2, 1.0, 10.0, 1.0) for f in range(1, 11)]
    assert ceilings == [2.0, 2.0, 4.0, 4.0, 8.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    single = [fo.retry_delay_s(f, 1, 0.5, 30.0, 1.0) for f in range(1, 8)]
    assert single == [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    # Even the first wait is spread: agents redirected together do not return together.
    assert fo.retry_delay_s(1, 3, 1.0, 60.0, 0.0) == 1.0
    assert fo.retry_delay_s(1, 3, 1.0, 60.0, 1.0) == 2.0


def test_jitter_stays_between_initial_and_ceiling_never_a_tight_loop() -> None:
    for jitter in (0.0, 0.25, 0.999, 1.0, -3.0, 7.0):
        for failures in (1, 5, 50, 10_000):
            d = fo.retry_delay_s(failures, 3, 1.0, 60.0, jitter)
            assert 1.0 <= d <= 60.0, (jitter, failures, d)
    assert fo.retry_delay_s(7, 3, 1.0, 60.0, 0.5) == pytest.approx(4.5)


# -- configuration -----------------------------------------------------------------------------

BASE = 'device_id = "nvr-1"\n[uplink]\n'


def test_one_controller_still_works() -> None:
    cfg = parse_config(BASE + 'controller = "ctl.city:7443"\n', "agent.toml")
    assert cfg.uplink.addresses == ("ctl.city:7443",)
    assert parse_config('device_id = "nvr-1"\n', "agent.toml").uplink.addresses == ()


def test_several_controllers_in_order() -> None:
    cfg = parse_config(BASE + f'controllers = ["{A}", "{B}", "[::1]:7443"]\n', "agent.toml")
    assert cfg.uplink.addresses == (A, B, "[::1]:7443")


def test_controllers_from_the_environment_as_a_comma_list() -> None:
    cfg = parse_config(BASE, "agent.toml", {"VIGIL_UPLINK__CONTROLLERS": f"{B}, {A}"})
    assert cfg.uplink.addresses == (B, A)


@pytest.mark.parametrize(
    ("uplink", "needle"),
    [
        (f'controllers = ["{A}", "{A.upper()}"]', f"duplicate controller addresses: {A}"),
        ('controllers = ["ctl.city"]', "must be HOST:PORT"),
        ('controllers = ["ctl.city:0"]', "must be HOST:PORT"),
        ('controllers = ["ctl.city:70000"]', "must be HOST:PORT"),
        ('controllers = ["https://ctl.city:7443"]', "must be HOST:PORT"),
        ('controllers = ["::1:7443"]', "must be HOST:PORT"),
        ('controllers = ["ctl city:7443"]', "must be HOST:PORT"),
        (
            "controllers = [" + ", ".join(f'"c{i}.city:7443"' for i in range(9)) + "]",
            "at most 8 controller addresses, got 9",
        ),
        (f'controller = "{A}"\ncontrollers = ["{B}"]', "not both"),
        (f'controller = "{A},{B}"', "uplink.controllers"),
        ('controller = "ctl.city"', "must be HOST:PORT"),
    ],
)
def test_bad_controller_lists_are_refused_naming_the_field(uplink: str, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_config(BASE + uplink + "\n", "/etc/vigil-agent/agent.toml")
    message = str(err.value)
    assert message.startswith("/etc/vigil-agent/agent.toml: invalid configuration: uplink")
    assert needle in message


# -- health and the textfile -------------------------------------------------------------------


def health_with(routes: RouteStatus | None) -> str:
    msg = pl.health("nvr-1", 1, 1, 1_700_000_000_000_000, pl.SystemFigures(1, 2, 3, 4), None, [], 0)
    pl.add_routes(msg, routes)
    return textfile.render(msg)


def test_health_and_textfile_show_where_the_uplink_is_connected() -> None:
    text = health_with(RouteStatus(control_address=C, upload_address=A, failovers=3))
    families = {f.name: f for f in text_string_to_metric_families(text)}
    info = families["vigil_agent_controller_info"].samples
    routes = {(s.labels["role"], s.labels["address"]) for s in info}
    assert routes == {("control", C), ("upload", A)}
    failovers = families["vigil_agent_controller_failovers"].samples
    assert [(s.name, s.value) for s in failovers] == [("vigil_agent_controller_failovers_total", 3)]


def test_no_route_series_without_an_uplink() -> None:
    text = health_with(None)
    assert "vigil_agent_controller" not in text
    assert text_string_to_metric_families(text)


# -- the shell's bookkeeping (no connection is made: channels are lazy) --------------------------


def test_health_reads_both_routes_and_sums_their_failovers() -> None:
    clock = ManualClock()
    pool = ChannelPool(grpc.local_channel_credentials(), 64 * 1024)
    client = failover_client([A, B], pool, 64 * 1024, None, clock, home_after_s=None)
    control = RouteKeeper([A, B, C], clock, "control")
    moves: list[str] = []
    control.add_listener(moves.append)
    client.route.failed(A, "UNAVAILABLE")
    client.route.failed(A, "UNAVAILABLE")  # a second thread's late report: no second move
    control.redirected(A, C)
    control.redirected(C, "evil.example:7443")  # outside the list: the next one, A
    status = route_status(client, control)
    assert status is not None
    assert status() == RouteStatus(control_address=A, upload_address=B, failovers=3)
    assert moves == [C, A]
    assert route_status(object(), control) is None
    pool.close()


def test_provisioning_writes_the_city_s_controllers_in_order() -> None:
    cams = (CameraSpec("cam-1", "rtsp", url="rtsp://192.0.2.10/1"),)
    record = DeviceRecord(DeviceSpec("nvr-1", "wudu", "v1", "nvr", cams), "t", "fp", 0)

    def toml(controllers: list[str]) -> str:
        return agent_toml(record, City("https://city", "installer", controllers, "enroll:7444"))

    # The agent reads the list in this order (parse_config needs the credentials file beside
    # it; the uplink section alone is what this is about).
    assert tomllib.loads(toml([A]))["uplink"]["controllers"] == [A]
    assert tomllib.loads(toml([B, A, C]))["uplink"]["controllers"] == [B, A, C]
