"""Pure decisions of schema versions (controller/catalog/schema.py) and of the sharing keys
replicas share through the database (controller/grants/shared_keys.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from controller.catalog.schema import (
    AHEAD,
    BEHIND,
    CURRENT,
    EMPTY,
    LEGACY,
    classify,
    refusal,
)
from controller.grants.keys import KeyFileError
from controller.grants.shared_keys import (
    ADOPT,
    CONFLICT,
    KEEP,
    NOTHING,
    PUBLISH,
    RAW,
    WRAPPED,
    decide,
    seal,
    unseal,
)

KNOWN = {"0001", "0002", "0003"}
BASE = {"device", "segment"}


@pytest.mark.parametrize(
    ("heads", "tables", "kind"),
    [
        ((), set(), EMPTY),
        ((), {"someone_elses"}, EMPTY),
        ((), {"device", "alembic_version"}, LEGACY),
        ((), {"segment"}, LEGACY),
        (("0003",), {"device"}, CURRENT),
        (("0001",), {"device"}, BEHIND),
        (("0002",), set(), BEHIND),
        (("0099",), {"device"}, AHEAD),
        (("0002", "0003"), {"device"}, AHEAD),
    ],
)
def test_schema_states(heads: tuple[str, ...], tables: set[str], kind: str) -> None:
    assert classify(heads, tables, "0003", KNOWN, BASE).kind == kind


def test_only_current_and_empty_databases_may_be_served() -> None:
    reasons = {
        kind: refusal(classify(heads, {"device"}, "0003", KNOWN, BASE))
        for kind, heads in ((CURRENT, ("0003",)), (BEHIND, ("0001",)), (AHEAD, ("0099",)))
    }
    assert reasons[CURRENT] is None
    assert refusal(classify((), set(), "0003", KNOWN, BASE)) is None
    assert "revision 0001" in str(reasons[BEHIND]) and "db upgrade" in str(reasons[BEHIND])
    assert "newer" in str(reasons[AHEAD]) and "downgrades are not supported" in str(reasons[AHEAD])
    legacy = refusal(classify((), {"device"}, "0003", KNOWN, BASE))
    assert legacy is not None and "without schema versions" in legacy and "db upgrade" in legacy


A, B = b"a" * 32, b"b" * 32


@pytest.mark.parametrize(
    ("in_db", "in_file", "made_here", "action"),
    [
        (None, None, False, NOTHING),
        (None, A, False, PUBLISH),
        (None, A, True, PUBLISH),
        (A, None, False, ADOPT),
        (A, A, False, KEEP),
        (A, A, True, KEEP),
        (A, B, True, ADOPT),  # made by `init` here, never published: the city's wins
        (A, B, False, CONFLICT),  # in use here: never rotated silently
    ],
)
def test_key_decisions(
    in_db: bytes | None, in_file: bytes | None, made_here: bool, action: str
) -> None:
    assert decide(in_db, in_file, made_here) == action


@dataclass
class Row:
    scheme: str
    value: str


def test_sealed_keys_open_only_with_their_kek_and_name() -> None:
    kek, other = b"k" * 32, b"o" * 32
    scheme, value = seal("url_hmac", A, kek)
    assert scheme == WRAPPED and A.hex() not in value
    assert unseal("url_hmac", Row(scheme, value), kek) == A
    with pytest.raises(KeyFileError, match="does not open"):
        unseal("url_hmac", Row(scheme, value), other)
    with pytest.raises(KeyFileError, match="does not open"):
        unseal("grant_root", Row(scheme, value), kek)  # a row copied under another name
    with pytest.raises(KeyFileError, match="set key_encryption_file"):
        unseal("url_hmac", Row(scheme, value), None)
    raw = seal("url_hmac", A, None)
    assert raw[0] == RAW and unseal("url_hmac", Row(*raw), None) == A
    assert seal("url_hmac", A, kek) != (scheme, value)  # a fresh nonce each time
