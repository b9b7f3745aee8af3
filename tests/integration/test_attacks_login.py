"""Login and audit flooding against a real controller process behind a trusted proxy (issue
10, failures 7 and 8). The proxy is the test itself: `http.trusted_proxies` holds 127.0.0.1,
so X-Forwarded-For names each simulated client.

7. Spraying one password over many user ids from one address is throttled; guessing one
   user's password from many addresses is throttled; neither locks the owner out of the
   client they logged in from before, even behind the attacker's own proxy address; a
   throttled burst is one audit row now and one aggregated row with its count.
8. 300 unauthenticated playlist requests do not write 300 audit rows: the first is written,
   the rest are counted into one aggregated row per source.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.test_attacks_support import PASSWORD, Target, assert_unchanged


@pytest.fixture
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    t = Target(tmp_path_factory.mktemp("attack-login"), http={"trusted_proxies": "127.0.0.1"})
    yield t
    t.close()


def _login(client: httpx.Client, user: str, password: str, source: str) -> httpx.Response:
    return client.post(
        "/api/v1/login",
        json={"user_id": user, "password": password},
        headers={"X-Forwarded-For": source},
    )


def _client(target: Target) -> httpx.Client:
    return httpx.Client(base_url=f"http://127.0.0.1:{target.http_port}", timeout=30)


def test_password_spray_from_one_address_is_throttled(target: Target) -> None:
    before = target.snapshot()
    attacker = _client(target)
    try:
        codes = [
            _login(attacker, f"user-{i}", "Spring2026!", "203.0.113.7").status_code
            for i in range(30)
        ]
        # 20 failures at once (each one KDF), then refused before any password work.
        assert codes == [401] * 20 + [429] * 10, codes
        r = _login(attacker, "admin-1", PASSWORD, "203.0.113.7")
        assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
        # Another address, another user: unaffected.
        assert _login(attacker, "wd-op", PASSWORD, "203.0.113.8").status_code == 200
    finally:
        attacker.close()
    throttled = [row for row in target.audit_rows("login") if row[2] == "rate_limited"]
    assert len(throttled) == 1, throttled  # the rest of the burst is being counted
    assert_unchanged(target, before)


def test_guessing_does_not_lock_the_owner_out_of_their_client(target: Target) -> None:
    owner, attacker = _client(target), _client(target)
    shared_proxy = "198.51.100.20"  # everyone behind one county NAT
    try:
        assert _login(owner, "officer-1", PASSWORD, shared_proxy).status_code == 200
        before = target.snapshot()
        # Guesses from the owner's own address, then spread over many addresses.
        codes = [
            _login(attacker, "officer-1", f"guess-{i}", shared_proxy).status_code for i in range(5)
        ]
        codes += [
            _login(attacker, "officer-1", f"guess-{i}", f"198.51.100.{100 + i}").status_code
            for i in range(20)
        ]
        assert codes.count(401) <= 10 and codes[-1] == 429, codes  # the user's budget holds
        # Even the right password is refused to the guessing client now ...
        assert _login(attacker, "officer-1", PASSWORD, shared_proxy).status_code == 429
        # ... but the owner, from the same proxy address, logs in from their client.
        r = _login(owner, "officer-1", PASSWORD, shared_proxy)
        assert r.status_code == 200, r.text
        assert_unchanged(target, before)
    finally:
        owner.close()
        attacker.close()


def test_throttled_logins_and_unauthenticated_floods_are_aggregated(target: Target) -> None:
    before = target.snapshot()
    audit_before = target.audit_count()
    attacker = _client(target)
    try:
        logins = [
            _login(attacker, "wd-op", f"guess-{i}", "192.0.2.50").status_code for i in range(70)
        ]
        assert logins.count(401) == 10 and logins.count(429) == 60, logins
        for _ in range(300):
            r = attacker.get(
                "/play/cx-cam.m3u8",
                params={"from": "1", "to": "2"},
                headers={"X-Forwarded-For": "192.0.2.60"},
            )
            assert r.status_code == 401
    finally:
        attacker.close()
    # 10 failed logins, one throttled login, one unauthenticated playlist: written now.
    assert target.audit_count() == audit_before + 12
    assert_unchanged(target, before)
    target.close()  # a clean stop writes the aggregated counts (as the minute timer does)
    rows = target.audit_rows("login")
    throttled = [json.loads(d) for _u, o, r, d in rows if r == "rate_limited"]
    assert len(throttled) == 2, throttled
    assert throttled[1]["aggregated"] and throttled[1]["count"] == 59
    assert throttled[1]["source"] == "192.0.2.50" and throttled[1]["samples"] == ["wd-op"]
    refused = [json.loads(d) for _u, o, r, d in target.audit_rows("playlist") if o == "refused"]
    assert len(refused) == 2, refused
    assert refused[0]["source"] == "192.0.2.60"
    assert refused[1]["aggregated"] and refused[1]["count"] == 299
    assert target.audit_verifies()
