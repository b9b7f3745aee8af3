"""The seeded month for `bench.report`: 30 days × 17,088 endpoints with the hourly accounting
as the system keeps it (one `camera_hour` row per endpoint and hour, 12.3 M rows, and one
`class_hour` row per classified endpoint-hour), in a PostgreSQL database kept between runs.

Why kept: writing 12.3 M + 12 M rows with their primary keys costs minutes on the shared
2-core VM (more than `--quick`'s 60 s), while the figure measured is the report over them.
The database is named by the schema's migration head and `SEED_VERSION`, so a new revision or
a new seed makes a new one (older seeds are dropped then); `--fresh` reseeds. The first run
on a machine seeds (its time is printed as `seed_s`); later runs reuse it (`seed_s` 0).

Seeding is bulk work done by the server, at revision 0015 (before the day tables): the two
hourly tables are emptied of their indexes and made UNLOGGED, filled by one INSERT ... SELECT
each from generate_series with hashed figures, then their primary keys and indexes are built
(sorted builds) and they are made LOGGED again, so the tables end exactly as the migrations
make them. Then the database is migrated to the head: revision 0016 back-fills `camera_day`
and `class_day` from the hourly rows, as it does on a live database.
"""

from __future__ import annotations

import os
import random
import time

import psycopg

from controller.catalog import make_engine
from controller.catalog.db import upgrade_database
from controller.catalog.schema import _run as run_migrations
from controller.catalog.schema import script_directory
from controller.scheduler.sim.presets import HANDHELD, preset

US = 1_000_000
H = 3600 * US
DAY = 24 * H
# 2026-11-01 00:00 Asia/Shanghai: the month `report --from 2026-11-01 --to 2026-12-01` asks.
START = 1_793_462_400 * US
DAYS = 30
# 2: the local month, day tables by revision 0016; 3: built again once revision 0017 (which
# was an empty reservation when 2 was seeded, stamped all the same) changed gb_device.
SEED_VERSION = 3
BULK_REVISION = "0015"  # loaded at this revision, then migrated: 0016 back-fills the days
PREFIX = "vigil_bench_report_seed_"

# Per endpoint-hour: ~98 % recorded, a few evictions and gaps, 360 segments of 10 s, HD
# height for the 4 Mbit/s cameras; the delays as in the hourly rows' histogram.
_CAMERA_HOURS = """
INSERT INTO camera_hour SELECT c.camera_id, %(start)s + h * %(hour)s,
  3600000000 - g, 3600000000 - g - e, e, g, 360, 1800000000, e * 125,
  300, 50, 5, 3, 1, 1, 0, 0, 0,
  CASE WHEN c.resource_class = 'III' THEN 1080 ELSE 576 END
FROM camera c, generate_series(0, %(hours)s - 1) AS h,
  LATERAL (SELECT (hashtext(c.camera_id || h) & 1023) AS r) AS x,
  LATERAL (SELECT CASE WHEN r < 20 THEN r::bigint * 3000000 ELSE 0 END AS g,
                  CASE WHEN r > 1015 THEN 600000000::bigint ELSE 0 END AS e) AS y
ORDER BY 1, 2
"""
# The classes the scheduler leased those uploads under: mostly backfill, archive for one
# hour in 8, evidence for one in 128, and one in 64 unclassified (no row).
_CLASS_HOURS = """
INSERT INTO class_hour SELECT c.camera_id, %(start)s + h * %(hour)s,
  CASE WHEN r < 8 THEN 1 WHEN r < 128 THEN 4 ELSE 5 END,
  360, 300, 50, 5, 3, 1, 1, 0, 0, 0
FROM camera c, generate_series(0, %(hours)s - 1) AS h,
  LATERAL (SELECT (hashtext(h || c.camera_id) & 1023) AS r) AS x
WHERE r < 1008
ORDER BY 1, 2
"""
_TABLES = (("camera_hour", "ix_camera_hour_hour"), ("class_hour", "ix_class_hour_hour"))


def seed_name() -> str:
    return f"{PREFIX}r{script_directory().get_current_head()}_v{SEED_VERSION}"


def _exists(admin: psycopg.Connection[tuple[object, ...]], name: str) -> bool:
    return (
        admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        is not None
    )


def seeded(admin_url: str, fresh: bool) -> tuple[str, int, float]:
    """(URL of the seeded database, endpoints, seconds spent seeding: 0 when reused)."""
    name = seed_name()
    url = f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        if fresh:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if _exists(admin, name):
            return url, _endpoints(url), 0.0
    drop_seeds(admin_url)
    with psycopg.connect(admin_url, autocommit=True) as admin:
        building = f"{name}_building_{os.getpid()}"
        admin.execute(f'CREATE DATABASE "{building}"')
    t0 = time.perf_counter()
    try:
        engine = make_engine(url.replace(name, building), create=False)
        try:
            with engine.begin() as conn:
                run_migrations(conn, script_directory(), BULK_REVISION, stamp=False)
            endpoints = seed(url.replace(name, building).replace("+psycopg", ""), DAYS)
            upgrade_database(engine)  # 0016 sums the hours into days, as on a live database
            # As the hourly tables were: hint bits and visibility map set, statistics taken.
            building_url = url.replace(name, building).replace("+psycopg", "")
            with psycopg.connect(building_url, autocommit=True) as conn:
                conn.execute("VACUUM ANALYZE camera_day, class_day")
        finally:
            engine.dispose()
    except BaseException:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
        raise
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
    return url, endpoints, time.perf_counter() - t0


