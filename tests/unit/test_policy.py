"""Default entitlements (一总两分 + nine counties) and loading a policy from a file."""

from __future__ import annotations

import tomllib

import pytest

from controller.grants.model import CameraInfo, area_path, area_within
from controller.grants.policy import (
    COUNTIES,
    PolicyError,
    Role,
    User,
    allowed_operations,
    area_entitled,
    camera_info,
    county_org,
    default_policy,
    entitled,
    policy_from_mapping,
)

POLICY = default_policy()


def cam(county: str, cls: str = "II", owner: str | None = None) -> CameraInfo:
    return camera_info(
        POLICY, "c1", county, "site-1", cls, township="镇", village="村", owner_org=owner
    )


def test_the_twelve_organisations() -> None:
    assert len(POLICY.organisations) == 12
    assert {o.kind for o in POLICY.organisations.values()} == {"city", "department", "county"}
    assert [county_org(POLICY, name) for _, name in COUNTIES] == [oid for oid, _ in COUNTIES]


def test_a_county_sees_its_own_area_only() -> None:
    assert entitled(POLICY, "chengxian", cam("成县"))
    assert entitled(POLICY, "chengxian", cam("成县", cls="I"))
    assert not entitled(POLICY, "chengxian", cam("武都区"))
    assert not entitled(POLICY, "wudu", cam("成县"))


def test_departments_see_class_ii_and_iii_city_wide() -> None:
    for org in ("zongzhi", "gongan"):
        assert entitled(POLICY, org, cam("武都区", "II"))
        assert entitled(POLICY, org, cam("两当县", "III"))
        assert not entitled(POLICY, org, cam("两当县", "I"))


def test_the_city_sees_everything_and_owners_see_their_own() -> None:
    assert entitled(POLICY, "city", cam("徽县", "I"))
    assert entitled(POLICY, "gongan", cam("徽县", "I", owner="gongan"))
    assert not entitled(POLICY, "unknown-org", cam("徽县", owner="unknown-org"))


def test_area_entitlement_respects_classes() -> None:
    assert area_entitled(POLICY, "gongan", "陇南市/成县", frozenset({"II"}))
    assert not area_entitled(POLICY, "gongan", "陇南市/成县", frozenset())
    assert area_entitled(POLICY, "chengxian", "陇南市/成县/镇", frozenset())
    assert not area_entitled(POLICY, "chengxian", "陇南市", frozenset())


def test_roles() -> None:
    ops = {r: {o.value for o in allowed_operations(POLICY, User("u", "city", r))} for r in Role}
    assert ops[Role.VIEWER] == {"live", "playback"}
    assert ops[Role.INSTALLER] == {"live"}
    assert "download" in ops[Role.OPERATOR] and "download" in ops[Role.ADMIN]


def test_area_paths_match_on_component_boundaries() -> None:
    assert area_within("陇南市/成县/x", "陇南市/成县")
    assert not area_within("陇南市/成县区/x", "陇南市/成县")
    with pytest.raises(ValueError):
        area_path("陇南市", "a/b")
    with pytest.raises(ValueError):
        area_path("陇南市", "")


POLICY_TOML = """
city_org = "city"
[[organisations]]
org_id = "city"
name = "市平台"
kind = "city"
home_area = "X市"
[[organisations]]
org_id = "a"
name = "A县"
kind = "county"
home_area = "X市/A县"
[[entitlements]]
org_id = "city"
area_prefixes = ["X市"]
[[entitlements]]
org_id = "a"
area_prefixes = ["X市/A县"]
resource_classes = ["III"]
[lifetimes_s]
live = 600
"""


def test_policy_from_a_file() -> None:
    policy = policy_from_mapping(tomllib.loads(POLICY_TOML))
    camera = CameraInfo("c", "X市/A县/s/c", "III", "")
    assert entitled(policy, "a", camera)
    assert not entitled(policy, "a", CameraInfo("c", "X市/A县/s/c", "II", ""))
    assert sorted(policy.lifetime_us.values()) == [600_000_000, 3_600_000_000, 86_400_000_000]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (('kind = "county"', 'kind = "village"'), "is not city"),
        (("[lifetimes_s]", "[lifetimes_s]\nforever = 5"), "unknown keys"),
        (("live = 600", "live = 5"), "whole seconds"),
        (('org_id = "a"\narea', 'org_id = "b"\narea'), "unknown organisation"),
        (('["III"]', '["IV"]'), "resource_classes"),
        (('area_prefixes = ["X市"]', 'area_prefixes = ["X市//"]'), "area_prefixes"),
        (('city_org = "city"', 'city_org = "nowhere"'), "city_org"),
        (("[lifetimes_s]", "typo = 1\n[lifetimes_s]"), "unknown keys"),
    ],
)
def test_bad_policy_files_are_refused_with_the_place(edit: tuple[str, str], message: str) -> None:
    text = POLICY_TOML.replace(*edit, 1)
    assert text != POLICY_TOML
    with pytest.raises(PolicyError, match=message):
        policy_from_mapping(tomllib.loads(text))


def test_county_id_and_name_give_the_same_area_and_owner() -> None:
    from controller.grants.policy import area_entitled, camera_info, default_policy

    policy = default_policy()
    by_id = camera_info(policy, "cam-1", "wudu", "v001", "II")
    by_name = camera_info(policy, "cam-1", "武都区", "v001", "II")
    assert by_id == by_name
    assert by_id.area == "陇南市/武都区/v001/cam-1"
    assert by_id.owner_org == "wudu"
    assert area_entitled(policy, "wudu", "陇南市/武都区", frozenset())
