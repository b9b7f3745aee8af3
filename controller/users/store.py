"""Control-centre accounts on the controller's database (SQLite or PostgreSQL).

One table, `user_account`: the user id, organisation and role that every grant decision uses
(`controller.grants.policy.User`), an argon2id password hash (older scrypt ones are upgraded
at login), a disabled flag and a
`session_version` that ends every outstanding session when bumped (password change, disable).
Only this table is created here, idempotently, so the store can be opened on a catalog engine
made before this module was imported.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sqlalchemy import BigInteger, Table, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlmodel import Field, SQLModel

from controller.clock import Clock
from controller.grants.policy import Policy, Role, User
from controller.users.passwords import (
    DUMMY_HASH,
    PasswordError,
    hash_password,
    needs_rehash,
    verify_password,
)

USER_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
MAX_NAME_CHARS = 128


class UserError(Exception):
    """A user cannot be created or changed as asked; the message says why."""


class UserAccountRow(SQLModel):
    user_id: str = Field(primary_key=True, max_length=64)
    org_id: str = Field(max_length=128, index=True)
    role: str = Field(max_length=16)
    display_name: str = Field(default="", max_length=MAX_NAME_CHARS)
    password_hash: str = Field(max_length=256)
    disabled: bool = False
    session_version: int = Field(default=1)
    created_at_us: int = Field(default=0, sa_type=BigInteger)
    updated_at_us: int = Field(default=0, sa_type=BigInteger)
    last_login_us: int = Field(default=0, sa_type=BigInteger)

    def as_user(self) -> User:
        """The identity grant decisions use."""
        return User(self.user_id, self.org_id, Role(self.role))


class UserAccount(UserAccountRow, table=True):
    __tablename__ = "user_account"


TABLE: Table = UserAccount.__table__  # type: ignore[attr-defined]
WRITE_OPTION = "vigil_write"  # the catalog engine's hint: BEGIN IMMEDIATE on SQLite


def check_user_id(user_id: str) -> str:
    if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
        raise UserError(
            "user id must be 1..64 characters of letters, digits and ._@- "
            "(starting with a letter or digit)"
        )
    return user_id


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        allowed = ", ".join(r.value for r in Role)
        raise UserError(f"role {role!r} is not one of {allowed}") from None


class UserStore:
    """Accounts: create, look up, authenticate, change password, disable (the table is
    made by the schema migrations)."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self._engine = engine
        self._clock = clock

    def _row(self, mapping: object) -> UserAccountRow:
        return UserAccountRow.model_validate(dict(mapping._mapping))  # type: ignore[attr-defined]

    def create(
        self,
        user_id: str,
        org_id: str,
        role: str,
        password: str,
        *,
        display_name: str = "",
        policy: Policy | None = None,
    ) -> UserAccountRow:
        """A new account; UserError for a bad id, role, organisation, password or duplicate."""
        check_user_id(user_id)
        check_role(role)
        if policy is not None and org_id not in policy.organisations:
            raise UserError(f"organisation {org_id!r} is not in the policy")
        if not org_id or len(org_id) > 128 or not org_id.isprintable():
            raise UserError("organisation id is empty, too long or unprintable")
        if len(display_name) > MAX_NAME_CHARS or not display_name.isprintable():
            raise UserError(f"display name longer than {MAX_NAME_CHARS} or unprintable")
        try:
            hashed = hash_password(password)
        except PasswordError as exc:
            raise UserError(str(exc)) from None
        now = self._clock.now_us()
        row = UserAccountRow(
            user_id=user_id,
            org_id=org_id,
            role=role,
            display_name=display_name,
            password_hash=hashed,
            created_at_us=now,
            updated_at_us=now,
        )
        try:
            with self._engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
                with conn.begin():
                    conn.execute(insert(TABLE).values(**row.model_dump()))
        except IntegrityError:
            raise UserError(f"user {user_id!r} already exists") from None
        except SQLAlchemyError as exc:
            raise UserError(f"cannot store user {user_id!r}: {exc}") from exc
        return row

    def get(self, user_id: str) -> UserAccountRow | None:
        if not isinstance(user_id, str) or not USER_ID.fullmatch(user_id):
            return None
        with self._engine.connect() as conn:
            found = conn.execute(select(TABLE).where(TABLE.c.user_id == user_id)).first()
        return None if found is None else self._row(found)

    def list(self, org_id: str | None = None) -> Sequence[UserAccountRow]:
        query = select(TABLE).order_by(TABLE.c.user_id)
        if org_id is not None:
            query = query.where(TABLE.c.org_id == org_id)
        with self._engine.connect() as conn:
            return [self._row(r) for r in conn.execute(query)]

    def authenticate(self, user_id: str, password: str) -> UserAccountRow | None:
        """The account when the password matches and the account is enabled, else None.

        Unknown and disabled accounts cost the same KDF as known ones (no timing oracle); a
        hash below today's parameters (scrypt) is replaced by argon2id on success."""
        row = self.get(user_id)
        if row is None or row.disabled:
            verify_password(password, DUMMY_HASH)
            return None
        try:
            ok = verify_password(password, row.password_hash)
        except PasswordError:
            return None
        if not ok:
            return None
        values: dict[str, object] = {"last_login_us": self._clock.now_us()}
        if needs_rehash(row.password_hash):  # e.g. a scrypt hash from before argon2id
            values["password_hash"] = hash_password(password)
        self._update(user_id, **values)
        return row

    def _update(self, user_id: str, **values: object) -> None:
        with self._engine.connect().execution_options(**{WRITE_OPTION: True}) as conn:
            with conn.begin():
                done = conn.execute(
                    update(TABLE).where(TABLE.c.user_id == user_id).values(**values)
                )
        if done.rowcount != 1:
            raise UserError(f"user {user_id!r} does not exist")

    def set_password(self, user_id: str, password: str) -> None:
        """Replace the password; every session issued before ends."""
        try:
            hashed = hash_password(password)
        except PasswordError as exc:
            raise UserError(str(exc)) from None
        self._update(
            user_id,
            password_hash=hashed,
            session_version=TABLE.c.session_version + 1,
            updated_at_us=self._clock.now_us(),
        )

    def set_disabled(self, user_id: str, disabled: bool) -> None:
        """Disable (or re-enable) an account; disabling ends every session at once."""
        self._update(
            user_id,
            disabled=disabled,
            session_version=TABLE.c.session_version + 1,
            updated_at_us=self._clock.now_us(),
        )


def create_user(
    engine: Engine,
    clock: Clock,
    user_id: str,
    org_id: str,
    role: str,
    password: str,
    *,
    display_name: str = "",
    policy: Policy | None = None,
) -> UserAccountRow:
    """Create one account (for `vigil-controller user add` and tests); UserError if refused."""
    return UserStore(engine, clock).create(
        user_id, org_id, role, password, display_name=display_name, policy=policy
    )
