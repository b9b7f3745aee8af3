"""Enrollment: a device's first certificate for a single-use token and a CSR, and its renewals.

The device generated the key; only the CSR comes here. The order of checks is the order of
cost and of harm: the device id and CSR (pure), the device is registered and not retired,
then the token (redeemed in the same transaction that judges it) or, with no token, a live
certificate of the same key (renewal). Only then is anything signed, recorded and granted
an MQTT account. Anything refused raises EnrollError and changes nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from cryptography import x509

from controller.catalog import Catalog
from controller.clock import Clock
from controller.enrollment.accounts import Accounts, NoAccounts
from controller.enrollment.rules import (
    EnrollError,
    Grant,
    Refusal,
    check_csr,
    may_renew,
    renew_after_us,
    serial_hex,
)
from controller.enrollment.store import EnrollmentStore
from controller.pki.certs import KeyPair, PkiError, sign_csr, utc_from_us, validate_device_id
from protos.vigil.v1 import agent_control_pb2

log = logging.getLogger("vigil.enrollment")


@dataclass
class EnrollmentService:
    store: EnrollmentStore
    catalog: Catalog
    ca: KeyPair
    clock: Clock
    accounts: Accounts = field(default_factory=NoAccounts)
    cert_days: int = 90

    def enroll(self, request: agent_control_pb2.EnrollRequest) -> agent_control_pb2.EnrollResponse:
        device_id = request.device_id
        try:
            validate_device_id(device_id)
        except PkiError as exc:
            raise EnrollError(Refusal.BAD_REQUEST, str(exc)) from None
        csr = check_csr(request.csr_pem, device_id)
        if self.catalog.device(device_id) is None:
            raise EnrollError(Refusal.DENIED, f"device {device_id!r} is not registered")
        if self.store.retired(device_id):
            raise EnrollError(Refusal.DENIED, f"device {device_id!r} is retired")
        now_us = self.clock.now_us()
        if request.token:
            grant = self.store.redeem(request.token, device_id, csr.key_fp, now_us)
            what = "enrolled" if grant is Grant.FIRST else "enrolled again (same key)"
        elif may_renew(self.store.certs_of(device_id), csr.key_fp, now_us):
            what = "renewed"
        else:
            raise EnrollError(
                Refusal.DENIED,
                "no token and no live certificate with this key: enroll with a new token",
            )
        try:
            now = utc_from_us(now_us)
            cert_pem = sign_csr(self.ca, csr.csr_pem, device_id, now, self.cert_days)
        except PkiError as exc:
            raise EnrollError(Refusal.BAD_REQUEST, str(exc)) from None
        cert = x509.load_pem_x509_certificate(cert_pem)
        not_before = int(cert.not_valid_before_utc.timestamp() * 1_000_000)
        not_after = int(cert.not_valid_after_utc.timestamp() * 1_000_000)
        self.store.record_cert(
            serial_hex(cert.serial_number), device_id, csr.key_fp, now_us, not_after
        )
        username, password = self.accounts.grant(device_id)
        log.info("%s %s: certificate %x", device_id, what, cert.serial_number)
        return agent_control_pb2.EnrollResponse(
            certificate_pem=cert_pem,
            ca_certificate_pem=self.ca.cert_pem,
            config=self._config(device_id),
            mqtt_username=username,
            mqtt_password=password,
            renew_after_unix_us=renew_after_us(not_before, not_after),
        )

    def _config(self, device_id: str) -> agent_control_pb2.AgentConfig:
        cameras = [
            agent_control_pb2.CameraConfig(camera_id=c.camera_id)
            for c in self.catalog.cameras()
            if c.device_id == device_id
        ]
        return agent_control_pb2.AgentConfig(device_id=device_id, cameras=cameras)

    def retire(self, device_id: str, reason: str) -> int:
        """Revoke the device's certificates at once and remove its MQTT account."""
        validate_device_id(device_id)
        count = self.store.retire(device_id, reason, self.clock.now_us())
        self.accounts.remove(device_id)
        log.warning("%s retired (%s): %d certificate(s) revoked", device_id, reason, count)
        return count
