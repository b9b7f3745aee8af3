"""bench.ingest's figures: medians of rounds paired with their neighbouring baseline round."""

from __future__ import annotations

import pytest

from bench.ingest_stats import Round, local_summary, paired_ratios, s3_summary


def _r(mb_s: float, server: float = 2.0, store: float = 0.0) -> Round:
    return Round(mb_s, server, 1.0, 0.01, store)


def test_each_round_is_compared_with_its_neighbour_not_the_best_of_the_other_side() -> None:
    # Load halved both sides in round 2: the paired ratio stays 0.9, the best-of ratio is 0.45.
    vigil = [_r(45.0), _r(90.0), _r(46.0)]
    direct = [_r(50.0), _r(100.0), _r(200.0)]
    assert paired_ratios(vigil, direct) == pytest.approx([0.9, 0.9, 0.23])
    got = s3_summary(vigil, direct)
    assert got["s3_ratio"] == 0.9
    assert got["s3_ratio_best"] == 0.45
    assert got["s3_ingest_mb_s"] == 46.0 and got["s3_direct_mb_s"] == 100.0


def test_cpu_per_mb_is_the_mean_of_equal_rounds_and_the_least_is_kept_beside_it() -> None:
    vigil = [_r(50.0, 2.4, 7.0), _r(50.0, 3.3, 8.0), _r(50.0, 2.7, 9.0)]
    got = s3_summary(vigil, [Round(50.0, 0.0, 1.0)] * 3)
    assert got["controller_cpu_ms_per_mb"] == 2.8
    assert got["controller_cpu_ms_per_mb_min"] == 2.4
    assert got["s3_store_cpu_ms_per_mb"] == 8.0
    # boto3 + store: 1 + 0 per MB; agents + controller + store: 1 + 2.8 + 8
    assert got["s3_cpu_ratio"] == round(1.0 / 11.8, 3)


def test_local_summary_keeps_the_best_round_ratio_and_adds_the_paired_median() -> None:
    got = local_summary([_r(200.0), _r(300.0)], [_r(400.0), _r(500.0)])
    assert got["ratio"] == 0.6
    assert got["ratio_median"] == pytest.approx(0.55)


def test_unpaired_rounds_are_refused() -> None:
    with pytest.raises(ValueError, match="not paired"):
        paired_ratios([_r(1.0)], [])
