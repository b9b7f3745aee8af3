"""The control channel: AgentControl calls on the control route, which follows the leader.

Inventories, the lease stream and lease reports go to one replica at a time, the scheduler
leader. `ControlChannel` hands out a stub for the route's current address and turns a failed
call into a route move (decided in edge_agent/uplink/failover.py): a follower's
FAILED_PRECONDITION naming the leader in `vigil-leader` metadata moves the route there if
that address is configured, an unusable address moves it to the next one, and anything else
(a refusal, a busy leader) leaves it where it is.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from edge_agent.clock import Clock
from edge_agent.uplink import failover as fo
from edge_agent.uplink.routing import RouteKeeper
from protos.vigil.v1 import agent_control_pb2_grpc

# controller/leader/__init__.py LEADER_METADATA_KEY (the agent does not import the controller).
LEADER_METADATA_KEY = "vigil-leader"
# The route's name for a channel handed in ready-made (tests, tools): no address to move to.
FIXED_ADDRESS = "(given channel)"


def leader_named(exc: grpc.RpcError) -> str | None:
    """The `vigil-leader` trailing metadata of a failed call, or None if absent."""
    if not isinstance(exc, grpc.Call):
        return None
    try:
        metadata = exc.trailing_metadata() or ()
    except Exception:  # a call that never started has none to give
        return None
    for key, value in metadata:
        if key == LEADER_METADATA_KEY:
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            return text.strip()
    return None


def status_name(exc: grpc.RpcError) -> str:
    """The status code's name ('' when the error carries none: the connection failed)."""
    code = exc.code() if isinstance(exc, grpc.Call) else None
    return code.name if code is not None else ""


class ControlChannel:
    """AgentControl stubs on the control route's current address."""

    def __init__(self, route: RouteKeeper, channel_for: Callable[[str], grpc.Channel]) -> None:
        self._route = route
        self._channel_for = channel_for

    @classmethod
    def fixed(cls, channel: grpc.Channel, clock: Clock) -> ControlChannel:
        """One given channel, never moved (what a lone controller's tests hand in)."""
        return cls(RouteKeeper([FIXED_ADDRESS], clock, "control"), lambda _a: channel)

    @property
    def route(self) -> RouteKeeper:
        return self._route

    def channel(self, address: str) -> grpc.Channel:
        """The channel to `address` (the live feed shares it: edge_agent/live/client.py)."""
        return self._channel_for(address)

    def stub(self) -> tuple[str, agent_control_pb2_grpc.AgentControlStub]:
        """(address, stub): report the call's outcome with that address."""
        address = self._route.current()
        return address, agent_control_pb2_grpc.AgentControlStub(self._channel_for(address))

    def ok(self, address: str) -> None:
        self._route.succeeded(address)

    def failed(self, address: str, exc: grpc.RpcError) -> fo.ControlAction:
        """Move the route as the failed call says; returns what it meant."""
        leader = leader_named(exc)
        action = fo.control_action(status_name(exc), leader is not None)
        if action is fo.ControlAction.REDIRECT:
            self._route.redirected(address, leader or "")
        elif action is fo.ControlAction.NEXT:
            self._route.failed(address, status_name(exc) or "connection failed")
        return action
