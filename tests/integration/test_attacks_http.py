"""Attacks on the control-centre HTTP API of a real controller process (issue 10, failures 5,
6 and 10, and the "also" items: no-store logins, query-string sessions, /metrics).

5. Revocation scope: only the issuer's organisation, a holder up the delegation chain or the
   city admin may revoke; unknown ids are refused (they would only grow the public list).
6. A non-ASCII session token (header or `?session=`) is a 401 with one log line, never a 500.
10. Passwords are argon2id; an old scrypt hash is replaced at the next login.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.integration.test_attacks_support import PASSWORD, Target, assert_unchanged

HOUR_US = 3600 * 1_000_000
T0 = 1_764_000_000_000_000


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    root = tmp_path_factory.mktemp("attack-http")
    token_file = root / "metrics.token"
    token_file.write_text("metrics-" + secrets.token_hex(16) + "\n")
    t = Target(root, http={"metrics_token_file": str(token_file)})
    t.metrics_token = token_file.read_text().strip()  # type: ignore[attr-defined]
    yield t
    t.close()


def _mint(target: Target, holder_org: str = "chengxian", camera: str = "cx-cam") -> dict[str, Any]:
    body = {
        "operations": ["playback"],
        "cameras": [camera],
        "holder_org": holder_org,
        "from_us": T0,
        "to_us": T0 + HOUR_US,
        "purpose": "incident 17 review",
        "case_id": "CX-2026-017",
    }
    r = target.client.post("/api/v1/grants", json=body, headers=target.auth("admin-1"))
    assert r.status_code == 201, r.text
    out: dict[str, Any] = r.json()
    return out


def _revoke(target: Target, grant_id: str, who: str) -> httpx.Response:
    return target.client.post(
        f"/api/v1/grants/{grant_id}/revoke", json={"reason": "attack"}, headers=target.auth(who)
    )


def test_revocation_only_by_issuer_holder_chain_or_city(target: Target) -> None:
    grant = _mint(target)
    for who in ("wd-admin", "cx-admin", "admin-1"):
        target.login(who)
    before = target.snapshot()
    audit_before = target.audit_count()
    # Another county's admin may not revoke chengxian's grant, nor invent ids.
    r = _revoke(target, grant["grant_id"], "wd-admin")
    assert r.status_code == 403 and r.json()["reason"] == "wrong_holder", r.text
    for unknown in ("ab" * 16, secrets.token_hex(16)):
        r = _revoke(target, unknown, "wd-admin")
        assert r.status_code == 404 and r.json()["reason"] == "unknown_grant", r.text
        r = _revoke(target, unknown, "admin-1")  # not even the city grows the list with junk
        assert r.status_code == 404, r.text
    assert_unchanged(target, before)
    refusals = target.audit_rows("grant_revoke")
    assert target.audit_count() == audit_before + 5
    assert [(u, o) for u, o, _r, _d in refusals[-5:]] == [("wd-admin", "refused")] + [
        ("wd-admin", "refused"),
        ("admin-1", "refused"),
    ] * 2
    # The holder's own admin may: the grant is listed.
    r = _revoke(target, grant["grant_id"], "cx-admin")
    assert r.status_code == 200, r.text
    assert grant["grant_id"] in target.revoked()
    # And the city's admin may revoke any grant issued here.
    other = _mint(target, holder_org="wudu", camera="wd-cam")
    assert _revoke(target, other["grant_id"], "admin-1").status_code == 200
    assert target.alive()


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/api/v1/cameras", {b"Authorization": "Bearer vs1.é.签名".encode()}),
        ("/api/v1/cameras", {b"Authorization": b"Bearer \xff\xfegarbage"}),
        ("/api/v1/me", {b"Authorization": "Bearer 会话令牌".encode()}),
        ("/play/cx-cam.m3u8?session=vs1.%C3%A9.x&from=1&to=2", {}),
        ("/play/cx-cam.m3u8?session=%E4%BC%9A%E8%AF%9D%FF&from=1&to=2", {}),
        ("/play/cx-cam.m3u8?session=vs1.%ED%A0%80.x", {}),
    ],
)
def test_non_ascii_sessions_are_401_with_one_log_line(
    target: Target, path: str, headers: dict[bytes, bytes]
) -> None:
    before = target.snapshot()
    log_before = target.log_text()
    r = target.client.get(path, headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["reason"] == "unauthenticated"
    new_log = target.log_text()[len(log_before) :]
    assert "Traceback" not in new_log and "Exception" not in new_log, new_log
    assert len([ln for ln in new_log.splitlines() if ln.strip()]) <= 1, new_log
    assert_unchanged(target, before)


def _legacy_scrypt(password: str) -> str:
    """The pre-argon2id stored form (scrypt N=2^14, r=8, p=1)."""
    salt = secrets.token_bytes(16)
    key = hashlib.scrypt(
        password.encode(), salt=salt, n=1 << 14, r=8, p=1, maxmem=1 << 26, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt$14$8$1${b64(salt).decode()}${b64(key).decode()}"


def test_passwords_are_argon2id_and_old_scrypt_hashes_are_upgraded_at_login(
    target: Target,
) -> None:
    assert target.password_hash("admin-1").startswith("$argon2id$")
    with sqlite3.connect(target.data / "catalog.db", timeout=10) as db:
        db.execute(
            "UPDATE user_account SET password_hash = ? WHERE user_id = 'wd-op'",
            (_legacy_scrypt(PASSWORD),),
        )
    assert target.password_hash("wd-op").startswith("scrypt$")
    r = target.client.post("/api/v1/login", json={"user_id": "wd-op", "password": "wrong pw!"})
    assert r.status_code == 401 and target.password_hash("wd-op").startswith("scrypt$")
    r = target.client.post("/api/v1/login", json={"user_id": "wd-op", "password": PASSWORD})
    assert r.status_code == 200, r.text
    upgraded = target.password_hash("wd-op")
    assert upgraded.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    # The new hash works, and the session from before the upgrade still does.
    session = r.json()["token"]
    r = target.client.post("/api/v1/login", json={"user_id": "wd-op", "password": PASSWORD})
    assert r.status_code == 200 and target.password_hash("wd-op") == upgraded
    me = target.client.get("/api/v1/me", headers={"Authorization": f"Bearer {session}"})
    assert me.status_code == 200
    assert target.alive()


def test_login_response_is_no_store(target: Target) -> None:
    r = target.client.post("/api/v1/login", json={"user_id": "cx-admin", "password": PASSWORD})
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"


def test_query_string_sessions_only_for_media_gets(target: Target) -> None:
    token = target.login("admin-1")
    before = target.snapshot()
    body = {
        "operations": ["playback"],
        "cameras": ["cx-cam"],
        "from_us": T0,
        "to_us": T0 + HOUR_US,
        "purpose": "x",
        "case_id": "CX-1",
    }
    r = target.client.post("/api/v1/grants", params={"session": token}, json=body)
    assert r.status_code == 401 and "query string" in r.json()["message"], r.text
    r = target.client.post(
        "/api/v1/users",
        params={"session": token},
        json={"user_id": "evil-1", "role": "admin", "password": "a long password"},
    )
    assert r.status_code == 401, r.text
    assert target.client.get("/api/v1/cameras", params={"session": token}).status_code == 401
    assert_unchanged(target, before)
    # A player that cannot set headers still plays (the session is accepted on /play/).
    r = target.client.get("/play/cx-cam.m3u8", params={"session": token, "mode": "live"})
    assert r.status_code != 401, r.text


def test_metrics_need_their_token(target: Target) -> None:
    assert target.client.get("/metrics").status_code == 401
    wrong = {"Authorization": "Bearer " + "x" * 40}
    assert target.client.get("/metrics", headers=wrong).status_code == 401
    good = {"Authorization": f"Bearer {target.metrics_token}"}  # type: ignore[attr-defined]
    r = target.client.get("/metrics", headers=good)
    assert r.status_code == 200 and "vigil_http_requests_total" in r.text
