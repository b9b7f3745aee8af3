"""Checks of the buffer's inputs. Each failure is a StoreError naming what was wrong.

Callers are the agent's own threads, but their inputs come from cameras, folders and
controller commands: a bad value must be refused with a clear message before anything changes.
"""

from __future__ import annotations

import re
from pathlib import Path

from edge_agent.model import SegmentFlag
from edge_agent.store.errors import StoreError

# Same rule as edge_agent.config.CameraConfig.id: safe as a directory name, no separators.
CAMERA_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
CONTAINERS = frozenset({"ts", "mp4"})
MAX_US = 253_402_300_800_000_000  # 10000-01-01: a segment's date must fit a directory name
MAX_TEXT = 200


def camera(camera_id: object) -> str:
    if not isinstance(camera_id, str) or not CAMERA_ID.fullmatch(camera_id):
        raise StoreError(
            f"invalid camera id {camera_id!r}: 1-64 of letters, digits, '_', '.', '-', "
            "starting with a letter or digit"
        )
    return camera_id


def micros(name: str, value: object, camera_id: str = "") -> int:
    """A non-negative microsecond count (time or duration)."""
    where = f"camera {camera_id}: " if camera_id else ""
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreError(f"{where}{name} must be an integer of microseconds, got {value!r}")
    if not 0 <= value < MAX_US:
        raise StoreError(f"{where}{name} must be >= 0 and before year 10000, got {value}")
    return value


def time_range(camera_id: str, start_us: object, end_us: object) -> tuple[int, int]:
    start = micros("start_us", start_us, camera_id)
    end = micros("end_us", end_us, camera_id)
    if end <= start:
        raise StoreError(f"camera {camera_id}: empty or reversed range [{start}, {end})")
    return start, end


def optional_range(start_us: object, end_us: object) -> tuple[int | None, int | None]:
    start = None if start_us is None else micros("start_us", start_us)
    end = None if end_us is None else micros("end_us", end_us)
    if start is not None and end is not None and end <= start:
        raise StoreError(f"empty or reversed range [{start}, {end})")
    return start, end


def container(value: object, camera_id: str) -> str:
    if value not in CONTAINERS:
        raise StoreError(f"camera {camera_id}: container must be 'ts' or 'mp4', got {value!r}")
    return str(value)


def flags(value: object, camera_id: str) -> SegmentFlag:
    if isinstance(value, bool) or not isinstance(value, int):
        raise StoreError(f"camera {camera_id}: flags must be a SegmentFlag, got {value!r}")
    known = SegmentFlag.DISCONTINUITY | SegmentFlag.TRUNCATED | SegmentFlag.CLOCK_SKEW
    if value & ~int(known) or value < 0:
        raise StoreError(f"camera {camera_id}: unknown segment flags {value!r}")
    return SegmentFlag(value)


def text(name: str, value: object, camera_id: str = "") -> str:
    where = f"camera {camera_id}: " if camera_id else ""
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        raise StoreError(f"{where}{name} must be 1-{MAX_TEXT} characters, got {value!r}")
    if not value.isprintable():
        raise StoreError(f"{where}{name} must be printable text, got {value!r}")
    return value


def temp_file(temp_path: object, tmp_dir: Path, camera_id: str) -> Path:
    """A regular file directly inside the buffer's tmp/ (never a symlink, never elsewhere:
    commit renames it into the buffer, and must not be able to swallow an arbitrary file)."""
    if not isinstance(temp_path, Path | str):
        raise StoreError(f"camera {camera_id}: temp_path must be a path, got {temp_path!r}")
    path = Path(temp_path)
    if path.parent.resolve() != tmp_dir.resolve() or path.name in ("", ".", ".."):
        raise StoreError(
            f"camera {camera_id}: {path} is not a temp file of this buffer "
            f"(use temp_path(), which gives a path under {tmp_dir})"
        )
    if path.is_symlink() or not path.is_file():
        raise StoreError(f"camera {camera_id}: temp file {path} does not exist or is not a file")
    return tmp_dir / path.name


def positive(name: str, value: object, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= upper:
        raise StoreError(f"{name} must be an integer in 1..{upper}, got {value!r}")
    return value


def relative_filename(filename: str) -> str:
    """A segment filename from the index or a caller: relative, no '..', no absolute path."""
    parts = Path(filename).parts
    if not parts or Path(filename).is_absolute() or ".." in parts:
        raise StoreError(f"segment filename {filename!r} is not inside the buffer")
    return filename
