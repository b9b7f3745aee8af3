"""Who is calling: the device identity of a mutual-TLS gRPC peer, and the server credentials
that make the handshake prove it.

The device's identity is the CN of the client certificate the TLS handshake verified
(`x509_common_name` in the auth context), never a field the client sends. Every service on the
controller's gRPC server (Ingest, AgentControl) asks this module, not each other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import grpc
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vigil_common.names import CONTROLLER_CN as SERVER_CN


def device_from_auth(auth: Mapping[str, object]) -> str | None:
    """The verified client certificate's CN, or None when the peer presented none, or is
    another controller replica (its certificate authenticates clients too, for the live
    relay; it is no device, and the device services must not take it for one).

    gRPC gives each property as a list of bytes values; anything else is treated as absent.
    """
    names = auth.get("x509_common_name")
    if not isinstance(names, Sequence) or len(names) != 1 or not isinstance(names[0], bytes):
        return None
    try:
        name = names[0].decode("utf-8")
    except UnicodeDecodeError:
        return None
    if name == SERVER_CN and controller_from_auth(auth):  # the PEM parsed only for this name
        return None
    return name or None


def controller_from_auth(auth: Mapping[str, object]) -> bool:
    """Whether the verified peer is another controller replica: a certificate the city CA
    issued as a controller's (CN `vigil-controller`, server authentication). Device
    certificates are issued for client authentication only, so no agent passes, whatever
    its device id."""
    pems = auth.get("x509_pem_cert")
    if not isinstance(pems, Sequence) or len(pems) != 1 or not isinstance(pems[0], bytes):
        return False
    try:
        cert = x509.load_pem_x509_certificate(pems[0])
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except (ValueError, x509.ExtensionNotFound):
        return False
    return (
        len(names) == 1
        and names[0].value == SERVER_CN
        and ExtendedKeyUsageOID.SERVER_AUTH in list(usage)
    )


def mtls_credentials(cert_pem: bytes, key_pem: bytes, ca_pem: bytes) -> grpc.ServerCredentials:
    """Server TLS that *requires* a client certificate signed by the city CA.

    The handshake itself refuses a peer without a certificate, with one from another CA, or
    with an expired one, so no handler ever runs for it.
    """
    return grpc.ssl_server_credentials(
        [(key_pem, cert_pem)], root_certificates=ca_pem, require_client_auth=True
    )
