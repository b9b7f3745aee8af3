"""The resource directory over HTTP on PostgreSQL with the whole Longnan preset (17,088
endpoints): paged, filtered listings and the tree answer only what the caller may see (a
county's operator never sees another county's cameras, counts, codes or rows in an export),
a CSV import applies good rows and reports each bad one, and a page stays fast."""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import pytest

from controller.directory.load import load_preset
from controller.directory.preset import longnan
from controller.directory.store import DirectoryStore
from tests.fixtures.postgres import PgServer
from tests.integration.test_api_support import (
    CITY_ADMIN,
    CX_ADMIN,
    PASSWORD,
    WUDU_OP,
    ApiWorld,
    Person,
)

PRESET = longnan()
GONGAN = Person("ga-op", "gongan", "operator")  # 公安: class II and III city-wide
WORLD_CAMERAS = {"cam-01": "成县", "cam-02": "成县", "wd-01": "武都区"}  # ApiWorld's own


@pytest.fixture(scope="module")
def city(tmp_path_factory: pytest.TempPathFactory, pg_server: PgServer) -> Iterator[ApiWorld]:
    url = pg_server.create_database()
    api = ApiWorld(tmp_path_factory.mktemp("directory"), db_url=url)
    try:
        api.users.create(
            GONGAN.user_id, GONGAN.org_id, GONGAN.role, PASSWORD, policy=api.world.policy
        )
        load_preset(DirectoryStore(api.world.engine, api.clock), PRESET)
        yield api
    finally:
        api.close()
        pg_server.drop_database(url)


def listing(api: ApiWorld, who: Person, **params: object) -> tuple[list[dict[str, object]], int]:
    r = api.client.get("/api/v1/cameras", params=params, headers=api.auth(who))
    assert r.status_code == 200, r.text
    return r.json(), int(r.headers["X-Total-Count"])


def expected(county: str) -> int:
    return sum(1 for c in PRESET if c.county == county) + sum(
        1 for v in WORLD_CAMERAS.values() if v == county
    )


@pytest.mark.postgres
def test_a_county_operator_sees_only_its_county(city: ApiWorld) -> None:
    rows, total = listing(city, WUDU_OP, limit=100)
    assert total == expected("武都区") and len(rows) == 100
    assert {r["county_name"] for r in rows} == {"武都区"}
    other = next(c for c in PRESET if c.county == "成县")
    assert listing(city, WUDU_OP, county="成县")[1] == 0
    assert listing(city, WUDU_OP, county="chengxian")[1] == 0
    assert listing(city, WUDU_OP, q=other.entry.gb_code)[1] == 0
    assert listing(city, WUDU_OP, q=other.camera_id)[1] == 0
    r = city.client.get(f"/api/v1/cameras/{other.camera_id}", headers=city.auth(WUDU_OP))
    assert r.status_code == 403 and r.json()["reason"] == "not_entitled"
    nodes = city.client.get("/api/v1/directory/tree", headers=city.auth(WUDU_OP)).json()
    assert [(n["key"], n["total"]) for n in nodes] == [("武都区", expected("武都区"))]
    r = city.client.get(
        "/api/v1/directory/tree", params={"county": "成县"}, headers=city.auth(WUDU_OP)
    )
    assert r.json() == []
    export = city.client.get("/api/v1/directory/export", headers=city.auth(WUDU_OP)).text
    assert export.count("\r\n") == expected("武都区") + 1 and "成县" not in export


@pytest.mark.postgres
def test_the_city_sees_everything_and_a_department_its_classes(city: ApiWorld) -> None:
    assert listing(city, CITY_ADMIN, limit=1)[1] == len(PRESET) + len(WORLD_CAMERAS)
    nodes = city.client.get("/api/v1/directory/tree", headers=city.auth(CITY_ADMIN)).json()
    assert len(nodes) == 9 and sum(n["total"] for n in nodes) == len(PRESET) + 3
    class_one = sum(1 for c in PRESET if c.resource_class == "I")
    assert listing(city, GONGAN, limit=1)[1] == len(PRESET) + 3 - class_one
    assert listing(city, GONGAN, **{"class": "I"})[1] == 0


