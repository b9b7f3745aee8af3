// VigilLive: the live player (实时调阅) of the web console, one module any page can use.
//
//   const handle = VigilLive.attach(videoElement, cameraId, {
//     session: "<session token>",       // required: the logged-in user's session
//     grant: {token, grant_id},         // optional: a live grant; else one is minted (POST /api/v1/grants)
//     onState: (s) => {},               // every change: {state, text, level, camera, detail,
//                                       //   frameAgeS, sinceUs, codec, reason}
//     onMediaInfo: (text) => {},        // "video avc1.64000d 320x180, live"
//     onData: (arrayBuffer) => {},      // every media message as received (diagnostics, tests)
//     sound: true,                      // optional: started by the user's click: play with sound
//   });
//   handle.close();                     // stop: socket, timers, player; the element is left empty
//   handle.state();                     // the last state object given to onState
//
// Why a separate module: the console is rewritten around it (issue 14) while the live path
// (issue 13) changes underneath; the API above is the contract between the two.
//
// What it does: MPEG-TS over the WebSocket /api/v1/live/{camera}/ws into mpegts.js (MSE).
// The first message carries the session and the grant (never the URL: URLs end up in logs).
// The grant is renewed while watching and handed to the open socket. The state shown is the
// server's, every second: connecting, live (with the newest frame's age), camera offline since
// HH:MM (Asia/Shanghai), link busy, agent unreachable; never "live" over a frozen picture (a
// player whose picture has not moved for 5 s while the server says live is replaced). When the
// feed returns (camera or agent restarted) a new player starts by itself, no page reload.
// A browser without Media Source Extensions (iPhone Safari) plays the short-segment HLS of the
// same feed (/api/v1/live/{camera}/hls/index.m3u8) natively, with the grant in the query.
//
// States (`s.state`): connecting, live, camera_offline, link_busy, agent_unreachable,
// reconnecting, frozen, unplayable (H.265 without a decoder), stopped (refused: s.reason says
// why: revoked, expired, too_slow, grant_required, unauthenticated, link_busy...).
// `s.level` is a CSS-ish class: note | online | offline | error.

