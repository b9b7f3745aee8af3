"""Benchmark: how many agents one controller process holds, and what each costs.

`python -m bench.agents --quick` runs the real controller (`build_controller` with the
scheduler, grpc.aio, mutual TLS, SQLite, local store) in its own process, and N simulated
agents (bench.agent_swarm: real gRPC clients, each its own mTLS connection and device
certificate) spread over several client processes. Every agent reports an inventory and
holds a StreamLeases stream while a fixed upload load runs (4 uploaders streaming 5 MB
segments back to back, as bench.ingest). Then every agent, at a random moment within
`spread_s` (N / 1,000 s, at least 2 s: 1,000 reports a second), finishes its lease and reports
a new segment, and two delays are measured: `lease_p99_ms`, from the controller's answer to
the inventory (the report is in the scheduler's hands) until the stream delivers the lease
naming that segment (replan -> lease: the scheduler's share; defaults, tick 0.5 s, replans
coalesced), and `lease_total_p99_ms`, from the agent's first report call (FinishLease, then
ReportInventory) until that lease, which adds the two unary calls' own time under the upload
load (`report_calls_p99_ms`: on a saturated 2-core machine this is CPU queueing, not the
scheduler). The same run then measures a bare `grpc.aio` server (same TLS, an AgentControl
servicer whose StreamLeases sends one message and idles) holding the same number of idle
streams.

Memory per agent is the server process's RSS growth from before the agents connect to after
they all hold a stream, divided by N. The last line printed is one JSON object:
`agents`, `controller_rss_mb`, `rss_kb_per_agent`, `lease_p99_ms` (goal <= 1000),
`upload_mb_s_under_load`, `bare_rss_kb_per_agent`, `ratio` (bare / Vigil memory per agent,
goal >= 0.5), how the agents were split (`client_processes`, `nofile_limit`) and what the
scheduler did (`scheduler`: replans, mean replan time, topology placements).

Where a report call's time goes, replan phase only: `report_wait_ms` (per method,
FinishLease and ReportInventory: p50/p99 from the agent's call to its handler's start: the
client, TLS and the server waiting to accept the call; one machine, one monotonic clock),
`inventory_call_p50/p99_ms` (ReportInventory alone, as the agent saw it),
`server_call_ms_mean` (each AgentControl call from its handler's start to its answer: the
metrics interceptor's histogram), `server_loop_lag_ms` (how late the controller's gRPC
event loop ran a 50 ms timer), `client_loop_lag_ms` (the same in each agent process) and
`gc_pauses_ms` (the controller's longest generation-1/2 collections).

The bench raises its soft RLIMIT_NOFILE to the hard limit (children inherit it); one process
may hold at most that many descriptors (20,000 here), so the agents are split over client
processes of at most `PER_PROCESS`, and the controller holds one connection per agent.
`--quick` runs 1,000 agents (< 60 s on the 2-core reference machine); the full run (10,000,
the default without `--quick`) is the figure in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psutil

from bench.ingest import SEGMENT_BYTES, Chain, Creds, _agent, _payload, _setup

PER_PROCESS = 2_500
UPLOADERS = 4


def _controller_process(data_dir: str, agents: int, conn: Connection) -> None:
    """Child: the real controller with the scheduler, until the parent says stop."""
    from controller.assembly import Parts, build_controller
    from controller.clock import SystemClock
    from controller.config import ControllerConfig
    from controller.grpcserver.gc_tuning import tune_gc
    from controller.scheduler.options import SchedulerOptions

    config = ControllerConfig.model_validate(
        {
            "data_dir": data_dir,
            "grpc": {"listen": "127.0.0.1:0", "max_workers": 64,
                     "max_lease_streams": agents + 100},
            "ingest": {"max_concurrent_uploads": 16},
            "mqtt": {"mode": "off"},
            "http": {"enabled": False},
        }
    )  # fmt: skip
    # The defaults (tick 0.5 s) but for each device's own link: room for a lease each.
    options = SchedulerOptions(default_link_bps=20_000_000)
    waits = _time_waits_before_the_handler()
    pauses = _gc_pauses()
    tune_gc()  # as `serve` does
    controller = build_controller(config, SystemClock(), Parts(scheduler=options))
    controller.start()
    lag = LoopLag()
    asyncio.run_coroutine_threadsafe(lag.run(), controller.server.loop)
    conn.send(controller.grpc_port)
    try:
        while conn.recv() == "mark":  # the replan phase starts: its own figures from here
            lag.mark()
            for kind in waits.values():
                kind.clear()
            pauses.clear()
            calls0 = _call_seconds(controller.registry)
    except EOFError:
        return controller.stop(1.0)
    counters: dict[str, Any] = dict(controller.scheduler.counters) if controller.scheduler else {}
    calls = _call_seconds(controller.registry)
    counters["server_call_ms_mean"] = {
        m: round((s - calls0.get(m, (0, 0))[0]) * 1000 / max(1, n - calls0.get(m, (0, 0))[1]), 1)
        for m, (s, n) in calls.items()
    }
    counters["loop_lag_ms"] = lag.summary()
    longest = sorted(pauses, key=lambda p: -p[1])
    counters["gc_pauses_ms"] = {
        str(gen): [round(ms, 1) for g, ms in longest if g == gen][:5] for gen in (1, 2)
    }
    counters["report_wait_ms"] = {
        name: {"p50": _p50(sorted(ms)), "p99": _p99(sorted(ms)), "calls": len(ms)}
        for name, ms in waits.items()
    }
    conn.send(counters)  # the scheduler's work during the run, for the JSON
    if "DIAG_DUMP" in globals():
        globals()["DIAG_DUMP"]()
    controller.stop(1.0)


SENT_KEY = "vigil-bench-sent-ns"  # the agent's CLOCK_MONOTONIC when it made the call


def _gc_pauses() -> list[tuple[int, float]]:
    """(this child process only) (generation, ms) of every collection of generation 1 or 2:
    a collection holds the GIL, so every thread (the gRPC event loop too) waits for it."""
    import gc

    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def note(phase: str, info: dict[str, int]) -> None:
        if info["generation"] == 0:
            return
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], (time.perf_counter() - started[0]) * 1000))

    gc.callbacks.append(note)
    return pauses


def _time_waits_before_the_handler() -> dict[str, list[float]]:
    """(this child process only) ReportInventory and FinishLease wrapped to note, for each
    call carrying
    `SENT_KEY`, how long it took from the agent's call to the handler's start (ms): the
    client, the connection and the server's wait to accept the call (one machine, one
    monotonic clock). The list it fills is returned."""
    from controller.scheduler.grpc_service import AgentControlServicer

    waits: dict[str, list[float]] = {"ReportInventory": [], "FinishLease": []}

    def timing(name: str) -> Any:
        handler = getattr(AgentControlServicer, name)

        async def timed(self: Any, request: Any, context: Any) -> Any:
            for key, value in context.invocation_metadata() or ():
                if key == SENT_KEY:
                    waits[name].append((time.monotonic_ns() - int(value)) / 1e6)
            return await handler(self, request, context)

        return timed

    for name in waits:
        setattr(AgentControlServicer, name, timing(name))
    return waits


def _call_seconds(registry: Any) -> dict[str, tuple[float, float]]:
    """(seconds, calls) so far of the AgentControl unary calls, server side (the metrics
    interceptor's histogram: from the handler's start to its answer)."""
    found: dict[str, list[float]] = {}
    for family in registry.collect():
        if family.name != "vigil_grpc_call_seconds":
            continue
        for sample in family.samples:
            method = sample.labels.get("method", "")
            if not method.startswith("AgentControl/"):
                continue
            if sample.name.endswith("_sum"):
                found.setdefault(method, [0.0, 0.0])[0] = sample.value
            elif sample.name.endswith("_count"):
                found.setdefault(method, [0.0, 0.0])[1] = sample.value
    return {m: (v[0], v[1]) for m, v in found.items()}


class LoopLag:
    """How late an event loop runs a 50 ms timer: the time a ready callback waits for the
    loop (its own CPU work, or the GIL held by other threads). From the last `mark()`."""

    def __init__(self) -> None:
        self.lags: list[float] = []

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + 0.05
            await asyncio.sleep(0.05)
            self.lags.append((loop.time() - due) * 1000)

    def mark(self) -> None:
        self.lags = []

    def summary(self) -> dict[str, float | None]:
        ms = sorted(self.lags)
        return {"p50": _p50(ms), "p99": _p99(ms), "max": round(ms[-1], 1) if ms else None}


def _bare_process(data_dir: str, conn: Connection) -> None:
    """Child: a bare grpc.aio server (same mutual TLS and options) holding idle streams."""
    import grpc

    from controller.components import load_tls
    from controller.config import ControllerConfig
    from controller.grpcserver.server import server_options
    from protos.vigil.v1 import agent_control_pb2, agent_control_pb2_grpc

    config = ControllerConfig.model_validate({"data_dir": data_dir})

    class Bare(agent_control_pb2_grpc.AgentControlServicer):
        async def StreamLeases(self, request: Any, context: Any) -> Any:
            yield agent_control_pb2.Lease()
            await asyncio.Event().wait()

    async def serve() -> None:
        server = grpc.aio.server(options=server_options(config.grpc.max_message_bytes))
        bare: Any = Bare()  # type: ignore[abstract]  # only StreamLeases is served
        agent_control_pb2_grpc.add_AgentControlServicer_to_server(bare, server)
        port = server.add_secure_port("127.0.0.1:0", load_tls(config))
        await server.start()
        conn.send(port)
        await asyncio.get_running_loop().run_in_executor(None, _wait_stop, conn)
        await server.stop(1.0)

    asyncio.run(serve())


def _wait_stop(conn: Connection) -> None:
    try:
        conn.recv()
    except EOFError:
        pass


class Server:
    def __init__(self, target: Any, *args: Any) -> None:
        ctx = mp.get_context("spawn")
        self._parent, child = ctx.Pipe()
        self.proc = ctx.Process(target=target, args=(*args, child))
        self.proc.start()
        if not self._parent.poll(60):
            raise RuntimeError("server did not start")
        self.port: int = self._parent.recv()
        self.ps = psutil.Process(self.proc.pid)

    def rss_kb(self) -> int:
        return int(self.ps.memory_info().rss // 1024)

    def mark(self) -> None:
        """The replan phase starts (the controller's own figures count from here)."""
        self._parent.send("mark")

    def stop(self) -> Any:
        """Stop the server; returns what it sends back on the way (or None)."""
        said = None
        try:
            self._parent.send("stop")
            if self._parent.poll(30):
                said = self._parent.recv()
        except (EOFError, OSError):
            pass
        self.proc.join(30)
        if self.proc.is_alive():
            self.proc.kill()
        return said


class Uploads:
    """The fixed upload load: `UPLOADERS` agents uploading back to back (bench.ingest)."""

    def __init__(self, port: int, creds: list[Creds]) -> None:
        self._port = port
        self._creds = creds[:UPLOADERS]
        # A real MPEG-TS segment, as agents send (bench.ingest._payload): ingest probes each
        # segment's header, and FFmpeg probing random bytes costs ~56 ms of CPU per segment
        # (a real header ~1 ms), which made the upload load itself the controller's biggest
        # CPU cost here.
        payload = _payload(SEGMENT_BYTES)
        self._payloads = [payload for _ in self._creds]
        first = time.time_ns() // 1000 - 86_400_000_000
        self._chains = [Chain(first) for _ in self._creds]
        self.sent = 0
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True)
            for i in range(len(self._creds))
        ]

    def _run(self, i: int) -> None:
        while not self._stop.is_set():
            try:
                n = _agent(self._port, self._creds[i], 1, self._payloads[i], self._chains[i])
            except Exception as exc:  # a refused or failed upload is a finding, not a crash
                self.errors.append(str(exc)[:200])
                time.sleep(0.5)
                continue
            with self._lock:
                self.sent += n

    def start(self) -> Uploads:
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(120)


