"""Password hashing: argon2id (argon2-cffi, RFC 9106 low-memory profile: t=3, 64 MiB, p=4),
with the older scrypt hashes still verified and replaced at the next login.

New hashes are argon2id's PHC strings (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`), which
carry their parameters, so the cost can be raised later without invalidating anything:
`verify_password` reads the parameters from the hash it checks, and `needs_rehash` says when a
successful login should re-hash with today's cost (every scrypt hash, `scrypt$<log2 n>$<r>$
<p>$<salt b64>$<hash b64>` with N=2^14, is below current guidance). Callers verify a dummy
hash for unknown users (`DUMMY_HASH`) so a login's duration does not reveal whether the user
exists.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

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


ARGON2_PREFIX = "$argon2id$"


def hasher() -> PasswordHasher:
    """Today's argon2id parameters (argon2-cffi's defaults: RFC 9106 low-memory profile)."""
    return PasswordHasher()


def hash_password(password: str) -> str:
    """The stored form of a new password: argon2id (PasswordError if not acceptable)."""
    check_password_text(password)
    return hasher().hash(password)


def scrypt_hash(password: str, *, log2_n: int = LOG2_N, salt: bytes | None = None) -> str:
    """A legacy scrypt hash (only to test the upgrade of accounts made before argon2id)."""
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
    """Does `password` match `stored` (argon2id or legacy scrypt)? False (never an
    exception) for oversize input; PasswordError for a malformed stored hash."""
    if not isinstance(password, str) or len(password.encode("utf-8")) > MAX_PASSWORD_BYTES:
        return False
    if stored.startswith(ARGON2_PREFIX):
        try:
            return hasher().verify(stored, password)
        except VerifyMismatchError:
            return False
        except (VerificationError, InvalidHashError):
            raise PasswordError("stored password hash is malformed") from None
    log2_n, r, p, salt, key = _parse(stored)
    return hmac.compare_digest(_derive(password, salt, log2_n, r, p), key)


def needs_rehash(stored: str) -> bool:
    """Should a successful login replace `stored`? Every scrypt hash, and argon2id hashes
    made with weaker parameters than today's."""
    if not stored.startswith(ARGON2_PREFIX):
        return True
    try:
        return hasher().check_needs_rehash(stored)
    except (InvalidHashError, ValueError):
        return True


# Verified against when the user does not exist, so both paths cost one argon2id (a hash of
# a random password nobody knows, made with today's parameters).
DUMMY_HASH = (
    "$argon2id$v=19$m=65536,t=3,p=4$cqVD/Srl0vf/sg7FwsqtyA"
    "$qabwmIy8sDok22VRbAHPhWZ65mAa2H2x3FzEXHRBh1w"
)
