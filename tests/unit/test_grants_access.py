"""The access decision: chain, presenter, operation, scope, entitlement, footage window."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.grants.access import AccessRequest, authorize
from controller.grants.codec import Chain, raw_public_key
from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import HOUR_US, MINUTE_US, CameraInfo, Operation
from controller.grants.testing import GrantKit


@pytest.fixture
def kit() -> GrantKit:
    return GrantKit()


def req(
    kit: GrantKit,
    camera: CameraInfo | None = None,
    op: Operation = Operation.PLAYBACK,
    start: int | None = None,
    end: int | None = None,
    org: str = "chengxian",
    user: str = "",
) -> AccessRequest:
    return AccessRequest(
        op,
        camera or kit.camera(),
        kit.now_us - HOUR_US if start is None else start,
        kit.now_us if end is None else end,
        org,
        user,
    )


def deny(kit: GrantKit, chain: Chain, request: AccessRequest, reason: Reason) -> str:
    with pytest.raises(GrantRefused) as info:
        authorize(chain, kit.anchors, kit.policy, request, frozenset(), kit.now_us)
    assert info.value.reason is reason, str(info.value)
    return info.value.message


def test_playback_inside_scope_and_window_is_granted_and_clipped(kit: GrantKit) -> None:
    chain = Chain((kit.root_link(),))
    access = authorize(
        chain,
        kit.anchors,
        kit.policy,
        req(kit, start=kit.now_us - 5 * HOUR_US, end=kit.now_us),
        (),
        kit.now_us,
    )
    assert access.from_us == chain.leaf.footage_from_us  # clipped to the grant window
    assert access.to_us == kit.now_us
    assert access.grant_id == chain.leaf.grant_id
    assert access.expires_us == chain.leaf.expires_us


def test_camera_outside_scope(kit: GrantKit) -> None:
    chain = Chain((kit.root_link(camera_ids=frozenset({"cam-01"}), area_prefixes=()),))
    msg = deny(kit, chain, req(kit, camera=kit.camera("cam-02")), Reason.CAMERA_OUT_OF_SCOPE)
    assert "cam-02" in msg


def test_camera_outside_an_ancestors_area_is_out_of_scope(kit: GrantKit) -> None:
    county = Ed25519PrivateKey.generate()
    root = kit.root_link(
        holder_public_key=raw_public_key(county), area_prefixes=("陇南市/成县/site-01",)
    )
    # The child names a camera id; statically allowed (the parent scopes by area), but the
    # camera really sits elsewhere: refused at use time.
    child = kit.child_of(root, county, camera_ids=frozenset({"cam-09"}), area_prefixes=())
    cam = kit.camera("cam-09", site="site-02")
    msg = deny(kit, Chain((root, child)), req(kit, camera=cam), Reason.CAMERA_OUT_OF_SCOPE)
    assert "ancestor" in msg


def test_resource_class_filter_applies(kit: GrantKit) -> None:
    chain = Chain((kit.root_link(resource_classes=frozenset({"III"})),))
    deny(kit, chain, req(kit, camera=kit.camera(cls="II")), Reason.CAMERA_OUT_OF_SCOPE)


def test_footage_time_outside_window(kit: GrantKit) -> None:
    chain = Chain((kit.root_link(),))
    far = kit.now_us - 10 * HOUR_US
    deny(kit, chain, req(kit, start=far, end=far + HOUR_US), Reason.OUTSIDE_WINDOW)
    deny(kit, chain, req(kit, start=kit.now_us, end=kit.now_us), Reason.BAD_REQUEST)


def test_live_needs_now_inside_the_window(kit: GrantKit) -> None:
    past_only = Chain((kit.root_link(footage_to_us=kit.now_us - MINUTE_US),))
    deny(kit, past_only, req(kit, op=Operation.LIVE), Reason.OUTSIDE_WINDOW)
    ok = Chain((kit.root_link(),))
    access = authorize(ok, kit.anchors, kit.policy, req(kit, op=Operation.LIVE), (), kit.now_us)
    assert access.from_us == kit.now_us


def test_operation_not_granted(kit: GrantKit) -> None:
    chain = Chain((kit.root_link(operations=frozenset({Operation.LIVE})),))
    msg = deny(kit, chain, req(kit, op=Operation.DOWNLOAD), Reason.OPERATION_NOT_GRANTED)
    assert "download" in msg


def test_grant_for_another_organisations_camera_is_not_entitled(kit: GrantKit) -> None:
    # Signed by the real root, scoped to a 武都区 camera, held by 成县: the policy says no.
    chain = Chain((kit.root_link(camera_ids=frozenset({"wd-1"}), area_prefixes=()),))
    cam = kit.camera("wd-1", county="武都区")
    msg = deny(kit, chain, req(kit, camera=cam), Reason.NOT_ENTITLED)
    assert "wudu" in msg and "chengxian" in msg


def test_presented_by_someone_else(kit: GrantKit) -> None:
    chain = Chain((kit.root_link(holder_user="officer-1"),))
    deny(kit, chain, req(kit, org="wudu", user="officer-1"), Reason.WRONG_HOLDER)
    deny(kit, chain, req(kit, user="officer-2"), Reason.WRONG_HOLDER)
    ok = authorize(chain, kit.anchors, kit.policy, req(kit, user="officer-1"), (), kit.now_us)
    assert ok.verified.leaf.holder_user == "officer-1"


def test_chain_problems_come_first(kit: GrantKit) -> None:
    chain, _, _ = kit.chain3()
    with pytest.raises(GrantRefused) as info:
        authorize(
            chain,
            kit.anchors,
            kit.policy,
            req(kit, user="officer-7"),
            {chain.links[1].body.grant_id},
            kit.now_us,
        )
    assert info.value.reason is Reason.REVOKED


def test_three_link_chain_grants_the_officer(kit: GrantKit) -> None:
    chain, _, _ = kit.chain3()
    access = authorize(chain, kit.anchors, kit.policy, req(kit, user="officer-7"), (), kit.now_us)
    assert access.verified.root.holder_org == "chengxian"


def test_departments_see_class_ii_and_iii_city_wide_through_grants(kit: GrantKit) -> None:
    chain = Chain(
        (
            kit.root_link(
                holder_org="gongan",
                area_prefixes=("陇南市",),
                resource_classes=frozenset({"II", "III"}),
            ),
        )
    )
    cam = kit.camera("wd-7", county="武都区", cls="III")
    access = authorize(
        chain, kit.anchors, kit.policy, req(kit, camera=cam, org="gongan"), (), kit.now_us
    )
    assert access.to_us == kit.now_us
    class_one = kit.camera("wd-8", county="武都区", cls="I")
    deny(kit, chain, req(kit, camera=class_one, org="gongan"), Reason.CAMERA_OUT_OF_SCOPE)
