"""Live view on /metrics, read from the hub at scrape time (memory only; registered by the
assembly on the controller's registry). Per replica: a viewer is counted where its WebSocket
is, a feed where its agent's Feed stream is."""

from __future__ import annotations

from collections.abc import Callable, Iterator

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


class RelayCollector(Collector):
    """The live relay between replicas (controller/live/relay*.py), on a clustered replica.
    A relayed view counts as a viewer twice over the city (at the viewer's replica, and as
    one viewer at the holder): `vigil_live_relays_served` says how many of the holder's are
    other replicas'."""

    def __init__(self, relaying: Callable[[], int], counts: Callable[[], tuple[int, int, int]]):
        self._relaying = relaying
        self._counts = counts  # (calls, failures, served now)

    def collect(self) -> Iterator[Metric]:
        calls, failures, served = self._counts()
        relayed = GaugeMetricFamily(
            "vigil_live_relayed_feeds", "Feeds this replica relays from the replica holding them"
        )
        relayed.add_metric([], self._relaying())
        opened = CounterMetricFamily(
            "vigil_live_relay_calls", "LiveRelay calls opened to holding replicas (retries too)"
        )
        opened.add_metric([], calls)
        failed = CounterMetricFamily(
            "vigil_live_relay_failures", "Relays that broke or found no holder (each retry)"
        )
        failed.add_metric([], failures)
        serving = GaugeMetricFamily(
            "vigil_live_relays_served", "Other replicas' relays of feeds held here, open now"
        )
        serving.add_metric([], served)
        yield from (relayed, opened, failed, serving)


__all__ = ["LiveCollector", "RelayCollector"]
