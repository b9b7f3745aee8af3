"""GB/T 28181 device access's table (SQLModel), in the catalog database every replica shares.

`gb_device`: each NVR or camera allowed to REGISTER to Vigil over GB/T 28181, by its 20-digit
code. Only the digest's HA1 (MD5 of `code:realm:password`) is stored, never the password: it
is what verifying a digest needs, and it is useless for any other realm. Registration facts
(when, from where, until when, to which replica, how many channels its Catalog listed) are
written on REGISTER and on each Catalog answer; keepalives at most every 30 s (`last_seen_us`),
so the fleet view of any replica can tell a live device from a silent one (revision 0017).

`gb_channel`: each video channel's own `Status` as the device's last Catalog answer listing it
said (on, off, unknown) and when (revision 0018): an NVR online with one camera unplugged
reports that channel OFF, and the channel is shown and reported upward as offline.
"""

from __future__ import annotations

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel


class GbDevice(SQLModel, table=True):
    __tablename__ = "gb_device"

    device_id: str = Field(primary_key=True, max_length=20)  # the device's 20-digit code
    ha1: str = Field(max_length=32)  # hex MD5(device_id:realm:password)
    realm: str = Field(max_length=64)
    county: str = Field(max_length=64)  # where its channels go in the catalog and tree
    site: str = Field(max_length=64)
    issued_us: int = Field(sa_type=BigInteger)
    revoked_us: int = Field(default=0, sa_type=BigInteger)  # > 0: refused from then on
    registered_us: int = Field(default=0, sa_type=BigInteger)  # 0: never registered
    expires_us: int = Field(default=0, sa_type=BigInteger)
    contact: str = Field(default="", max_length=64)  # host:port it registered from
    channels: int = Field(default=0)
    last_seen_us: int = Field(default=0, sa_type=BigInteger)  # its last REGISTER or keepalive
    unanswered_us: int = Field(default=0, sa_type=BigInteger)  # > 0: an INVITE went unanswered
    replica: str = Field(default="", max_length=100)  # the replica it registered to


class GbChannel(SQLModel, table=True):
    __tablename__ = "gb_channel"

    camera_id: str = Field(primary_key=True, max_length=20)  # the channel's 20-digit code
    device_id: str = Field(max_length=20)  # the device whose Catalog listed it
    status: str = Field(default="unknown", max_length=8)  # on, off, unknown
    reported_us: int = Field(default=0, sa_type=BigInteger)  # that Catalog answer's arrival


GB_TABLES = [GbDevice.__table__, GbChannel.__table__]  # type: ignore[attr-defined]
