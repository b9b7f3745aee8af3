"""Vigil's MQTT topic tree: `vigil/v1/{county}/{site}/{device}/{leaf}` and the controller's own.

Pure parsing and formatting, shared by the fleet service and `mqtt-tail`. The agent has its
own copy (edge_agent never imports controller; the contract is the topic shape itself).
"""

from __future__ import annotations

from dataclasses import dataclass

PREFIX = "vigil/v1"
DEVICE_LEAVES = frozenset({"state", "birth", "health", "event", "cmd_ack"})
CONTROLLER_STATE_TOPIC = f"{PREFIX}/controller/state"
# One subscription covers state|birth|health|event|cmd_ack of every device (6 levels) and
# nothing else: commands are 7 levels deep, the controller's state only 4.
FLEET_SUBSCRIPTION = f"{PREFIX}/+/+/+/+"
# mqtt-tail also shows commands and controller state.
TAIL_SUBSCRIPTION = f"{PREFIX}/#"
# The lone controller's client id; it keeps the historical state topic above.
LONE_CONTROLLER_ID = "vigil-controller"
# Replicas: what every replica must see (low volume, lifecycle and acks: each replica keeps
# its own session table and matches its own commands' acks) vs the high-volume health stream,
# split over the replicas by one shared subscription.
EVERY_REPLICA_LEAVES = ("state", "birth", "event", "cmd_ack")
SHARED_LEAF = "health"


def controller_state_topic(client_id: str) -> str:
    """The retained state (and Will) topic of one controller: the historical topic for the
    lone `vigil-controller`, `vigil/v1/controller/<client id>/state` for a replica (so one
    replica's Will never overwrites another's live state)."""
    if client_id == LONE_CONTROLLER_ID:
        return CONTROLLER_STATE_TOPIC
    return f"{PREFIX}/controller/{client_id}/state"


def is_controller_state_topic(topic: str) -> bool:
    """The lone controller's state topic or a replica's (`vigil/v1/controller/<id>/state`)."""
    parts = topic.split("/")
    if topic == CONTROLLER_STATE_TOPIC:
        return True
    return len(parts) == 5 and parts[:3] == ["vigil", "v1", "controller"] and parts[4] == "state"


def fleet_subscriptions(share_group: str | None) -> list[str]:
    """The controller's subscriptions: the whole fleet in one filter when alone; with a
    shared-subscription group, every replica's own filters plus one shared health filter."""
    if share_group is None:
        return [FLEET_SUBSCRIPTION]
    own = [f"{PREFIX}/+/+/+/{leaf}" for leaf in EVERY_REPLICA_LEAVES]
    return [*own, f"$share/{share_group}/{PREFIX}/+/+/+/{SHARED_LEAF}"]


@dataclass(frozen=True, slots=True)
class DeviceTopic:
    """A parsed device topic. `verb` is set only for `cmd/<verb>`."""

    county: str
    site: str
    device_id: str
    leaf: str
    verb: str = ""


def _valid_level(level: str) -> bool:
    return bool(level) and "+" not in level and "#" not in level and "\x00" not in level


def parse_topic(topic: str) -> DeviceTopic | None:
    """The device topic's parts, or None when the topic is not a Vigil device topic."""
    return parse_parts(topic.split("/"))


def parse_parts(parts: list[str]) -> DeviceTopic | None:
    """`parse_topic` for a topic already split on "/"."""
    if len(parts) < 6 or parts[0] != "vigil" or parts[1] != "v1":
        return None
    county, site, device = parts[2], parts[3], parts[4]
    if not all(_valid_level(p) for p in (county, site, device)):
        return None
    if len(parts) == 6 and parts[5] in DEVICE_LEAVES:
        return DeviceTopic(county, site, device, parts[5])
    if len(parts) == 7 and parts[5] == "cmd" and _valid_level(parts[6]):
        return DeviceTopic(county, site, device, "cmd", parts[6])
    return None


def device_topic(county: str, site: str, device_id: str, leaf: str) -> str:
    return f"{PREFIX}/{county}/{site}/{device_id}/{leaf}"


def command_topic(county: str, site: str, device_id: str, verb: str) -> str:
    return f"{PREFIX}/{county}/{site}/{device_id}/cmd/{verb}"
