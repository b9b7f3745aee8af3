"""A custom topology as a TOML or JSON document, checked strictly (pure: text in, data out).

    utc_offset_minutes = 480                      # local time for windows (default 0)

    [[links]]
    id = "city"
    capacity_bps = 10_000_000_000                 # the single root: no parent

    [[links]]
    id = "village-a"
    parent = "city"
    capacity_bps = 8_000_000
    live_reserve = 0.2                            # optional, share guaranteed to live viewing
    windows = [{class = "backfill", start = "00:00", end = "06:00"}]

    [[devices]]
    id = "nvr-a"
    link = "village-a"
    weight = 1.0                                  # optional
    max_bps = 100_000_000                         # optional, 0: no cap of its own
    kind = "nvr"                                  # simulation only: "nvr" or "handheld"
    cameras = 6                                   # simulation only
    camera_bps = 2_000_000                        # simulation only

Unknown keys are errors (a typo must not silently drop a limit); every error names the
entry (`links[3] 'village-a'`) and the field.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from typing import Any

from controller.scheduler.model import (
    Device,
    Link,
    SchedulerError,
    TopologyError,
    TrafficClass,
    Window,
)
from controller.scheduler.sim.presets import HANDHELD, NVR, Site
from controller.scheduler.topology import Topology

_TOP_KEYS = {"utc_offset_minutes", "links", "devices"}
_LINK_KEYS = {"id", "parent", "capacity_bps", "live_reserve", "windows"}
_WINDOW_KEYS = {"class", "start", "end"}
_DEVICE_KEYS = {"id", "link", "weight", "max_bps", "kind", "cameras", "camera_bps"}
MAX_DOCUMENT_CHARS = 16 * 1024 * 1024


def _keys(obj: object, allowed: set[str], where: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise TopologyError(f"{where}: must be a table/object")
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise TopologyError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    return obj


def _int(value: object, where: str) -> int:
    """An integer; an integral float (TOML's 1e9) is accepted, anything else is not."""
    if isinstance(value, bool):
        raise TopologyError(f"{where}: must be an integer, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if not isinstance(value, int):
        raise TopologyError(f"{where}: must be an integer, got {value!r}")
    return value


def _minute(value: object, where: str) -> int:
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise TopologyError(f'{where}: must be a time like "06:00", got {value!r}')
    hh, mm = value[:2], value[3:]
    if not (hh.isdigit() and mm.isdigit()) or int(hh) > 24 or int(mm) > 59:
        raise TopologyError(f"{where}: not a time of day: {value!r}")
    minute = int(hh) * 60 + int(mm)
    if minute > 1440:
        raise TopologyError(f"{where}: not a time of day: {value!r}")
    return minute


def _link(obj: object, i: int) -> Link:
    where = f"links[{i}]"
    raw = _keys(obj, _LINK_KEYS, where)
    where = f"links[{i}] {raw.get('id')!r}"
    if "id" not in raw or "capacity_bps" not in raw:
        raise TopologyError(f"{where}: needs 'id' and 'capacity_bps'")
    windows = []
    ws = raw.get("windows", [])
    if not isinstance(ws, list):
        raise TopologyError(f"{where}: windows must be a list")
    for j, w in enumerate(ws):
        ww = _keys(w, _WINDOW_KEYS, f"{where} windows[{j}]")
        if set(ww) != _WINDOW_KEYS:
            raise TopologyError(f"{where} windows[{j}]: needs class, start and end")
        windows.append(
            Window(
                TrafficClass.parse(str(ww["class"])),
                _minute(ww["start"], f"{where} windows[{j}].start"),
                _minute(ww["end"], f"{where} windows[{j}].end"),
            )
        )
    return Link(
        link_id=raw["id"],
        parent=raw.get("parent"),
        capacity_bps=_int(raw["capacity_bps"], f"{where}.capacity_bps"),
        windows=tuple(windows),
        live_reserve=raw.get("live_reserve", 0.0),
    )


def _device(obj: object, i: int) -> tuple[Device, Site]:
    raw = _keys(obj, _DEVICE_KEYS, f"devices[{i}]")
    where = f"devices[{i}] {raw.get('id')!r}"
    if "id" not in raw or "link" not in raw:
        raise TopologyError(f"{where}: needs 'id' and 'link'")
    kind = raw.get("kind", NVR)
    if kind not in (NVR, HANDHELD):
        raise TopologyError(f"{where}.kind: must be {NVR!r} or {HANDHELD!r}, got {kind!r}")
    cameras = _int(raw.get("cameras", 4 if kind == NVR else 1), f"{where}.cameras")
    camera_bps = _int(raw.get("camera_bps", 2_000_000), f"{where}.camera_bps")
    if not 1 <= cameras <= 256 or not 10_000 <= camera_bps <= 100_000_000:
        raise TopologyError(f"{where}: cameras must be 1..256 and camera_bps 10k..100M")
    device = Device(
        device_id=raw["id"],
        link_id=raw["link"],
        weight=raw.get("weight", 1.0),
        max_bps=_int(raw.get("max_bps", 0), f"{where}.max_bps"),
    )
    return device, Site(device.device_id, kind, (camera_bps,) * cameras)


def parse_topology(text: str, fmt: str) -> tuple[Topology, tuple[Site, ...]]:
    """Parse a topology document in `fmt` ("toml" or "json"); TopologyError if unusable."""
    if len(text) > MAX_DOCUMENT_CHARS:
        raise TopologyError(f"topology document is larger than {MAX_DOCUMENT_CHARS} characters")
    try:
        if fmt == "toml":
            data: object = tomllib.loads(text)
        elif fmt == "json":
            data = json.loads(text)
        else:
            raise TopologyError(f"unknown topology format {fmt!r} (toml or json)")
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise TopologyError(f"not valid {fmt.upper()}: {exc}") from exc
    doc = _keys(data, _TOP_KEYS, "topology")
    links, devices = doc.get("links"), doc.get("devices", [])
    if not isinstance(links, list) or not links:
        raise TopologyError("topology: 'links' must be a non-empty list")
    if not isinstance(devices, list):
        raise TopologyError("topology: 'devices' must be a list")
    try:
        parsed_links = tuple(_link(obj, i) for i, obj in enumerate(links))
        pairs = [_device(obj, i) for i, obj in enumerate(devices)]
        topo = Topology(
            parsed_links,
            tuple(d for d, _ in pairs),
            _int(doc.get("utc_offset_minutes", 0), "utc_offset_minutes"),
        )
    except TopologyError:
        raise
    except SchedulerError as exc:
        raise TopologyError(str(exc)) from exc
    return topo, tuple(s for _, s in pairs)


def format_of(filename: str) -> str:
    """ "toml" or "json" from a file name's suffix; TopologyError for anything else."""
    lower = filename.lower()
    if lower.endswith(".toml"):
        return "toml"
    if lower.endswith(".json"):
        return "json"
    raise TopologyError(f"{filename}: a topology file must end in .toml or .json")
