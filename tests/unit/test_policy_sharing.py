"""Cross-organisation requests: who may ask and approve, the grant an approval mints, the
owner's-consent rule at access time, and the state of a request (pure)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from controller.grants.access import AccessRequest, authorize
from controller.grants.codec import Chain, anchors_from, raw_public_key, sign_grant
from controller.grants.errors import GrantRefused, Reason
from controller.grants.model import DAY_US, HOUR_US, CameraInfo, Operation
from controller.grants.policy import Role, User, default_policy, policy_from_mapping
from controller.grants.policy_sharing import (
    Decision,
    RequestState,
    ShareAsk,
    ask_detail,
    ask_from,
    body_detail,
    body_from,
    check_approver,
    check_ask,
    fold,
    owner_shared,
    plan_approved_share,
)
from controller.grants.testing import GrantKit

POLICY = default_policy()
T0 = 1_767_225_600_000_000
NOW = T0 + 2 * HOUR_US
CX_CAM = CameraInfo("cam-01", "陇南市/成县/site-01/cam-01", "I", "chengxian")
CITY_CAM = CameraInfo("hq-01", "陇南市/site-hq/hq-01", "I", "city")
WUDU_OP = User("wd-op", "wudu", Role.OPERATOR)
CX_ADMIN = User("cx-admin", "chengxian", Role.ADMIN)
ASK = ShareAsk(
    request_id="a" * 32,
    requester_user="wd-op",
    requester_org="wudu",
    owner_org="chengxian",
    camera_ids=("cam-01",),
    from_us=T0,
    to_us=T0 + HOUR_US,
    operations=frozenset({Operation.PLAYBACK}),
    reason="交通事故 核查",
    case_id="WD-2026-9",
    lifetime_us=DAY_US,
    asked_at_us=T0,
)


def refused(reason: Reason, fn: object, *args: object, **kw: object) -> None:
    with pytest.raises(GrantRefused) as exc:
        fn(*args, **kw)  # type: ignore[operator]
    assert exc.value.reason is reason, exc.value


def test_a_request_goes_to_the_owner_and_only_an_owners_admin_decides() -> None:
    cams = {"cam-01": CX_CAM}
    assert check_ask(POLICY, WUDU_OP, replace(ASK, owner_org=""), cams) == "chengxian"
    refused(Reason.BAD_REQUEST, check_ask, POLICY, CX_ADMIN, ASK, cams)  # its own camera
    refused(Reason.BAD_REQUEST, check_ask, POLICY, WUDU_OP, ASK, {})  # unknown camera
    refused(Reason.BAD_REQUEST, check_ask, POLICY, WUDU_OP, ASK, {"cam-01": CITY_CAM})
    refused(Reason.BAD_REQUEST, check_ask, POLICY, WUDU_OP, replace(ASK, reason=" "), cams)
    long = replace(ASK, to_us=T0 + 2 * DAY_US, case_id="")
    refused(Reason.CASE_REQUIRED, check_ask, POLICY, WUDU_OP, long, cams)
    viewer = User("v", "wudu", Role.VIEWER)
    dl = replace(ASK, operations=frozenset({Operation.DOWNLOAD}))
    refused(Reason.ROLE_NOT_ALLOWED, check_ask, POLICY, viewer, dl, cams)
    too_long = replace(ASK, lifetime_us=POLICY.share_lifetime_us + 1)
    refused(Reason.BAD_REQUEST, check_ask, POLICY, WUDU_OP, too_long, cams)
    off = replace(POLICY, cross_org_requests=False)
    refused(Reason.ROLE_NOT_ALLOWED, check_ask, off, WUDU_OP, ASK, cams)
    check_approver(POLICY, CX_ADMIN, ASK)
    for who in (User("o", "chengxian", Role.OPERATOR), User("a", "city", Role.ADMIN)):
        refused(Reason.ROLE_NOT_ALLOWED, check_approver, POLICY, who, ASK)


def test_the_approved_grant_is_the_owners_for_the_requester_in_person() -> None:
    body = plan_approved_share(POLICY, CX_ADMIN, ASK, NOW, lifetime_us=HOUR_US)
    assert (body.grant_id, body.issuer_org, body.holder_org, body.holder_user) == (
        "a" * 32,
        "chengxian",
        "wudu",
        "wd-op",
    )
    assert body.camera_ids == {"cam-01"} and not body.area_prefixes and not body.delegable
    assert body.expires_us == NOW + HOUR_US
    assert body_from(ASK, body_detail(body)) == body  # collected later: the same grant
    wider = frozenset({Operation.PLAYBACK, Operation.DOWNLOAD})
    refused(Reason.BAD_REQUEST, plan_approved_share, POLICY, CX_ADMIN, ASK, NOW, operations=wider)
    refused(
        Reason.BAD_REQUEST, plan_approved_share, POLICY, CX_ADMIN, ASK, NOW, lifetime_us=2 * DAY_US
    )
    refused(Reason.ROLE_NOT_ALLOWED, plan_approved_share, POLICY, WUDU_OP, ASK, NOW)


def test_access_honours_the_owners_consent_and_nothing_wider() -> None:
    kit = GrantKit()
    anchors = anchors_from([raw_public_key(kit.root)])
    body = plan_approved_share(POLICY, CX_ADMIN, ASK, NOW)
    request = AccessRequest(Operation.PLAYBACK, CX_CAM, T0, T0 + 60_000_000, "wudu", "wd-op")

    def check(b: object, req: AccessRequest = request, policy: object = POLICY) -> None:
        chain = Chain((sign_grant(b, kit.root),))  # type: ignore[arg-type]
        authorize(chain, anchors, policy, req, set(), NOW + 1)  # type: ignore[arg-type]

    check(body)
    assert owner_shared(POLICY, body, CX_CAM)
    other = CameraInfo("cam-09", "陇南市/成县/site-01/cam-09", "I", "chengxian")
    refused(Reason.CAMERA_OUT_OF_SCOPE, check, body, replace(request, camera=other))
    refused(Reason.WRONG_HOLDER, check, body, replace(request, presenter_user="wd-2"))
    # An owner's consent covers the owner's cameras only, and only while the policy allows.
    moved = replace(CX_CAM, owner_org="kangxian")
    refused(Reason.NOT_ENTITLED, check, body, replace(request, camera=moved))
    refused(Reason.NOT_ENTITLED, check, body, request, replace(POLICY, cross_org_requests=False))
    # A city-issued root grant stays subject to the entitlements.
    refused(Reason.NOT_ENTITLED, check, replace(body, issuer_org="city"))
    assert not owner_shared(POLICY, replace(body, holder_public_key=b"k" * 32), CX_CAM)
    assert not owner_shared(POLICY, replace(body, expires_us=NOW + 8 * DAY_US), CX_CAM)


def test_request_states_fold_from_the_recorded_entries() -> None:
    detail = ask_detail(ASK)
    again = ask_from(ASK.request_id, "wd-op", "wudu", ASK.case_id, T0, detail)
    assert again == ASK
    assert ask_from("b" * 32, "u", "o", "", T0, {"cameras": []}) is None
    b, c, d = (replace(ASK, request_id=x * 32) for x in "bcd")
    yes = Decision("a" * 32, True, "cx-admin", "chengxian", T0 + 5, expires_us=NOW)
    late_no = Decision("a" * 32, False, "cx-admin-2", "chengxian", T0 + 9)
    no = Decision("b" * 32, False, "cx-admin", "chengxian", T0 + 5, note="不符合")
    views = fold(POLICY, [ASK, b, c, d], [late_no, yes, no], {"d" * 32}, NOW - 1)
    states = [v.state for v in views]
    assert states == [RequestState.APPROVED, RequestState.REFUSED, RequestState.PENDING,
                      RequestState.PENDING]  # fmt: skip
    assert views[0].decision == yes and views[1].decision is not None
    assert fold(POLICY, [ASK], [yes], set(), NOW)[0].state is RequestState.EXPIRED
    assert fold(POLICY, [ASK], [yes], {"a" * 32}, NOW - 1)[0].state is RequestState.REVOKED
    lapsed = fold(POLICY, [c], [], set(), T0 + POLICY.request_ttl_us)[0]
    assert lapsed.state is RequestState.LAPSED


def test_the_policy_file_sets_the_sharing_rule() -> None:
    data = {
        "organisations": [
            {"org_id": "city", "name": "市", "kind": "city", "home_area": "陇南市"},
        ],
        "cross_org_requests": False,
        "lifetimes_s": {"share": 3600, "request": 7200},
    }
    policy = policy_from_mapping(data)
    assert not policy.cross_org_requests
    assert (policy.share_lifetime_us, policy.request_ttl_us) == (HOUR_US, 2 * HOUR_US)
    assert default_policy().cross_org_requests
