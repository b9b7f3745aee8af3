"""`vigil.v1.LiveRelay/Watch` on the holding replica: another replica's relay of one camera.

The caller must be a controller replica (controller/grpcserver/identity.py
`controller_from_auth`: the city CA's controller certificate; an agent's certificate is
refused PERMISSION_DENIED). The camera's device comes from the catalog, never from the
caller. The call joins the hub as one viewer, like a console viewer here, so link admission
(`link_busy`), the live accounting on the links and the agent's start/stop happen once, at
the holder; `local=True` keeps it from being relayed on (controller/live/hub.py). The user's
grant and the audit stay with the viewing replica, which checked and wrote them.

What goes back: the hub's chunks as they come, in packets of at most `PACKET_BYTES`, each
with the feed's state, and a state-only packet every `STATUS_S` when no chunk came (the
caller also reads it as a heartbeat). A relay that falls `viewer_chunks` behind is dropped
like any viewer (RESOURCE_EXHAUSTED); the caller starts again from a keyframe.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import grpc

from controller.grants.model import MAX_ID_CHARS
from controller.grpcserver.identity import controller_from_auth
from controller.live.hub import LiveHub
from controller.live.viewer import Viewer
from protos.vigil.v1 import live_relay_pb2, live_relay_pb2_grpc

log = logging.getLogger("vigil.live")

STATUS_S = 1.0
PACKET_BYTES = 1024 * 1024  # a larger chunk goes alone
Context = grpc.aio.ServicerContext[Any, Any]
DeviceOf = Callable[[str], str | None]  # camera -> its device in the catalog (blocking)


class LiveRelayServicer(live_relay_pb2_grpc.LiveRelayServicer):
    def __init__(self, hub: LiveHub, device_of: DeviceOf) -> None:
        self.hub = hub
        self._device_of = device_of
        self.watching = 0  # relays open now (other replicas' viewers of feeds held here)

    def register(self, server: grpc.aio.Server) -> None:
        live_relay_pb2_grpc.add_LiveRelayServicer_to_server(self, server)

    async def Watch(  # gRPC method name
        self, request: live_relay_pb2.RelayRequest, context: Context
    ) -> AsyncIterator[live_relay_pb2.RelayPacket]:
        if not controller_from_auth(context.auth_context()):
            log.warning("live relay refused: the caller is not a controller replica")
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, "only a controller replica may relay live view"
            )
        camera = request.camera_id
        if not 0 < len(camera) <= MAX_ID_CHARS or not camera.isprintable():
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"camera_id: 1-{MAX_ID_CHARS} printable chars"
            )
        loop = asyncio.get_running_loop()
        device = await loop.run_in_executor(None, self._device_of, camera)
        if device is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown camera {camera!r}")
            return
        viewer = Viewer(camera, loop, self.hub.options.viewer_chunks)
        if not self.hub.join(camera, device, viewer, local=True):
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"this replica relays camera {camera!r} from another one itself",
            )
        self.watching += 1
        try:
            while True:
                try:
                    chunks = await asyncio.wait_for(viewer.next(), STATUS_S)
                except TimeoutError:
                    chunks = []
                if chunks is None:
                    break  # dropped (too slow) or closed
                for packet in self._packets(camera, chunks):
                    yield packet
        finally:
            self.watching -= 1
            self.hub.leave(viewer)
        if viewer.dropped:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED, "the relay fell behind and was dropped"
            )

    def _packets(self, camera: str, chunks: list[bytes]) -> Iterator[live_relay_pb2.RelayPacket]:
        st = self.hub.status(camera)
        facts: dict[str, Any] = {}
        if st is not None:
            facts = {
                "state": st.state.value,
                "detail": st.detail,
                "frame_us": st.frame_us,
                "codec": st.codec,
            }
        batch: list[bytes] = []
        size = 0
        for chunk in chunks:
            if batch and size + len(chunk) > PACKET_BYTES:
                yield live_relay_pb2.RelayPacket(chunks=batch, **facts)
                batch, size = [], 0
            batch.append(chunk)
            size += len(chunk)
        if batch or not chunks:
            yield live_relay_pb2.RelayPacket(chunks=batch, **facts)


__all__ = ["LiveRelayServicer"]
