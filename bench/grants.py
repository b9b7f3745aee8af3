"""Sharing core benchmark: grant chains, signed segment URLs, 24 h playlists, audit appends.

    python -m bench.grants --quick     # ~10 s, the CI setting
    python -m bench.grants             # longer runs, steadier numbers

Measures, on one core, with the real code paths:
- chain_verify_per_s: decode a bearer token holding a 3-link chain (city -> county -> unit ->
  officer) and verify it (3 Ed25519 signatures, links, narrowing, time, revocation), nothing
  cached; goal >= 2,000/s; chain_verify_cached_per_s: the controller's usual case, the upper
  links' signatures already verified (SignatureCache), only the leaf's checked;
- url_check_per_s: check a signed segment URL's raw query string; goal >= 100,000/s;
- playlist_24h_ms: select and build a 24 h VOD playlist for one camera (8,640 segments of
  10 s, the agent's default) with every URL signed; goal <= 50 ms (median of runs);
  playlist_24h_2s_ms: the same with 2 s segments (43,200 URLs), for scale;
- baselines in the same run: bare_ed25519_per_s (one verify), bare_hmac_per_s (one
  HMAC-SHA256 of a URL-sized message);
- audit_append_per_s: single appends to the audit log on SQLite (WAL) in a temp dir.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import hmac
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from controller.audit.chain import AuditEvent
from controller.audit.log import AuditLog
from controller.catalog import make_engine
from controller.clock import ManualClock
from controller.grants.chain import SignatureCache, verify_chain
from controller.grants.codec import GRANT_DOMAIN, decode_token, encode_token
from controller.grants.testing import GrantKit
from controller.playback.playlist import SegmentRef, build_vod_playlist, select_segments
from controller.playback.urlsign import UrlSigner

S = 1_000_000
DAY_US = 86_400 * S


def rate(fn: Callable[[], object], seconds: float) -> float:
    """Calls per second of `fn` over about `seconds` (CPU time, so a busy machine does not
    deflate it)."""
    n, batch = 0, 64
    start = time.process_time()
    while True:
        for _ in range(batch):
            fn()
        n += batch
        spent = time.process_time() - start
        if spent >= seconds:
            return n / spent
        batch = min(batch * 2, 100_000)


def bench_chain(seconds: float) -> tuple[float, float, float]:
    kit = GrantKit()
    chain, _, unit = kit.chain3()
    token = encode_token(chain.links)
    anchors, now, revoked = kit.anchors, kit.now_us, frozenset({"0" * 32})
    verify_chain(decode_token(token), anchors, now, revoked)  # must pass
    key = next(iter(anchors.values()))
    link = chain.links[0]
    msg = GRANT_DOMAIN + link.raw
    chain_rate = rate(lambda: verify_chain(decode_token(token), anchors, now, revoked), seconds)
    bare = rate(lambda: key.verify(link.signature, msg), seconds)
    # The controller's usual case: the shared upper links were seen before, the leaf is new.
    cache = SignatureCache()
    verify_chain(decode_token(token), anchors, now, revoked, cache=cache)
    leaves = [
        encode_token([*chain.links[:2], kit.child_of(chain.links[1], unit)]) for _ in range(64)
    ]
    state = {"i": 0}

    def fresh_leaf() -> None:
        state["i"] = (state["i"] + 1) % 64
        verify_chain(decode_token(leaves[state["i"]]), anchors, now, revoked, cache=cache)
        cache._seen.popitem(last=True)  # forget the leaf: it stays "new"

    cached = rate(fresh_leaf, seconds)
    return chain_rate, bare, cached


def bench_urls(seconds: float) -> tuple[float, float]:
    signer = UrlSigner.single(b"k" * 32)
    now = 1_767_225_600 * S
    gid = "0123456789abcdef0123456789abcdef"
    exp = UrlSigner.expiry_s(now, now + 3600 * S)
    cases = [(f"cam-01-{i:08d}", signer.query(gid, f"cam-01-{i:08d}", exp)) for i in range(1024)]
    revoked = frozenset({"f" * 32})
    check = signer.check_query
    state = {"i": 0}

    def one() -> None:
        i = state["i"] = (state["i"] + 1) & 1023
        seg, query = cases[i]
        check(seg, query, now, revoked)

    url_rate = rate(one, seconds)
    key, msg = b"k" * 32, f"{gid}.{exp}.1.cam-01-00000001".encode()
    bare = rate(lambda: hmac.digest(key, msg, "sha256"), seconds)
    return url_rate, bare


def bench_playlist(segment_s: int, runs: int) -> float:
    t0 = 1_767_225_600 * S
    dur = segment_s * S
    segs = [
        SegmentRef(f"cam-01-{i:08d}", t0 + i * dur, t0 + (i + 1) * dur)
        for i in range(DAY_US // dur)
    ]
    signer = UrlSigner.single(b"k" * 32)
    gid = "0123456789abcdef0123456789abcdef"
    times = []
    for _ in range(runs):
        start = time.process_time()
        url_for = signer.url_maker("/play/seg/", gid, UrlSigner.expiry_s(t0, t0 + DAY_US))
        chosen = select_segments(segs, t0, t0 + DAY_US, t0, t0 + DAY_US)
        text = build_vod_playlist(chosen, url_for)
        times.append((time.process_time() - start) * 1000)
        assert text.count("#EXTINF") == len(segs)
    return statistics.median(times)


def bench_audit(n: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'audit.db'}")
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        log = AuditLog(engine, ManualClock(), Ed25519PrivateKey.generate())
        start = time.perf_counter()
        for i in range(n):
            log.append(AuditEvent("playlist", actor_user="u", camera_id="cam-01", detail={"i": i}))
        spent = time.perf_counter() - start
        engine.dispose()
    return n / spent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short runs (~10 s in all)")
    args = ap.parse_args()
    seconds = 1.0 if args.quick else 4.0
    runs = 5 if args.quick else 15
    wall = time.perf_counter()
    chain_rate, bare_ed, cached = bench_chain(seconds)
    print(f"3-link chain: {chain_rate:,.0f}/s (bare Ed25519 verify {bare_ed:,.0f}/s)")
    print(f"3-link chain, upper links cached, new leaf: {cached:,.0f}/s")
    url_rate, bare_hmac = bench_urls(seconds)
    print(f"segment URL check: {url_rate:,.0f}/s (bare HMAC-SHA256 {bare_hmac:,.0f}/s)")
    pl10 = bench_playlist(10, runs)
    pl2 = bench_playlist(2, max(3, runs // 3))
    print(f"24 h playlist: {pl10:.1f} ms (10 s segments), {pl2:.1f} ms (2 s segments)")
    audit_rate = bench_audit(300 if args.quick else 2000)
    print(f"audit append (SQLite WAL, one per transaction): {audit_rate:,.0f}/s")
    line = {
        "chain_verify_per_s": round(chain_rate),
        "url_check_per_s": round(url_rate),
        "playlist_24h_ms": round(pl10, 1),
        "bare_ed25519_per_s": round(bare_ed),
        "bare_hmac_per_s": round(bare_hmac),
        "chain_verify_cached_per_s": round(cached),
        "playlist_24h_2s_ms": round(pl2, 1),
        "audit_append_per_s": round(audit_rate),
        "wall_s": round(time.perf_counter() - wall, 1),
    }
    print(json.dumps(line))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
