"""Benchmark: segment ingest throughput against a bare gRPC receiver, same transport.

8 agents (threads, one mTLS channel each) stream 5 MB segments (10 s at 4 Mbit/s) in 1 MiB
chunks. Two servers, each in its own process, take turns:

- `ingest`: the real controller (`build_controller`): staging + SHA-256 + local object store
  + SQLite catalog row + chain check, per segment;
- `bare`: the same gRPC server set-up (mutual TLS, thread pool, message limits) with a
  servicer that only counts the received bytes.

Each round uploads the same number of bytes to each; servers alternate so both see the same
machine load, and the best round of each counts (the least disturbed by other work on a
shared machine); `ratio_median` is the median of each ingest round over the bare round next
to it. Each round also records the CPU time the server process and the clients
spent per MB: unlike wall-clock rates it does not depend on what else the machine runs.
The last printed line is one JSON object with `ingest_mb_s`, `bare_grpc_mb_s` and `ratio`
(goal: ratio >= 0.8), `cpu_ratio` (bare CPU per MB over ingest CPU per MB, clients
included: the ratio to expect on a quiet machine when both are CPU-bound), and the CPU per
MB of each server and of the clients. The S3 half (bench/ingest_s3.py) follows, its figures
medians of paired rounds (bench/ingest_stats.py).

    python -m bench.ingest --quick
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import grpc
import psutil

from bench.ingest_s3 import count_objects, cpu_s, direct_round, start_seaweed, storage_url
from bench.ingest_stats import Round, local_summary, s3_summary

MiB = 1024 * 1024
SEGMENT_BYTES = 5_000_000  # 10 s at 4 Mbit/s
CHUNK = MiB
AGENTS = 8


@dataclass
class Chain:
    """Where an agent's camera timeline stands, so every round continues the hash chain."""

    next_start_us: int
    prev_sha256: bytes = b""


@dataclass(frozen=True)
class Creds:
    device_id: str
    camera_id: str
    cert: bytes
    key: bytes
    ca: bytes


def _server_process(kind: str, data_dir: str, conn: Connection, storage_url: str = "") -> None:
    """Child process: run one server until the parent closes the pipe."""
    from controller.assembly import build_controller
    from controller.clock import SystemClock
    from controller.components import load_tls
    from controller.config import ControllerConfig
    from controller.grpcserver.server import build_server
    from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc

    config = ControllerConfig.model_validate(
        {
            "data_dir": data_dir,
            "grpc": {"listen": "127.0.0.1:0", "max_workers": 32},
            "ingest": {"max_concurrent_uploads": 16},
            **({"storage_url": storage_url} if storage_url else {}),
        }
    )
    if kind in ("ingest", "s3"):
        from controller.grpcserver.gc_tuning import tune_gc

        tune_gc()  # as `serve` does (assembly.main)
        controller = build_controller(config, SystemClock())
        controller.start()
        port, stop = controller.grpc_port, controller.stop
    else:

        class Bare(ingest_pb2_grpc.IngestServicer):
            def Upload(self, request_iterator: Any, context: Any) -> Any:
                received = 0
                for request in request_iterator:
                    received += len(request.chunk)
                return ingest_pb2.UploadResponse(
                    outcome=ingest_pb2.UploadResponse.OUTCOME_COMMITTED
                )

            def QueryOffset(self, request: Any, context: Any) -> Any:
                return ingest_pb2.QueryOffsetResponse()

        bare = Bare()
        server, port = build_server(
            [lambda s: ingest_pb2_grpc.add_IngestServicer_to_server(bare, s)],
            "127.0.0.1:0",
            load_tls(config),
            config.grpc.max_workers,
            config.grpc.max_message_bytes,
        )
        server.start()

        def stop(grace_s: float = 1.0) -> None:
            server.stop(grace_s).wait()

    conn.send(port)
    try:
        conn.recv()  # parent says stop (or dies: EOFError)
    except EOFError:
        pass
    stop(1.0)


class Server:
    def __init__(self, kind: str, data_dir: Path, storage_url: str = "") -> None:
        ctx = mp.get_context("spawn")
        self._parent, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=_server_process, args=(kind, str(data_dir), child, storage_url)
        )
        self.proc.start()
        if not self._parent.poll(60):
            raise RuntimeError(f"{kind} server did not start")
        self.port: int = self._parent.recv()
        self.ps = psutil.Process(self.proc.pid)

    def stop(self) -> None:
        self._parent.send("stop")
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()


def _payload(size: int) -> bytes:
    """A real MPEG-TS segment of `size` bytes (H.264 frames of noise, as incompressible as
    random bytes). Why: ingest probes every segment's container header, and FFmpeg probing
    random bytes tries every demuxer (15 ms of CPU per segment on the test VM; a real header
    takes 1 ms), or, after a short valid head, scans the whole file for sync bytes (240 ms):
    agents send real segments. All agents send the same bytes (under their own ids)."""
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="mpegts") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 320, 240, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        i = 0
        while buf.tell() < size + 256 * 1024:
            frame = av.VideoFrame(320, 240, "yuv420p")
            for plane in frame.planes:
                plane.update(os.urandom(plane.buffer_size))
            frame.pts = i
            i += 1
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()[:size]