@pytest.mark.postgres
def test_filters_page_and_search_by_name_or_code(city: ApiWorld) -> None:
    cam = next(c for c in PRESET if c.county == "武都区" and c.entry.village)
    e = cam.entry
    rows, total = listing(city, WUDU_OP, township=e.township, village=e.village)
    assert total >= 1 and all(r["village"] == e.village for r in rows)
    assert cam.camera_id in [r["camera_id"] for r in rows]
    rows, total = listing(city, CITY_ADMIN, q=e.gb_code)
    assert total == 1 and rows[0]["name"] == e.name and rows[0]["lat"] == e.lat
    first, _ = listing(city, CITY_ADMIN, limit=50, offset=0)
    second, _ = listing(city, CITY_ADMIN, limit=50, offset=50)
    assert not {r["camera_id"] for r in first} & {r["camera_id"] for r in second}
    towns = city.client.get(
        "/api/v1/directory/tree", params={"county": "wudu"}, headers=city.auth(WUDU_OP)
    ).json()
    assert e.township in [t["key"] for t in towns]
    r = city.client.get("/api/v1/cameras", params={"limit": 100000}, headers=city.auth(WUDU_OP))
    assert r.status_code == 400 and r.json()["reason"] == "bad_request"


@pytest.mark.postgres
def test_a_page_of_17088_cameras_answers_fast(city: ApiWorld) -> None:
    """The issue's figure is <= 100 ms (bench/console.py measures it); on a shared CI machine
    this asserts a looser bound so the test fails only on a real regression."""
    times = []
    for i in range(7):
        t = time.perf_counter()
        listing(city, CITY_ADMIN, limit=50, offset=i * 1000, county="武都区")
        times.append(time.perf_counter() - t)
    assert statistics.median(times) < 0.5, times


@pytest.mark.postgres
def test_import_applies_good_rows_reports_bad_ones_and_touches_no_other_county(
    city: ApiWorld,
) -> None:
    wd = next(c for c in PRESET if c.county == "武都区")
    cx = next(c for c in PRESET if c.county == "成县")
    taken = next(c for c in PRESET if c.county == "武都区" and c is not wd).entry.gb_code
    body = (
        "camera_id,name,township,village,lat,lon,gb_code,class\n"
        f"{wd.camera_id},新名字,城关镇,东关村,33.4,104.9,,I\n"
        f"{cx.camera_id},偷改,,,,,,\n"
        f"wd-01,x,,,,,{taken},\n"
        "wd-01,y,,,,,12345,\n"
    )
    headers = {**city.auth(WUDU_OP), "Content-Type": "text/csv"}
    r = city.client.post("/api/v1/directory/import", content=body.encode(), headers=headers)
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["accepted"] == 1
    assert [x["line"] for x in report["rejected"]] == [3, 4, 5]
    assert "not in the catalog" in report["rejected"][0]["reason"]
    rows, _ = listing(city, CITY_ADMIN, q=wd.camera_id)
    assert (rows[0]["name"], rows[0]["resource_class"], rows[0]["village"]) == (
        "新名字",
        "I",
        "东关村",
    )
    rows, _ = listing(city, CITY_ADMIN, q=cx.camera_id)
    assert rows[0]["name"] == cx.entry.name  # the other county's camera is untouched
    viewer = city.client.post(
        "/api/v1/directory/import", content=body.encode(), headers={**city.auth(CX_ADMIN)}
    )
    assert viewer.status_code == 200  # 成县's admin: its own row applies, 武都区's are refused
    assert viewer.json()["accepted"] == 1 and viewer.json()["rejected"][0]["line"] == 2
    bad = city.client.post("/api/v1/directory/import", content=b"\xff\xfe", headers=headers)
    assert bad.status_code == 400 and "UTF-8" in bad.json()["message"]