(function () {
  "use strict";

  const STATES = {
    connecting: "连接中 connecting",
    live: "直播 live",
    camera_offline: "摄像机离线 camera offline",
    link_busy: "链路繁忙 link busy",
    agent_unreachable: "设备无法连接 agent unreachable",
  };
  const REFUSALS = {
    revoked: "授权已撤销 grant revoked",
    expired: "授权已过期 grant expired",
    too_slow: "网络太慢，已断开 too slow: dropped",
    grant_required: "需要实时授权 a live grant is needed",
    unauthenticated: "请重新登录 log in again",
    link_busy: "链路繁忙 link busy",
  };
  const RENEW_MS = 10 * 60 * 1000; // console live grants last 12 h; renew well before any end
  const STALE_MS = 4000; // no status from the server this long: the connection is gone
  const FROZEN_MS = 5000; // "live" but the picture has not moved this long: restart the player
  const RETRY_MS = 2000;
  const HEVC_TYPE = 'video/mp4; codecs="hvc1.1.6.L93.B0"';
  const SHANGHAI = new Intl.DateTimeFormat("zh-CN", {
    timeZone: "Asia/Shanghai",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    hour12: false,
  });

  function shanghai(us) {
    return us ? SHANGHAI.format(new Date(us / 1000)) : "-";
  }

  function decodesHevc() {
    const ms = window.ManagedMediaSource || window.MediaSource;
    return Boolean(ms && ms.isTypeSupported && ms.isTypeSupported(HEVC_TYPE));
  }

  function hasMse() {
    return Boolean(window.mpegts && window.mpegts.getFeatureList().mseLivePlayback);
  }

  async function post(path, session, body) {
    const res = await fetch(path, {
      method: "POST",
      headers: { Accept: "application/json", "Content-Type": "application/json", Authorization: `Bearer ${session}` },
      body: JSON.stringify(body),
    });
    const data = await res.json().catch(() => ({}));
    if (!res.ok) throw new Error(`${data.reason || res.status}: ${data.message || res.statusText}`);
    return data;
  }

  function mintGrant(session, camera) {
    const now = Date.now() * 1000;
    return post("/api/v1/grants", session, {
      operations: ["live"],
      cameras: [camera],
      from_us: Math.floor(now - 60e6),
      to_us: Math.floor(now + 12 * 3600e6),
      purpose: "console live view",
    });
  }

  function wsUrl(camera) {
    const proto = window.location.protocol === "https:" ? "wss:" : "ws:";
    return `${proto}//${window.location.host}/api/v1/live/${encodeURIComponent(camera)}/ws`;
  }

  class Live {
    constructor(video, camera, options) {
      this.video = video;
      this.camera = camera;
      this.opts = options || {};
      this.session = this.opts.session;
      this.grant = this.opts.grant || null;
      this.player = null;
      this.ws = null;
      this.hls = false;
      this.stopped = false;
      this.refused = null;
      this.lastState = null;
      this.lastStatus = Date.now();
      this.shownAt = Date.now();
      this.shownTime = -1;
      this.current = null;
      this.timers = [];
      this.begun = false; // muted state set once, at the first start (playVideo)
    }

    emit(state, text, level, extra) {
      this.current = Object.assign({ state, text, level, camera: this.camera }, extra || {});
      if (this.opts.onState) this.opts.onState(this.current);
    }

    async start() {
      if (!this.session) throw new Error("VigilLive.attach needs {session}");
      this.emit("connecting", `${STATES.connecting} ${this.camera}…`, "note");
      if (!this.grant) this.grant = await mintGrant(this.session, this.camera);
      if (this.stopped) return;
      this.timers.push(setInterval(() => this.renew(), RENEW_MS));
      if (!hasMse()) {
        this.startHls();
        return;
      }
      this.timers.push(setInterval(() => this.watchdog(), 1000));
      this.startPlayer();
    }

    async renew() {
      try {
        const renewed = await post("/api/v1/grants/renew", this.session, { token: this.grant.token });
        this.grant = renewed;
        if (this.ws && this.ws.readyState === 1) this.ws.send(JSON.stringify({ grant: renewed.token }));
      } catch (err) {
        this.emit("error", `授权续期失败 cannot renew the grant: ${err.message}`, "error");
      }
    }

    watchdog() {
      if (this.stopped) return;
      if (this.player && !this.refused && Date.now() - this.lastStatus > STALE_MS) {
        this.emit("reconnecting", `连接中断 connection lost (${this.camera})`, "offline");
      }
      // The server says live but this player (not paused by the user) shows the same picture:
      // never pretend. Start a new player (it joins at the feed's latest keyframe).
      const v = this.video;
      if (v.currentTime !== this.shownTime) {
        this.shownTime = v.currentTime;
        this.shownAt = Date.now();
      } else if (this.player && !v.paused && this.lastState === "live" && Date.now() - this.shownAt > FROZEN_MS) {
        this.shownAt = Date.now();
        this.startPlayer();
        this.emit("frozen", `画面停滞，正在重新连接 picture frozen, reconnecting ${this.camera}…`, "note");
      }
    }

    message(msg) {
      if (this.stopped) return;
      this.lastStatus = Date.now();
      if (msg.error) {
        this.refused = msg;
        return;
      }
      // The feed came back (camera or agent restarted): a new stream, so a new player.
      if (msg.state === "live" && this.lastState && this.lastState !== "live" && this.lastState !== "connecting") {
        this.lastState = msg.state;
        this.startPlayer();
        return;
      }
      this.lastState = msg.state;
      // Live is the camera's own stream (no conversion): H.265 needs a browser that decodes it.
      if (msg.codec === "hevc" && !decodesHevc()) {
        this.stopPlayer();
        if (this.opts.onMediaInfo) this.opts.onMediaInfo("video H.265 (hevc), live");
        this.emit(
          "unplayable",
          `此浏览器无法解码 H.265 实时画面 this browser cannot decode H.265 live video (${this.camera}); 回放 playback converts it to H.264`,
          "error",
          { codec: msg.codec },
        );
        this.stopped = true;
        this.clearTimers();
        return;
      }
      this.showState(msg);
    }

    showState(msg) {
      const label = STATES[msg.state] || msg.state;
      const extra = { detail: msg.detail || "", sinceUs: msg.since_us, codec: msg.codec || "" };
      if (msg.state === "live") {
        const age = Math.max(0, (msg.now_us - msg.frame_us) / 1e6);
        extra.frameAgeS = age;
        this.emit("live", `${label} ${this.camera} · 最新画面 ${age.toFixed(1)} 秒前 (newest frame ${age.toFixed(1)} s ago)`, "online", extra);
      } else if (msg.state === "connecting") {
        this.emit("connecting", `${label} ${this.camera}…`, "note", extra);
      } else {
        const detail = msg.detail ? ` (${msg.detail})` : "";
        this.emit(msg.state, `${label} ${this.camera} 自 since ${shanghai(msg.since_us)}${detail}`, "offline", extra);
      }
    }

    closed(ev) {
      if (this.stopped) return;
      const refusal = this.refused;
      if (refusal || ev.code === 1008) {
        const reason = refusal ? refusal.error : ev.reason;
        const label = REFUSALS[reason] || reason || "refused";
        const message = refusal && refusal.message ? `: ${refusal.message}` : "";
        this.stopPlayer();
        if (reason === "link_busy") {
          // The link cannot carry another stream now: say so, and try again later.
          this.emit("link_busy", `${label} ${this.camera}${message}`, "offline", { reason });
          this.retry(5 * RETRY_MS);
          return;
        }
        this.emit("stopped", `实时已停止 live stopped — ${label}${message}`, "error", { reason });
        return;
      }
      this.emit("reconnecting", `连接中断，正在重连 connection lost, reconnecting ${this.camera}…`, "note");
      this.retry(RETRY_MS);
    }

    retry(ms) {
      const t = setTimeout(() => this.startPlayer(), ms);
      this.timers.push({ timeout: t });
    }

    stopPlayer() {
      if (this.player) this.player.destroy();
      this.player = null;
    }

    startPlayer() {
      this.stopPlayer();
      if (this.stopped) return;
      this.refused = null;
      this.lastStatus = Date.now();
      this.shownAt = Date.now();
      const mpegts = window.mpegts;
      const player = mpegts.createPlayer(
        { type: "mpegts", isLive: true, url: wsUrl(this.camera), hasAudio: false },
        {
          customLoader: loaderClass(this),
          enableStashBuffer: false,
          enableWorker: false,
          // A viewer joining a running feed gets the GOP since its last keyframe (up to the
          // camera's keyframe interval behind): seek to the live edge when more than 1 s
          // behind, and play a little faster (1.1x) while more than 0.5 s behind.
          liveBufferLatencyChasing: true,
          liveBufferLatencyMaxLatency: 1.0,
          liveBufferLatencyMinRemain: 0.3,
          liveSync: true,
          liveSyncMaxLatency: 0.5,
          liveSyncTargetLatency: 0.3,
          liveSyncPlaybackRate: 1.1,
          lazyLoad: false,
        },
      );
      this.player = player;
      player.on(mpegts.Events.MEDIA_INFO, (info) => {
        if (this.opts.onMediaInfo) this.opts.onMediaInfo(`video ${info.videoCodec || "?"} ${info.width || "?"}x${info.height || "?"}, live`);
      });
      player.on(mpegts.Events.ERROR, (type, detail) => {
        if (!this.stopped && !this.refused) this.emit("error", `播放问题 playback problem: ${type} ${detail}`, "note");
      });
      player.attachMediaElement(this.video);
      player.load();
      this.playVideo(() => player.play());
      this.emit("connecting", `${STATES.connecting} ${this.camera}…`, "note");
    }

    // No MSE: the same feed as short HLS segments, played by the browser itself. The grant
    // rides in the query here (a native <video> cannot set headers); the playlist's segment
    // URIs carry it on.
    startHls() {
      this.hls = true;
      const q = `session=${encodeURIComponent(this.session)}&grant=${encodeURIComponent(this.grant.token)}`;
      this.video.src = `/api/v1/live/${encodeURIComponent(this.camera)}/hls/index.m3u8?${q}`;
      this.playVideo(() => this.video.play());
      this.emit("connecting", `${STATES.connecting} ${this.camera} (HLS)…`, "note");
      this.video.addEventListener("playing", () => {
        if (!this.stopped) this.emit("live", `${STATES.live} ${this.camera} (HLS)`, "online");
      });
    }

    // Muted, unless the view was started from the user's click (`sound`): browsers allow
    // unmuted play in (and after) a user gesture, and refuse it otherwise. A player restarted
    // later keeps what the user chose since (the element's own muted state); an unmuted start
    // the browser refuses plays muted instead (the page offers to turn the sound on).
    playVideo(play) {
      if (!this.begun) this.video.muted = !this.opts.sound;
      this.begun = true;
      const started = play();
      if (!started || !started.catch) return;
      started.catch(() => {
        if (this.stopped || this.video.muted) return; // autoplay refused: the user presses play
        this.video.muted = true;
        const again = play();
        if (again && again.catch) again.catch(() => {});
      });
    }

    clearTimers() {
      for (const t of this.timers) {
        if (t && t.timeout !== undefined) clearTimeout(t.timeout);
        else clearInterval(t);
      }
      this.timers = [];
    }

    close() {
      this.stopped = true;
      this.clearTimers();
      this.stopPlayer();
      if (this.hls) {
        this.video.removeAttribute("src");
        this.video.load();
      }
    }
  }

  // A loader for mpegts.js that owns the WebSocket: it sends the hello (session and grant),
  // hands binary messages to the player and text ones (state, refusals) to the Live.
  function loaderClass(live) {
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
          ws.send(JSON.stringify({ session: live.session, grant: live.grant.token }));
          this._status = LoaderStatus.kBuffering;
        };
        ws.onmessage = (ev) => {
          if (typeof ev.data === "string") {
            live.message(JSON.parse(ev.data));
            return;
          }
          const start = this._received;
          this._received += ev.data.byteLength;
          if (live.opts.onData) live.opts.onData(ev.data);
          if (this._onDataArrival) this._onDataArrival(ev.data, start, this._received);
        };
        ws.onclose = (ev) => {
          if (this._aborting) return;
          this._status = LoaderStatus.kComplete;
          live.closed(ev);
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

  function attach(video, camera, options) {
    const live = new Live(video, camera, options);
    live.start().catch((err) => {
      if (!live.stopped) live.emit("stopped", `实时已停止 live stopped — ${err.message}`, "error", { reason: "error" });
    });
    return {
      camera,
      close: () => live.close(),
      state: () => live.current,
    };
  }

  window.VigilLive = { attach, decodesHevc, hasMse, STATES };
})();
