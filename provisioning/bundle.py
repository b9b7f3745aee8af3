"""The bundle a field installer flashes onto an NVR: agent.toml plus its TLS and MQTT secrets.

Building and checking a bundle are separate steps so the installer can verify on site, on the
installed device, what was built in the office. Checks are pure where they can be (config
validation, certificate facts) and name the file and the problem.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_agent.config import ConfigError, load_config


class BundleError(Exception):
    """The bundle cannot be built; the message says which input is wrong."""


@dataclass(frozen=True)
class Camera:
    camera_id: str
    url: str


def _toml_str(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def agent_toml(
    device_id: str,
    county: str,
    site: str,
    cameras: list[Camera],
    controller: str | Sequence[str],
    install_dir: str,
    mqtt_host: str = "",
    mqtt_port: int = 1883,
) -> str:
    """agent.toml text for an NVR whose bundle is installed at `install_dir`.

    `controller`: one HOST:PORT, or several replicas in order of preference (the first is the
    device's home replica); several are written as `controllers = [...]`.
    """
    addresses = [controller] if isinstance(controller, str) else list(controller)
    if len(addresses) == 1:
        uplink_target = f"controller = {_toml_str(addresses[0])}"
    else:
        uplink_target = f"controllers = [{', '.join(_toml_str(a) for a in addresses)}]"
    lines = [
        f"device_id = {_toml_str(device_id)}",
        f"county = {_toml_str(county)}",
        f"site = {_toml_str(site)}",
        f"data_dir = {_toml_str('/var/lib/vigil-agent')}",
    ]
    for cam in cameras:
        lines += [
            "",
            "[[cameras]]",
            f"id = {_toml_str(cam.camera_id)}",
            f"url = {_toml_str(cam.url)}",
        ]
    lines += [
        "",
        "[uplink]",
        uplink_target,
        f"ca_cert = {_toml_str(f'{install_dir}/pki/ca.crt')}",
        f"client_cert = {_toml_str(f'{install_dir}/pki/{device_id}.crt')}",
        f"client_key = {_toml_str(f'{install_dir}/pki/{device_id}.key')}",
    ]
    if mqtt_host:
        lines += [
            "",
            "[mqtt]",
            f"host = {_toml_str(mqtt_host)}",
            f"port = {mqtt_port}",
            f"username = {_toml_str(device_id)}",
            f"password_file = {_toml_str(f'{install_dir}/mqtt.password')}",
        ]
    return "\n".join(lines) + "\n"


def build_bundle(
    out: Path,
    toml_text: str,
    device_id: str,
    pki_dir: Path,
    mqtt_password_file: Path | None,
) -> Path:
    """Write the bundle directory: agent.toml, pki/{ca.crt,<dev>.crt,<dev>.key}, mqtt.password."""
    sources = [pki_dir / "ca.crt", pki_dir / f"{device_id}.crt", pki_dir / f"{device_id}.key"]
    missing = [str(p) for p in sources if not p.is_file()]
    if mqtt_password_file is not None and not mqtt_password_file.is_file():
        missing.append(str(mqtt_password_file))
    if missing:
        raise BundleError(f"missing input files: {', '.join(missing)}")
    if out.exists() and any(out.iterdir()):
        raise BundleError(f"{out} exists and is not empty: choose a new directory")
    (out / "pki").mkdir(parents=True, exist_ok=True)
    (out / "agent.toml").write_text(toml_text, encoding="utf-8")
    for src in sources:
        shutil.copyfile(src, out / "pki" / src.name)
    os.chmod(out / "pki" / f"{device_id}.key", 0o600)
    if mqtt_password_file is not None:
        shutil.copyfile(mqtt_password_file, out / "mqtt.password")
        os.chmod(out / "mqtt.password", 0o600)
    return out


def check_certificates(
    device_id: str,
    ca_pem: bytes,
    cert_pem: bytes,
    key_pem: bytes,
    now: datetime,
    warn_days: int = 30,
) -> list[str]:
    """Problems with a device's TLS files ([] when good): CN, issuer, signature, validity, key."""
    problems: list[str] = []
    try:
        ca = x509.load_pem_x509_certificate(ca_pem)
        cert = x509.load_pem_x509_certificate(cert_pem)
        key = serialization.load_pem_private_key(key_pem, password=None)
    except ValueError as exc:
        return [f"unreadable certificate or key: {exc}"]
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(cns[0].value) if cns else ""
    if cn != device_id:
        problems.append(f"certificate CN is {cn!r}, not the device id {device_id!r}")
    if cert.issuer != ca.subject:
        problems.append("certificate was not issued by this CA")
    else:
        try:
            cert.verify_directly_issued_by(ca)
        except (InvalidSignature, ValueError, TypeError):
            problems.append("certificate signature does not verify against the CA")
    if now < cert.not_valid_before_utc:
        problems.append(f"certificate not valid before {cert.not_valid_before_utc:%Y-%m-%d}")
    if now >= cert.not_valid_after_utc:
        problems.append(f"certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}")
    elif now + timedelta(days=warn_days) >= cert.not_valid_after_utc:
        problems.append(f"certificate expires soon ({cert.not_valid_after_utc:%Y-%m-%d})")
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key().public_numbers() != (
        cert.public_key().public_numbers()  # type: ignore[union-attr]
    ):
        problems.append("private key does not match the certificate")
    return problems


def verify_bundle(root: Path, now: datetime | None = None) -> list[str]:
    """Everything wrong with an installed bundle ([] when it is ready to run)."""
    now = now or datetime.now(UTC)
    try:
        config = load_config(root / "agent.toml", env={})
    except ConfigError as exc:
        return [str(exc)]
    problems: list[str] = []
    paths = [
        Path(config.uplink.ca_cert),
        Path(config.uplink.client_cert),
        Path(config.uplink.client_key),
    ]
    resolved = [p if p.is_absolute() and p.exists() else root / "pki" / p.name for p in paths]
    try:
        ca, cert, key = (p.read_bytes() for p in resolved)
    except OSError as exc:
        return [f"cannot read TLS file: {exc}"]
    problems += check_certificates(config.device_id, ca, cert, key, now)
    if not config.cameras:
        problems.append("agent.toml lists no cameras")
    if not config.uplink.addresses:
        problems.append("agent.toml has no uplink.controller (or uplink.controllers)")
    if config.mqtt.host and config.mqtt.password_file:
        pw = Path(config.mqtt.password_file)
        if not (pw.exists() or (root / pw.name).exists()):
            problems.append(f"MQTT password file {pw.name} is missing")
    return problems
