"""The installer's workspace on the laptop: what the city told it, and one file per device.

    WORKSPACE/city.json          controllers, enrollment address, MQTT broker, install dir
    WORKSPACE/ca.crt             the city CA certificate (public)
    WORKSPACE/devices/ID.json    the device (cameras with their credentials) and its token, 0600
    WORKSPACE/sites.json         the county's sites as the controller has them (names, labels)

Bundles are built from here alone, so a day's bundles can be built with no link (`batch
--offline` fills the workspace while the link is up).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from provisioning.spec import DeviceSpec, check_id


class WorkspaceError(Exception):
    """The workspace lacks what was asked for; the message says which command fills it."""


@dataclass(frozen=True)
class City:
    api_url: str
    user: str
    controllers: list[str]
    enroll_address: str
    mqtt_host: str = ""
    mqtt_port: int = 1883
    install_dir: str = "/etc/vigil-agent"


@dataclass(frozen=True)
class DeviceRecord:
    spec: DeviceSpec
    token: str
    token_fingerprint: str
    expires_us: int


def write_private(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class Workspace:
    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    def save_city(self, city: City, ca_pem: bytes) -> None:
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_private(self.root / "city.json", json.dumps(asdict(city), indent=1).encode())
        self.ca_cert.write_bytes(ca_pem)

    def city(self) -> City:
        try:
            data: dict[str, Any] = json.loads((self.root / "city.json").read_text("utf-8"))
            if not self.ca_cert.is_file():
                raise OSError(f"{self.ca_cert} missing")
        except (OSError, ValueError) as exc:
            raise WorkspaceError(
                f"workspace {self.root} has no city settings ({exc}): run `vigil-provision init`"
            ) from None
        return City(**data)

    def _path(self, device_id: str) -> Path:
        return self.root / "devices" / f"{check_id(device_id, 'device id')}.json"

    def save(self, record: DeviceRecord) -> None:
        body = {
            "spec": record.spec.to_json(),
            "token": record.token,
            "token_fingerprint": record.token_fingerprint,
            "expires_us": record.expires_us,
        }
        write_private(self._path(record.spec.device_id), json.dumps(body, indent=1).encode())

    def load(self, device_id: str) -> DeviceRecord:
        try:
            body = json.loads(self._path(device_id).read_text("utf-8"))
            return DeviceRecord(
                DeviceSpec.from_json(body["spec"]),
                body["token"],
                body["token_fingerprint"],
                int(body["expires_us"]),
            )
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise WorkspaceError(
                f"no usable record of {device_id!r} in {self.root} ({exc.__class__.__name__}): "
                "run `vigil-provision device add` or `batch` first"
            ) from None

    # The sites, as the controller last said (`site add`, `site list`): labels name them offline.

    def _sites(self) -> dict[str, dict[str, Any]]:
        try:
            data = json.loads((self.root / "sites.json").read_text("utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def save_sites(self, sites: list[dict[str, Any]]) -> None:
        known = self._sites()
        for site in sites:
            known[f"{site['county']}/{site['site_id']}"] = site
        body = json.dumps(known, indent=1, ensure_ascii=False).encode()
        write_private(self.root / "sites.json", body)

    def site(self, county: str, site_id: str) -> dict[str, Any] | None:
        found = self._sites().get(f"{county}/{site_id}")
        return found if isinstance(found, dict) else None
