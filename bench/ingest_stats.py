"""The figures of `bench.ingest` from its rounds (pure: no servers, no clocks).

Why medians of paired rounds: on a shared 2-core machine one round's wall-clock rate swings by
±30 % with what else runs, so the best round of each side compared two different moments of
load (the S3 ratio read 0.73 to 1.55 for the same code). Rounds therefore alternate (ABBA...)
and each round of Vigil is divided by its neighbouring round of the baseline, under nearly the
same load; the median of those ratios is the figure. CPU per MB is the mean of the rounds
(every round moves the same bytes, so it is all rounds' CPU over all their MB): a round's own
figure is counted in 10 ms CPU ticks, 0.08 ms/MB on a 120 MB round, too coarse for the
differences sought; the least round is kept beside it (`..._min`) to compare with older figures.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Round:
    """One round's wall-clock rate and the CPU each side spent per MB (10^6 bytes)."""

    mb_s: float
    server_cpu_ms_per_mb: float
    client_cpu_ms_per_mb: float
    server_write_mb_per_mb: float = 0.0  # bytes the server wrote to disk per byte ingested
    store_cpu_ms_per_mb: float = 0.0  # the object store's process (S3 rounds), else 0

    @property
    def cpu_ms_per_mb(self) -> float:
        return self.server_cpu_ms_per_mb + self.client_cpu_ms_per_mb


def paired_ratios(mine: list[Round], baseline: list[Round]) -> list[float]:
    """Each round's rate over the baseline round run next to it (same index)."""
    if len(mine) != len(baseline) or not mine:
        raise ValueError(f"{len(mine)} rounds against {len(baseline)}: not paired")
    return [m.mb_s / b.mb_s for m, b in zip(mine, baseline, strict=True)]


def _median(values: list[float], digits: int = 2) -> float:
    return round(statistics.median(values), digits)


def _mean(values: list[float]) -> float:
    return round(statistics.fmean(values), 2)


def local_summary(ingest: list[Round], bare: list[Round]) -> dict[str, Any]:
    """The local half: best wall-clock round of each (the figure kept since the start),
    the median of the paired ratios, and the CPU-based comparison.

    `cpu_ratio` is bare CPU per MB over ingest CPU per MB (server + clients, the least of
    each side's rounds): the wall-clock ratio to expect when both are CPU-bound on a quiet
    machine, and far less sensitive to other jobs than `ratio`.
    """
    best_i, best_b = max(r.mb_s for r in ingest), max(r.mb_s for r in bare)
    cpu_i, cpu_b = min(r.cpu_ms_per_mb for r in ingest), min(r.cpu_ms_per_mb for r in bare)
    return {
        "ingest_mb_s": round(best_i, 1),
        "bare_grpc_mb_s": round(best_b, 1),
        "ratio": round(best_i / best_b, 3),
        "ratio_median": _median(paired_ratios(ingest, bare), 3),
        "cpu_ratio": round(cpu_b / cpu_i, 3),
        "ingest_server_cpu_ms_per_mb": round(min(r.server_cpu_ms_per_mb for r in ingest), 2),
        "ingest_server_cpu_ms_per_mb_mean": _mean([r.server_cpu_ms_per_mb for r in ingest]),
        "bare_server_cpu_ms_per_mb": round(min(r.server_cpu_ms_per_mb for r in bare), 2),
        "client_cpu_ms_per_mb": round(min(r.client_cpu_ms_per_mb for r in ingest + bare), 2),
        "ingest_rounds_mb_s": [round(r.mb_s, 1) for r in ingest],
        "bare_rounds_mb_s": [round(r.mb_s, 1) for r in bare],
    }


def s3_summary(vigil: list[Round], direct: list[Round]) -> dict[str, Any]:
    """The S3 half: medians of the rounds and of the paired ratios (see the module doc).

    `s3_cpu_ratio`: the CPU per MB of boto3 and the store over that of the agents, the
    controller and the store: the wall-clock ratio to expect when all of them share the
    machine's cores and are CPU-bound (as on the 2-core development VM, where the store alone
    costs ~9 ms per MB and both sides run at its pace)."""
    ratios = paired_ratios(vigil, direct)
    controller = [r.server_cpu_ms_per_mb for r in vigil]
    cpu_vigil = statistics.fmean(r.cpu_ms_per_mb + r.store_cpu_ms_per_mb for r in vigil)
    cpu_direct = statistics.fmean(r.cpu_ms_per_mb + r.store_cpu_ms_per_mb for r in direct)
    return {
        "s3_ingest_mb_s": _median([r.mb_s for r in vigil], 1),
        "s3_direct_mb_s": _median([r.mb_s for r in direct], 1),
        "s3_ratio": _median(ratios, 3),
        "s3_ratio_best": round(max(r.mb_s for r in vigil) / max(r.mb_s for r in direct), 3),
        "s3_cpu_ratio": round(cpu_direct / cpu_vigil, 3),
        "controller_cpu_ms_per_mb": _mean(controller),
        "controller_cpu_ms_per_mb_min": round(min(controller), 2),
        "controller_disk_write_mb_per_mb": round(max(r.server_write_mb_per_mb for r in vigil), 4),
        "s3_agent_cpu_ms_per_mb": _mean([r.client_cpu_ms_per_mb for r in vigil]),
        "s3_direct_client_cpu_ms_per_mb": _mean([r.client_cpu_ms_per_mb for r in direct]),
        "s3_store_cpu_ms_per_mb": _mean([r.store_cpu_ms_per_mb for r in vigil]),
        "s3_direct_store_cpu_ms_per_mb": _mean([r.store_cpu_ms_per_mb for r in direct]),
        "s3_ratios": [round(x, 3) for x in ratios],
        "s3_ingest_rounds_mb_s": [round(r.mb_s, 1) for r in vigil],
        "s3_direct_rounds_mb_s": [round(r.mb_s, 1) for r in direct],
        "controller_rounds_cpu_ms_per_mb": [round(x, 2) for x in controller],
    }
