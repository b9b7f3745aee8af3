// Vigil control centre: log in, list cameras, devices and alerts, play a camera's footage for a
// chosen time range with hls.js, and watch it live with mpegts.js. No build step: a plain ES
// module.
//
// Live (实时) is the live player module's (live-player.js, `VigilLive.attach`): MPEG-TS over a
// WebSocket into mpegts.js, the grant renewed while watching, and the server's honest state
// (connecting, live with the newest frame's age, camera offline, link busy, agent
// unreachable), never "playing" over old footage.
//
// Playing mints a grant for the logged-in user (POST /api/v1/grants) and loads
// /play/{camera}.m3u8 with the session and the grant in headers, only on playlist requests:
// segment URLs carry their own short-lived signature, and may redirect to an S3 store.
// A browser that cannot decode H.265 through Media Source Extensions (Chromium on Linux,
// most older browsers) asks for `rendition=h264`: the controller then points H.265 segments
// at their H.264 conversion (cached on the controller); H.264 segments stay as they are.

const $ = (id) => document.getElementById(id);
const state = { session: null, user: null, hls: null, grant: null, media: null, timer: null, live: null };
const HEVC_TYPE = 'video/mp4; codecs="hvc1.1.6.L93.B0"';

function decodesHevc() {
  const ms = window.ManagedMediaSource || window.MediaSource;
  return Boolean(ms && ms.isTypeSupported && ms.isTypeSupported(HEVC_TYPE));
}

// What a camera's agent last reported (fleet API `camera_states`), in the console's words.
const CAMERA_STATES = {
  starting: "启动中",
  streaming: "在线",
  no_keyframe_yet: "等待关键帧",
  unsupported_codec: "不支持的编码",
  auth_failed: "认证失败",
  unreachable: "无法连接",
  stalled: "卡顿",
  disconnected: "断开",
  file_error: "文件错误",
  failed: "故障",
};
const ALERT_LEVELS = { info: "提示", warning: "警告", critical: "严重" };
// Times are UTC inside Vigil; the city reads Beijing time (no daylight saving: a fixed +08:00).
const SHANGHAI_OFFSET_MS = 8 * 3600 * 1000;
const SHANGHAI = new Intl.DateTimeFormat("zh-CN", {
  timeZone: "Asia/Shanghai",
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
  hour: "2-digit",
  minute: "2-digit",
  second: "2-digit",
  hour12: false,
});

function shanghaiTime(us) {
  return us ? SHANGHAI.format(new Date(us / 1000)) : "-";
}

function stateLabel(s) {
  if (!s) return "未知 unknown";
  return `${CAMERA_STATES[s.state] || s.state} ${s.state}`;
}

function stateClass(s) {
  if (!s) return "";
  if (s.state === "streaming") return "online";
  return s.state === "starting" || s.state === "no_keyframe_yet" ? "note" : "offline";
}

function describeMedia(m) {
  if (!m) return "-";
  const video = `${m.video_codec.toUpperCase() || "?"} ${m.width}x${m.height}` +
    (m.frame_rate ? ` ${m.frame_rate} fps` : "");
  const channels = m.audio_channels === 1 ? " 单声道" : m.audio_channels === 2 ? " 立体声" : "";
  const audio = m.audio_codec
    ? `${m.audio_codec} ${m.audio_sample_rate / 1000} kHz${channels}`
    : "无音频 no audio";
  const profile = m.video_profile ? ` · ${m.video_profile}` : "";
  return `${video}, ${audio}${profile}`;
}

