"""The managed Mosquitto as a child process: it dies with its controller, and a restarted
controller reclaims one that did not (crash-only, without systemd cleaning a cgroup).

- Dying with the controller: the broker runs under `setpriv --pdeathsig TERM` (a
  `PR_SET_PDEATHSIG` set between fork and exec where setpriv is missing), so the kernel stops
  the broker when the thread that started it ends, kill -9 included. The controller starts it
  from its main thread (`serve`); a caller starting it from a short-lived thread would lose
  the broker with that thread.
- Reclaiming: the controller holds an exclusive lock on `<broker dir>/broker.lock` (its pid
  inside) and the broker inherits that open file, so the lock is held while either lives.
  On start a held lock means an earlier broker still runs: when the pid file names this
  directory's mosquitto and its controller is gone (controller.fleet.broker_orphan.decide),
  it is stopped (SIGTERM, SIGKILL after a grace) and a fresh one started with the new
  controller's password; anything else is refused and left alone.

Configuration, ACL and accounts: controller.fleet.broker.
"""

from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable

from controller.fleet.broker import (
    ACL_NAME,
    CONTROLLER_USER,
    MOSQUITTO_HINT,
    BrokerError,
    BrokerSettings,
    acl_text,
    add_account,
    add_role,
    config_text,
    is_controller_account,
    preserved_accounts,
    read_roles,
    role_lists,
    write_accounts,
    write_private,
)
from controller.fleet.broker_orphan import (
    LOCK_NAME,
    decide,
    is_our_broker,
    read_facts,
    read_process,
)

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
ORPHAN_GRACE_S = 5.0  # SIGTERM, then SIGKILL


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A `preexec_fn`: the child asks for SIGTERM when its parent (thread) dies. libc is
    resolved here, in the parent; the child only calls it (no imports after fork)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def launch_argv(
    argv: list[str], die_with_controller: bool, setpriv: str | None
) -> tuple[list[str], Callable[[], None] | None]:
    """The broker's command line, and a `preexec_fn` only where nothing else can do its job.

    `setpriv --pdeathsig TERM` (util-linux) asks for the signal and execs the broker, so the
    child runs no Python: Popen can then use vfork, which runs no fork handlers. A Python
    `preexec_fn` forces a plain fork, and gRPC's fork handlers then run in the child while the
    controller's gRPC threads are busy: the child aborted ("epoll_wait error: Bad file
    descriptor", exit -6) and the controller did not start (seen once in the fault run).
    """
    if not die_with_controller:
        return argv, None
    if setpriv:
        return [setpriv, "--pdeathsig", "TERM", "--", *argv], None
    return argv, die_with_parent(os.getpid())


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


