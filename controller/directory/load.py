"""Writing a preset city's directory into a catalog database (the CLI and the benchmark)."""

from __future__ import annotations

from controller.directory.preset import PresetCamera
from controller.directory.store import DirectoryStore


def load_preset(store: DirectoryStore, cameras: list[PresetCamera]) -> int:
    """Register the preset's devices and cameras and describe them; returns the camera count."""
    devices = {c.device_id: (c.device_id, c.county, c.site, c.device_kind) for c in cameras}
    store.load(
        list(devices.values()),
        [(c.camera_id, c.device_id, c.resource_class) for c in cameras],
        [c.entry for c in cameras],
    )
    return len(cameras)
