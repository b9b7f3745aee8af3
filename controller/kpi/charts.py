"""The report's charts as inline SVG, drawn locally by matplotlib (Agg; no browser, no CDN).

Each function takes the report dict and returns one `<svg>` element as text. Labels come from
the caller's language table, so the same charts serve the Chinese and English report; CJK
glyphs are drawn with a CJK font when one is installed, else as text the browser renders
(`svg.fonttype = none`: text stays text in the SVG, so the page's own fonts draw it).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

LOCAL = timedelta(hours=8)  # Asia/Shanghai, no DST


def _figure(width: float, height: float) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    matplotlib.rcParams["svg.fonttype"] = "none"
    matplotlib.rcParams["font.sans-serif"] = [
        "Noto Sans CJK SC",
        "WenQuanYi Micro Hei",
        "DejaVu Sans",
    ]
    matplotlib.rcParams["svg.hashsalt"] = "vigil"  # the same report gives the same bytes
    # Laid out tight when drawn: one drawing per chart (`bbox_inches="tight"` drew each twice,
    # once to measure: a third of a month report's rendering).
    return Figure(figsize=(width, height), dpi=100, layout="tight")


def _svg(fig: Any) -> str:
    buf = io.StringIO()
    with warnings.catch_warnings():
        # Without a CJK font matplotlib only measures the labels with a Latin one; the
        # text stays text in the SVG and the browser draws it with its own fonts.
        warnings.filterwarnings("ignore", message="Glyph .* missing from font")
        fig.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _day_label(day_us: int) -> str:
    return (datetime.fromtimestamp(day_us / 1e6, UTC) + LOCAL).strftime("%m-%d")


def daily_rates(report: Mapping[str, Any], t: Mapping[str, str]) -> str:
    days = report["daily"]
    fig = _figure(8, 3)
    ax = fig.add_subplot()
    xs = list(range(len(days)))
    for key, colour in (("online_rate", "#1f77b4"), ("working_rate", "#2ca02c")):
        ys = [100 * (d[key] or 0.0) for d in days]
        ax.plot(xs, ys, marker="o", markersize=3, color=colour, label=t[key])
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.set_xticks(xs[:: max(1, len(xs) // 10)])
    ax.set_xticklabels([_day_label(days[i]["day_us"]) for i in xs[:: max(1, len(xs) // 10)]])
    ax.legend(loc="lower left")
    ax.set_title(t["chart_daily_rates"])
    ax.grid(alpha=0.3)
    return _svg(fig)


def daily_hours(report: Mapping[str, Any], t: Mapping[str, str]) -> str:
    days = report["daily"]
    fig = _figure(8, 3)
    ax = fig.add_subplot()
    xs = list(range(len(days)))
    bottom = [0.0] * len(days)
    for key, colour in (("uploaded_h", "#2ca02c"), ("evicted_h", "#d62728"), ("gap_h", "#7f7f7f")):
        ys = [float(d[key]) for d in days]
        ax.bar(xs, ys, bottom=bottom, color=colour, label=t[key])
        bottom = [b + y for b, y in zip(bottom, ys, strict=True)]
    ax.set_ylabel(t["hours"])
    ax.set_xticks(xs[:: max(1, len(xs) // 10)])
    ax.set_xticklabels([_day_label(days[i]["day_us"]) for i in xs[:: max(1, len(xs) // 10)]])
    ax.legend(loc="upper left")
    ax.set_title(t["chart_daily_hours"])
    return _svg(fig)


def counties(report: Mapping[str, Any], t: Mapping[str, str]) -> str:
    rows = sorted(report["counties"], key=lambda r: r["name"])
    fig = _figure(8, 3)
    ax = fig.add_subplot()
    n = len(rows)
    width = 0.27
    for i, (key, colour) in enumerate(
        (("online_rate", "#1f77b4"), ("working_rate", "#2ca02c"), ("integrity", "#ff7f0e"))
    ):
        ax.bar(
            [x + (i - 1) * width for x in range(n)],
            [100 * (r[key] or 0.0) for r in rows],
            width=width,
            color=colour,
            label=t[key],
        )
    ax.set_xticks(list(range(n)))
    ax.set_xticklabels([r["name"] for r in rows], rotation=30, ha="right")
    ax.set_ylim(0, 105)
    ax.set_ylabel("%")
    ax.legend(loc="lower left")
    ax.set_title(t["chart_counties"])
    return _svg(fig)
