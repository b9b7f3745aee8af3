// Recorded playback of one camera: a date picker, the day's 24 h timeline (in cloud, on the
// device only, gaps, evicted), click the timeline to play from that wall-clock time, speeds
// 0.5×–8×, the wall-clock time of the picture, a PNG snapshot, "fetch from device" (a
// footage request, with its progress) and "export evidence" (the signed export).
//
// Playing mints a playback grant for the logged-in user (POST /api/v1/grants) and loads
// /play/{camera}.m3u8 with hls.js, the session and the grant in headers on playlist requests
// only (segment URLs carry their own short-lived signature). A browser that cannot decode
// H.265 through MSE asks for rendition=h264 (the controller converts).

import { api, ApiError, session } from "./api.js";
import { addWords, dayStartUs, errorText, shanghai, shanghaiTime, t } from "./i18n.js";

addWords(
  { "tl.unsent": "设备报告有 {n} 个未上传录像（自 {at} 起）：此缺口的录像可能仍在设备上" },
  { "tl.unsent": "The device reports {n} unsent segments (since {at}): this gap is probably still on the device" },
);

const $ = (id) => document.getElementById(id);
const HEVC_TYPE = 'video/mp4; codecs="hvc1.1.6.L93.B0"';
const DAY_US = 24 * 3600e6;
const SHANGHAI_OFFSET_MS = 8 * 3600 * 1000;

export function decodesHevc() {
  const ms = window.ManagedMediaSource || window.MediaSource;
  return Boolean(ms && ms.isTypeSupported && ms.isTypeSupported(HEVC_TYPE));
}

function setText(id, text, cls) {
  const e = $(id);
  if (!e) return;
  e.textContent = text;
  if (cls !== undefined) e.className = cls;
}

// The range inputs are in Beijing time, whatever the browser's own zone is.
export function localInput(ms) {
  return new Date(ms + SHANGHAI_OFFSET_MS).toISOString().slice(0, 19);
}

function inputUs(id) {
  const v = $(id).value;
  const ms = new Date(`${v.length === 16 ? `${v}:00` : v}+08:00`).getTime();
  if (Number.isNaN(ms)) throw new ApiError(400, "bad_request", `${id}`);
  return ms * 1000;
}

// Ranges of [lo, hi) as left/width percentages of the day.
function bar(cls, lo, hi, day0, title) {
  const d = document.createElement("div");
  d.className = `span ${cls}`;
  const a = Math.max(0, (lo - day0) / DAY_US);
  const b = Math.min(1, (hi - day0) / DAY_US);
  d.style.left = `${(a * 100).toFixed(3)}%`;
  d.style.width = `${Math.max(0.05, (b - a) * 100).toFixed(3)}%`;
  d.title = title;
  return d;
}

export class Playback {
  constructor(options) {
    this.opts = options || {};
    this.hls = null;
    this.live = null;
    this.origin = 0; // wall-clock µs of the playlist's time 0
    this.jobTimer = null;
  }

  camera() {
    return $("camera-select").value;
  }

  stop() {
    if (this.hls) this.hls.destroy();
    this.hls = null;
    if (this.live) this.live.close();
    this.live = null;
    setText("live-status", "", "");
    setText("media-info", "");
    $("unmute").hidden = true;
  }

  playLive() {
    this.stop();
    if (!window.VigilLive) {
      setText("status", t("grid.unavailable"), "error");
      return;
    }
    const camera = this.camera();
    setText("status", t("play.live.started", { camera }), "");
    // Started by the user's click on 实时: with sound (the browser allows it in a gesture);
    // while the live view is muted (the browser refused, or the user muted it) 开启声音 shows.
    this.live = window.VigilLive.attach($("video"), camera, {
      session: session.token,
      sound: true,
      onState: (s) => {
        setText("live-status", s.text, s.level);
        $("unmute").hidden = !this.live || !$("video").muted;
      },
      onMediaInfo: (text) => setText("media-info", text),
    });
  }

  // 开启声音: a click is a user gesture, so unmuted play is allowed.
  unmute() {
    const video = $("video");
    video.muted = false;
    const started = video.play();
    if (started && started.catch) started.catch(() => {});
    $("unmute").hidden = true;
  }

