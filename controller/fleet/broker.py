"""A Mosquitto broker the controller starts and owns, for the demo and for tests.

Used only when no external broker is configured: a configured Mosquitto or EMQX is used as is.
The same code writes the test fixture's broker, so the demo and the tests run the broker
configuration that production is told to copy:

- authentication by password file (accounts added through `mosquitto_passwd`), no anonymous;
- a pattern ACL: a device (username = device id) may publish only its own `state`, `birth`,
  `health`, `event` and `cmd_ack`, and read only its own `cmd/#`; the controller account reads
  the whole fleet and writes commands, `vigil/v1/controller/#` and the audit witness topic
  (`vigil/v1/city/audit/checkpoint`, which no device can read or write); operator accounts
  (`vigil-op-NAME`, for `mqtt-tail` and `verify-audit --witness-broker`) read `vigil/v1/#`
  and write nothing of their own; tool accounts with the controller's rights (a test's raw
  commander, a controller replica's `vigil-controller-NAME` from `mqtt-account --replica`) are
  listed in `<broker dir>/roles` like operators, and replica accounts given at start get the
  same rights by name;
- raised queue limits: Mosquitto's default `max_queued_messages 1000` silently drops QoS 1
  messages for a busy subscriber (the controller), which would look like lost events;
- the client id is the username (`use_username_as_clientid`): a device connecting with
  another device's id, or with the controller's, gets its own id instead and can only ever
  replace its own earlier connection, never kick someone else offline. Device accounts may
  not take the controller's name (or any `vigil-` name);
- a packet size limit (`max_packet_size`, which Mosquitto 2 prefers to the older
  `message_size_limit`): a client sending a larger packet is disconnected and nothing of it
  is stored, so a device cannot retain megabytes on its state topic for the controller (and
  every subscriber) to download.

The process itself (start, stop, dying with the controller, reclaiming an orphan) is
controller.fleet.broker_process.ManagedBroker.

Errors: `BrokerError` (binary missing, bad account name, broker did not start).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from controller.audit.witness import AUDIT_WITNESS_TOPIC

MOSQUITTO_HINT = "apt-get install -y mosquitto mosquitto-clients"
CONTROLLER_USER = "vigil-controller"
# Names a device account may not take: the controller's, its replicas' and tools'.
RESERVED_PREFIX = "vigil-"
OPERATOR_PREFIX = "vigil-op-"
ROLES_FILE = "roles"  # "operator NAME" / "controller NAME" lines, next to the password file
ROLES = ("operator", "controller")
ACL_NAME = "acl"
# Fleet payloads are small protobufs (the controller refuses anything over 64 KiB itself):
# the broker refuses publishes over this, and drops clients sending larger packets.
MAX_MESSAGE_BYTES = 256 * 1024
PACKET_OVERHEAD_BYTES = 1024  # topic, properties and framing around the largest payload
# Usernames become ACL pattern substitutions and topic levels: keep them to a safe alphabet.
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class BrokerError(Exception):
    """The managed broker cannot be configured or started; the message says why."""


@dataclass(frozen=True, slots=True)
class Bridge:
    """Forward this broker's fleet traffic to another Mosquitto (a county broker to the city).

    Used by the benchmark to spread 20,000 device connections over two brokers (one process
    may hold only ~20,000 file descriptors here); also the shape of a county-level deployment.
    """

    host: str
    port: int
    username: str
    password: str


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where and how the managed broker runs. Accounts maps username -> password."""

    data_dir: Path
    port: int
    host: str = "127.0.0.1"
    accounts: dict[str, str] = field(default_factory=dict)
    max_queued_messages: int = 1_000_000
    max_inflight_messages: int = 1000
    max_connections: int = -1
    max_message_bytes: int = MAX_MESSAGE_BYTES
    bridge: Bridge | None = None
    # Accounts that may publish anywhere under vigil/v1 (a bridge from a county broker).
    relay_users: tuple[str, ...] = ()
    # Read-only operator accounts (mqtt-tail, the audit witness); more are added at run time
    # through the roles file (`vigil-controller mqtt-account --operator NAME`).
    operators: tuple[str, ...] = ()
    mosquitto_bin: str = "mosquitto"
    account_tool: str = "mosquitto_passwd"
    # The broker gets SIGTERM when the thread that started it dies (PR_SET_PDEATHSIG): a
    # killed controller never leaves its broker behind. False only to make an orphan in tests.
    die_with_controller: bool = True


