"""Leadership on /metrics: whether this replica leads, its epoch, and its bids.

Read at scrape time from the `Leadership` (memory only), registered by the assembly on the
controller's own registry. Across replicas, `sum(vigil_leader)` is 1 when all is well: 0
for longer than a lease means no replica can reach the database, 2 would be a bug.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.leader import Leadership
from controller.leader.election import Election


class LeaderCollector(Collector):
    def __init__(self, leadership: Leadership) -> None:
        self._leadership = leadership

    def collect(self) -> Iterator[Metric]:
        leading = self._leadership.is_leader()
        state = GaugeMetricFamily(
            "vigil_leader", "1 while this replica leads the city scheduler, else 0"
        )
        state.add_metric([], 1 if leading else 0)
        epoch = GaugeMetricFamily(
            "vigil_leader_epoch", "Fencing epoch of this replica's leadership term (0: following)"
        )
        epoch.add_metric([], self._leadership.epoch() if leading else 0)
        yield from (state, epoch)
        if isinstance(self._leadership, Election):
            bids = CounterMetricFamily(
                "vigil_leader_bids",
                "Bids for the leadership lease: all, failed (no answer), new terms won",
                labels=["kind"],
            )
            for kind, n in sorted(self._leadership.counters.items()):
                bids.add_metric([kind], n)
            yield bids


__all__ = ["LeaderCollector"]
