"""`vigil-controller simulate`: the real planner against a whole city's uplinks.

The only module of the scheduler package that does I/O: it reads a topology file, reads
the clock to time replans, and prints. The report's last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from controller.scheduler.model import SchedulerError
from controller.scheduler.sim.presets import PRESET_NAMES, Site, preset
from controller.scheduler.sim.report import compare
from controller.scheduler.sim.workload import WorkloadSpec
from controller.scheduler.topology import Topology
from controller.scheduler.topology_file import format_of, parse_topology

_EPOCH_2026_S = 1_767_225_600  # 2026-01-01T00:00:00Z: a fixed day, so runs are repeatable


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `simulate` to `vigil-controller`."""
    p = sub.add_parser(
        "simulate",
        help="simulate the upload scheduler over a city's network",
        description=(
            "Discrete-event simulation of the upload scheduler over a preset city or a custom "
            "topology file (TOML or JSON), with background archive and backfill, live "
            "viewing, alarms, handhelds and bursts of evidence requests; compared with a "
            "naive per-device fair-share uploader."
        ),
    )
    src = p.add_mutually_exclusive_group()
    src.add_argument("--preset", choices=PRESET_NAMES, default="county")
    src.add_argument("--topology", type=Path, help="custom topology file (.toml or .json)")
    p.add_argument("--seconds", type=float, default=600.0, help="simulated time (default 600)")
    p.add_argument("--period", type=float, default=10.0, help="replan period in seconds")
    p.add_argument("--seed", type=int, default=11, help="seed of the generated traffic")
    p.add_argument("--start", default="02:00", help="local time of day the run starts (HH:MM)")
    p.add_argument("--no-baseline", action="store_true", help="skip the naive baseline run")
    p.add_argument(
        "--check-config", action="store_true", help="validate the topology, print its size, exit"
    )
    p.set_defaults(func=run)


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")


def _load(args: argparse.Namespace) -> tuple[str, Topology, tuple[Site, ...]]:
    if args.topology is not None:
        path: Path = args.topology
        fmt = format_of(path.name)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SchedulerError(f"{path}: cannot read: {exc}") from exc
        try:
            topo, sites = parse_topology(text, fmt)
        except SchedulerError as exc:
            raise SchedulerError(f"{path}: {exc}") from exc
        return str(path), topo, sites
    chosen = preset(args.preset)
    return chosen.name, chosen.topology, chosen.sites


def _start_us(text: str, utc_offset_minutes: int) -> int:
    try:
        hh, mm = (int(x) for x in text.split(":"))
    except ValueError:
        raise SchedulerError(f"--start must be HH:MM, got {text!r}") from None
    if not (0 <= hh < 24 and 0 <= mm < 60):
        raise SchedulerError(f"--start must be HH:MM, got {text!r}")
    return (_EPOCH_2026_S + hh * 3600 + mm * 60 - utc_offset_minutes * 60) * 1_000_000


def run(args: argparse.Namespace) -> int:
    try:
        name, topo, sites = _load(args)
        if not 10.0 <= args.seconds <= 86_400.0:
            raise SchedulerError("--seconds must be between 10 and 86400")
        if not 1.0 <= args.period <= 600.0:
            raise SchedulerError("--period must be between 1 and 600 seconds")
        start_us = _start_us(args.start, topo.utc_offset_minutes)
    except SchedulerError as exc:
        sys.stderr.write(f"vigil-controller simulate: error: {exc}\n")
        return 2
    _out(f"topology {name}: {len(topo.links)} links, {len(topo.devices)} devices")
    if args.check_config:
        _out("topology OK")
        return 0
    spec = WorkloadSpec(duration_s=args.seconds)
    if not any(s.kind != "handheld" for s in sites):
        sys.stderr.write("vigil-controller simulate: error: the topology has no NVR devices\n")
        return 2
    result = compare(
        topo,
        sites,
        spec,
        start_us=start_us,
        period_s=args.period,
        seed=args.seed,
        baseline=not args.no_baseline,
        timer=time.process_time,
    )
    for label, summary in (("vigil", result.vigil), ("naive", result.naive)):
        if summary is None:
            continue
        _out(
            f"{label}: replan p50 {summary['replan_ms_p50']} ms (max {summary['replan_ms_max']}), "
            f"saturated links {summary['saturated_links']} at "
            f"{summary['utilisation_min']:.1%}..{summary['utilisation_max']:.1%}, "
            f"evidence time-to-cloud/ideal mean {summary['evidence_ttc_ratio_mean']} "
            f"p95 {summary['evidence_ttc_ratio_p95']} "
            f"({summary['evidence_unfinished']} unfinished), "
            f"deadline misses {summary['deadline_misses']}, "
            f"evicted {summary['evicted_segments']}, Jain {summary['jain_mean']}"
        )
    _out(json.dumps({"scale": result.scale, "vigil": result.vigil, "naive": result.naive}))
    return 0
