"""Grant tokens and delegation chains: signatures, links, narrowing, time, revocation."""

from __future__ import annotations

import base64
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.grants.chain import verify_chain
from controller.grants.codec import (
    GRANT_DOMAIN,
    MAX_TOKEN_CHARS,
    Chain,
    Link,
    decode_token,
    encode_chain,
    encode_token,
    raw_public_key,
    sign_grant,
)
from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import HOUR_US, MINUTE_US, Operation
from controller.grants.testing import GrantKit
from protos.vigil.v1 import grants_pb2


@pytest.fixture
def kit() -> GrantKit:
    return GrantKit()


def refused(reason: Reason, fn, *args, **kwargs) -> GrantRefused:
    with pytest.raises(GrantRefused) as info:
        fn(*args, **kwargs)
    assert info.value.reason is reason, str(info.value)
    assert str(info.value).startswith(reason.value + ": ")
    return info.value


def test_a_three_link_chain_round_trips_through_a_token_and_verifies(kit: GrantKit) -> None:
    chain, _, _ = kit.chain3()
    token = encode_token(chain.links)
    again = decode_token(token)
    assert again == chain
    verified = verify_chain(again, kit.anchors, kit.now_us, frozenset())
    assert verified.leaf.holder_user == "officer-7"
    assert verified.grant_ids == chain.grant_ids


def test_verification_needs_only_public_keys(kit: GrantKit) -> None:
    chain, _, _ = kit.chain3()
    public_only = {kid: key for kid, key in kit.anchors.items()}
    assert verify_chain(chain, public_only, kit.now_us, ()).leaf == chain.leaf


def test_forged_signature_is_refused(kit: GrantKit) -> None:
    link = kit.root_link()
    forger = Ed25519PrivateKey.generate()
    forged = Link(link.body, link.raw, forger.sign(GRANT_DOMAIN + link.raw), link.key_id)
    refused(Reason.BAD_SIGNATURE, verify_chain, Chain((forged,)), kit.anchors, kit.now_us, ())


def test_altered_grant_bytes_break_the_signature(kit: GrantKit) -> None:
    link = kit.root_link()
    wider = sign_grant(replace(link.body, area_prefixes=("陇南市",)), Ed25519PrivateKey.generate())
    tampered = Link(wider.body, wider.raw, link.signature, link.key_id)
    refused(Reason.BAD_SIGNATURE, verify_chain, Chain((tampered,)), kit.anchors, kit.now_us, ())


def test_root_signed_by_an_untrusted_key_is_refused(kit: GrantKit) -> None:
    other = GrantKit(now_us=kit.now_us)
    link = other.root_link()
    err = refused(Reason.UNKNOWN_KEY, verify_chain, Chain((link,)), kit.anchors, kit.now_us, ())
    assert link.body.grant_id in err.message


def test_expired_and_not_yet_valid(kit: GrantKit) -> None:
    chain = Chain((kit.root_link(),))
    refused(Reason.EXPIRED, verify_chain, chain, kit.anchors, kit.now_us + HOUR_US, ())
    later = Chain((kit.root_link(not_before_us=kit.now_us + 10 * MINUTE_US),))
    err = refused(Reason.NOT_YET_VALID, verify_chain, later, kit.anchors, kit.now_us, ())
    assert "600 s" in err.message
    # Within the clock-skew allowance (30 s) it is accepted.
    verify_chain(later, kit.anchors, kit.now_us + 10 * MINUTE_US - 20_000_000, ())


def test_expired_ancestor_fails_the_chain_even_if_the_leaf_claims_longer(kit: GrantKit) -> None:
    chain, county, unit = kit.chain3()
    refused(Reason.EXPIRED, verify_chain, chain, kit.anchors, kit.now_us + HOUR_US + 1, ())


def test_revoked_grant_and_revoked_ancestor(kit: GrantKit) -> None:
    chain, _, _ = kit.chain3()
    err = refused(
        Reason.REVOKED, verify_chain, chain, kit.anchors, kit.now_us, {chain.leaf.grant_id}
    )
    assert "has been revoked" in err.message
    err = refused(
        Reason.REVOKED, verify_chain, chain, kit.anchors, kit.now_us, {chain.root.grant_id}
    )
    assert f"ancestor {chain.root.grant_id}" in err.message


@pytest.mark.parametrize(
    ("dimension", "overrides"),
    [
        ("scope area", {"area_prefixes": ("陇南市",)}),
        ("scope sibling area", {"area_prefixes": ("陇南市/武都区",)}),
        ("resource class", {"resource_classes": frozenset({"III"})}),  # parent: II only
        ("window start", {"footage_from_us": -1}),
        ("window end", {"footage_to_us": None}),
        ("operations", {"operations": frozenset({Operation.PLAYBACK, Operation.DOWNLOAD})}),
        ("lifetime", {"expires_us": None}),
        ("not before", {"not_before_us": -1}),
        ("download limit", {"download_limit": 0}),
        ("case", {"case_id": "other-case"}),
    ],
)
def test_a_widened_child_is_refused_in_every_dimension(
    kit: GrantKit, dimension: str, overrides: dict[str, object]
) -> None:
    county = Ed25519PrivateKey.generate()
    root = kit.root_link(
        holder_public_key=raw_public_key(county),
        resource_classes=frozenset({"II"}),
        operations=frozenset({Operation.PLAYBACK}),
        download_limit=2,
        case_id="case-1",
        not_before_us=kit.now_us - MINUTE_US,
    )
    p = root.body
    fixed = dict(overrides)
    if fixed.get("footage_from_us") == -1:
        fixed["footage_from_us"] = p.footage_from_us - 1
    if "footage_to_us" in fixed:
        fixed["footage_to_us"] = p.footage_to_us + 1
    if "expires_us" in fixed:
        fixed["expires_us"] = p.expires_us + 1
    if fixed.get("not_before_us") == -1:
        fixed["not_before_us"] = p.not_before_us - 1
    child = kit.child_of(root, county, **fixed)
    err = refused(Reason.WIDENED, verify_chain, Chain((root, child)), kit.anchors, kit.now_us, ())
    assert child.body.grant_id in err.message


