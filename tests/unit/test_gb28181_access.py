"""GB/T 28181 device access decisions: REGISTER digest checks, nonces, Catalog answers."""

from __future__ import annotations

import pytest

from controller.gb28181 import access, manscdp
from controller.gb28181.access import Known, Nonces, judge_register

DEV = "62120200001110000001"
REALM = "6212000000"
URI = f"sip:62120000002000000002@{REALM}"


def known(password: str = "pw", revoked: bool = False) -> Known:
    return Known(DEV, access.ha1_of(DEV, REALM, password), REALM, revoked)


def authorization(nonce: str, password: str = "pw", user: str = DEV, qop: bool = True) -> str:
    f = {"username": user, "realm": REALM, "nonce": nonce, "uri": URI}
    if qop:
        f.update(qop="auth", nc="00000001", cnonce="abc")
    f["response"] = access.expected_response(access.ha1_of(user, REALM, password), "REGISTER", f)
    return "Digest " + ", ".join(f'{k}="{v}"' for k, v in f.items())


def nonce_of(challenge: str) -> str:
    return challenge.split('nonce="')[1].split('"')[0]


@pytest.mark.parametrize("qop", [True, False])
def test_challenge_then_the_right_digest_registers(qop: bool) -> None:
    nonces = Nonces(b"k" * 32)
    first = judge_register(DEV, "", "3600", known(), REALM, nonces, 1000.0)
    assert first.status == 401 and 'qop="auth"' in first.challenge
    auth = authorization(nonce_of(first.challenge), qop=qop)
    ok = judge_register(DEV, auth, "3600", known(), REALM, nonces, 1001.0)
    assert (ok.status, ok.expires_s) == (200, 3600)


def test_refusals_each_say_why() -> None:
    nonces = Nonces(b"k" * 32)
    nonce = nonces.issue(1000.0)
    cases = [
        ("123", authorization(nonce), known(), 400, "not a 20-digit"),
        (DEV, "", None, 403, "not known"),
        (DEV, "", known(revoked=True), 403, "revoked"),
        (DEV, authorization(nonce, password="guess"), known(), 403, "does not verify"),
        (DEV, authorization("12ab" + "0" * 16), known(), 403, "not issued by Vigil"),
        (DEV, "Basic Zm9vOmJhcg==", known(), 400, "not Digest"),
        (DEV, 'Digest username="x"', known(), 400, "no nonce"),
    ]
    for user, auth, row, status, why in cases:
        v = judge_register(user, auth, "3600", row, REALM, nonces, 1001.0)
        assert (v.status, why in v.reason) == (status, True), (user, auth, v)
    other = authorization(nonce, user="62120200001110000002")
    assert judge_register(DEV, other, "", known(), REALM, nonces, 1001.0).status == 403


def test_an_old_nonce_with_the_right_digest_is_challenged_again_as_stale() -> None:
    nonces = Nonces(b"k" * 32)
    auth = authorization(nonces.issue(1000.0))
    v = judge_register(DEV, auth, "3600", known(), REALM, nonces, 1000.0 + 301)
    assert v.status == 401 and "stale=true" in v.challenge
    forged = Nonces(b"other" * 8).issue(1000.0)  # a nonce from another key: not ours
    assert nonces.fresh(forged, 1000.0) is None


def test_expiry_is_clamped_and_zero_unregisters() -> None:
    assert access.granted_expiry("") == 3600
    assert access.granted_expiry("5") == access.MIN_EXPIRES_S
    assert access.granted_expiry("99999999") == access.MAX_EXPIRES_S
    assert access.granted_expiry("0") == 0
    with pytest.raises(ValueError, match="not a number"):
        access.granted_expiry("-1")


PAGE = """<?xml version="1.0" encoding="GB2312"?>
<Response><CmdType>Catalog</CmdType><SN>7</SN><DeviceID>{dev}</DeviceID><SumNum>{n}</SumNum>
<DeviceList Num="2"><Item><DeviceID>{ch}</DeviceID><Name>{name}</Name><Parental>0</Parental>
<Status>OFF</Status></Item><Item><DeviceID>62120000002160000001</DeviceID><Name>组</Name>
<Parental>1</Parental></Item></DeviceList></Response>"""


def test_catalog_answer_pages_are_read_and_bad_ones_refused() -> None:
    body = PAGE.format(dev=DEV, n=3, ch="62120200001310000001", name="东关村 1").encode("gb18030")
    page = manscdp.parse_catalog_answer(body)
    assert (page.sn, page.device_id, page.total) == ("7", DEV, 3)
    assert [(c.code, c.name, c.parental, c.status) for c in page.items] == [
        ("62120200001310000001", "东关村 1", False, "off"),
        ("62120000002160000001", "组", True, "unknown"),  # no Status: not a guess
    ]
    for bad, status in [
        (PAGE.format(dev=DEV, n=3, ch="6212", name="x"), 400),
        (PAGE.format(dev=DEV, n=10**6, ch="62120200001310000001", name="x"), 400),
        ("<Response><CmdType>Catalog</CmdType>", 400),
        ("<Notify><CmdType>Keepalive</CmdType></Notify>", 400),
        ('<!DOCTYPE x [<!ENTITY a "b">]><Response><CmdType>Catalog</CmdType></Response>', 400),
        ("<Response>" + "x" * 40_000 + "</Response>", 413),
    ]:
        with pytest.raises(manscdp.XmlError) as err:
            manscdp.parse_catalog_answer(bad.encode())
        assert err.value.status == status, bad[:60]
