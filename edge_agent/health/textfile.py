"""The agent's own metrics as a Prometheus textfile (node_exporter's textfile-collector style).

`render(health)` turns the health report the agent already builds into the text exposition
format (pure, no prometheus_client on the agent); `write_atomically` replaces the file in one
rename, so a collector never reads half a file. The reporter writes it every health interval
whether or not MQTT is connected, so a cut uplink is visible locally too.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from protos.vigil.v1 import fleet_pb2

FILE_NAME = "vigil_agent.prom"
log = logging.getLogger(__name__)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def render(h: fleet_pb2.Health) -> str:
    """The text exposition of one health report: device figures, then one series per camera."""
    dev = f'device="{_escape(h.device_id)}"'
    families: list[tuple[str, str, str, list[tuple[str, float]]]] = [
        ("vigil_agent_buffer_bytes", "gauge", "Bytes in the segment buffer",
         [(dev, h.buffer_bytes)]),
        ("vigil_agent_segments", "gauge", "Segments in the buffer, by state", [
            (f'{dev},state="unsent"', h.segments_unsent),
            (f'{dev},state="uploaded"', h.segments_uploaded),
            (f'{dev},state="held"', h.segments_held),
        ]),
        ("vigil_agent_oldest_unsent_age_seconds", "gauge", "Age of the oldest unsent segment",
         [(dev, h.oldest_unsent_age_s)]),
        ("vigil_agent_upload_bits_per_second", "gauge", "Current upload rate",
         [(dev, h.upload_rate_bps)]),
        ("vigil_agent_disk_free_bytes", "gauge", "Free bytes on the buffer's disk",
         [(dev, h.disk_free_bytes)]),
        ("vigil_agent_eviction_eta_seconds", "gauge",
         "Seconds until the buffer evicts unsent footage (-1: never)", [(dev, h.eviction_eta_s)]),
        ("vigil_agent_camera_connected", "gauge", "1 when the camera streams", [
            (f'{dev},camera="{_escape(c.camera_id)}"', 1.0 if c.connected else 0.0)
            for c in h.cameras
        ]),
        ("vigil_agent_camera_fps", "gauge", "Frames per second received from the camera", [
            (f'{dev},camera="{_escape(c.camera_id)}"', c.fps) for c in h.cameras
        ]),
        ("vigil_agent_camera_bits_per_second", "gauge", "Bit rate received from the camera", [
            (f'{dev},camera="{_escape(c.camera_id)}"', c.bitrate_bps) for c in h.cameras
        ]),
        ("vigil_agent_report_timestamp_seconds", "gauge", "When these figures were taken",
         [(dev, h.at_unix_us / 1_000_000)]),
    ]  # fmt: skip
    if h.upload_address or h.control_address:
        routes = [
            (f'{dev},role="{role}",address="{_escape(address)}"', 1.0)
            for role, address in (("control", h.control_address), ("upload", h.upload_address))
            if address
        ]
        families += [
            ("vigil_agent_controller_info", "gauge",
             "The controller replica each uplink channel uses now (value always 1)", routes),
            ("vigil_agent_controller_failovers_total", "counter",
             "Times the uplink moved to another controller replica since the agent started",
             [(dev, h.controller_failovers)]),
        ]  # fmt: skip
    lines: list[str] = []
    for name, kind, help_text, series in families:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{{{labels}}} {_number(value)}" for labels, value in series)
    return "\n".join(lines) + "\n"


def write_atomically(directory: Path, text: str, name: str = FILE_NAME) -> Path:
    """Write `text` to `directory/name` through a temporary file and one rename."""
    directory.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, directory / name)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return directory / name


class Writer:
    """Writes the textfile at most once per interval (the reporter's health cadence); a
    failure is logged, never raised: local metrics must not stop reporting."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._last_mono = -1e9

    def maybe_write(self, msg: fleet_pb2.Health, now_mono: float, interval_s: float) -> None:
        if now_mono - self._last_mono < interval_s:
            return
        self._last_mono = now_mono
        try:
            write_atomically(self.directory, render(msg))
        except OSError as exc:
            log.warning("cannot write the metrics textfile in %s: %s", self.directory, exc)
