"""Glass-to-glass latency in a browser: the JavaScript probe bench.live and the browser live test
run in Chromium.

The camera emulator (`vigil-camsim --stamp-wallclock`) puts each frame's send time into it as
SEI user data (`vigil_camsim.core.with_wallclock`). The probe attaches the console's live player
(`VigilLive.attach`, controller/web/live-player.js) with an `onData` hook that reads the same
MPEG-TS bytes the player gets: for every video PES it notes the PTS and the stamp. At each
presented frame (`requestVideoFrameCallback`) it maps the frame's media time back to a PTS
(mpegts.js starts its timeline at the first DTS it was given; no B-frames here, so DTS = PTS)
and takes `expectedDisplayTime` (as wall time) minus the stamp: camera to screen, every frame.
A frame whose PTS matches no stamp within half a frame is counted `unmatched`, never guessed.

    page.evaluate(PROBE_JS, {"camera": "cam1", "session": token})
    page.evaluate(STATS_JS) -> {frames, first_ms, latencies_ms, unmatched, stamps}
"""

from __future__ import annotations

import statistics
from typing import Any

PROBE_JS = """(args) => {
  const P = { stamps: [], first: null, frames: 0, lat: [], unmatched: 0, rest: null,
              pes: new Map(), firstPts: null, t0: performance.now() };
  window.__probe = P;
  const UUID = Array.from("VIGIL-WALLCLOCK!").map((c) => c.charCodeAt(0));
  function find(b) {
    outer: for (let i = 0; i + 32 <= b.length; i++) {
      for (let k = 0; k < 16; k++) if (b[i + k] !== UUID[k]) continue outer;
      let us = 0;
      for (let k = 16; k < 32; k++) us = us * 10 + (b[i + k] - 48);
      return us;
    }
    return null;
  }
  function ptsOf(b, o) {
    if (!(b[o + 7] & 0x80)) return null;
    const p = o + 9;
    return ((b[p] >> 1) & 7) * 2 ** 30 +
      ((b[p + 1] << 22) | ((b[p + 2] >> 1) << 15) | (b[p + 3] << 7) | (b[p + 4] >> 1));
  }
  function take(pid, payload, start) {
    let cur = P.pes.get(pid);
    if (start) {
      const pes = payload[0] === 0 && payload[1] === 0 && payload[2] === 1;
      if (!pes || (payload[3] & 0xf0) !== 0xe0) {
        P.pes.delete(pid);
        return;
      }
      cur = { pts: ptsOf(payload, 0), head: [], size: 0, done: false };
      if (P.firstPts === null && cur.pts !== null) P.firstPts = cur.pts;
      P.pes.set(pid, cur);
    }
    if (!cur || cur.done) return;
    cur.head.push(payload);
    cur.size += payload.length;
    const joined = new Uint8Array(cur.size);
    let at = 0;
    for (const part of cur.head) { joined.set(part, at); at += part.length; }
    const us = find(joined);
    if (us !== null && cur.pts !== null) {
      P.stamps.push([cur.pts, us]);
      if (P.stamps.length > 2000) P.stamps.splice(0, 1000);
      cur.done = true;
    } else if (cur.size > 4096) {
      cur.done = true;  // the SEI precedes the slice: not in the first 4 kB means none
    }
  }
  function onData(buf) {
    let b = new Uint8Array(buf);
    if (P.rest) {
      const j = new Uint8Array(P.rest.length + b.length);
      j.set(P.rest);
      j.set(b, P.rest.length);
      b = j;
      P.rest = null;
    }
    let i = 0;
    while (i + 188 <= b.length) {
      if (b[i] !== 0x47) { i++; continue; }
      const pid = ((b[i + 1] & 0x1f) << 8) | b[i + 2];
      const start = (b[i + 1] & 0x40) !== 0;
      const afc = (b[i + 3] >> 4) & 3;
      let o = i + 4;
      if (afc & 2) o += 1 + b[i + 4];
      const media = pid !== 0 && pid !== 0x1fff;
      if ((afc & 1) && o < i + 188 && media) take(pid, b.subarray(o, i + 188), start);
      i += 188;
    }
    if (i < b.length) P.rest = b.slice(i);
  }
  const video = document.getElementById(args.video || "video");
  const frame = (_now, md) => {
    P.frames += 1;
    if (P.first === null) P.first = performance.now();
    if (P.firstPts !== null) {
      const want = P.firstPts + md.mediaTime * 90000;
      let best = null;
      for (let k = P.stamps.length - 1; k >= 0 && k >= P.stamps.length - 400; k--) {
        const d = Math.abs(P.stamps[k][0] - want);
        if (best === null || d < best[0]) best = [d, P.stamps[k][1]];
      }
      if (best !== null && best[0] <= 1800) {
        const shown = performance.timeOrigin + md.expectedDisplayTime;
        P.lat.push(shown - best[1] / 1000);
      } else {
        P.unmatched += 1;
      }
    }
    video.requestVideoFrameCallback(frame);
  };
  video.requestVideoFrameCallback(frame);
  window.__probeHandle = window.VigilLive.attach(video, args.camera, {
    session: args.session,
    onData,
    onState: (s) => { P.state = s.state; P.text = s.text; },
  });
}"""

STATS_JS = """() => {
  const P = window.__probe;
  return { frames: P.frames, first_ms: P.first === null ? null : P.first - P.t0,
           latencies_ms: P.lat.slice(), unmatched: P.unmatched, stamps: P.stamps.length,
           state: P.state || "", text: P.text || "" };
}"""

RESET_JS = "() => { window.__probe.lat = []; window.__probe.unmatched = 0; }"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by nearest rank; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def summary(stats: dict[str, Any]) -> dict[str, float]:
    lat = [float(x) for x in stats["latencies_ms"]]
    return {
        "p50": percentile(lat, 50),
        "p95": percentile(lat, 95),
        "mean": statistics.fmean(lat) if lat else float("nan"),
        "count": float(len(lat)),
    }
