"""The console's 考核指标 (KPIs) page in Chromium: an admin logs in, opens the page, asks for a
day and reads the figures computed from the catalog's history; the language switch relabels
it; the page asks nothing of any other origin. Screenshot: kpi-zh.png in the test's tmp_path."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from controller.catalog.accounting import apply_deltas
from controller.catalog.history import HistoryCatalog
from controller.catalog.history_models import LossEventRow, StateChangeRow
from controller.catalog.timeliness import apply_class_deltas
from tests.fixtures.browser import chromium_browser  # noqa: F401 - the `chromium` fixture
from tests.integration.test_api_support import CITY_ADMIN, PASSWORD, T0, ApiWorld

H = 3600 * 1_000_000


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiWorld]:
    world = ApiWorld(tmp_path / "world")
    try:
        yield world
    finally:
        world.close()


def seed(api: ApiWorld) -> None:
    """2026-01-01 in Beijing ends at T0 + 16 h; the world registered its cameras at T0 + 3 h
    (its clock now): 13 h expected of each. cam-01 online from then to the end (13 h), cam-02
    for 3 h, wd-01 never: (13 + 3 + 0) / 39 = 41.03 %. cam-01 uploaded one hour, 4 segments
    within 30 s; one 10-minute segment evicted unsent."""
    history = HistoryCatalog(api.world.engine, api.clock)
    t0 = api.clock.now_us()
    assert t0 == T0 + 3 * H
    rows = [
        StateChangeRow(subject="camera", device_id="dev-cx", camera_id=c, state="online", at_us=t0)
        for c in ("cam-01", "cam-02")
    ]
    rows.append(
        StateChangeRow(
            subject="camera",
            device_id="dev-cx",
            camera_id="cam-02",
            state="offline",
            at_us=t0 + 3 * H,
        )  # fmt: skip
    )
    history.record_changes(rows)
    with api.world.engine.begin() as conn:
        hour = Counter({"recorded_us": H, "uploaded_us": H, "segments": 4, "delay_le_30": 4})
        apply_deltas(conn, {("cam-01", t0): hour})
        # 3 of the 4 leased as evidence (what the scheduler's upkeep records): 1 unclassified
        apply_class_deltas(conn, {("cam-01", t0, 1): Counter({"segments": 3, "delay_le_30": 3})})
    history.record_losses(
        [
            LossEventRow(
                device_id="dev-cx", camera_id="cam-01", session=1, seq=1, fact_id="seg-x",
                start_us=t0 + 2 * H, end_us=t0 + 2 * H + 600_000_000, size_bytes=5000,
                reason="buffer_full", at_us=t0 + 3 * H, received_us=t0 + 3 * H,
            )
        ]
    )  # fmt: skip


def test_the_kpi_page_shows_the_day_in_chinese_then_english(
    chromium: Any, api: ApiWorld, tmp_path: Path
) -> None:
    seed(api)
    base = api.http.base_url
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    foreign: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    def request(r: Any) -> None:
        where = urlparse(r.url)
        if where.scheme not in ("data", "blob") and where.netloc != urlparse(base).netloc:
            foreign.append(r.url)

    page.on("request", request)
    page.goto(base + "/")
    page.fill("#login-user", CITY_ADMIN.user_id)
    page.fill("#login-password", PASSWORD)
    page.click("#login-submit")
    nav = page.locator('#nav button[data-view="kpi"]')
    nav.wait_for(state="visible", timeout=20_000)
    assert nav.inner_text() == "考核指标"
    nav.click()
    page.wait_for_selector("#kpi-form", timeout=10_000)
    page.fill("#kpi-from", "2026-01-01")
    page.fill("#kpi-to", "2026-01-01")
    page.click("#kpi-run")
    page.wait_for_selector("#kpi-cards", timeout=20_000)
    online = page.locator('#kpi-cards [data-kpi="online_rate"]')
    assert online.inner_text().split() == ["在线率", "41.03%"]
    assert "2026-01-01 – 2026-01-01" in page.inner_text("#kpi-period")
    assert page.locator("#kpi-daily polyline").count() == 2  # online and working rate
    assert page.locator("#kpi-daily circle").count() == 2  # one day: one point each
    box = page.locator("#kpi-daily").bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 80
    timeliness = page.locator("#kpi-timeliness tbody tr").first.inner_text().split()
    assert timeliness == ["已建存量", "4", "30", "30"]
    by_class = [r.split() for r in page.locator("#kpi-timeliness-class tbody tr").all_inner_texts()]
    assert by_class[0] == ["证据调阅", "3", "30", "30"] and by_class[1] == [
        "实时视频",
        "0",
        "-",
        "-",
    ]
    assert by_class[5] == ["未分类", "1", "30", "30"]
    assert page.locator("#kpi-losses tbody tr").first.inner_text().split() == [
        "设备存储满", "1", "0.167", "5,000",
    ]  # fmt: skip
    worst = page.locator("#kpi-worst tbody tr").first.inner_text()
    assert worst.startswith("wd-01")  # never online: first to fix
    page.screenshot(path=str(tmp_path / "kpi-zh.png"), full_page=True)
    page.click("#lang")
    assert nav.inner_text() == "KPIs"
    assert online.inner_text().split() == ["Online", "rate", "41.03%"]
    assert page.locator("#kpi-losses tbody tr").first.inner_text().startswith("Device storage full")
    assert errors == [] and foreign == []
    assert (tmp_path / "kpi-zh.png").stat().st_size > 10_000
