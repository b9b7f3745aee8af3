"""Console benchmark: the camera list and the camera tree over the Longnan preset (17,088
endpoints) on PostgreSQL, through the real HTTP API and headless Chromium.

    python -m bench.console --quick    # < 60 s: fewer repetitions
    python -m bench.console

Figures (medians):
- cameras_page_ms: GET /api/v1/cameras?county=武都区&limit=50&offset=k as the city's admin
  (policy scope, filters, count, page, media, JSON), over HTTP on loopback; the issue's goal
  is <= 100 ms. Baseline in the same run: bare_page_ms, the same page and count as two bare
  SQL statements on the same engine (no scope, no HTTP); ratio = page / bare.
- tree_render_ms: in Chromium, from the tree's start to the city's nine counties on screen
  with their counts (one request aggregating all 17,088 cameras, then the DOM); the goal is
  <= 1 s. tree_search_ms: typing a GB/T 28181 code until its camera is listed. Baseline:
  bare_tree_ms, the same request's JSON fetched and written as nine bare <li> in the same
  page; tree_ratio = tree / bare.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
from sqlalchemy import text

PG_ADMIN = os.environ.get("VIGIL_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PASSWORD = "correct horse battery"
BARE_SQL = """
SELECT c.camera_id, c.device_id, d.county, d.site, c.resource_class, cd.name, cd.gb_code
FROM camera c JOIN device d ON d.device_id = c.device_id
LEFT JOIN camera_directory cd ON cd.camera_id = c.camera_id
WHERE d.county IN ('wudu', '武都区') ORDER BY c.camera_id LIMIT 50 OFFSET :off
"""
BARE_COUNT = """
SELECT count(*) FROM camera c JOIN device d ON d.device_id = c.device_id
WHERE d.county IN ('wudu', '武都区')
"""
BARE_TREE_JS = """async () => {
    const t0 = performance.now();
    const headers = {Authorization: 'Bearer ' + TOKEN};
    const res = await fetch('/api/v1/directory/tree', {headers});
    const nodes = await res.json();
    const ul = document.createElement('ul');
    for (const n of nodes) {
        const li = document.createElement('li');
        li.textContent = n.label + ' ' + n.online + '/' + n.total;
        ul.appendChild(li);
    }
    document.body.appendChild(ul);
    ul.getBoundingClientRect();
    return performance.now() - t0;
}"""


def _conninfo(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    reps = 15 if args.quick else 60
    name = f"vigil_bench_console_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0]
    db_url = f"{base.replace('postgresql://', 'postgresql+psycopg://')}/{name}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            print(json.dumps(run(Path(tmp), db_url, reps)))
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(tmp: Path, db_url: str, reps: int) -> dict[str, Any]:
    from controller.api.wiring import http
    from controller.clock import SystemClock
    from controller.config import ControllerConfig
    from controller.directory.load import load_preset
    from controller.directory.preset import longnan
    from controller.directory.store import DirectoryStore
    from controller.grants.keys import ensure_keys
    from controller.grants.policy import default_policy
    from controller.runtime import open_core
    from controller.users import create_user

    ensure_keys(tmp)
    config = ControllerConfig.model_validate(
        {"data_dir": str(tmp), "database_url": db_url, "http": {"listen": "127.0.0.1:0"}}
    )
    clock = SystemClock()
    core = open_core(config, clock)
    preset = longnan()
    t = time.perf_counter()
    load_preset(DirectoryStore(core.engine, clock), preset)
    load_s = time.perf_counter() - t
    with core.engine.connect() as conn:
        conn.execute(text("ANALYZE"))
        conn.commit()
    create_user(core.engine, clock, "admin-1", "city", "admin", PASSWORD, policy=default_policy())
    component = http(core, None, None)
    component.start()
    try:
        return measure(core, component.base_url, preset, reps, load_s)
    finally:
        component.stop()
        core.dispose()


def measure(core: Any, base: str, preset: list[Any], reps: int, load_s: float) -> dict[str, Any]:
    client = httpx.Client(base_url=base, timeout=30)
    r = client.post("/api/v1/login", json={"user_id": "admin-1", "password": PASSWORD})
    token = r.json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    page, bare = [], []
    for i in range(reps):
        off = (i * 97) % 2000
        t = time.perf_counter()
        got = client.get(
            "/api/v1/cameras", params={"county": "武都区", "limit": 50, "offset": off}, headers=auth
        )
        page.append((time.perf_counter() - t) * 1000)
        assert got.status_code == 200 and len(got.json()) == 50, got.text[:200]
        t = time.perf_counter()
        with core.engine.connect() as conn:
            conn.execute(text(BARE_COUNT)).scalar_one()
            rows = conn.execute(text(BARE_SQL), {"off": off}).all()
        bare.append((time.perf_counter() - t) * 1000)
        assert len(rows) == 50
    client.close()
    tree, bare_tree, found = browser(base, token, preset, max(3, reps // 5))
    page_ms, bare_ms = statistics.median(page), statistics.median(bare)
    tree_ms, bare_tree_ms = statistics.median(tree), statistics.median(bare_tree)
    return {
        "bench": "console",
        "endpoints": len(preset),
        "cameras_page_ms": round(page_ms, 1),
        "bare_page_ms": round(bare_ms, 1),
        "ratio": round(page_ms / bare_ms, 2),
        "tree_render_ms": round(tree_ms, 1),
        "tree_search_ms": round(statistics.median(found), 1),
        "bare_tree_ms": round(bare_tree_ms, 1),
        "tree_ratio": round(tree_ms / bare_tree_ms, 2),
        "preset_load_s": round(load_s, 1),
        "loadavg_1m": round(os.getloadavg()[0], 1),
    }


def browser(
    base: str, token: str, preset: list[Any], runs: int
) -> tuple[list[float], list[float], list[float]]:
    from playwright.sync_api import sync_playwright

    code = next(c.entry.gb_code for c in reversed(preset) if c.entry.gb_code)
    camera = next(c.camera_id for c in reversed(preset) if c.entry.gb_code == code)
    tree: list[float] = []
    bare: list[float] = []
    found: list[float] = []
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        try:
            for _ in range(runs):
                page = chromium.new_page(viewport={"width": 1400, "height": 900})
                page.goto(base + "/")
                page.fill("#login-user", "admin-1")
                page.fill("#login-password", PASSWORD)
                page.click("#login-submit")
                page.wait_for_selector("#tree li.level-county")
                tree.append(page.evaluate("() => window.__vigilTreeMs"))
                t = time.perf_counter()
                page.fill("#tree-search", code)
                page.wait_for_selector(f"#tree-results li.camera[data-camera='{camera}']")
                found.append((time.perf_counter() - t) * 1000)
                bare.append(page.evaluate(BARE_TREE_JS.replace("TOKEN", json.dumps(token))))
                page.close()
        finally:
            chromium.close()
    return tree, bare, found


if __name__ == "__main__":
    main()