def _swarms(
    data: Path, port: int, agents: int, bare: bool, timeout_s: float = 120.0
) -> list[subprocess.Popen[str]]:
    procs = []
    for first in range(0, agents, PER_PROCESS):
        count = min(PER_PROCESS, agents - first)
        argv = [sys.executable, "-m", "bench.agent_swarm", "--data-dir", str(data),
                "--port", str(port), "--first", str(first), "--count", str(count),
                "--connect-timeout-s", str(timeout_s)]  # fmt: skip
        if bare:
            argv.append("--bare")
        procs.append(
            subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        )
    return procs


def _read(proc: subprocess.Popen[str]) -> dict[str, Any]:
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"an agent process exited with {proc.wait(10)}")
    data: dict[str, Any] = json.loads(line)
    return data


def _say(procs: list[subprocess.Popen[str]], command: str) -> None:
    for proc in procs:
        try:
            assert proc.stdin is not None
            proc.stdin.write(command + "\n")
            proc.stdin.flush()
        except (BrokenPipeError, OSError):
            pass


def _end(procs: list[subprocess.Popen[str]]) -> None:
    _say(procs, "stop")
    for proc in procs:
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def spread_s(agents: int) -> float:
    """Agents report on their own schedule, not all in one instant: the replan phase spreads
    the fleet's reports over this many seconds (1,000 reports a second, at least 2 s)."""
    return max(2.0, agents / 1000)


