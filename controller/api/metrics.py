"""Prometheus metrics on a `prometheus_client.CollectorRegistry` the assembly builds and passes in.

`Metrics` keeps the small counter API the routes use (`inc(name, **labels)`); the families are
fixed here so label sets stay small (route family, status, reason): a label per camera, user or
grant would grow without bound. `StateCollector` reads the fleet and the scheduler at scrape
time (devices and cameras online, leases, link load), so nothing is counted twice and nothing
is kept in sync. `render(samples)` is the pure text renderer kept for callers that hold plain
samples.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from controller.fleet.monitor import DeviceRecord
from controller.scheduler.upkeep import Snapshot

LabelSet = tuple[tuple[str, str], ...]

# name -> (type, help). Only these names can be counted.
FAMILIES: Mapping[str, tuple[str, str]] = {
    "vigil_http_requests_total": ("counter", "HTTP requests answered, by route family and status"),
    "vigil_http_refusals_total": ("counter", "Requests refused, by reason"),
    "vigil_playlists_total": ("counter", "HLS playlists served, by kind (vod, event, live)"),
    "vigil_segments_served_total": ("counter", "Segment responses (200/206/302)"),
    "vigil_segment_bytes_total": ("counter", "Segment bytes sent by this controller"),
    "vigil_logins_total": ("counter", "Login attempts, by outcome"),
    "vigil_exports_total": ("counter", "Evidence exports written"),
    "vigil_renditions_total": (
        "counter",
        "H.264 rendition responses, by outcome (served, busy, failed)",
    ),
}

# name -> label names, in exposition order.
LABELS: Mapping[str, tuple[str, ...]] = {
    "vigil_http_requests_total": ("family", "status"),
    "vigil_http_refusals_total": ("reason",),
    "vigil_playlists_total": ("kind",),
    "vigil_segments_served_total": ("how",),
    "vigil_segment_bytes_total": (),
    "vigil_logins_total": ("outcome",),
    "vigil_exports_total": (),
    "vigil_renditions_total": ("outcome",),
}


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: LabelSet
    value: float


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def render(samples: Iterable[Sample]) -> str:
    """The Prometheus text exposition (version 0.0.4) of `samples`, families in fixed order."""
    by_name: dict[str, list[Sample]] = {}
    for s in samples:
        by_name.setdefault(s.name, []).append(s)
    lines: list[str] = []
    for name, (kind, help_text) in FAMILIES.items():
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for s in sorted(by_name.get(name, []), key=lambda x: x.labels):
            labels = ",".join(f'{k}="{_escape(v)}"' for k, v in s.labels)
            value = int(s.value) if float(s.value).is_integer() else s.value
            lines.append(f"{name}{{{labels}}} {value}" if labels else f"{name} {value}")
    return "\n".join(lines) + "\n"


class Metrics:
    """The HTTP API's counters on `registry` (a private one when none is given, for tests);
    prometheus_client counters are safe to bump from any request thread."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._counters = {
            name: Counter(name, help_text, LABELS[name], registry=self.registry)
            for name, (_kind, help_text) in FAMILIES.items()
        }

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        counter = self._counters.get(name)
        if counter is None:
            raise KeyError(f"unknown metric {name}")
        (counter.labels(**labels) if labels else counter).inc(amount)

    def value(self, name: str, **labels: str) -> float:
        return self.registry.get_sample_value(name, labels) or 0.0


class FleetLike(Protocol):
    """What the collector reads from the fleet service."""

    def devices(self) -> list[DeviceRecord]: ...

    def counters(self) -> dict[str, int]: ...


