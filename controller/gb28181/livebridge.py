"""GB/T 28181 devices as live sources of the hub, like agents with an open Feed stream.

Each registered, online device is attached to the live hub under its code (its channels'
catalog device), with a command sink that hands the hub's start/stop of a channel to the
session supervisor (`RecordingSupervisor.live`) on the SIP loop. So a console viewer of a
device channel goes through the very same WebSocket/HLS route, grants check and audit
(`live_view`, `live_view_end`) as one of an agent camera; the first viewer makes the hub
start the channel (an INVITE, or a share of the recording session), the last one leaving
stops it after the hub's linger (a BYE unless the channel records). The bridge also sweeps
the hub every tick: with only GB devices there is no agent stream to do it.

A device that goes offline or unregisters is detached (its feeds read "agent unreachable");
an INVITE a viewer is waiting for that fails is told to the hub as the camera being down,
with the device's status, so the viewer sees why.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from controller.gb28181.channel_sessions import Channel, RecordingSupervisor
from controller.live.feed import CommandSink
from controller.live.hub import LiveHub

log = logging.getLogger("vigil.gb28181")


class LiveBridge:
    def __init__(
        self,
        supervisor: RecordingSupervisor,
        hub: LiveHub,
        loop: asyncio.AbstractEventLoop,
        now_us: Callable[[], int],
    ) -> None:
        self.supervisor = supervisor
        self.hub = hub
        self.loop = loop
        self.now_us = now_us
        self.attached: dict[str, CommandSink] = {}
        supervisor.after_tick.append(self.tick)
        supervisor.on_live_failed = self.failed

    def tick(self) -> None:
        access = self.supervisor.access
        online = {d for d in access.devices if access.online(d)}
        for device_id in online - self.attached.keys():
            sink = self.attached[device_id] = self._sink(device_id)
            self.hub.attach(device_id, sink)
        for device_id in self.attached.keys() - online:
            self._detach(device_id)
        self.hub.sweep()

    def _sink(self, device_id: str) -> CommandSink:
        def send(camera_id: str, start: bool) -> None:  # any thread (the hub's callers')
            self.loop.call_soon_threadsafe(self._command, device_id, camera_id, start)

        return send

    def _command(self, device_id: str, camera_id: str, start: bool) -> None:
        if device_id not in self.attached:
            return  # a late command for a device detached meanwhile
        if not start:
            self.supervisor.live(device_id, camera_id, None)
            return
        hub, now_us = self.hub, self.now_us

        def emit(data: bytes, key: bool, codec: str) -> None:
            hub.chunk(device_id, camera_id, data, key, now_us(), codec)

        log.info("device %s channel %s: live view started", device_id, camera_id)
        self.supervisor.live(device_id, camera_id, emit)

    def failed(self, ch: Channel, why: str) -> None:
        self.hub.camera_down(ch.device_id, ch.code, f"GB 设备未接受点播: {why}"[:200])

    def _detach(self, device_id: str) -> None:
        sink = self.attached.pop(device_id)
        self.hub.detach(device_id, sink)
        for ch in list(self.supervisor.channels.values()):
            if ch.device_id == device_id and ch.live is not None:
                self.supervisor.live(device_id, ch.code, None)

    def close(self) -> None:
        for device_id in list(self.attached):
            self._detach(device_id)
