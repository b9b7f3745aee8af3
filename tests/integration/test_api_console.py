"""What the console's sharing and user-admin views need, over real HTTP (one world: the
logins cost seconds).

Cross-organisation footage requests: 武都区's operator asks 成县 for a camera's footage, only
成县's admin decides, the approved grant plays for the requester alone and stops when revoked,
a refusal mints nothing, and the audit chain holds the whole story under one id. User admin:
an organisation's admin lists and re-enables its own accounts only; the organisations' names."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from controller.catalog.history import HistoryCatalog
from controller.catalog.history_models import LossEventRow
from tests.integration.test_api_support import (
    CITY_ADMIN,
    CX_ADMIN,
    HOUR,
    OFFICER,
    T0,
    WUDU_OP,
    ApiWorld,
    Person,
    assert_refused,
)


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiWorld]:
    world = ApiWorld(tmp_path_factory.mktemp("share-requests"))  # one world: logins cost seconds
    world.world.add_footage("cam-01", T0, 3)
    yield world
    world.close()


def ask(api: ApiWorld, who: Person = WUDU_OP, **body: Any) -> Any:
    values: dict[str, Any] = {
        "cameras": ["cam-01"],
        "from_us": T0,
        "to_us": T0 + HOUR,
        "operations": ["playback"],
        "reason": "交通事故核查",
        "case_id": "WD-2026-031",
        "lifetime_s": 3600,
    }
    values.update(body)
    return api.client.post("/api/v1/share-requests", json=values, headers=api.auth(who))


def decide(api: ApiWorld, rid: str, verb: str, who: Person, **body: Any) -> Any:
    return api.client.post(f"/api/v1/share-requests/{rid}/{verb}", json=body, headers=api.auth(who))


def test_request_approve_play_revoke_and_the_story_in_the_audit(api: ApiWorld) -> None:
    r = ask(api)
    assert r.status_code == 201, r.text
    req = r.json()
    rid = req["request_id"]
    assert (req["owner_org"], req["state"]) == ("chengxian", "pending")
    listed = api.client.get(
        "/api/v1/share-requests", params={"direction": "to_me"}, headers=api.auth(CX_ADMIN)
    ).json()
    assert [x["request_id"] for x in listed] == [rid]
    assert (
        api.client.get(
            "/api/v1/share-requests", params={"direction": "to_me"}, headers=api.auth(WUDU_OP)
        ).json()
        == []
    )
    before = len(api.entries())
    r = api.client.post(f"/api/v1/share-requests/{rid}/grant", headers=api.auth(WUDU_OP))
    assert_refused(api, r, 400, "bad_request", before, action="share_collect")  # pending
    for who in (OFFICER, CITY_ADMIN):  # an operator of the owner, the city: not approvers
        before = len(api.entries())
        r = decide(api, rid, "approve", who)
        assert_refused(api, r, 403, "role_not_allowed", before, action="share_approve")

    r = decide(api, rid, "approve", CX_ADMIN, note="同意", lifetime_s=1800)
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "approved"
    assert r.json()["expires_us"] == api.clock.now_us() + 1800 * 1_000_000
    before = len(api.entries())
    r = decide(api, rid, "refuse", CX_ADMIN)
    assert_refused(api, r, 400, "bad_request", before, action="share_refuse")  # decided

    r = api.client.post(f"/api/v1/share-requests/{rid}/grant", headers=api.auth(WUDU_OP))
    assert r.status_code == 200, r.text
    grant = r.json()
    assert grant["grant_id"] == rid and grant["issuer_org"] == "chengxian"
    assert api.playlist(grant["token"], who=WUDU_OP).status_code == 200
    # The timeline: the camera's segments under the grant, clipped to its window; not without.
    day = {"from": str(T0 - 10 * HOUR), "to": str(T0 + 14 * HOUR)}
    r = api.client.get(
        "/api/v1/cameras/cam-01/segments", params=day, headers=api.auth(WUDU_OP, grant["token"])
    )
    assert r.status_code == 200, r.text
    assert (r.json()["from_us"], r.json()["to_us"]) == (T0, T0 + HOUR)
    assert r.json()["segments"]
    r = api.client.get("/api/v1/cameras/cam-01/segments", params=day, headers=api.auth(WUDU_OP))
    assert r.status_code == 403 and r.json()["reason"] == "not_entitled"
    before = len(api.entries())
    r = api.client.post(f"/api/v1/share-requests/{rid}/grant", headers=api.auth(OFFICER))
    assert_refused(api, r, 403, "wrong_holder", before, action="share_collect")
    # The share lists read the same chain: 成县 shared it, 武都区 holds it.
    mine = api.client.get(
        "/api/v1/shares", params={"direction": "mine"}, headers=api.auth(CX_ADMIN)
    ).json()
    assert [s["grant_id"] for s in mine] == [rid]

    r = api.client.post(
        f"/api/v1/grants/{rid}/revoke", json={"reason": "结案"}, headers=api.auth(CX_ADMIN)
    )
    assert r.status_code == 200, r.text
    before = len(api.entries())
    assert_refused(
        api, api.playlist(grant["token"], who=WUDU_OP), 403, "revoked", before, "playlist"
    )
    mine_now = api.client.get("/api/v1/share-requests", headers=api.auth(WUDU_OP)).json()
    assert [(x["request_id"], x["state"]) for x in mine_now] == [(rid, "revoked")]
    story = [e.action for e in reversed(api.world.audit.search(grant=rid, limit=100))]
    ok = [a for a in story if a in {"share_requested", "share_approved", "grant_minted",
                                    "share_collected", "playlist", "grant_revoked"}]  # fmt: skip
    assert ok[:4] == ["share_requested", "share_approved", "grant_minted", "share_collected"]
    assert "grant_revoked" in ok
    # 成县's admin finds the request and the uses of its footage (its chain of custody); the
    # requester's own colleagues' other entries stay out of its view.
    seen = api.client.get(
        "/api/v1/audit", params={"grant": rid, "limit": 100}, headers=api.auth(CX_ADMIN)
    ).json()
    assert {"share_requested", "share_collected"} <= {e["action"] for e in seen}
    other = api.client.get(
        "/api/v1/audit", params={"user": "wd-op", "action": "login"}, headers=api.auth(CX_ADMIN)
    ).json()
    assert other == []


def test_a_refused_request_mints_nothing_and_bad_requests_are_audited(api: ApiWorld) -> None:
    rid = ask(api).json()["request_id"]
    r = decide(api, rid, "refuse", CX_ADMIN, note="理由不充分")
    assert r.status_code == 200 and r.json()["state"] == "refused"
    assert r.json()["note"] == "理由不充分"
    before = len(api.entries())
    r = api.client.post(f"/api/v1/share-requests/{rid}/grant", headers=api.auth(WUDU_OP))
    assert_refused(api, r, 400, "bad_request", before, action="share_collect")
    assert not api.world.audit.search(action="grant_minted", grant=rid, limit=10)
    before = len(api.entries())
    assert_refused(api, ask(api, who=OFFICER), 400, "bad_request", before, "share_request")
    before = len(api.entries())
    r = ask(api, to_us=T0 + 30 * HOUR, case_id="")
    assert_refused(api, r, 400, "case_required", before, "share_request")
    before = len(api.entries())
    r = decide(api, "f" * 32, "approve", CX_ADMIN)
    assert_refused(api, r, 404, "unknown_grant", before, "share_approve")


def test_user_admin_lists_disables_and_enables_its_own_accounts(api: ApiWorld) -> None:
    def ids(who: Person) -> list[str]:
        r = api.client.get("/api/v1/users", headers=api.auth(who))
        assert r.status_code == 200, r.text
        return [u["user_id"] for u in r.json()]

    assert ids(CX_ADMIN) == ["cx-admin", "officer-1", "viewer-1"]  # 成县's accounts only
    assert set(ids(CITY_ADMIN)) >= {"admin-1", "cx-admin", "wd-op"}
    before = len(api.entries())
    r = api.client.get("/api/v1/users", headers=api.auth(OFFICER))
    assert_refused(api, r, 403, "role_not_allowed", before, action="admin_change")
    r = api.client.post("/api/v1/users/viewer-1/disable", headers=api.auth(CX_ADMIN))
    assert r.status_code == 200 and r.json()["disabled"] is True
    before = len(api.entries())
    r = api.client.post("/api/v1/users/viewer-1/enable", headers=api.auth(WUDU_OP))
    assert_refused(api, r, 403, "role_not_allowed", before, action="admin_change")
    r = api.client.post("/api/v1/users/viewer-1/enable", headers=api.auth(CX_ADMIN))
    assert r.status_code == 200 and r.json()["disabled"] is False
    assert api.entries()[0].action == "admin_change"
    before = len(api.entries())
    r = api.client.post("/api/v1/users/cx-admin/disable", headers=api.auth(CX_ADMIN))
    assert_refused(api, r, 400, "bad_request", before, action="admin_change")
    orgs = api.client.get("/api/v1/organisations", headers=api.auth(OFFICER)).json()
    assert {"org_id": "chengxian", "name": "成县", "kind": "county"} in orgs


def test_the_timeline_lists_evicted_footage_from_the_loss_reports(api: ApiWorld) -> None:
    def loss(seq: int, lo: int, hi: int) -> LossEventRow:
        return LossEventRow(
            device_id="dev-cx", camera_id="cam-02", session=1, seq=seq, start_us=lo, end_us=hi,
            reason="quota", at_us=hi, received_us=hi,
        )  # fmt: skip

    sec = 1_000_000
    history = HistoryCatalog(api.world.engine, api.clock)
    history.record_losses([loss(1, T0, T0 + 2 * sec), loss(2, T0 + 2 * sec, T0 + 4 * sec),
                           loss(3, T0 + HOUR, T0 + HOUR + 2 * sec)])  # fmt: skip
    day = {"from": str(T0 - 8 * HOUR), "to": str(T0 + 16 * HOUR)}
    r = api.client.get("/api/v1/cameras/cam-02/on-device", params=day, headers=api.auth(OFFICER))
    assert r.status_code == 200, r.text
    out = r.json()
    assert [(e["start_us"], e["end_us"]) for e in out["evicted"]] == [
        (T0, T0 + 4 * sec),  # two touching reports, one range
        (T0 + HOUR, T0 + HOUR + 2 * sec),
    ]
    assert out["unsent_since_us"] == 0  # no fleet view here: nothing known to be on the device
    assert out["unsent"] == []  # no scheduler either

    class Inventory:  # the scheduler leader's view of the agents' last inventories
        def unsent(self, device_id: str, camera_id: str) -> list[tuple[int, int]]:
            assert (device_id, camera_id) == ("dev-cx", "cam-02")
            return [(T0 + 9 * sec, T0 + 11 * sec), (T0 + 11 * sec, T0 + 13 * sec)]

    api.deps.scheduler = Inventory()  # type: ignore[assignment]
    try:
        r = api.client.get(
            "/api/v1/cameras/cam-02/on-device", params=day, headers=api.auth(OFFICER)
        )
    finally:
        api.deps.scheduler = None
    assert [(u["start_us"], u["end_us"]) for u in r.json()["unsent"]] == [
        (T0 + 9 * sec, T0 + 13 * sec)
    ]
    before = len(api.entries())
    r = api.client.get("/api/v1/cameras/cam-02/on-device", params=day, headers=api.auth(WUDU_OP))
    assert_refused(api, r, 403, "not_entitled", before, action="catalog_on_device")
