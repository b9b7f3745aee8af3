"""The sharing keys every replica must agree on, shared through the catalog database.

URL signatures and sessions (the session key is derived from the URL HMAC key), grants (the
root key) and export manifests and audit checkpoints (the evidence key) made by one replica
are checked by the others, so all replicas on one database hold the same three keys. The
database holds them (`controller_secret`, `controller.catalog.secret_store`); each replica's
`<data_dir>/keys/` is a copy, kept because the offline commands (`grant`, `verify-export`,
`keys`) and operators read the files there. At every start `sync_shared_keys`:

    database has the key  data dir has  ->
    yes                   nothing       copy it into the data dir
    yes                   the same      nothing
    yes                   another, made here and never published (keys/unpublished)
                                        replace it with the database's (nothing was ever
                                        signed with it outside this data dir's tests)
    yes                   another, in use (an earlier release's, or published)
                                        refuse to start: never rotate silently (every issued
                                        URL, session and grant would break)
    no                    a key         publish it, insert-if-absent; then as above with
                                        whatever row won (two replicas starting together)
    no                    nothing       leave it (the HTTP API then asks for
                                        `vigil-controller keys`; ingest needs no key)

Stored protection: with `key_encryption_file` set, each value is AES-256-GCM-wrapped (key
from HKDF-SHA256 of that file, the key's name as associated data), so a database dump or
backup alone does not give the keys away; raw otherwise (docs/security.md). A raw row met
with a key-encryption key configured is wrapped in place.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from controller.catalog.secret_store import SecretStore, SecretStoreError
from controller.config import ControllerConfig
from controller.files import write_atomic
from controller.grants.keys import (
    EVIDENCE,
    HMAC_KEY_BYTES,
    ROOT,
    URL_HMAC,
    KeyFileError,
    keys_dir,
    load_private,
    mark_unpublished,
    unpublished,
    write_keypair,
)
from controller.runtime import Core, StartupError

log = logging.getLogger("vigil.controller")

SHARED = (ROOT, EVIDENCE, URL_HMAC)
RAW = "raw"
WRAPPED = "aesgcm1"
KEK_MIN_BYTES = 32
_KEK_INFO = b"vigil.v1.controller-secret-kek"

# What `decide` says to do with one key.
KEEP = "keep"  # file and database agree
ADOPT = "adopt"  # write the database's key into the data dir
PUBLISH = "publish"  # offer the file's key to the database
CONFLICT = "conflict"  # file in use and different: refuse
NOTHING = "nothing"  # neither has it


class Row(Protocol):
    @property
    def scheme(self) -> str: ...

    @property
    def value(self) -> str: ...


class SecretRows(Protocol):
    """`controller.catalog.secret_store.SecretStore`."""

    def get(self, name: str) -> Row | None: ...

    def offer(self, name: str, scheme: str, value: str, now_us: int) -> Row: ...

    def rewrap(self, name: str, old_value: str, scheme: str, value: str) -> bool: ...


def decide(in_db: bytes | None, in_file: bytes | None, made_here: bool) -> str:
    """What to do with one key (the table in the module docstring). Pure."""
    if in_db is None:
        return NOTHING if in_file is None else PUBLISH
    if in_file is None:
        return ADOPT
    if in_file == in_db:
        return KEEP
    return ADOPT if made_here else CONFLICT


# --- key-encryption key ---------------------------------------------------------------------


def load_kek(path: Path) -> bytes:
    """The wrapping key from `path` (≥ 32 bytes, mode 0600 or stricter, enforced)."""
    try:
        st = path.stat()
        data = path.read_bytes().strip()
    except OSError as exc:
        raise KeyFileError(f"key_encryption_file {path}: {exc.strerror}") from None
    if stat.S_IMODE(st.st_mode) & 0o077:
        raise KeyFileError(
            f"key_encryption_file {path} has mode {stat.S_IMODE(st.st_mode):04o}: it must be "
            f"readable by its owner only (chmod 600 {path})"
        )
    if len(data) < KEK_MIN_BYTES:
        raise KeyFileError(
            f"key_encryption_file {path} holds {len(data)} bytes; give at least "
            f"{KEK_MIN_BYTES} random bytes (e.g. `head -c 48 /dev/urandom | base64 > {path}`)"
        )
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEK_INFO)
    return hkdf.derive(data)


def seal(name: str, key: bytes, kek: bytes | None) -> tuple[str, str]:
    """(scheme, stored value) of `key`."""
    if kek is None:
        return RAW, base64.b64encode(key).decode("ascii")
    nonce = secrets.token_bytes(12)
    sealed = nonce + AESGCM(kek).encrypt(nonce, key, name.encode("ascii"))
    return WRAPPED, base64.b64encode(sealed).decode("ascii")


def unseal(name: str, row: Row, kek: bytes | None) -> bytes:
    """The key a stored row holds; KeyFileError saying why it cannot be read."""
    try:
        data = base64.b64decode(row.value, validate=True)
    except (binascii.Error, ValueError):
        raise KeyFileError(
            f"controller_secret {name!r} is not base64: the row is damaged"
        ) from None
    if row.scheme == RAW:
        return data
    if row.scheme != WRAPPED:
        raise KeyFileError(f"controller_secret {name!r} has unknown scheme {row.scheme!r}")
    if kek is None:
        raise KeyFileError(
            f"the shared key {name!r} in the database is wrapped: set key_encryption_file to "
            "the key-encryption file the other replicas use"
        )
    try:
        return AESGCM(kek).decrypt(data[:12], data[12:], name.encode("ascii"))
    except InvalidTag:
        raise KeyFileError(
            f"the shared key {name!r} in the database does not open with key_encryption_file: "
            "it was wrapped with another key-encryption file"
        ) from None


# --- files ----------------------------------------------------------------------------------


def _raw_private(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes_raw()


def read_file_key(data_dir: Path, name: str) -> bytes | None:
    """The key `name` in the data dir as raw bytes (Ed25519: the 32-byte seed); None when
    its file does not exist."""
    path = keys_dir(data_dir) / f"{name}.key"
    if not path.exists():
        return None
    if name == URL_HMAC:
        data = path.read_bytes()
        if len(data) != HMAC_KEY_BYTES:
            raise KeyFileError(f"{path} is not a {HMAC_KEY_BYTES}-byte key")
        return data
    return _raw_private(load_private(path))


def write_file_key(data_dir: Path, name: str, key: bytes) -> None:
    directory = keys_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    if name == URL_HMAC:
        write_atomic(directory / f"{name}.key", key, mode=0o600)
    else:
        write_keypair(directory, name, Ed25519PrivateKey.from_private_bytes(key))


def _check_length(name: str, key: bytes) -> bytes:
    want = HMAC_KEY_BYTES if name == URL_HMAC else 32
    if len(key) != want:
        raise KeyFileError(f"the shared key {name!r} in the database is not {want} bytes")
    return key


# --- the start-up step ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SyncReport:
    published: tuple[str, ...] = ()  # this data dir's keys, now the city's
    adopted: tuple[str, ...] = ()  # the city's keys, now in this data dir
    wrapped: tuple[str, ...] = ()  # raw rows wrapped with the key-encryption key
    raw: bool = False  # some key is stored unwrapped

    def lines(self) -> list[str]:
        out = []
        if self.published:
            out.append(f"published sharing keys {', '.join(self.published)} to the database")
        if self.adopted:
            out.append(f"took sharing keys {', '.join(self.adopted)} from the database")
        if self.wrapped:
            out.append(f"wrapped sharing keys {', '.join(self.wrapped)} in the database")
        return out


def sync_shared_keys(
    rows: SecretRows, data_dir: Path, kek: bytes | None, now_us: int
) -> SyncReport:
    """Make `data_dir/keys` hold the database's sharing keys, publishing its own where the
    database has none (module docstring). KeyFileError when a key in use differs."""
    fresh = unpublished(data_dir)
    published: list[str] = []
    adopted: list[str] = []
    wrapped: list[str] = []
    raw = False
    for name in SHARED:
        in_file = read_file_key(data_dir, name)
        row = rows.get(name)
        in_db = None if row is None else _check_length(name, unseal(name, row, kek))
        action = decide(in_db, in_file, name in fresh)
        if action == PUBLISH and in_file is not None:
            scheme, value = seal(name, in_file, kek)
            row = rows.offer(name, scheme, value, now_us)
            in_db = _check_length(name, unseal(name, row, kek))
            action = decide(in_db, in_file, name in fresh)
            if action == KEEP:
                published.append(name)
        if action == NOTHING:
            continue
        if action == CONFLICT:
            path = keys_dir(data_dir) / f"{name}.key"
            raise KeyFileError(
                f"{path} differs from the shared {name} key in the database (published by "
                "another controller on this database). It is not replaced: whatever it signed "
                "would stop verifying. If this controller's keys were never used, move "
                f"{path} away and start again to take the database's; if they are the ones "
                "in use, point this controller at its own database (docs/operations.md)"
            )
        if action == ADOPT and in_db is not None:
            write_file_key(data_dir, name, in_db)
            adopted.append(name)
        if row is not None and kek is not None and row.scheme == RAW and in_db is not None:
            scheme, value = seal(name, in_db, kek)
            if rows.rewrap(name, row.value, scheme, value):
                wrapped.append(name)
        elif row is not None and row.scheme == RAW:
            raw = True
    if fresh:
        mark_unpublished(data_dir, set())
    return SyncReport(tuple(published), tuple(adopted), tuple(wrapped), raw)


def sync_for_command(rows: SecretRows, config: ControllerConfig, now_us: int) -> SyncReport:
    """Before an offline command signs with `<data_dir>/keys` (`grant mint`, `grant revoke`,
    `keys --config`): the same step as at start-up, so it signs with the city's keys and not
    with keys only this data dir knows (a replica never started yet, or a copy). KeyFileError
    naming the problem (a key in use that differs, an unreadable key-encryption file, a
    database without the shared keys' table). `rows`: the database's (SecretStore)."""
    try:
        kek = load_kek(Path(config.key_encryption_file)) if config.key_encryption_file else None
        return sync_shared_keys(rows, config.data_path, kek, now_us)
    except (OSError, SecretStoreError) as exc:
        raise KeyFileError(f"sharing keys: {exc}") from exc


def share_keys(core: Core) -> SyncReport:
    """At start-up, before anything loads a key: the data dir's sharing keys made the same
    as every replica's on this database. StartupError when they cannot be."""
    config = core.config
    try:
        kek = load_kek(Path(config.key_encryption_file)) if config.key_encryption_file else None
        report = sync_shared_keys(
            SecretStore(core.engine), config.data_path, kek, core.clock.now_us()
        )
    except (KeyFileError, OSError, SecretStoreError) as exc:
        raise StartupError(f"sharing keys: {exc}") from exc
    for line in report.lines():
        log.info("%s", line)
    if report.raw:
        log.info("sharing keys are stored unwrapped in the database (key_encryption_file unset)")
    return report


__all__ = [
    "ADOPT",
    "CONFLICT",
    "KEEP",
    "NOTHING",
    "PUBLISH",
    "SHARED",
    "SyncReport",
    "decide",
    "sync_for_command",
    "load_kek",
    "seal",
    "share_keys",
    "sync_shared_keys",
    "unseal",
]