def _setup(data_dir: Path) -> list[Creds]:
    from controller.catalog import Catalog, make_engine
    from controller.clock import SystemClock
    from controller.pki import init_pki, issue_device_cert, load_ca, utc_from_us

    now = utc_from_us(SystemClock().now_us())
    init_pki(data_dir, [], now)
    ca = load_ca(data_dir)
    engine = make_engine(f"sqlite:///{data_dir / 'catalog.db'}")
    catalog = Catalog(engine, SystemClock())
    creds = []
    for i in range(AGENTS):
        device, camera = f"bench-nvr{i}", f"bench-cam{i}"
        catalog.upsert_device(device, "bench", f"site{i}", "nvr")
        catalog.upsert_camera(camera, device)
        pair = issue_device_cert(ca, device, now)
        creds.append(Creds(device, camera, pair.cert_pem, pair.key_pem, ca.cert_pem))
    engine.dispose()
    return creds


def _agent(port: int, creds: Creds, segments: int, data: bytes, chain: Chain) -> int:
    """One agent: upload `segments` segments back to back; returns bytes sent."""
    from protos.vigil.v1 import ingest_pb2, ingest_pb2_grpc

    channel = grpc.secure_channel(
        f"127.0.0.1:{port}",
        grpc.ssl_channel_credentials(creds.ca, creds.key, creds.cert),
        options=[("grpc.max_send_message_length", 2 * MiB)],
    )
    stub = ingest_pb2_grpc.IngestStub(channel)
    sent = 0
    try:
        for _ in range(segments):
            # Hashed per segment, as an agent hashes each segment it sends and as the boto3
            # baseline does (bench/ingest_s3.py): both sides pay for it in the same rounds.
            sha = hashlib.sha256(data).digest()
            header = ingest_pb2.SegmentHeader(
                segment_id=f"{creds.camera_id}-{uuid.uuid4().hex[:16]}",
                camera_id=creds.camera_id,
                start_unix_us=chain.next_start_us,
                duration_us=10_000_000,
                size_bytes=len(data),
                sha256=sha,
                prev_sha256=chain.prev_sha256,
                container="ts",
            )

            def requests(h: Any = header) -> Iterator[Any]:
                yield ingest_pb2.UploadRequest(header=h)
                for pos in range(0, len(data), CHUNK):
                    yield ingest_pb2.UploadRequest(chunk=data[pos : pos + CHUNK])

            reply = stub.Upload(requests(), timeout=120)
            if reply.outcome != ingest_pb2.UploadResponse.OUTCOME_COMMITTED:
                raise RuntimeError(f"unexpected outcome {reply.outcome}")
            chain.next_start_us += 10_000_000
            chain.prev_sha256 = sha
            sent += len(data)
    finally:
        channel.close()
    return sent


def _written(proc: psutil.Process) -> int:
    """Bytes the process caused to be written to storage (/proc/PID/io write_bytes)."""
    try:
        return int(proc.io_counters().write_bytes)
    except (psutil.Error, AttributeError):
        return 0


def _round(
    server: psutil.Process,
    port: int,
    creds: list[Creds],
    segments: int,
    payloads: list[bytes],
    chains: list[Chain],
    store: psutil.Process | None = None,
) -> Round:
    """All agents at once; wall-clock MB/s and CPU ms per MB of the server, the clients and
    the object store's process (`store`, when given).

    CPU time is what the work costs whatever else runs on the machine, so it stays
    comparable when other jobs steal cores (wall-clock rates do not).
    """
    me = psutil.Process()
    barrier = threading.Barrier(len(creds) + 1)

    def run(i: int) -> int:
        barrier.wait()
        return _agent(port, creds[i], segments, payloads[i], chains[i])

    with ThreadPoolExecutor(len(creds)) as pool:
        futures = [pool.submit(run, i) for i in range(len(creds))]
        barrier.wait()
        t0, server0, client0 = time.perf_counter(), cpu_s(server), cpu_s(me)
        written0, store0 = _written(server), cpu_s(store)
        total = sum(f.result() for f in futures)
        elapsed = time.perf_counter() - t0
        server_s, client_s = cpu_s(server) - server0, cpu_s(me) - client0
        written, store_s = _written(server) - written0, cpu_s(store) - store0
    mb = total / 1e6
    return Round(
        mb / elapsed,
        1000 * server_s / mb,
        1000 * client_s / mb,
        written / 1e6 / mb,
        1000 * store_s / mb,
    )


