// 考核指标 (KPIs): the evaluation report as a console page, read-only. One request
// (GET /api/v1/report, JSON; admins only, an organisation's admins get their own cameras),
// drawn here: summary cards, a daily online/working chart (inline SVG), connected vs target,
// timeliness per kind of camera and per traffic class (the class each upload was leased under), counties, cameras to fix first, losses, incidents, sharing.
// The self-contained HTML and the CSV are offered as downloads (fetched with the session).
//
// Owned by the KPI work (controller/kpi); the console only hosts it: a nav button
// (data-view="kpi"), the empty #view-kpi section and this module's script tag. The page loads
// when its section is shown (the console's show() unhides it) and follows the language switch
// (<html lang>), with its own zh-CN / English strings.

import { api, apiText, query } from "./api.js";
import { getLang } from "./i18n.js";

const TEXT = {
  "zh-CN": {
    nav: "考核指标", from: "起始日期", to: "截止日期(含)", org: "单位(可选)", run: "查询",
    loading: "正在统计…", html: "下载报告(HTML)", csv: "下载表格(CSV)", zone: "北京时间",
    period: "统计时段", orgName: "单位", cameras: "点位数", connected: "已接入",
    online_rate: "在线率", working_rate: "完好率", integrity: "录像完整率", cloud_rate: "上云率",
    daily: "每日在线率与完好率", targets: "接入目标完成情况", kind: "类别", target: "目标",
    registered: "已登记", ratio: "完成率", timeliness: "上传及时性(按资源类别)",
    segments: "片段数", p50: "时延P50(秒)", p95: "时延P95(秒)", counties: "各县区",
    name: "名称", worst: "优先整改点位", camera: "摄像机", village: "村", county: "县区",
    losses: "数据损失", reason: "原因", hours: "小时", bytes: "字节", none: "无",
    incidents: "告警与处置", raised: "告警次数", cleared: "已消除", toClear: "消除时长中位数",
    sharing: "共享使用情况", tier: "层级", grants: "授权", delegations: "转授权",
    grants_used: "已使用授权", live_views: "实时查看", playback_views: "回放", exports: "导出",
    village_hd: "新建村级高清", existing: "已建存量", handheld: "手持终端",
    buffer_full: "设备存储满", city: "市级", department: "部门", other: "其他",
    byClass: "上传及时性(按业务类别)", trafficClass: "业务类别", evidence: "证据调阅", live: "实时视频",
    event: "告警事件", archive: "存档上云", backfill: "补传", unclassified: "未分类",
  },
  en: {
    nav: "KPIs", from: "From", to: "To (inclusive)", org: "Organisation (optional)", run: "Show",
    loading: "Computing…", html: "Download report (HTML)", csv: "Download table (CSV)", zone: "Beijing time",
    period: "Period", orgName: "Organisation", cameras: "Cameras", connected: "Connected",
    online_rate: "Online rate", working_rate: "Working rate", integrity: "Recording integrity", cloud_rate: "In cloud",
    daily: "Daily online and working rate", targets: "Connected vs target", kind: "Kind", target: "Target",
    registered: "Registered", ratio: "Of target", timeliness: "Upload timeliness (per resource class)",
    segments: "Segments", p50: "Delay p50 (s)", p95: "Delay p95 (s)", counties: "Counties",
    name: "Name", worst: "Cameras to fix first", camera: "Camera", village: "Village", county: "County",
    losses: "Data lost", reason: "Reason", hours: "Hours", bytes: "Bytes", none: "none",
    incidents: "Incidents", raised: "Alerts raised", cleared: "Cleared", toClear: "Median time to clear",
    sharing: "Sharing use", tier: "Tier", grants: "Grants", delegations: "Delegations",
    grants_used: "Grants used", live_views: "Live views", playback_views: "Playback", exports: "Exports",
    village_hd: "New village HD", existing: "Existing", handheld: "Handheld terminals",
    buffer_full: "Device storage full", city: "City", department: "Department", other: "Other",
    byClass: "Upload timeliness (per traffic class)", trafficClass: "Traffic class", evidence: "Evidence", live: "Live",
    event: "Event", archive: "Archive", backfill: "Backfill", unclassified: "Unclassified",
  },
};

const DAY_MS = 86400000;
const SHANGHAI_MS = 8 * 3600000;

function tr(key) {
  const dict = TEXT[getLang()] || TEXT["zh-CN"];
  return dict[key] !== undefined ? dict[key] : key;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  for (const c of children) e.append(c instanceof Node ? c : String(c));
  return e;
}

function pct(v) {
  return v === null || v === undefined ? "-" : `${(v * 100).toFixed(2)}%`;
}

function num(v) {
  return v === null || v === undefined ? "-" : Number(v).toLocaleString(getLang() === "en" ? "en" : "zh-CN");
}

