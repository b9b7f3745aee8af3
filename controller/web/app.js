// Vigil control centre: log in, then the camera tree (left) beside one of the views: fleet
// overview (pushed live), live grid, recorded playback with its timeline, sharing, audit.
// No build step: plain ES modules, every asset served by the controller (no internet).
// Chinese first; the switch in the header changes every label without a reload.

import { api, query, session } from "./api.js";
import { Charts } from "./charts.js";
import { errorText, getLang, savedLang, setLang, shanghai, t, todayShanghai, translatePage } from "./i18n.js";
import { Fleet } from "./fleet.js";
import { LiveGrid } from "./grid.js";
import { localInput, Playback } from "./playback.js";
import { Requests } from "./requests.js";
import { Sharing } from "./share.js";
import { CameraTree } from "./tree.js";
import { Users } from "./users.js";

const $ = (id) => document.getElementById(id);
const app = { tree: null, grid: null, fleet: null, playback: null, sharing: null, requests: null, users: null, charts: null, orgs: [], states: new Map(), reported: new Map(), cams: new Map(), listed: [] };

function message(text, cls) {
  const m = $("message");
  m.textContent = text || "";
  m.className = cls || "error";
}

function fail(err) {
  message(err && err.message ? err.message : String(err));
}

function describeMedia(m) {
  if (!m) return "-";
  const video = `${(m.video_codec || "?").toUpperCase()} ${m.width}x${m.height}` + (m.frame_rate ? ` ${m.frame_rate} fps` : "");
  const ch = m.audio_channels === 1 ? ` ${t("audio.mono")}` : m.audio_channels === 2 ? ` ${t("audio.stereo")}` : "";
  const audio = m.audio_codec ? `${m.audio_codec} ${m.audio_sample_rate / 1000} kHz${ch}` : t("audio.none");
  return `${video}, ${audio}${m.video_profile ? ` · ${m.video_profile}` : ""}`;
}

// What the camera's agent last reported (streaming, unreachable, auth_failed, ...) names the
// state, with the code beside it for the installer; else the fleet's online/offline.
function stateWord(camera) {
  const reported = app.reported.get(camera);
  if (reported && reported.state) return `${t(`state.${reported.state}`)} ${reported.state}`;
  const s = app.states.get(camera);
  return s === true ? t("fleet.online") : s === false ? t("fleet.offline") : t("fleet.unknown");
}

// Who is logged in: user, organisation's name, role (in the page's language).
function whoami() {
  const u = session.user;
  $("whoami").textContent = `${u.user_id} · ${orgName(u.org_id)} · ${t(`role.${u.role}`)}`;
}

// An organisation's name from the policy (成县 for "chengxian"); the id when unknown.
function orgName(orgId) {
  const org = app.orgs.find((o) => o.org_id === orgId);
  return org ? org.name : orgId;
}

export function countyName(county) {
  for (const c of app.cams.values()) if (c.county === county && c.county_name) return c.county_name;
  return county;
}

function remember(c) {
  app.cams.set(c.camera_id, c);
  const select = $("camera-select");
  if (![...select.options].some((o) => o.value === c.camera_id)) {
    const opt = document.createElement("option");
    opt.value = c.camera_id;
    opt.textContent = `${c.name || c.camera_id} (${c.county_name || c.county})`;
    select.appendChild(opt);
  }
}

// The first page of cameras for the playback list (the tree reaches all the others).
async function loadCameras() {
  const cams = await api("GET", `/api/v1/cameras${query({ limit: 50 })}`);
  for (const c of cams) remember(c);
  app.listed = cams;
  await loadReported();
}

// The agents' own reports for the listed cameras (state and reason), then the table again.
async function loadReported() {
  const reported = new Map();
  for (const s of await api("GET", "/api/v1/camera-states")) reported.set(s.camera_id, s);
  app.reported = reported;
  renderCameras();
}

