"""Network namespaces joined by veth pairs with real `tc tbf` bandwidth caps (needs root).

One namespace holds the controller, one namespace per agent. Each agent namespace is joined
to the controller's by its own veth pair, created directly inside the two namespaces (the
root namespace's interfaces, addresses and routes are never touched). Addresses are
TEST-NET-1 (192.0.2.0/24) and exist only inside these namespaces: the controller is
192.0.2.1 on every one of its veth ends, agent i is 192.0.2.(10+i); point-to-point
(`peer`) addresses bring their routes back by themselves when a link comes back up.

`tbf` shapes each agent's egress (its uplink). `netem` is not available on these machines:
a link cut is `ip link set DEV down`, healed with `up`. `close()` deletes every namespace
(and with them the veth pairs); use it in a finalizer so a failing test leaves nothing.

`add_host_agent` is the one exception to "the root namespace is never touched", for rigs whose
servers (a fixture's SeaweedFS, camsim, a `serve` subprocess) run in the root namespace: the
agent's namespace is joined to the root one by a veth pair whose root end gets a /32 address
from 198.18.0.0/15 (benchmarking space, never routed), picked unused and unique per rig, so
parallel test workers (pytest-xdist) never share one. Names carry the rig's random tag. The
pair goes away with the agent's namespace.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import pytest

from tests.support import require_binary

CONTROLLER_IP = "192.0.2.1"
INSTALL = "run as root with iproute2 installed: apt-get install -y iproute2"


@dataclass(frozen=True)
class AgentLink:
    name: str
    namespace: str
    device: str  # the agent-side veth (egress shaped)
    ip: str
    rate_bit: int
    host_ip: str = ""  # add_host_agent: the root namespace's end (where its servers listen)


def _run(argv: Sequence[str]) -> None:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False, timeout=20)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {result.stderr.strip()}")


def _free_pair() -> tuple[str, str]:
    """(root end, agent end): two addresses of a 198.18.X.Y/31 no interface here has yet."""
    used = subprocess.run(
        ["ip", "-o", "-4", "addr", "show"], capture_output=True, text=True, check=False, timeout=10
    ).stdout
    for _ in range(100):
        x, y = secrets.randbelow(256), secrets.randbelow(127) * 2
        host, agent = f"198.18.{x}.{y}", f"198.18.{x}.{y + 1}"
        if f" {host}" not in used and f" {agent}" not in used and f"peer {host}" not in used:
            return host, agent
    raise RuntimeError("no free address pair in 198.18.0.0/16")


class NetRig:
    def __init__(self) -> None:
        require_binary("ip", INSTALL)
        require_binary("tc", INSTALL)
        if os.geteuid() != 0:
            pytest.fail(f"network namespaces need root: {INSTALL}", pytrace=False)
        self.tag = "vgl" + uuid.uuid4().hex[:6]
        self.controller_ns = f"{self.tag}-ctl"
        self.namespaces: list[str] = []
        self.host_devices: list[str] = []  # root-namespace ends (add_host_agent)
        self.agents: dict[str, AgentLink] = {}
        self._add_namespace(self.controller_ns)

    def _add_namespace(self, name: str) -> None:
        _run(["ip", "netns", "add", name])
        self.namespaces.append(name)
        _run(["ip", "-n", name, "link", "set", "lo", "up"])

    def add_agent(self, name: str, rate_bit: int, burst_bytes: int = 16 * 1024) -> AgentLink:
        """A namespace for agent `name`, its uplink capped at `rate_bit` bit/s by tbf."""
        i = len(self.agents) + 1
        ns = f"{self.tag}-{i}"
        self._add_namespace(ns)
        dev, peer, ip = f"up{i}", f"ag{i}", f"192.0.2.{10 + i}"
        _run(["ip", "-n", ns, "link", "add", dev, "type", "veth", "peer", "name", peer,
              "netns", self.controller_ns])  # fmt: skip
        _run(["ip", "-n", ns, "addr", "add", ip, "peer", CONTROLLER_IP, "dev", dev])
        _run(["ip", "-n", self.controller_ns, "addr", "add", CONTROLLER_IP, "peer", ip,
              "dev", peer])  # fmt: skip
        _run(["ip", "-n", ns, "link", "set", dev, "up"])
        _run(["ip", "-n", self.controller_ns, "link", "set", peer, "up"])
        _run(["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf",
              "rate", f"{rate_bit}bit", "burst", str(burst_bytes), "latency", "400ms"])  # fmt: skip
        link = AgentLink(name, ns, dev, ip, rate_bit)
        self.agents[name] = link
        return link

    def add_host_agent(self, name: str) -> AgentLink:
        """A namespace for agent `name` joined to the root namespace (unshaped): the agent
        reaches servers in the root namespace at `host_ip`; `cut`/`heal` as for the others."""
        i = len(self.agents) + 1
        ns = f"{self.tag}-{i}"
        self._add_namespace(ns)
        dev, host_dev = "up0", f"{self.tag}h{i}"
        host_ip, ip = _free_pair()
        _run(["ip", "link", "add", host_dev, "type", "veth", "peer", "name", dev, "netns", ns])
        self.host_devices.append(host_dev)
        _run(["ip", "addr", "add", host_ip, "peer", ip, "dev", host_dev])
        _run(["ip", "-n", ns, "addr", "add", ip, "peer", host_ip, "dev", dev])
        _run(["ip", "link", "set", host_dev, "up"])
        _run(["ip", "-n", ns, "link", "set", dev, "up"])
        link = AgentLink(name, ns, dev, ip, 0, host_ip)
        self.agents[name] = link
        return link

    def argv(self, namespace: str, argv: Sequence[str]) -> list[str]:
        """`argv` run inside `namespace`."""
        return ["ip", "netns", "exec", namespace, *argv]

    def cut(self, name: str) -> None:
        link = self.agents[name]
        _run(["ip", "-n", link.namespace, "link", "set", link.device, "down"])

    def heal(self, name: str) -> None:
        link = self.agents[name]
        _run(["ip", "-n", link.namespace, "link", "set", link.device, "up"])

    def qdisc_stats(self, name: str) -> str:
        link = self.agents[name]
        result = subprocess.run(
            ["ip", "netns", "exec", link.namespace, "tc", "-s", "qdisc", "show", "dev",
             link.device],
            capture_output=True, text=True, check=False, timeout=10,
        )  # fmt: skip
        return result.stdout

    def close(self) -> None:
        """Delete every namespace this rig made (their veth pairs go with them)."""
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False)
        for dev in self.host_devices:  # gone with their namespace; this is a safety net
            subprocess.run(["ip", "link", "del", dev], capture_output=True, check=False)
        self.namespaces, self.host_devices = [], []
