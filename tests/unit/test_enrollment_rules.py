"""Enrollment's pure decisions (controller/enrollment/rules.py, edge_agent/enrollment.py)."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from controller.enrollment.listener import peer_host
from controller.enrollment.rules import (
    CertFacts,
    EnrollError,
    Grant,
    Refusal,
    Revocations,
    TokenFacts,
    check_csr,
    hash_token,
    judge_token,
    may_renew,
    renew_after_us,
    token_fingerprint,
)
from edge_agent.enrollment import action, backoff_s

NOW = 1_800_000_000_000_000
TOKEN = TokenFacts("dev1", expires_us=NOW + 10, used_us=0, used_key_fp="", cancelled_us=0)


def _csr(cn: str, key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None) -> bytes:
    key = key or ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def test_a_fresh_token_for_this_device_is_granted_once_then_only_to_the_same_key() -> None:
    assert judge_token(TOKEN, "dev1", "k1", NOW) is Grant.FIRST
    used = TokenFacts("dev1", NOW + 10, used_us=NOW, used_key_fp="k1", cancelled_us=0)
    assert judge_token(used, "dev1", "k1", NOW + 100) is Grant.AGAIN  # reboot mid-enrollment
    with pytest.raises(EnrollError, match="another key") as err:
        judge_token(used, "dev1", "k2", NOW)
    assert err.value.kind is Refusal.DENIED


@pytest.mark.parametrize(
    ("facts", "device", "message"),
    [
        (None, "dev1", "unknown"),
        (TOKEN, "dev2", "not for device 'dev2'"),
        (TokenFacts("dev1", NOW, 0, "", 0), "dev1", "expired"),
        (TokenFacts("dev1", NOW + 10, 0, "", NOW - 1), "dev1", "replaced"),
    ],
)
def test_bad_tokens_are_denied(facts: TokenFacts | None, device: str, message: str) -> None:
    with pytest.raises(EnrollError, match=message) as err:
        judge_token(facts, device, "k1", NOW)
    assert err.value.kind is Refusal.DENIED


def test_the_csr_must_name_exactly_the_device_and_carry_a_strong_key() -> None:
    facts = check_csr(_csr("dev1"), "dev1")
    assert len(facts.key_fp) == 64
    for bad, message in [
        (_csr("dev2"), "common name"),
        (_csr("dev1", ec.generate_private_key(ec.SECP192R1())), "weak key"),
        (_csr("dev1", rsa.generate_private_key(65537, 1024)), "RSA-1024"),
        (b"", "missing"),
        (b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", "PEM"),
        (b"x" * 20_000, "larger"),
    ]:
        with pytest.raises(EnrollError, match=message) as err:
            check_csr(bad, "dev1")
        assert err.value.kind is Refusal.BAD_REQUEST


def test_renewal_needs_a_live_certificate_with_the_same_key() -> None:
    live = CertFacts("a1", "k1", not_after_us=NOW + 1, revoked_us=0)
    assert may_renew([live], "k1", NOW)
    assert not may_renew([live], "k2", NOW)  # a new key needs a token
    assert not may_renew([CertFacts("a1", "k1", NOW + 1, revoked_us=NOW - 1)], "k1", NOW)
    assert not may_renew([CertFacts("a1", "k1", NOW, 0)], "k1", NOW)  # expired
    assert renew_after_us(0, 90) == 60


def test_revocations_by_serial_and_by_device_cutoff() -> None:
    r = Revocations(frozenset({"ab"}), {"dev2": NOW})
    assert r.refuses("ab", "dev1", NOW)
    assert not r.refuses("cd", "dev1", 0)
    assert r.refuses("cd", "dev2", NOW - 1)  # issued before the device was retired
    assert not r.refuses("cd", "dev2", NOW)
    assert not Revocations().refuses("ab", "dev1", 0)


def test_tokens_are_stored_hashed_and_labelled_by_a_short_fingerprint() -> None:
    assert hash_token("t") != "t" and len(hash_token("t")) == 64
    assert token_fingerprint("t") == hash_token("t")[:12]


def test_peer_host_is_the_bucket_key() -> None:
    assert peer_host("ipv4:10.0.0.5:51234") == "10.0.0.5"
    assert peer_host("ipv6:[::1]:5123") == "[::1]"


def test_the_agent_enrolls_renews_or_does_nothing() -> None:
    assert action(None, False, 0, NOW) == "enroll"
    assert action(b"c", False, NOW + 1, NOW) == "enroll"  # a new key (reflash)
    assert action(b"c", True, NOW + 1, NOW) == "ok"
    assert action(b"c", True, NOW, NOW) == "renew"


def test_backoff_doubles_to_a_cap_with_bounded_jitter() -> None:
    assert [backoff_s(n) for n in (1, 2, 3)] == [2.0, 4.0, 8.0]
    assert backoff_s(30) == 300.0
    assert backoff_s(1, jitter=0.99) < 2.0 * 1.2