def fleet_families(devices: Iterable[DeviceRecord], counters: Mapping[str, int]) -> list[Metric]:
    """Devices and cameras online per county, MQTT messages by verdict (pure)."""
    dev = GaugeMetricFamily(
        "vigil_devices",
        "Devices known to the fleet view, by county and state",
        labels=["county", "state"],
    )
    cams = GaugeMetricFamily(
        "vigil_cameras_online", "Cameras reported by online devices, by county", labels=["county"]
    )
    unsent = GaugeMetricFamily(
        "vigil_backlog_segments_unsent",
        "Segments not yet uploaded, as last reported by each county's devices",
        labels=["county"],
    )
    buffered = GaugeMetricFamily(
        "vigil_backlog_buffer_bytes", "Bytes in the agents' buffers, by county", labels=["county"]
    )
    oldest = GaugeMetricFamily(
        "vigil_backlog_oldest_unsent_age_seconds",
        "Age of the oldest unsent segment in a county (largest of its devices)",
        labels=["county"],
    )
    per: dict[tuple[str, str], int] = {}
    cam_per: dict[str, int] = {}
    backlog: dict[str, tuple[int, int, float]] = {}
    for r in devices:
        state = "online" if r.online else "offline"
        per[(r.county, state)] = per.get((r.county, state), 0) + 1
        cam_per.setdefault(r.county, 0)
        h = r.health
        if h is None:
            continue
        if r.online:
            cam_per[r.county] += sum(1 for c in h.cameras if c.connected)
        n, b, age = backlog.get(r.county, (0, 0, 0.0))
        backlog[r.county] = (
            n + h.segments_unsent,
            b + h.buffer_bytes,
            max(age, h.oldest_unsent_age_s),
        )
    for (county, state), count in sorted(per.items()):
        dev.add_metric([county, state], count)
    for county, count in sorted(cam_per.items()):
        cams.add_metric([county], count)
    for county, (n, b, age) in sorted(backlog.items()):
        unsent.add_metric([county], n)
        buffered.add_metric([county], b)
        oldest.add_metric([county], age)
    msgs = CounterMetricFamily(
        "vigil_mqtt_messages",
        "MQTT messages handled by the fleet view, by outcome",
        labels=["kind"],
    )
    for kind, n in sorted(counters.items()):
        msgs.add_metric([kind], n)
    return [dev, cams, unsent, buffered, oldest, msgs]


def scheduler_families(snap: Snapshot) -> list[Metric]:
    """Leases, connected agents, plan version, scheduler events and per-link load (pure)."""
    leases = GaugeMetricFamily("vigil_scheduler_leases_active", "Devices holding a lease")
    leases.add_metric([], sum(1 for d in snap.devices if d.lease_id))
    connected = GaugeMetricFamily(
        "vigil_scheduler_agents_connected", "Agents with an open lease stream"
    )
    connected.add_metric([], sum(1 for d in snap.devices if d.connected))
    version = GaugeMetricFamily("vigil_scheduler_plan_version", "Version of the current plan")
    version.add_metric([], snap.plan_version)
    events = CounterMetricFamily(
        "vigil_scheduler_events", "Scheduler events (replans, leases issued, ...)", labels=["kind"]
    )
    for kind, n in sorted(snap.counters.items()):
        if kind != "replan_us":
            events.add_metric([kind], n)
    replan = CounterMetricFamily(
        "vigil_scheduler_replan_seconds",
        "Time spent replanning (divide its rate by the replans' rate for the mean replan time)",
    )
    replan.add_metric([], snap.counters.get("replan_us", 0) / 1_000_000)
    link = GaugeMetricFamily(
        "vigil_link_bits_per_second",
        "Link capacity, planned and delivered bit/s (links carrying anything)",
        labels=["link", "what"],
    )
    for d in snap.links:
        link.add_metric([d.link_id, "capacity"], d.capacity_bps)
        link.add_metric([d.link_id, "planned"], d.planned_bps)
        link.add_metric([d.link_id, "delivered"], d.delivered_bps)
    return [leases, connected, version, events, replan, link]


class StateCollector(Collector):
    """Reads the fleet and the scheduler when Prometheus scrapes (None: not run here)."""

    def __init__(self, fleet: FleetLike | None, snapshot: Callable[[], Snapshot] | None) -> None:
        self._fleet = fleet
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        if self._fleet is not None:
            yield from fleet_families(self._fleet.devices(), self._fleet.counters())
        if self._snapshot is not None:
            yield from scheduler_families(self._snapshot())


def route_family(path: str) -> str:
    """A low-cardinality name for a request path."""
    if path.startswith(("/play/seg/", "/play/h264/")):
        return "segment"
    if path.startswith("/play/"):
        return "playlist"
    if path.startswith("/api/"):
        return "api"
    if path == "/metrics":
        return "metrics"
    if path in ("/healthz", "/readyz"):
        return "health"
    return "web"
