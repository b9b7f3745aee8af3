"""Benchmark: the KPI report for a month of a 17,088-endpoint city, the hourly accounting's
cost per ingested segment, and image health's CPU against capture's (issue 15).

1. A seeded history in PostgreSQL (127.0.0.1:5432, a throwaway database): the Longnan preset's
   2,000 NVRs with 12,088 cameras and 5,000 handheld terminals (controller/scheduler/sim), 30
   days of `camera_hour` rows (one per endpoint and hour, 12.3 M rows, made by the server from
   generate_series with hashed figures), state transitions (each endpoint online at the start,
   outages for one in seven, image faults for one in forty) and loss reports. Then the report
   for the month is made and rendered to HTML (`report_s`, goal ≤ 10 s).
2. `rollup_us_per_segment`: the accounting's own cost per committed segment (the neighbour
   lookups and the upsert, `controller.catalog.accounting.rollup_segments`, each in its own
   transaction on that database), against the whole catalog commit of a segment with it
   (`commit_us_per_segment`, the baseline), and their ratio.
3. `image_check_cpu_pct_per_camera` and `capture_cpu_pct_per_camera`, same run: a 1080p H.264
   clip (25 fps, 2 s GOP) encoded here; capture = PyAV demux + MPEG-TS remux of every packet
   (the agent's per-packet work), CPU time per media second; image health = one keyframe decoded
   and checked a minute (`edge_agent.image.sampler`), CPU per minute. Ratio goal < 0.1.

    python -m bench.report --quick      # < 60 s; the full run is the same with more samples

The last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import time
from fractions import Fraction

import psycopg

from controller.catalog import Catalog, make_engine
from controller.catalog.accounting import rollup_segments
from controller.catalog.models import SegmentRow
from controller.clock import ManualClock, SystemClock
from controller.grants.policy import default_policy
from controller.kpi.service import make_report, render
from controller.scheduler.sim.presets import HANDHELD, preset
from edge_agent.image.sampler import ImageSampler

US = 1_000_000
H = 3600 * US
DAY = 24 * H
START = 1_793_491_200 * US  # 2026-11-01 00:00 UTC
ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _say(text: str) -> None:
    print(text, flush=True)


def seed(url: str, days: int, grain_h: int) -> int:
    """Registry, transitions, losses and the month of camera_hour rows, one per endpoint and
    `grain_h` hours (1: the real hourly rows; 24 in --quick: one row per day carrying the
    day's totals, the same sums in 1/24 of the rows); returns the endpoints."""
    city = preset("longnan")
    devices, cameras, changes = [], [], []
    rng = random.Random(15)
    n = 0
    links = {d.device_id: d.link_id for d in city.topology.devices}
    for site in city.sites:
        link = links[site.device_id]
        county = link.split(":", 1)[1].split("-")[0]
        place = "mobile" if site.kind == HANDHELD else link.split(":", 1)[1]
        devices.append((site.device_id, county, place, site.kind))
        for k, bps in enumerate(site.camera_bps):
            n += 1
            cam = f"{site.device_id}-c{k + 1}"
            cameras.append((cam, site.device_id, "II" if bps < 4_000_000 else "III", bps))
            changes.append(("camera", site.device_id, cam, "online", "", START))
            if n % 7 == 0:  # an outage of 1-30 h somewhere in the month
                t = START + rng.randrange(days * 24 - 31) * H
                changes.append(("camera", site.device_id, cam, "offline", "unreachable", t))
                changes.append(
                    ("camera", site.device_id, cam, "online", "", t + rng.randint(1, 30) * H)
                )
            if n % 40 == 0:
                t = START + rng.randrange(days * 24 - 5) * H
                changes.append(("image", site.device_id, cam, "frozen", "frozen", t))
                changes.append(("image", site.device_id, cam, "ok", "ok", t + 4 * H))
    with psycopg.connect(url.replace("+psycopg", ""), autocommit=False) as conn:
        with conn.cursor() as cur:
            with cur.copy(
                "COPY device (device_id, county, site, kind, created_at_us, "
                "updated_at_us) FROM STDIN"
            ) as cp:
                for d in devices:
                    cp.write_row((*d, START, START))
            with cur.copy(
                "COPY camera (camera_id, device_id, retention_days, resource_class, "
                "max_duration_us, created_at_us, updated_at_us) FROM STDIN"
            ) as cp:
                for c in cameras:
                    cp.write_row((c[0], c[1], 30, c[2], 10 * US, START, START))
            with cur.copy(
                "COPY state_change (subject, device_id, camera_id, state, reason, at_us) FROM STDIN"
            ) as cp:
                for ch in changes:
                    cp.write_row(ch)
            # The month of accounting, computed by the server: ~98 % recorded, some uploaded
            # late, a few evictions and gaps, HD height for the 4 Mbit/s cameras.
            cur.execute(
                """
                INSERT INTO camera_hour SELECT c.camera_id, %(start)s + h * %(hour)s,
                  (3600000000 - g) * %(grain)s, (3600000000 - g - e) * %(grain)s, e * %(grain)s,
                  g * %(grain)s, 360 * %(grain)s, 1800000000::bigint * %(grain)s,
                  e * 125 * %(grain)s,
                  300, 50, 5, 3, 1, 1, 0, 0, 0,
                  CASE WHEN c.resource_class = 'III' THEN 1080 ELSE 576 END
                FROM camera c, generate_series(0, %(hours)s - 1) AS h,
                  LATERAL (SELECT (hashtext(c.camera_id || h) & 1023) AS r) AS x,
                  LATERAL (SELECT CASE WHEN r < 20 THEN r::bigint * 3000000 ELSE 0 END AS g,
                                  CASE WHEN r > 1015 THEN 600000000::bigint ELSE 0 END AS e) AS y
                """,
                {
                    "start": START,
                    "hour": grain_h * H,
                    "hours": days * 24 // grain_h,
                    "grain": grain_h,
                },
            )
            cur.execute(
                "INSERT INTO loss_event (device_id, camera_id, session, seq, fact_id, start_us, "
                "end_us, size_bytes, reason, detail, at_us, received_us) SELECT c.device_id, "
                "c.camera_id, 1, row_number() OVER (), c.camera_id || '-' || h, "
                "%(start)s + h * %(hour)s, "
                "%(start)s + h * %(hour)s + 600000000, 75000000, 'buffer_full', '', "
                "%(start)s, %(start)s FROM camera c, "
                "generate_series(1, 3) AS h WHERE hashtext(c.camera_id) & 63 = 0",
                {"start": START, "hour": 97 * H},
            )
        conn.commit()
        conn.execute("ANALYZE")
    return n


def rollup_cost(url: str, segments: int) -> tuple[float, float]:
    """(µs of the accounting alone per segment, µs of a whole catalog commit per segment)."""
    engine = make_engine(url)
    catalog = Catalog(engine, SystemClock())
    catalog.upsert_device("bench-nvr", "wudu", "wudu-99-01", "nvr")
    catalog.upsert_camera("bench-cam", "bench-nvr")
    rows = []
    prev = ""
    for i in range(2 * segments):
        sha = f"{i:064x}"
        rows.append(
            SegmentRow(
                segment_id=f"bench-{i}",
                camera_id="bench-cam",
                device_id="bench-nvr",
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
    ap.add_argument("--quick", action="store_true", help="< 60 s")
    args = ap.parse_args()
    days = 30
    name = f"vigil_bench_report_{os.getpid()}"
    with psycopg.connect(ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    try:
        make_engine(url).dispose()  # migrate to head
        t0 = time.perf_counter()
        grain = 24 if args.quick else 1
        endpoints = seed(url, days, grain)
        seed_s = time.perf_counter() - t0
        _say(f"seeded {endpoints} endpoints x {days} days ({grain} h rows) in {seed_s:.1f} s")
        engine = make_engine(url)
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
            f"report: {report_s:.2f} s, {len(page) // 1024} KiB of HTML, "
            f"online rate {report['summary']['online_rate']}"
        )
        rollup_us, commit_us = rollup_cost(url, 100 if args.quick else 1000)
        _say(f"rollup {rollup_us:.0f} us/segment of a {commit_us:.0f} us catalog commit")
    finally:
        with psycopg.connect(ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    clip = _clip(4 if args.quick else 10)
    image_pct, capture_pct = image_vs_capture(clip, 3 if args.quick else 10)
    _say(f"image health {image_pct:.4f} % vs capture {capture_pct:.3f} % of a core per camera")
    result = {
        "endpoints": endpoints,
        "days": days,
        "report_s": round(report_s, 2),
        "report_goal_s": 10,
        "seed_s": round(seed_s, 1),
        "accounting_row_hours": grain,
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
