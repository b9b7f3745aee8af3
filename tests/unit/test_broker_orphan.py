"""Which broker a restarting controller may stop: only its own orphan, nothing else."""

from __future__ import annotations

from pathlib import Path

from controller.fleet.broker_orphan import LockFacts, ProcessFacts, decide, is_our_broker

DIR = Path("/data/mosquitto")
CONF = DIR / "mosquitto.conf"
UID = 1000


def mosq(pid: int = 50, ppid: int = 1, conf: Path = CONF, **kw: object) -> ProcessFacts:
    fields: dict[str, object] = {
        "pid": pid,
        "argv": ("/usr/sbin/mosquitto", "-c", str(conf)),
        "uid": UID,
        "ppid": ppid,
        "alive": True,
    }
    fields.update(kw)
    return ProcessFacts(**fields)  # type: ignore[arg-type]


def controller(pid: int = 40, alive: bool = True) -> ProcessFacts:
    return ProcessFacts(pid, ("python", "-m", "controller", "serve"), UID, 1, alive)


def test_our_broker_is_mosquitto_with_this_config_and_user() -> None:
    assert is_our_broker(mosq(), CONF, UID)
    assert not is_our_broker(None, CONF, UID)
    assert not is_our_broker(mosq(conf=Path("/other/mosquitto.conf")), CONF, UID)
    assert not is_our_broker(mosq(uid=0), CONF, UID)
    assert not is_our_broker(mosq(alive=False), CONF, UID)
    assert not is_our_broker(mosq(argv=("/bin/sleep", "-c", str(CONF))), CONF, UID)
    assert not is_our_broker(mosq(argv=("/usr/sbin/mosquitto", str(CONF))), CONF, UID)
    assert not is_our_broker(mosq(argv=()), CONF, UID)


def test_an_orphan_of_a_dead_controller_is_reclaimed() -> None:
    facts = LockFacts(40, None, 50, mosq())
    verdict = decide(facts, CONF, UID, DIR)
    assert verdict.action == "reclaim" and verdict.pid == 50
    # The owner's pid was reused by something else: the broker is still an orphan.
    reused = LockFacts(40, controller(alive=True), 50, mosq(ppid=1))
    assert decide(reused, CONF, UID, DIR).action == "reclaim"
    dead_owner = LockFacts(40, controller(alive=False), 50, mosq(ppid=40))
    assert decide(dead_owner, CONF, UID, DIR).action == "reclaim"


def test_a_live_controllers_broker_is_never_touched() -> None:
    verdict = decide(LockFacts(40, controller(), 50, mosq(ppid=40)), CONF, UID, DIR)
    assert verdict.action == "busy" and "pid 40" in verdict.reason


def test_an_unknown_lock_holder_is_refused() -> None:
    # Lock held by a live controller whose broker is not (yet) running.
    assert decide(LockFacts(40, controller(), None, None), CONF, UID, DIR).action == "busy"
    # Pid file names a process that is not our mosquitto (reused pid): leave it alone.
    stranger = ProcessFacts(50, ("/usr/bin/nginx",), UID, 1, True)
    verdict = decide(LockFacts(40, None, 50, stranger), CONF, UID, DIR)
    assert verdict.action == "busy" and verdict.pid is None and "not touching" in verdict.reason
