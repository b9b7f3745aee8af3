"""Names of Ed25519 public keys, shared by grants, the audit log and evidence exports.

A module of its own below `grants` and `audit`: the audit chain names its signing key the way
grants do, and grants write to the audit log, so neither may hold this for the other.
"""

from __future__ import annotations

import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

KEY_ID_HEX = 16


def raw_public_key(private: Ed25519PrivateKey) -> bytes:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_raw: bytes) -> str:
    """A short, stable name for a public key: the first 64 bits of its SHA-256, in hex."""
    return hashlib.sha256(public_raw).hexdigest()[:KEY_ID_HEX]
