"""Minting, delegating and renewing grants: defaults, limits, entitlement, narrowing."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controller.grants.codec import raw_public_key
from controller.grants.errors import GrantRefused, Reason
from controller.grants.mint import GrantRequest, plan_child_grant, plan_renewal, plan_root_grant
from controller.grants.model import DAY_US, HOUR_US, MINUTE_US, Operation
from controller.grants.policy import Role, User
from controller.grants.testing import GrantKit, new_grant_id

LIVE, PLAY, DOWN = Operation.LIVE, Operation.PLAYBACK, Operation.DOWNLOAD
OFFICER = User("officer-1", "chengxian", Role.OPERATOR)
VIEWER = User("viewer-1", "chengxian", Role.VIEWER)
CITY_ADMIN = User("admin", "city", Role.ADMIN)


@pytest.fixture
def kit() -> GrantKit:
    return GrantKit()


def request(kit: GrantKit, **overrides: object) -> GrantRequest:
    base = GrantRequest(
        holder_org="chengxian",
        holder_user="officer-1",
        operations=frozenset({PLAY}),
        footage_from_us=kit.now_us - 2 * HOUR_US,
        footage_to_us=kit.now_us,
        purpose="patrol review",
        camera_ids=frozenset({"cam-01"}),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def mint(kit: GrantKit, req: GrantRequest, who: User = OFFICER):
    cams = {c: kit.camera(c) for c in ("cam-01", "cam-02")}
    cams["wd-1"] = kit.camera("wd-1", county="武都区")
    return plan_root_grant(kit.policy, who, req, cams, kit.now_us, new_grant_id())


def refused(reason: Reason, fn, *args) -> str:
    with pytest.raises(GrantRefused) as info:
        fn(*args)
    assert info.value.reason is reason, str(info.value)
    return info.value.message


@pytest.mark.parametrize(
    ("ops", "lifetime"),
    [({LIVE}, 15 * MINUTE_US), ({PLAY}, HOUR_US), ({DOWN}, DAY_US), ({LIVE, PLAY}, 15 * MINUTE_US)],
)
def test_default_lifetimes(kit: GrantKit, ops: set[Operation], lifetime: int) -> None:
    body = mint(kit, request(kit, operations=frozenset(ops)))
    assert body.expires_us - body.not_before_us == lifetime
    assert body.issuer_org == "city" and not body.parent_id


def test_downloads_default_to_single_use(kit: GrantKit) -> None:
    assert mint(kit, request(kit, operations=frozenset({DOWN}))).download_limit == 1
    assert mint(kit, request(kit)).download_limit == 0
    refused(Reason.BAD_REQUEST, mint, kit, request(kit, download_limit=2))


def test_lifetime_beyond_the_default_is_refused(kit: GrantKit) -> None:
    refused(Reason.BAD_REQUEST, mint, kit, request(kit, lifetime_us=HOUR_US + 1))
    assert mint(kit, request(kit, lifetime_us=10 * MINUTE_US)).lifetime_us == 10 * MINUTE_US


def test_windows_over_24h_need_a_case(kit: GrantKit) -> None:
    long = request(kit, footage_from_us=kit.now_us - 2 * DAY_US)
    refused(Reason.CASE_REQUIRED, mint, kit, long)
    assert mint(kit, replace(long, case_id="CX-2026-17")).case_id == "CX-2026-17"


def test_another_organisations_camera_cannot_be_minted(kit: GrantKit) -> None:
    msg = refused(Reason.NOT_ENTITLED, mint, kit, request(kit, camera_ids=frozenset({"wd-1"})))
    assert "wudu" in msg
    refused(
        Reason.NOT_ENTITLED,
        mint,
        kit,
        request(kit, camera_ids=frozenset(), area_prefixes=("陇南市/武都区",)),
    )


def test_unknown_cameras_and_bad_requests(kit: GrantKit) -> None:
    refused(Reason.BAD_REQUEST, mint, kit, request(kit, camera_ids=frozenset({"nope"})))
    refused(Reason.BAD_REQUEST, mint, kit, request(kit, purpose="  "))
    refused(Reason.BAD_REQUEST, mint, kit, request(kit, operations=frozenset()))
    refused(Reason.BAD_REQUEST, mint, kit, request(kit, footage_to_us=kit.now_us - 3 * HOUR_US))
    refused(Reason.BAD_REQUEST, mint, kit, request(kit, camera_ids=frozenset()))
    refused(Reason.BAD_REQUEST, mint, kit, request(kit, not_before_us=kit.now_us - HOUR_US))
    refused(Reason.BAD_REQUEST, mint, kit, request(kit, holder_org="atlantis"), CITY_ADMIN)
    refused(Reason.BAD_REQUEST, mint, kit, request(kit, area_prefixes=("陇南市/成县/",)))


def test_roles_limit_operations_and_who_may_mint_for_whom(kit: GrantKit) -> None:
    refused(Reason.ROLE_NOT_ALLOWED, mint, kit, request(kit, operations=frozenset({DOWN})), VIEWER)
    installer = User("i-1", "chengxian", Role.INSTALLER)
    refused(Reason.ROLE_NOT_ALLOWED, mint, kit, request(kit), installer)
    refused(Reason.ROLE_NOT_ALLOWED, mint, kit, request(kit, holder_org="wudu"))
    key = raw_public_key(Ed25519PrivateKey.generate())
    refused(Reason.ROLE_NOT_ALLOWED, mint, kit, request(kit, holder_public_key=key))
    body = mint(kit, request(kit, holder_public_key=key, holder_user=""), CITY_ADMIN)
    assert body.delegable and body.lifetime_us == 30 * DAY_US


def test_departments_get_their_classes_filled_in(kit: GrantKit) -> None:
    admin = User("ga-admin", "gongan", Role.ADMIN)
    req = request(kit, holder_org="gongan", camera_ids=frozenset(), area_prefixes=("陇南市",))
    assert mint(kit, req, admin).resource_classes == frozenset({"II", "III"})
    refused(Reason.NOT_ENTITLED, mint, kit, replace(req, resource_classes=frozenset({"I"})), admin)


def test_delegation_narrows_and_refuses_widening(kit: GrantKit) -> None:
    county_key = Ed25519PrivateKey.generate()
    parent = mint(
        kit,
        request(
            kit,
            holder_user="",
            holder_public_key=raw_public_key(county_key),
            camera_ids=frozenset(),
            area_prefixes=("陇南市/成县",),
            operations=frozenset({PLAY, DOWN}),
            download_limit=3,
        ),
        CITY_ADMIN,
    )
    child_req = request(kit, operations=frozenset({DOWN}), camera_ids=frozenset({"cam-01"}))
    child = plan_child_grant(parent, child_req, kit.now_us, new_grant_id(), kit.policy)
    assert child.parent_id == parent.grant_id and child.issuer_org == "chengxian"
    assert child.download_limit == 1 and child.lifetime_us == DAY_US
    assert child.expires_us <= parent.expires_us
    wider = replace(child_req, operations=frozenset({LIVE}))
    refused(Reason.WIDENED, plan_child_grant, parent, wider, kit.now_us, new_grant_id(), kit.policy)
    too_long = replace(child_req, lifetime_us=31 * DAY_US)
    refused(
        Reason.WIDENED, plan_child_grant, parent, too_long, kit.now_us, new_grant_id(), kit.policy
    )
    elsewhere = replace(child_req, camera_ids=frozenset(), area_prefixes=("陇南市/武都区",))
    refused(
        Reason.WIDENED, plan_child_grant, parent, elsewhere, kit.now_us, new_grant_id(), kit.policy
    )


def test_a_non_delegable_grant_cannot_delegate(kit: GrantKit) -> None:
    parent = mint(kit, request(kit))
    refused(
        Reason.NOT_DELEGABLE,
        plan_child_grant,
        parent,
        request(kit),
        kit.now_us,
        new_grant_id(),
        kit.policy,
    )


def test_live_renewal_keeps_the_id_and_adds_fifteen_minutes(kit: GrantKit) -> None:
    live = mint(kit, request(kit, operations=frozenset({LIVE})))
    later = kit.now_us + 10 * MINUTE_US
    renewed = plan_renewal(live, None, kit.policy, later)
    assert renewed.grant_id == live.grant_id and renewed.renewal == 1
    assert renewed.expires_us == later + 15 * MINUTE_US
    refused(Reason.EXPIRED, plan_renewal, live, None, kit.policy, live.expires_us)
    playback = mint(kit, request(kit))
    refused(Reason.BAD_REQUEST, plan_renewal, playback, None, kit.policy, later)
    parent = replace(live, expires_us=later + MINUTE_US)
    assert plan_renewal(live, parent, kit.policy, later).expires_us == later + MINUTE_US
