"""Synthetic but proportionate networks for the simulation: Longnan, one county, a province.

Longnan (Gansu): 9 counties, ~200 townships, ~3,000 villages, 12,088 cameras (2,100 new
village HD cameras at 4 Mbit/s, 9,988 existing ones at 2 Mbit/s) on ~2,000 NVR agents, and
5,000 handheld terminals on the counties' mobile links. Capacities follow the issue: thin
village uplinks (4-50 Mbit/s), county links ~1 Gbit/s. Generated from a seed, so every run
and every test sees the same city; nothing is read from disk.

The province is Gansu's 14 prefecture-level cities, each a Longnan-sized city (its own seed)
under one provincial root: 14 x 17,088 = ~240k endpoints (cameras and handhelds) on 98,000
devices and ~45,000 links, to measure what one scheduler over a whole province would cost.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from controller.scheduler.model import Device, Link, TrafficClass, Window
from controller.scheduler.topology import Topology

MBIT = 1_000_000
GBIT = 1_000_000_000
LONGNAN_UTC_OFFSET_MINUTES = 8 * 60

# (link id suffix, name, townships): township counts roughly as in the real counties.
LONGNAN_COUNTIES: tuple[tuple[str, str, int], ...] = (
    ("wudu", "武都区", 36),
    ("chengxian", "成县", 17),
    ("wenxian", "文县", 20),
    ("tanchang", "宕昌县", 25),
    ("kangxian", "康县", 21),
    ("xihe", "西和县", 20),
    ("lixian", "礼县", 29),
    ("huixian", "徽县", 15),
    ("liangdang", "两当县", 12),
)

NVR = "nvr"
HANDHELD = "handheld"


@dataclass(frozen=True, slots=True)
class Site:
    """What the simulation needs to invent traffic for one device (not the scheduler)."""

    device_id: str
    kind: str  # NVR or HANDHELD
    camera_bps: tuple[int, ...]  # one bitrate per camera; a handheld has one


@dataclass(frozen=True, slots=True)
class Preset:
    name: str
    description: str
    topology: Topology
    sites: tuple[Site, ...]


@dataclass(frozen=True, slots=True)
class CitySpec:
    counties: tuple[tuple[str, str, int], ...]
    villages: int
    nvrs: int
    hd_cameras: int
    sd_cameras: int
    handhelds: int
    city_bps: int = 10 * GBIT
    county_bps: int = GBIT
    # The district seat (武都区) has twice the villages and twice the county link.
    county_bps_overrides: tuple[tuple[str, int], ...] = (("wudu", 2 * GBIT),)
    mobile_bps: int = 300 * MBIT
    # Counties whose villages may backfill only at night (the example window).
    night_backfill: tuple[str, ...] = ("wenxian", "liangdang")


LONGNAN = CitySpec(
    counties=LONGNAN_COUNTIES,
    villages=3000,
    nvrs=2000,
    hd_cameras=2100,
    sd_cameras=9988,
    handhelds=5000,
)

COUNTY = CitySpec(
    counties=(("liangdang", "两当县", 12),),
    villages=180,
    nvrs=120,
    hd_cameras=126,
    sd_cameras=600,
    handhelds=300,
    city_bps=2 * GBIT,
)

_VILLAGE_MBIT = (4, 8, 10, 10, 20, 20, 30, 50)
_TOWNSHIP_MBIT = (200, 300, 300, 500, 1000)


def _split(total: int, parts: int, rng: random.Random) -> list[int]:
    """`total` split into `parts` positive, uneven integers (each at least 1)."""
    weights = [rng.uniform(0.6, 1.4) for _ in range(parts)]
    scale = (total - parts) / sum(weights)
    counts = [1 + int(w * scale) for w in weights]
    for i in range(total - sum(counts)):
        counts[i % parts] += 1
    return counts


def build_city(spec: CitySpec, seed: int = 7) -> tuple[Topology, tuple[Site, ...]]:
    """The topology and per-device sites of `spec`, deterministic for a given seed."""
    rng = random.Random(seed)  # noqa: S311 -- a repeatable synthetic city, not a secret
    links: list[Link] = [Link("city", None, spec.city_bps)]
    villages: list[str] = []
    total_townships = sum(t for _, _, t in spec.counties)
    per_township = _split(spec.villages, total_townships, rng)
    night = (Window(TrafficClass.BACKFILL, 0, 6 * 60),)
    t_index = 0
    for county, _name, townships in spec.counties:
        c_id = f"county:{county}"
        county_bps = dict(spec.county_bps_overrides).get(county, spec.county_bps)
        links.append(Link(c_id, "city", county_bps))
        links.append(Link(f"mobile:{county}", c_id, spec.mobile_bps))
        windows = night if county in spec.night_backfill else ()
        for t in range(townships):
            n_villages = per_township[t_index]
            t_index += 1
            # About one township in twenty is only a label: its villages hang off the county.
            direct = rng.random() < 0.05
            t_id = f"township:{county}-{t + 1:02d}"
            if not direct:
                links.append(Link(t_id, c_id, rng.choice(_TOWNSHIP_MBIT) * MBIT))
            for v in range(n_villages):
                v_id = f"village:{county}-{t + 1:02d}-{v + 1:02d}"
                links.append(
                    Link(
                        v_id,
                        c_id if direct else t_id,
                        rng.choice(_VILLAGE_MBIT) * MBIT,
                        windows=windows,
                        live_reserve=0.2,
                    )
                )
                villages.append(v_id)
    hosts = sorted(rng.sample(range(len(villages)), spec.nvrs))
    cams: list[list[int]] = [[2 * MBIT] for _ in hosts]
    for _ in range(spec.sd_cameras - len(hosts)):
        cams[rng.randrange(len(hosts))].append(2 * MBIT)
    for _ in range(spec.hd_cameras):
        cams[rng.randrange(len(hosts))].append(4 * MBIT)
    devices: list[Device] = []
    sites: list[Site] = []
    for h, bitrates in zip(hosts, cams, strict=True):
        v_id = villages[h]
        d_id = "nvr-" + v_id.split(":", 1)[1]
        devices.append(Device(d_id, v_id, max_bps=100 * MBIT))
        sites.append(Site(d_id, NVR, tuple(bitrates)))
    counties = [c for c, _, _ in spec.counties]
    for k in range(spec.handhelds):
        d_id = f"hh-{k + 1:05d}"
        devices.append(Device(d_id, f"mobile:{counties[k % len(counties)]}", max_bps=8 * MBIT))
        sites.append(Site(d_id, HANDHELD, (4 * MBIT,)))
    topo = Topology(tuple(links), tuple(devices), LONGNAN_UTC_OFFSET_MINUTES)
    return topo, tuple(sites)


PRESETS: dict[str, tuple[str, CitySpec]] = {
    "longnan": (
        "Longnan city: 9 counties, ~200 townships, 3,000 villages, 12,088 cameras on 2,000 "
        "NVRs, 5,000 handhelds",
        LONGNAN,
    ),
    "county": (
        "One county (两当县): 12 townships, 180 villages, 726 cameras on 120 NVRs, 300 handhelds",
        COUNTY,
    ),
}


# Gansu's 14 prefecture-level divisions (12 cities, 2 autonomous prefectures).
PROVINCE_CITIES: tuple[str, ...] = (
    "lanzhou", "jiayuguan", "jinchang", "baiyin", "tianshui", "wuwei", "zhangye",
    "pingliang", "jiuquan", "qingyang", "dingxi", "longnan", "linxia", "gannan",
)  # fmt: skip
PROVINCE = "province"
PROVINCE_BPS = 100 * GBIT


def build_province(
    cities: tuple[str, ...] = PROVINCE_CITIES, spec: CitySpec = LONGNAN, seed: int = 7
) -> tuple[Topology, tuple[Site, ...]]:
    """Each city `spec` with its own seed, ids prefixed `<city>/`, under one province root."""
    links: list[Link] = [Link(PROVINCE, None, PROVINCE_BPS)]
    devices: list[Device] = []
    sites: list[Site] = []
    for i, city in enumerate(cities):
        topo, city_sites = build_city(spec, seed + i)
        for link in topo.links:
            parent = PROVINCE if link.parent is None else f"{city}/{link.parent}"
            links.append(replace(link, link_id=f"{city}/{link.link_id}", parent=parent))
        devices += [
            replace(d, device_id=f"{city}/{d.device_id}", link_id=f"{city}/{d.link_id}")
            for d in topo.devices
        ]
        sites += [replace(s, device_id=f"{city}/{s.device_id}") for s in city_sites]
    topo = Topology(tuple(links), tuple(devices), LONGNAN_UTC_OFFSET_MINUTES)
    return topo, tuple(sites)


PRESET_NAMES: tuple[str, ...] = (*sorted(PRESETS), PROVINCE)


def preset(name: str, seed: int = 7) -> Preset:
    """The named preset (KeyError listing the names if unknown)."""
    if name == PROVINCE:
        topo, sites = build_province(seed=seed)
        description = (
            f"A province of {len(PROVINCE_CITIES)} Longnan-sized cities (Gansu's): "
            f"{len(sites)} devices, ~240k cameras and handhelds"
        )
        return Preset(name, description, topo, sites)
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r} (one of: {', '.join(PRESET_NAMES)})")
    description, spec = PRESETS[name]
    topo, sites = build_city(spec, seed)
    return Preset(name, description, topo, sites)
