"""Which controller replica holds a camera's live feed: pure, over facts read elsewhere.

An agent feeds the replica its control route points at, the scheduler leader (followers send
agents there; docs/architecture.md, "The scheduler leader over several replicas"), so an
agent camera's feed is at the leader's advertised address. A GB/T 28181 device feeds the
replica its REGISTER reached (`gb_device.replica`, its dialogs and media ports are there), so
a device channel's feed is at that replica's advertised address (each replica announces its
own in the shared database: controller/leader/replicas.py).

The answer is an address to relay from, or why there is none; "here" is one of those: the
viewing replica holds the feed itself, so the camera's device simply has no stream open (the
viewer reads agent_unreachable, as on a controller alone).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Facts:
    """What the database and the election say about a camera's device, and who we are."""

    gb_replica: str | None  # None: not a GB/T 28181 device (an agent); "": never registered
    gb_address: str  # the advertised address of `gb_replica` ("" if it announced none)
    leader_address: str  # the scheduler leader's advertised address ("" if none is known)
    own_replica: str
    own_address: str


@dataclass(frozen=True, slots=True)
class Holder:
    address: str  # the replica to relay from; "" when there is none (then `why`)
    why: str = ""  # for the viewer (zh-CN first: the console shows it)


def holder_of(facts: Facts) -> Holder:
    """Where the camera's feed is, seen from `facts.own_replica`."""
    if facts.gb_replica is None:
        address = facts.leader_address
        if not address:
            return Holder("", "没有调度主副本（选举中）: no scheduler leader is known yet")
        if address == facts.own_address:
            return Holder("", "")  # we lead: the agent feeds us when it is connected
        return Holder(address)
    if not facts.gb_replica:
        return Holder("", "GB 设备尚未注册: the device has not registered to any replica")
    if facts.gb_replica == facts.own_replica or facts.gb_address == facts.own_address:
        return Holder("", "")
    if not facts.gb_address:
        who = facts.gb_replica
        return Holder("", f"副本 {who} 未公布地址: replica {who} announced no address")
    return Holder(facts.gb_address)


__all__ = ["Facts", "Holder", "holder_of"]