  // `token`: a grant someone shared (a share link); else one is minted for this user.
  async playRange(fromUs, toUs, seekUs, token) {
    this.stop();
    if (!window.Hls || !window.Hls.isSupported()) {
      setText("status", t("play.noHls"), "error");
      return;
    }
    const camera = this.camera();
    const from = Math.floor(fromUs === undefined ? inputUs("from") : fromUs);
    const to = Math.floor(toUs === undefined ? inputUs("to") : toUs);
    setText("status", t("play.asking"), "");
    const grant = token
      ? { token, grant_id: "share" }
      : await api("POST", "/api/v1/grants", {
          operations: ["playback"],
          cameras: [camera],
          from_us: from,
          to_us: to,
          purpose: "console playback",
        });
    const h264 = !decodesHevc();
    let q = `from=${from}&to=${to}`;
    if (h264) q += "&rendition=h264";
    const video = $("video");
    const hls = new window.Hls({
      xhrSetup: (xhr, target) => {
        if (target.includes(".m3u8")) {
          xhr.setRequestHeader("Authorization", `Bearer ${session.token}`);
          xhr.setRequestHeader("X-Vigil-Grant", grant.token);
        }
      },
    });
    this.hls = hls;
    this.origin = from;
    hls.on(window.Hls.Events.BUFFER_CODECS, (_e, data) => {
      const v = data.video ? data.video.codec : "?";
      const a = data.audio ? data.audio.codec : t("audio.none");
      setText("media-info", `video ${v}, ${a}`);
    });
    hls.on(window.Hls.Events.LEVEL_LOADED, (_e, data) => {
      // The first segment may start before `from`: #EXT-X-PROGRAM-DATE-TIME says when.
      const frag = data.details && data.details.fragments && data.details.fragments[0];
      if (frag && frag.programDateTime) this.origin = frag.programDateTime * 1000;
    });
    hls.on(window.Hls.Events.MANIFEST_PARSED, () => {
      const how = h264 ? t("play.h264") : "";
      setText("status", t("play.playing", { camera, grant: grant.grant_id.slice(0, 8), how }), "");
      video.muted = true;
      video.playbackRate = Number($("speed").value) || 1;
      video.play().catch((err) => setText("status", t("play.cannotStart", { why: err.message }), "error"));
      if (seekUs !== undefined) {
        const at = Math.max(0, (seekUs - this.origin) / 1e6);
        const jump = () => {
          video.currentTime = Math.max(0, (seekUs - this.origin) / 1e6);
          setText("play-seek", t("play.seeked", { at: shanghai(seekUs) }));
        };
        if (at > 0) video.addEventListener("loadedmetadata", jump, { once: true });
        else setText("play-seek", t("play.seeked", { at: shanghai(seekUs) }));
      }
    });
    const url = `/play/${encodeURIComponent(camera)}.m3u8?${q}`;
    hls.on(window.Hls.Events.ERROR, async (_e, data) => {
      const status = data.response ? data.response.code : 0;
      let why = data.type === "mediaError" ? errorText("media") : errorText("", "", status || 500);
      if (status >= 400 && status < 500 && data.details && data.details.startsWith("manifest")) {
        // The refusal's reason is in the JSON body hls.js does not keep: ask once more.
        const res = await fetch(url, { headers: { Authorization: `Bearer ${session.token}`, "X-Vigil-Grant": grant.token } }).catch(() => null);
        const body = res ? await res.json().catch(() => ({})) : {};
        if (body.reason) why = errorText(body.reason, body.message, status);
      }
      setText("status", data.fatal ? t("play.failed", { why }) : t("play.problem", { why }), data.fatal ? "error" : "note");
    });
    hls.loadSource(url);
    hls.attachMedia(video);
  }

  // The wall-clock time of the picture, every quarter second.
  tick() {
    const video = $("video");
    if (this.hls && this.origin && !video.paused) setText("wallclock", shanghai(this.origin + video.currentTime * 1e6));
  }

  async timeline() {
    const camera = this.camera();
    const day = $("day").value;
    const box = $("timeline");
    if (!camera || !day) return;
    const day0 = dayStartUs(day);
    box.replaceChildren();
    box.dataset.day0 = String(day0);
    // A share being watched lists its camera's timeline under its grant (within its window).
    const shared = this.shared && this.shared.camera === camera ? { headers: { "X-Vigil-Grant": this.shared.token } } : undefined;
    const segs = await api("GET", `/api/v1/cameras/${encodeURIComponent(camera)}/segments?from=${day0}&to=${day0 + DAY_US}`, undefined, shared);
    // Merge touching segments into runs (a day of 2 s segments is 43,200 of them).
    const runs = [];
    for (const s of segs.segments) {
      const last = runs[runs.length - 1];
      if (last && s.start_us - last[1] <= 1.5e6) last[1] = Math.max(last[1], s.end_us);
      else runs.push([s.start_us, s.end_us]);
    }
    const now = Date.now() * 1000;
    let cursor = day0;
    const gaps = [];
    for (const [lo, hi] of runs) {
      if (lo > cursor) gaps.push([cursor, lo]);
      box.append(bar("cloud", lo, hi, day0, `${t("tl.cloud")} ${shanghaiTime(lo)}–${shanghaiTime(hi)}`));
      cursor = hi;
    }
    const end = Math.min(day0 + DAY_US, now);
    if (end > cursor) gaps.push([cursor, end]);
    for (const [lo, hi] of gaps) box.append(bar("gap", lo, hi, day0, `${t("tl.gap")} ${shanghaiTime(lo)}–${shanghaiTime(hi)}`));
    if (!shared) await this.onDevice(camera, day0, gaps).catch(() => {});
    // On the device only, and evicted: what footage requests for this camera found.
    try {
      const jobs = await api("GET", "/api/v1/footage");
      for (const job of jobs.filter((j) => j.cameras.includes(camera))) {
        for (const g of job.gone || []) box.append(bar("evicted", g.start_us, g.end_us, day0, `${t("tl.evicted")}: ${g.reason}`));
        if (job.state === "open") box.append(bar("device", Math.max(job.from_us, day0), job.to_us, day0, t("tl.device")));
      }
    } catch {
      /* footage requests are optional here (viewers may not list them) */
    }
    if (segs.truncated) box.append(bar("note", day0, day0, day0, "…"));
  }

