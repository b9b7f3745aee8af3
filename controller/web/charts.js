// Fleet at a glance as charts (ECharts, vendored: /static/vendor/echarts.min.js, pinned and
// SHA-256 checked by scripts/fetch_web_assets.sh; nothing is loaded from anywhere else):
// devices online/offline per county (from the pushed fleet state), and, for admins and
// operators, each uplink's planned and delivered rate against its capacity and the planned
// upload rate per traffic class (the scheduler's plan, re-read every 10 s while shown).

import { api, session } from "./api.js";
import { addWords, t } from "./i18n.js";
import { el } from "./dom.js";

addWords(
  {
    "chart.devices": "各区县设备在线",
    "chart.links": "链路利用率（占容量 %）",
    "chart.classes": "按业务类别的计划上传速率（Mbit/s）",
    "chart.online": "在线",
    "chart.offline": "离线",
    "chart.unknown": "未知",
    "chart.planned": "计划",
    "chart.delivered": "实际",
    "chart.noEcharts": "图表库 ECharts 未安装（make web）：图表不可用。",
    "chart.noScheduler": "本控制器未运行上传调度：无链路图表。",
    "class.evidence": "调取",
    "class.live": "实时",
    "class.event": "告警",
    "class.archive": "归档",
    "class.backfill": "补传",
  },
  {
    "chart.devices": "Devices online per county",
    "chart.links": "Link utilisation (% of capacity)",
    "chart.classes": "Planned upload rate per traffic class (Mbit/s)",
    "chart.online": "online",
    "chart.offline": "offline",
    "chart.unknown": "unknown",
    "chart.planned": "planned",
    "chart.delivered": "delivered",
    "chart.noEcharts": "The ECharts library is not installed (make web): no charts.",
    "chart.noScheduler": "This controller runs no upload scheduler: no link charts.",
    "class.evidence": "evidence",
    "class.live": "live",
    "class.event": "event",
    "class.archive": "archive",
    "class.backfill": "backfill",
  },
);

const POLL_MS = 10_000;

// Pure: devices per county -> [{county, online, offline, unknown}], counties in first-seen order.
export function perCounty(devices, name) {
  const rows = new Map();
  for (const d of devices) {
    const key = name(d.county);
    if (!rows.has(key)) rows.set(key, { county: key, online: 0, offline: 0, unknown: 0 });
    const r = rows.get(key);
    if (d.online === true) r.online += 1;
    else if (d.online === false) r.offline += 1;
    else r.unknown += 1;
  }
  return [...rows.values()];
}

// Pure: the plan's devices -> {class: planned bit/s}.
export function perClass(devices) {
  const out = {};
  for (const d of devices) for (const [cls, bps] of Object.entries(d.rates_bps || {})) out[cls] = (out[cls] || 0) + bps;
  return out;
}

export class Charts {
  // options: countyName(county)
  constructor(box, options) {
    this.box = box;
    this.opts = options;
    this.charts = {};
    this.timer = null;
    this.noScheduler = false;
  }

  chart(key) {
    if (!this.charts[key]) {
      const div = el("div", "chart");
      div.id = `chart-${key}`;
      this.box.append(div);
      this.charts[key] = window.echarts.init(div, null, { renderer: "canvas" });
    }
    return this.charts[key];
  }

  devices(devices) {
    if (!window.echarts) {
      this.box.replaceChildren(el("p", "note", t("chart.noEcharts")));
      return;
    }
    const rows = perCounty(devices, this.opts.countyName);
    const series = ["online", "offline", "unknown"].map((k) => ({
      name: t(`chart.${k}`),
      type: "bar",
      stack: "d",
      data: rows.map((r) => r[k]),
      itemStyle: { color: { online: "#2e7d32", offline: "#c62828", unknown: "#9e9e9e" }[k] },
    }));
    this.chart("devices").setOption({
      animation: false,
      title: { text: t("chart.devices"), textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis" },
      legend: { top: 22 },
      grid: { top: 56, bottom: 24, left: 36, right: 12 },
      xAxis: { type: "category", data: rows.map((r) => r.county) },
      yAxis: { type: "value", minInterval: 1 },
      series,
    });
  }

  async scheduler() {
    if (!window.echarts || this.noScheduler) return;
    if (!["admin", "operator"].includes(session.user.role)) return;
    let plan;
    try {
      plan = await api("GET", "/api/v1/scheduler/plan");
    } catch (err) {
      if (err.reason === "scheduler_unavailable") {
        this.noScheduler = true;
        this.box.append(el("p", "note", t("chart.noScheduler")));
        return;
      }
      throw err;
    }
    const links = plan.links;
    const pct = (v, cap) => (cap > 0 ? Math.round((1000 * v) / cap) / 10 : 0);
    this.chart("links").setOption({
      animation: false,
      title: { text: t("chart.links"), textStyle: { fontSize: 13 } },
      tooltip: { trigger: "axis" },
      legend: { top: 22 },
      grid: { top: 56, bottom: 24, left: 40, right: 12 },
      xAxis: { type: "category", data: links.map((l) => l.link_id) },
      yAxis: { type: "value", max: (v) => Math.max(100, Math.ceil(v.max)) },
      series: [
        { name: t("chart.planned"), type: "bar", data: links.map((l) => pct(l.planned_bps, l.capacity_bps)) },
        { name: t("chart.delivered"), type: "bar", data: links.map((l) => pct(l.delivered_bps, l.capacity_bps)) },
      ],
    });
    const classes = perClass(plan.devices);
    this.chart("classes").setOption({
      animation: false,
      title: { text: t("chart.classes"), textStyle: { fontSize: 13 } },
      tooltip: { trigger: "item" },
      grid: { top: 40, bottom: 24, left: 40, right: 12 },
      xAxis: { type: "category", data: Object.keys(classes).map((c) => t(`class.${c}`)) },
      yAxis: { type: "value" },
      series: [{ type: "bar", data: Object.values(classes).map((b) => Math.round(b / 1e4) / 100) }],
    });
  }

  start() {
    if (this.timer) return;
    const tick = () => this.scheduler().catch(() => {});
    tick();
    this.timer = setInterval(tick, POLL_MS);
  }

  stop() {
    clearInterval(this.timer);
    this.timer = null;
  }

  resize() {
    for (const c of Object.values(this.charts)) c.resize();
  }
}