def acl_text(
    controller_user: str = CONTROLLER_USER,
    relay_users: tuple[str, ...] = (),
    operators: tuple[str, ...] = (),
    controllers: tuple[str, ...] = (),
) -> str:
    """The ACL: device patterns for every account, then the controller's own rights.

    Write rights are an allow-list of the device's own topics (not `%u/#`), so a device can
    never publish a command to itself or to anyone else. The audit witness topic has five
    levels, which no device pattern (six or more) matches: only controller accounts write it.
    Operators get read rights only; the device patterns still apply to their names, but an
    operator name (`vigil-op-...`) is never a registered device, so the fleet ignores it.
    """
    lines = ["# Vigil fleet ACL: username = device id (%u)."]
    for leaf in ("state", "birth", "health", "event", "cmd_ack"):
        lines.append(f"pattern write vigil/v1/+/+/%u/{leaf}")
    lines.append("pattern read vigil/v1/+/+/%u/cmd/#")
    for user in (controller_user, *controllers):
        lines += [
            "",
            f"user {user}",
            "topic read vigil/v1/#",
            "topic write vigil/v1/+/+/+/cmd/#",
            "topic readwrite vigil/v1/controller/#",
            f"topic write {AUDIT_WITNESS_TOPIC}",
        ]
    for operator in operators:
        lines += ["", f"user {operator}", "topic read vigil/v1/#"]
    for relay in relay_users:
        lines += ["", f"user {relay}", "topic readwrite vigil/v1/#"]
    return "\n".join(lines) + "\n"


def read_roles(broker_dir: Path) -> dict[str, str]:
    """Account name -> role ("operator" or "controller") from the roles file ({} if none).
    Malformed lines are skipped: they never grant anything."""
    try:
        lines = (broker_dir / ROLES_FILE).read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return {}
    roles: dict[str, str] = {}
    for line in lines:
        parts = line.split()
        if len(parts) == 2 and parts[0] in ROLES and _ACCOUNT_RE.match(parts[1]):
            roles[parts[1]] = parts[0]
    return roles


def add_role(broker_dir: Path, username: str, role: str) -> None:
    """Record `username`'s role in the roles file (private, replacing an earlier role)."""
    if role not in ROLES:
        raise BrokerError(f"unknown broker role {role!r}: one of {', '.join(ROLES)}")
    check_account_name(username)
    roles = read_roles(broker_dir)
    roles[username] = role
    write_private(broker_dir / ROLES_FILE, "".join(f"{r} {u}\n" for u, r in roles.items()))


def rewrite_acl(broker_dir: Path) -> None:
    """Rewrite the managed broker's ACL in `broker_dir` from the roles file, when a broker
    has run there (the command-line `mqtt-account --operator`; SIGHUP then reloads it)."""
    acl = broker_dir / ACL_NAME
    if acl.exists():
        roles = read_roles(broker_dir)
        write_private(acl, acl_text(**role_lists(roles)))


def role_lists(roles: dict[str, str], operators: tuple[str, ...] = ()) -> dict[str, Any]:
    ops = {*operators, *(u for u, r in roles.items() if r == "operator")}
    return {
        "operators": tuple(sorted(ops)),
        "controllers": tuple(sorted(u for u, r in roles.items() if r == "controller")),
    }


def operator_account(name: str) -> str:
    """The broker account of operator `name`: always under `vigil-op-`, a name no device may
    take, so an operator can never pass for a device (nor a device for an operator)."""
    account = name if name.startswith(OPERATOR_PREFIX) else OPERATOR_PREFIX + name
    check_account_name(account)
    return account


def config_text(settings: BrokerSettings, password_file: Path, acl_file: Path) -> str:
    """mosquitto.conf for one private listener with authentication and the fleet ACL."""
    lines = [
        # As root, Mosquitto would switch to the `mosquitto` user, which cannot read a private
        # data dir; the managed broker runs as whoever runs the controller.
        f"user {_current_user()}",
        "per_listener_settings false",
        "persistence false",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        f"max_queued_messages {settings.max_queued_messages}",
        "max_queued_bytes 0",
        f"max_inflight_messages {settings.max_inflight_messages}",
        f"max_packet_size {settings.max_message_bytes + PACKET_OVERHEAD_BYTES}",
        "allow_anonymous false",
        f"password_file {password_file}",
        f"acl_file {acl_file}",
        f"pid_file {settings.data_dir / 'mosquitto.pid'}",
        f"listener {settings.port} {settings.host}",
        # A listener option: before the first `listener` line it would create a default
        # listener on 0.0.0.0:1883.
        "use_username_as_clientid true",
        f"max_connections {settings.max_connections}",
    ]
    if settings.bridge is not None:
        b = settings.bridge
        lines += [
            "",
            "connection vigil-uplink",
            f"address {b.host}:{b.port}",
            f"remote_username {b.username}",
            f"remote_password {b.password}",
            f"remote_clientid {b.username}",
            "bridge_protocol_version mqttv50",
            "cleansession true",
            "try_private true",
            "topic vigil/v1/+/+/+/state out 1",
            "topic vigil/v1/+/+/+/birth out 1",
            "topic vigil/v1/+/+/+/health out 0",
            "topic vigil/v1/+/+/+/event out 1",
            "topic vigil/v1/+/+/+/cmd_ack out 1",
            "topic vigil/v1/+/+/+/cmd/# in 1",
        ]
    return "\n".join(lines) + "\n"


