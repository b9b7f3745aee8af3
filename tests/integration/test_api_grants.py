"""The JSON API over real HTTP: what an organisation sees, minting within entitlement,
delegation registered and checked, revocation (the grant and its descendants), the signed
revocation list, the fleet view, audit search, and the OpenAPI document."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.clock import ManualClock
from controller.config import MqttConfig
from controller.fleet.component import FleetComponent
from controller.fleet.directory import StaticDirectory
from controller.fleet.mqtt import MqttSettings
from controller.fleet.service import FleetService
from controller.fleet.topics import device_topic
from controller.grants.codec import (
    anchors_from,
    decode_token,
    encode_token,
    raw_public_key,
    sign_grant,
)
from controller.grants.mint import GrantRequest, plan_child_grant
from controller.grants.model import Operation
from controller.grants.revocation import accept_revocation_list
from protos.vigil.v1 import fleet_pb2
from tests.integration.test_api_support import (
    CITY_ADMIN,
    CX_ADMIN,
    HOUR,
    OFFICER,
    T0,
    VIEWER,
    WUDU_OP,
    ApiWorld,
    assert_refused,
)


@pytest.fixture
def api(tmp_path: Path) -> Iterator[ApiWorld]:
    world = ApiWorld(tmp_path)
    world.world.add_footage("cam-01", T0, 6)
    yield world
    world.close()


def test_cameras_and_segments_are_what_the_organisation_may_see(api: ApiWorld) -> None:
    r = api.client.get("/api/v1/cameras", headers=api.auth(OFFICER))
    assert r.status_code == 200
    assert [c["camera_id"] for c in r.json()] == ["cam-01", "cam-02"]  # not 武都区's wd-01
    assert r.json()[0]["area"] == "陇南市/成县/site-01/cam-01"
    everything = api.client.get("/api/v1/cameras", headers=api.auth(CITY_ADMIN)).json()
    assert {c["camera_id"] for c in everything} == {"cam-01", "cam-02", "wd-01"}
    r = api.client.get(
        "/api/v1/cameras/cam-01/segments",
        params={"from": "2026-01-01T00:00:00Z", "to": "2026-01-01T00:00:30Z"},
        headers=api.auth(VIEWER),
    )
    assert r.status_code == 200, r.text
    assert [s["start_us"] for s in r.json()["segments"]] == [T0, T0 + 10**7, T0 + 2 * 10**7]
    before = len(api.entries())
    r = api.client.get(
        "/api/v1/cameras/wd-01/segments",
        params={"from": str(T0), "to": str(T0 + HOUR)},
        headers=api.auth(OFFICER),
    )
    assert_refused(api, r, 403, "not_entitled", before, action="catalog_segments")
    for params in ({"from": "yesterday", "to": "now"}, {"from": str(T0 + 5), "to": str(T0)}):
        r = api.client.get(
            "/api/v1/cameras/cam-01/segments", params=params, headers=api.auth(OFFICER)
        )
        assert r.status_code == 400 and r.json()["reason"] == "bad_request"
    r = api.client.get(
        "/api/v1/cameras/nope/segments",
        params={"from": str(T0), "to": str(T0 + 1)},
        headers=api.auth(OFFICER),
    )
    assert r.status_code == 404 and r.json()["reason"] == "unknown_camera"


def test_minting_stays_within_entitlement_and_role(api: ApiWorld) -> None:
    grant = api.mint(OFFICER)
    assert grant["holder_org"] == "chengxian" and grant["holder_user"] == "officer-1"
    assert grant["watermark_id"] == "chengxian/officer-1" and grant["operations"] == ["playback"]
    assert decode_token(grant["token"]).leaf.grant_id == grant["grant_id"]
    minted = api.world.audit.search(action="grant_minted")[0]
    assert minted.grant_id == grant["grant_id"] and minted.actor_user == "officer-1"
    body = {
        "operations": ["playback"],
        "from_us": T0,
        "to_us": T0 + HOUR,
        "purpose": "p",
    }
    cases = [
        (OFFICER, {**body, "cameras": ["wd-01"]}, 403, "not_entitled"),  # another org's camera
        (
            VIEWER,
            {**body, "operations": ["download"], "cameras": ["cam-01"]},
            403,
            "role_not_allowed",
        ),
        (OFFICER, {**body, "cameras": ["cam-01"], "holder_org": "wudu"}, 403, "role_not_allowed"),
        (OFFICER, {**body, "cameras": ["no-such-cam"]}, 400, "bad_request"),
        (OFFICER, {**body, "cameras": ["cam-01"], "from_us": T0 - 30 * HOUR}, 400, "case_required"),
        (OFFICER, {**body, "cameras": ["cam-01"], "holder_public_key": "zz"}, 400, "bad_request"),
    ]
    for who, request, status, reason in cases:
        before = len(api.entries())
        r = api.client.post("/api/v1/grants", json=request, headers=api.auth(who))
        assert_refused(api, r, status, reason, before)
    # Malformed bodies never reach the grant service.
    for bad in ({**body, "cameras": ["cam-01"], "surprise": 1}, {"operations": ["fly"]}, "x"):
        r = api.client.post("/api/v1/grants", json=bad, headers=api.auth(OFFICER))
        assert r.status_code == 400 and r.json()["reason"] == "bad_request", r.text


def test_delegation_registered_checked_and_revoked_with_its_ancestor(api: ApiWorld) -> None:
    county_key = Ed25519PrivateKey.generate()
    root = api.mint(
        CITY_ADMIN,
        holder_org="chengxian",
        holder_public_key=raw_public_key(county_key).hex(),
        cameras=[],
        areas=["陇南市/成县"],
    )
    assert root["delegable"] and root["holder_user"] == ""
    parent = decode_token(root["token"])
    child = plan_child_grant(
        parent.leaf,
        GrantRequest(
            holder_org="chengxian",
            holder_user="officer-1",
            operations=frozenset({Operation.PLAYBACK}),
            footage_from_us=T0,
            footage_to_us=T0 + HOUR,
            purpose="incident 17",
            camera_ids=frozenset({"cam-01"}),
        ),
        api.clock.now_us(),
        "c" * 32,
        api.world.policy,
    )
    token = encode_token([*parent.links, sign_grant(child, county_key)])
    # Only the delegating organisation's admin registers the delegation.
    for who, reason in ((OFFICER, "role_not_allowed"), (CITY_ADMIN, "wrong_holder")):
        before = len(api.entries())
        r = api.client.post("/api/v1/grants/delegate", json={"token": token}, headers=api.auth(who))
        assert_refused(api, r, 403, reason, before, action="grant_delegate")
    r = api.client.post(
        "/api/v1/grants/delegate", json={"token": token}, headers=api.auth(CX_ADMIN)
    )
    assert r.status_code == 201 and r.json()["chain"] == [root["grant_id"], "c" * 32]
    delegated = api.world.audit.search(action="grant_delegated")
    assert [e.grant_id for e in delegated] == ["c" * 32]
    assert api.playlist(token).status_code == 200
    # A child wider than its parent (footage after the parent's window), signed with the
    # county's own key: refused as widened, audited, and it plays nothing.
    from dataclasses import replace

    wide = replace(child, grant_id="d" * 32, footage_to_us=T0 + 3 * HOUR)
    wide_token = encode_token([*parent.links, sign_grant(wide, county_key)])
    before = len(api.entries())
    r = api.client.post(
        "/api/v1/grants/delegate", json={"token": wide_token}, headers=api.auth(CX_ADMIN)
    )
    assert_refused(api, r, 403, "widened", before, action="grant_delegate")
    # Revoking the county's root grant stops the officer's child grant.
    before = len(api.entries())
    r = api.client.post(
        f"/api/v1/grants/{root['grant_id']}/revoke",
        json={"reason": "case closed"},
        headers=api.auth(OFFICER),
    )
    assert_refused(api, r, 403, "role_not_allowed", before, action="grant_revoke")
    r = api.client.post(
        f"/api/v1/grants/{root['grant_id']}/revoke",
        json={"reason": "case closed"},
        headers=api.auth(CITY_ADMIN),
    )
    assert r.status_code == 200 and r.json()["sequence"] >= 1
    before = len(api.entries())
    r = api.playlist(token)
    assert_refused(api, r, 403, "revoked", before, action="playlist")
    assert "ancestor" in r.json()["message"]
    published = api.client.get("/api/v1/revocations")
    assert published.headers["content-type"] == "application/octet-stream"
    view = accept_revocation_list(
        published.content,
        anchors_from([api.world.keys.root_public]),
        None,
        api.clock.now_us(),
    )
    assert root["grant_id"] in view.revoked


def test_garbage_and_oversize_tokens_are_refused_and_audited(api: ApiWorld) -> None:
    for token, status, reason in (("!!!", 400, "malformed"), ("A" * 70_000, 413, "oversize")):
        before = len(api.entries())
        r = api.client.post(
            "/api/v1/grants/delegate", json={"token": token}, headers=api.auth(CX_ADMIN)
        )
        assert_refused(api, r, status, reason, before, action="grant_delegate")
    r = api.client.post(
        "/api/v1/grants/delegate",
        content=b'{"token": "' + b"A" * 300_000 + b'"}',
        headers={**api.auth(CX_ADMIN), "Content-Type": "application/json"},
    )
    assert r.status_code == 413 and r.json()["reason"] == "oversize"


def test_live_grants_renew_under_the_same_id(api: ApiWorld) -> None:
    now = api.clock.now_us()
    live = api.mint(OFFICER, operations=["live"], from_us=now - HOUR, to_us=now + HOUR)
    api.clock.advance(10 * 60)
    r = api.client.post(
        "/api/v1/grants/renew", json={"token": live["token"]}, headers=api.auth(OFFICER)
    )
    assert r.status_code == 200, r.text
    assert r.json()["grant_id"] == live["grant_id"] and r.json()["expires_us"] > live["expires_us"]
    before = len(api.entries())
    r = api.client.post(
        "/api/v1/grants/renew", json={"token": live["token"]}, headers=api.auth(VIEWER)
    )
    assert_refused(api, r, 403, "wrong_holder", before, action="grant_renew")


def test_devices_and_alerts_from_the_catalog_and_the_fleet_view(api: ApiWorld) -> None:
    r = api.client.get("/api/v1/devices", headers=api.auth(OFFICER))
    assert [(d["device_id"], d["online"]) for d in r.json()] == [("dev-cx", None)]
    assert api.client.get("/api/v1/alerts", headers=api.auth(OFFICER)).status_code == 503
    # A real fleet view fed real protobuf messages (what its MQTT loop would deliver).
    directory = StaticDirectory({"dev-cx": ("成县", "site-01"), "dev-wd": ("武都区", "site-09")})
    fleet = FleetService(
        MqttSettings("127.0.0.1", 1, "x"), ManualClock(api.clock.now_us()), directory
    )
    birth = fleet_pb2.Birth(device_id="dev-cx", session=1, county="成县", site="site-01")
    assert (
        fleet.handle_message(
            device_topic("成县", "site-01", "dev-cx", "birth"), birth.SerializeToString()
        )
        == "accepted"
    )
    health = fleet_pb2.Health(
        device_id="dev-cx",
        session=1,
        seq=1,
        disk_free_bytes=10,
        disk_total_bytes=10**12,
        cameras=[fleet_pb2.CameraHealth(camera_id="cam-01", connected=True)],
    )
    topic = device_topic("成县", "site-01", "dev-cx", "health")
    assert fleet.handle_message(topic, health.SerializeToString()) == "accepted"
    # Wired as `vigil-controller serve` does: the FleetComponent's service, built (and given
    # to the API) before the component starts.
    component = FleetComponent(MqttConfig(), api.world.data, api.clock, directory)
    api.deps.fleet = component.service
    assert api.client.get("/api/v1/alerts", headers=api.auth(OFFICER)).json() == []
    api.deps.fleet = fleet
    r = api.client.get("/api/v1/devices", headers=api.auth(OFFICER))
    (dev,) = r.json()
    assert dev["online"] is True and dev["cameras_connected"] == 1 and dev["alerts"] >= 1
    alerts = api.client.get("/api/v1/alerts", headers=api.auth(OFFICER)).json()
    assert "disk_low" in {a["kind"] for a in alerts}
    detail = api.client.get("/api/v1/devices/dev-cx", headers=api.auth(OFFICER)).json()
    assert detail["cameras"] == ["cam-01", "cam-02"] and detail["health"]["disk_free_bytes"]
    # 武都区's operator sees neither 成县's device nor its alerts.
    assert api.client.get("/api/v1/devices/dev-cx", headers=api.auth(WUDU_OP)).status_code == 404
    assert api.client.get("/api/v1/alerts", headers=api.auth(WUDU_OP)).json() == []


def test_audit_search_by_user_camera_case_and_time_for_admins(api: ApiWorld) -> None:
    grant = api.mint(OFFICER)
    assert api.playlist(grant["token"]).status_code == 200
    r = api.client.get(
        "/api/v1/audit",
        params={"case": "CX-2026-017", "camera": "cam-01"},
        headers=api.auth(CITY_ADMIN),
    )
    assert r.status_code == 200
    assert [e["action"] for e in r.json()] == ["playlist"]
    assert r.json()[0]["detail"]["segments"] == 6
    mine = api.client.get(
        "/api/v1/audit", params={"user": "officer-1"}, headers=api.auth(CX_ADMIN)
    ).json()
    assert {e["action"] for e in mine} >= {"login", "grant_minted", "playlist"}
    assert all(e["actor_org"] == "chengxian" for e in mine)
    later = api.client.get(
        "/api/v1/audit",
        params={"from": str(api.clock.now_us() + 1)},
        headers=api.auth(CITY_ADMIN),
    )
    assert later.json() == []
    before = len(api.entries())
    r = api.client.get("/api/v1/audit", headers=api.auth(OFFICER))
    assert_refused(api, r, 403, "role_not_allowed", before, action="audit_search")


def test_openapi_console_and_unknown_routes(api: ApiWorld) -> None:
    spec = api.client.get("/api/v1/openapi.json").json()
    for path in (
        "/api/v1/login",
        "/api/v1/cameras",
        "/api/v1/cameras/{camera_id}/segments",
        "/api/v1/grants",
        "/api/v1/grants/delegate",
        "/api/v1/grants/{grant_id}/revoke",
        "/api/v1/revocations",
        "/api/v1/devices",
        "/api/v1/alerts",
        "/api/v1/audit",
        "/api/v1/exports",
        "/play/{camera_id}.m3u8",
    ):
        assert path in spec["paths"], path
    page = api.client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert api.client.get("/static/app.js").status_code == 200
    missing = api.client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.json()["reason"] == "not_found"
