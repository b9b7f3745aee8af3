"""The report as plain data (a JSON-able dict): what the evaluator asks, from `Facts` (pure).

Sections: `summary` (city or organisation totals and rates), `targets` (connected vs target
by kind), `counties` / `townships` / `villages` (tables), `worst` (cameras to fix first),
`daily` (per day: online and working rate, recorded / uploaded / evicted / gap hours),
`timeliness` (upload delay p50/p95 per kind of camera: new village HD, existing, handheld),
`timeliness_by_class` (p50/p95 per traffic class the scheduler leased the uploads under:
evidence, live, event, archive, backfill, and the unclassified rest; every table row has the
same per class as `delay_by_class`),
`sharing` (per organisation tier), `footage`, `incidents` (alerts raised, time to clear),
`losses` (by reason).
"""

from __future__ import annotations

import operator
import statistics
from collections.abc import Mapping
from typing import Any

from controller.catalog.history_models import DELAY_BOUNDS_S, DELAY_COLUMNS
from controller.grants.policy import Policy
from controller.kpi.aggregates import DAILY_COLUMNS
from controller.kpi.classes import class_brief, class_rows
from controller.kpi.compute import DAY_US, US, alert_clear_times, percentile_from_histogram
from controller.kpi.figures import (
    KINDS,
    CameraResult,
    Figures,
    by_kind,
    camera_result,
    group_by,
    leaves,
    total,
    worst,
)
from controller.kpi.source import Facts

HOUR_S = 3600.0
WORST_KEPT = 20


def _r(x: float | None) -> float | None:
    return None if x is None else round(x, 6)


def figures_dict(f: Figures) -> dict[str, Any]:
    return {
        "cameras": f.cameras,
        "connected": f.connected,
        "expected_h": round(f.expected_us / US / HOUR_S, 3),
        "online_h": round(f.online_us / US / HOUR_S, 3),
        "working_h": round(f.working_us / US / HOUR_S, 3),
        "image_fault_h": round(f.image_fault_us / US / HOUR_S, 3),
        "recorded_h": round(f.recorded_us / US / HOUR_S, 3),
        "uploaded_h": round(f.uploaded_us / US / HOUR_S, 3),
        "evicted_h": round(f.evicted_us / US / HOUR_S, 3),
        "gap_h": round(f.gap_us / US / HOUR_S, 3),
        "online_rate": _r(f.online_rate),
        "working_rate": _r(f.working_rate),
        "integrity": _r(f.integrity),
        "cloud_rate": _r(f.cloud_rate),
        "delay_p50_s": percentile_from_histogram(f.delays, DELAY_BOUNDS_S, 0.5),
        "delay_p95_s": percentile_from_histogram(f.delays, DELAY_BOUNDS_S, 0.95),
        "delay_by_class": class_brief(f.class_delays, DELAY_BOUNDS_S),
    }


def _table(groups: Mapping[str, Figures]) -> list[dict[str, Any]]:
    rows = [{"name": k, **figures_dict(v)} for k, v in groups.items()]
    return sorted(rows, key=lambda r: (r["working_rate"] or 0.0, r["name"]))


def _tier(policy: Policy, org: str) -> str:
    o = policy.organisation(org)
    return o.kind if o is not None else "other"


