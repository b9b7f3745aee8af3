"""What an installer may register as a site or a device's GB/T 28181 code (pure).

A site is one entry of the county's list: an id (the list's, A-Z a-z 0-9 _ . -), its name as
the list writes it (e.g. 石门村, 1-64 printable characters), optionally its township and where
it is. A device's code is a front-end main device's (type 111-130: NVR 118, DVR 111, encoder
113 ...) of the device's own county (its first six digits are the county's GB/T 2260 code):
a code of another county is a typo that would number the device in the wrong county.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass

from controller.directory.gbcode import DEVICE_TYPES, check_gb_code
from controller.directory.preset import ADMIN_CODES


class SiteError(ValueError):
    """Bad input; the message names the field."""


@dataclass(frozen=True, slots=True)
class Site:
    county: str
    site_id: str
    name: str
    township: str = ""
    lat: float | None = None
    lon: float | None = None


def check_text(value: str, what: str, required: bool) -> str:
    text = value.strip()
    if required and not text:
        raise SiteError(f"{what} is empty")
    if len(text) > 64:
        raise SiteError(f"{what} is longer than 64 characters")
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        raise SiteError(f"{what} holds a control or invisible character")
    return text


def check_site(site: Site) -> Site:
    """The site with its texts trimmed, or SiteError."""
    name = check_text(site.name, "site name", True)
    township = check_text(site.township, "township", False)
    if (site.lat is None) != (site.lon is None):
        raise SiteError("give both lat and lon, or neither")
    if site.lat is not None and site.lon is not None:
        if not (math.isfinite(site.lat) and -90 <= site.lat <= 90):
            raise SiteError("lat must be between -90 and 90")
        if not (math.isfinite(site.lon) and -180 <= site.lon <= 180):
            raise SiteError("lon must be between -180 and 180")
    return Site(site.county, site.site_id, name, township, site.lat, site.lon)


def check_device_code(code: str, county: str) -> str:
    """The device's 20-digit code, checked for shape, type and county, or SiteError."""
    try:
        parsed = check_gb_code(code, endpoint=True)
    except ValueError as exc:
        raise SiteError(str(exc)) from None
    if parsed.type_code not in DEVICE_TYPES:
        raise SiteError(
            f"GB/T 28181 code {code}: type {parsed.type_code:03d} is not a front-end main "
            "device (111-130, e.g. NVR 118): a camera's code belongs to the camera"
        )
    civil = ADMIN_CODES.get(county)
    if civil is not None and not code.startswith(civil):
        raise SiteError(f"GB/T 28181 code {code} is not of county {county} ({civil}...)")
    return code
