"""Topology: validation with clear errors, compilation, run-time changes, windows, files."""

from __future__ import annotations

import json

import pytest

from controller.scheduler.model import Device, Link, TopologyError, TrafficClass, Window
from controller.scheduler.topology import Topology
from controller.scheduler.topology_file import format_of, parse_topology

T = TrafficClass


def small() -> Topology:
    return Topology(
        (
            Link("city", None, 1000),
            Link("county", "city", 500),
            Link("v1", "county", 100, live_reserve=0.2),
            Link("v2", "county", 100, windows=(Window(T.BACKFILL, 0, 360),)),
        ),
        (Device("a", "v1"), Device("b", "v2", weight=2.0, max_bps=50)),
        utc_offset_minutes=480,
    )


def test_compiled_paths_run_root_first_with_parents_before_children() -> None:
    topo = small()
    ct = topo.compiled
    assert ct.link_ids[0] == "city"
    assert all(ct.parent[i] < i for i in range(1, len(ct.link_ids)))
    assert topo.path("a") == ("v1", "county", "city")
    assert ct.reserve_cap[ct.index["v1"]] == 20
    assert ct.device_max[ct.device_index["a"]] == float("inf")
    assert ct.device_max[ct.device_index["b"]] == 50.0
    assert topo.link("v2").capacity_bps == 100


