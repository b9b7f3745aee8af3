"""Fleet health at city scale: N simulated devices -> Mosquitto -> the controller's FleetService.

`python -m bench.fleet_health --quick` simulates 20,000 devices (real paho clients, each its
own TCP connection and broker account, ~10,000 per process driven by one epoll loop), each
sending state + birth on connect, health every 10 s (staggered), then one event each in a
burst. It measures, in the same run:

- ingest_msg_s: burst messages/s applied to the controller's device-state table;
- bare_msg_s: burst messages/s received by a bare paho subscriber (another process) on the
  same topics: the ceiling of what any paho-based consumer could do here;
- p99_state_latency_ms: publish (device wall clock) -> state table updated, steady phase;
- controller CPU (% of one core) in the steady and burst phases;
- handler_msg_s: FleetService.handle_message alone with the device registry in a SQLite
  catalog held in memory (CachedDirectory, as `serve` runs it), and
  handler_msg_s_read_per_message: the same with one catalog read per message (before issue 12).

The controller here reads its registry from a SQLite catalog with every simulated device in
it, through the in-memory directory `serve` uses.

One process may hold at most RLIMIT_NOFILE descriptors (20,000 on the reference machine and
it cannot be raised), so one Mosquitto cannot take 20,000 clients there: devices are spread
over several Mosquittos bridged into the one the controller uses, the shape of county
brokers feeding the city broker. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import resource
import secrets
import selectors
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
from paho.mqtt.enums import CallbackAPIVersion

from bench.fleet_directory import cached, handler_rates, registry_engine
from controller.clock import SystemClock
from controller.fleet.broker import CONTROLLER_USER, Bridge, BrokerSettings
from controller.fleet.broker_process import ManagedBroker
from controller.fleet.mqtt import MqttSettings
from controller.fleet.service import FleetOptions, FleetService
from controller.fleet.topics import FLEET_SUBSCRIPTION
from protos.vigil.v1 import fleet_pb2

PER_PROCESS = 10_000
# The bare subscriber's own account: a replica name, so it has the controller's read rights
# but its own client id (with the controller's account it would take the controller's id,
# as the broker sets client id = username, and the two would knock each other off).
BARE_USER = f"{CONTROLLER_USER}-bench-bare"
FD_RESERVE = 200
COUNTY = "bench"


def raise_nofile() -> int:
    """Raise the soft descriptor limit to the hard one; returns the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def device_id(i: int) -> str:
    return f"dev-{i:05d}"


def site_of(i: int) -> str:
    return f"site-{i // 100:03d}"


def password_of(i: int, seed: str) -> str:
    return f"{seed}{i}"