def _p50(sorted_ms: list[float]) -> float | None:
    return round(statistics.median(sorted_ms), 1) if sorted_ms else None


def _p99(sorted_ms: list[float]) -> float | None:
    return round(sorted_ms[max(0, int(len(sorted_ms) * 0.99) - 1)], 1) if sorted_ms else None


def _settled_rss(server: Server, wait_s: float = 1.0) -> int:
    time.sleep(wait_s)
    return server.rss_kb()


def measure_vigil(
    work: Path, creds: list[Creds], agents: int, timeout_s: float = 120.0
) -> dict[str, Any]:
    server = Server(_controller_process, str(work), agents)
    swarms: list[subprocess.Popen[str]] = []
    uploads = Uploads(server.port, creds).start()
    try:
        time.sleep(3.0)  # uploads warm (threads, buffers) before the baseline
        rss0 = _settled_rss(server)
        t0 = time.monotonic()
        swarms = _swarms(work, server.port, agents, bare=False, timeout_s=timeout_s)
        ready = [_read(p) for p in swarms]
        connect_s = time.monotonic() - t0
        held = sum(r["ready"] for r in ready)
        rss1 = _settled_rss(server)
        sent0, t1 = uploads.sent, time.monotonic()
        server.mark()
        _say(swarms, f"replan {spread_s(agents)}")
        replans = [_read(p) for p in swarms]
        time.sleep(max(0.0, 5.0 - (time.monotonic() - t1)))  # at least 5 s of upload load
        upload_mb_s = (uploads.sent - sent0) / 1e6 / (time.monotonic() - t1)
        totals = sorted(d for r in replans for d in r["lease_ms"])
        rpcs = sorted(d for r in replans for d in r["rpc_ms"])
        delays = sorted(d for r in replans for d in r["after_ack_ms"])
        inventories = sorted(d for r in replans for d in r["inventory_ms"])
        print(
            f"vigil: {held}/{agents} streams in {connect_s:.1f} s; rss {rss0 // 1024} -> "
            f"{rss1 // 1024} MB; leases after replan: {len(delays)}",
            flush=True,
        )
        result = {
            "agents_held": held,
            "first_leases": sum(r["first_lease"] for r in ready),
            "connect_s": round(connect_s, 1),
            "controller_rss_mb": round(rss1 / 1024, 1),
            "rss_kb_per_agent": round((rss1 - rss0) / max(held, 1), 1),
            "lease_p50_ms": _p50(delays),
            "lease_p99_ms": _p99(delays),
            "lease_total_p50_ms": _p50(totals),
            "lease_total_p99_ms": _p99(totals),
            # Of the lease delay, the agent's FinishLease + ReportInventory calls alone.
            "report_calls_p50_ms": _p50(rpcs),
            "report_calls_p99_ms": _p99(rpcs),
            # ReportInventory alone, as the agent saw it (report_wait_ms: until its handler ran).
            "inventory_call_p50_ms": _p50(inventories),
            "inventory_call_p99_ms": _p99(inventories),
            "leases_missing": sum(r["missing"] for r in replans),
            "upload_mb_s_under_load": round(upload_mb_s, 1),
            "upload_errors": len(uploads.errors),
            "agent_errors": [r["errors"] for r in ready + replans if r["errors"]],
            "client_loop_lag_ms": [r.get("loop_lag_ms") for r in replans],
        }
    finally:
        _end(swarms)
        uploads.stop()
        counters = server.stop() or {}
    replans = counters.get("replans", 0)
    result["scheduler"] = {
        "replans": replans,
        "replan_ms_mean": round(counters.get("replan_us", 0) / 1000 / max(replans, 1), 1),
        "placements": counters.get("placements", 0),
        "devices_placed": counters.get("devices_placed", 0),
        "inventories": counters.get("inventories", 0),
        "leases_issued": counters.get("leases_issued", 0),
    }
    # Server side, replan phase: each report call from its handler's start to its answer,
    # and how late the gRPC event loop ran a timer (what a call waits for before it starts).
    result["server_call_ms_mean"] = counters.get("server_call_ms_mean")
    result["server_loop_lag_ms"] = counters.get("loop_lag_ms")
    # From the agent's ReportInventory call to its handler's start (accepting the call).
    result["report_wait_ms"] = counters.get("report_wait_ms")
    # The longest garbage collections of generations 1 and 2 (all threads wait for them).
    result["gc_pauses_ms"] = counters.get("gc_pauses_ms")
    return result


