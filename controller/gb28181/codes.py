"""20-digit GB/T 28181 codes for Vigil's cameras and places, and the Catalog tree. Pure.

A code is centre (6-digit civil code + 2) + industry (2) + type (3: 132 camera, 216 virtual
organisation) + network (1) + serial (6). A camera's code is the one the resource directory
(controller/directory, `camera_directory.gb_code`) assigned; for a camera not described there
yet `derive_codes` makes a stable one: a camera id that already is a 20-digit code is kept,
any other gets its county's civil code and a serial from a hash of its id (collisions resolved
in id order, never onto an assigned code). `Directory` is the one place the cascade asks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from controller.directory.preset import ADMIN_CODES
from controller.gb28181.manscdp import CatalogItem
from controller.grants.policy import COUNTIES

CITY = ("621200", "陇南市")
# county id -> (GB/T 2260 division, name): the directory's codes and the policy's names
COUNTY_CIVIL = {county: (ADMIN_CODES[county], name) for county, name in COUNTIES}
_BY_NAME = {name: (code, name) for code, name in COUNTY_CIVIL.values()}
CAMERA_TYPE, ORG_TYPE = "132", "216"


@dataclass(frozen=True, slots=True)
class Place:
    """A camera as the cascade needs it (the catalog joined with the resource directory)."""

    camera_id: str
    device_id: str
    county: str
    site: str  # the organisational node under the county: village, township or site
    name: str = ""
    gb_code: str = ""  # assigned in the resource directory ("" : derive one)
    resource_class: str = "II"
    registry_site: str = ""  # the registry's site (area paths and grants use it)


@dataclass(frozen=True, slots=True)
class Coded:
    place: Place
    code: str
    civil: str
    site_code: str


def is_code(text: str) -> bool:
    return len(text) == 20 and text.isdigit()


def civil_of(county: str) -> tuple[str, str]:
    return COUNTY_CIVIL.get(county) or _BY_NAME.get(county) or CITY


def _serial(text: str, taken: set[str], prefix: str) -> str:
    n = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big") % 1_000_000
    while f"{prefix}{n:06d}" in taken:
        n = (n + 1) % 1_000_000
    code = f"{prefix}{n:06d}"
    taken.add(code)
    return code


def derive_codes(places: Iterable[Place]) -> list[Coded]:
    ordered = sorted(places, key=lambda p: p.camera_id)
    taken = {p.gb_code or p.camera_id for p in ordered if is_code(p.gb_code or p.camera_id)}
    sites: dict[tuple[str, str], str] = {}
    out: list[Coded] = []
    for p in ordered:
        civil, _ = civil_of(p.county)
        key = (p.county, p.site)
        if key not in sites:
            sites[key] = _serial(f"site:{p.county}/{p.site}", taken, f"{civil}0000{ORG_TYPE}0")
        own = p.gb_code or p.camera_id
        code = own if is_code(own) else _serial(p.camera_id, taken, f"{civil}0000{CAMERA_TYPE}0")
        out.append(Coded(p, code, civil, sites[key]))
    return out


class Directory:
    """Code <-> camera for one snapshot of the places; rebuilt when the catalog changes."""

    def __init__(self, coded: Sequence[Coded]) -> None:
        self.coded = list(coded)
        self._by_code = {c.code: c for c in coded}
        self._by_camera = {c.place.camera_id: c for c in coded}

    @classmethod
    def of(
        cls,
        places: Iterable[Place],
        derive: Callable[[Iterable[Place]], list[Coded]] = derive_codes,
    ) -> Directory:
        return cls(derive(places))

    def by_code(self, code: str) -> Coded | None:
        return self._by_code.get(code)

    def code_of(self, camera_id: str) -> str:
        c = self._by_camera.get(camera_id)
        return c.code if c else ""


def catalog_items(
    visible: Sequence[Coded], online: Mapping[str, bool] | None = None
) -> list[CatalogItem]:
    """The tree for these cameras: the city, its counties (civil codes), each site as a
    virtual organisation, then the cameras under their sites. Only places with a visible
    camera appear: an upper platform learns nothing about what it was not granted."""
    items: list[CatalogItem] = []
    if not visible:
        return items
    items.append(CatalogItem(CITY[0], CITY[1], "", CITY[0], parental=True))
    seen: set[str] = set()
    for c in sorted(visible, key=lambda c: (c.civil, c.site_code)):
        if c.civil != CITY[0] and c.civil not in seen:
            seen.add(c.civil)
            name = next((n for code, n in COUNTY_CIVIL.values() if code == c.civil), c.civil)
            items.append(CatalogItem(c.civil, name, CITY[0], c.civil, parental=True))
        if c.site_code not in seen:
            seen.add(c.site_code)
            items.append(CatalogItem(c.site_code, c.place.site, c.civil, c.civil, parental=True))
    for c in sorted(visible, key=lambda c: c.code):
        on = True if online is None else online.get(c.place.camera_id, False)
        name = c.place.name or c.place.camera_id
        items.append(CatalogItem(c.code, name, c.site_code, c.civil, online=on))
    return items


def pages(items: Sequence[CatalogItem], size: int) -> list[list[CatalogItem]]:
    size = max(1, size)
    return [list(items[i : i + size]) for i in range(0, len(items), size)] or [[]]
