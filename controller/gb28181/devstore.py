"""GB/T 28181 devices in the shared database: passwords issued, registrations, channels.

A device is issued a password once (`issue`; only the digest HA1 is kept), which also makes
it a catalog `device` of kind `gb28181` in the county and site given. Its Catalog answer's
channels become catalog cameras of that device, each named and coded (its own 20-digit code)
in the resource directory, so they appear in the console's tree and list like any camera.
Blocking calls: the SIP loop runs them on worker threads.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from controller.catalog.base import CatalogBase
from controller.catalog.catalog import Catalog
from controller.catalog.models import Camera
from controller.clock import Clock
from controller.directory.rows import Entry
from controller.directory.store import DirectoryStore
from controller.gb28181.access import Known, ha1_of
from controller.gb28181.codes import is_code
from controller.gb28181.devstate import ChannelState, Liveness, channel_states, judge, moved
from controller.gb28181.manscdp import UNKNOWN, Channel, video_channels
from controller.gb28181.tables import GbChannel, GbDevice

log = logging.getLogger("vigil.gb28181")

KIND = "gb28181"
PASSWORD_BYTES = 12  # 16 URL-safe characters: typed into an NVR's web page by an installer


@dataclass(frozen=True, slots=True)
class ChannelRow:
    """A GB channel in the catalog: its device and its last Catalog `Status` (unknown and 0
    when no Catalog answer was stored for it since revision 0018)."""

    device_id: str
    status: str
    reported_us: int


class GbDeviceStore(CatalogBase):
    def __init__(self, engine: Engine, clock: Clock, replica: str = "") -> None:
        super().__init__(engine, clock)
        self._replica = replica[:100]
        self._catalog = Catalog(engine, clock)
        self._directory = DirectoryStore(engine, clock)

    def issue(self, device_id: str, county: str, site: str, realm: str) -> str:
        """A new password for `device_id` (shown once); an earlier one stops working."""
        if not is_code(device_id):
            raise ValueError(f"device code {device_id!r} is not 20 digits")
        password = secrets.token_urlsafe(PASSWORD_BYTES)
        self._catalog.upsert_device(device_id, county, site, KIND)
        values = {
            "device_id": device_id,
            "ha1": ha1_of(device_id, realm, password),
            "realm": realm,
            "county": county,
            "site": site,
            "issued_us": self._clock.now_us(),
            "revoked_us": 0,
            "registered_us": 0,
            "expires_us": 0,
            "contact": "",
            "channels": 0,
        }
        with self._write("issue gb device") as conn:
            self._upsert(conn, GbDevice, values, "device_id")
        return password

    def revoke(self, device_id: str) -> bool:
        with self._write("revoke gb device") as conn:
            done = conn.execute(
                update(GbDevice)
                .where(col(GbDevice.device_id) == device_id)
                .values(revoked_us=self._clock.now_us())
            )
        return bool(done.rowcount)

    def row(self, device_id: str) -> GbDevice | None:
        with self._read("get gb device") as conn:
            row = conn.execute(select(GbDevice).where(col(GbDevice.device_id) == device_id)).first()
        return None if row is None else GbDevice.model_validate(dict(row._mapping))

    def known(self, device_id: str) -> Known | None:
        row = self.row(device_id)
        if row is None:
            return None
        return Known(row.device_id, row.ha1, row.realm, row.revoked_us > 0)

    def registered(self, device_id: str, contact: str, expires_s: int) -> None:
        now = self._clock.now_us()
        with self._write("gb device registered") as conn:
            conn.execute(
                update(GbDevice)
                .where(col(GbDevice.device_id) == device_id)
                .values(
                    registered_us=now,
                    expires_us=now + expires_s * 1_000_000 if expires_s else 0,
                    contact=contact[:64],
                    last_seen_us=now,
                    unanswered_us=0,
                    replica=self._replica,
                )
            )

    def elsewhere(self, device_id: str) -> str:
        """The other replica the device registered to since it last did to this one ("": none):
        each registration writes its replica, so the row names the latest."""
        row = self.row(device_id)
        return row.replica if row is not None and moved(row.replica, self._replica) else ""

    def seen(self, device_id: str) -> None:
        """The device was heard from (a keepalive): it answers again, if it did not."""
        values = {"last_seen_us": self._clock.now_us(), "unanswered_us": 0}
        with self._write("gb device seen") as conn:
            conn.execute(
                update(GbDevice).where(col(GbDevice.device_id) == device_id).values(**values)
            )

    def unanswered(self, device_id: str) -> None:
        """A request Vigil sent the device (an INVITE) got no answer at all."""
        with self._write("gb device unanswered") as conn:
            conn.execute(
                update(GbDevice)
                .where(col(GbDevice.device_id) == device_id)
                .values(unanswered_us=self._clock.now_us())
            )

    def rows(self) -> list[GbDevice]:
        """Every device ever issued a password (the fleet view's GB part)."""
        with self._read("list gb devices") as conn:
            found = conn.execute(select(GbDevice).order_by(col(GbDevice.device_id)))
            return [GbDevice.model_validate(dict(r._mapping)) for r in found]

    def set_channels(self, device_id: str, channels: Sequence[Channel]) -> int:
        """Each video channel a catalog camera of the device, named and coded in the
        directory, with its Catalog `Status` and when it was reported. Channels no longer
        listed are kept (their footage stays findable) with the status they last had. A code
        that is already another device's camera is left alone (logged): a device cannot take
        over, rename or switch off a camera that is not its own by listing its code."""
        cameras = self._store(device_id, video_channels(device_id, channels), {})
        with self._write("gb device channels") as conn:
            conn.execute(
                update(GbDevice)
                .where(col(GbDevice.device_id) == device_id)
                .values(channels=len(cameras))
            )
        return len(cameras)

    def apply_changes(
        self,
        device_id: str,
        upsert: Sequence[Channel],
        status: Mapping[str, str],
        listed: Sequence[str],
    ) -> dict[str, str]:
        """A Catalog NOTIFY's changes (`catsub.changes`): channels added or updated stored as
        `set_channels` stores them (another device's code left alone), new statuses of the
        device's own channels (any other code changes nothing), and its count of channels
        from those `listed` that are its own. Its own channels after (`own_channels`)."""
        self._store(device_id, video_channels(device_id, upsert), status)
        own = self.own_channels(device_id)
        with self._write("gb device channel count") as conn:
            conn.execute(
                update(GbDevice)
                .where(col(GbDevice.device_id) == device_id)
                .values(channels=len([c for c in listed if c in own]))
            )
        return own

    def _store(
        self, device_id: str, channels: Sequence[Channel], status: Mapping[str, str]
    ) -> list[Channel]:
        """Write `channels` (cameras, directory entries, statuses) and the `status` of
        codes, leaving alone any code that is another device's camera; those written."""
        taken = self._owners([c.code for c in channels] + list(status))
        cameras = []
        for c in channels:
            if taken.get(c.code, device_id) != device_id:
                log.warning("device %s lists channel %s, a camera of %s: ignored", device_id,
                            c.code, taken[c.code][:64])  # fmt: skip
                continue
            cameras.append(c)
        for c in cameras:
            self._catalog.upsert_camera(c.code, device_id)
        if cameras:
            self._directory.apply([Entry(c.code, c.name, gb_code=c.code) for c in cameras])
        rows = {c.code: c.status for c in cameras}
        rows |= {code: word for code, word in status.items() if taken.get(code) == device_id}
        now = self._clock.now_us()
        with self._write("gb device channels") as conn:
            for code, word in rows.items():
                values = {"camera_id": code, "device_id": device_id, "status": word,
                          "reported_us": now}  # fmt: skip
                self._upsert(conn, GbChannel, values, "camera_id")
        return cameras

    def _owners(self, codes: Sequence[str]) -> dict[str, str]:
        """camera id -> its device, for those of `codes` the catalog has."""
        if not codes:
            return {}
        query = select(col(Camera.camera_id), col(Camera.device_id)).where(
            col(Camera.camera_id).in_(list(codes))
        )
        with self._read("gb channel owners") as conn:
            return {str(r[0]): str(r[1]) for r in conn.execute(query)}

    def all_channels(self) -> dict[str, ChannelRow]:
        """Every GB device's channels with their last Catalog status (the fleet view's)."""
        query = (
            select(
                col(Camera.camera_id),
                col(Camera.device_id),
                col(GbChannel.status),
                col(GbChannel.reported_us),
            )
            .join(GbDevice, col(GbDevice.device_id) == col(Camera.device_id))
            .outerjoin(
                GbChannel,
                (col(GbChannel.camera_id) == col(Camera.camera_id))
                & (col(GbChannel.device_id) == col(Camera.device_id)),
            )
        )
        with self._read("gb channels") as conn:
            return {
                str(r[0]): ChannelRow(str(r[1]), str(r[2] or UNKNOWN), int(r[3] or 0))
                for r in conn.execute(query)
            }

    def own_channels(self, device_id: str) -> dict[str, str]:
        """The device's own channels in the catalog (camera id -> last Catalog status): what
        it may be INVITEd for. A code it listed that is another device's camera is not here."""
        query = (
            select(col(Camera.camera_id), col(GbChannel.status))
            .outerjoin(
                GbChannel,
                (col(GbChannel.camera_id) == col(Camera.camera_id))
                & (col(GbChannel.device_id) == col(Camera.device_id)),
            )
            .where(col(Camera.device_id) == device_id)
        )
        with self._read("gb device own channels") as conn:
            return {str(r[0]): str(r[1] or UNKNOWN) for r in conn.execute(query)}

    def channel_codes(self, device_id: str) -> list[str]:
        """The device's channels the catalog has (what its last Catalog answer stored)."""
        query = select(col(Camera.camera_id)).where(col(Camera.device_id) == device_id)
        with self._read("gb device channel codes") as conn:
            return sorted(str(r[0]) for r in conn.execute(query))


def replica_of(engine: Engine, device_id: str) -> str | None:
    """The replica a GB/T 28181 device last registered to (`gb_device.replica`; "" before
    any), None when `device_id` is no GB device: the live relay asks it on any replica, also
    where no device store runs."""
    with engine.connect() as conn:
        row = conn.execute(
            select(col(GbDevice.replica)).where(col(GbDevice.device_id) == device_id)
        ).first()
    return None if row is None else str(row[0] or "")


def liveness(row: GbDevice) -> Liveness:
    """What `devstate.judge` reads of a device's row."""
    return Liveness(row.registered_us, row.expires_us, row.last_seen_us, row.unanswered_us,
                    row.revoked_us)  # fmt: skip


def judged_channels(
    rows: Sequence[GbDevice], channels: dict[str, ChannelRow], now_us: int, timeout_s: float
) -> dict[str, ChannelState]:
    """Every channel's state from its device's row and its own Catalog status."""
    devices = {r.device_id: judge(liveness(r), now_us, timeout_s) for r in rows}
    return channel_states(devices, {k: (c.device_id, c.status) for k, c in channels.items()})
