"""The fleet service's tunables and its record of a sent command (plain values)."""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field

from controller.fleet import alerts as al
from controller.fleet import history as hi
from controller.fleet import monitor as mo
from controller.fleet.ratelimit import RatePolicy
from protos.vigil.v1 import fleet_pb2


@dataclass(frozen=True, slots=True)
class FleetOptions:
    # Accept devices missing from the directory, pinned to the site they first appear at
    # (the demo without a registry). Off in production: unknown devices are ignored.
    accept_unregistered: bool = False
    monitor: mo.MonitorPolicy = field(default_factory=mo.MonitorPolicy)
    rules: al.AlertRules = field(default_factory=al.AlertRules)
    rates: RatePolicy = field(default_factory=RatePolicy)
    history: hi.HistoryPolicy = field(default_factory=hi.HistoryPolicy)
    tick_s: float = 2.0
    # How often the device directory is refreshed and, for replicas, shared health and
    # alerts are exchanged with the database.
    sync_s: float = 2.0
    events_kept: int = 5000
    alert_log_kept: int = 5000
    pending_commands_kept: int = 10_000


@dataclass(frozen=True, slots=True)
class CommandRecord:
    correlation_id: str
    device_id: str
    verb: str
    sent_us: int
    ack: fleet_pb2.CommandAck | None = None


def match_ack(
    commands: MutableMapping[str, CommandRecord],
    device_id: str,
    ack: fleet_pb2.CommandAck,
    corr: bytes | None,
) -> str:
    """Record `ack` against the command it answers (its correlation data, sent to this
    device, not answered yet): "ack", or "ack_unmatched" changing nothing."""
    key = corr.decode("ascii", "replace") if corr else ""
    pending = commands.get(key)
    if pending is None or pending.device_id != device_id or pending.ack is not None:
        return "ack_unmatched"
    commands[key] = CommandRecord(key, pending.device_id, pending.verb, pending.sent_us, ack)
    return "ack"
