"""Topic + payload bytes -> a typed protobuf message, or a reason why not.

Pure and total: any bytes from the network give either a `Decoded` or a `Rejected`, never an
exception, so a malformed or oversize payload can never crash the controller or `mqtt-tail`.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import DecodeError, Message

from controller.fleet.topics import DeviceTopic, parse_topic
from protos.vigil.v1 import fleet_pb2

# Births with many cameras are the largest messages; anything far beyond is abuse.
MAX_PAYLOAD_BYTES = 64 * 1024

FleetMessage = (
    fleet_pb2.DeviceState
    | fleet_pb2.Birth
    | fleet_pb2.Health
    | fleet_pb2.Event
    | fleet_pb2.CommandAck
    | fleet_pb2.Command
)

_TYPES: dict[str, type[Message]] = {
    "state": fleet_pb2.DeviceState,
    "birth": fleet_pb2.Birth,
    "health": fleet_pb2.Health,
    "event": fleet_pb2.Event,
    "cmd_ack": fleet_pb2.CommandAck,
    "cmd": fleet_pb2.Command,
}


@dataclass(frozen=True, slots=True)
class Decoded:
    topic: DeviceTopic
    message: FleetMessage


@dataclass(frozen=True, slots=True)
class Rejected:
    """Why a message was dropped: bad_topic, oversize or malformed (with detail)."""

    reason: str
    detail: str


def decode(topic: str, payload: bytes) -> Decoded | Rejected:
    parsed = parse_topic(topic)
    if parsed is None:
        return Rejected("bad_topic", f"not a Vigil device topic: {topic[:200]!r}")
    return decode_payload(parsed, payload)


def decode_payload(parsed: DeviceTopic, payload: bytes) -> Decoded | Rejected:
    """The payload of an already parsed topic (the controller's hot path parses once)."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Rejected("oversize", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    message = _TYPES[parsed.leaf]()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        return Rejected("malformed", f"{parsed.leaf}: {exc}")
    return Decoded(parsed, message)  # type: ignore[arg-type]


def decode_controller_state(payload: bytes) -> fleet_pb2.DeviceState | None:
    """The controller's own retained state (for mqtt-tail), or None when malformed."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return None
    state = fleet_pb2.DeviceState()
    try:
        state.ParseFromString(payload)
    except DecodeError:
        return None
    return state
