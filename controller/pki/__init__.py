"""The city PKI: a CA, the controller's server certificate, device client certificates.

Mutual TLS is how the controller knows who is speaking: the client certificate's CN is the
device id, and a device may act only for itself.
"""

from controller.pki.certs import (
    KeyPair,
    PkiError,
    common_name,
    create_ca,
    issue_device_cert,
    issue_server_cert,
    make_csr,
    sign_csr,
    utc_from_us,
    validate_device_id,
)
from controller.pki.store import (
    DeviceFiles,
    InitResult,
    PkiPaths,
    init_pki,
    load_ca,
    pki_paths,
    write_device_files,
)

__all__ = [
    "DeviceFiles",
    "InitResult",
    "KeyPair",
    "PkiError",
    "PkiPaths",
    "common_name",
    "create_ca",
    "init_pki",
    "issue_device_cert",
    "issue_server_cert",
    "load_ca",
    "make_csr",
    "pki_paths",
    "sign_csr",
    "utc_from_us",
    "validate_device_id",
    "write_device_files",
]
