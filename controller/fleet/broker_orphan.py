"""Recognising the managed broker an earlier controller left behind (crash-only restart).

A controller killed with -9 used to leave its Mosquitto running (its own session), and the
restarted controller then refused to start: the port was taken. Two facts identify an orphan
without guessing from the port:

- the data-dir lock `<broker dir>/broker.lock`: the controller holds an exclusive `flock` on
  it and its broker inherits the same open file, so the lock is held while either lives; the
  file names the controller (its pid) that took it;
- the pid file Mosquitto writes (`mosquitto.pid`), checked against /proc: the process must be
  a `mosquitto` run with *this* directory's `mosquitto.conf`, by this user, and not the child
  of a still-running owner. Only then is it signalled: a pid file left by a dead broker may
  name a reused pid, and another controller's live broker must never be touched.

`decide` is the pure rule (unit-tested); `read_facts` gathers what it needs from /proc.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

LOCK_NAME = "broker.lock"
PID_NAME = "mosquitto.pid"
CONF_NAME = "mosquitto.conf"


@dataclass(frozen=True, slots=True)
class ProcessFacts:
    """What /proc says about one pid (None fields: no such process, or unreadable)."""

    pid: int
    argv: tuple[str, ...]
    uid: int
    ppid: int
    alive: bool  # exists and is not a zombie


@dataclass(frozen=True, slots=True)
class LockFacts:
    """The lock is held (by someone): who took it and which broker the pid file names."""

    owner_pid: int | None
    owner: ProcessFacts | None
    broker_pid: int | None
    broker: ProcessFacts | None


@dataclass(frozen=True, slots=True)
class Verdict:
    action: Literal["reclaim", "busy"]
    reason: str
    pid: int | None = None  # the orphan to stop (reclaim)


def is_our_broker(proc: ProcessFacts | None, conf_path: Path, uid: int) -> bool:
    """`proc` is a live mosquitto started with exactly this configuration file by `uid`."""
    if proc is None or not proc.alive or proc.uid != uid or not proc.argv:
        return False
    if Path(proc.argv[0]).name != "mosquitto":
        return False
    args = list(proc.argv[1:])
    return any(
        a == "-c" and i + 1 < len(args) and Path(args[i + 1]) == conf_path
        for i, a in enumerate(args)
    )


def decide(facts: LockFacts, conf_path: Path, uid: int, broker_dir: Path) -> Verdict:
    """The lock is held: reclaim a verified orphan, else refuse (never touch the unknown)."""
    owner_alive = facts.owner is not None and facts.owner.alive
    broker = facts.broker
    if broker is not None and is_our_broker(broker, conf_path, uid):
        if owner_alive and broker.ppid == facts.owner_pid:
            return Verdict(
                "busy",
                f"another controller (pid {facts.owner_pid}) runs the managed broker in "
                f"{broker_dir}: stop it, or give this controller its own data_dir",
            )
        return Verdict(
            "reclaim",
            f"mosquitto pid {broker.pid} (config {conf_path}) outlived its controller "
            f"(pid {facts.owner_pid})",
            broker.pid,
        )
    if owner_alive:
        return Verdict(
            "busy",
            f"another controller (pid {facts.owner_pid}) holds {broker_dir / LOCK_NAME}: stop "
            "it, or give this controller its own data_dir",
        )
    return Verdict(
        "busy",
        f"{broker_dir / LOCK_NAME} is held by a process that is not this directory's "
        f"mosquitto (pid file names {facts.broker_pid}): not touching it; stop that process",
    )


def read_process(pid: int) -> ProcessFacts | None:
    """/proc/PID's argv, real uid, parent and liveness; None when there is no such process."""
    proc = Path("/proc") / str(pid)
    try:
        raw = (proc / "cmdline").read_bytes()
        status = (proc / "status").read_text()
    except (OSError, ValueError):
        return None
    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
    try:
        uid = int(fields["Uid"].split()[0])
        ppid = int(fields["PPid"].strip())
        state = fields["State"].strip()[:1]
    except (KeyError, ValueError, IndexError):
        return None
    argv = tuple(a.decode(errors="replace") for a in raw.split(b"\0") if a)
    return ProcessFacts(pid, argv, uid, ppid, alive=state not in ("Z", "X"))


def read_pid(path: Path) -> int | None:
    try:
        pid = int(path.read_text(encoding="utf-8").strip() or "0")
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return pid if pid > 0 else None


def read_facts(broker_dir: Path) -> LockFacts:
    owner_pid = read_pid(broker_dir / LOCK_NAME)
    broker_pid = read_pid(broker_dir / PID_NAME)
    return LockFacts(
        owner_pid,
        read_process(owner_pid) if owner_pid else None,
        broker_pid,
        read_process(broker_pid) if broker_pid else None,
    )
