"""Enrollment state in the shared database: tokens, issued certificates, revocations.

Every write is one transaction (on SQLite BEGIN IMMEDIATE, like the catalog's writes), and a
token is redeemed with a conditional UPDATE (`used_us = 0` in the WHERE clause): two replicas
handed the same token at the same moment sign for at most one key. The decisions themselves
are in rules.py; this module only reads rows into facts and writes outcomes.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import and_, select, update
from sqlalchemy.engine import Connection, Engine

from controller.catalog.db import WRITE_OPTION
from controller.enrollment.rules import (
    CertFacts,
    Grant,
    Revocations,
    TokenFacts,
    hash_token,
    judge_token,
)
from controller.enrollment.siterules import Site
from controller.enrollment.tables import (
    DeviceCert,
    DeviceRevocation,
    EnrollToken,
    InstallDeviceCode,
    InstallSite,
)

TOKEN_BYTES = 24  # 32 URL-safe characters


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str  # shown once, to the installer; only its hash is stored
    device_id: str
    expires_us: int


class EnrollmentStore:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._engine.connect() as conn:
            conn.execution_options(**{WRITE_OPTION: True})
            with conn.begin():
                yield conn

    def issue_token(
        self, device_id: str, county: str, site: str, issued_by: str, now_us: int, ttl_s: float
    ) -> IssuedToken:
        """A new single-use token for `device_id`; earlier unused ones of it are cancelled,
        so at most one token per device can enroll at a time."""
        token = secrets.token_urlsafe(TOKEN_BYTES)
        expires = now_us + int(ttl_s * 1_000_000)
        t = EnrollToken.__table__  # type: ignore[attr-defined]
        with self._write() as conn:
            conn.execute(
                update(t)
                .where(and_(t.c.device_id == device_id, t.c.used_us == 0, t.c.cancelled_us == 0))
                .values(cancelled_us=now_us)
            )
            conn.execute(
                t.insert().values(
                    token_hash=hash_token(token),
                    device_id=device_id,
                    county=county,
                    site=site,
                    issued_by=issued_by,
                    issued_us=now_us,
                    expires_us=expires,
                    used_us=0,
                    used_key_fp="",
                    cancelled_us=0,
                )
            )
        return IssuedToken(token, device_id, expires)

    def redeem(self, token: str, device_id: str, key_fp: str, now_us: int) -> Grant:
        """Judge the token (rules.judge_token) and, the first time, mark it used by this key.
        EnrollError when refused; nothing changes then."""
        t = EnrollToken.__table__  # type: ignore[attr-defined]
        digest = hash_token(token)
        with self._write() as conn:
            row = conn.execute(select(t).where(t.c.token_hash == digest)).first()
            facts = (
                None
                if row is None
                else TokenFacts(
                    row.device_id, row.expires_us, row.used_us, row.used_key_fp, row.cancelled_us
                )
            )
            grant = judge_token(facts, device_id, key_fp, now_us)
            if grant is Grant.FIRST:
                done = conn.execute(
                    update(t)
                    .where(and_(t.c.token_hash == digest, t.c.used_us == 0))
                    .values(used_us=now_us, used_key_fp=key_fp)
                )
                if done.rowcount != 1:  # another replica redeemed it in between: judge again
                    return self.redeem(token, device_id, key_fp, now_us)
        return grant

    def certs_of(self, device_id: str) -> list[CertFacts]:
        c = DeviceCert.__table__  # type: ignore[attr-defined]
        with self._engine.connect() as conn:
            rows = conn.execute(select(c).where(c.c.device_id == device_id)).all()
        return [CertFacts(r.serial, r.key_fp, r.not_after_us, r.revoked_us) for r in rows]

    def retired(self, device_id: str) -> bool:
        r = DeviceRevocation.__table__  # type: ignore[attr-defined]
        with self._engine.connect() as conn:
            return conn.execute(select(r).where(r.c.device_id == device_id)).first() is not None

    def record_cert(
        self, serial: str, device_id: str, key_fp: str, now_us: int, not_after_us: int
    ) -> None:
        c = DeviceCert.__table__  # type: ignore[attr-defined]
        with self._write() as conn:
            conn.execute(
                c.insert().values(
                    serial=serial,
                    device_id=device_id,
                    key_fp=key_fp,
                    issued_us=now_us,
                    not_after_us=not_after_us,
                    revoked_us=0,
                    reason="",
                )
            )

    def retire(self, device_id: str, reason: str, now_us: int) -> int:
        """Revoke every certificate of the device at once (recorded ones by serial, any other
        by the cutoff) and cancel its unused tokens. Returns how many recorded certificates
        were revoked. Idempotent."""
        c = DeviceCert.__table__  # type: ignore[attr-defined]
        t = EnrollToken.__table__  # type: ignore[attr-defined]
        r = DeviceRevocation.__table__  # type: ignore[attr-defined]
        with self._write() as conn:
            done = conn.execute(
                update(c)
                .where(and_(c.c.device_id == device_id, c.c.revoked_us == 0))
                .values(revoked_us=now_us, reason=reason[:256])
            )
            conn.execute(
                update(t)
                .where(and_(t.c.device_id == device_id, t.c.used_us == 0, t.c.cancelled_us == 0))
                .values(cancelled_us=now_us)
            )
            if conn.execute(select(r).where(r.c.device_id == device_id)).first() is None:
                conn.execute(
                    r.insert().values(device_id=device_id, revoked_us=now_us, reason=reason[:256])
                )
            else:
                conn.execute(
                    update(r)
                    .where(r.c.device_id == device_id)
                    .values(revoked_us=now_us, reason=reason[:256])
                )
        return int(done.rowcount or 0)

    def revocations(self, now_us: int) -> Revocations:
        """What the guard refuses now (expired certificates need no entry)."""
        c = DeviceCert.__table__  # type: ignore[attr-defined]
        r = DeviceRevocation.__table__  # type: ignore[attr-defined]
        with self._engine.connect() as conn:
            serials = conn.execute(
                select(c.c.serial).where(and_(c.c.revoked_us > 0, c.c.not_after_us > now_us))
            ).all()
            cutoffs = conn.execute(select(r.c.device_id, r.c.revoked_us)).all()
        return Revocations(
            frozenset(s for (s,) in serials), {d: int(u) for d, u in cutoffs} or None
        )

    # Sites and device codes (`vigil-provision site add`, `device add --gb-code`).

    def save_site(self, site: Site, by: str, now_us: int) -> None:
        """Register the site, or update its name and place (same county and id)."""
        t = InstallSite.__table__  # type: ignore[attr-defined]
        values = {"name": site.name, "township": site.township, "lat": site.lat,
                  "lon": site.lon, "created_by": by[:128], "updated_us": now_us}  # fmt: skip
        key = and_(t.c.county == site.county, t.c.site_id == site.site_id)
        with self._write() as conn:
            if conn.execute(select(t.c.site_id).where(key)).first() is None:
                conn.execute(t.insert().values(county=site.county, site_id=site.site_id, **values))
            else:
                conn.execute(update(t).where(key).values(**values))

    def site(self, county: str, site_id: str) -> Site | None:
        t = InstallSite.__table__  # type: ignore[attr-defined]
        key = and_(t.c.county == county, t.c.site_id == site_id)
        with self._engine.connect() as conn:
            r = conn.execute(select(t).where(key)).first()
        return None if r is None else Site(r.county, r.site_id, r.name, r.township, r.lat, r.lon)

    def sites(self, county: str) -> list[Site]:
        t = InstallSite.__table__  # type: ignore[attr-defined]
        with self._engine.connect() as conn:
            rows = conn.execute(select(t).where(t.c.county == county).order_by(t.c.site_id)).all()
        return [Site(r.county, r.site_id, r.name, r.township, r.lat, r.lon) for r in rows]

    def device_code(self, device_id: str) -> str:
        t = InstallDeviceCode.__table__  # type: ignore[attr-defined]
        with self._engine.connect() as conn:
            row = conn.execute(select(t.c.gb_code).where(t.c.device_id == device_id)).first()
        return "" if row is None else str(row[0])

    def code_holder(self, gb_code: str) -> str | None:
        t = InstallDeviceCode.__table__  # type: ignore[attr-defined]
        with self._engine.connect() as conn:
            row = conn.execute(select(t.c.device_id).where(t.c.gb_code == gb_code)).first()
        return None if row is None else str(row[0])

    def set_device_code(self, device_id: str, gb_code: str) -> None:
        """The device's code (replacing its earlier one); the caller checked it is free."""
        t = InstallDeviceCode.__table__  # type: ignore[attr-defined]
        with self._write() as conn:
            conn.execute(t.delete().where(t.c.device_id == device_id))
            conn.execute(t.insert().values(device_id=device_id, gb_code=gb_code))
