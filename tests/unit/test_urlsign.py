"""Short-lived signed segment URLs: bound to grant, segment and expiry; tamper-evident."""

from __future__ import annotations

import pytest

from controller.grants.errors import GrantRefused, Reason
from controller.playback.urlsign import URL_TTL_US, UrlSigner

KEY = b"k" * 32
NOW = 1_767_225_600_000_000
GID = "0123456789abcdef0123456789abcdef"
OTHER = "f" * 32


@pytest.fixture
def signer() -> UrlSigner:
    return UrlSigner.single(KEY)


def signed(signer: UrlSigner, seg: str = "seg-1", now: int = NOW) -> str:
    return signer.query(GID, seg, UrlSigner.expiry_s(now, now + 3_600_000_000))


def refused(reason: Reason, fn, *args, **kwargs) -> str:
    with pytest.raises(GrantRefused) as info:
        fn(*args, **kwargs)
    assert info.value.reason is reason, str(info.value)
    return info.value.message


def test_a_fresh_url_checks_and_names_its_grant(signer: UrlSigner) -> None:
    assert signer.check_query("seg-1", signed(signer), NOW + 1) == GID


def test_urls_expire_after_five_minutes_and_never_after_the_grant(signer: UrlSigner) -> None:
    query = signed(signer)
    signer.check_query("seg-1", query, NOW + URL_TTL_US - 1)
    refused(Reason.URL_EXPIRED, signer.check_query, "seg-1", query, NOW + URL_TTL_US)
    assert UrlSigner.expiry_s(NOW, NOW + 60_000_000) == (NOW + 60_000_000) // 1_000_000


def test_the_url_is_bound_to_its_segment(signer: UrlSigner) -> None:
    refused(Reason.URL_TAMPERED, signer.check_query, "seg-2", signed(signer), NOW)


@pytest.mark.parametrize(
    ("field", "value"),
    [("g", OTHER), ("e", str(NOW // 1_000_000 + 3600)), ("s", "A" * 22), ("k", "2")],
)
def test_changing_any_parameter_is_tampering(signer: UrlSigner, field: str, value: str) -> None:
    parts = dict(p.split("=", 1) for p in signed(signer).split("&"))
    parts[field] = value
    query = "&".join(f"{k}={v}" for k, v in parts.items())
    refused(Reason.URL_TAMPERED, signer.check_query, "seg-1", query, NOW)


@pytest.mark.parametrize(
    "query",
    [
        "",
        "garbage",
        "g=1&e=2&k=1",
        "g=1&g=2&e=3&s=4",
        "x=1&e=2&k=1&s=3",
        f"g={GID}&e=12a&k=1&s=" + "A" * 22,
        f"g={GID.upper()}&e=1&k=1&s=" + "A" * 22,
        f"g={GID}&e=9999999999999&k=1&s=" + "A" * 22,
    ],
)
def test_malformed_queries_are_refused(signer: UrlSigner, query: str) -> None:
    refused(Reason.URL_TAMPERED, signer.check_query, "seg-1", query, NOW)


def test_oversized_query_and_segment_id(signer: UrlSigner) -> None:
    refused(Reason.OVERSIZE, signer.check_query, "seg-1", "g=" + "a" * 300, NOW)
    refused(Reason.URL_TAMPERED, signer.check_query, "s" * 200, signed(signer), NOW)


def test_a_revoked_grant_stops_its_urls(signer: UrlSigner) -> None:
    msg = refused(Reason.REVOKED, signer.check_query, "seg-1", signed(signer), NOW, {GID})
    assert GID in msg


def test_key_rotation_old_urls_still_verify_new_ones_use_the_new_key() -> None:
    old = UrlSigner.single(KEY)
    query = signed(old)
    rotated = UrlSigner({"1": KEY, "2": b"n" * 32}, "2")
    assert rotated.check_query("seg-1", query, NOW) == GID
    assert "&k=2&" in signed(rotated)
    refused(Reason.URL_TAMPERED, old.check_query, "seg-1", signed(rotated), NOW)


def test_bad_keys_are_rejected_up_front() -> None:
    with pytest.raises(ValueError):
        UrlSigner.single(b"short")
    with pytest.raises(ValueError):
        UrlSigner({"UPPER": KEY}, "UPPER")
    with pytest.raises(ValueError):
        UrlSigner({"1": KEY}, "2")


def test_url_maker_quotes_unsafe_ids_and_signs_the_real_id(signer: UrlSigner) -> None:
    url_for = signer.url_maker("/play/seg/", GID, NOW // 1_000_000 + 300)
    plain = url_for("seg-1")
    assert plain.startswith("/play/seg/seg-1.ts?g=" + GID)
    odd = url_for("cam 1/段")
    path, query = odd.split("?", 1)
    assert path == "/play/seg/cam%201%2F%E6%AE%B5.ts"
    assert signer.check_query("cam 1/段", query, NOW) == GID
