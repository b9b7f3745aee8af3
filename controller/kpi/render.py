"""The report written out: JSON (the API's answer too), CSV (per-county and worst-camera
tables for spreadsheets) and a self-contained HTML page in Chinese with an English switch
(both languages are in the page; a button flips which is shown: no script from anywhere else,
no request leaves the file). Times are shown in Asia/Shanghai."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from controller.kpi import charts
from controller.kpi.classes import CLASS_NAMES

LOCAL = timedelta(hours=8)

ZH: dict[str, str] = {
    "title": "视频共享平台运行评估报告",
    "period": "统计时段",
    "org": "单位",
    "online_rate": "在线率",
    "working_rate": "完好率",
    "integrity": "录像完整率",
    "cloud_rate": "上云率",
    "cameras": "点位数",
    "connected": "已接入",
    "target": "目标",
    "kind": "类别",
    "registered": "已登记",
    "recorded_h": "录像(小时)",
    "uploaded_h": "已上传(小时)",
    "evicted_h": "未上传即淘汰(小时)",
    "gap_h": "录像缺口(小时)",
    "hours": "小时",
    "delay_p50_s": "上传时延P50(秒)",
    "delay_p95_s": "上传时延P95(秒)",
    "counties": "各县区",
    "worst": "优先整改点位",
    "targets": "接入目标完成情况",
    "timeliness": "上传及时性",
    "timeliness_by_class": "上传及时性(按业务类别)",
    "evidence": "证据调阅",
    "live": "实时视频",
    "event": "告警事件",
    "archive": "存档上云",
    "backfill": "补传",
    "unclassified": "未分类",
    "county_class_p95": "各县区上传时延P95(秒,按业务类别)",
    "sharing": "共享使用情况",
    "incidents": "告警与处置",
    "losses": "数据损失",
    "village_hd": "新建村级高清",
    "existing": "已建存量",
    "handheld": "手持终端",
    "chart_daily_rates": "每日在线率与完好率",
    "chart_daily_hours": "每日录像时长构成",
    "chart_counties": "各县区指标",
    "switch": "English",
    "name": "名称",
    "camera": "摄像机",
    "class": "资源类别",
    "segments": "片段数",
    "tier": "层级",
    "reason": "原因",
    "value": "数值",
    "alerts_raised": "告警数",
    "median_s_to_clear": "处置时长中位数(秒)",
    "requests": "调阅申请",
    "none": "无",
    "connected_ratio": "完成比例",
    "grants": "授权",
    "delegations": "转授权",
    "grants_used": "被使用的授权",
    "live_views": "实时调阅",
    "playback_views": "录像回放",
    "exports": "导出",
    "p50_s": "P50(秒)",
    "p95_s": "P95(秒)",
    "camera_id": "摄像机",
    "county": "县区",
    "village": "村",
    "h": "小时",
    "bytes": "字节",
}
EN: dict[str, str] = {
    "title": "Video sharing platform evaluation",
    "period": "Period",
    "org": "Organisation",
    "online_rate": "Online rate",
    "working_rate": "Working rate",
    "integrity": "Recording integrity",
    "cloud_rate": "In cloud",
    "cameras": "Cameras",
    "connected": "Connected",
    "target": "Target",
    "kind": "Kind",
    "registered": "Registered",
    "recorded_h": "Recorded (h)",
    "uploaded_h": "Uploaded (h)",
    "evicted_h": "Evicted unsent (h)",
    "gap_h": "Recording gaps (h)",
    "hours": "hours",
    "delay_p50_s": "Upload delay p50 (s)",
    "delay_p95_s": "Upload delay p95 (s)",
    "counties": "Counties",
    "worst": "Cameras to fix first",
    "targets": "Connected vs target",
    "timeliness": "Upload timeliness",
    "timeliness_by_class": "Upload timeliness by traffic class",
    "evidence": "Evidence",
    "live": "Live",
    "event": "Event",
    "archive": "Archive",
    "backfill": "Backfill",
    "unclassified": "Unclassified",
    "county_class_p95": "Upload delay p95 per county and traffic class (s)",
    "sharing": "Sharing use",
    "incidents": "Incidents",
    "losses": "Data lost",
    "village_hd": "New village HD",
    "existing": "Existing",
    "handheld": "Handheld",
    "chart_daily_rates": "Daily online and working rate",
    "chart_daily_hours": "Daily recorded time",
    "chart_counties": "Counties",
    "switch": "中文",
    "name": "Name",
    "camera": "Camera",
    "class": "Class",
    "segments": "Segments",
    "tier": "Tier",
    "reason": "Reason",
    "value": "Value",
    "alerts_raised": "Alerts raised",
    "median_s_to_clear": "Median time to clear (s)",
    "requests": "Footage requests",
    "none": "none",
    "connected_ratio": "Of target",
    "grants": "Grants",
    "delegations": "Delegations",
    "grants_used": "Grants used",
    "live_views": "Live views",
    "playback_views": "Playback views",
    "exports": "Exports",
    "p50_s": "p50 (s)",
    "p95_s": "p95 (s)",
    "camera_id": "Camera",
    "county": "County",
    "village": "Village",
    "h": "Hours",
    "bytes": "Bytes",
}


def to_json(report: Mapping[str, Any]) -> str:
    return json.dumps(report, ensure_ascii=False, indent=1, default=_jsonable)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float):
        return None
    raise TypeError(f"{type(value).__name__} is not JSON")


TABLE_COLUMNS = (
    "cameras",
    "connected",
    "online_rate",
    "working_rate",
    "integrity",
    "cloud_rate",
    "recorded_h",
    "uploaded_h",
    "evicted_h",
    "gap_h",
    "delay_p50_s",
    "delay_p95_s",
)


def to_csv(report: Mapping[str, Any]) -> str:
    """Counties (with the total) and the worst cameras under one header, then upload
    timeliness per traffic class under its own header."""
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["section", "name", *TABLE_COLUMNS])
    w.writerow(["total", report["organisation"], *(report["summary"][c] for c in TABLE_COLUMNS)])
    for row in report["counties"]:
        w.writerow(["county", row["name"], *(row[c] for c in TABLE_COLUMNS)])
    for row in report["worst"]:
        w.writerow(["camera", row["camera_id"], *(row[c] for c in TABLE_COLUMNS)])
    w.writerow(["section", "name", "traffic_class", "segments", "delay_p50_s", "delay_p95_s"])
    for row in report.get("timeliness_by_class", ()):
        cells = (row["class"], row["segments"], row["p50_s"], row["p95_s"])
        w.writerow(["timeliness", report["organisation"], *cells])
    for county in report["counties"]:
        for cls, t in county.get("delay_by_class", {}).items():
            w.writerow(["timeliness", county["name"], cls, t["segments"], t["p50_s"], t["p95_s"]])
    return buf.getvalue()


def _county_classes(report: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per county: the upload-delay p95 of each traffic class (None: no such uploads)."""
    return [
        {
            "name": c["name"],
            **{k: t["p95_s"] for k, t in c.get("delay_by_class", {}).items()},
        }
        for c in report["counties"]
    ]


