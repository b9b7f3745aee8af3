"""Live view on /metrics, read from the hub at scrape time (memory only; registered by the
assembly on the controller's registry). Per replica: a viewer is counted where its WebSocket
is, a feed where its agent's Feed stream is."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.live.hub import LiveHub


class LiveCollector(Collector):
    def __init__(self, hub: LiveHub) -> None:
        self._hub = hub

    def collect(self) -> Iterator[Metric]:
        hub = self._hub
        states, viewers = hub.census()
        feeds = GaugeMetricFamily(
            "vigil_live_feeds", "Live feeds (cameras being watched) by state", labels=["state"]
        )
        for state, n in sorted(states.items()):
            feeds.add_metric([state], n)
        watching = GaugeMetricFamily("vigil_live_viewers", "Live WebSocket viewers")
        watching.add_metric([], viewers)
        commands = CounterMetricFamily(
            "vigil_live_commands", "Start and stop commands sent to agents", labels=["command"]
        )
        commands.add_metric(["start"], hub.starts_sent)
        commands.add_metric(["stop"], hub.stops_sent)
        dropped = CounterMetricFamily(
            "vigil_live_viewers_dropped", "Viewers dropped for falling behind (too_slow)"
        )
        dropped.add_metric([], hub.viewers_dropped)
        busy = CounterMetricFamily(
            "vigil_live_link_busy", "Live feeds a link could not carry (each refusal)"
        )
        busy.add_metric([], hub.link_busy)
        received = CounterMetricFamily(
            "vigil_live_received_bytes", "Live media bytes received from agents"
        )
        received.add_metric([], hub.bytes_in)
        yield from (feeds, watching, commands, dropped, busy, received)


__all__ = ["LiveCollector"]