function renderCameras() {
  const body = $("cameras").querySelector("tbody");
  body.replaceChildren(
    ...app.listed.map((c) => {
      const tr = document.createElement("tr");
      const reason = (app.reported.get(c.camera_id) || {}).reason || "";
      for (const text of [c.camera_id, c.name, c.gb_code || "", c.area, c.resource_class, stateWord(c.camera_id), reason, describeMedia(c.media)]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      return tr;
    }),
  );
}

function show(view) {
  if (!app.playback) return; // not logged in yet
  for (const s of document.querySelectorAll(".view")) s.hidden = s.id !== `view-${view}`;
  for (const b of document.querySelectorAll("#nav button")) b.classList.toggle("active", b.dataset.view === view);
  if (view === "playback") app.playback.timeline().catch(fail);
  if (view === "share") app.sharing.refresh().catch(fail);
  if (view === "share") app.requests.refresh().catch(fail); // after sharing's form: below it
  if (view === "audit") app.sharing.audit().catch(fail);
  if (view === "users") app.users.refresh().catch(fail);
  if (view === "fleet" && app.charts) app.charts.resize();
  sessionStorage.setItem("vigil-view", view);
}

function selectCamera(c) {
  remember(c);
  $("camera-select").value = c.camera_id;
  if (!$("view-playback").hidden) app.playback.timeline().catch(fail);
}

async function enterConsole() {
  $("login-panel").hidden = true;
  $("console").hidden = false;
  $("nav").hidden = false;
  $("logout").hidden = false;
  whoami();
  const now = Date.now();
  $("from").value = localInput(now - 10 * 60000);
  $("to").value = localInput(now);
  $("day").value = todayShanghai(now);
  app.playback = new Playback();
  app.grid = new LiveGrid($("grid"), {
    describe: (cam) => {
      const c = app.cams.get(cam) || (app.tree && app.tree.cameras.get(cam));
      return c && c.name ? `${c.name} · ${cam}` : cam;
    },
    reasonText: (reason) => errorText(reason),
  });
  app.tree = new CameraTree($("tree-box"), {
    onSelect: selectCamera,
    onOpen: (c) => {
      selectCamera(c);
      show("live");
      app.grid.openCamera(c.camera_id);
    },
  });
  app.sharing = new Sharing({ camera: () => $("camera-select").value, onError: fail, cameras: app.cams });
  app.requests = new Requests({
    camera: () => $("camera-select").value,
    orgName,
    onError: fail,
    open: (hash) => {
      location.hash = hash;
      openShareLink();
    },
  });
  app.users = new Users({ orgs: () => app.orgs, orgName, onError: fail });
  document.querySelector("#nav [data-view=users]").hidden = session.user.role !== "admin";
  app.charts = new Charts($("charts"), { countyName });
  api("GET", "/api/v1/organisations").then((orgs) => {
    app.orgs = orgs;
    whoami();
  }, fail);
  app.fleet = new Fleet({
    onStates: (states) => {
      app.states = states;
      app.tree.setStates(states);
      if (app.listed.length) loadReported().catch(fail);
    },
    onError: fail,
    countyName,
    onRender: (devices) => app.charts.devices(devices),
  });
  const treeStart = performance.now();
  window.__vigilTreeMs = app.tree.start().then(() => performance.now() - treeStart); // bench, tests
  const shared = location.hash.startsWith("#share=");
  if (!shared) show(sessionStorage.getItem("vigil-view") || "fleet"); // before any wait: a click wins
  app.fleet.start().catch(fail);
  app.charts.start();
  await loadCameras().catch(fail);
  if (shared) openShareLink();
}

// A share link (/#share=TOKEN&camera=C&from=US&to=US): the token stays in the fragment, which
// the browser never sends; playback uses it instead of minting (the grant names this user or
// their organisation as holder, so it is useless to anyone else).
function openShareLink() {
  if (!location.hash.startsWith("#share=")) return false;
  const p = new URLSearchParams(location.hash.slice(1));
  const camera = p.get("camera");
  if (!camera) return false;
  remember(app.cams.get(camera) || { camera_id: camera, name: camera, county: "" });
  $("camera-select").value = camera;
  const from = Number(p.get("from"));
  const to = Number(p.get("to"));
  $("from").value = localInput(from / 1000);
  $("to").value = localInput(to / 1000);
  $("day").value = todayShanghai(from / 1000);
  app.playback.shared = { camera, token: p.get("share") };
  show("playback");
  app.playback.playRange(from, to, undefined, p.get("share")).catch(fail);
  return true;
}

function init() {
  setLang(savedLang());
  translatePage();
  const missing = [];
  if (!window.Hls) missing.push(t("play.noHls"));
  if (!window.mpegts) missing.push(t("play.noMpegts"));
  if (missing.length) $("hls-status").textContent = `${missing.join("；")} ${t("play.others")}`;
  $("lang").addEventListener("click", () => {
    setLang(getLang() === "en" ? "zh-CN" : "en");
    translatePage();
    if (app.tree) app.tree.relabel();
    if (app.fleet) app.fleet.render();
    if (session.user) whoami();
  });
  $("login-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    $("login-error").textContent = "";
    try {
      const out = await api("POST", "/api/v1/login", { user_id: $("login-user").value, password: $("login-password").value });
      session.token = out.token;
      session.user = out.user;
      sessionStorage.setItem("vigil-session", JSON.stringify(out));
      await enterConsole();
    } catch (err) {
      $("login-error").textContent = err.reason === "unauthenticated" ? errorText("bad_credentials") : err.message;
    }
  });
  for (const b of document.querySelectorAll("#nav button")) b.addEventListener("click", () => show(b.dataset.view));
  for (const b of document.querySelectorAll("[data-layout]")) b.addEventListener("click", () => app.grid.layout(Number(b.dataset.layout)));
  $("play-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    app.playback.playRange().catch(fail);
  });
  $("live").addEventListener("click", () => app.playback.playLive());
  $("unmute").addEventListener("click", () => app.playback.unmute());
  $("video").addEventListener("volumechange", () => {
    if (app.playback && app.playback.live) $("unmute").hidden = !$("video").muted;
  });
  $("camera-select").addEventListener("change", () => app.playback.timeline().catch(fail));
  $("day").addEventListener("change", () => app.playback.timeline().catch(fail));
  $("timeline").addEventListener("click", (ev) => {
    const r = $("timeline").getBoundingClientRect();
    app.playback.seekAt((ev.clientX - r.left) / r.width).catch(fail);
  });
  $("speed").addEventListener("change", () => {
    $("video").playbackRate = Number($("speed").value);
  });
  $("snapshot").addEventListener("click", () => app.playback.snapshot());
  $("fetch-device").addEventListener("click", () => app.playback.fetchFromDevice().catch(fail));
  $("export").addEventListener("click", () => app.playback.exportEvidence().catch(fail));
  setInterval(() => app.playback && app.playback.tick(), 250);
  $("logout").addEventListener("click", () => {
    if (app.playback) app.playback.stop();
    if (app.grid) app.grid.stopAll();
    if (app.fleet) app.fleet.stop();
    if (app.charts) app.charts.stop();
    sessionStorage.removeItem("vigil-session");
    window.location.reload();
  });
  const saved = sessionStorage.getItem("vigil-session");
  if (saved) {
    const out = JSON.parse(saved);
    if (out.expires_us > Date.now() * 1000) {
      session.token = out.token;
      session.user = out.user;
      enterConsole().catch(() => sessionStorage.removeItem("vigil-session"));
    }
  }
}

// hls.min.js, mpegts.js and live-player.js are deferred classic scripts: they ran before this.
init();
export { shanghai };
