"""Password hashing with the standard library's scrypt (memory-hard, salted, parameters stored).

The stored form is `scrypt$<log2 n>$<r>$<p>$<salt b64>$<hash b64>`, so the cost can be raised
later without invalidating existing hashes: `verify_password` reads the parameters from the
hash it checks, and `needs_rehash` says when a login should re-hash with today's cost.
Verification is constant-time in the hash comparison; callers verify a dummy hash for unknown
users (`DUMMY_HASH`) so a login's duration does not reveal whether the user exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

LOG2_N = 14  # n = 16384: ~16 MiB and a few tens of ms per hash on this hardware
R = 8
P = 1
SALT_BYTES = 16
KEY_BYTES = 32
MIN_PASSWORD_CHARS = 8
MAX_PASSWORD_BYTES = 1024  # longer inputs are refused before any hashing work
_MAX_LOG2_N = 20


class PasswordError(ValueError):
    """A password that cannot be accepted (too short, too long) or a malformed stored hash."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _derive(password: str, salt: bytes, log2_n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=1 << log2_n,
        r=r,
        p=p,
        maxmem=(1 << log2_n) * r * 256,
        dklen=KEY_BYTES,
    )


def check_password_text(password: str) -> str:
    """The password itself if acceptable as a new password, else PasswordError."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise PasswordError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    if len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        raise PasswordError(f"a password may have at most {MAX_PASSWORD_BYTES} bytes")
    return password


def hash_password(password: str, *, log2_n: int = LOG2_N, salt: bytes | None = None) -> str:
    """The stored form of a new password (PasswordError if it is not acceptable)."""
    check_password_text(password)
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = _derive(password, salt, log2_n, R, P)
    return f"scrypt${log2_n}${R}${P}${_b64(salt)}${_b64(key)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes]:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        raise PasswordError("stored password hash is not an scrypt hash")
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt = base64.b64decode(parts[4], validate=True)
        key = base64.b64decode(parts[5], validate=True)
    except ValueError:
        raise PasswordError("stored password hash is malformed") from None
    if not (1 <= log2_n <= _MAX_LOG2_N and 1 <= r <= 32 and 1 <= p <= 16 and salt and key):
        raise PasswordError("stored password hash has unusable parameters")
    return log2_n, r, p, salt, key


def verify_password(password: str, stored: str) -> bool:
    """Does `password` match `stored`? False (never an exception) for oversize input."""
    if not isinstance(password, str) or len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        return False
    log2_n, r, p, salt, key = _parse(stored)
    return hmac.compare_digest(_derive(password, salt, log2_n, r, p), key)


def needs_rehash(stored: str, log2_n: int = LOG2_N) -> bool:
    try:
        return _parse(stored)[0] < log2_n
    except PasswordError:
        return True


# Verified against when the user does not exist, so both paths cost one scrypt.
DUMMY_HASH = f"scrypt${LOG2_N}${R}${P}${_b64(b'vigil-dummy-salt')}${_b64(bytes(KEY_BYTES))}"
