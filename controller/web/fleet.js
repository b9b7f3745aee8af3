// Fleet at a glance, pushed: the controller's /api/v1/events stream (Server-Sent Events read
// with fetch, so the session travels in the Authorization header) carries the visible
// devices' and cameras' online state and the active alerts each time they change; the page
// never reloads. Alerts show when they were raised (Beijing time), for how long, and can be
// acknowledged (audited by the controller). A device row opens its detail: buffer, unsent
// bytes and the oldest unsent age, disk, fps per camera, clock offset. GB/T 28181 devices
// (NVRs and cameras registered over 国标, no agent) are listed with their state from their
// registration: online or why not, last keepalive, channels; their detail says where they
// registered from and to which controller replica (that one holds their sessions).

import { api, authHeaders } from "./api.js";
import { duration, shanghai, t } from "./i18n.js";
import { el } from "./dom.js";

const MAX_ROWS = 200;

function alertKey(a) {
  return `${a.device_id}|${a.kind}|${a.camera_id}|${a.raised_us}`;
}

function mib(bytes) {
  return `${(Number(bytes || 0) / 1048576).toFixed(1)} MiB`;
}

export class Fleet {
  constructor(options) {
    this.opts = options || {};
    this.snapshot = { devices: {}, cameras: {}, alerts: [] };
    this.devices = [];
    this.acked = new Set(JSON.parse(sessionStorage.getItem("vigil-acked") || "[]"));
    this.stopped = false;
    this.abort = null;
    this.ticker = setInterval(() => this.renderAlerts(), 1000);
  }

  async start() {
    await this.loadDevices();
    this.connect();
  }

  stop() {
    this.stopped = true;
    clearInterval(this.ticker);
    if (this.abort) this.abort.abort();
  }

  async loadDevices() {
    try {
      this.devices = await api("GET", "/api/v1/devices");
    } catch (err) {
      this.devices = [];
      this.opts.onError && this.opts.onError(err);
    }
    this.render();
  }

  async connect() {
    while (!this.stopped) {
      this.abort = new AbortController();
      try {
        const res = await fetch("/api/v1/events", { headers: authHeaders({ Accept: "text/event-stream" }), signal: this.abort.signal });
        if (!res.ok || !res.body) throw new Error(String(res.status));
        this.setLive(true);
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buf = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += decoder.decode(value, { stream: true });
          let cut;
          while ((cut = buf.indexOf("\n\n")) >= 0) {
            this.onEvent(buf.slice(0, cut));
            buf = buf.slice(cut + 2);
          }
        }
      } catch {
        /* the loop reconnects */
      }
      if (this.stopped) return;
      this.setLive(false);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }

  setLive(ok) {
    const badge = document.getElementById("fleet-live");
    if (!badge) return;
    badge.textContent = ok ? t("fleet.live") : t("fleet.stale");
    badge.className = ok ? "badge online" : "badge offline";
  }