# ---- device simulator (worker process) -------------------------------------------------
class Sim:
    """Many paho clients on one epoll loop (paho's external-loop API: no thread per client)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.sel = selectors.DefaultSelector()
        self.clients: list[mqtt.Client] = []
        self.ids = list(range(args.first, args.first + args.count))
        self.connected = 0
        self.stopping = False
        self.failed = 0
        self.published = 0
        self.session = time.time_ns() // 1000
        self.health_seq = [0] * args.count
        self._last_scan = 0.0

    def on_connect(self, client: mqtt.Client, k: Any, _f: Any, rc: Any, _p: Any) -> None:
        if rc.is_failure:
            return
        i = self.ids[k]
        dev, site = device_id(i), site_of(i)
        base = f"vigil/v1/{COUNTY}/{site}/{dev}"
        state = fleet_pb2.DeviceState(device_id=dev, online=True, session=self.session)
        client.publish(f"{base}/state", state.SerializeToString(), qos=1, retain=True)
        birth = fleet_pb2.Birth(
            device_id=dev,
            session=self.session,
            agent_version="bench",
            health_interval_s=10.0,
            county=COUNTY,
            site=site,
            cameras=[fleet_pb2.CameraDescription(camera_id="cam1", kind="rtsp")],
        )
        client.publish(f"{base}/birth", birth.SerializeToString(), qos=1)
        self.connected += 1

    def make_client(self, k: int) -> mqtt.Client:
        i = self.ids[k]
        dev = device_id(i)
        c = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=dev, userdata=k, protocol=mqtt.MQTTv5
        )
        c.username_pw_set(dev, password_of(i, self.args.seed))
        will = fleet_pb2.DeviceState(device_id=dev, online=False, session=self.session)
        topic = f"vigil/v1/{COUNTY}/{site_of(i)}/{dev}/state"
        c.will_set(topic, will.SerializeToString(), qos=1, retain=True)
        c.on_connect = self.on_connect
        return c

    def connect_all(self) -> None:
        """Connect with at most `window` clients awaiting their CONNACK.

        Mosquitto listens with a backlog of 100; a TCP connect returns once the kernel has
        queued it, long before Mosquitto accepts it, so an unpaced loop overflows the
        queue and each dropped SYN costs a 1 s retransmit. Connects run in a thread pool
        (the blocking part releases the GIL) and are paced by CONNACKs.
        """
        self.clients = [self.make_client(k) for k in range(len(self.ids))]
        port = self.args.port
        window = 64

        def connect(c: mqtt.Client) -> mqtt.Client | None:
            for _ in range(3):
                try:
                    c.connect("127.0.0.1", port, keepalive=600)
                    return c
                except OSError:
                    continue
            self.failed += 1
            return None

        pending: set[Future[mqtt.Client | None]] = set()
        queue = iter(self.clients)
        submitted = 0
        total = len(self.clients)
        deadline = time.monotonic() + self.args.connect_timeout
        with ThreadPoolExecutor(max_workers=window) as pool:
            while True:
                awaiting = submitted - self.connected - self.failed
                if time.monotonic() > deadline:  # report what connected in the time budget
                    total = submitted
                while awaiting < window and submitted < total:
                    pending.add(pool.submit(connect, next(queue)))
                    submitted += 1
                    awaiting += 1
                for f in [f for f in pending if f.done()]:
                    pending.discard(f)
                    c = f.result()
                    sock = c.socket() if c is not None else None
                    if sock is not None:
                        self.sel.register(sock, selectors.EVENT_READ, c)
                if submitted == total and not pending:
                    return
                self.poll(0.002)

    def poll(self, timeout: float) -> None:
        for key, _ in self.sel.select(timeout):
            if key.data is None:  # the orchestrator's "stop" (or its death: EOF)
                line = sys.stdin.readline()
                self.stopping = not line or line.strip() == "stop"
                continue
            c: mqtt.Client = key.data
            if c.loop_read(max_packets=10) != 0:
                self.sel.unregister(key.fileobj)
        # publish() writes at once; only a full socket buffer leaves bytes behind.
        if time.monotonic() - self._last_scan > 0.2:
            self._last_scan = time.monotonic()
            for c in self.clients:
                if c.want_write():
                    c.loop_write()

    def health(self, k: int) -> None:
        if not self.clients[k].is_connected():
            return
        i = self.ids[k]
        self.health_seq[k] += 1
        msg = fleet_pb2.Health(
            device_id=device_id(i),
            session=self.session,
            seq=self.health_seq[k],
            at_unix_us=time.time_ns() // 1000,
            cpu_pct=7.5,
            mem_pct=30.0,
            disk_free_bytes=10**11,
            disk_total_bytes=2 * 10**11,
            eviction_eta_s=-1,
            cameras=[
                fleet_pb2.CameraHealth(
                    camera_id="cam1",
                    connected=True,
                    frame_age_s=0.1,
                    fps=25.0,
                    bitrate_bps=4_000_000,
                )
            ],
        )
        topic = f"vigil/v1/{COUNTY}/{site_of(i)}/{device_id(i)}/health"
        self.clients[k].publish(topic, msg.SerializeToString(), qos=0)
        self.published += 1

    def event(self, k: int) -> None:
        if not self.clients[k].is_connected():
            return
        i = self.ids[k]
        msg = fleet_pb2.Event(
            device_id=device_id(i),
            session=self.session,
            seq=1,
            at_unix_us=time.time_ns() // 1000,
            kind=fleet_pb2.Event.KIND_CAMERA_LOST,
            camera_id="cam1",
        )
        topic = f"vigil/v1/{COUNTY}/{site_of(i)}/{device_id(i)}/event"
        self.clients[k].publish(topic, msg.SerializeToString(), qos=1)
        self.published += 1

    def run(self) -> None:
        a = self.args
        t0 = time.monotonic()
        self.connect_all()
        while self.connected < len(self.clients) and time.monotonic() - t0 < a.connect_timeout + 2:
            self.poll(0.05)
        print(json.dumps({"ready": self.connected, "connect_s": time.monotonic() - t0}), flush=True)
        go = sys.stdin.readline().split()  # "start burst" wall-clock seconds, then "stop"
        start, burst = float(go[0]), float(go[1])
        self.sel.register(sys.stdin, selectors.EVENT_READ, None)
        n = len(self.ids)
        # Device k reports at start + phase_k + m * interval: an even spread, as in the field.
        phases = [(k * a.interval / n) for k in range(n)]
        sent_round = 0
        next_k = 0
        burst_done = False
        while not self.stopping:
            now = time.time()
            if now >= start and now < burst:
                elapsed = now - start
                while next_k < n and phases[next_k] + sent_round * a.interval <= elapsed:
                    self.health(next_k)
                    next_k += 1
                if next_k == n:
                    next_k, sent_round = 0, sent_round + 1
            elif now >= burst and not burst_done:
                for k in range(n):
                    self.event(k)
                    if k % 1000 == 999:
                        self.poll(0)
                burst_done = True
            self.poll(0.005)
        out = {"published": self.published, "connected": self.connected, "failed": self.failed}
        print(json.dumps(out), flush=True)


def sim_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--first", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--seed", required=True)
    p.add_argument("--interval", type=float, default=10.0)
    p.add_argument("--connect-timeout", type=float, default=40.0)
    raise_nofile()
    # 10,000 paho clients are millions of long-lived objects: every full collection walks
    # them all, which made connecting quadratic (4.5 ms of CPU per client at 10,000).
    # A load generator has no business paying that; the controller keeps Python's defaults.
    gc.disable()
    Sim(p.parse_args(argv)).run()
    return 0


# ---- bare subscriber (worker process) --------------------------------------------------
def bare_main(argv: list[str]) -> int:
    port, password = int(argv[0]), argv[1]
    times: list[float] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=BARE_USER, protocol=mqtt.MQTTv5)
    client.username_pw_set(BARE_USER, password)
    ready = threading.Event()

    def on_connect(c: mqtt.Client, _u: Any, _f: Any, _rc: Any, _p: Any) -> None:
        c.subscribe(FLEET_SUBSCRIPTION, qos=1)

    def on_subscribe(*_a: Any) -> None:
        ready.set()

    def on_message(_c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic.endswith("/event"):
            times.append(time.time())

    client.on_connect, client.on_subscribe, client.on_message = on_connect, on_subscribe, on_message
    client.connect("127.0.0.1", port, keepalive=600)
    client.loop_start()
    ready.wait(30)
    print(json.dumps({"ready": True}), flush=True)
    sys.stdin.readline()  # the schedule
    sys.stdin.readline()  # "stop" (or EOF)
    client.loop_stop()
    print(json.dumps({"burst_rate": burst_rate(times), "burst_msgs": len(times)}), flush=True)
    return 0


def burst_rate(times: list[float]) -> float:
    """Messages per second over the span of a burst (first to last arrival)."""
    if len(times) < 2:
        return 0.0
    return (len(times) - 1) / max(1e-6, max(times) - min(times))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


# ---- orchestration -------------------------------------------------------------------
class Run:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.seed = secrets.token_hex(4)
        self.ctl_password = secrets.token_hex(8)
        self.brokers: list[ManagedBroker] = []
        self.procs: list[subprocess.Popen[str]] = []
        self.applied: list[tuple[float, str, int]] = []
        self.gc_s = [0.0, 0.0, 0.0]
        self.gc_max_s = 0.0
        self._gc_t0 = 0.0

    def start_brokers(self, limit: int) -> list[int]:
        """City broker first (controller, bare subscriber), county brokers bridged into it."""
        n = self.args.devices
        cap = max(1, min(limit - FD_RESERVE, self.args.broker_cap or limit))
        count = max(1, math.ceil(n / cap))
        share = math.ceil(n / count)
        ports = [_free_port() for _ in range(count)]
        relays = {f"bridge-{b}": secrets.token_hex(8) for b in range(1, count)}
        for b in range(count):
            first, last = b * share, min(n, (b + 1) * share)
            accounts = {device_id(i): password_of(i, self.seed) for i in range(first, last)}
            if b == 0:
                accounts[CONTROLLER_USER] = self.ctl_password
                accounts[BARE_USER] = self.ctl_password
                accounts.update(relays)
            bridge = None
            if b > 0:
                user = f"bridge-{b}"
                bridge = Bridge("127.0.0.1", ports[0], user, relays[user])
            settings = BrokerSettings(
                data_dir=self.work / f"broker-{b}",
                port=ports[b],
                accounts=accounts,
                max_connections=-1,
                bridge=bridge,
                relay_users=tuple(relays),
            )
            broker = ManagedBroker(settings)
            broker.start()
            self.brokers.append(broker)
        self.share = share
        return ports

    def spawn(self, argv: list[str]) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bench.fleet_health", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.procs.append(proc)
        return proc

    def on_applied(self, device: str, leaf: str, at_us: int) -> None:
        self.applied.append((time.time(), leaf, at_us))

    def _gc_watch(self, phase: str, info: dict[str, Any]) -> None:
        """Time the controller process's garbage collections (they pause ingest)."""
        if phase == "start":
            self._gc_t0 = time.perf_counter()
        else:
            gen = info["generation"]
            self.gc_s[gen] += time.perf_counter() - self._gc_t0
            self.gc_max_s = max(self.gc_max_s, time.perf_counter() - self._gc_t0)

    def execute(self) -> dict[str, Any]:
        a = self.args
        gc.callbacks.append(self._gc_watch)
        limit = raise_nofile()
        t_begin = time.monotonic()
        ports = self.start_brokers(limit)
        phases = {"brokers_s": time.monotonic() - t_begin}
        registry = {device_id(i): (COUNTY, site_of(i)) for i in range(a.devices)}
        engine = registry_engine(self.work / "catalog.db", registry)
        directory = cached(engine)
        service = FleetService(
            MqttSettings("127.0.0.1", ports[0], CONTROLLER_USER, self.ctl_password),
            SystemClock(),
            directory,
            FleetOptions(),
            on_applied=self.on_applied,
        )
        service.start()
        assert service.wait_connected(10), "controller could not connect"
        bare = self.spawn(["--bare", str(ports[0]), self.ctl_password])
        sims = []
        for b, port in enumerate(ports):  # no simulator spans two brokers
            lo, hi = b * self.share, min(a.devices, (b + 1) * self.share)
            for first in range(lo, hi, PER_PROCESS):
                count = min(PER_PROCESS, hi - first)
                argv = ["--sim", "--port", str(port), "--first", str(first)]
                argv += ["--count", str(count), "--seed", self.seed]
                argv += [
                    "--interval",
                    str(a.interval),
                    "--connect-timeout",
                    str(a.connect_timeout_s),
                ]
                sims.append(self.spawn(argv))
        _read_json(bare, "bare subscriber")
        readies = [_read_json(s, "device simulator") for s in sims]
        connected = sum(r["ready"] for r in readies)
        connect_s = max(r["connect_s"] for r in readies)
        births = lambda: sum(1 for x in self.applied if x[1] == "birth")  # noqa: E731
        deadline = time.monotonic() + 5
        while births() < connected and time.monotonic() < deadline:
            time.sleep(0.1)
        phases["births_s"] = time.monotonic() - t_begin
        start = time.time() + 0.5
        burst = start + a.steady_s
        for s in [*sims, bare]:
            s.stdin.write(f"{start} {burst}\n")  # type: ignore[union-attr]
            s.stdin.flush()  # type: ignore[union-attr]
        me = psutil.Process()
        others = {
            "brokers": [psutil.Process(b.pid) for b in self.brokers if b.pid],
            "sims": [psutil.Process(s.pid) for s in sims],
            "bare": [psutil.Process(bare.pid)],
        }
        other0 = {k: _cpu_s(v) for k, v in others.items()}
        cpu0 = me.cpu_times()
        _sleep_until(burst)
        cpu1 = me.cpu_times()
        # The burst is over once every connected device's event is in the state table.
        deadline = burst + a.drain_s
        while time.time() < deadline:
            if sum(1 for x in self.applied if x[1] == "event") >= connected:
                break
            time.sleep(0.1)
        end = time.time()
        phases["burst_drain_s"] = end - burst
        cpu2 = me.cpu_times()
        window = end - start
        other_pct = {
            f"{k}_cpu_pct": round(100 * (_cpu_s(v) - other0[k]) / window, 1)
            for k, v in others.items()
        }
        timeline = _per_second([t for t, _, _ in self.applied], start, end)
        for s in [*sims, bare]:
            s.stdin.write("stop\n")  # type: ignore[union-attr]
            s.stdin.flush()  # type: ignore[union-attr]
        sim_out = [_read_json(s, "device simulator") for s in sims]
        for s in sims:
            s.wait(timeout=30)
        bare.wait(timeout=30)
        counters = service.counters()
        service.stop()
        engine.dispose()
        handler = handler_rates(self.work, registry)
        steady = [x for x in self.applied if x[1] == "health" and start <= x[0] < burst]
        lat_ms = [(t - at / 1e6) * 1000 for t, _, at in steady]
        events = [t for t, leaf, _ in self.applied if leaf == "event"]
        bare_rate = _bare_rate(bare)
        ingest = burst_rate(events)
        cpu = lambda c0, c1, span: 100 * ((c1.user + c1.system) - (c0.user + c0.system)) / span  # noqa: E731
        return {
            "devices_requested": a.devices,
            "connected": connected,
            "brokers": len(self.brokers),
            "fd_limit": limit,
            "connect_s": round(connect_s, 1),
            "published": sum(o["published"] for o in sim_out),
            "steady_msg_s": round(len(steady) / a.steady_s, 1),
            "burst_events_applied": len(events),
            "controller_cpu_pct_steady": round(cpu(cpu0, cpu1, burst - start), 1),
            "controller_cpu_pct_burst": round(cpu(cpu1, cpu2, end - burst), 1),
            **other_pct,
            "controller_gc_s_by_generation": [round(x, 2) for x in self.gc_s],
            "controller_gc_max_pause_s": round(self.gc_max_s, 3),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "applied_per_s": timeline,
            "rejected": {k: v for k, v in counters.items() if k not in ("accepted",)},
            **{k: round(v, 1) for k, v in phases.items()},
            "wall_s": round(time.monotonic() - t_begin, 1),
            "devices": connected,
            "ingest_msg_s": round(ingest, 1),
            "bare_msg_s": round(bare_rate, 1),
            "ratio": round(ingest / bare_rate, 3) if bare_rate else 0.0,
            "p99_state_latency_ms": round(percentile(lat_ms, 0.99), 1),
            "directory": "cached",
            **handler,
        }

    def cleanup(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        for b in reversed(self.brokers):
            b.stop()


def _bare_rate(bare: subprocess.Popen[str]) -> float:
    lines = [ln for ln in (bare.stdout.read() if bare.stdout else "").splitlines() if ln]
    for line in reversed(lines):
        data = json.loads(line)
        if "burst_rate" in data:
            return float(data["burst_rate"])
    return 0.0


def _read_json(proc: subprocess.Popen[str], what: str) -> dict[str, Any]:
    """The next JSON line a worker prints; a worker that died is a clear error."""
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.strip():
        raise RuntimeError(f"{what} (pid {proc.pid}) exited early with {proc.wait()}")
    data: dict[str, Any] = json.loads(line)
    return data


def _cpu_s(procs: list[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system
    return total


def _per_second(times: list[float], start: float, end: float) -> list[int]:
    """How many messages the controller applied in each second of the measured window."""
    bins = [0] * max(1, math.ceil(end - start))
    for t in times:
        if start <= t < end:
            bins[int(t - start)] += 1
    return bins


def _sleep_until(t: float) -> None:
    while (left := t - time.time()) > 0:
        time.sleep(min(left, 0.2))


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--sim":
        return sim_main(argv[1:])
    if argv and argv[0] == "--bare":
        return bare_main(argv[1:])
    p = argparse.ArgumentParser(prog="python -m bench.fleet_health", description=__doc__)
    p.add_argument("--quick", action="store_true", help="20,000 devices, 10 s steady, < 60 s")
    p.add_argument("--devices", type=int, default=20_000)
    p.add_argument("--interval", type=float, default=10.0, help="health period per device")
    p.add_argument("--steady-s", type=float, default=0.0)
    p.add_argument("--drain-s", type=float, default=0.0, help="max wait for the burst")
    p.add_argument("--connect-timeout-s", type=float, default=0.0, help="connect budget")
    p.add_argument("--broker-cap", type=int, default=0, help="devices per broker (testing)")
    args = p.parse_args(argv)
    # --quick stays under 60 s even on a busy machine: phases have budgets, and whatever
    # did not connect within its budget is reported (connected < devices_requested).
    if not args.steady_s:
        args.steady_s = 10.0 if args.quick else 30.0
    if not args.connect_timeout_s:
        args.connect_timeout_s = 24.0 if args.quick else 120.0
    if not args.drain_s:
        args.drain_s = 8.0 if args.quick else 30.0
    with tempfile.TemporaryDirectory(prefix="vigil-bench-fleet-") as tmp:
        run = Run(args, Path(tmp))
        try:
            result = run.execute()
        finally:
            run.cleanup()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