@pytest.mark.parametrize(
    ("links", "message"),
    [
        ((Link("a", None, 1), Link("b", "c", 1), Link("c", "b", 1)), "cycle"),
        ((Link("a", None, 1), Link("b", "b", 1)), "its own parent"),
        ((Link("a", None, 1), Link("b", None, 1)), "exactly one root"),
        ((Link("a", "b", 1), Link("b", "a", 1)), "exactly one root"),
        ((Link("a", None, 1), Link("b", "zz", 1)), "parent 'zz' is not a link"),
        ((Link("a", None, 1), Link("a", None, 2)), "defined twice"),
    ],
)
def test_structural_errors_are_named(links: tuple[Link, ...], message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        Topology(links)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(TopologyError) as err:
        Topology(
            (Link("a", None, 1), Link("b", "missing", 1)),
            (Device("d", "nowhere"), Device("d", "a")),
        )
    text = str(err.value)
    assert "missing" in text and "nowhere" in text and "'d' defined twice" in text


@pytest.mark.parametrize("capacity", [0, -5, 1.5, True, 10**14])
def test_capacity_must_be_a_sane_positive_integer(capacity: object) -> None:
    with pytest.raises(TopologyError, match="capacity_bps"):
        Link("x", None, capacity)  # type: ignore[arg-type]


@pytest.mark.parametrize("reserve", [-0.1, 1.0, float("nan"), "0.2"])
def test_live_reserve_must_be_a_share(reserve: object) -> None:
    with pytest.raises(TopologyError, match="live_reserve"):
        Link("x", None, 10, live_reserve=reserve)  # type: ignore[arg-type]


def test_bad_windows_weights_and_ids_are_refused() -> None:
    with pytest.raises(TopologyError, match="empty or the whole day"):
        Window(T.BACKFILL, 60, 60)
    with pytest.raises(TopologyError, match="end_minute"):
        Window(T.BACKFILL, 0, 1441)
    with pytest.raises(TopologyError, match="weight"):
        Device("d", "a", weight=0)
    with pytest.raises(TopologyError, match="max_bps"):
        Device("d", "a", max_bps=-1)
    with pytest.raises(TopologyError, match="link id"):
        Link("", None, 1)
    with pytest.raises(TopologyError, match="control characters"):
        Link("a\nb", None, 1)


def test_windows_open_and_close_in_local_time() -> None:
    night = Window(T.BACKFILL, 22 * 60, 6 * 60)
    assert night.contains(23 * 60) and night.contains(60) and not night.contains(12 * 60)
    ct = small().compiled
    v2 = ct.index["v2"]
    midnight_utc_us = 1_767_225_600_000_000  # 08:00 in UTC+8
    assert ct.closed_links(T.BACKFILL, midnight_utc_us) == [v2]
    two_am_local = midnight_utc_us - 6 * 3600 * 1_000_000
    assert ct.closed_links(T.BACKFILL, two_am_local) == []
    assert ct.closed_links(T.ARCHIVE, midnight_utc_us) == []
    # Next edge after 02:00 local is 06:00 local, four hours on.
    assert ct.next_window_edge_us(two_am_local) == two_am_local + 4 * 3600 * 1_000_000


def test_changes_make_a_new_topology_and_bad_changes_change_nothing() -> None:
    topo = small()
    faster = topo.with_changes(upsert_links=[Link("v1", "county", 200)])
    assert faster.link("v1").capacity_bps == 200
    assert topo.link("v1").capacity_bps == 100
    with pytest.raises(TopologyError, match="cycle|not reachable|one root"):
        topo.with_changes(upsert_links=[Link("county", "v1", 500)])
    with pytest.raises(TopologyError, match="not a link"):
        topo.with_changes(remove_links=["county"])
    with pytest.raises(TopologyError, match="no such link"):
        topo.with_changes(remove_links=["nope"])
    with pytest.raises(TopologyError, match="no such device"):
        topo.with_changes(remove_devices=["nope"])
    assert topo.path("a") == ("v1", "county", "city")
    moved = topo.with_changes(upsert_devices=[Device("a", "v2")], remove_devices=["b"])
    assert moved.path("a") == ("v2", "county", "city")
    assert [d.device_id for d in moved.devices] == ["a"]


TOML = """
utc_offset_minutes = 480

[[links]]
id = "city"
capacity_bps = 1e9

[[links]]
id = "village-a"
parent = "city"
capacity_bps = 8_000_000
live_reserve = 0.2
windows = [{class = "backfill", start = "00:00", end = "06:00"}]

[[devices]]
id = "nvr-a"
link = "village-a"
max_bps = 100_000_000
cameras = 3
camera_bps = 4_000_000

[[devices]]
id = "hh-1"
link = "city"
kind = "handheld"
"""


def test_toml_topology_file() -> None:
    topo, sites = parse_topology(TOML, "toml")
    assert topo.utc_offset_minutes == 480
    assert topo.link("city").capacity_bps == 1_000_000_000
    assert topo.link("village-a").windows == (Window(T.BACKFILL, 0, 360),)
    assert [s.kind for s in sites] == ["nvr", "handheld"]
    assert sites[0].camera_bps == (4_000_000,) * 3


def test_json_topology_file() -> None:
    doc = {
        "links": [{"id": "r", "capacity_bps": 100}, {"id": "v", "parent": "r", "capacity_bps": 10}],
        "devices": [{"id": "d", "link": "v", "weight": 2}],
    }
    topo, sites = parse_topology(json.dumps(doc), "json")
    assert topo.path("d") == ("v", "r")
    assert sites[0].kind == "nvr"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[links]]\nid='r'\ncapacity_bps=1\ncapacty=2\n", "unknown key.*'capacty'"),
        ("[[links]]\nid='r'\n", "needs 'id' and 'capacity_bps'"),
        ("[[links]]\nid='r'\ncapacity_bps=-1\n", "capacity_bps"),
        ("[[links]]\nid='r'\ncapacity_bps=10.5\n", "must be an integer"),
        (
            "[[links]]\nid='r'\ncapacity_bps=1\nwindows=[{class='backfill',start='25:00',end='06:00'}]",
            "not a time",
        ),
        (
            "[[links]]\nid='r'\ncapacity_bps=1\nwindows=[{class='bulk',start='01:00',end='06:00'}]",
            "unknown traffic class",
        ),
        (
            "[[links]]\nid='r'\ncapacity_bps=1\n[[links]]\nid='a'\nparent='b'\ncapacity_bps=1\n[[links]]\nid='b'\nparent='a'\ncapacity_bps=1\n",
            "cycle",
        ),
        (
            "[[links]]\nid='r'\ncapacity_bps=1\n[[devices]]\nid='d'\nlink='r'\nkind='drone'\n",
            "kind",
        ),
        ("links = [", "not valid TOML"),
        ("foo = 1", "unknown key"),
        ("links = []", "non-empty list"),
    ],
)
def test_bad_topology_files_get_clear_errors(text: str, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        parse_topology(text, "toml")


def test_bad_json_and_unknown_formats() -> None:
    with pytest.raises(TopologyError, match="not valid JSON"):
        parse_topology("{", "json")
    with pytest.raises(TopologyError, match="must be a table"):
        parse_topology("[1, 2]", "json")
    with pytest.raises(TopologyError, match="unknown topology format"):
        parse_topology("", "yaml")
    with pytest.raises(TopologyError, match="larger than"):
        parse_topology(" " * (16 * 1024 * 1024 + 1), "toml")
    assert format_of("city.TOML") == "toml" and format_of("c.json") == "json"
    with pytest.raises(TopologyError, match=r"\.toml or \.json"):
        format_of("city.yaml")
