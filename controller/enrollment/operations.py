"""What an operator or installer does to enrollment: issue a token, retire, replace.

Shared by the controller's CLI and the installer API, so both check the same things: the
device is registered, a retired device gets no token, replacing moves OLD's cameras to NEW
(their recorded history stays with the cameras) before OLD's certificates are revoked.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.catalog import Catalog
from controller.clock import Clock
from controller.config import ControllerConfig
from controller.enrollment.accounts import Accounts, accounts_for
from controller.enrollment.store import EnrollmentStore, IssuedToken
from controller.fleet.broker import BrokerError
from controller.pki.certs import PkiError, validate_device_id


class OperationError(Exception):
    """The operation is refused; nothing changed."""


@dataclass
class Operations:
    catalog: Catalog
    store: EnrollmentStore
    clock: Clock
    accounts: Accounts
    default_ttl_s: float = 7 * 86400.0

    @classmethod
    def for_config(cls, config: ControllerConfig, catalog: Catalog, clock: Clock) -> Operations:
        return cls(
            catalog,
            EnrollmentStore(catalog.engine),
            clock,
            accounts_for(config),
            config.enrollment.token_ttl_s,
        )

    def _device(self, device_id: str) -> tuple[str, str, str]:
        try:
            validate_device_id(device_id)
        except PkiError as exc:
            raise OperationError(str(exc)) from None
        row = self.catalog.device(device_id)
        if row is None:
            raise OperationError(f"device {device_id!r} is not registered")
        return row.county, row.site, row.kind

    def token(self, device_id: str, issued_by: str, ttl_s: float) -> IssuedToken:
        county, site, _ = self._device(device_id)
        if self.store.retired(device_id):
            raise OperationError(f"device {device_id!r} is retired: register a new device id")
        if not 60 <= ttl_s <= 90 * 86400:
            raise OperationError("token lifetime must be between 60 s and 90 days")
        return self.store.issue_token(
            device_id, county, site, issued_by, self.clock.now_us(), ttl_s
        )

    def retire(self, device_id: str, reason: str) -> int:
        """Revoke the device's certificates, then remove its broker account. Idempotent: when
        the broker cannot be reached the revocation stands and OperationError says to run it
        again (which removes the account then)."""
        self._device(device_id)
        count = self.store.retire(device_id, reason, self.clock.now_us())
        try:
            self.accounts.remove(device_id)
        except BrokerError as exc:
            raise OperationError(
                f"device {device_id!r}: certificates revoked, but its MQTT account is still on "
                f"the broker ({exc}): run retire again once the broker answers"
            ) from None
        return count

    def replace(self, old: str, new: str, issued_by: str, ttl_s: float) -> IssuedToken:
        county, site, kind = self._device(old)
        if old == new:
            raise OperationError("OLD and NEW must differ")
        try:
            validate_device_id(new)
        except PkiError as exc:
            raise OperationError(str(exc)) from None
        if self.store.retired(new):
            raise OperationError(f"device {new!r} is retired: choose a new device id")
        self.catalog.upsert_device(new, county, site, kind)
        for camera in self.catalog.cameras():
            if camera.device_id == old:
                self.catalog.upsert_camera(
                    camera.camera_id, new, camera.retention_days, camera.resource_class
                )
        self.retire(old, f"replaced by {new}")
        return self.token(new, issued_by, ttl_s)
