"""Building the live relay between replicas (only with `[cluster] enabled`).

    relay = build(core, hub, leadership, device_of)   # None for a controller alone

`relay.servicer` joins the mutual-TLS gRPC server (the holding side), `relay.relay` is the
component started after the hub's sources (the viewing side). The look-up of a camera's
holder asks `gb_replica` (the assembly passes the GB device table's reader,
controller/gb28181/devstore.py) and the replicas' announced addresses (blocking: it runs
on the relay loop's executor) and asks the election who leads; the decision itself is
controller/live/holder.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from controller.leader import Leadership
from controller.leader.replicas import ReplicaDirectory
from controller.live.holder import Facts, Holder, holder_of
from controller.live.hub import LiveHub
from controller.live.metrics import RelayCollector
from controller.live.relay import Relay, RelayOptions
from controller.live.relay_service import DeviceOf, LiveRelayServicer
from controller.pki.certs import has_client_auth
from controller.runtime import Core

log = logging.getLogger("vigil.live")

NO_CLIENT_AUTH = (
    "本副本的证书不能用于客户端认证, 请重新运行 vigil-controller init: this replica's "
    "certificate lacks client authentication (re-run `vigil-controller init`)"
)


@dataclass(frozen=True, slots=True)
class LiveRelay:
    servicer: LiveRelayServicer
    relay: Relay
    directory: ReplicaDirectory

    def collector(self) -> RelayCollector:
        relay, servicer = self.relay, self.servicer
        return RelayCollector(
            lambda: len(relay.relaying()),
            lambda: (relay.calls, relay.failures, servicer.watching),
        )


GbReplica = Callable[[str], str | None]  # device -> the replica it registered to (GB), or None


def resolver(
    gb_replica: GbReplica, leadership: Leadership, directory: ReplicaDirectory
) -> Callable[[str, str], Holder]:
    """(device, camera) -> the replica holding its feed, from the shared database."""

    def resolve(device_id: str, camera_id: str) -> Holder:
        gb = gb_replica(device_id)
        address = directory.address_of(gb) if gb else ""
        facts = Facts(
            gb, address, leadership.leader_address(), directory.replica_id, directory.address
        )
        return holder_of(facts)

    return resolve


def build(
    core: Core,
    hub: LiveHub,
    leadership: Leadership,
    device_of: DeviceOf,
    gb_replica: GbReplica,
    options: RelayOptions | None = None,
) -> LiveRelay | None:
    config = core.config
    if not config.cluster.enabled:
        return None
    cert_path, key_path, ca_path = config.tls_paths()
    cert, key, ca = cert_path.read_bytes(), key_path.read_bytes(), ca_path.read_bytes()
    broken = "" if has_client_auth(cert) else NO_CLIENT_AUTH
    if broken:
        log.warning("live relay off: %s", broken)
    directory = ReplicaDirectory(
        core.engine, core.clock, config.replica_id(), config.advertised_address()
    )
    credentials = grpc.ssl_channel_credentials(ca, key, cert)
    relay = Relay(
        hub,
        resolver(gb_replica, leadership, directory),
        credentials,
        options,
        every_minute=directory.announce,
        broken=broken,
    )
    return LiveRelay(LiveRelayServicer(hub, device_of), relay, directory)


__all__ = ["LiveRelay", "build", "resolver"]
