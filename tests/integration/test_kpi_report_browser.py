"""The HTML report opens in headless Chromium with its charts drawn and its language switch
working; it loads nothing from anywhere (issue 15). Screenshots: report-zh.png, report-en.png
in the test's tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from controller.catalog import make_engine
from controller.clock import ManualClock
from controller.grants.policy import default_policy
from controller.kpi.service import make_report, render
from tests.fixtures.browser import chromium_browser  # noqa: F401 - the `chromium` fixture
from tests.integration.test_kpi_month import END, START, TARGETS, US, run_month


def test_the_html_report_draws_its_charts_in_chromium(chromium: Any, tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'db' / 'catalog.db'}")
    clock = ManualClock(START - 10 * US)
    clock.advance(10)
    run_month(engine, clock)
    report = make_report(engine, clock, default_policy(), TARGETS, START, END)
    engine.dispose()
    path = tmp_path / "report.html"
    path.write_text(render(report, "html"), encoding="utf-8")
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    foreign: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: foreign.append(r.url) if r.url != path.as_uri() else None)
    page.goto(path.as_uri())
    assert page.title() == "视频共享平台运行评估报告"
    charts = page.locator("figure.chart:visible svg")
    assert charts.count() == 3
    for i in range(3):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 150
        assert charts.nth(i).locator("path").count() > 10  # bars, lines, axes drawn
    assert page.get_by_text("在线率").first.is_visible()
    assert page.locator("table").first.is_visible()
    page.screenshot(path=str(tmp_path / "report-zh.png"), full_page=True)
    page.click("#lang")
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.get_by_text("Online rate").first.is_visible()
    assert not page.get_by_text("在线率").first.is_visible()
    assert page.locator("figure.chart:visible svg").count() == 3
    page.screenshot(path=str(tmp_path / "report-en.png"), full_page=True)
    assert errors == [] and foreign == []
    assert (tmp_path / "report-zh.png").stat().st_size > 10_000
