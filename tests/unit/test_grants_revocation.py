"""The signed, sequence-numbered revocation list as a verifier sees it."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.grants.errors import GrantRefused, Reason
from controller.grants.revocation import (
    LIST_VALIDITY_US,
    accept_revocation_list,
    make_view,
    require_fresh,
    sign_revocation_list,
    verify_with_list,
)
from controller.grants.testing import GrantKit, new_grant_id
from protos.vigil.v1 import grants_pb2


@pytest.fixture
def kit() -> GrantKit:
    return GrantKit()


def refused(reason: Reason, fn, *args) -> str:
    with pytest.raises(GrantRefused) as info:
        fn(*args)
    assert info.value.reason is reason, str(info.value)
    return info.value.message


def test_a_published_list_is_accepted_and_used(kit: GrantKit) -> None:
    gid = new_grant_id()
    data = sign_revocation_list(make_view(3, {gid}, kit.now_us), kit.root)
    view = accept_revocation_list(data, kit.anchors, None, kit.now_us + 1)
    assert view.sequence == 3 and gid in view.revoked
    assert require_fresh(view, kit.now_us + LIST_VALIDITY_US - 1) is view


def test_a_list_past_its_next_update_fails_closed(kit: GrantKit) -> None:
    view = make_view(1, set(), kit.now_us)
    msg = refused(Reason.REVOCATION_STALE, require_fresh, view, kit.now_us + LIST_VALIDITY_US)
    assert "60 s old" in msg
    refused(Reason.REVOCATION_STALE, require_fresh, None, kit.now_us)
    data = sign_revocation_list(view, kit.root)
    refused(
        Reason.REVOCATION_STALE,
        accept_revocation_list,
        data,
        kit.anchors,
        None,
        kit.now_us + LIST_VALIDITY_US,
    )


def test_replaying_an_older_list_cannot_unrevoke(kit: GrantKit) -> None:
    old = sign_revocation_list(make_view(4, set(), kit.now_us), kit.root)
    current = accept_revocation_list(
        sign_revocation_list(make_view(5, {new_grant_id()}, kit.now_us + 5), kit.root),
        kit.anchors,
        None,
        kit.now_us + 6,
    )
    msg = refused(
        Reason.MALFORMED, accept_revocation_list, old, kit.anchors, current, kit.now_us + 7
    )
    assert "older" in msg
    # The same sequence re-signed later is fine (lists are re-signed on every fetch).
    again = sign_revocation_list(make_view(5, current.revoked, kit.now_us + 10), kit.root)
    assert accept_revocation_list(again, kit.anchors, current, kit.now_us + 11).sequence == 5


def test_forged_unknown_and_garbage_lists_are_refused(kit: GrantKit) -> None:
    view = make_view(1, {new_grant_id()}, kit.now_us)
    other = sign_revocation_list(view, Ed25519PrivateKey.generate())
    refused(Reason.UNKNOWN_KEY, accept_revocation_list, other, kit.anchors, None, kit.now_us)
    good = grants_pb2.SignedRevocationList.FromString(sign_revocation_list(view, kit.root))
    emptied = grants_pb2.RevocationList.FromString(good.list)
    del emptied.revoked_ids[:]
    good.list = emptied.SerializeToString()
    refused(
        Reason.BAD_SIGNATURE,
        accept_revocation_list,
        good.SerializeToString(),
        kit.anchors,
        None,
        kit.now_us,
    )
    refused(
        Reason.MALFORMED, accept_revocation_list, b"\xff\x00garbage", kit.anchors, None, kit.now_us
    )
    refused(
        Reason.OVERSIZE,
        accept_revocation_list,
        b"\x00" * (8 * 1024 * 1024 + 1),
        kit.anchors,
        None,
        0,
    )
    bad_ids = sign_revocation_list(make_view(1, {"NOT-HEX"}, kit.now_us), kit.root)
    refused(Reason.MALFORMED, accept_revocation_list, bad_ids, kit.anchors, None, kit.now_us)


def test_a_sub_platform_checks_grants_offline_with_its_list(kit: GrantKit) -> None:
    chain, _, _ = kit.chain3()
    clean = accept_revocation_list(
        sign_revocation_list(make_view(1, set(), kit.now_us), kit.root),
        kit.anchors,
        None,
        kit.now_us,
    )
    assert verify_with_list(chain, kit.anchors, clean, kit.now_us).leaf == chain.leaf
    revoked = make_view(2, {chain.links[1].body.grant_id}, kit.now_us)
    refused(Reason.REVOKED, verify_with_list, chain, kit.anchors, revoked, kit.now_us)
    # Without a fresh list, nothing is accepted (a revocation could be hiding behind it).
    refused(Reason.REVOCATION_STALE, verify_with_list, chain, kit.anchors, None, kit.now_us)
    later = kit.now_us + LIST_VALIDITY_US
    refused(Reason.REVOCATION_STALE, verify_with_list, chain, kit.anchors, clean, later)
