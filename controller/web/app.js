// Vigil control centre: log in, list cameras, devices and alerts, play a camera's footage for a
// chosen time range with hls.js, and watch it live with mpegts.js. No build step: a plain ES
// module.
//
// Live (实时) is MPEG-TS over a WebSocket (/api/v1/live/{camera}/ws), teed from the camera's
// running capture on its agent: the first message carries the session and a live grant (never
// the URL), the console renews the grant while watching, and the state shown is the server's
// (connecting, live with the newest frame's age, camera offline, agent unreachable), never
// "playing" over old footage.
//
// Playing mints a grant for the logged-in user (POST /api/v1/grants) and loads
// /play/{camera}.m3u8 with the session and the grant in headers, only on playlist requests:
// segment URLs carry their own short-lived signature, and may redirect to an S3 store.
// A browser that cannot decode H.265 through Media Source Extensions (Chromium on Linux,
// most older browsers) asks for `rendition=h264`: the controller then points H.265 segments
// at their H.264 conversion (cached on the controller); H.264 segments stay as they are.

const $ = (id) => document.getElementById(id);
const state = { session: null, user: null, hls: null, grant: null, media: null, timer: null, live: null };
const LIVE_STATES = {
  connecting: "连接中 connecting",
  live: "直播 live",
  camera_offline: "摄像机离线 camera offline",
  agent_unreachable: "设备无法连接 agent unreachable",
};
const LIVE_REFUSALS = {
  revoked: "授权已撤销 grant revoked",
  expired: "授权已过期 grant expired",
  too_slow: "网络太慢，已断开 too slow: dropped",
  grant_required: "需要实时授权 a live grant is needed",
  unauthenticated: "请重新登录 log in again",
};
const LIVE_RENEW_MS = 10 * 60 * 1000; // live grants last 15 min: renew well before
const LIVE_STALE_MS = 4000; // no status from the server this long: the connection is gone
const LIVE_FROZEN_MS = 5000; // "live" but the picture has not moved this long: restart the player
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
  live.stopped = true;
  clearInterval(live.renewTimer);
  clearInterval(live.staleTimer);
  clearTimeout(live.retryTimer);
  if (live.player) live.player.destroy();
  setText("live-status", "", "");
}

function showLiveState(live, msg) {
  const label = LIVE_STATES[msg.state] || msg.state;
  if (msg.state === "live") {
    const age = Math.max(0, (msg.now_us - msg.frame_us) / 1e6);
    setText("live-status", `${label} ${live.camera} · 最新画面 ${age.toFixed(1)} 秒前 (newest frame ${age.toFixed(1)} s ago)`, "online");
  } else if (msg.state === "connecting") {
    setText("live-status", `${label} ${live.camera}…`, "note");
  } else {
    const detail = msg.detail ? ` (${msg.detail})` : "";
    setText("live-status", `${label} ${live.camera} 自 since ${shanghaiTime(msg.since_us)}${detail}`, "offline");
  }
}

// A loader for mpegts.js that owns the WebSocket: it sends the hello (session and grant),
// hands binary messages to the player and text ones (state, refusals) to the console.
function liveLoaderClass(live) {
  const { BaseLoader, LoaderStatus, LoaderErrors } = window.mpegts;
  return class VigilLiveLoader extends BaseLoader {
    static isSupported() {
      return typeof WebSocket !== "undefined";
    }

    constructor() {
      super("vigil-live-loader");
      this.TAG = "VigilLiveLoader";
      this._needStash = true;
      this._ws = null;
      this._received = 0;
      this._aborting = false;
    }

    destroy() {
      if (this._ws) this.abort();
      super.destroy();
    }

    open(dataSource) {
      const ws = new WebSocket(dataSource.url);
      this._ws = ws;
      live.ws = ws;
      ws.binaryType = "arraybuffer";
      this._status = LoaderStatus.kConnecting;
      ws.onopen = () => {
        ws.send(JSON.stringify({ session: state.session, grant: live.grant.token }));
        this._status = LoaderStatus.kBuffering;
      };
      ws.onmessage = (ev) => {
        if (typeof ev.data === "string") {
          liveMessage(live, JSON.parse(ev.data));
          return;
        }
        const start = this._received;
        this._received += ev.data.byteLength;
        live.bytes += ev.data.byteLength;
        if (this._onDataArrival) this._onDataArrival(ev.data, start, this._received);
      };
      ws.onclose = (ev) => {
        if (this._aborting) return;
        this._status = LoaderStatus.kComplete;
        liveClosed(live, ev);
      };
      ws.onerror = () => {
        if (this._aborting) return;
        this._status = LoaderStatus.kError;
        if (this._onError) this._onError(LoaderErrors.EXCEPTION, { code: -1, msg: "WebSocket error" });
      };
    }

    abort() {
      const ws = this._ws;
      this._ws = null;
      if (ws && ws.readyState <= 1) {
        this._aborting = true;
        ws.close();
      }
      this._status = LoaderStatus.kComplete;
    }
  };
}

