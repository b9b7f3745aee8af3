"""Commands from the controller (`cmd/<verb>`), validated into typed requests. Pure.

Whatever arrives (an unknown verb, a truncated payload, a time range backwards, a config that
does not parse, a camera this device does not have), the answer is a `CommandRejected` with a
message the operator can act on, which the reporter sends back on `cmd_ack`. Nothing here
touches the buffer or the running configuration: the reporter applies a request only after it
passed these checks, so a bad command changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from google.protobuf.message import DecodeError

from edge_agent.config import AgentConfig, ConfigError, parse_config
from edge_agent.model import Hold
from protos.vigil.v1 import fleet_pb2

MAX_COMMAND_BYTES = 256 * 1024
MAX_RANGE_US = 31 * 24 * 3600 * 1_000_000
MAX_TEXT = 128
VERBS = ("hold", "release", "rebirth", "reconfigure", "upload_range")


class CommandRejected(Exception):
    """The command cannot be carried out; the message goes back to the controller."""


@dataclass(frozen=True, slots=True)
class HoldRequest:
    camera_id: str
    start_us: int
    end_us: int
    case_id: str


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    hold_id: str
    camera_id: str
    start_us: int
    end_us: int
    case_id: str


@dataclass(frozen=True, slots=True)
class RebirthRequest:
    pass


@dataclass(frozen=True, slots=True)
class ReconfigureRequest:
    config: AgentConfig


@dataclass(frozen=True, slots=True)
class UploadRangeRequest:
    camera_id: str
    start_us: int
    end_us: int
    traffic_class: int
    deadline_us: int
    case_id: str


Request = HoldRequest | ReleaseRequest | RebirthRequest | ReconfigureRequest | UploadRangeRequest


def _text(what: str, value: str, required: bool = True) -> str:
    if required and not value:
        raise CommandRejected(f"{what} is required")
    if len(value) > MAX_TEXT or any(ord(c) < 32 for c in value):
        raise CommandRejected(f"{what} must be at most {MAX_TEXT} printable characters")
    return value


def _range(cmd: fleet_pb2.Command) -> tuple[int, int]:
    start, end = cmd.range.start_unix_us, cmd.range.end_unix_us
    if start <= 0 or end <= start:
        raise CommandRejected(f"time range must have 0 < start < end, got [{start}, {end})")
    if end - start > MAX_RANGE_US:
        raise CommandRejected("time range longer than 31 days")
    return start, end


def _camera(cmd: fleet_pb2.Command, cameras: frozenset[str]) -> str:
    cam = _text("camera_id", cmd.camera_id)
    if cam not in cameras:
        raise CommandRejected(f"no camera {cam!r} on this device")
    return cam


def parse_command(
    verb: str,
    payload: bytes,
    current: AgentConfig,
    env: Mapping[str, str] | None = None,
) -> Request:
    """A validated request for `cmd/<verb>` with `payload`, or CommandRejected."""
    if verb not in VERBS:
        raise CommandRejected(f"unknown verb {verb[:64]!r}; known: {', '.join(VERBS)}")
    if len(payload) > MAX_COMMAND_BYTES:
        raise CommandRejected(f"command larger than {MAX_COMMAND_BYTES} bytes")
    cmd = fleet_pb2.Command()
    try:
        cmd.ParseFromString(payload)
    except DecodeError as exc:
        raise CommandRejected(f"malformed command payload: {exc}") from None
    if cmd.verb and cmd.verb != verb:
        raise CommandRejected(f"payload verb {cmd.verb[:64]!r} does not match topic verb {verb!r}")
    cameras = frozenset(c.id for c in current.cameras)
    if verb == "hold":
        start, end = _range(cmd)
        return HoldRequest(_camera(cmd, cameras), start, end, _text("case_id", cmd.case_id))
    if verb == "release":
        if cmd.hold_id:
            return ReleaseRequest(_text("hold_id", cmd.hold_id), "", 0, 0, "")
        start, end = _range(cmd)
        return ReleaseRequest("", _camera(cmd, cameras), start, end, _text("case_id", cmd.case_id))
    if verb == "rebirth":
        return RebirthRequest()
    if verb == "reconfigure":
        return ReconfigureRequest(validate_new_config(cmd.config_toml, current, env))
    start, end = _range(cmd)
    return UploadRangeRequest(
        camera_id=_camera(cmd, cameras),
        start_us=start,
        end_us=end,
        traffic_class=int(cmd.traffic_class),
        deadline_us=cmd.deadline_unix_us,
        case_id=_text("case_id", cmd.case_id, required=False),
    )


def validate_new_config(
    text: str, current: AgentConfig, env: Mapping[str, str] | None = None
) -> AgentConfig:
    """Parse a pushed agent.toml; identity (device, county, site) cannot change remotely,
    because it is bound to the device's certificate and broker account."""
    if not text.strip():
        raise CommandRejected("reconfigure needs the new agent.toml text")
    try:
        new = parse_config(text, "reconfigure command", env)
    except ConfigError as exc:
        raise CommandRejected(str(exc)) from None
    for name in ("device_id", "county", "site"):
        if getattr(new, name) != getattr(current, name):
            raise CommandRejected(
                f"reconfigure cannot change {name} ({getattr(current, name)!r} -> "
                f"{getattr(new, name)!r}); re-provision the device instead"
            )
    return new


def holds_to_release(holds: Sequence[Hold], req: ReleaseRequest) -> list[str]:
    """Ids of the holds a release names: one by id, or all matching camera, range and case."""
    if req.hold_id:
        return [h.hold_id for h in holds if h.hold_id == req.hold_id]
    return [
        h.hold_id
        for h in holds
        if h.camera_id == req.camera_id
        and h.case_id == req.case_id
        and h.start_us == req.start_us
        and h.end_us == req.end_us
    ]