function day(us) {
  return new Date(us / 1000 + SHANGHAI_MS).toISOString().slice(0, 10);
}

// A Shanghai calendar day (YYYY-MM-DD) as the ISO time of its midnight, +08:00.
function midnight(date) {
  return `${date}T00:00:00+08:00`;
}

function nextDay(date) {
  return new Date(Date.parse(`${date}T00:00:00Z`) + DAY_MS).toISOString().slice(0, 10);
}

function table(id, columns, rows) {
  const head = el("tr", {}, ...columns.map(([key]) => el("th", {}, tr(key))));
  const body = rows.map((r) => el("tr", {}, ...columns.map(([key, show]) => el("td", {}, show ? show(r) : r[key] ?? "-"))));
  if (!rows.length) body.push(el("tr", {}, el("td", { colspan: String(columns.length) }, tr("none"))));
  return el("table", { id, class: "kpi-table" }, el("thead", {}, head), el("tbody", {}, ...body));
}

// The daily online and working rates as two lines over 0-100 %, drawn as inline SVG.
function dailyChart(daily) {
  const w = 640, h = 190, left = 40, bottom = 20;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
  svg.setAttribute("id", "kpi-daily");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", tr("daily"));
  const x = (i) => left + (daily.length > 1 ? (i * (w - left - 10)) / (daily.length - 1) : (w - left) / 2);
  const y = (v) => 20 + (1 - v) * (h - bottom - 20);
  const add = (tag, attrs) => {
    const e = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
    svg.appendChild(e);
    return e;
  };
  for (const v of [0, 0.5, 1]) {
    add("line", { x1: left, x2: w - 10, y1: y(v), y2: y(v), stroke: "#ddd" });
    add("text", { x: 2, y: y(v) + 4, "font-size": 11 }).textContent = `${v * 100}%`;
  }
  const series = [["online_rate", "#1f77b4"], ["working_rate", "#2ca02c"]];
  series.forEach(([key, color], n) => {
    const pts = daily.map((d, i) => (d[key] === null ? null : [x(i), y(d[key])])).filter(Boolean);
    if (pts.length) add("polyline", { points: pts.map((p) => p.map((v) => v.toFixed(1)).join(",")).join(" "), fill: "none", stroke: color, "stroke-width": 2, class: `line-${key}` });
    for (const [px, py] of pts) add("circle", { cx: px.toFixed(1), cy: py.toFixed(1), r: 3, fill: color });
    add("text", { x: w - 200 + n * 95, y: 10, "font-size": 12, fill: color }).textContent = `● ${tr(key)}`;
  });
  if (daily.length) {
    add("text", { x: left, y: h - 4, "font-size": 11 }).textContent = day(daily[0].day_us);
    add("text", { x: w - 80, y: h - 4, "font-size": 11 }).textContent = day(daily[daily.length - 1].day_us);
  }
  return el("figure", { class: "kpi-chart" }, el("figcaption", {}, tr("daily")), svg);
}

export class KpiPage {
  constructor(section) {
    this.section = section;
    this.report = null;
    this.error = "";
    this.form = { from: "", to: "", org: "" };
  }

  defaults() {
    if (this.form.to) return;
    const today = new Date(Date.now() + SHANGHAI_MS).toISOString().slice(0, 10);
    this.form.to = new Date(Date.parse(`${today}T00:00:00Z`) - DAY_MS).toISOString().slice(0, 10);
    this.form.from = new Date(Date.parse(`${today}T00:00:00Z`) - 30 * DAY_MS).toISOString().slice(0, 10);
  }

  params(format) {
    return query({ from: midnight(this.form.from), to: midnight(nextDay(this.form.to)), org: this.form.org, format });
  }

  async load() {
    this.defaults();
    this.error = "";
    this.loading = true;
    this.render();
    try {
      this.report = await api("GET", `/api/v1/report${this.params()}`);
    } catch (err) {
      this.report = null;
      this.error = err.message;
    }
    this.loading = false;
    this.render();
  }

  async download(format) {
    try {
      const text = await apiText(`/api/v1/report${this.params(format)}`);
      const type = format === "csv" ? "text/csv" : "text/html";
      const a = el("a", { href: URL.createObjectURL(new Blob([text], { type })), download: `vigil-report-${this.form.from}-${this.form.to}.${format}` });
      document.body.appendChild(a);
      a.click();
      a.remove();
    } catch (err) {
      this.error = err.message;
      this.render();
    }
  }