def preserved_accounts(password_file: Path, exclude: set[str]) -> list[str]:
    """Hashed `user:hash` lines of a Mosquitto password file, minus `exclude`d users."""
    try:
        lines = password_file.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    return [line + "\n" for line in lines if ":" in line and line.split(":", 1)[0] not in exclude]


def signal_reload(data_dir: Path) -> bool:
    """SIGHUP a running managed broker (it re-reads its password file); False if none runs."""
    try:
        pid = int((data_dir / "mosquitto.pid").read_text().strip())
        os.kill(pid, signal.SIGHUP)
    except (OSError, ValueError):
        return False
    return True


def _current_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def is_controller_account(name: str) -> bool:
    """The lone controller's account or a replica's (`vigil-controller-<replica>`): each
    replica logs in with its own account (its client id), all with the controller's rights."""
    return name == CONTROLLER_USER or name.startswith(CONTROLLER_USER + "-")


def replica_account(name: str) -> str:
    """The broker account (and client id) of controller replica `name`:
    `vigil-controller-NAME`, which has the controller's rights and no device may take."""
    prefix = CONTROLLER_USER + "-"
    account = name if name.startswith(prefix) else prefix + name
    check_account_name(account)
    return account


def check_account_name(name: str) -> None:
    """Refuse account names that would break ACL patterns or topic levels."""
    if not _ACCOUNT_RE.match(name):
        raise BrokerError(f"invalid broker account name {name!r}: use [A-Za-z0-9_.-], max 64")


def check_device_account_name(name: str) -> None:
    """A device account: a safe name that is not the controller's (nor any `vigil-` name),
    since the client id is the username and the controller's id must stay its own."""
    check_account_name(name)
    if name.lower().startswith(RESERVED_PREFIX):
        raise BrokerError(f"broker account name {name!r} is reserved for the controller")


def add_account(
    password_file: Path,
    username: str,
    password: str,
    account_tool: str = "mosquitto_passwd",
    *,
    reserved_ok: bool = False,
) -> None:
    """Add or replace one account (a device id, or the controller) in a Mosquitto password file.

    `mosquitto_passwd` hashes it in whatever format the installed Mosquitto expects; the
    password goes to it on standard input, never on its command line (where `ps` shows it).
    A running broker re-reads the file on SIGHUP (`broker_process.ManagedBroker.reload`).
    """
    if reserved_ok:
        check_account_name(username)
    else:
        check_device_account_name(username)
    if ":" in password or "\n" in password or "\r" in password:
        raise BrokerError("broker passwords may not contain ':' or newlines")
    exe = shutil.which(account_tool)
    if exe is None:
        raise BrokerError(f"{account_tool} is not installed: {MOSQUITTO_HINT}")
    args = [exe]
    if not password_file.exists():
        args.append("-c")
    result = subprocess.run(
        [*args, str(password_file), username],
        input=f"{password}\n{password}\n",
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise BrokerError(f"mosquitto_passwd failed for {username!r}: {result.stderr.strip()}")
    password_file.chmod(0o600)  # the tool creates it with the umask's mode (0644)


def write_accounts(
    password_file: Path, accounts: dict[str, str], account_tool: str = "mosquitto_passwd"
) -> None:
    """Write many accounts at once: a plain file hashed in place by `mosquitto_passwd -U`.

    One process instead of one per account: 20,000 devices take about a second, not minutes.
    """
    for user, password in accounts.items():
        check_account_name(user)
        if ":" in password or "\n" in password:
            raise BrokerError("broker passwords may not contain ':' or newlines")
    exe = shutil.which(account_tool)
    if exe is None:
        raise BrokerError(f"{account_tool} is not installed: {MOSQUITTO_HINT}")
    password_file.unlink(missing_ok=True)
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.writelines(f"{u}:{p}\n" for u, p in accounts.items())
    result = subprocess.run([exe, "-U", str(password_file)], capture_output=True, text=True)
    if result.returncode != 0:
        password_file.unlink(missing_ok=True)
        raise BrokerError(f"mosquitto_passwd -U failed: {result.stderr.strip()}")


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by this user only (0600)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(text)
