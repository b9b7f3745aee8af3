"""Upload timeliness per traffic class (pure): the class histograms the catalog keeps
(`class_hour`, one per class the scheduler leased a segment under) completed with the
"unclassified" remainder, and their p50/p95.

A camera's uploads that no lease classified (uploaded with no scheduler, before revision
0015, or whose lease died with a leader) are its whole delay histogram (`camera_hour`) minus
its classified ones, so every uploaded segment is in exactly one class row.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping, Sequence
from typing import Any

from controller.kpi.compute import percentile_from_histogram
from controller.traffic import TrafficClass

UNCLASSIFIED = "unclassified"
CLASS_NAMES: tuple[str, ...] = (*(c.name.lower() for c in TrafficClass), UNCLASSIFIED)


_NAMES = {int(c): c.name.lower() for c in TrafficClass}


def class_histograms(
    total: Sequence[int], by_class: Mapping[int, Sequence[int]]
) -> dict[str, list[int]]:
    """class name -> delay histogram, the classified ones and the unclassified remainder
    (never negative); empty histograms are left out. (Called per camera: 17,088 times a
    report, hence the list arithmetic by `map`.)"""
    out: dict[str, list[int]] = {}
    rest = list(total)
    width = len(rest)
    for value, hist in sorted(by_class.items()):
        # a value the catalog refuses to write is counted as unclassified, not named
        name = _NAMES.get(value, UNCLASSIFIED)
        part = list(hist[:width])
        part += [0] * (width - len(part))
        into = out.get(name)
        out[name] = part if into is None else list(map(operator.add, into, part))
        rest = list(map(operator.sub, rest, part))
    if any(c > 0 for c in rest):
        rest = [max(0, c) for c in rest]
        into = out.get(UNCLASSIFIED)
        out[UNCLASSIFIED] = rest if into is None else list(map(operator.add, into, rest))
    return {k: v for k, v in out.items() if any(v)}


def add_histograms(into: dict[str, list[int]], more: Mapping[str, Sequence[int]]) -> None:
    for name, hist in more.items():
        acc = into.get(name)
        if acc is None:
            into[name] = list(hist)
            continue
        if len(acc) < len(hist):
            acc += [0] * (len(hist) - len(acc))
        acc[: len(hist)] = map(operator.add, acc, hist)


def class_rows(
    hists: Mapping[str, Sequence[int]],
    bounds_s: Sequence[float],
    columns: Sequence[str],
    every: bool = False,
) -> list[dict[str, Any]]:
    """One row per class in CLASS_NAMES order (only those with uploads unless `every`):
    segments, p50 and p95 (upper bound of the bucket: "at most"), the histogram."""
    rows = []
    for name in CLASS_NAMES:
        hist = list(hists.get(name, ()))
        if not any(hist) and not every:
            continue
        rows.append(
            {
                "class": name,
                "segments": sum(hist),
                "p50_s": percentile_from_histogram(hist, bounds_s, 0.5),
                "p95_s": percentile_from_histogram(hist, bounds_s, 0.95),
                "histogram": dict(zip(columns, hist or [0] * len(columns), strict=False)),
            }
        )
    return rows


def class_brief(
    hists: Mapping[str, Sequence[int]], bounds_s: Sequence[float]
) -> dict[str, dict[str, Any]]:
    """class -> {segments, p50_s, p95_s} for the classes with uploads (a table row's cell)."""
    return {
        r["class"]: {"segments": r["segments"], "p50_s": r["p50_s"], "p95_s": r["p95_s"]}
        for r in class_rows(hists, bounds_s, ())
    }
