"""The city PKI in memory: CA, server and device certificates, CSR signing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from controller.pki import (
    KeyPair,
    PkiError,
    common_name,
    create_ca,
    issue_device_cert,
    issue_server_cert,
    make_csr,
    sign_csr,
    validate_device_id,
)
from controller.pki.certs import load_cert, validity

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def ca() -> KeyPair:
    return create_ca(NOW)


def _verify(ca_pem: bytes, cert_pem: bytes) -> None:
    cert = load_cert(cert_pem)
    cert.verify_directly_issued_by(load_cert(ca_pem))


def test_ca_is_a_ca(ca: KeyPair) -> None:
    cert = load_cert(ca.cert_pem)
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert b"PRIVATE KEY" in ca.key_pem


def test_server_cert_names_loopback_and_extra_hosts(ca: KeyPair) -> None:
    pair = issue_server_cert(ca, ["ctl.city.gov", "10.1.2.3"], NOW)
    _verify(ca.cert_pem, pair.cert_pem)
    san = (
        load_cert(pair.cert_pem)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    ips = {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}
    assert ips == {"127.0.0.1", "10.1.2.3"}
    assert set(san.get_values_for_type(x509.DNSName)) == {"localhost", "ctl.city.gov"}


def test_device_cert_has_cn_and_client_usage(ca: KeyPair) -> None:
    pair = issue_device_cert(ca, "nvr-wudu-001", NOW, days=10)
    _verify(ca.cert_pem, pair.cert_pem)
    assert common_name(pair.cert_pem) == "nvr-wudu-001"
    eku = load_cert(pair.cert_pem).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(eku.value) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    start, end = validity(pair.cert_pem)
    assert end - start == timedelta(days=10, minutes=5)


def test_validity_window_can_be_set_for_expired_certs(ca: KeyPair) -> None:
    pair = issue_device_cert(
        ca, "dev1", NOW, not_before=NOW - timedelta(days=9), not_after=NOW - timedelta(days=1)
    )
    assert validity(pair.cert_pem)[1] < NOW
    with pytest.raises(PkiError, match="not_after"):
        issue_device_cert(ca, "dev1", NOW, not_before=NOW, not_after=NOW)


@pytest.mark.parametrize("bad", ["", "../x", "a b", "-lead", "x" * 65, "dev/1", "dév"])
def test_bad_device_ids_are_refused(bad: str) -> None:
    with pytest.raises(PkiError, match="invalid device id"):
        validate_device_id(bad)


def test_csr_is_signed_for_its_own_device_only(ca: KeyPair) -> None:
    csr, _key = make_csr("dev1")
    cert = sign_csr(ca, csr, "dev1", NOW)
    _verify(ca.cert_pem, cert)
    assert common_name(cert) == "dev1"
    with pytest.raises(PkiError, match="common name"):
        sign_csr(ca, csr, "dev2", NOW)
    with pytest.raises(PkiError, match="signing request"):
        sign_csr(ca, b"garbage", "dev1", NOW)


def test_garbage_pem_is_a_pki_error() -> None:
    with pytest.raises(PkiError):
        load_cert(b"-----BEGIN CERTIFICATE-----\nnope\n-----END CERTIFICATE-----\n")
