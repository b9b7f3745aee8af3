"""The Longnan city as a resource directory: 17,088 endpoints (12,088 village cameras on
2,000 NVRs, 5,000 handheld terminals), named, placed and numbered, from the scheduler's
simulation preset (same seed, same city). Pure: the CLI and the benchmark write it.

Names are synthetic but shaped like the real ones (两字 + 镇/乡, 两字 + 村); codes follow
GB/T 28181 with each county's real GB/T 2260 division (621202 武都区 ...).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from controller.directory.gbcode import make_gb_code
from controller.directory.rows import Entry
from controller.scheduler.sim.presets import HANDHELD, LONGNAN_COUNTIES, preset

ADMIN_CODES = {
    "wudu": "621202",
    "chengxian": "621221",
    "wenxian": "621222",
    "tanchang": "621223",
    "kangxian": "621224",
    "xihe": "621225",
    "lixian": "621226",
    "huixian": "621227",
    "liangdang": "621228",
}
# County seats, roughly (lat, lon): cameras scatter around them.
CENTRES = {
    "wudu": (33.39, 104.93),
    "chengxian": (33.75, 105.74),
    "wenxian": (32.94, 104.68),
    "tanchang": (34.05, 104.39),
    "kangxian": (33.33, 105.61),
    "xihe": (34.01, 105.30),
    "lixian": (34.19, 105.18),
    "huixian": (33.77, 106.09),
    "liangdang": (33.91, 106.30),
}
SYLLABLES = "东西南北中上下安平和兴隆丰泰宁新桥河坪山川沟湾石城关马龙凤柳杨李王张白黄青"


@dataclass(frozen=True, slots=True)
class PresetCamera:
    device_id: str
    device_kind: str
    county: str  # the county's name (武都区): the registry uses the name
    site: str
    camera_id: str
    resource_class: str
    entry: Entry


def _name(rng: random.Random, suffix: str, taken: set[str]) -> str:
    while True:
        name = rng.choice(SYLLABLES) + rng.choice(SYLLABLES) + suffix
        if name not in taken:
            taken.add(name)
            return name


def longnan(seed: int = 7) -> list[PresetCamera]:
    """Every endpoint of the Longnan preset with its directory entry, deterministic."""
    city = preset("longnan", seed)
    rng = random.Random(seed)  # noqa: S311 - a repeatable synthetic city, not a secret
    county_names = {c: name for c, name, _ in LONGNAN_COUNTIES}
    townships: dict[str, str] = {}  # "wudu-01" -> 城关镇
    villages: dict[str, str] = {}
    taken_t: dict[str, set[str]] = {}
    taken_v: dict[str, set[str]] = {}
    serial: dict[str, int] = {}
    link_of = {d.device_id: d.link_id for d in city.topology.devices}
    out: list[PresetCamera] = []
    for site in city.sites:
        link = link_of[site.device_id]
        if site.kind == HANDHELD:
            county = link.split(":", 1)[1]
            township = village = ""
            place = f"mobile-{county}"
            unit, kind_code, kind_class = 0, 138, "III"
        else:
            place = link.split(":", 1)[1]  # wudu-01-02
            county, t_no, _v_no = place.split("-")
            t_key = f"{county}-{t_no}"
            if t_key not in townships:
                suffix = "镇" if rng.random() < 0.6 else "乡"
                townships[t_key] = _name(rng, suffix, taken_t.setdefault(county, set()))
            if place not in villages:
                villages[place] = _name(rng, "村", taken_v.setdefault(t_key, set()))
            township, village = townships[t_key], villages[place]
            unit, kind_code, kind_class = int(t_no), 132, ""
        lat0, lon0 = CENTRES[county]
        for n, _bps in enumerate(site.camera_bps, start=1):
            serial[county] = serial.get(county, 0) + 1
            camera_id = f"{site.device_id}-c{n:02d}"
            klass = kind_class or ("I" if rng.random() < 0.05 else "II")
            if site.kind == HANDHELD:
                name = f"手持终端{site.device_id[3:]}"
            else:
                name = f"{village}{n}号摄像机"
            entry = Entry(
                camera_id=camera_id,
                name=name,
                township=township,
                village=village,
                lat=round(lat0 + rng.uniform(-0.3, 0.3), 6),
                lon=round(lon0 + rng.uniform(-0.3, 0.3), 6),
                gb_code=make_gb_code(ADMIN_CODES[county], unit, kind_code, serial[county]),
                resource_class=klass,
            )
            out.append(
                PresetCamera(
                    site.device_id,
                    site.kind,
                    county_names[county],
                    place,
                    camera_id,
                    klass,
                    entry,
                )
            )
    return out
