"""GET /api/v1/report: the evaluation report over HTTP (admins only; an organisation's admins
get their own organisation's cameras whatever they ask; bad periods are 400 with the reason)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.catalog.history import HistoryCatalog
from controller.catalog.history_models import StateChangeRow
from tests.integration.test_api_support import CITY_ADMIN, CX_ADMIN, OFFICER, ApiWorld

H = 3600 * 1_000_000


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiWorld]:
    world = ApiWorld(tmp_path)
    try:
        yield world
    finally:
        world.close()


def test_the_report_over_http(api: ApiWorld) -> None:
    t0 = (api.clock.now_us() // H + 1) * H  # after the cameras were registered
    HistoryCatalog(api.world.engine, api.clock).record_changes(
        [
            StateChangeRow(
                subject="camera", device_id="dev-cx", camera_id=c, state="online", at_us=t0
            )
            for c in ("cam-01", "cam-02")
        ]
    )
    period = {"from": str(t0), "to": str(t0 + 24 * H)}
    r = api.client.get("/api/v1/report", params=period, headers=api.auth(CITY_ADMIN))
    assert r.status_code == 200, r.text
    everything = r.json()
    assert everything["summary"]["online_h"] == 48.0
    r = api.client.get(
        "/api/v1/report", params={**period, "org": "wudu"}, headers=api.auth(CX_ADMIN)
    )
    assert r.status_code == 200 and r.json()["organisation"] == "chengxian"
    r = api.client.get(
        "/api/v1/report", params={**period, "format": "html"}, headers=api.auth(CITY_ADMIN)
    )
    assert r.headers["content-type"].startswith("text/html") and "<svg" in r.text
    r = api.client.get("/api/v1/report", params=period, headers=api.auth(OFFICER))
    assert r.status_code == 403
    bad = {"from": str(t0 + 24 * H), "to": str(t0)}
    r = api.client.get("/api/v1/report", params=bad, headers=api.auth(CITY_ADMIN))
    assert r.status_code == 400 and "before --to" in r.json()["message"]
    r = api.client.get(
        "/api/v1/report", params={**period, "org": "nowhere"}, headers=api.auth(CITY_ADMIN)
    )
    assert r.status_code == 400 and "unknown organisation" in r.json()["message"]