def test_child_cameras_under_a_camera_scoped_parent_must_be_among_them(kit: GrantKit) -> None:
    county = Ed25519PrivateKey.generate()
    root = kit.root_link(
        holder_public_key=raw_public_key(county), camera_ids=frozenset({"a"}), area_prefixes=()
    )
    ok = kit.child_of(root, county, camera_ids=frozenset({"a"}))
    verify_chain(Chain((root, ok)), kit.anchors, kit.now_us, ())
    bad = kit.child_of(root, county, camera_ids=frozenset({"a", "b"}))
    refused(Reason.WIDENED, verify_chain, Chain((root, bad)), kit.anchors, kit.now_us, ())
    area = kit.child_of(root, county, camera_ids=frozenset(), area_prefixes=("陇南市/成县",))
    refused(Reason.WIDENED, verify_chain, Chain((root, area)), kit.anchors, kit.now_us, ())


def test_a_grant_without_holder_key_cannot_have_children(kit: GrantKit) -> None:
    root = kit.root_link()
    anyone = Ed25519PrivateKey.generate()
    child = kit.child_of(root, anyone)
    refused(Reason.NOT_DELEGABLE, verify_chain, Chain((root, child)), kit.anchors, kit.now_us, ())


def test_child_signed_by_someone_other_than_the_holder_is_refused(kit: GrantKit) -> None:
    county = Ed25519PrivateKey.generate()
    root = kit.root_link(holder_public_key=raw_public_key(county))
    child = kit.child_of(root, Ed25519PrivateKey.generate())
    refused(Reason.BAD_SIGNATURE, verify_chain, Chain((root, child)), kit.anchors, kit.now_us, ())


def test_links_must_follow_each_other(kit: GrantKit) -> None:
    county = Ed25519PrivateKey.generate()
    root = kit.root_link(holder_public_key=raw_public_key(county))
    orphan = kit.child_of(root, county, parent_id="0" * 32)
    refused(Reason.BROKEN_CHAIN, verify_chain, Chain((root, orphan)), kit.anchors, kit.now_us, ())
    impostor = kit.child_of(root, county, issuer_org="gongan")
    refused(Reason.BROKEN_CHAIN, verify_chain, Chain((root, impostor)), kit.anchors, kit.now_us, ())
    not_root = kit.child_of(root, kit.root)  # a child presented alone, signed by the root
    refused(Reason.BROKEN_CHAIN, verify_chain, Chain((not_root,)), kit.anchors, kit.now_us, ())


@pytest.mark.parametrize(
    "token",
    [
        "",
        "!!!not base64!!!",
        "AAAA",
        "a" * 10,
        "ünïcode",
        base64.urlsafe_b64encode(b"\xff" * 40).decode(),
    ],
)
def test_garbage_tokens_are_malformed(token: str) -> None:
    with pytest.raises(GrantRefused) as info:
        decode_token(token)
    assert info.value.reason in (Reason.MALFORMED,)


def test_oversized_token_is_refused_before_parsing() -> None:
    refused(Reason.OVERSIZE, decode_token, "A" * (MAX_TOKEN_CHARS + 4))


def test_too_long_a_chain_is_refused(kit: GrantKit) -> None:
    link = kit.root_link()
    refused(Reason.OVERSIZE, decode_token, encode_token([link] * 9))


def test_unknown_fields_in_a_signed_grant_are_refused(kit: GrantKit) -> None:
    body = kit.body()
    raw = sign_grant(body, kit.root).raw + b"\xf8\x01\x05"  # field 31, varint 5
    signed = grants_pb2.SignedGrant(
        grant=raw, signature=kit.root.sign(GRANT_DOMAIN + raw), key_id="0" * 16
    )
    data = grants_pb2.GrantChain(links=[signed]).SerializeToString()
    token = base64.urlsafe_b64encode(data).decode().rstrip("=")
    err = refused(Reason.MALFORMED, decode_token, token)
    assert "does not know" in err.message


def test_structurally_invalid_grants_are_refused_even_when_signed(kit: GrantKit) -> None:
    cases: list[dict[str, Any]] = [
        {"area_prefixes": (), "camera_ids": frozenset()},
        {"footage_to_us": kit.now_us - 3 * HOUR_US},
        {"operations": frozenset()},
        {"area_prefixes": ("陇南市//成县",)},
    ]
    for overrides in cases:
        body = replace(kit.body(), **overrides)
        with pytest.raises(GrantRefused) as info:
            sign_grant(body, kit.root)
        assert info.value.reason is Reason.MALFORMED


def test_a_window_over_24h_without_a_case_is_refused(kit: GrantKit) -> None:
    body = kit.body(footage_from_us=kit.now_us - 25 * HOUR_US)
    refused(Reason.CASE_REQUIRED, sign_grant, body, kit.root)
    assert sign_grant(replace(body, case_id="2026-刑-001"), kit.root).body.case_id


def test_encode_chain_is_what_decode_reads(kit: GrantKit) -> None:
    chain, _, _ = kit.chain3()
    data = encode_chain(chain.links)
    assert decode_token(base64.urlsafe_b64encode(data).decode()) == chain