  // From what the controller already has: evicted ranges (the agents' loss reports) and the
  // gaps after the device's oldest unsent segment (probably still on the device).
  async onDevice(camera, day0, gaps) {
    const box = $("timeline");
    const od = await api("GET", `/api/v1/cameras/${encodeURIComponent(camera)}/on-device?from=${day0}&to=${day0 + DAY_US}`);
    for (const r of od.evicted) box.append(bar("evicted", r.start_us, r.end_us, day0, `${t("tl.evicted")} ${shanghaiTime(r.start_us)}–${shanghaiTime(r.end_us)}: ${r.reason}`));
    for (const r of od.unsent || []) box.append(bar("device", r.start_us, r.end_us, day0, `${t("tl.device")} ${shanghaiTime(r.start_us)}–${shanghaiTime(r.end_us)}`));
    if ((od.unsent || []).length || !od.unsent_since_us) return; // exact from the inventory, else estimate
    const title = t("tl.unsent", { n: od.unsent_segments, at: shanghai(od.unsent_since_us) });
    for (const [lo, hi] of gaps) {
      const a = Math.max(lo, od.unsent_since_us);
      if (hi > a) box.append(bar("device", a, hi, day0, title));
    }
  }

  // Click on the timeline: play from that wall-clock time to the end of its hour.
  async seekAt(fraction) {
    const day0 = Number($("timeline").dataset.day0);
    const at = Math.floor(day0 + fraction * DAY_US);
    $("from").value = localInput(at / 1000);
    $("to").value = localInput(at / 1000 + 3600e3);
    await this.playRange(at - 30e6, at + 3600e6, at);
  }

  snapshot() {
    const video = $("video");
    if (!video.videoWidth) return null;
    const c = document.createElement("canvas");
    c.width = video.videoWidth;
    c.height = video.videoHeight;
    c.getContext("2d").drawImage(video, 0, 0);
    const url = c.toDataURL("image/png");
    const a = document.createElement("a");
    a.href = url;
    a.download = `${this.camera()}-${Math.floor(this.origin + video.currentTime * 1e6)}.png`;
    a.id = "snapshot-link";
    a.textContent = a.download;
    $("snapshot-out").replaceChildren(a);
    a.click();
    return url;
  }

  async fetchFromDevice() {
    const from = inputUs("from");
    const to = inputUs("to");
    const job = await api("POST", "/api/v1/footage", {
      cameras: [this.camera()],
      from_us: from,
      to_us: to,
      deadline_us: $("deadline").value ? inputUs("deadline") : Date.now() * 1000 + 3600e6,
      case_id: $("case-id").value || "console",
    });
    setText("job-status", t("job.requested", { job: job.job_id.slice(0, 8) }), "");
    this.follow(job.job_id);
  }

  follow(jobId) {
    clearInterval(this.jobTimer);
    const show = async () => {
      try {
        const j = await api("GET", `/api/v1/footage/${jobId}`);
        const text = t("job.progress", { state: j.state, percent: Math.round(j.percent), done: j.segments_done, total: j.segments_total });
        setText("job-status", text, j.state === "done" ? "online" : "note");
        const prog = $("job-progress");
        prog.max = 100;
        prog.value = j.percent;
        if (j.state !== "open") clearInterval(this.jobTimer);
      } catch (err) {
        setText("job-status", err.message, "error");
        clearInterval(this.jobTimer);
      }
    };
    show();
    this.jobTimer = setInterval(show, 1000);
  }

  async exportEvidence() {
    const camera = this.camera();
    const from = inputUs("from");
    const to = inputUs("to");
    const grant = await api("POST", "/api/v1/grants", {
      operations: ["download"],
      cameras: [camera],
      from_us: from,
      to_us: to,
      purpose: "console evidence export",
      case_id: $("case-id").value || "",
    });
    const res = await fetch("/api/v1/exports", {
      method: "POST",
      headers: { Authorization: `Bearer ${session.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ token: grant.token, camera_id: camera, from_us: from, to_us: to }),
    });
    if (!res.ok) {
      const data = await res.json().catch(() => ({}));
      throw new ApiError(res.status, data.reason, data.message);
    }
    const blob = await res.blob();
    const name = (res.headers.get("Content-Disposition") || "").match(/filename="?([^";]+)/);
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = name ? name[1] : `${camera}.tar`;
    a.textContent = a.download;
    $("export-out").replaceChildren(a);
    a.click();
    setText("job-status", t("export.done", { file: a.download }), "online");
  }
}