  controls() {
    const input = (key, type) => {
      const i = el("input", { id: `kpi-${key}`, type, value: this.form[key] });
      i.addEventListener("change", () => (this.form[key] = i.value));
      return el("label", {}, `${tr(key)} `, i);
    };
    const run = el("button", { id: "kpi-run", type: "submit" }, tr("run"));
    const form = el("form", { id: "kpi-form", class: "toolbar" }, input("from", "date"), input("to", "date"), input("org", "text"), run, el("span", { class: "note" }, tr("zone")));
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.load();
    });
    const html = el("button", { id: "kpi-html", type: "button" }, tr("html"));
    const csv = el("button", { id: "kpi-csv", type: "button" }, tr("csv"));
    html.addEventListener("click", () => this.download("html"));
    csv.addEventListener("click", () => this.download("csv"));
    return [form, el("div", { class: "toolbar" }, html, csv)];
  }

  render() {
    const parts = [el("h2", {}, tr("nav")), ...this.controls()];
    if (this.loading) parts.push(el("p", { id: "kpi-status", role: "status" }, tr("loading")));
    if (this.error) parts.push(el("p", { id: "kpi-error", class: "error", role: "alert" }, this.error));
    const r = this.report;
    if (r && !this.loading) parts.push(...this.figures(r));
    this.section.replaceChildren(...parts);
  }

  figures(r) {
    const s = r.summary;
    const card = (key) => el("div", { class: "card", "data-kpi": key }, el("span", {}, tr(key)), el("b", {}, pct(s[key])));
    const kind = (row) => tr(row.kind);
    return [
      el("p", { id: "kpi-period" }, `${tr("period")}: ${day(r.period.from_us)} – ${day(r.period.to_us - 1)} · ${tr("orgName")}: ${r.organisation} · ${tr("cameras")} ${num(s.cameras)} · ${tr("connected")} ${num(s.connected)}`),
      el("div", { id: "kpi-cards", class: "cards" }, ...["online_rate", "working_rate", "integrity", "cloud_rate"].map(card)),
      dailyChart(r.daily),
      el("h3", {}, tr("targets")),
      table("kpi-targets", [["kind", kind], ["target", (t) => num(t.target)], ["registered"], ["connected"], ["ratio", (t) => pct(t.connected_ratio)]], r.targets),
      el("h3", {}, tr("timeliness")),
      table("kpi-timeliness", [["kind", kind], ["segments", (t) => num(t.segments)], ["p50", (t) => t.p50_s ?? "-"], ["p95", (t) => t.p95_s ?? "-"]], r.timeliness),
      el("h3", {}, tr("byClass")),
      table("kpi-timeliness-class", [["trafficClass", (t) => tr(t.class)], ["segments", (t) => num(t.segments)], ["p50", (t) => t.p50_s ?? "-"], ["p95", (t) => t.p95_s ?? "-"]], r.timeliness_by_class || []),
      el("h3", {}, tr("counties")),
      table("kpi-counties", [["name"], ["cameras"], ["connected"], ["online_rate", (c) => pct(c.online_rate)], ["working_rate", (c) => pct(c.working_rate)], ["integrity", (c) => pct(c.integrity)], ["cloud_rate", (c) => pct(c.cloud_rate)]], r.counties),
      el("h3", {}, tr("worst")),
      table("kpi-worst", [["camera", (c) => c.camera_id], ["county"], ["village"], ["kind", kind], ["online_rate", (c) => pct(c.online_rate)], ["working_rate", (c) => pct(c.working_rate)], ["integrity", (c) => pct(c.integrity)]], r.worst.slice(0, 20)),
      el("h3", {}, tr("losses")),
      table("kpi-losses", [["reason", (l) => tr(l.reason)], ["segments"], ["hours", (l) => l.h], ["bytes", (l) => num(l.bytes)]], r.losses),
      el("h3", {}, tr("incidents")),
      el("p", { id: "kpi-incidents" }, `${tr("raised")}: ${r.incidents.alerts_raised} · ${tr("cleared")}: ${r.incidents.alerts_cleared} · ${tr("toClear")}: ${r.incidents.median_s_to_clear ?? "-"} s`),
      el("h3", {}, tr("sharing")),
      table("kpi-sharing", [["tier", (t) => tr(t.tier)], ["grants"], ["delegations"], ["grants_used"], ["live_views"], ["playback_views"], ["exports"]], r.sharing),
    ];
  }
}

// Wiring: label the nav button, render when the section is shown, relabel on a language switch.
function start() {
  const section = document.getElementById("view-kpi");
  const button = document.querySelector('#nav button[data-view="kpi"]');
  if (!section || !button) return;
  const page = new KpiPage(section);
  const label = () => (button.textContent = tr("nav"));
  label();
  let shown = false;
  new MutationObserver(() => {
    const visible = !section.hidden;
    if (visible && !shown) page.load();
    shown = visible;
  }).observe(section, { attributes: true, attributeFilter: ["hidden"] });
  new MutationObserver(() => {
    label();
    if (shown) page.render();
  }).observe(document.documentElement, { attributes: true, attributeFilter: ["lang"] });
  window.__vigilKpi = page; // tests
}

start();
