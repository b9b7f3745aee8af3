"""Commands the controller sends to agents (`cmd/<verb>`), checked before they leave.

Pure. The agent validates again (it must never trust the network); checking here too gives
the operator a clear error at once instead of an error ack later.
"""

from __future__ import annotations

import re

from protos.vigil.v1 import common_pb2, fleet_pb2

VERBS = frozenset({"hold", "release", "rebirth", "reconfigure", "upload_range"})
MAX_CONFIG_BYTES = 256 * 1024
MAX_RANGE_US = 31 * 24 * 3600 * 1_000_000
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


class CommandError(ValueError):
    """The command is not valid; nothing was sent."""


def _check_range(start_us: int, end_us: int) -> None:
    if start_us <= 0 or end_us <= start_us:
        raise CommandError(f"time range must have 0 < start < end, got [{start_us}, {end_us})")
    if end_us - start_us > MAX_RANGE_US:
        raise CommandError("time range longer than 31 days")


def _check_id(what: str, value: str) -> None:
    if not _ID_RE.match(value):
        raise CommandError(f"{what} must match {_ID_RE.pattern}, got {value[:140]!r}")


def build_command(
    verb: str,
    *,
    camera_id: str = "",
    start_us: int = 0,
    end_us: int = 0,
    case_id: str = "",
    hold_id: str = "",
    config_toml: str = "",
    traffic_class: int = common_pb2.TRAFFIC_CLASS_EVIDENCE,
    deadline_us: int = 0,
) -> fleet_pb2.Command:
    """A validated Command, or CommandError saying what is wrong."""
    if verb not in VERBS:
        raise CommandError(f"unknown verb {verb!r}; known: {', '.join(sorted(VERBS))}")
    cmd = fleet_pb2.Command(verb=verb)
    if verb in ("hold", "upload_range"):
        _check_id("camera_id", camera_id)
        _check_range(start_us, end_us)
        cmd.camera_id = camera_id
        cmd.range.start_unix_us = start_us
        cmd.range.end_unix_us = end_us
    if verb == "hold":
        _check_id("case_id", case_id)
        cmd.case_id = case_id
    elif verb == "release":
        if hold_id:
            _check_id("hold_id", hold_id)
            cmd.hold_id = hold_id
        else:
            _check_id("camera_id", camera_id)
            _check_id("case_id", case_id)
            _check_range(start_us, end_us)
            cmd.camera_id, cmd.case_id = camera_id, case_id
            cmd.range.start_unix_us, cmd.range.end_unix_us = start_us, end_us
    elif verb == "reconfigure":
        if not config_toml.strip():
            raise CommandError("reconfigure needs the new agent.toml text")
        if len(config_toml.encode()) > MAX_CONFIG_BYTES:
            raise CommandError(f"configuration larger than {MAX_CONFIG_BYTES} bytes")
        cmd.config_toml = config_toml
    elif verb == "upload_range":
        if traffic_class not in common_pb2.TrafficClass.values() or traffic_class == 0:
            raise CommandError(f"unknown traffic class {traffic_class}")
        cmd.traffic_class = traffic_class  # type: ignore[assignment]
        cmd.deadline_unix_us = deadline_us
        if case_id:
            _check_id("case_id", case_id)
            cmd.case_id = case_id
    return cmd