def measure_bare(work: Path, agents: int) -> dict[str, Any]:
    server = Server(_bare_process, str(work))
    swarms: list[subprocess.Popen[str]] = []
    try:
        rss0 = _settled_rss(server)
        swarms = _swarms(work, server.port, agents, bare=True)
        held = sum(_read(p)["ready"] for p in swarms)
        rss1 = _settled_rss(server)
        print(f"bare: {held}/{agents} streams; rss {rss0 // 1024} -> {rss1 // 1024} MB", flush=True)
        return {
            "bare_streams_held": held,
            "bare_rss_mb": round(rss1 / 1024, 1),
            "bare_rss_kb_per_agent": round((rss1 - rss0) / max(held, 1), 1),
        }
    finally:
        _end(swarms)
        server.stop()


def raise_nofile() -> int:
    """The soft descriptor limit raised to the hard one (inherited by every child)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = 1_048_576 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            return soft
        return target
    return soft


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.agents", description=__doc__)
    p.add_argument("--quick", action="store_true", help="1,000 agents, < 60 s")
    p.add_argument("--agents", type=int, help="simulated agents (default 10,000; --quick 1,000)")
    p.add_argument(
        "--connect-timeout-s", type=float, default=120.0,
        help="how long one agent may wait for its inventory answer and first lease",
    )  # fmt: skip
    args = p.parse_args(argv)
    agents = args.agents or (1_000 if args.quick else 10_000)
    nofile = raise_nofile()
    if agents + 1_000 > nofile:
        raise SystemExit(f"{agents} agents need more than the {nofile} descriptors one process has")
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="vigil-bench-agents-"))
    try:
        creds = _setup(work)
        vigil = measure_vigil(work, creds, agents, args.connect_timeout_s)
        bare = measure_bare(work, agents)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_agent = vigil["rss_kb_per_agent"]
    result = {
        "agents": vigil["agents_held"],
        "controller_rss_mb": vigil["controller_rss_mb"],
        "rss_kb_per_agent": per_agent,
        "lease_p99_ms": vigil["lease_p99_ms"],
        "upload_mb_s_under_load": vigil["upload_mb_s_under_load"],
        "bare_rss_kb_per_agent": bare["bare_rss_kb_per_agent"],
        "ratio": round(bare["bare_rss_kb_per_agent"] / per_agent, 3) if per_agent > 0 else None,
        **{k: v for k, v in vigil.items() if k not in ("agents_held",)},
        **bare,
        "agents_requested": agents,
        "quick": bool(args.quick),
        "client_processes": -(-agents // PER_PROCESS),
        "nofile_limit": nofile,
        "elapsed_s": round(time.monotonic() - started, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
