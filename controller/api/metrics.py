"""Prometheus metrics: a few thread-safe counters and a tiny text-format renderer.

The renderer is pure (`render(samples)`), so the exposition format is unit tested without a
server. Label sets stay small on purpose (route family, status, reason): a label per camera,
user or grant would grow without bound.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

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
    """Counters, safe to bump from any request thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, LabelSet], float] = {}

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        if name not in FAMILIES:
            raise KeyError(f"unknown metric {name}")
        key = (name, tuple(sorted(labels.items())))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, name: str, **labels: str) -> float:
        with self._lock:
            return self._values.get((name, tuple(sorted(labels.items()))), 0.0)

    def samples(self) -> list[Sample]:
        with self._lock:
            return [Sample(n, labels, v) for (n, labels), v in self._values.items()]


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
    return "web"
