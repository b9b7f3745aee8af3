"""Enrollment's tables (SQLModel), in the catalog database every replica shares.

`enroll_token`: single-use tokens an installer obtains for one device. Only a SHA-256 of the
token is stored (a database dump does not hand out enrollments); `used_key_fp` remembers the
key that redeemed it, so the same key asking again (a reboot mid-enrollment) gets its
certificate again and any other key is refused. `device_cert`: every certificate the
enrollment service signed, by serial, with its key fingerprint and, once revoked, when and
why; `device_revocation`: retired devices. The revocation guard on every replica reads
them from here, which is why revocation is in the database and not in a replica's memory.
"""

from __future__ import annotations

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel


class EnrollToken(SQLModel, table=True):
    __tablename__ = "enroll_token"

    token_hash: str = Field(primary_key=True, max_length=64)  # hex SHA-256 of the token
    device_id: str = Field(max_length=64, index=True)
    county: str = Field(max_length=64)
    site: str = Field(max_length=64)
    issued_by: str = Field(max_length=128)
    issued_us: int = Field(sa_type=BigInteger)
    expires_us: int = Field(sa_type=BigInteger)
    used_us: int = Field(default=0, sa_type=BigInteger)  # 0: not redeemed yet
    used_key_fp: str = Field(default="", max_length=64)  # hex SHA-256 of the SPKI
    cancelled_us: int = Field(default=0, sa_type=BigInteger)  # a newer token replaced it


class DeviceCert(SQLModel, table=True):
    __tablename__ = "device_cert"

    serial: str = Field(primary_key=True, max_length=64)  # hex
    device_id: str = Field(max_length=64, index=True)
    key_fp: str = Field(max_length=64)
    issued_us: int = Field(sa_type=BigInteger)
    not_after_us: int = Field(sa_type=BigInteger)
    revoked_us: int = Field(default=0, sa_type=BigInteger, index=True)  # 0: not revoked
    reason: str = Field(default="", max_length=256)


class DeviceRevocation(SQLModel, table=True):
    """A retired (or replaced) device: every certificate of it issued before `revoked_us` is
    refused, including ones no enrollment recorded (issued by hand with `issue-cert`)."""

    __tablename__ = "device_revocation"

    device_id: str = Field(primary_key=True, max_length=64)
    revoked_us: int = Field(sa_type=BigInteger)
    reason: str = Field(default="", max_length=256)


class InstallSite(SQLModel, table=True):
    """A site from the county's list (a village or place with its devices), registered by an
    installer of that county (`vigil-provision site add`, migration 0014). A device is added
    only to a registered site of its county."""

    __tablename__ = "install_site"

    county: str = Field(primary_key=True, max_length=64)
    site_id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=64)  # as the county's list writes it, e.g. 石门村
    township: str = Field(default="", max_length=64)
    lat: float | None = None
    lon: float | None = None
    created_by: str = Field(max_length=128)
    updated_us: int = Field(sa_type=BigInteger)


class InstallDeviceCode(SQLModel, table=True):
    """A device's GB/T 28181 code (front-end main device, type 111-130) from the county's
    list, printed on its label; one device per code."""

    __tablename__ = "install_device_code"

    device_id: str = Field(primary_key=True, max_length=64)
    gb_code: str = Field(max_length=20, unique=True)


ENROLLMENT_TABLES = [
    EnrollToken.__table__,  # type: ignore[attr-defined]
    DeviceCert.__table__,  # type: ignore[attr-defined]
    DeviceRevocation.__table__,  # type: ignore[attr-defined]
    InstallSite.__table__,  # type: ignore[attr-defined]
    InstallDeviceCode.__table__,  # type: ignore[attr-defined]
]

__all__ = [
    "ENROLLMENT_TABLES",
    "DeviceCert",
    "DeviceRevocation",
    "EnrollToken",
    "InstallDeviceCode",
    "InstallSite",
]
