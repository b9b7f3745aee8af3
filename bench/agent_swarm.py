"""Simulated agents for `bench.agents` and the lease-stream scale test: one process, many
agents, each a real gRPC client with its own mutual-TLS channel (its own TCP connection and
device certificate, issued here from the city CA), all driven by one asyncio loop.

Run as `python -m bench.agent_swarm --data-dir D --port P --first I --count N [--bare]`; it
talks to its parent in JSON lines: it prints `{"ready": ...}` once every agent holds an
open lease stream (and, unless `--bare`, has reported an inventory and received its first
lease), then reads commands from stdin:

- `replan [SPREAD_S]`: every agent, at a random moment within SPREAD_S seconds, finishes its
  lease and reports a new segment; it prints each agent's delay from that report to the
  lease naming the new segment (`lease_ms`), the report calls' own time (`rpc_ms`) and the
  delay from the inventory's answer to that lease (`after_ack_ms`);
- `stop` (or end of input): close every channel and exit.

`--bare` agents only open a stream and wait for its first message (the bare server's idle
streams). One process may hold at most RLIMIT_NOFILE descriptors (20,000 here), so a large
swarm is split over several of these processes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from controller.clock import SystemClock
from controller.pki import issue_device_cert, load_ca, utc_from_us
from protos.vigil.v1 import agent_control_pb2, agent_control_pb2_grpc, common_pb2

SEGMENT_BYTES = 1_000_000
BACKFILL = common_pb2.TRAFFIC_CLASS_BACKFILL


def inventory(device: str, seq: int) -> agent_control_pb2.Inventory:
    """One unsent segment `{device}-s{seq}` of camera `{device}-c`."""
    now = SystemClock().now_us()
    inv = agent_control_pb2.Inventory(device_id=device, reported_unix_us=now)
    camera = f"{device}-c"
    inv.unsent.add(
        segment_id=f"{device}-s{seq}", camera_id=camera, start_unix_us=now - 60_000_000,
        size_bytes=SEGMENT_BYTES, traffic_class=BACKFILL,
    )  # fmt: skip
    inv.backlog.add(camera_id=camera, traffic_class=BACKFILL, bytes=SEGMENT_BYTES, segments=1)
    return inv


@dataclass
class Agent:
    device: str
    channel: grpc.aio.Channel
    stub: Any  # AgentControlStub on an aio channel (its calls are awaitable)
    call: Any = None
    latest: agent_control_pb2.Lease | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    ended: str = ""

    async def read(self) -> None:
        try:
            async for msg in self.call:
                self.latest = msg
                self.changed.set()
        except grpc.aio.AioRpcError as exc:
            self.ended = exc.code().name
        except asyncio.CancelledError:
            self.ended = "CANCELLED"
        self.ended = self.ended or "OK"
        self.changed.set()

    async def wait_for(self, segment_id: str, within_s: float) -> bool:
        """Until the newest lease names `segment_id` (any lease when it is '')."""
        deadline = time.monotonic() + within_s
        while True:
            msg = self.latest
            if msg is not None and msg.lease_id:
                if not segment_id or any(s.segment_id == segment_id for s in msg.segments):
                    return True
            if self.ended:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), left)
            except TimeoutError:
                return False


def credentials(ca: Any, device: str) -> grpc.ChannelCredentials:
    pair = issue_device_cert(ca, device, utc_from_us(SystemClock().now_us()))
    return grpc.ssl_channel_credentials(
        root_certificates=ca.cert_pem, private_key=pair.key_pem, certificate_chain=pair.cert_pem
    )


class Swarm:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.agents: list[Agent] = []
        self.readers: list[asyncio.Task[None]] = []
        self.errors: dict[str, int] = {}

    def _error(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    async def _connect(self, device: str, creds: grpc.ChannelCredentials, sem: Any) -> None:
        """Connect as the agent does (edge_agent/leases): a refused or cancelled first call is
        retried after a short random backoff, up to `--connect-attempts` times; every failed
        attempt is counted in `errors`, a retry that then succeeds in `retried`."""
        for attempt in range(self.args.connect_attempts):
            if attempt:
                await asyncio.sleep(random.uniform(0.25, 1.0))
            if await self._connect_once(device, creds, sem):
                if attempt:
                    self._error("retried")
                return

    async def _connect_once(self, device: str, creds: grpc.ChannelCredentials, sem: Any) -> bool:
        async with sem:
            channel = grpc.aio.secure_channel(f"127.0.0.1:{self.args.port}", creds)
            agent = Agent(device, channel, agent_control_pb2_grpc.AgentControlStub(channel))
            try:
                if not self.args.bare:
                    await agent.stub.ReportInventory(
                        inventory(device, 0), timeout=self.args.connect_timeout_s
                    )
                agent.call = agent.stub.StreamLeases(
                    agent_control_pb2.LeaseStreamRequest(device_id=device)
                )
                reader = asyncio.get_running_loop().create_task(agent.read())
                # The first message on the stream.
                await asyncio.wait_for(agent.changed.wait(), self.args.connect_timeout_s)
                if agent.ended and agent.latest is None:
                    raise TimeoutError  # the stream ended before its first message
                self.readers.append(reader)
                self.agents.append(agent)
                return True
            except (grpc.aio.AioRpcError, TimeoutError) as exc:
                code = exc.code().name if isinstance(exc, grpc.aio.AioRpcError) else "TIMEOUT"
                self._error(code)
                await channel.close()
                return False

    async def connect(self) -> dict[str, Any]:
        t0 = time.monotonic()
        data_dir = Path(self.args.data_dir)
        devices = [
            f"{self.args.prefix}{i:05d}"
            for i in range(self.args.first, self.args.first + self.args.count)
        ]
        ca = load_ca(data_dir)
        creds = [credentials(ca, d) for d in devices]
        issued = time.monotonic()
        sem = asyncio.Semaphore(self.args.parallel)
        await asyncio.gather(
            *(self._connect(d, c, sem) for d, c in zip(devices, creds, strict=True))
        )
        first_lease = 0
        if not self.args.bare:
            within = self.args.connect_timeout_s
            got = await asyncio.gather(*(a.wait_for("", within) for a in self.agents))
            first_lease = sum(got)
        return {
            "ready": len(self.agents), "first_lease": first_lease, "errors": self.errors,
            "issue_s": round(issued - t0, 2), "connect_s": round(time.monotonic() - issued, 2),
        }  # fmt: skip

    async def replan(self, spread_s: float) -> dict[str, Any]:
        """Each agent, at a random moment within `spread_s`: finish its lease, report a new
        segment, and time the lease naming it (report -> replan -> lease on its stream)."""

        rpc_ms: list[float] = []  # each agent's report calls alone
        after_ack_ms: list[float] = []  # from the inventory's answer to the lease
        inventory_ms: list[float] = []  # the ReportInventory call alone

        async def one(agent: Agent, sem: Any) -> float | None:
            await asyncio.sleep(random.uniform(0.0, spread_s))  # agents report on their own
            async with sem:
                old = agent.latest
                start = time.monotonic()
                try:
                    if old is not None and old.lease_id:
                        done = [s.segment_id for s in old.segments]
                        await agent.stub.FinishLease(
                            agent_control_pb2.LeaseReport(
                                lease_id=old.lease_id, done_segment_ids=done
                            ),
                            timeout=60,
                            metadata=(("vigil-bench-sent-ns", str(time.monotonic_ns())),),
                        )
                    sent = time.monotonic()
                    await agent.stub.ReportInventory(
                        inventory(agent.device, 1),
                        timeout=60,
                        metadata=(("vigil-bench-sent-ns", str(time.monotonic_ns())),),
                    )
                except grpc.aio.AioRpcError as exc:
                    self._error(exc.code().name)
                    return None
                acked = time.monotonic()
                rpc_ms.append(round((acked - start) * 1000.0, 2))
                inventory_ms.append(round((acked - sent) * 1000.0, 2))
            if await agent.wait_for(f"{agent.device}-s1", self.args.lease_timeout_s):
                leased = time.monotonic()
                after_ack_ms.append(round((leased - acked) * 1000.0, 2))
                return (leased - start) * 1000.0
            return None

        sem = asyncio.Semaphore(self.args.parallel)
        lags: list[float] = []
        lag = asyncio.get_running_loop().create_task(_loop_lag(lags))
        results = await asyncio.gather(*(one(a, sem) for a in self.agents))
        lag.cancel()
        got = [round(r, 2) for r in results if r is not None]
        lags.sort()
        return {
            "lease_ms": got, "rpc_ms": rpc_ms, "after_ack_ms": after_ack_ms,
            "inventory_ms": inventory_ms,
            "missing": len(results) - len(got),
            "errors": self.errors,
            # How late this process's loop ran a 50 ms timer: the agents' own CPU queueing.
            "loop_lag_ms": {
                "p50": lags[len(lags) // 2] if lags else None,
                "p99": lags[int(len(lags) * 0.99)] if lags else None,
            },
        }  # fmt: skip

    async def close(self) -> None:
        for task in self.readers:
            task.cancel()
        await asyncio.gather(*(a.channel.close() for a in self.agents), return_exceptions=True)


async def _loop_lag(into: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + 0.05
        await asyncio.sleep(0.05)
        into.append(round((loop.time() - due) * 1000, 1))


async def _amain(args: argparse.Namespace) -> None:
    swarm = Swarm(args)
    print(json.dumps(await swarm.connect()), flush=True)
    loop = asyncio.get_running_loop()
    while True:
        line = (await loop.run_in_executor(None, sys.stdin.readline)).strip()
        if line.startswith("replan"):
            spread = float(line.split()[1]) if len(line.split()) > 1 else 0.0
            print(json.dumps(await swarm.replan(spread)), flush=True)
        elif line == "status":
            ended = sum(1 for a in swarm.agents if a.ended)
            print(json.dumps({"open": len(swarm.agents) - ended, "ended": ended}), flush=True)
        else:  # "stop" or EOF
            break
    await swarm.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.agent_swarm", description=__doc__)
    p.add_argument("--data-dir", required=True, help="the controller's data dir (its CA)")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--first", type=int, default=0)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--prefix", default="agent-")
    p.add_argument("--bare", action="store_true", help="streams only (the bare server)")
    p.add_argument("--parallel", type=int, default=200, help="connections opened at once")
    p.add_argument("--lease-timeout-s", type=float, default=30.0)
    p.add_argument("--connect-timeout-s", type=float, default=120.0)
    p.add_argument(
        "--connect-attempts", type=int, default=3, help="as an agent retries its first call"
    )
    args = p.parse_args(argv)
    asyncio.run(_amain(args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