function setText(id, text, cls) {
  const el = $(id);
  el.textContent = text;
  if (cls !== undefined) el.className = cls;
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (state.session) headers.Authorization = `Bearer ${state.session}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = new Error(`${data.reason || res.status}: ${data.message || res.statusText}`);
    err.status = res.status;
    err.reason = data.reason;
    throw err;
  }
  return data;
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.appendChild(td);
  return td;
}

function fill(tableId, items, columns) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren();
  for (const item of items) {
    const row = document.createElement("tr");
    for (const col of columns) {
      const td = cell(row, col(item));
      if (col.cls) td.className = col.cls(item);
    }
    body.appendChild(row);
  }
}

// The range inputs are in Beijing time, whatever the browser's own zone is.
function localInput(ms) {
  return new Date(ms + SHANGHAI_OFFSET_MS).toISOString().slice(0, 19);
}

function inputUs(id) {
  const v = $(id).value;
  const ms = new Date(`${v.length === 16 ? `${v}:00` : v}+08:00`).getTime();
  if (Number.isNaN(ms)) throw new Error(`${id}: not a time`);
  return ms * 1000;
}

// camera id -> its state and reason as its agent last reported them (one request for the fleet).
async function loadStates() {
  const states = new Map();
  for (const s of await api("GET", "/api/v1/camera-states")) states.set(s.camera_id, s);
  return states;
}

async function loadCameras(states) {
  const cams = await api("GET", "/api/v1/cameras");
  const stateCol = (c) => stateLabel(states.get(c.camera_id));
  stateCol.cls = (c) => stateClass(states.get(c.camera_id));
  fill("cameras", cams, [
    (c) => c.camera_id,
    (c) => c.area,
    (c) => c.resource_class,
    (c) => c.device_id,
    stateCol,
    (c) => (states.get(c.camera_id) || {}).reason || "",
    (c) => describeMedia(c.media),
  ]);
  const select = $("camera-select");
  select.replaceChildren();
  for (const c of cams) {
    const opt = document.createElement("option");
    opt.value = c.camera_id;
    opt.textContent = `${c.camera_id} (${c.area})`;
    select.appendChild(opt);
  }
}

async function loadFleet(devices) {
  const stateCol = (d) => (d.online === null ? "未知 unknown" : d.online ? "在线 online" : `离线 offline ${d.offline_reason}`);
  stateCol.cls = (d) => (d.online === null ? "" : d.online ? "online" : "offline");
  fill("devices", devices, [
    (d) => d.device_id,
    (d) => `${d.county} / ${d.site}`,
    stateCol,
    (d) => (d.cameras_connected === null ? "-" : String(d.cameras_connected)),
    (d) => shanghaiTime(d.last_seen_us),
    (d) => String(d.alerts),
  ]);
  const list = $("alerts");
  list.replaceChildren();
  try {
    for (const a of await api("GET", "/api/v1/alerts")) {
      const li = document.createElement("li");
      li.className = a.level === "info" ? "" : "alert-warning";
      const level = `[${ALERT_LEVELS[a.level] || a.level} ${a.level}]`;
      const camera = a.camera_id ? ` ${a.camera_id}` : "";
      li.textContent = `${level} ${shanghaiTime(a.raised_us)} ${a.device_id}${camera} ${a.kind}: ${a.detail}`;
      list.appendChild(li);
    }
  } catch (err) {
    const li = document.createElement("li");
    li.textContent = err.reason === "fleet_unavailable" ? "No fleet view on this controller." : err.message;
    list.appendChild(li);
  }
}

function stopPlayback() {
  if (state.hls) state.hls.destroy();
  state.hls = null;
  state.media = null;
  stopLive();
  setText("media-info", "");
}

function stopLive() {
  const live = state.live;
  state.live = null;
  if (!live) return;
  live.close();
  setText("live-status", "", "");
}

// Live goes through the live player module (live-player.js, window.VigilLive): it mints and
// renews the grant, owns the WebSocket and mpegts.js, and reports the feed's honest state.
function playLive() {
  stopPlayback();
  if (!window.VigilLive) {
    setText("status", "live-player.js 未加载：实时不可用 — live view unavailable", "error");
    return;
  }
  const camera = $("camera-select").value;
  setText("status", `实时 live ${camera}`, "");
  state.live = window.VigilLive.attach($("video"), camera, {
    session: state.session,
    onState: (s) => setText("live-status", s.text, s.level),
    onMediaInfo: (text) => setText("media-info", text),
  });
}

async function play(mode) {
  stopPlayback();
  if (!window.Hls || !window.Hls.isSupported()) {
    setText("status", "hls.js is not installed: playback is unavailable", "error");
    return;
  }
  const camera = $("camera-select").value;
  const now = Date.now() * 1000;
  const live = mode === "live";
  const from = live ? now - 10 * 60e6 : inputUs("from");
  const to = live ? now + 15 * 60e6 : inputUs("to");
  setText("status", "asking for a grant...", "");
  const grant = await api("POST", "/api/v1/grants", {
    operations: [live ? "live" : "playback"],
    cameras: [camera],
    from_us: Math.floor(from),
    to_us: Math.floor(to),
    purpose: `console ${live ? "live view" : "playback"}`,
  });
  state.grant = grant;
  const h264 = !decodesHevc();
  let query = live ? "mode=live" : `from=${Math.floor(from)}&to=${Math.floor(to)}`;
  if (h264) query += "&rendition=h264";
  const url = `/play/${encodeURIComponent(camera)}.m3u8?${query}`;
  const video = $("video");
  const hls = new window.Hls({
    xhrSetup: (xhr, target) => {
      if (target.includes(".m3u8")) {
        xhr.setRequestHeader("Authorization", `Bearer ${state.session}`);
        xhr.setRequestHeader("X-Vigil-Grant", grant.token);
      }
    },
  });
  state.hls = hls;
  hls.on(window.Hls.Events.BUFFER_CODECS, (_event, data) => {
    state.media = {
      video: data.video ? data.video.codec : "",
      audio: data.audio ? data.audio.codec : "",
    };
    const sound = state.media.audio ? `audio ${state.media.audio}` : "no audio track";
    setText("media-info", `video ${state.media.video || "?"}, ${sound}`);
  });
  hls.on(window.Hls.Events.MANIFEST_PARSED, () => {
    const how = h264 ? ", H.264 for this browser" : "";
    setText("status", `playing ${camera} (grant ${grant.grant_id.slice(0, 8)}${how})`, "");
    video.muted = true;
    video.play().catch((err) => setText("status", `cannot start: ${err.message}`, "error"));
  });
  hls.on(window.Hls.Events.ERROR, (_event, data) => {
    const code = data.response ? ` (HTTP ${data.response.code})` : "";
    setText("status", `${data.fatal ? "playback failed" : "playback problem"}: ${data.details}${code}`, data.fatal ? "error" : "note");
  });
  hls.loadSource(url);
  hls.attachMedia(video);
}

async function enterConsole() {
  $("login-panel").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = false;
  setText("whoami", `${state.user.user_id} (${state.user.org_id}, ${state.user.role})`);
  const now = Date.now();
  $("from").value = localInput(now - 10 * 60000);
  $("to").value = localInput(now);
  await refresh();
  if (!state.timer) state.timer = setInterval(() => refresh().catch(() => {}), 10000);
}

// Cameras with their reported state, devices and alerts; the fleet part is optional (a
// controller without a broker still lists its cameras).
async function refresh() {
  let devices = [];
  let states = new Map();
  try {
    devices = await api("GET", "/api/v1/devices");
    states = await loadStates();
  } catch (err) {
    setText("status", err.message, "error");
  }
  const selected = $("camera-select").value;
  await loadCameras(states);
  if (selected) $("camera-select").value = selected;
  await loadFleet(devices).catch((err) => setText("status", err.message, "error"));
}

function init() {
  const missing = [];
  if (!window.Hls) missing.push("hls.js is not installed (run make web): playback is unavailable");
  if (!window.mpegts) missing.push("mpegts.js is not installed (run make web): live view is unavailable");
  if (missing.length) setText("hls-status", `${missing.join("; ")}; everything else works.`);
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    setText("login-error", "");
    try {
      const out = await api("POST", "/api/v1/login", {
        user_id: $("login-user").value,
        password: $("login-password").value,
      });
      state.session = out.token;
      state.user = out.user;
      sessionStorage.setItem("vigil-session", JSON.stringify(out));
      await enterConsole();
    } catch (err) {
      setText("login-error", err.message);
    }
  });
  $("play-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    play("playback").catch((err) => setText("status", err.message, "error"));
  });
  $("live").addEventListener("click", () => playLive());
  $("logout").addEventListener("click", () => {
    stopPlayback();
    sessionStorage.removeItem("vigil-session");
    window.location.reload();
  });
  const saved = sessionStorage.getItem("vigil-session");
  if (saved) {
    const out = JSON.parse(saved);
    if (out.expires_us > Date.now() * 1000) {
      state.session = out.token;
      state.user = out.user;
      enterConsole().catch(() => sessionStorage.removeItem("vigil-session"));
    }
  }
}

// hls.min.js and mpegts.js are deferred classic scripts: they have run before this module executes.
init();
