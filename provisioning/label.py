"""The printable label of an enrolled device (PDF, zh-CN first), for the box and the cabinet.

What it says (pure: `label_lines`, `qr_payload`): device id, GB/T 28181 code, county and site
(the site's name as the county's list has it), kind, the enrollment address, the token's
fingerprint and expiry (Beijing time). The QR code carries the same enrollment information and
no secret: never the token, a password or a camera credential.

The PDF (`write_labels`) is drawn with fpdf2: text in Noto Sans CJK SC (fonts-noto-cjk, found
on the system or given with VIGIL_LABEL_FONT), the QR code as vector squares (segno's matrix),
62 mm wide like a label printer's roll. Loading the CJK font takes seconds, so a day's batch
gets one `labels.pdf` with a page per device rather than a file per bundle.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from provisioning.workspace import City, DeviceRecord

BEIJING = ZoneInfo("Asia/Shanghai")
FONT_PATHS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/google-noto-cjk/NotoSansCJK-Regular.ttc",
)
SC_INDEX = 2  # Noto Sans CJK SC in the collection (JP 0, KR 1, SC 2, TC 3, HK 4)
PAGE_MM = (62.0, 100.0)
KINDS = {"nvr": "边缘盒（NVR） NVR edge box", "handheld": "手持终端 handheld"}


class LabelError(Exception):
    """The label cannot be drawn; the message says what to install or fix."""


@dataclass(frozen=True)
class Label:
    device_id: str
    gb_code: str
    county: str
    site: str
    site_name: str
    kind: str
    enroll_address: str
    token_fingerprint: str
    expires_us: int


def label_for(record: DeviceRecord, city: City, site: dict[str, Any] | None) -> Label:
    s = record.spec
    name = str(site.get("name") or "") if site else ""
    return Label(
        s.device_id, s.gb_code, s.county, s.site, name, s.kind, city.enroll_address,
        record.token_fingerprint, record.expires_us,
    )  # fmt: skip


def beijing(us: int) -> str:
    return datetime.fromtimestamp(us / 1e6, UTC).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


def label_lines(label: Label) -> list[tuple[str, str]]:
    """(heading, value) rows, Chinese heading first, as printed."""
    site = f"{label.site_name}（{label.site}）" if label.site_name else label.site
    return [
        ("设备编号 Device", label.device_id),
        ("国标编码 GB/T 28181", label.gb_code or "未分配 not assigned"),
        ("区县 County", label.county),
        ("站点 Site", site),
        ("类型 Kind", KINDS.get(label.kind, label.kind)),
        ("注册地址 Enrollment", label.enroll_address),
        ("令牌指纹 Token FP", label.token_fingerprint),
        ("令牌有效期至 Token expires", f"{beijing(label.expires_us)} 北京时间"),
    ]


def qr_payload(label: Label) -> str:
    """What the QR code carries: enough to match box, bundle and token, no secret."""
    parts = [
        f"VIGIL:{label.device_id}",
        f"GB:{label.gb_code or '-'}",
        f"SITE:{label.county}/{label.site}",
        f"ENROLL:{label.enroll_address}",
        f"TOKEN-FP:{label.token_fingerprint}",
    ]
    return ";".join(parts)


def find_font() -> Path:
    given = os.environ.get("VIGIL_LABEL_FONT")
    if given and not Path(given).is_file():
        raise LabelError(f"VIGIL_LABEL_FONT={given}: no such file")
    for candidate in ([given] if given else []) + list(FONT_PATHS):
        if Path(candidate).is_file():
            return Path(candidate)
    raise LabelError(
        "没有中文字体，无法生成 PDF 标签：apt install fonts-noto-cjk，或设置 VIGIL_LABEL_FONT "
        "(no CJK font for the PDF label: install fonts-noto-cjk or set VIGIL_LABEL_FONT)"
    )


def write_labels(path: Path, labels: Sequence[Label], compress: bool = True) -> Path:
    """One PDF page per label at `path`."""
    try:
        import segno  # type: ignore[import-untyped,unused-ignore]
        from fpdf import FPDF
    except ImportError as exc:
        raise LabelError("fpdf2/segno missing: pip install 'vigil[provision]'") from exc
    font = find_font()
    pdf = FPDF(unit="mm", format=PAGE_MM)
    pdf.set_compression(compress)
    pdf.set_auto_page_break(False)
    pdf.set_title("Vigil 设备标签")
    collection = SC_INDEX if font.suffix.lower() == ".ttc" else 0
    try:
        pdf.add_font("cjk", fname=str(font), collection_font_number=collection)
    except Exception as exc:  # fontTools' many errors for a file that is not a usable font
        raise LabelError(f"{font}: not a usable font ({exc.__class__.__name__})") from None
    width = PAGE_MM[0] - 8
    for label in labels:
        pdf.add_page()
        pdf.set_xy(4, 4)
        pdf.set_font("cjk", size=11)
        pdf.cell(width, 6, "Vigil 视频监控设备", align="C")
        y = 11.0
        for heading, value in label_lines(label):
            pdf.set_xy(4, y)
            pdf.set_font("cjk", size=6)
            pdf.cell(width, 3, heading)
            pdf.set_xy(4, y + 3)
            pdf.set_font("cjk", size=8.5)
            pdf.cell(width, 4, value)
            y += 7.0
        _qr(pdf, segno.make(qr_payload(label), error="m"), x=16.0, y=y + 0.5, size=30.0)
    path.parent.mkdir(parents=True, exist_ok=True)
    pdf.output(str(path))
    return path


def _qr(pdf: Any, code: Any, x: float, y: float, size: float) -> None:
    """The QR code as filled rectangles, one per run of dark modules in a row (vector: sharp
    at any printer resolution; runs rather than squares keep a page small and quick)."""
    rows = [list(row) for row in code.matrix_iter(scale=1, border=2)]
    cell = size / len(rows)
    pdf.set_fill_color(0, 0, 0)
    for r, row in enumerate(rows):
        for start, length in dark_runs(row):
            pdf.rect(x + start * cell, y + r * cell, length * cell, cell, style="F")


def dark_runs(row: Sequence[Any]) -> list[tuple[int, int]]:
    """(start, length) of each run of dark (truthy) modules."""
    runs: list[tuple[int, int]] = []
    start = -1
    for i, dark in enumerate([*row, False]):
        if dark and start < 0:
            start = i
        elif not dark and start >= 0:
            runs.append((start, i - start))
            start = -1
    return runs
