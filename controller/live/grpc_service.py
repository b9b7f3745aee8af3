"""`vigil.v1.Live/Feed` on the controller's gRPC server: the agents' outbound live streams.

The device is the CN of the verified client certificate (controller/grpcserver/identity.py),
never a field the agent sends. A device may feed only its own cameras: a chunk for a camera
the catalog gives to another device ends the stream PERMISSION_DENIED (checked once per
camera per stream; the catalog lookup runs on a worker thread, never on the event loop).

One coroutine per open stream (the server is grpc.aio): it writes the hub's start/stop
commands down and, every `SWEEP_S`, lets the hub stop feeds whose last viewer left.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc

from controller.grpcserver.identity import device_from_auth
from controller.live.hub import LiveHub
from protos.vigil.v1 import live_pb2, live_pb2_grpc

log = logging.getLogger("vigil.live")

SWEEP_S = 0.5
Context = grpc.aio.ServicerContext[Any, Any]
DeviceOf = Callable[[str], str | None]  # camera -> its device in the catalog (blocking)


class ForeignCamera(Exception):
    pass


class LiveServicer(live_pb2_grpc.LiveServicer):
    def __init__(self, hub: LiveHub, device_of: DeviceOf) -> None:
        self.hub = hub
        self._device_of = device_of

    def register(self, server: grpc.aio.Server) -> None:
        live_pb2_grpc.add_LiveServicer_to_server(self, server)

    async def Feed(  # gRPC method name
        self, request_iterator: AsyncIterator[live_pb2.LivePacket], context: Context
    ) -> AsyncIterator[live_pb2.LiveCommand]:
        device = device_from_auth(context.auth_context())
        if device is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "no client certificate")
            return
        loop = asyncio.get_running_loop()
        commands: asyncio.Queue[live_pb2.LiveCommand] = asyncio.Queue()

        def send(camera_id: str, start: bool) -> None:  # any thread
            cmd = live_pb2.LiveCommand(camera_id=camera_id, start=start)
            loop.call_soon_threadsafe(commands.put_nowait, cmd)

        reader = asyncio.create_task(self._read(device, request_iterator))
        self.hub.attach(device, send)
        log.info("device %s: live feed stream open", device)
        try:
            while True:
                get = asyncio.ensure_future(commands.get())
                done, _ = await asyncio.wait(
                    {get, reader}, timeout=SWEEP_S, return_when=asyncio.FIRST_COMPLETED
                )
                if get in done:
                    yield get.result()
                else:
                    get.cancel()
                self.hub.sweep()
                if reader.done():
                    break
        finally:
            self.hub.detach(device, send)
            if not reader.done():
                reader.cancel()
            log.info("device %s: live feed stream closed", device)
        error = reader.exception() if not reader.cancelled() else None
        if isinstance(error, ForeignCamera):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(error))

    async def _read(self, device: str, packets: AsyncIterator[live_pb2.LivePacket]) -> None:
        own: set[str] = set()
        async for packet in packets:
            camera = packet.camera_id
            if not camera:
                continue  # hello / keepalive
            if camera not in own:
                if not self.hub.wanted(device, camera):
                    loop = asyncio.get_running_loop()
                    owner = await loop.run_in_executor(None, self._device_of, camera)
                    if owner != device:
                        log.warning("device %s fed camera %r of another device", device, camera)
                        raise ForeignCamera(f"camera {camera!r} is not a camera of {device}")
                own.add(camera)
            if packet.camera_down:
                self.hub.camera_down(device, camera, packet.detail)
            elif packet.data:
                self.hub.chunk(
                    device, camera, packet.data, packet.keyframe, packet.captured_us, packet.codec
                )