class ManagedBroker:
    """A Mosquitto child process with the fleet configuration, stopped by its PID.

    `start()` takes the data-dir lock (reclaiming an orphaned broker), writes
    mosquitto.conf, the password file and the ACL into `data_dir` and waits until the
    listener accepts connections; `stop()` terminates the process it started.
    """

    def __init__(self, settings: BrokerSettings) -> None:
        self.settings = settings
        self.conf_path = settings.data_dir / "mosquitto.conf"
        self.password_file = settings.data_dir / "passwd"
        self.acl_file = settings.data_dir / ACL_NAME
        self.log_path = settings.data_dir / "mosquitto.log"
        self.lock_path = settings.data_dir / LOCK_NAME
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock_fd: int | None = None
        self.reclaimed: list[int] = []  # pids of orphans this object stopped (logged, tested)

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def write_files(self) -> None:
        """Write configuration, ACL and accounts (without starting anything)."""
        s = self.settings
        s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Device accounts added earlier (`vigil-controller mqtt-account`) survive a restart;
        # the accounts in `settings` (the controller's own, with a fresh password) replace theirs.
        kept = preserved_accounts(self.password_file, exclude=set(s.accounts))
        write_accounts(self.password_file, s.accounts, s.account_tool)
        if kept:
            with open(self.password_file, "a", encoding="utf-8") as out:
                out.writelines(kept)
        # Private: the configuration may hold a bridge's password.
        write_private(self.acl_file, self.acl())
        write_private(self.conf_path, config_text(s, self.password_file, self.acl_file))

    def acl(self) -> str:
        """The ACL for the settings' accounts plus the roles file's operators and tools."""
        roles = read_roles(self.settings.data_dir)
        for user in self.settings.accounts:  # replica accounts given at start
            if is_controller_account(user) and user != CONTROLLER_USER:
                roles[user] = "controller"
        lists = role_lists(roles, self.settings.operators)
        return acl_text(relay_users=self.settings.relay_users, **lists)

    def start(self, timeout_s: float = 10.0) -> None:
        """Start Mosquitto and wait for its listener; raises BrokerError with its log."""
        if self._proc is not None:
            raise BrokerError("broker already started")
        exe = shutil.which(self.settings.mosquitto_bin)
        if exe is None:
            raise BrokerError(f"{self.settings.mosquitto_bin} is not installed: {MOSQUITTO_HINT}")
        self.settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._take_lock()
        try:
            self._spawn(exe, timeout_s)
        except BaseException:
            self._release_lock()
            raise

    def _spawn(self, exe: str, timeout_s: float) -> None:
        if _port_open(self.settings.host, self.settings.port):
            raise BrokerError(
                f"cannot start the managed broker: {self.settings.host}:{self.settings.port} is "
                "already in use (another broker?): set [mqtt] port, or mode = 'external' to "
                "use that broker, or mode = 'off'"
            )
        self.write_files()
        assert self._lock_fd is not None
        argv, preexec = launch_argv(
            [exe, "-c", str(self.conf_path)],
            self.settings.die_with_controller,
            shutil.which("setpriv"),
        )
        with open(self.log_path, "ab") as log_file:
            self._proc = subprocess.Popen(
                argv,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=(self._lock_fd,),  # the broker holds the lock too while it lives
                preexec_fn=preexec,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                code, self._proc = self._proc.returncode, None
                raise BrokerError(f"mosquitto exited with {code}: {self.log()}")
            if _port_open(self.settings.host, self.settings.port):
                return
            time.sleep(0.02)
        self.stop()
        raise BrokerError(f"mosquitto not listening on {self.settings.port}: {self.log()}")

    def _take_lock(self) -> None:
        """Lock the data dir for this controller, first stopping a verified orphan."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if not _try_lock(fd):
                self._reclaim(fd)
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:
            os.close(fd)
            raise
        self._lock_fd = fd

    def _reclaim(self, fd: int) -> None:
        d = self.settings.data_dir
        verdict = decide(read_facts(d), self.conf_path, os.getuid(), d)
        if verdict.action == "busy" or verdict.pid is None:
            raise BrokerError(f"cannot start the managed broker: {verdict.reason}")
        pid = verdict.pid
        log.warning("fleet: reclaiming the managed broker: %s; restarting it", verdict.reason)
        for sig in (signal.SIGTERM, signal.SIGKILL):
            # Checked again right before each signal: never signal a pid that changed hands.
            if is_our_broker(read_process(pid), self.conf_path, os.getuid()):
                os.kill(pid, sig)
            deadline = time.monotonic() + ORPHAN_GRACE_S
            while time.monotonic() < deadline:
                if _try_lock(fd):
                    self.reclaimed.append(pid)
                    return
                time.sleep(0.05)
        raise BrokerError(
            f"cannot start the managed broker: the orphaned mosquitto (pid {pid}) did not "
            f"release {self.lock_path}"
        )

    def _release_lock(self) -> None:
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            os.close(fd)

    def add_account(self, username: str, password: str, role: str = "device") -> None:
        """Provision one more account on the running broker (file, then SIGHUP). `role`:
        "device", "operator" (read-only on vigil/v1/#) or "controller" (the controller's
        rights: a tool publishing commands must not borrow the controller's own account,
        whose connection it would replace)."""
        reserved = role != "device"
        if reserved:
            add_role(self.settings.data_dir, username, role)
            write_private(self.acl_file, self.acl())
        add_account(
            self.password_file,
            username,
            password,
            self.settings.account_tool,
            reserved_ok=reserved,
        )
        self.reload()

    def reload(self) -> None:
        """Make Mosquitto re-read its password file and ACL."""
        if self._proc is not None and self._proc.poll() is None:
            os.kill(self._proc.pid, signal.SIGHUP)

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10.0) -> None:
        """Terminate the broker this object started (by PID), killing it if it hangs; then
        release the data-dir lock."""
        proc, self._proc = self._proc, None
        try:
            if proc is None or proc.poll() is not None:
                return
            proc.terminate()
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=timeout_s)
        finally:
            self._release_lock()
