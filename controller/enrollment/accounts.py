"""The device's MQTT account, made at enrollment and removed at retirement.

With the managed broker the controller owns the password file (`<data_dir>/mosquitto/passwd`):
enrollment adds the device's account with a fresh password (handed to the device once, in the
EnrollResponse) and SIGHUPs the broker; retirement deletes it. With an external Mosquitto
and `enrollment.broker_accounts = "dynsec"` the same is done through its dynamic security
plugin (dynsec.py); otherwise the city manages accounts itself and enrollment hands out none
(`NoAccounts`).
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Protocol

from controller.config import ControllerConfig
from controller.fleet.broker import BrokerError, add_account, signal_reload


class Accounts(Protocol):
    def grant(self, device_id: str) -> tuple[str, str]:
        """(username, password) of the device's account, a new password each time."""
        ...

    def remove(self, device_id: str) -> None: ...


class NoAccounts:
    def grant(self, device_id: str) -> tuple[str, str]:
        return "", ""

    def remove(self, device_id: str) -> None:
        return None


class ManagedAccounts:
    """Accounts in the managed broker's password file; one writer at a time per process."""

    def __init__(self, broker_dir: Path, account_tool: str = "mosquitto_passwd") -> None:
        self._dir = broker_dir
        self._tool = account_tool
        self._lock = threading.Lock()

    def grant(self, device_id: str) -> tuple[str, str]:
        password = secrets.token_urlsafe(24)
        with self._lock:
            self._dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            add_account(self._dir / "passwd", device_id, password, self._tool)
            signal_reload(self._dir)
        return device_id, password

    def remove(self, device_id: str) -> None:
        exe = shutil.which(self._tool)
        path = self._dir / "passwd"
        if exe is None or not path.exists():
            return
        with self._lock:
            result = subprocess.run(
                [exe, "-D", str(path), device_id], capture_output=True, text=True, check=False
            )
            if result.returncode != 0 and "not found" not in result.stderr.lower():
                raise BrokerError(f"mosquitto_passwd -D failed: {result.stderr.strip()}")
            signal_reload(self._dir)


def accounts_for(config: ControllerConfig) -> Accounts:
    """The managed broker's accounts, an external broker's through dynsec, or none."""
    m = config.mqtt
    if m.mode == "managed":
        return ManagedAccounts(config.data_path / "mosquitto")
    if m.mode == "external" and config.enrollment.broker_accounts == "dynsec":
        from controller.enrollment.dynsec import DynsecAccounts
        from controller.fleet.mqtt import MqttSettings

        password = ""
        if m.password_file:
            password = Path(m.password_file).read_text(encoding="utf-8").strip()
        user = m.username or m.client_id
        settings = MqttSettings(m.host, m.port, user, password, m.ca_cert, client_id=user)
        return DynsecAccounts(settings, config.enrollment.broker_role)
    return NoAccounts()
