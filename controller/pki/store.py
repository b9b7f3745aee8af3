"""The PKI on disk: `<data_dir>/pki/{ca,server}.{crt,key}`, written atomically, keys 0600.

`init_pki` is idempotent so `vigil-controller init` can run on every deploy: an existing CA is
never replaced unless the operator forces it (replacing it would lock out every enrolled
device), and the server certificate is re-issued only when it is missing or does not cover
the requested host names (or lacks client authentication, which the live relay between
replicas needs: certificates issued before it).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography import x509

# Defined below pki and grants (controller/files.py); still named from here too.
from controller.files import write_atomic as write_atomic
from controller.pki.certs import (
    KeyPair,
    PkiError,
    create_ca,
    has_client_auth,
    issue_server_cert,
    load_cert,
    validate_device_id,
)


@dataclass(frozen=True, slots=True)
class PkiPaths:
    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.root / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "server.key"


@dataclass(frozen=True, slots=True)
class InitResult:
    ca_created: bool
    server_cert_issued: bool
    paths: PkiPaths


@dataclass(frozen=True, slots=True)
class DeviceFiles:
    cert: Path
    key: Path
    ca_cert: Path


def pki_paths(data_dir: Path) -> PkiPaths:
    return PkiPaths(data_dir / "pki")


def load_pair(cert: Path, key: Path) -> KeyPair:
    try:
        return KeyPair(cert.read_bytes(), key.read_bytes())
    except OSError as exc:
        raise PkiError(f"cannot read {cert} / {key}: {exc.strerror}") from exc


def load_ca(data_dir: Path) -> KeyPair:
    """The city CA, or PkiError telling the operator to run `vigil-controller init`."""
    paths = pki_paths(data_dir)
    if not paths.ca_cert.exists() or not paths.ca_key.exists():
        raise PkiError(
            f"no CA in {paths.root}: run `vigil-controller init --data-dir {data_dir}` first"
        )
    return load_pair(paths.ca_cert, paths.ca_key)


def _covers(cert_pem: bytes, hostnames: Sequence[str]) -> bool:
    cert = load_cert(cert_pem)
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have = {str(v) for v in san.get_values_for_type(x509.IPAddress)}
    have |= set(san.get_values_for_type(x509.DNSName))
    return all(h in have for h in hostnames)


def init_pki(
    data_dir: Path, hostnames: Sequence[str], now: datetime, force: bool = False
) -> InitResult:
    """Create the CA (unless present) and a server certificate covering `hostnames`."""
    paths = pki_paths(data_dir)
    paths.root.mkdir(parents=True, exist_ok=True)
    os.chmod(paths.root, 0o700)
    ca_created = False
    if force or not (paths.ca_cert.exists() and paths.ca_key.exists()):
        if not force and (paths.ca_cert.exists() or paths.ca_key.exists()):
            raise PkiError(
                f"{paths.root} holds half a CA (cert or key missing); inspect it, or use --force"
            )
        ca = create_ca(now)
        write_atomic(paths.ca_key, ca.key_pem, 0o600)
        write_atomic(paths.ca_cert, ca.cert_pem)
        ca_created = True
    else:
        ca = load_pair(paths.ca_cert, paths.ca_key)
    issue = (
        ca_created
        or not paths.server_cert.exists()
        or not paths.server_key.exists()
        or not _covers(paths.server_cert.read_bytes(), hostnames)
        or not has_client_auth(paths.server_cert.read_bytes())  # older: no live relay
    )
    if issue:
        server = issue_server_cert(ca, hostnames, now)
        write_atomic(paths.server_key, server.key_pem, 0o600)
        write_atomic(paths.server_cert, server.cert_pem)
    return InitResult(ca_created=ca_created, server_cert_issued=issue, paths=paths)


def write_device_files(
    out_dir: Path, device_id: str, pair: KeyPair, ca_cert_pem: bytes
) -> DeviceFiles:
    """`<device>.crt`, `<device>.key` (0600) and `ca.crt`: what an agent's uplink config names."""
    validate_device_id(device_id)
    files = DeviceFiles(
        cert=out_dir / f"{device_id}.crt",
        key=out_dir / f"{device_id}.key",
        ca_cert=out_dir / "ca.crt",
    )
    write_atomic(files.key, pair.key_pem, 0o600)
    write_atomic(files.cert, pair.cert_pem)
    write_atomic(files.ca_cert, ca_cert_pem)
    return files
