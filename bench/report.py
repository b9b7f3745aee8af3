"""Benchmark: the KPI report for a month of a 17,088-endpoint city, the hourly accounting's
cost per ingested segment, and image health's CPU against capture's (issue 15).

1. A seeded history in PostgreSQL (127.0.0.1:5432; bench/report_seed.py, kept between runs):
   the Longnan preset's 2,000 NVRs with 12,088 cameras and 5,000 handheld terminals
   (controller/scheduler/sim), 30 days of hourly accounting as the system keeps it (one
   `camera_hour` row per endpoint and hour, 12.3 M rows; one `class_hour` row per classified
   endpoint-hour, 12.1 M) and its day sums (`camera_day`, `class_day`: revision 0016 back-fills
   them), state transitions (each endpoint online at the start, outages for one in seven,
   image faults for one in forty) and loss reports. Then the report for the month (November
   2026, local time: what `report --from 2026-11-01 --to 2026-12-01` asks) is made and
   rendered to HTML (`report_s`, goal ≤ 10 s).
2. `rollup_us_per_segment`: the accounting's own cost per committed segment (the neighbour
   lookups and the upserts of hour and day, `controller.catalog.accounting.rollup_segments`,
   each in its own transaction on that database, beside its 12.3 M rows), against the whole
   catalog commit of a segment with it (`commit_us_per_segment`, the baseline), and their
   ratio. The bench's own rows are deleted after.
3. `image_check_cpu_pct_per_camera` and `capture_cpu_pct_per_camera`, same run: a 1080p H.264
   clip (25 fps, 2 s GOP) encoded here; capture = PyAV demux + MPEG-TS remux of every packet
   (the agent's per-packet work), CPU time per media second; image health = one keyframe decoded
   and checked a minute (`edge_agent.image.sampler`), CPU per minute. Ratio goal < 0.1.

    python -m bench.report --quick      # < 60 s once seeded; the full run takes more samples
    python -m bench.report --fresh      # seed again (minutes on the shared VM)
    python -m bench.report --drop-seed  # remove the kept database (~5 GB)

The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from fractions import Fraction
from typing import TYPE_CHECKING

from sqlalchemy import text

from bench.report_seed import DAYS, START, drop_seeds, seeded
from controller.catalog import Catalog, make_engine
from controller.catalog.accounting import rollup_segments
from controller.catalog.models import SegmentRow
from controller.clock import ManualClock, SystemClock
from controller.grants.policy import default_policy
from controller.kpi.service import make_report, render

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine
from edge_agent.image.sampler import ImageSampler

US = 1_000_000
DAY = 86_400 * US
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _say(text: str) -> None:
    print(text, flush=True)


def rollup_cost(url: str, segments: int) -> tuple[float, float]:
    """(µs of the accounting alone per segment, µs of a whole catalog commit per segment)."""
    engine = make_engine(url)
    catalog = Catalog(engine, SystemClock())
    cam, nvr = f"bench-cam-{os.getpid()}", f"bench-nvr-{os.getpid()}"
    catalog.upsert_device(nvr, "wudu", "wudu-99-01", "nvr")
    catalog.upsert_camera(cam, nvr)
    try:
        return _rollup_cost(engine, catalog, cam, nvr, segments)
    finally:  # the seeded month is kept for the next run: take the bench's rows out
        with engine.begin() as conn:
            for table in (
                "segment",
                "camera_hour",
                "class_hour",
                "camera_day",
                "class_day",
                "camera",
            ):
                conn.execute(text(f"DELETE FROM {table} WHERE camera_id = :c"), {"c": cam})
            conn.execute(text("DELETE FROM device WHERE device_id = :d"), {"d": nvr})
        engine.dispose()


def _rollup_cost(
    engine: Engine, catalog: Catalog, cam: str, nvr: str, segments: int
) -> tuple[float, float]:
    rows = []
    prev = ""
    for i in range(2 * segments):
        sha = f"{i:064x}"
        rows.append(
            SegmentRow(
                segment_id=f"{cam}-{i}",
                camera_id=cam,
                device_id=nvr,
                start_us=START + i * 10 * US,
                duration_us=10 * US,
                end_us=START + (i + 1) * 10 * US,
                size_bytes=5_000_000,
                sha256=sha,
                prev_sha256=prev,
                object_key=f"k/{i}",
                committed_at_us=START + (i + 1) * 10 * US + 20 * US,
            )
        )
        prev = sha
    t0 = time.perf_counter()
    for row in rows[:segments]:
        catalog.add_segment(row)
    commit_us = (time.perf_counter() - t0) / segments * 1e6
    spent = 0.0
    for row in rows[segments:]:
        with engine.begin() as conn:  # the rollup alone, on rows already like the ones above
            t0 = time.perf_counter()
            rollup_segments(conn, [row], row.committed_at_us)
            spent += time.perf_counter() - t0
    engine.dispose()
    return spent / segments * 1e6, commit_us


def _clip(seconds: int) -> bytes:
    """A 1080p H.264 clip in MPEG-TS with moving texture (what a camera sends)."""
    import av
    import numpy as np

    out = io.BytesIO()
    with av.open(out, "w", format="mpegts") as c:
        s = c.add_stream("libx264", rate=25, options={"preset": "ultrafast", "g": "50"})
        s.width, s.height, s.pix_fmt = 1920, 1080, "yuv420p"
        s.bit_rate = 4_000_000
        rng = np.random.default_rng(1)
        base = rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
        for i in range(seconds * 25):
            frame = av.VideoFrame.from_ndarray(np.roll(base, i * 8, axis=1), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, 25)
            for p in s.encode(frame):
                c.mux(p)
        for p in s.encode(None):
            c.mux(p)
    return out.getvalue()


def image_vs_capture(clip: bytes, rounds: int) -> tuple[float, float]:
    """(image health CPU % of a core per camera, capture CPU % per camera)."""
    import av

    media_s = 0.0
    cpu = 0.0
    keyframes: list[bytes] = []
    for _ in range(rounds):
        t0 = time.thread_time()
        src = av.open(io.BytesIO(clip), "r")
        dst = av.open(io.BytesIO(), "w", format="mpegts")
        try:
            vin = src.streams.video[0]
            vout = dst.add_stream_from_template(vin)
            for p in src.demux(vin):
                if p.dts is None:
                    continue
                if p.is_keyframe and len(keyframes) < 8:
                    keyframes.append(bytes(p))
                p.stream = vout
                dst.mux(p)
            if vin.duration and vin.time_base:
                media_s += float(vin.duration * vin.time_base)
        finally:
            dst.close()
            src.close()
        cpu += time.thread_time() - t0
    capture_pct = cpu / media_s * 100
    reports: list[tuple[str, str]] = []
    sampler = ImageSampler("bench", lambda k, d: reports.append((k, d)), interval_s=0.0)
    with av.open(io.BytesIO(clip), "r") as probe:
        sampler.begin(probe.streams.video[0])
        for i, data in enumerate(keyframes):
            packet = av.Packet(data)
            packet.is_keyframe = True
            sampler.packet(packet, float(i))
    per_sample = sampler.cpu_s / max(1, sampler.samples)
    return per_sample / 60 * 100, capture_pct


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.report")
    ap.add_argument("--quick", action="store_true", help="< 60 s once the month is seeded")
    ap.add_argument("--fresh", action="store_true", help="seed the month again (minutes)")
    ap.add_argument("--drop-seed", action="store_true", help="drop the kept month (~5 GB); exit")
    args = ap.parse_args()
    if args.drop_seed:
        _say(f"dropped: {', '.join(drop_seeds(ADMIN)) or 'nothing'}")
        return
    days = DAYS
    url, endpoints, seed_s = seeded(ADMIN, args.fresh)
    reused = "reused" if not seed_s else f"seeded in {seed_s:.1f} s"
    _say(f"{endpoints} endpoints x {days} days of hourly accounting: {reused}")
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = int(conn.execute(text("SELECT count(*) FROM camera_hour")).scalar_one())
        day_rows = int(conn.execute(text("SELECT count(*) FROM camera_day")).scalar_one())
    clock = ManualClock(START + days * DAY)
    t0 = time.perf_counter()
    report = make_report(
        engine,
        clock,
        default_policy(),
        {"village_hd": 2100, "existing": 9988, "handheld": 5000},
        START,
        START + days * DAY,
    )
    page = render(report, "html")
    report_s = time.perf_counter() - t0
    engine.dispose()
    _say(
        f"report over {rows} camera_hour rows: {report_s:.2f} s, {len(page) // 1024} KiB of "
        f"HTML, online rate {report['summary']['online_rate']}"
    )
    rollup_us, commit_us = rollup_cost(url, 100 if args.quick else 1000)
    _say(f"rollup {rollup_us:.0f} us/segment of a {commit_us:.0f} us catalog commit")
    clip = _clip(4 if args.quick else 10)
    image_pct, capture_pct = image_vs_capture(clip, 3 if args.quick else 10)
    _say(f"image health {image_pct:.4f} % vs capture {capture_pct:.3f} % of a core per camera")
    result = {
        "endpoints": endpoints,
        "days": days,
        "report_s": round(report_s, 2),
        "report_goal_s": 10,
        "seed_s": round(seed_s, 1),
        "camera_hour_rows": rows,
        "camera_day_rows": day_rows,  # what the month's report reads per camera (0016)
        "rollup_us_per_segment": round(rollup_us, 1),
        "commit_us_per_segment": round(commit_us, 1),
        "rollup_ratio": round(rollup_us / commit_us, 3),
        "image_check_cpu_pct_per_camera": round(image_pct, 4),
        "capture_cpu_pct_per_camera": round(capture_pct, 3),
        "image_to_capture_ratio": round(image_pct / capture_pct, 4),
        "load_1m": round(os.getloadavg()[0], 1),
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