def drop_seeds(admin_url: str) -> list[str]:
    """Drop every kept seed database (this version's and older ones); returns their names."""
    with psycopg.connect(admin_url, autocommit=True) as admin:
        rows = admin.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s", (PREFIX + "%",)
        ).fetchall()
        for (name,) in rows:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return [str(r[0]) for r in rows]


def _endpoints(url: str) -> int:
    with psycopg.connect(url.replace("+psycopg", "")) as conn:
        row = conn.execute("SELECT count(*) FROM camera").fetchone()
    return int(row[0]) if row else 0


def _registry(
    days: int,
) -> tuple[list[tuple[object, ...]], list[tuple[object, ...]], list[tuple[object, ...]]]:
    """Devices, cameras and state transitions of the Longnan preset: every endpoint online
    at the start, an outage of 1-30 h for one in seven, a 4 h frozen picture for one in 40."""
    city = preset("longnan")
    devices: list[tuple[object, ...]] = []
    cameras: list[tuple[object, ...]] = []
    changes: list[tuple[object, ...]] = []
    rng = random.Random(15)
    n = 0
    links = {d.device_id: d.link_id for d in city.topology.devices}
    for site in city.sites:
        link = links[site.device_id]
        county = link.split(":", 1)[1].split("-")[0]
        place = "mobile" if site.kind == HANDHELD else link.split(":", 1)[1]
        devices.append((site.device_id, county, place, site.kind, START, START))
        for k, bps in enumerate(site.camera_bps):
            n += 1
            cam = f"{site.device_id}-c{k + 1}"
            kind = "II" if bps < 4_000_000 else "III"
            cameras.append((cam, site.device_id, 30, kind, 10 * US, START, START))
            changes.append(("camera", site.device_id, cam, "online", "", START))
            if n % 7 == 0:
                t = START + rng.randrange(days * 24 - 31) * H
                changes.append(("camera", site.device_id, cam, "offline", "unreachable", t))
                changes.append(
                    ("camera", site.device_id, cam, "online", "", t + rng.randint(1, 30) * H)
                )
            if n % 40 == 0:
                t = START + rng.randrange(days * 24 - 5) * H
                changes.append(("image", site.device_id, cam, "frozen", "frozen", t))
                changes.append(("image", site.device_id, cam, "ok", "ok", t + 4 * H))
    return devices, cameras, changes


def seed(url: str, days: int) -> int:
    """Registry, transitions, losses and the month's hourly accounting; returns endpoints."""
    devices, cameras, changes = _registry(days)
    copies = (
        ("device (device_id, county, site, kind, created_at_us, updated_at_us)", devices),
        (
            "camera (camera_id, device_id, retention_days, resource_class, max_duration_us, "
            "created_at_us, updated_at_us)",
            cameras,
        ),
        ("state_change (subject, device_id, camera_id, state, reason, at_us)", changes),
    )
    params = {"start": START, "hour": H, "hours": days * 24}
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET synchronous_commit = off")
        with conn.transaction(), conn.cursor() as cur:
            for target, rows in copies:
                with cur.copy(f"COPY {target} FROM STDIN") as cp:
                    for row in rows:
                        cp.write_row(row)
        conn.execute("ANALYZE camera")
        pkeys = {}
        for table, index in _TABLES:  # bulk load: no index kept up row by row, no WAL
            found = conn.execute(
                "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
                (table,),
            ).fetchone()
            assert found is not None, table
            pkeys[table] = str(found[0])
            conn.execute(f"ALTER TABLE {table} DROP CONSTRAINT {pkeys[table]}")
            conn.execute(f"DROP INDEX {index}")
            conn.execute(f"ALTER TABLE {table} SET UNLOGGED")
        conn.execute(_CAMERA_HOURS, params)
        conn.execute(_CLASS_HOURS, params)
        keys = {
            "camera_hour": "camera_id, hour_us",
            "class_hour": "camera_id, hour_us, traffic_class",
        }
        for table, index in _TABLES:
            conn.execute(
                f"ALTER TABLE {table} ADD CONSTRAINT {pkeys[table]} PRIMARY KEY ({keys[table]})"
            )
            conn.execute(f"CREATE INDEX {index} ON {table} (hour_us)")
            conn.execute(f"ALTER TABLE {table} SET LOGGED")
        conn.execute(
            "INSERT INTO loss_event (device_id, camera_id, session, seq, fact_id, start_us, "
            "end_us, size_bytes, reason, detail, at_us, received_us) SELECT c.device_id, "
            "c.camera_id, 1, row_number() OVER (), c.camera_id || '-' || h, "
            "%(start)s + h * %(hour)s, "
            "%(start)s + h * %(hour)s + 600000000, 75000000, 'buffer_full', '', "
            "%(start)s, %(start)s FROM camera c, "
            "generate_series(1, 3) AS h WHERE hashtext(c.camera_id) & 63 = 0",
            {"start": START, "hour": 97 * H},
        )
        conn.execute("VACUUM ANALYZE")
    return len(cameras)
