// The live grid: 1, 4, 9 or 16 windows; drop a camera from the tree (or double-click it) and
// the window plays it through the live player module (live-player.js, VigilLive.attach),
// showing the feed's honest state (connecting, live with the frame's age, camera offline,
// link busy, agent unreachable, refused) in the console's language.

import { session } from "./api.js";
import { t } from "./i18n.js";

const LIVE_STATES_ZH = {
  connecting: "连接中",
  live: "直播",
  camera_offline: "摄像机离线",
  link_busy: "链路繁忙",
  agent_unreachable: "设备无法连接",
  reconnecting: "重新连接中",
  frozen: "画面停滞，重启播放",
  unplayable: "浏览器无法解码（H.265）",
  stopped: "已停止",
};
const LIVE_STATES_EN = {
  connecting: "connecting",
  live: "live",
  camera_offline: "camera offline",
  link_busy: "link busy",
  agent_unreachable: "agent unreachable",
  reconnecting: "reconnecting",
  frozen: "picture frozen: restarting",
  unplayable: "cannot decode (H.265)",
  stopped: "stopped",
};

export class LiveGrid {
  constructor(root, options) {
    this.root = root;
    this.opts = options || {};
    this.cells = [];
    this.size = 4;
    this.layout(4);
  }

  layout(n) {
    const keep = this.cells.map((c) => c.camera).filter(Boolean);
    for (const cell of this.cells) this.stop(cell);
    this.size = n;
    const cols = Math.round(Math.sqrt(n));
    this.root.className = `grid grid-${cols}`;
    this.root.replaceChildren();
    this.cells = [];
    for (let i = 0; i < n; i++) this.cells.push(this.cell(i));
    this.root.append(...this.cells.map((c) => c.div));
    keep.slice(0, n).forEach((cam, i) => this.play(this.cells[i], cam));
  }

  cell(i) {
    const div = document.createElement("div");
    div.className = "cell empty";
    div.dataset.index = String(i);
    const video = document.createElement("video");
    video.muted = true;
    video.playsInline = true;
    video.autoplay = true;
    const bar = document.createElement("div");
    bar.className = "bar";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = t("grid.drop");
    const state = document.createElement("span");
    state.className = "state";
    const close = document.createElement("button");
    close.type = "button";
    close.className = "close";
    close.textContent = "×";
    close.title = t("grid.close");
    bar.append(name, state, close);
    div.append(video, bar);
    const cell = { div, video, name, state, camera: null, handle: null };
    div.addEventListener("dragover", (ev) => {
      ev.preventDefault();
      div.classList.add("over");
    });
    div.addEventListener("dragleave", () => div.classList.remove("over"));
    div.addEventListener("drop", (ev) => {
      ev.preventDefault();
      div.classList.remove("over");
      const camera = ev.dataTransfer.getData("text/plain");
      if (camera) this.play(cell, camera);
    });
    close.addEventListener("click", () => this.stop(cell));
    return cell;
  }

  // Into the first empty window (or the first one when all are busy).
  openCamera(camera) {
    const cell = this.cells.find((c) => !c.camera) || this.cells[0];
    this.play(cell, camera);
  }

  play(cell, camera) {
    this.stop(cell);
    cell.camera = camera;
    cell.div.classList.remove("empty");
    cell.div.dataset.camera = camera;
    const described = this.opts.describe ? this.opts.describe(camera) : camera;
    cell.name.textContent = described;
    if (!window.VigilLive) {
      this.show(cell, { state: "stopped", level: "error", text: t("grid.unavailable") });
      return;
    }
    cell.handle = window.VigilLive.attach(cell.video, camera, {
      session: session.token,
      onState: (s) => this.show(cell, s),
    });
  }

  show(cell, s) {
    const words = document.documentElement.lang === "en" ? LIVE_STATES_EN : LIVE_STATES_ZH;
    let text = words[s.state] || s.text;
    if (s.state === "live" && typeof s.frameAgeS === "number") text += ` ${s.frameAgeS.toFixed(1)} s`;
    if (s.state === "stopped" && s.reason && this.opts.reasonText) text = this.opts.reasonText(s.reason);
    cell.state.textContent = text;
    cell.state.className = `state ${s.level || ""}`;
    cell.div.dataset.state = s.state;
  }

  stop(cell) {
    if (cell.handle) cell.handle.close();
    cell.handle = null;
    cell.camera = null;
    delete cell.div.dataset.camera;
    delete cell.div.dataset.state;
    cell.div.classList.add("empty");
    cell.name.textContent = t("grid.drop");
    cell.state.textContent = "";
  }

  stopAll() {
    for (const cell of this.cells) this.stop(cell);
  }
}
