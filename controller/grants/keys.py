"""The controller's sharing keys on disk: `<data_dir>/keys/`, private files 0600.

    grant_root.key / .pub   Ed25519: signs root grants and revocation lists (the city's trust
                            anchor: every verifier, every county, holds grant_root.pub)
    evidence.key / .pub     Ed25519: signs export manifests and audit checkpoints (what
                            `verify-export` and `verify-audit` need)
    url_hmac.key            32 random bytes: HMAC key of short-lived segment URLs (never leaves
                            the controller replicas)

Private keys are PKCS#8 PEM (readable by openssl); public keys are raw 32 bytes in hex, one
line, easy to paste into a county's configuration. `ensure_keys` is idempotent: an existing key
is never replaced (replacing the root key would invalidate every grant in circulation).

Replicas on one database share these keys through it (`controller.grants.shared_keys`): the
keys `ensure_keys` creates are listed in `keys/unpublished` until a controller start has
published them to the database, or replaced them by the ones another replica published
first. A key not listed there (a release before shared keys, or already published) is never
replaced: a start that finds a different one in the database refuses instead.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from controller.files import write_atomic
from controller.grants.codec import raw_public_key

ROOT = "grant_root"
EVIDENCE = "evidence"
URL_HMAC = "url_hmac"
HMAC_KEY_BYTES = 32
UNPUBLISHED = "unpublished"  # names of keys made here and not yet in the database, one a line


class KeyFileError(Exception):
    """A key file is missing, unreadable or not a key of the expected kind."""


@dataclass(frozen=True, slots=True)
class SharingKeys:
    root: Ed25519PrivateKey
    evidence: Ed25519PrivateKey
    url_hmac: bytes

    @property
    def root_public(self) -> bytes:
        return raw_public_key(self.root)

    @property
    def evidence_public(self) -> bytes:
        return raw_public_key(self.evidence)


def keys_dir(data_dir: Path) -> Path:
    return data_dir / "keys"


def private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())


def load_private(path: Path) -> Ed25519PrivateKey:
    """An Ed25519 private key from a PKCS#8 PEM file; KeyFileError otherwise."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, TypeError):
        raise KeyFileError(f"{path} is not a PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path} is not an Ed25519 key")
    return key


def load_public_hex(path: Path) -> bytes:
    """A raw Ed25519 public key from a file holding its 64 hex digits; KeyFileError else."""
    try:
        text = path.read_text(encoding="ascii").strip()
        raw = bytes.fromhex(text)
    except OSError as exc:
        raise KeyFileError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, UnicodeDecodeError):
        raise KeyFileError(f"{path} does not hold a hex public key") from None
    if len(raw) != 32:
        raise KeyFileError(f"{path} holds {len(raw)} bytes, not a 32-byte Ed25519 key")
    return raw


def write_keypair(directory: Path, name: str, key: Ed25519PrivateKey) -> None:
    write_atomic(directory / f"{name}.key", private_pem(key), mode=0o600)
    write_atomic(directory / f"{name}.pub", (raw_public_key(key).hex() + "\n").encode(), 0o644)


def _ensure_pair(directory: Path, name: str) -> bool:
    path = directory / f"{name}.key"
    if path.exists():
        key = load_private(path)
        if not (directory / f"{name}.pub").exists():
            write_keypair(directory, name, key)
        return False
    write_keypair(directory, name, Ed25519PrivateKey.generate())
    return True


def ensure_keys(data_dir: Path) -> list[str]:
    """Create whichever sharing keys are missing; returns the names created."""
    directory = keys_dir(data_dir)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    created = [name for name in (ROOT, EVIDENCE) if _ensure_pair(directory, name)]
    hmac_path = directory / f"{URL_HMAC}.key"
    if not hmac_path.exists():
        write_atomic(hmac_path, secrets.token_bytes(HMAC_KEY_BYTES), mode=0o600)
        created.append(URL_HMAC)
    if created:
        mark_unpublished(data_dir, unpublished(data_dir) | set(created))
    return created


def unpublished(data_dir: Path) -> set[str]:
    """The keys made in this data dir that no database has seen yet."""
    try:
        text = (keys_dir(data_dir) / UNPUBLISHED).read_text(encoding="ascii")
    except FileNotFoundError:
        return set()
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"cannot read {keys_dir(data_dir) / UNPUBLISHED}: {exc}") from None
    return {line.strip() for line in text.splitlines() if line.strip()}


def mark_unpublished(data_dir: Path, names: set[str]) -> None:
    path = keys_dir(data_dir) / UNPUBLISHED
    if names:
        write_atomic(path, "".join(f"{n}\n" for n in sorted(names)).encode(), mode=0o600)
    else:
        path.unlink(missing_ok=True)


def load_keys(data_dir: Path) -> SharingKeys:
    """All sharing keys, or KeyFileError telling the operator to run `vigil-controller keys`."""
    directory = keys_dir(data_dir)
    if not (directory / f"{ROOT}.key").exists():
        raise KeyFileError(
            f"no sharing keys in {directory}: run `vigil-controller keys --data-dir {data_dir}`"
        )
    hmac_path = directory / f"{URL_HMAC}.key"
    try:
        url_key = hmac_path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot read {hmac_path}: {exc.strerror}") from None
    if len(url_key) != HMAC_KEY_BYTES:
        raise KeyFileError(f"{hmac_path} is not a {HMAC_KEY_BYTES}-byte key")
    return SharingKeys(
        load_private(directory / f"{ROOT}.key"),
        load_private(directory / f"{EVIDENCE}.key"),
        url_key,
    )


def evidence_public_key(path: Path | None, data_dir: Path | None) -> bytes:
    """The evidence public key from --public-key FILE, or from <data_dir>/keys."""
    if path is None:
        if data_dir is None:
            # Both commands report a KeyFileError like the ConfigError it was: exit status 2.
            raise KeyFileError("give --public-key FILE (or --data-dir DIR)")
        path = keys_dir(data_dir) / f"{EVIDENCE}.pub"
    return load_public_hex(path)