def _s3_rounds(
    work: Path, creds: list[Creds], payloads: list[bytes], segments: int, rounds: int, first_us: int
) -> tuple[list[Round], list[Round]]:
    """Vigil into SeaweedFS and boto3 straight to it, alternating (bench/ingest_s3.py);
    round i of each side ran next to the other's round i (bench/ingest_stats.py)."""
    weed = start_seaweed(work)
    vigil: list[Round] = []
    direct: list[Round] = []
    try:
        server = Server("s3", work, storage_url(weed, "vigil-bench"))
        weed_ps = psutil.Process(weed.proc.pid)
        # Same catalog as the local half: each camera's chain goes on from its last segment.
        chains = [Chain(first_us, hashlib.sha256(p).digest()) for p in payloads]
        try:
            _round(server.ps, server.port, creds, 1, payloads, chains)  # warm-up
            direct_round(weed, "vigil-direct", payloads, 1, weed_ps)
            for r in range(rounds):
                for kind in ("direct", "vigil") if r % 2 == 0 else ("vigil", "direct"):
                    if kind == "vigil":
                        res = _round(
                            server.ps, server.port, creds, segments, payloads, chains, weed_ps
                        )
                        vigil.append(res)
                        extra = (
                            f"controller {res.server_cpu_ms_per_mb:5.2f} disk writes "
                            f"{res.server_write_mb_per_mb:.4f} MB/MB"
                        )
                    else:
                        res = direct_round(weed, "vigil-direct", payloads, segments, weed_ps)
                        direct.append(res)
                        extra = ""
                    print(
                        f"round {r + 1} s3 {kind:6s} {res.mb_s:7.1f} MB/s  cpu ms/MB: "
                        f"client {res.client_cpu_ms_per_mb:5.2f} "
                        f"store {res.store_cpu_ms_per_mb:5.2f} {extra}"
                    )
        finally:
            server.stop()
        stored = count_objects(weed, "vigil-bench", "bench")
        expected = AGENTS * (1 + segments * rounds)
        if stored != expected:
            raise RuntimeError(f"{stored} objects in S3, expected {expected}")
    finally:
        weed.stop()
        weed.remove_stray_sockets()
    return vigil, direct


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short run (< 60 s)")
    parser.add_argument("--segments", type=int, help="segments per agent per round")
    parser.add_argument("--rounds", type=int, help="rounds per server (local half)")
    parser.add_argument("--s3-rounds", type=int, help="rounds per side (S3 half)")
    parser.add_argument("--s3-segments", type=int, help="segments per agent per S3 round")
    parser.add_argument("--no-s3", action="store_true", help="skip the S3 (SeaweedFS) half")
    args = parser.parse_args(argv)
    segments = args.segments or (4 if args.quick else 12)
    rounds = args.rounds or (5 if args.quick else 7)
    # S3 rounds are store-bound and swing with the machine's load: more, shorter pairs.
    s3_rounds = args.s3_rounds or (8 if args.quick else 12)
    s3_segments = args.s3_segments or (3 if args.quick else 6)
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-ingest-"))
    s3: dict[str, Any] = {}
    try:
        creds = _setup(work)
        payloads = [_payload(SEGMENT_BYTES)] * AGENTS
        # The ingest server sees continuous chains (nothing flagged); the bare one ignores them.
        first_us = time.time_ns() // 1000 - 86_400_000_000
        chains = {k: [Chain(first_us) for _ in range(AGENTS)] for k in ("ingest", "bare")}
        servers = {"ingest": Server("ingest", work), "bare": Server("bare", work)}
        results: dict[str, list[Round]] = {"ingest": [], "bare": []}
        try:
            for kind in ("bare", "ingest"):  # warm-up: TLS sessions, threads, caches
                s = servers[kind]
                _round(s.ps, s.port, creds, 1, payloads, chains[kind])
            for r in range(rounds):
                for kind in ("bare", "ingest") if r % 2 == 0 else ("ingest", "bare"):
                    s = servers[kind]
                    res = _round(s.ps, s.port, creds, segments, payloads, chains[kind])
                    results[kind].append(res)
                    print(
                        f"round {r + 1} {kind:6s} {res.mb_s:7.1f} MB/s  cpu ms/MB: "
                        f"server {res.server_cpu_ms_per_mb:5.2f} "
                        f"client {res.client_cpu_ms_per_mb:5.2f}"
                    )
        finally:
            for server in servers.values():
                server.stop()
        stored = sum(1 for _ in (work / "objects").rglob("*.ts"))
        expected = AGENTS * (1 + segments * rounds)
        if stored != expected:
            raise RuntimeError(f"{stored} objects stored, expected {expected}")
        if not args.no_s3:
            vigil, direct = _s3_rounds(
                work, creds, payloads, s3_segments, s3_rounds, first_us + 43_200_000_000
            )
            s3 = s3_summary(vigil, direct)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{AGENTS} agents x {segments} segments x {SEGMENT_BYTES / 1e6:.0f} MB "
        f"({AGENTS * segments * SEGMENT_BYTES / 1e6:.0f} MB per round), {rounds} rounds each; "
        f"S3: {s3_rounds} paired rounds of {s3_segments} segments; local: best round counts, "
        "S3: medians of paired rounds"
    )
    shape = {"agents": AGENTS, "segment_bytes": SEGMENT_BYTES, "chunk_bytes": CHUNK}
    print(json.dumps(local_summary(results["ingest"], results["bare"]) | shape | s3))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