function liveMessage(live, msg) {
  if (live.stopped) return;
  live.lastStatus = Date.now();
  if (msg.error) {
    live.refused = msg;
    return;
  }
  // The feed came back (camera or agent restarted): a new stream, so a new player.
  if (msg.state === "live" && live.lastState && live.lastState !== "live" && live.lastState !== "connecting") {
    live.lastState = msg.state;
    startLivePlayer(live);
    return;
  }
  live.lastState = msg.state;
  // Live is the camera's own stream (no conversion): H.265 needs a browser that decodes it.
  if (msg.codec === "hevc" && !decodesHevc() && !live.unplayable) {
    live.unplayable = true;
    stopLivePlayerOnly(live);
    setText("media-info", "video H.265 (hevc), live");
    setText(
      "live-status",
      `此浏览器无法解码 H.265 实时画面 this browser cannot decode H.265 live video (${live.camera}); 回放 playback converts it to H.264`,
      "error",
    );
    live.stopped = true;
    return;
  }
  if (!live.unplayable) showLiveState(live, msg);
}

function liveClosed(live, ev) {
  if (live.stopped) return;
  const refusal = live.refused;
  if (refusal || ev.code === 1008) {
    const reason = refusal ? refusal.error : ev.reason;
    const label = LIVE_REFUSALS[reason] || reason || "refused";
    const message = refusal && refusal.message ? `: ${refusal.message}` : "";
    setText("live-status", `实时已停止 live stopped — ${label}${message}`, "error");
    stopLivePlayerOnly(live);
    return;
  }
  setText("live-status", `连接中断，正在重连 connection lost, reconnecting ${live.camera}…`, "note");
  live.retryTimer = setTimeout(() => startLivePlayer(live), 2000);
}

function stopLivePlayerOnly(live) {
  if (live.player) live.player.destroy();
  live.player = null;
}

function startLivePlayer(live) {
  stopLivePlayerOnly(live);
  if (live.stopped) return;
  live.refused = null;
  live.lastStatus = Date.now();
  live.shownAt = Date.now();
  const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
  const url = `${proto}//${window.location.host}/api/v1/live/${encodeURIComponent(live.camera)}/ws`;
  const player = window.mpegts.createPlayer(
    { type: "mpegts", isLive: true, url, hasAudio: false },
    {
      customLoader: liveLoaderClass(live),
      enableStashBuffer: false,
      enableWorker: false,
      liveBufferLatencyChasing: true,
      liveBufferLatencyMaxLatency: 1.5,
      liveBufferLatencyMinRemain: 0.3,
      lazyLoad: false,
    },
  );
  live.player = player;
  player.on(window.mpegts.Events.MEDIA_INFO, (info) => {
    setText("media-info", `video ${info.videoCodec || "?"} ${info.width || "?"}x${info.height || "?"}, live`);
  });
  player.on(window.mpegts.Events.ERROR, (type, detail) => {
    if (!live.stopped && !live.refused && !live.unplayable) setText("live-status", `播放问题 playback problem: ${type} ${detail}`, "note");
  });
  const video = $("video");
  player.attachMediaElement(video);
  player.load();
  video.muted = true;
  const started = player.play();
  if (started && started.catch) started.catch(() => {}); // autoplay refusals: the user presses play
  setText("live-status", `${LIVE_STATES.connecting} ${live.camera}…`, "note");
}

async function playLive() {
  stopPlayback();
  if (!window.mpegts || !window.mpegts.getFeatureList().mseLivePlayback) {
    setText("status", "mpegts.js 未安装或浏览器不支持 MSE：实时不可用 (run make web) — live view unavailable", "error");
    return;
  }
  const camera = $("camera-select").value;
  const now = Date.now() * 1000;
  setText("status", "正在申请实时授权 asking for a live grant...", "");
  const grant = await api("POST", "/api/v1/grants", {
    operations: ["live"],
    cameras: [camera],
    from_us: Math.floor(now - 60e6),
    to_us: Math.floor(now + 12 * 3600e6),
    purpose: "console live view",
  });
  state.grant = grant;
  const live = { camera, grant, player: null, ws: null, bytes: 0, stopped: false, lastState: null, refused: null };
  state.live = live;
  setText("status", `实时 live ${camera} (grant ${grant.grant_id.slice(0, 8)})`, "");
  live.renewTimer = setInterval(async () => {
    try {
      const renewed = await api("POST", "/api/v1/grants/renew", { token: live.grant.token });
      live.grant = renewed;
      if (live.ws && live.ws.readyState === 1) live.ws.send(JSON.stringify({ grant: renewed.token }));
    } catch (err) {
      setText("live-status", `授权续期失败 cannot renew the grant: ${err.message}`, "error");
    }
  }, LIVE_RENEW_MS);
  live.staleTimer = setInterval(() => {
    if (live.player && !live.refused && Date.now() - live.lastStatus > LIVE_STALE_MS) {
      setText("live-status", `连接中断 connection lost (${live.camera})`, "offline");
    }
    // The server says live but this player (not paused by the user) shows the same picture:
    // never pretend. Start a new player (it joins at the feed's latest keyframe).
    const video = $("video");
    if (video.currentTime !== live.shownTime) {
      live.shownTime = video.currentTime;
      live.shownAt = Date.now();
    } else if (live.player && !video.paused && live.lastState === "live" && Date.now() - live.shownAt > LIVE_FROZEN_MS) {
      live.shownAt = Date.now();
      startLivePlayer(live);
      setText("live-status", `画面停滞，正在重新连接 picture frozen, reconnecting ${live.camera}…`, "note");
    }
  }, 1000);
  startLivePlayer(live);
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
  $("live").addEventListener("click", () => playLive().catch((err) => setText("status", err.message, "error")));
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
