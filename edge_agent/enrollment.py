"""First boot: the device makes its own key, enrolls with a single-use token, renews later.

    vigil-agent enroll --config agent.toml --address city.example:7444 --token-file F

The private key is generated here (ECDSA P-256, written 0600 to `uplink.client_key`) and
never leaves the device: only a CSR goes to `AgentControl.Enroll` on the controller's
enrollment listener (server-authenticated TLS against `uplink.ca_cert`). The answer's
certificate goes to `uplink.client_cert`, the MQTT password to `mqtt.password_file` (0600).
Run before every start (the systemd unit's ExecStartPre): with a certificate that matches
the key and is not yet due for renewal it does nothing; past two thirds of its validity it
renews with the same key and no token; an enrollment cut by a reboot is simply repeated with
the same key and token (the controller answers it idempotently).

Controller unreachable (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED): retried with
exponential backoff and jitter; a refusal (PERMISSION_DENIED, INVALID_ARGUMENT) stops at
once. Every step is written to `<data_dir>/enrollment.json`, which `vigil-provision verify`
and the installer read.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from edge_agent.config import AgentConfig

if TYPE_CHECKING:
    from protos.vigil.v1 import agent_control_pb2

log = logging.getLogger("edge_agent.enrollment")
# Status codes (names) worth retrying: the controller is down, slow, or throttling us.
RETRYABLE = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})
STATUS_FILE = "enrollment.json"


class EnrollmentFailed(Exception):
    """Enrollment was refused or gave up; the message is what the installer must fix."""


# --- pure decisions -------------------------------------------------------------------------


def action(cert_pem: bytes | None, key_matches: bool, renew_after_us: int, now_us: int) -> str:
    """ "enroll" (no usable certificate), "renew" (due), or "ok"."""
    if cert_pem is None or not key_matches:
        return "enroll"
    if renew_after_us and now_us >= renew_after_us:
        return "renew"
    return "ok"


def backoff_s(
    attempt: int, base_s: float = 2.0, cap_s: float = 300.0, jitter: float = 0.0
) -> float:
    """Delay before retry `attempt` (1-based): base * 2^(attempt-1), capped, plus up to 20 %
    jitter (`jitter` in [0, 1)) so a village of devices does not retry in step."""
    delay = min(cap_s, base_s * 2.0 ** max(0, attempt - 1))
    return delay * (1.0 + 0.2 * jitter)


def renew_point_us(cert_pem: bytes) -> int:
    """Two thirds into the certificate's validity (the controller's rule, kept by the device)."""
    cert = x509.load_pem_x509_certificate(cert_pem)
    start = int(cert.not_valid_before_utc.timestamp() * 1_000_000)
    end = int(cert.not_valid_after_utc.timestamp() * 1_000_000)
    return start + (end - start) * 2 // 3


# --- files ----------------------------------------------------------------------------------


def write_private(path: Path, data: bytes) -> None:
    """Atomically, mode 0600 from the first byte (never world-readable, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def ensure_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The device key: loaded if present, else generated here and written 0600."""
    if path.exists():
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise EnrollmentFailed(f"{path} is not an ECDSA key: remove it to make a new one")
        return key
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    write_private(path, pem)
    return key


def csr_for(key: ec.EllipticCurvePrivateKey, device_id: str) -> bytes:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Vigil"),
            x509.NameAttribute(NameOID.COMMON_NAME, device_id),
        ]
    )
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    return csr.public_bytes(serialization.Encoding.PEM)


def _key_matches(key: ec.EllipticCurvePrivateKey, cert_pem: bytes) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        return False
    return bool(cert.public_key() == key.public_key())


@dataclass
class Status:
    """What `enrollment.json` says: state, detail, attempts, when."""

    path: Path
    now_us: Callable[[], int]

    def write(self, state: str, detail: str = "", attempt: int = 0) -> None:
        body = {
            "state": state,
            "detail": detail,
            "attempt": attempt,
            "at": datetime.fromtimestamp(self.now_us() / 1e6, UTC).isoformat(),
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(body, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, self.path)


def read_status(data_dir: Path) -> dict[str, object]:
    try:
        value = json.loads((data_dir / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"state": "unknown"}
    return value if isinstance(value, dict) else {"state": "unknown"}


# --- the shell ------------------------------------------------------------------------------


@dataclass
class Enroller:
    config: AgentConfig
    address: str
    token_file: Path | None
    now_us: Callable[[], int]
    sleep: Callable[[float], None] = time.sleep
    max_attempts: int = 0  # 0: until it succeeds or is refused
    timeout_s: float = 15.0

    def _paths(self) -> tuple[Path, Path, Path]:
        u = self.config.uplink
        if not (u.ca_cert and u.client_cert and u.client_key):
            raise EnrollmentFailed("uplink.ca_cert, client_cert and client_key must be set")
        return Path(u.ca_cert), Path(u.client_cert), Path(u.client_key)

    def run(self) -> str:
        """Enroll or renew as needed; returns what it did ("ok", "enrolled", "renewed")."""
        ca_path, cert_path, key_path = self._paths()
        status = Status(Path(self.config.data_dir) / STATUS_FILE, self.now_us)
        key = ensure_key(key_path)
        cert = cert_path.read_bytes() if cert_path.exists() else None
        matches = cert is not None and _key_matches(key, cert)
        todo = action(cert, matches, renew_point_us(cert) if matches and cert else 0, self.now_us())
        if todo == "ok":
            status.write("enrolled", "certificate valid")
            return "ok"
        token = ""
        if todo == "enroll":
            token = self._token()
        request_csr = csr_for(key, self.config.device_id)
        ca_pem = ca_path.read_bytes()
        reply = self._call(ca_pem, token, request_csr, status)
        write_private(cert_path, reply.certificate_pem)
        if reply.mqtt_password and self.config.mqtt.password_file:
            write_private(
                Path(self.config.mqtt.password_file), reply.mqtt_password.encode() + b"\n"
            )
        done = "enrolled" if todo == "enroll" else "renewed"
        status.write("enrolled", done)
        if token and self.token_file is not None:
            self.token_file.unlink(missing_ok=True)  # spent; the key alone renews from now on
        log.info("%s: %s", self.config.device_id, done)
        return done

    def _token(self) -> str:
        if self.token_file is None or not self.token_file.exists():
            raise EnrollmentFailed(
                "no certificate and no enrollment token: ask the installer for a token "
                "(vigil-provision device add / bundle)"
            )
        token = self.token_file.read_text(encoding="utf-8").strip()
        if not token:
            raise EnrollmentFailed(f"{self.token_file} is empty")
        return token

    def _call(
        self, ca_pem: bytes, token: str, csr_pem: bytes, status: Status
    ) -> agent_control_pb2.EnrollResponse:
        import grpc  # here: `vigil-agent --help` should not pay for gRPC

        from protos.vigil.v1 import agent_control_pb2, agent_control_pb2_grpc

        request = agent_control_pb2.EnrollRequest(
            device_id=self.config.device_id, token=token, csr_pem=csr_pem
        )
        attempt = 0
        while True:
            attempt += 1
            status.write("enrolling", f"contacting {self.address}", attempt)
            channel = grpc.secure_channel(
                self.address, grpc.ssl_channel_credentials(root_certificates=ca_pem)
            )
            try:
                stub = agent_control_pb2_grpc.AgentControlStub(channel)
                return stub.Enroll(request, timeout=self.timeout_s)
            except grpc.RpcError as exc:
                code, detail = exc.code(), exc.details() or ""
                if code.name not in RETRYABLE:
                    status.write("refused", f"{code.name}: {detail}", attempt)
                    raise EnrollmentFailed(f"enrollment refused ({code.name}): {detail}") from None
                if self.max_attempts and attempt >= self.max_attempts:
                    status.write("unreachable", f"{code.name}: {detail}", attempt)
                    raise EnrollmentFailed(
                        f"controller {self.address} unreachable after {attempt} attempts "
                        f"({code.name}: {detail})"
                    ) from None
                delay = backoff_s(attempt, jitter=random.random())  # noqa: S311 - jitter only
                status.write(
                    "waiting",
                    f"controller unreachable ({code.name}); retry {attempt + 1} in {delay:.0f} s",
                    attempt,
                )
                log.warning(
                    "enrollment: %s unreachable (%s); retry in %.0f s",
                    self.address,
                    code.name,
                    delay,
                )
                self.sleep(delay)
            finally:
                channel.close()


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """`vigil-agent enroll` (the systemd unit's ExecStartPre)."""
    p = sub.add_parser("enroll", help="first boot: make the key, enroll or renew the certificate")
    p.add_argument("--config", required=True, help="agent.toml")
    p.add_argument("--address", required=True, help="HOST:PORT of the enrollment listener")
    p.add_argument("--token-file", type=Path, help="the single-use token (deleted once used)")
    p.add_argument("--max-attempts", type=int, default=0, help="0: retry until reachable")


def cmd_enroll(config: AgentConfig, args: argparse.Namespace, now_us: Callable[[], int]) -> int:
    enroller = Enroller(
        config, args.address, args.token_file, now_us, max_attempts=args.max_attempts
    )
    try:
        done = enroller.run()
    except (EnrollmentFailed, OSError, ValueError) as exc:
        log.error("enrollment: %s", exc)
        return 1
    sys.stdout.write(f"{config.device_id}: {done}\n")
    return 0