  onEvent(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trim());
    }
    if (type !== "fleet" || !data.length) return;
    const snap = JSON.parse(data.join("\n"));
    const devicesChanged = JSON.stringify(snap.devices) !== JSON.stringify(this.snapshot.devices);
    this.snapshot = snap;
    for (const d of this.devices) if (d.device_id in snap.devices) d.online = snap.devices[d.device_id];
    const states = new Map(Object.entries(snap.cameras));
    this.opts.onStates && this.opts.onStates(states);
    if (devicesChanged) this.loadDevices();
    else this.render();
  }

  render() {
    const cams = Object.values(this.snapshot.cameras);
    const online = this.devices.filter((d) => d.online === true).length;
    const sum = document.getElementById("fleet-summary");
    if (sum) {
      sum.replaceChildren(
        this.card("fleet.devices", `${online}/${this.devices.length}`, online === this.devices.length),
        this.card("fleet.cameras", `${cams.filter(Boolean).length}/${cams.length}`, cams.every(Boolean)),
        this.card("fleet.alerts", String(this.snapshot.alerts.length), !this.snapshot.alerts.length),
      );
    }
    const body = document.querySelector("#devices tbody");
    if (body) {
      // Offline and unknown first; a city has thousands of devices: the first MAX_ROWS here,
      // the tree and the search reach every one.
      const rank = (d) => (d.online === false ? 0 : d.online === null ? 2 : 1);
      const shown = [...this.devices].sort((a, b) => rank(a) - rank(b)).slice(0, MAX_ROWS);
      const more = document.getElementById("devices-more");
      if (more) more.textContent = this.devices.length > MAX_ROWS ? t("fleet.more", { n: MAX_ROWS, total: this.devices.length }) : "";
      body.replaceChildren(
        ...shown.map((d) => {
          const tr = el("tr");
          tr.dataset.device = d.device_id;
          const state = d.online === null ? t("fleet.unknown") : d.online ? t("fleet.online") : `${t("fleet.offline")} ${d.offline_reason || ""}`;
          const id = el("td", "", d.device_id);
          if (d.gb) id.append(" ", el("span", "badge gb", t("fleet.gb")));
          const cams = d.gb ? gbChannels(d.gb) : d.cameras_connected === null ? "-" : String(d.cameras_connected);
          tr.append(
            id,
            el("td", "", `${this.opts.countyName ? this.opts.countyName(d.county) : d.county} / ${d.site}`),
            el("td", d.online === null ? "" : d.online ? "online" : "offline", state),
            el("td", "", cams),
            el("td", "", shanghai(d.last_seen_us)),
            el("td", "", String(d.alerts)),
          );
          tr.addEventListener("click", () => this.detail(d.device_id));
          return tr;
        }),
      );
    }
    this.renderAlerts();
    if (this.opts.onRender) this.opts.onRender(this.devices);
  }

  card(key, value, good) {
    const div = el("div", `card ${good ? "online" : "offline"}`);
    div.append(el("span", "label", t(key)), el("strong", "", value));
    return div;
  }

  renderAlerts() {
    const list = document.getElementById("alerts");
    if (!list) return;
    const now = Date.now() * 1000;
    if (!this.snapshot.alerts.length) {
      list.replaceChildren(el("li", "note", t("fleet.noAlerts")));
      return;
    }
    list.replaceChildren(
      ...this.snapshot.alerts.map((a) => {
        const li = el("li", a.level === "info" ? "" : "alert-warning");
        const key = alertKey(a);
        const level = `[${t(`level.${a.level}`)}]`;
        const when = t("fleet.raised", { at: shanghai(a.raised_us), dur: duration((now - a.raised_us) / 1e6) });
        li.append(el("span", "", `${level} ${a.device_id}${a.camera_id ? ` ${a.camera_id}` : ""} ${a.kind}: ${a.detail} — ${when} `));
        if (this.acked.has(key)) li.append(el("span", "note", t("fleet.acked")));
        else {
          const b = el("button", "ack", t("fleet.ack"));
          b.type = "button";
          b.addEventListener("click", () => this.ack(a, key));
          li.append(b);
        }
        return li;
      }),
    );
  }

  async ack(a, key) {
    try {
      await api("POST", "/api/v1/alerts/ack", { device_id: a.device_id, kind: a.kind, camera_id: a.camera_id, raised_us: a.raised_us });
      this.acked.add(key);
      sessionStorage.setItem("vigil-acked", JSON.stringify([...this.acked]));
      this.renderAlerts();
    } catch (err) {
      this.opts.onError && this.opts.onError(err);
    }
  }

  async detail(deviceId) {
    const box = document.getElementById("device-detail");
    if (!box) return;
    try {
      const d = await api("GET", `/api/v1/devices/${encodeURIComponent(deviceId)}`);
      const rows = d.gb ? this.gbRows(d) : this.agentRows(d);
      const table = el("table", "kv");
      for (const [k, v] of rows) {
        const tr = el("tr");
        tr.append(el("th", "", k), el("td", "", v));
        table.append(tr);
      }
      box.replaceChildren(el("h3", "", t("fleet.detail")), table);
      box.hidden = false;
    } catch (err) {
      box.replaceChildren(el("p", "error", err.message));
      box.hidden = false;
    }
  }

  gbRows(d) {
    const g = d.gb;
    const state = d.online ? t("fleet.online") : `${t("fleet.offline")} ${d.offline_reason || ""}`;
    const rows = [
      [t("fleet.device"), `${d.device_id} (${t("fleet.gb")})`],
      [t("fleet.state"), state],
      [t("fleet.gbRegistered"), g.registered_us ? shanghai(g.registered_us) : "-"],
      [t("fleet.gbExpires"), g.expires_us ? shanghai(g.expires_us) : "-"],
      [t("fleet.gbKeepalive"), g.last_keepalive_us ? shanghai(g.last_keepalive_us) : "-"],
      [t("fleet.gbContact"), g.contact || "-"],
      [t("fleet.gbReplica"), g.replica || "-"],
    ];
    if (g.not_answering_since_us) rows.push([t("fleet.gbSilent"), shanghai(g.not_answering_since_us)]);
    const chans = g.channel_states || [];
    if (!chans.length) rows.push([t("fleet.cameras"), `${t("fleet.channels", { n: g.channels })}: ${(d.cameras || []).join(", ")}`]);
    else rows.push([t("fleet.cameras"), gbChannels(g)]);
    // each channel with its own state: an NVR online with one camera reported OFF in its Catalog
    for (const c of chans) rows.push([c.camera_id, channelState(c)]);
    return rows;
  }

  agentRows(d) {
    const h = d.health || {};
    const rows = [
      [t("fleet.device"), d.device_id],
      ["buffer / 缓存", mib(h.buffer_bytes)],
      ["unsent / 未上传", `${h.segments_unsent || 0} · ${t("dur.s", { n: Math.round(h.oldest_unsent_age_s || 0) })}`],
      ["disk / 磁盘", `${mib(h.disk_free_bytes)} / ${mib(h.disk_total_bytes)}`],
      ["clock / 时钟偏差", d.clock_offset_s === null ? "-" : `${d.clock_offset_s.toFixed(3)} s ± ${d.clock_offset_error_s.toFixed(3)}`],
    ];
    for (const c of h.cameras || []) rows.push([c.camera_id, `${(c.fps || 0).toFixed(1)} fps · ${t(`state.${c.state || (c.connected ? "streaming" : "disconnected")}`)}`]);
    return rows;
  }
}

// "2 个通道" and, when the device's Catalog reports some OFF while it is online, how many.
function gbChannels(g) {
  const off = (g.channel_states || []).filter((c) => c.reason === "catalog_off").length;
  const all = t("fleet.channels", { n: g.channels });
  return off ? `${all} · ${t("fleet.channelsOff", { n: off })}` : all;
}

// A GB channel's state (online, or offline with why) and its Catalog Status as reported.
function channelState(c) {
  const state = c.online === null ? t("fleet.unknown") : c.online ? t("fleet.online") : t(`fleet.ch.${c.reason}`);
  const said = c.reported_us ? ` · ${t("fleet.chStatus", { s: c.status.toUpperCase(), at: shanghai(c.reported_us) })}` : "";
  return state + said;
}
