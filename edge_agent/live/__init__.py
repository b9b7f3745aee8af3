"""Live view on the agent: a tee on the running capture (`LiveTaps`), MPEG-TS muxing of the
teed packets (`TsMuxer`) and the outbound gRPC feed to the controller (`LiveClient`)."""

from edge_agent.live.client import LiveClient, LiveClientOptions
from edge_agent.live.mux import TsMuxer
from edge_agent.live.tap import LiveTap, LiveTaps

__all__ = ["LiveClient", "LiveClientOptions", "LiveTap", "LiveTaps", "TsMuxer"]
