"""The control centre over HTTPS (issue 10, "also"): the controller's own certificate from the
city CA, HSTS on every response, known-client cookies marked Secure, and plain HTTP refused on
the TLS port. (A non-loopback listener without TLS or a trusted proxy is refused by the
configuration: tests/unit/test_security_rules.py.)"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.integration.test_attacks_support import PASSWORD, Target, assert_unchanged


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    t = Target(tmp_path_factory.mktemp("attack-tls"), http={"tls": True})
    yield t
    t.close()


def test_https_with_hsts_and_secure_cookies(target: Target) -> None:
    assert target.base_url.startswith("https://")
    r = target.client.post("/api/v1/login", json={"user_id": "admin-1", "password": PASSWORD})
    assert r.status_code == 200, r.text
    assert r.headers["strict-transport-security"] == "max-age=31536000"
    assert r.headers["cache-control"] == "no-store"
    cookie = r.headers["set-cookie"]
    assert "vigil_client=" in cookie and "Secure" in cookie and "HttpOnly" in cookie
    me = target.client.get("/api/v1/me", headers={"Authorization": f"Bearer {r.json()['token']}"})
    assert me.status_code == 200 and me.headers["strict-transport-security"]


def test_plain_http_on_the_tls_port_gets_nothing(target: Target) -> None:
    before = target.snapshot()
    try:
        r = httpx.post(
            f"http://127.0.0.1:{target.http_port}/api/v1/login",
            json={"user_id": "admin-1", "password": PASSWORD},
            timeout=5,
        )
    except httpx.HTTPError:
        pass  # the TLS listener drops a plain-HTTP client
    else:
        assert r.status_code >= 400 and "token" not in r.text
    assert_unchanged(target, before)
