"""Footage requests and scheduler views over real HTTP (uvicorn on 127.0.0.1), on a real SQLite
catalog: request -> list -> show -> cancel, every bad input refused, audited and writing no
job, county entitlement enforced, and the same jobs seen by `vigil-controller footage`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.api.routes.scheduler import link_out
from controller.jobs import JobService
from controller.scheduler.leases import LinkDelivery
from controller.scheduler.service import SchedulerService
from tests.integration.test_api_support import (
    CITY_ADMIN,
    HOUR,
    OFFICER,
    T0,
    VIEWER,
    WUDU_OP,
    ApiWorld,
    Person,
    assert_refused,
)

S = 1_000_000


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiWorld]:
    world = ApiWorld(tmp_path)
    world.deps.jobs = JobService(world.world.catalog, world.clock)
    yield world
    world.close()


def body(**over: Any) -> dict[str, Any]:
    now = T0 + 3 * HOUR  # the World's manual clock
    values: dict[str, Any] = {
        "cameras": ["cam-01", "cam-02"],
        "from_us": T0,
        "to_us": T0 + HOUR,
        "deadline_us": now + HOUR,
        "case_id": "CX-2026-017",
        "traffic_class": "evidence",
    }
    values.update(over)
    return values


def post(api: ApiWorld, who: Person = OFFICER, **over: Any) -> Any:
    return api.client.post("/api/v1/footage", json=body(**over), headers=api.auth(who))


def job_count(api: ApiWorld) -> int:
    assert api.deps.jobs is not None
    return len(api.deps.jobs.jobs(limit=1000))


def test_request_list_show_cancel_and_the_cli_sees_it(api: ApiWorld) -> None:
    r = post(api)
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["state"] == "open" and job["case_id"] == "CX-2026-017"
    assert job["cameras"] == ["cam-01", "cam-02"] and job["traffic_class"] == "evidence"
    assert job["requested_by"] == OFFICER.user_id
    entry = api.entries()[0]
    assert (entry.action, entry.outcome, entry.actor_user) == ("footage_request", "ok", "officer-1")
    assert entry.case_id == "CX-2026-017" and entry.camera_id == "cam-01"
    assert json.loads(entry.detail)["cameras"] == ["cam-01", "cam-02"]

    listed = api.client.get(
        "/api/v1/footage", params={"state": "open", "case": "CX-2026-017"}, headers=api.auth(VIEWER)
    )
    assert listed.status_code == 200 and [j["job_id"] for j in listed.json()] == [job["job_id"]]
    assert (
        api.client.get(
            "/api/v1/footage", params={"state": "done"}, headers=api.auth(OFFICER)
        ).json()
        == []
    )

    shown = api.client.get(f"/api/v1/footage/{job['job_id']}", headers=api.auth(OFFICER)).json()
    for key in (
        "bytes_done",
        "bytes_total",
        "segments_done",
        "segments_total",
        "percent",
        "eta_us",
        "gone",
        "cameras_status",
        "detail",
    ):
        assert key in shown, key
    segs = api.client.get(f"/api/v1/footage/{job['job_id']}/segments", headers=api.auth(OFFICER))
    assert segs.status_code == 200 and isinstance(segs.json(), list)

    # The CLI reads the same database (the World's data dir).
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "controller",
            "footage",
            "list",
            "--json",
            "--data-dir",
            str(api.world.data),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert [j["job_id"] for j in json.loads(out.stdout)] == [job["job_id"]]

    cancelled = api.client.post(
        f"/api/v1/footage/{job['job_id']}/cancel", headers=api.auth(OFFICER)
    )
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "cancelled"
    entry = api.entries()[0]
    assert (entry.action, entry.outcome, entry.case_id) == ("footage_cancel", "ok", "CX-2026-017")
    before = len(api.entries())
    again = api.client.post(f"/api/v1/footage/{job['job_id']}/cancel", headers=api.auth(OFFICER))
    assert_refused(api, again, 409, "job_finished", before, action="footage_cancel")


NOW = T0 + 3 * HOUR
BAD_REQUESTS: list[tuple[str, dict[str, Any], Person, int, str]] = [
    ("reversed", {"from_us": T0 + HOUR, "to_us": T0}, OFFICER, 400, "bad_request"),
    ("future", {"to_us": NOW + HOUR}, OFFICER, 400, "bad_request"),
    ("deadline past", {"deadline_us": NOW - S}, OFFICER, 400, "bad_request"),
    ("deadline absurd", {"deadline_us": NOW + 400 * 24 * HOUR}, OFFICER, 400, "bad_request"),
    ("too many", {"cameras": [f"cam-{i:02d}" for i in range(40)]}, OFFICER, 400, "bad_request"),
    ("no case", {"case_id": ""}, OFFICER, 400, "case_required"),
    ("bad case", {"case_id": "../etc"}, OFFICER, 400, "bad_request"),
    ("bad class", {"traffic_class": "live"}, OFFICER, 400, "bad_request"),
    ("unknown camera", {"cameras": ["cam-01", "cam-99"]}, OFFICER, 404, "unknown_camera"),
    ("viewer", {}, VIEWER, 403, "role_not_allowed"),
    ("other county", {"cameras": ["cam-01"]}, WUDU_OP, 403, "not_entitled"),
]


def test_bad_requests_are_refused_audited_and_create_nothing(api: ApiWorld) -> None:
    for name, over, who, status, reason in BAD_REQUESTS:
        before = len(api.entries())
        r = post(api, who, **over)
        assert_refused(api, r, status, reason, before, action="footage_request")
        assert job_count(api) == 0, name
        assert api.entries()[0].actor_user == who.user_id, name
    # A malformed body is refused by validation (no job, nothing half-done).
    r = api.client.post(
        "/api/v1/footage", json=body(from_us="yesterday"), headers=api.auth(OFFICER)
    )
    assert r.status_code == 400 and r.json()["reason"] == "bad_request"
    assert job_count(api) == 0
    # The Wudu operator may ask for Wudu's own camera.
    assert post(api, WUDU_OP, cameras=["wd-01"], case_id="WD-1").status_code == 201


def test_jobs_are_only_visible_to_who_may_see_their_cameras(api: ApiWorld) -> None:
    job = post(api).json()
    auth = api.auth(WUDU_OP)
    assert api.client.get("/api/v1/footage", headers=auth).json() == []
    for path, verb in (
        (f"/api/v1/footage/{job['job_id']}", "get"),
        (f"/api/v1/footage/{job['job_id']}/cancel", "post"),
    ):
        before = len(api.entries())
        r = api.client.request(verb, path, headers=auth)
        assert_refused(api, r, 404, "not_found", before)
    assert api.deps.jobs is not None and api.deps.jobs.get(job["job_id"]).state == "open"
    city = api.client.get(f"/api/v1/footage/{job['job_id']}", headers=api.auth(CITY_ADMIN))
    assert city.status_code == 200
    # The viewer may look but not cancel.
    before = len(api.entries())
    r = api.client.post(f"/api/v1/footage/{job['job_id']}/cancel", headers=api.auth(VIEWER))
    assert_refused(api, r, 403, "role_not_allowed", before, action="footage_cancel")


def test_unknown_jobs_bad_filters_and_no_job_service(api: ApiWorld) -> None:
    auth = api.auth(OFFICER)
    for job_id in ("0123456789abcdef", "not-a-job"):
        before = len(api.entries())
        r = api.client.get(f"/api/v1/footage/{job_id}", headers=auth)
        assert_refused(api, r, 404, "not_found", before, action="footage_show")
    before = len(api.entries())
    r = api.client.get("/api/v1/footage", params={"state": "lost"}, headers=auth)
    assert_refused(api, r, 400, "bad_request", before, action="footage_list")
    assert api.client.get("/api/v1/footage").status_code == 401
    api.deps.jobs = None
    before = len(api.entries())
    assert_refused(api, post(api), 503, "jobs_unavailable", before, action="footage_request")


def test_scheduler_views(api: ApiWorld) -> None:
    auth = api.auth(OFFICER)
    for path in ("/api/v1/scheduler/plan", "/api/v1/scheduler/links"):
        before = len(api.entries())
        assert_refused(
            api, api.client.get(path, headers=auth), 503, "scheduler_unavailable", before
        )
    api.deps.scheduler = SchedulerService(api.world.catalog, api.clock)  # not started: no thread
    plan = api.client.get("/api/v1/scheduler/plan", headers=auth)
    assert plan.status_code == 200, plan.text
    data = plan.json()
    assert isinstance(data["plan_version"], int) and data["saturated_links"] == []
    assert isinstance(data["devices"], list) and isinstance(data["links"], list)
    links = api.client.get("/api/v1/scheduler/links", headers=api.auth(CITY_ADMIN))
    assert links.status_code == 200 and isinstance(links.json(), list)
    before = len(api.entries())
    r = api.client.get("/api/v1/scheduler/plan", headers=api.auth(VIEWER))
    assert_refused(api, r, 403, "role_not_allowed", before, action="scheduler_plan")
    # A request pokes a running scheduler (no error even though its loop is not started).
    assert post(api).status_code == 201


def test_link_saturation_is_judged_against_usable_capacity() -> None:
    usable = {"uplink": 9_000_000}
    full = link_out(LinkDelivery("uplink", 10_000_000, 8_950_000, 4_000_000), usable)
    assert full.saturated and full.ratio == round(4_000_000 / 8_950_000, 3)
    idle = link_out(LinkDelivery("uplink", 10_000_000, 0, 0), usable)
    assert not idle.saturated and idle.ratio is None
