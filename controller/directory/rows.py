"""CSV import/export of the directory: parsing and validation, pure (no I/O).

Columns (header row required, any order, UTF-8 with or without BOM — Excel in China writes
one): camera_id, name, county, township, village, lat, lon, gb_code, class. Every row is
judged on its own: good rows are applied, bad ones come back with their line number and a
sentence, so a 17,000-row sheet with three typos is not refused whole and nothing is dropped
without saying so.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from controller.directory.gbcode import check_gb_code

COLUMNS = ("camera_id", "name", "county", "township", "village", "lat", "lon", "gb_code", "class")
REQUIRED = frozenset({"camera_id", "name"})
CLASSES = frozenset({"I", "II", "III"})
MAX_ROWS = 50_000
MAX_ID = 128
MAX_NAME = 128
MAX_PLACE = 64
FORMULA_START = frozenset("=+@")  # CSV injection: Excel evaluates such cells


@dataclass(frozen=True, slots=True)
class Entry:
    """One camera's directory facts, validated."""

    camera_id: str
    name: str
    township: str = ""
    village: str = ""
    lat: float | None = None
    lon: float | None = None
    gb_code: str | None = None
    resource_class: str = ""  # "": leave the camera's class as it is


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int  # 1-based line in the file (the header is line 1)
    camera_id: str
    reason: str


class CsvError(ValueError):
    """The file as a whole is unusable (no header, unknown columns, too many rows)."""


def _text(value: str, what: str, limit: int) -> str:
    value = value.strip()
    if len(value) > limit:
        raise ValueError(f"{what} longer than {limit} characters")
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"{what} contains control characters")
    if value[:1] in FORMULA_START:
        raise ValueError(f"{what} starts with {value[0]!r} (a spreadsheet would run it)")
    return value


def _coord(raw: str, what: str, bound: float) -> float | None:
    raw = raw.strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{what} {raw[:20]!r} is not a number") from None
    if not math.isfinite(value) or not -bound <= value <= bound:
        raise ValueError(f"{what} {raw[:20]} is outside -{bound:g}..{bound:g}")
    return value


def parse_entry(raw: Mapping[str, str]) -> Entry:
    """One row as an Entry; ValueError with the reason."""
    camera_id = _text(raw.get("camera_id", ""), "camera_id", MAX_ID)
    if not camera_id:
        raise ValueError("camera_id is empty")
    name = _text(raw.get("name", ""), "name", MAX_NAME)
    if not name:
        raise ValueError("name is empty")
    lat = _coord(raw.get("lat", ""), "lat", 90.0)
    lon = _coord(raw.get("lon", ""), "lon", 180.0)
    if (lat is None) != (lon is None):
        raise ValueError("give both lat and lon, or neither")
    code = raw.get("gb_code", "").strip()
    if code:
        check_gb_code(code)
    klass = raw.get("class", "").strip().upper()
    if klass and klass not in CLASSES:
        raise ValueError(f"class {klass[:8]!r} is not I, II or III")
    return Entry(
        camera_id=camera_id,
        name=name,
        township=_text(raw.get("township", ""), "township", MAX_PLACE),
        village=_text(raw.get("village", ""), "village", MAX_PLACE),
        lat=lat,
        lon=lon,
        gb_code=code or None,
        resource_class=klass,
    )


def read_csv(text: str) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for every data row; CsvError when the file cannot be read at all."""
    text = text.removeprefix("\ufeff")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise CsvError("the file is empty: expected a header row " + ",".join(COLUMNS))
    unknown = [h for h in header if h not in COLUMNS]
    if unknown:
        raise CsvError(f"unknown columns {unknown[:5]}: expected some of {','.join(COLUMNS)}")
    missing = REQUIRED - set(header)
    if missing:
        raise CsvError(f"missing columns {sorted(missing)}")
    reader.fieldnames = header
    out: list[tuple[int, dict[str, str]]] = []
    try:
        for raw in reader:
            if len(out) >= MAX_ROWS:
                raise CsvError(f"more than {MAX_ROWS} rows: split the file")
            extra = raw.pop(None, None)
            row = {k: (v or "") for k, v in raw.items()}
            if extra:
                row["__extra__"] = "1"
            out.append((reader.line_num, row))
    except csv.Error as exc:
        raise CsvError(f"line {reader.line_num}: {exc}") from None
    return out


def judge(
    rows: Iterable[tuple[int, Mapping[str, str]]],
    cameras: Mapping[str, frozenset[str]],
    codes_in_use: Mapping[str, str],
) -> tuple[list[Entry], list[Rejection]]:
    """Accepted entries and rejected rows. `cameras`: catalog camera id -> the names its
    county goes by (id and name); `codes_in_use`: GB code -> camera holding it now."""
    accepted: list[Entry] = []
    rejected: list[Rejection] = []
    seen_ids: dict[str, int] = {}
    seen_codes: dict[str, int] = {}
    for line, raw in rows:
        camera_id = raw.get("camera_id", "").strip()[:MAX_ID]
        try:
            if raw.get("__extra__"):
                raise ValueError("more fields than the header has")
            entry = parse_entry(raw)
            county = raw.get("county", "").strip()
            if entry.camera_id not in cameras:
                raise ValueError(f"camera {entry.camera_id!r} is not in the catalog (or not yours)")
            if county and county not in cameras[entry.camera_id]:
                raise ValueError(f"county {county!r} is not the camera's county")
            if entry.camera_id in seen_ids:
                raise ValueError(f"camera also on line {seen_ids[entry.camera_id]}")
            if entry.gb_code:
                if entry.gb_code in seen_codes:
                    raise ValueError(f"GB/T 28181 code also on line {seen_codes[entry.gb_code]}")
                holder = codes_in_use.get(entry.gb_code)
                if holder is not None and holder != entry.camera_id:
                    raise ValueError(f"GB/T 28181 code already belongs to camera {holder!r}")
                seen_codes[entry.gb_code] = line
        except ValueError as exc:
            rejected.append(Rejection(line, camera_id, str(exc)))
            continue
        seen_ids[entry.camera_id] = line
        accepted.append(entry)
    return accepted, rejected


def write_csv(rows: Iterable[Mapping[str, object]]) -> str:
    """The export: header and rows in COLUMNS order, with a BOM so Excel reads the Chinese."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    return "\ufeff" + buf.getvalue()
