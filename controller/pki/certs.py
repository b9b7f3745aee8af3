"""Certificates of the city PKI, built in memory: a CA, the controller's server certificate,
device client certificates (CN = device id).

Only mutual TLS lets a device speak to the controller, and the certificate's common name is
the device's identity for everything it uploads. Keys are ECDSA P-256: gRPC's BoringSSL
accepts them everywhere (Ed25519 TLS certificates are not reliably supported across gRPC
builds). Times are passed in (`now`, `not_before`, `not_after`) so tests can mint expired
certificates and nothing reads a global clock.

Errors: `PkiError` for anything unusable (bad PEM, bad device id, CSR with a wrong CN or
a bad signature).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vigil_common.names import CONTROLLER_CN

DEVICE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
SERVER_CN = CONTROLLER_CN  # every replica's certificate (vigil_common/names.py)
# A little slack so a freshly issued certificate is valid on a peer whose clock lags.
BACKDATE = timedelta(minutes=5)


class PkiError(Exception):
    """A certificate, key or request cannot be used; the message says why."""


@dataclass(frozen=True, slots=True)
class KeyPair:
    """A certificate and its private key, PEM-encoded (what goes to disk or into a bundle)."""

    cert_pem: bytes
    key_pem: bytes


def validate_device_id(device_id: str) -> str:
    """A device id is a certificate CN, a path component and an MQTT topic level: keep it plain."""
    if not DEVICE_ID_RE.fullmatch(device_id):
        raise PkiError(
            f"invalid device id {device_id!r}: 1-64 of A-Z a-z 0-9 _ . - (not starting with . _ -)"
        )
    return device_id


def _new_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _name(cn: str, org: str = "Vigil") -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def load_cert(pem: bytes) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate: {exc}") from exc


def load_key(pem: bytes) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise PkiError(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError("the private key is not an ECDSA key")
    return key


def create_ca(now: datetime, days: int = 3650, name: str = "Vigil City CA") -> KeyPair:
    """A self-signed CA that signs the server certificate and every device certificate."""
    key = _new_key()
    subject = _name(name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(_cert_pem(cert), _key_pem(key))


def _leaf_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _sign_leaf(
    ca: KeyPair,
    subject: x509.Name,
    public_key: ec.EllipticCurvePublicKey,
    not_before: datetime,
    not_after: datetime,
    usage: Sequence[x509.ObjectIdentifier],
    sans: Sequence[x509.GeneralName],
) -> bytes:
    if not_after <= not_before:
        raise PkiError("not_after must be later than not_before")
    ca_cert = load_cert(ca.cert_pem)
    ca_key = load_key(ca.key_pem)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_leaf_usage(), critical=True)
        .add_extension(x509.ExtendedKeyUsage(list(usage)), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(list(sans)), critical=False)
    return _cert_pem(builder.sign(ca_key, hashes.SHA256()))


def _san(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue_server_cert(
    ca: KeyPair, hostnames: Sequence[str], now: datetime, days: int = 825
) -> KeyPair:
    """The controller's TLS certificate; agents check it against `hostnames` (SANs). It is
    also the replica's client certificate toward other replicas (the live relay), so it
    carries client authentication too; devices' certificates never carry server
    authentication, which is how a replica tells a replica from an agent."""
    names = list(dict.fromkeys(["127.0.0.1", "localhost", *hostnames]))
    key = _new_key()
    cert = _sign_leaf(
        ca,
        _name(SERVER_CN),
        key.public_key(),
        now - BACKDATE,
        now + timedelta(days=days),
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH],
        [_san(h) for h in names],
    )
    return KeyPair(cert, _key_pem(key))


def issue_device_cert(
    ca: KeyPair,
    device_id: str,
    now: datetime,
    days: int = 365,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> KeyPair:
    """A client certificate for one device (new key pair). `not_*` override the window."""
    validate_device_id(device_id)
    key = _new_key()
    cert = _sign_leaf(
        ca,
        _name(device_id),
        key.public_key(),
        not_before if not_before is not None else now - BACKDATE,
        not_after if not_after is not None else now + timedelta(days=days),
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        [],
    )
    return KeyPair(cert, _key_pem(key))


def sign_csr(ca: KeyPair, csr_pem: bytes, device_id: str, now: datetime, days: int = 365) -> bytes:
    """Sign a device's CSR (enrollment): the key never leaves the device.

    The CSR's CN must equal `device_id` (the one the enrollment token was issued for), so a
    device cannot obtain a certificate naming another device.
    """
    validate_device_id(device_id)
    try:
        csr = x509.load_pem_x509_csr(csr_pem)
    except ValueError as exc:
        raise PkiError(f"not a PEM certificate signing request: {exc}") from exc
    if not csr.is_signature_valid:
        raise PkiError("the CSR's signature does not verify")
    cns = csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(cns) != 1 or cns[0].value != device_id:
        raise PkiError(f"the CSR's common name must be exactly {device_id!r}")
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise PkiError("the CSR's key is not an ECDSA key")
    return _sign_leaf(
        ca,
        _name(device_id),
        public_key,
        now - BACKDATE,
        now + timedelta(days=days),
        [ExtendedKeyUsageOID.CLIENT_AUTH],
        [],
    )


def make_csr(device_id: str) -> tuple[bytes, bytes]:
    """(csr_pem, key_pem) for a new device key: what an enrolling agent sends (and tests)."""
    validate_device_id(device_id)
    key = _new_key()
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(_name(device_id))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def common_name(cert_pem: bytes) -> str:
    attrs = load_cert(cert_pem).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if len(attrs) != 1:
        raise PkiError("certificate has no single common name")
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode()


def has_client_auth(cert_pem: bytes) -> bool:
    """Whether the certificate may authenticate a TLS client (a server certificate issued
    before the live relay did not: `vigil-controller init` re-issues it)."""
    try:
        usage = load_cert(cert_pem).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return True  # no restriction
    return ExtendedKeyUsageOID.CLIENT_AUTH in list(usage.value)


def validity(cert_pem: bytes) -> tuple[datetime, datetime]:
    cert = load_cert(cert_pem)
    return cert.not_valid_before_utc, cert.not_valid_after_utc


def utc_from_us(now_us: int) -> datetime:
    return datetime.fromtimestamp(now_us / 1_000_000, tz=UTC)