def _local(us: int) -> str:
    return (datetime.fromtimestamp(us / 1e6, UTC) + LOCAL).strftime("%Y-%m-%d %H:%M")


def _cell(value: Any, key: str) -> str:
    if value is None:
        return "–"
    if key.endswith("rate") or key in ("integrity", "connected_ratio"):
        return f"{100 * float(value):.2f}%"
    if isinstance(value, float):
        return "∞" if value == float("inf") else f"{value:g}"
    return html.escape(str(value))


def _both(key: str) -> str:
    return (
        f'<span lang="zh-CN">{html.escape(ZH.get(key, key))}</span>'
        f'<span lang="en">{html.escape(EN.get(key, key))}</span>'
    )


def _table(rows: Sequence[Mapping[str, Any]], first: str, cols: tuple[str, ...]) -> str:
    head = "".join(f"<th>{_both(c)}</th>" for c in (first, *cols))
    body = "".join(
        "<tr>" + "".join(f"<td>{_cell(r.get(c), c)}</td>" for c in (first, *cols)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


CSS = """
body{font-family:"Noto Sans CJK SC","Microsoft YaHei",sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em;font-size:13px}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right}
th{background:#f3f3f3} td:first-child{text-align:left}
.cards{display:flex;gap:1em;flex-wrap:wrap} .card{border:1px solid #ccc;padding:.6em 1em}
.card b{display:block;font-size:1.6em}
html[lang=zh-CN] [lang=en]{display:none} html[lang=en] [lang=zh-CN]{display:none}
figure{margin:0 0 1em}
"""

SCRIPT = """
document.getElementById('lang').addEventListener('click', function () {
  var h = document.documentElement;
  h.lang = h.lang === 'en' ? 'zh-CN' : 'en';
});
"""


def to_html(report: Mapping[str, Any]) -> str:
    s = report["summary"]
    period = report["period"]
    cards = "".join(
        f'<div class="card">{_both(k)}<b>{_cell(s[k], k)}</b></div>'
        for k in ("online_rate", "working_rate", "integrity", "cloud_rate")
    )
    figs = "".join(
        f'<figure class="chart" lang="{lang}">{draw(report, table)}</figure>'
        for lang, table in (("zh-CN", ZH), ("en", EN))
        for draw in (charts.daily_rates, charts.daily_hours, charts.counties)
    )
    targets = [{**t, "kind": _both(t["kind"])} for t in report["targets"]]
    timeliness = [{**t, "kind": _both(t["kind"])} for t in report["timeliness"]]
    by_class = [{**t, "class": _both(t["class"])} for t in report.get("timeliness_by_class", ())]
    incidents = report["incidents"]
    footage = report["footage"]
    parts = [
        "<!doctype html>",
        '<html lang="zh-CN"><head><meta charset="utf-8">',
        f"<title>{html.escape(ZH['title'])}</title><style>{CSS}</style></head><body>",
        f'<button id="lang">{_both("switch")}</button>',
        f"<h1>{_both('title')}</h1>",
        f"<p>{_both('period')}: {_local(period['from_us'])} – {_local(period['to_us'])} "
        f"(Asia/Shanghai) · {_both('org')}: {html.escape(report['organisation'])}</p>",
        f'<div class="cards">{cards}</div>',
        figs,
        f"<h2>{_both('targets')}</h2>",
        _table_raw(targets, ("kind", "target", "registered", "connected", "connected_ratio")),
        f"<h2>{_both('counties')}</h2>",
        _table(report["counties"], "name", TABLE_COLUMNS),
        f"<h2>{_both('worst')}</h2>",
        _table(report["worst"], "camera_id", ("county", "village", *TABLE_COLUMNS[2:6])),
        f"<h2>{_both('timeliness')}</h2>",
        _table_raw(timeliness, ("kind", "segments", "p50_s", "p95_s")),
        f"<h2>{_both('timeliness_by_class')}</h2>",
        _table_raw(by_class, ("class", "segments", "p50_s", "p95_s")),
        f"<h3>{_both('county_class_p95')}</h3>",
        _table(_county_classes(report), "name", CLASS_NAMES),
        f"<h2>{_both('sharing')}</h2>",
        _table(
            report["sharing"],
            "tier",
            ("grants", "delegations", "grants_used", "live_views", "playback_views", "exports"),
        ),
        f"<p>{_both('requests')}: {footage['requests']} / done {footage['done']}</p>",
        f"<h2>{_both('incidents')}</h2>",
        f"<p>{_both('alerts_raised')}: {incidents['alerts_raised']} · "
        f"{_both('median_s_to_clear')}: {_cell(incidents['median_s_to_clear'], '')}</p>",
        f"<h2>{_both('losses')}</h2>",
        _table(report["losses"], "reason", ("segments", "h", "bytes")),
        f"<script>{SCRIPT}</script></body></html>",
    ]
    return "\n".join(parts)


def _table_raw(rows: Sequence[Mapping[str, Any]], cols: tuple[str, ...]) -> str:
    """Like _table, the first column's cells already HTML."""
    head = "".join(f"<th>{_both(c)}</th>" for c in cols)
    body = "".join(
        "<tr>"
        + f"<td>{r[cols[0]]}</td>"
        + "".join(f"<td>{_cell(r.get(c), c)}</td>" for c in cols[1:])
        + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
