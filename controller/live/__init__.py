"""Live view (实时调阅) on the controller: the agents' Feed streams in (`LiveServicer`), one
feed per camera fanned out to every viewer (`LiveHub`), WebSocket viewers out
(controller/api/routes/live.py)."""

from controller.live.feed import FeedState, LiveOptions
from controller.live.hub import LiveHub
from controller.live.viewer import Viewer

__all__ = ["FeedState", "LiveHub", "LiveOptions", "Viewer"]
