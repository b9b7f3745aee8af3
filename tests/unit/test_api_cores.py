"""The HTTP layer's pure cores: Range parsing, reason -> status, the metrics text format, time
parameters, session tokens, password hashes and the refusal throttle. No I/O."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from controller.api.errors import status_for
from controller.api.limits import RefusalLimiter
from controller.api.metrics import Metrics, Sample, render
from controller.api.params import parse_time_us
from controller.api.ranges import ByteRange, RangeNotSatisfiable, parse_range
from controller.fleet.ratelimit import RatePolicy
from controller.grants.errors import Reason
from controller.users.passwords import (
    DUMMY_HASH,
    PasswordError,
    check_password_text,
    hash_password,
    needs_rehash,
    scrypt_hash,
    verify_password,
)
from controller.users.sessions import (
    SessionError,
    check_session,
    derive_session_key,
    issue_session,
)

KEY = derive_session_key(b"k" * 32)
NOW = 1_767_225_600_000_000


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, ByteRange(0, 9)),
        ("bytes=90-", 100, ByteRange(90, 99)),
        ("bytes=-10", 100, ByteRange(90, 99)),
        ("bytes=-500", 100, ByteRange(0, 99)),
        ("bytes=95-200", 100, ByteRange(95, 99)),
        (" BYTES = 1-2 ", 100, ByteRange(1, 2)),
        ("bytes=0-1,4-5", 100, None),  # several ranges: the whole object
        ("bytes=5-1", 100, None),  # invalid: ignored
        ("bytes=a-b", 100, None),
        ("items=0-1", 100, None),
        ("bytes=0x1-2", 100, None),
        ("bytes=" + "9" * 30 + "-", 100, None),
        ("bytes=1-2" + " " * 300, 100, None),
    ],
)
def test_parse_range(header: str | None, size: int, expected: ByteRange | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=-5", 0), ("bytes=0-", 0)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


@given(st.integers(0, 10_000), st.integers(0, 10_000), st.integers(1, 10_000))
def test_a_served_range_always_lies_inside_the_object(a: int, b: int, size: int) -> None:
    try:
        got = parse_range(f"bytes={a}-{b}", size)
    except RangeNotSatisfiable:
        assert a >= size
        return
    if got is not None:
        assert 0 <= got.start <= got.end < size and got.length == got.end - got.start + 1
        assert got.content_range(size) == f"bytes {got.start}-{got.end}/{size}"


def test_every_refusal_reason_has_a_deliberate_status() -> None:
    expected = {
        400: {Reason.MALFORMED, Reason.BAD_REQUEST, Reason.CASE_REQUIRED},
        401: {Reason.BAD_SIGNATURE, Reason.UNKNOWN_KEY, Reason.BROKEN_CHAIN, Reason.URL_TAMPERED},
        403: {
            Reason.NOT_DELEGABLE,
            Reason.WIDENED,
            Reason.NOT_YET_VALID,
            Reason.REVOKED,
            Reason.CAMERA_OUT_OF_SCOPE,
            Reason.OUTSIDE_WINDOW,
            Reason.OPERATION_NOT_GRANTED,
            Reason.NOT_ENTITLED,
            Reason.WRONG_HOLDER,
            Reason.ROLE_NOT_ALLOWED,
        },
        410: {Reason.EXPIRED, Reason.URL_EXPIRED, Reason.USES_EXHAUSTED},
        404: {Reason.UNKNOWN_GRANT},
        413: {Reason.OVERSIZE},
        503: {Reason.REVOCATION_STALE},
        507: {Reason.LIST_FULL},
    }
    mapped = {r for group in expected.values() for r in group}
    assert mapped == set(Reason)  # a new reason must be given a status on purpose
    for status, reasons in expected.items():
        for reason in reasons:
            assert status_for(reason.value) == status, reason
    assert status_for("rate_limited") == 429 and status_for("range_not_satisfiable") == 416
    assert status_for("unauthenticated") == 401 and status_for("no_footage") == 404
    assert status_for("something new") == 400


def test_metrics_text_format() -> None:
    text = render(
        [
            Sample("vigil_segment_bytes_total", (), 1234.0),
            Sample("vigil_http_refusals_total", (("reason", 'a"b\\c\nd'),), 2.0),
            Sample("vigil_http_requests_total", (("family", "api"), ("status", "200")), 3.5),
        ]
    )
    lines = text.splitlines()
    assert "# TYPE vigil_segment_bytes_total counter" in lines
    assert "vigil_segment_bytes_total 1234" in lines
    assert 'vigil_http_refusals_total{reason="a\\"b\\\\c\\nd"} 2' in lines
    assert 'vigil_http_requests_total{family="api",status="200"} 3.5' in lines
    assert text.endswith("\n")
    metrics = Metrics()
    metrics.inc("vigil_logins_total", outcome="ok")
    metrics.inc("vigil_logins_total", 2, outcome="ok")
    assert metrics.value("vigil_logins_total", outcome="ok") == 3
    with pytest.raises(KeyError):
        metrics.inc("no_such_metric")


def test_time_parameters() -> None:
    assert parse_time_us("2026-01-01T00:00:00Z", "from") == NOW
    assert parse_time_us("2026-01-01T08:00:00+08:00", "from") == NOW
    assert parse_time_us("2026-01-01T08:00:00 08:00", "from") == NOW  # '+' decoded as space
    assert parse_time_us("2026-01-01 00:00:00", "from") == NOW
    assert parse_time_us(str(NOW), "from") == NOW
    for bad in ("", "yesterday", "-5", "9" * 30, "2026-13-01T00:00:00Z"):
        with pytest.raises(ValueError, match="from"):
            parse_time_us(bad, "from")


def test_sessions_verify_expire_and_resist_tampering() -> None:
    token, claims = issue_session(KEY, "officer-1", "chengxian", "operator", 3, NOW, 3600 * 10**6)
    assert check_session(KEY, token, NOW + 1) == claims
    assert claims.version == 3 and claims.expires_us == NOW + 3600 * 10**6

    def reason(tok: str, now: int = NOW, key: bytes = KEY) -> str:
        with pytest.raises(SessionError) as info:
            check_session(key, tok, now)
        return info.value.reason

    assert reason(token, NOW + 3600 * 10**6) == "expired"
    assert reason(token, key=derive_session_key(b"x" * 32)) == "bad_signature"
    head, body, sig = token.split(".")[0], token.split(".")[1], token.split(".")[2]
    assert reason(f"{head}.{body[:-2]}AA.{sig}") == "bad_signature"
    assert reason("garbage") == "malformed"
    assert reason("vs1." + "A" * 2000) == "oversize"
    future, _ = issue_session(KEY, "u", "o", "viewer", 1, NOW + 10 * 60 * 10**6)
    assert reason(future) == "not_yet_valid"
    with pytest.raises(ValueError):
        derive_session_key(b"short")


def test_passwords() -> None:
    stored = scrypt_hash("correct horse", log2_n=10)  # a legacy hash: still verifies
    assert stored.startswith("scrypt$10$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horsf", stored)
    assert not verify_password("x" * 5000, stored)
    new = hash_password("abcdefgh")
    assert new.startswith("$argon2id$") and verify_password("abcdefgh", new)
    assert not verify_password("abcdefgi", new)
    assert needs_rehash(stored) and not needs_rehash(new)
    assert needs_rehash(new.replace("t=3", "t=1"))  # weaker than today's parameters
    assert not verify_password("whatever1", DUMMY_HASH)
    assert hash_password("abcdefgh") != new  # salted
    for bad in ("short", "é" * 600):
        with pytest.raises(PasswordError):
            check_password_text(bad)
    for broken in ("md5$abc", "scrypt$99$8$1$AA==$AA==", "scrypt$10$8$1$!!$AA==", "$argon2id$x"):
        with pytest.raises(PasswordError):
            verify_password("whatever1", broken)


def test_refusal_limiter_charges_only_refusals_and_refills() -> None:
    limiter = RefusalLimiter(RatePolicy(rate_per_s=1.0, burst=3.0), max_keys=4)
    assert not limiter.over("a", 0.0)
    assert [limiter.charge("a", 0.0) for _ in range(3)] == [False, False, True]
    assert limiter.over("a", 0.0) and not limiter.over("b", 0.0)
    assert not limiter.charge("a", 0.5)  # still empty: not "just exhausted" again
    assert not limiter.over("a", 2.0)  # refilled
    for key in "bcdefg":  # bounded: full buckets are forgotten
        limiter.charge(key, 10.0)
    assert limiter.over("a", 10.0) is False
