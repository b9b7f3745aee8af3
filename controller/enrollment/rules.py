"""Enrollment decisions, pure: is this token good for this device and this key, is this CSR
acceptable, is a certificate revoked, when to renew.

No I/O and no clock: the store reads rows and passes them in with `now_us`, so every rule is
unit-tested (tests/unit/test_enrollment_rules.py). `EnrollError.kind` is what the gRPC layer
turns into a status code; the message is safe to show the device (it names no other device
and no token).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

# Curves a device key may use; gRPC's BoringSSL accepts these (and the CA signs only ECDSA).
STRONG_CURVES = frozenset({"secp256r1", "secp384r1", "secp521r1"})
MAX_CSR_BYTES = 16 * 1024
TOKEN_MIN_CHARS = 20


class Refusal(enum.Enum):
    BAD_REQUEST = "bad request"  # malformed CSR, CN mismatch, weak key: INVALID_ARGUMENT
    DENIED = "denied"  # token unknown/used/expired/another device's: PERMISSION_DENIED


class EnrollError(Exception):
    """The enrollment is refused; `kind` says which status, the message says why."""

    def __init__(self, kind: Refusal, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class TokenFacts:
    """What the store knows of a token row (None: no such token)."""

    device_id: str
    expires_us: int
    used_us: int
    used_key_fp: str
    cancelled_us: int


class Grant(enum.Enum):
    FIRST = "first"  # redeem the token now and sign
    AGAIN = "again"  # the same key already redeemed it (a reboot mid-enrollment): sign again


def hash_token(token: str) -> str:
    """Tokens are stored as SHA-256 only: a copy of the database enrolls nothing."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_fingerprint(token: str) -> str:
    """A short, non-secret fingerprint for labels and logs (never the token itself)."""
    return hash_token(token)[:12]


def key_fingerprint(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()


def judge_token(facts: TokenFacts | None, device_id: str, key_fp: str, now_us: int) -> Grant:
    """FIRST, AGAIN, or EnrollError(DENIED) saying what is wrong with the token."""
    if facts is None:
        raise EnrollError(Refusal.DENIED, "unknown enrollment token")
    if facts.device_id != device_id:
        raise EnrollError(Refusal.DENIED, f"this enrollment token is not for device {device_id!r}")
    if facts.used_us:
        if facts.used_key_fp == key_fp:
            return Grant.AGAIN
        raise EnrollError(
            Refusal.DENIED,
            "enrollment token already used by another key: a reflashed device needs a new token",
        )
    if facts.cancelled_us:
        raise EnrollError(Refusal.DENIED, "enrollment token was replaced by a newer one")
    if now_us >= facts.expires_us:
        raise EnrollError(Refusal.DENIED, "enrollment token has expired: ask for a new one")
    return Grant.FIRST


@dataclass(frozen=True, slots=True)
class CsrFacts:
    csr_pem: bytes
    key_fp: str


def check_csr(csr_pem: bytes, device_id: str) -> CsrFacts:
    """The CSR parses, its signature verifies, its only CN is the device id, its key is strong."""
    if not csr_pem or len(csr_pem) > MAX_CSR_BYTES:
        raise EnrollError(Refusal.BAD_REQUEST, f"CSR missing or larger than {MAX_CSR_BYTES} bytes")
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise EnrollError(
            Refusal.BAD_REQUEST, f"not a PEM certificate signing request: {exc}"
        ) from None
    if not csr.is_signature_valid:
        raise EnrollError(Refusal.BAD_REQUEST, "the CSR's signature does not verify")
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1 or cns[0].value != device_id:
        raise EnrollError(
            Refusal.BAD_REQUEST, f"the CSR's common name must be exactly {device_id!r}"
        )
    key = csr.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey):
        if key.curve.name not in STRONG_CURVES:
            raise EnrollError(
                Refusal.BAD_REQUEST,
                f"weak key: curve {key.curve.name} (use P-256, P-384 or P-521)",
            )
        return CsrFacts(csr_pem, key_fingerprint(key))
    if isinstance(key, rsa.RSAPublicKey):
        raise EnrollError(
            Refusal.BAD_REQUEST, f"RSA-{key.key_size} keys are not accepted: use ECDSA P-256"
        )
    raise EnrollError(Refusal.BAD_REQUEST, "unsupported key type: use ECDSA P-256")


@dataclass(frozen=True, slots=True)
class CertFacts:
    serial: str
    key_fp: str
    not_after_us: int
    revoked_us: int


def may_renew(certs: list[CertFacts], key_fp: str, now_us: int) -> bool:
    """Renewal needs no token: the CSR's key is the key of a live (unrevoked, unexpired)
    certificate of this device. A new key always needs a new token."""
    return any(c.key_fp == key_fp and not c.revoked_us and now_us < c.not_after_us for c in certs)


def renew_after_us(not_before_us: int, not_after_us: int) -> int:
    """Renew once two thirds of the validity have passed: a device offline for weeks still
    has a third of a year to come back and renew."""
    return not_before_us + (not_after_us - not_before_us) * 2 // 3


@dataclass(frozen=True, slots=True)
class Revocations:
    """What every replica's guard refuses: certificate serials, and per device a cutoff
    (certificates that began before it, e.g. ones issued by hand with `issue-cert`)."""

    serials: frozenset[str] = frozenset()
    device_cutoff_us: dict[str, int] | None = None

    def refuses(self, serial: str, device_id: str, not_before_us: int) -> bool:
        if serial in self.serials:
            return True
        cutoff = (self.device_cutoff_us or {}).get(device_id)
        return cutoff is not None and not_before_us < cutoff


def serial_hex(serial: int) -> str:
    return format(serial, "x")
