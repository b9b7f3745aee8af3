"""Logins, sessions and account administration over real HTTP (uvicorn on 127.0.0.1), on a
real SQLite database: every login audited, bad sessions refused, disabling ends sessions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.api.deps import ApiSettings
from controller.api.limits import LoginBudgets
from controller.fleet.ratelimit import RatePolicy
from controller.users.sessions import issue_session
from tests.integration.test_api_support import (
    CITY_ADMIN,
    CX_ADMIN,
    OFFICER,
    PASSWORD,
    VIEWER,
    ApiWorld,
    assert_refused,
)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiWorld]:
    budgets = LoginBudgets(per_user=RatePolicy(rate_per_s=0.001, burst=3))
    settings = ApiSettings(login_budgets=budgets)
    world = ApiWorld(tmp_path, settings)
    yield world
    world.close()


def login(api: ApiWorld, user: str, password: str, ip_user: str | None = None):
    return api.client.post("/api/v1/login", json={"user_id": user, "password": password})


def test_login_returns_a_session_and_is_audited(api: ApiWorld) -> None:
    r = login(api, OFFICER.user_id, PASSWORD)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["user"] == {
        "user_id": "officer-1",
        "org_id": "chengxian",
        "role": "operator",
        "display_name": "",
    }
    assert body["token"].startswith("vs1.") and body["expires_us"] > api.clock.now_us()
    me = api.client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.status_code == 200 and me.json()["user_id"] == "officer-1"
    entry = api.world.audit.search(action="login")[0]
    assert (entry.actor_user, entry.actor_org, entry.outcome) == ("officer-1", "chengxian", "ok")
    assert PASSWORD not in entry.detail and body["token"] not in entry.detail


def test_wrong_passwords_and_unknown_users_look_the_same_and_are_audited(api: ApiWorld) -> None:
    for user, password in ((OFFICER.user_id, "wrong password"), ("nobody", PASSWORD)):
        before = len(api.entries())
        r = login(api, user, password)
        assert_refused(api, r, 401, "unauthenticated", before, action="login")
        assert r.json()["message"] == "wrong user id or password"
        assert "www-authenticate" in r.headers
        assert "wrong password" not in api.entries()[0].detail


def test_failed_logins_are_throttled_even_for_the_right_password(api: ApiWorld) -> None:
    for _ in range(3):
        assert login(api, VIEWER.user_id, "guess-guess").status_code == 401
    before = len(api.entries())
    r = login(api, VIEWER.user_id, PASSWORD)
    assert r.status_code == 429 and r.json()["reason"] == "rate_limited"
    entries = api.entries()
    assert len(entries) == before + 1
    assert entries[0].action == "login" and entries[0].outcome == "refused"
    assert entries[0].reason == "rate_limited"
    # Another user from the same address is not affected.
    assert login(api, OFFICER.user_id, PASSWORD).status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        "Bearer garbage",
        "Bearer vs1.eyJ1IjoiYWRtaW4tMSJ9.AAAA",
        "Bearer " + "v" * 5000,
        "Basic b2ZmaWNlci0xOnB3",
    ],
)
def test_bad_sessions_are_refused(api: ApiWorld, header: str) -> None:
    r = api.client.get("/api/v1/cameras", headers={"Authorization": header})
    assert r.status_code == 401 and r.json()["reason"] == "unauthenticated"
    assert r.headers["content-type"].startswith("application/json")


def test_forged_and_expired_sessions_are_refused(api: ApiWorld) -> None:
    now = api.clock.now_us()
    forged, _ = issue_session(b"k" * 32, "admin-1", "city", "admin", 1, now)
    r = api.client.get("/api/v1/cameras", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and "bad_signature" in r.json()["message"]
    token = api.login(OFFICER)
    api.clock.advance(8 * 3600)
    r = api.client.get("/api/v1/cameras", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401 and "expired" in r.json()["message"]
    assert api.client.get("/api/v1/cameras").status_code == 401  # no session at all


def test_admins_manage_their_own_organisation_audited(api: ApiWorld) -> None:
    body = {"user_id": "officer-2", "role": "viewer", "password": "a long password"}
    r = api.client.post("/api/v1/users", json=body, headers=api.auth(CX_ADMIN))
    assert r.status_code == 201 and r.json()["org_id"] == "chengxian"
    change = api.world.audit.search(action="admin_change")[0]
    assert change.actor_user == "cx-admin" and "officer-2" in change.detail
    assert login(api, "officer-2", "a long password").status_code == 200
    # A county admin may not create accounts elsewhere; a viewer none at all.
    api.login(VIEWER)
    before = len(api.entries())
    other = {**body, "user_id": "x-1", "org_id": "wudu"}
    r = api.client.post("/api/v1/users", json=other, headers=api.auth(CX_ADMIN))
    assert_refused(api, r, 403, "role_not_allowed", before, action="admin_change")
    r = api.client.post("/api/v1/users", json=body, headers=api.auth(VIEWER))
    assert_refused(api, r, 403, "role_not_allowed", before + 1)
    # Bad input: a short password, a duplicate id, an unknown role, an unknown org.
    for bad, status in (
        ({**body, "user_id": "x-2", "password": "short"}, 400),
        (body, 400),
        ({**body, "user_id": "x-3", "role": "superuser"}, 400),
    ):
        r = api.client.post("/api/v1/users", json=bad, headers=api.auth(CX_ADMIN))
        assert r.status_code == status and r.json()["reason"] == "bad_request", r.text
    r = api.client.post(
        "/api/v1/users",
        json={**body, "user_id": "x-4", "org_id": "atlantis"},
        headers=api.auth(CITY_ADMIN),
    )
    assert r.status_code == 400 and "atlantis" in r.json()["message"]
    assert api.users.get("x-2") is None and api.users.get("x-4") is None


def test_disabling_an_account_ends_its_sessions_at_once(api: ApiWorld) -> None:
    headers = api.auth(VIEWER)
    assert api.client.get("/api/v1/cameras", headers=headers).status_code == 200
    r = api.client.post(f"/api/v1/users/{VIEWER.user_id}/disable", headers=api.auth(CX_ADMIN))
    assert r.status_code == 200
    r = api.client.get("/api/v1/cameras", headers=headers)
    assert r.status_code == 401 and "ended" in r.json()["message"]
    assert login(api, VIEWER.user_id, PASSWORD).status_code == 401