def build(
    facts: Facts, policy: Policy, targets: Mapping[str, int], org: str | None = None
) -> dict[str, Any]:
    start, end = facts.start_us, facts.end_us
    days = max(1, -(-(end - start) // DAY_US))
    results: list[CameraResult] = [
        camera_result(
            p,
            facts.camera_changes.get(p.camera_id, []),
            facts.image_changes.get(p.camera_id, []),
            facts.camera_sums.get(p.camera_id, {}),
            DELAY_COLUMNS,
            start,
            end,
            days,
            facts.class_sums.get(p.camera_id),
        )
        for p in facts.places
    ]
    parts = leaves(results)
    overall = total(parts)
    kinds = by_kind(parts)
    report: dict[str, Any] = {
        "period": {"from_us": start, "to_us": end, "days": days},
        "organisation": org or policy.city_org,
        "summary": figures_dict(overall),
        "targets": [
            {
                "kind": k,
                "target": int(targets.get(k, 0)),
                "registered": kinds[k].cameras,
                "connected": kinds[k].connected,
                "connected_ratio": _r(kinds[k].connected / targets[k] if targets.get(k) else None),
            }
            for k in KINDS
        ],
        "counties": _table(group_by(parts, "county")),
        "townships": _table(group_by(parts, "township")),
        "villages": _table(group_by(parts, "village")),
        "worst": [
            {
                "camera_id": r.place.camera_id,
                "device_id": r.place.device_id,
                "county": r.place.county,
                "village": r.place.village,
                "kind": r.kind,
                **figures_dict(r.figures),
            }
            for r in worst(results, WORST_KEPT)
        ],
    }
    report["daily"] = _daily(facts, results, days)
    report["timeliness"] = _timeliness(kinds)
    report["timeliness_by_class"] = class_rows(
        overall.class_delays, DELAY_BOUNDS_S, DELAY_COLUMNS, every=True
    )
    report["sharing"] = _sharing(facts, policy)
    report["footage"] = _footage(facts)
    report["incidents"] = _incidents(facts)
    report["losses"] = _losses(facts)
    return report


def _daily(facts: Facts, results: list[CameraResult], days: int) -> list[dict[str, Any]]:
    online = [0] * days
    working = [0] * days
    for r in results:
        online = list(map(operator.add, online, r.online_per_day))
        working = list(map(operator.add, working, r.working_per_day))
    sums: list[dict[str, int]] = [{} for _ in range(days)]
    for hour, s in facts.hour_sums.items():
        day = (hour - facts.start_us) // DAY_US
        if 0 <= day < days:
            for k in DAILY_COLUMNS:
                sums[day][k] = sums[day].get(k, 0) + s.get(k, 0)
    n = len(results)
    out = []
    for i in range(days):
        day_start = facts.start_us + i * DAY_US
        span = min(DAY_US, facts.end_us - day_start) * n
        out.append(
            {
                "day_us": day_start,
                "online_rate": _r(online[i] / span if span else None),
                "working_rate": _r(working[i] / span if span else None),
                **{
                    k.replace("_us", "_h"): round(sums[i].get(k, 0) / US / HOUR_S, 3)
                    for k in DAILY_COLUMNS
                },
            }
        )
    return out


def _timeliness(kinds: Mapping[str, Figures]) -> list[dict[str, Any]]:
    """Per kind of camera (the evaluator's resource classes: new village HD, existing,
    handheld terminals), in KINDS order; kinds without cameras are left out."""
    return [
        {
            "kind": c,
            "segments": sum(f.delays),
            "p50_s": percentile_from_histogram(f.delays, DELAY_BOUNDS_S, 0.5),
            "p95_s": percentile_from_histogram(f.delays, DELAY_BOUNDS_S, 0.95),
            "histogram": dict(zip(DELAY_COLUMNS, f.delays, strict=False)),
        }
        for c, f in ((k, kinds[k]) for k in KINDS if kinds[k].cameras)
    ]


_SHARING_NAMES = {
    "grant_minted": "grants",
    "grant_delegated": "delegations",
    "live_view": "live_views",
    "playlist": "playback_views",
    "segment_fetch": "segment_tallies",
    "download": "exports",
    "footage_request": "footage_requests",
}


def _sharing(facts: Facts, policy: Policy) -> list[dict[str, Any]]:
    tiers: dict[str, dict[str, Any]] = {}
    for (action, org), (entries, grants) in sorted(facts.sharing.items()):
        tier = _tier(policy, org)
        row = tiers.setdefault(tier, {"tier": tier, "orgs": set(), "grants_used": 0})
        row["orgs"].add(org)
        name = _SHARING_NAMES.get(action, action)
        row[name] = row.get(name, 0) + entries
        if action in ("live_view", "playlist", "segment_fetch", "download"):
            row["grants_used"] += grants
    out = []
    for _name, row in sorted(tiers.items()):
        row["orgs"] = sorted(row["orgs"])
        for name in _SHARING_NAMES.values():
            row.setdefault(name, 0)
        out.append(row)
    return out


def _footage(facts: Facts) -> dict[str, Any]:
    done = [s for _o, state, s in facts.footage if state == "done" and s >= 0]
    return {
        "requests": len(facts.footage),
        "done": len(done),
        "median_s_to_done": statistics.median(done) if done else None,
        "max_s_to_done": max(done) if done else None,
    }


def _incidents(facts: Facts) -> dict[str, Any]:
    within = [(k, c) for k, c in facts.alert_changes if c.at_us >= facts.start_us]
    raised, cleared = alert_clear_times(within)
    return {
        "alerts_raised": raised,
        "alerts_cleared": len(cleared),
        "median_s_to_clear": statistics.median(cleared) if cleared else None,
        "max_s_to_clear": max(cleared) if cleared else None,
    }


def _losses(facts: Facts) -> list[dict[str, Any]]:
    per: dict[str, dict[str, Any]] = {}
    for x in facts.losses:
        row = per.setdefault(x.reason, {"reason": x.reason, "segments": 0, "h": 0.0, "bytes": 0})
        row["segments"] += 1
        lo, hi = max(x.start_us, facts.start_us), min(x.end_us, facts.end_us)
        row["h"] += max(0, hi - lo) / US / HOUR_S
        row["bytes"] += x.size_bytes
    for row in per.values():
        row["h"] = round(row["h"], 3)
    return sorted(per.values(), key=lambda r: r["reason"])
