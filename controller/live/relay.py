"""The live relay, viewing side: another replica's feed as a source of this replica's hub.

A console viewer may be connected to any replica, but a camera's feed arrives at one: the
scheduler leader for an agent camera, the replica a GB/T 28181 device registered to for its
channels (controller/live/holder.py decides). When the hub has no stream of the camera's
device here it asks this relay (`LiveHub.upstream`), which opens one `LiveRelay/Watch` to the
holding replica for the camera, shared by all the local viewers (the hub fans it out, caches
its GOP and ends it after its linger as for an agent's feed). The holder answers with
chunks and its feed state; the state is shown here as it is (link_busy, camera_offline...).

When the holder cannot be reached or the call breaks (the holder was killed, a new leader
took over), the local viewers read agent_unreachable with the reason, and the relay tries
again with backoff (`RelayOptions`) for as long as they stay. A holder that sends nothing
for `silent_s` (it sends its state every second) is taken as gone: a silently cut network
costs seconds, not gRPC's keepalive; one that has had no stream of the camera's device for
`silent_s` is left too, and the holder looked up again (the agent may feed a new leader
now, the GB device may have registered to another replica).

Its own thread and event loop (gRPC client calls, look-ups on the loop's executor), so a slow
peer never stalls ingest on the server's loop; the loop also sweeps the hub every
`sweep_s` (a follower with no agent stream would otherwise never end a relayed feed).
Calls use mutual TLS with this replica's own certificate (the server certificate, which the
city CA issues for server and client authentication: controller/pki).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass

import grpc

from controller.live.feed import FeedState
from controller.live.hls import video_start
from controller.live.holder import Holder
from controller.live.hub import LiveHub
from protos.vigil.v1 import live_relay_pb2, live_relay_pb2_grpc

log = logging.getLogger("vigil.live")

Resolve = Callable[[str, str], Holder]  # (device, camera) -> who holds its feed (blocking)


@dataclass(frozen=True, slots=True)
class RelayOptions:
    backoff_initial_s: float = 0.5
    backoff_cap_s: float = 8.0
    silent_s: float = 5.0  # no packet from the holder this long: it is gone
    sweep_s: float = 0.5
    max_message_bytes: int = 16 * 1024 * 1024


class Relay:
    def __init__(
        self,
        hub: LiveHub,
        resolve: Resolve,
        credentials: grpc.ChannelCredentials,
        options: RelayOptions | None = None,
        every_minute: Callable[[], None] | None = None,
        broken: str = "",
    ) -> None:
        self.hub = hub
        self._resolve = resolve
        self._credentials = credentials
        self.options = options or RelayOptions()
        self._every_minute = every_minute  # this replica's address announcement
        self.broken = broken  # why this replica cannot relay at all ("" : it can)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self.calls = 0  # Watch calls opened (retries included)
        self.failures = 0  # calls or look-ups that failed

    # -- lifecycle (the assembly's component) ------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="live-relay", daemon=True)
        self._thread.start()
        self._ready.wait(10.0)
        self.hub.upstream = self.command

    def stop(self) -> None:
        self.hub.upstream = None
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass
        if self._thread is not None:
            self._thread.join(10.0)

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        self._ready.set()
        loop = asyncio.get_running_loop()
        minute = -60.0
        while not self._stop.is_set():
            if self._every_minute is not None and loop.time() - minute >= 60.0:
                minute = loop.time()
                loop.run_in_executor(None, self._announce)
            self.hub.sweep()
            try:
                await asyncio.wait_for(self._stop.wait(), self.options.sweep_s)
            except TimeoutError:
                pass
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        for channel in self._channels.values():
            await channel.close()

    def _announce(self) -> None:
        try:
            assert self._every_minute is not None
            self._every_minute()
        except Exception as exc:
            log.warning("live relay: cannot announce this replica's address: %s", exc)

    # -- the hub's upstream ------------------------------------------------------------------

    def command(self, device_id: str, camera_id: str, start: bool) -> None:
        """Start or stop relaying a camera (any thread: the hub's callers')."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(self._command, device_id, camera_id, start)
        except RuntimeError:
            pass  # stopping

    def _command(self, device_id: str, camera_id: str, start: bool) -> None:
        task = self._tasks.pop(camera_id, None)
        if task is not None and not task.done():
            if start:
                self._tasks[camera_id] = task  # already relaying
                return
            task.cancel()
        if start:
            self._tasks[camera_id] = asyncio.ensure_future(self._follow(device_id, camera_id))

    def relaying(self) -> list[str]:
        """The cameras being relayed now (any thread: a copy of the loop's table)."""
        tasks = list(self._tasks.items())
        return sorted(c for c, t in tasks if not t.done())

    # -- one camera --------------------------------------------------------------------------

    async def _follow(self, device_id: str, camera_id: str) -> None:
        """Relay the camera from its holder until cancelled, again after each failure."""
        loop = asyncio.get_running_loop()
        backoff = self.options.backoff_initial_s
        while True:
            why = self.broken
            if not why:
                try:
                    holder = await loop.run_in_executor(None, self._resolve, device_id, camera_id)
                except Exception as exc:
                    holder = Holder("", f"查不到转发来源: cannot look up the holder: {exc}"[:200])
                why = holder.why
                if holder.address:
                    got, why = await self._watch(holder.address, device_id, camera_id)
                    if got:
                        backoff = self.options.backoff_initial_s
                    why = f"副本 {holder.address} 转发中断: {why}"
            self.failures += 1
            detail = f"{why}（{backoff:g} 秒后重试 / retry in {backoff:g} s）" if why else ""
            self.hub.relay_state(device_id, camera_id, FeedState.AGENT_UNREACHABLE, detail[:300])
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, self.options.backoff_cap_s)

    async def _watch(self, address: str, device_id: str, camera_id: str) -> tuple[bool, str]:
        """One Watch call: (whether any packet came, why it ended)."""
        stub = live_relay_pb2_grpc.LiveRelayStub(self._channel(address))
        self.calls += 1
        call = stub.Watch(live_relay_pb2.RelayRequest(camera_id=camera_id))
        loop = asyncio.get_running_loop()
        got = False
        unreachable = loop.time()  # since when the holder has had no stream of the device
        try:
            while True:
                try:
                    packet = await asyncio.wait_for(call.read(), self.options.silent_s)
                except TimeoutError:
                    return got, f"no word for {self.options.silent_s:g} s"
                if packet is grpc.aio.EOF:
                    return got, "the holder ended the relay"
                assert isinstance(packet, live_relay_pb2.RelayPacket)
                self._apply(device_id, camera_id, packet)
                if packet.state != FeedState.AGENT_UNREACHABLE.value or packet.chunks:
                    got, unreachable = True, loop.time()
                elif loop.time() - unreachable >= self.options.silent_s:
                    # the device may feed another replica now (a new leader, a GB device
                    # registered elsewhere): ask again who holds it
                    return False, f"no stream of the device there ({packet.detail or '-'})"
        except grpc.aio.AioRpcError as exc:
            log.info("camera %s: relay from %s: %s", camera_id, address, exc.code().name)
            return got, f"{exc.code().name}: {exc.details()}"
        finally:
            call.cancel()

    def _apply(self, device_id: str, camera_id: str, packet: live_relay_pb2.RelayPacket) -> None:
        for chunk in packet.chunks:
            start = video_start(chunk)
            key = start is not None and start[1]
            self.hub.chunk(device_id, camera_id, chunk, key, packet.frame_us, packet.codec)
        if not packet.chunks and packet.state:
            try:
                state = FeedState(packet.state)
            except ValueError:
                state = FeedState.AGENT_UNREACHABLE
            self.hub.relay_state(device_id, camera_id, state, packet.detail[:300])

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            size = self.options.max_message_bytes
            channel = self._channels[address] = grpc.aio.secure_channel(
                address,
                self._credentials,
                options=[
                    ("grpc.max_receive_message_length", size),
                    ("grpc.keepalive_time_ms", 10_000),
                    ("grpc.keepalive_timeout_ms", 5_000),
                    ("grpc.initial_reconnect_backoff_ms", 500),
                    ("grpc.max_reconnect_backoff_ms", 5_000),
                ],
            )
        return channel


__all__ = ["Relay", "RelayOptions"]
