"""The resource directory's pure parts: GB/T 28181 codes, CSV rows, the SQL visibility terms
(equal to the policy's per-camera rule) and the tree's counts."""

from __future__ import annotations

import itertools

import pytest

from controller.directory.gbcode import check_gb_code, make_gb_code
from controller.directory.rows import CsvError, judge, read_csv, write_csv
from controller.directory.scope import county_filter, county_label, matches, visibility
from controller.directory.tree import children
from controller.grants.policy import camera_info, default_policy, entitled, policy_from_mapping

GOOD = "62120201001320000001"  # 621202 武都区, unit 01, industry 00, type 132 IPC, net 0


def test_a_well_formed_code_parses_into_its_parts() -> None:
    code = check_gb_code(GOOD)
    assert (code.admin_area, code.type_code, code.network) == ("621202", 132, 0)
    assert make_gb_code("621202", 1, 132, 1) == GOOD


@pytest.mark.parametrize(
    ("code", "why"),
    [
        ("6212020100132000000", "20 digits"),  # 19
        ("621202010013200000011", "20 digits"),  # 21
        ("62120201001320000O01", "20 digits"),  # a letter O
        ("６２１２０２０１００１３２００００００１", "20 digits"),  # full-width digits
        ("99120201001320000001", "province"),
        ("62000201001320000001", "without a city"),
        ("62120201002000000001", "front-end"),  # 200: a centre server, not a camera
        ("62120201001329000001", "reserved"),  # network digit 9
    ],
)
def test_malformed_codes_are_refused_with_the_reason(code: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        check_gb_code(code)


CSV = (
    "\ufeffcamera_id,name,county,township,village,lat,lon,gb_code,class\r\n"
    f"cam-1,东关村1号,武都区,城关镇,东关村,33.39,104.93,{GOOD},I\r\n"
    "cam-2,,武都区,,,,,,\r\n"
    "cam-3,西关,成县,,,,,,II\r\n"
    "cam-4,北山,武都区,,,91,104,,\r\n"
    f"cam-5,南山,武都区,,,,,{GOOD},\r\n"
    "cam-6,=HYPERLINK(1),武都区,,,,,,\r\n"
    "nope,x,,,,,,,\r\n"
    "cam-1,again,武都区,,,,,,\r\n"
    "cam-7,七,武都区,,,,,,IV\r\n"
    "cam-8,八,武都区,,,33.1,,,\r\n"
)
WUDU = frozenset({"wudu", "武都区"})


def test_an_import_applies_good_rows_and_reports_each_bad_one() -> None:
    cameras = {f"cam-{i}": WUDU for i in range(1, 9)}
    accepted, rejected = judge(read_csv(CSV), cameras, {})
    assert [e.camera_id for e in accepted] == ["cam-1"]
    assert accepted[0].resource_class == "I" and accepted[0].township == "城关镇"
    reasons = {r.line: r.reason for r in rejected}
    assert "name is empty" in reasons[3]
    assert "not the camera's county" in reasons[4]
    assert "lat" in reasons[5]
    assert "also on line 2" in reasons[6]
    assert "spreadsheet" in reasons[7]
    assert "not in the catalog" in reasons[8]
    assert "camera also on line 2" in reasons[9]
    assert "class" in reasons[10]
    assert "both lat and lon" in reasons[11]
    assert len(rejected) == 9


def test_a_code_held_by_another_camera_is_refused() -> None:
    rows = read_csv(f"camera_id,name,gb_code\ncam-2,二,{GOOD}\n")
    accepted, rejected = judge(rows, {"cam-2": WUDU}, {GOOD: "cam-1"})
    assert not accepted and "belongs to camera 'cam-1'" in rejected[0].reason
    accepted, _ = judge(rows, {"cam-2": WUDU}, {GOOD: "cam-2"})  # its own code again: fine
    assert len(accepted) == 1


@pytest.mark.parametrize(
    ("text", "why"),
    [("", "empty"), ("camera_id,colour\n", "unknown columns"), ("name\nx\n", "missing")],
)
def test_an_unreadable_file_is_refused_whole(text: str, why: str) -> None:
    with pytest.raises(CsvError, match=why):
        read_csv(text)


def test_export_round_trips_through_import() -> None:
    text = write_csv([{"camera_id": "cam-1", "name": "东关", "county": "武都区", "lat": None}])
    assert text.startswith("\ufeffcamera_id,")
    accepted, rejected = judge(read_csv(text), {"cam-1": WUDU}, {})
    assert rejected == [] and accepted[0].name == "东关"


FILE_POLICY = {
    "organisations": [
        {"org_id": "city", "name": "市平台", "kind": "city", "home_area": "陇南市"},
        {"org_id": "police", "name": "公安", "kind": "department", "home_area": "陇南市"},
        {"org_id": "wudu", "name": "武都区", "kind": "county", "home_area": "陇南市/武都区"},
        {"org_id": "cx", "name": "成县", "kind": "county", "home_area": "陇南市/成县"},
    ],
    "entitlements": [
        {"org_id": "city", "area_prefixes": ["陇南市"]},
        {"org_id": "police", "area_prefixes": ["陇南市"], "resource_classes": ["II", "III"]},
        {"org_id": "wudu", "area_prefixes": ["陇南市/武都区", "陇南市/成县/site-2"]},
        {"org_id": "cx", "area_prefixes": ["陇南市/成县", "陇南市/武都区/site-1/cam-b"]},
        {"org_id": "cx", "area_prefixes": ["陇南市/wudu", "外省", "陇南市/成县/s/c/x"]},
    ],
}


@pytest.mark.parametrize("policy", [default_policy(), policy_from_mapping(FILE_POLICY)])
def test_the_sql_terms_see_exactly_what_the_policy_entitles(policy: object) -> None:
    """Every org x every kind of camera (county by id, by name, unknown; sites; classes)."""
    counties = ["wudu", "武都区", "成县", "cx", "chengxian", "外县"]
    cams = itertools.product(counties, ["site-1", "site-2"], ["cam-a", "cam-b"], ["I", "II", "III"])
    for county, site, cam, klass in cams:
        info = camera_info(policy, cam, county, site, klass)  # type: ignore[arg-type]
        for org in [*policy.organisations, "nobody"]:  # type: ignore[attr-defined]
            terms = visibility(policy, org)  # type: ignore[arg-type]
            want = entitled(policy, org, info)  # type: ignore[arg-type]
            assert matches(terms, county, site, cam, klass) == want, (org, county, site, cam)


def test_a_county_is_filtered_and_shown_by_either_of_its_names() -> None:
    policy = default_policy()
    assert county_filter(policy, "wudu") == county_filter(policy, "武都区") == WUDU
    assert county_label(policy, "wudu") == "武都区"
    assert county_filter(policy, "外县") == frozenset({"外县"})


def test_tree_children_count_online_offline_and_unknown_per_node() -> None:
    places = [
        ("c1", "wudu", "城关镇", "东关村", "d1"),
        ("c2", "武都区", "城关镇", "西关村", "d2"),
        ("c3", "武都区", "", "", "hh-1"),
        ("c4", "成县", "抛沙镇", "x村", "d3"),
    ]
    states = {"c1": True, "c2": False, "c4": True}
    label = lambda c: county_label(default_policy(), c)  # noqa: E731
    counties = children(places, "county", states, label)
    assert [(n.key, n.total, n.online, n.offline) for n in counties] == [
        ("成县", 1, 1, 0),
        ("武都区", 3, 1, 1),
    ]
    towns = children(places[:3], "township", states, label)
    assert [(n.key, n.total) for n in towns] == [("城关镇", 2), ("", 1)]  # "none" sorts last
    assert [n.key for n in children(places[:2], "device", states, label)] == ["d1", "d2"]
