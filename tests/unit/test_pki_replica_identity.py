"""A replica's certificate is also its client certificate toward other replicas (the live
relay), and only a controller's certificate passes `controller_from_auth`: an agent's does
not, whatever its device id."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from controller.grpcserver.identity import controller_from_auth, device_from_auth
from controller.pki import create_ca, init_pki, issue_device_cert, issue_server_cert, pki_paths
from controller.pki.certs import has_client_auth, load_cert, load_key
from controller.pki.store import write_atomic

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def auth(pem: bytes) -> dict[str, object]:
    return {"x509_pem_cert": [pem]}


def old_server_cert(ca_cert: bytes, ca_key: bytes, key_pem: bytes) -> bytes:
    """A server certificate as issued before the relay: server authentication only."""
    key = load_key(key_pem)
    issuer = load_cert(ca_cert).subject
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vigil-controller")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(datetime(2027, 1, 1, tzinfo=UTC))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(load_key(ca_key), hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM)


def test_the_server_certificate_authenticates_clients_too() -> None:
    ca = create_ca(NOW)
    server = issue_server_cert(ca, [], NOW)
    eku = load_cert(server.cert_pem).extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert set(eku.value) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    assert has_client_auth(server.cert_pem)
    assert has_client_auth(issue_device_cert(ca, "d", NOW).cert_pem)  # agents: client only


def test_init_reissues_a_server_certificate_without_client_authentication(
    tmp_path: Path,
) -> None:
    init_pki(tmp_path, [], NOW)
    paths = pki_paths(tmp_path)
    old = old_server_cert(
        paths.ca_cert.read_bytes(), paths.ca_key.read_bytes(), paths.server_key.read_bytes()
    )
    write_atomic(paths.server_cert, old)
    assert not has_client_auth(paths.server_cert.read_bytes())
    result = init_pki(tmp_path, [], NOW)
    assert result.server_cert_issued and not result.ca_created
    assert has_client_auth(paths.server_cert.read_bytes())


def test_only_a_controller_certificate_is_a_replica() -> None:
    ca = create_ca(NOW)
    assert controller_from_auth(auth(issue_server_cert(ca, [], NOW).cert_pem))
    # a device named like the controller is still a device: client authentication only
    assert not controller_from_auth(auth(issue_device_cert(ca, "vigil-controller", NOW).cert_pem))
    assert not controller_from_auth(auth(issue_device_cert(ca, "dev1", NOW).cert_pem))
    assert not controller_from_auth({})
    assert not controller_from_auth(auth(b"not a certificate"))
    assert not controller_from_auth({"x509_pem_cert": "not a list"})


def test_a_replica_calling_the_device_services_is_no_device() -> None:
    """Ingest, AgentControl and Feed take the caller's device id from `device_from_auth`:
    a replica's certificate (now also a client certificate) must not pass as a device
    named `vigil-controller`."""
    ca = create_ca(NOW)

    def peer(pem: bytes, cn: bytes = b"vigil-controller") -> dict[str, object]:
        return {"x509_common_name": [cn], "x509_pem_cert": [pem]}

    assert device_from_auth(peer(issue_server_cert(ca, [], NOW).cert_pem)) is None
    device = issue_device_cert(ca, "vigil-controller", NOW).cert_pem  # client auth only
    assert device_from_auth(peer(device)) == "vigil-controller"
    assert device_from_auth(peer(issue_device_cert(ca, "dev1", NOW).cert_pem, b"dev1")) == "dev1"
