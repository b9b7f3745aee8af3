"""How the managed broker is launched: no Python runs in the child where setpriv exists."""

from __future__ import annotations

from controller.fleet.broker_process import launch_argv

BROKER = ["/usr/sbin/mosquitto", "-c", "/data/mosquitto.conf"]


def test_setpriv_asks_for_the_parent_death_signal_and_needs_no_preexec_hook() -> None:
    argv, preexec = launch_argv(BROKER, True, "/usr/bin/setpriv")
    assert argv == ["/usr/bin/setpriv", "--pdeathsig", "TERM", "--", *BROKER]
    assert preexec is None  # so Popen may vfork: no fork handlers (gRPC's) run in the child


def test_without_setpriv_the_child_sets_the_signal_itself() -> None:
    argv, preexec = launch_argv(BROKER, True, None)
    assert argv == BROKER
    assert preexec is not None and callable(preexec)


def test_a_broker_that_may_outlive_the_controller_is_started_plainly() -> None:
    assert launch_argv(BROKER, False, "/usr/bin/setpriv") == (BROKER, None)
