"""GB/T 28181 devices in the fleet view: their state from their `gb_device` rows.

A GB device (an NVR or camera registered to Vigil over GB/T 28181) has no agent, no MQTT
state and no health report; what says it is alive is its registration and keepalives, held
by the replica it registered to and written to its row (`gb28181.devstate`). So the fleet
view of any replica reads the rows, shared by every console it serves: at most one query per
`ttl_s`, never one per console per second (the event stream polls each second). A GB
channel's state is its device's, except that a channel the device's last Catalog answer
reported OFF is offline while the device is online (`devstate.judge_channel`, over the
`gb_channel` rows); the tree's counts and dots, the camera list's filter and the device
detail all read it from here.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from controller.api.schemas import GbChannelOut, GbDeviceOut
from controller.clock import Clock
from controller.gb28181.devstate import ChannelState, DeviceState, judge
from controller.gb28181.devstore import ChannelRow, GbDeviceStore, judged_channels, liveness
from controller.gb28181.tables import GbDevice


class GbFleet:
    def __init__(
        self,
        store: GbDeviceStore,
        clock: Clock,
        timeout_s: float,
        ttl_s: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._clock = clock
        self._timeout_s = timeout_s
        self._ttl_s = ttl_s
        self._mono = monotonic
        self._lock = threading.Lock()
        self._rows: list[GbDevice] = []
        self._channels: dict[str, ChannelRow] = {}
        self._read_at: float | None = None

    def rows(self) -> list[GbDevice]:
        return self._read()[0]

    def _read(self) -> tuple[list[GbDevice], dict[str, ChannelRow]]:
        with self._lock:
            now = self._mono()
            if self._read_at is None or now - self._read_at >= self._ttl_s:
                self._rows, self._channels = self._store.rows(), self._store.all_channels()
                self._read_at = now
            return self._rows, self._channels

    def channel_states(self, counties: Callable[[str], bool]) -> dict[str, ChannelState]:
        """camera id -> its judged state, for the channels of devices in a county `counties`
        accepts."""
        rows, channels = self._read()
        rows = [r for r in rows if counties(r.county)]
        return judged_channels(rows, channels, self._clock.now_us(), self._timeout_s)

    def channels_online(self, counties: Callable[[str], bool]) -> dict[str, bool]:
        """camera id -> online, for the channels of devices in a county `counties` accepts;
        channels of a device never registered are left out (unknown)."""
        states = self.channel_states(counties)
        return {cam: s.online for cam, s in states.items() if s.online is not None}

    def states(self) -> dict[str, tuple[DeviceState, GbDeviceOut]]:
        """Each device's judged state and what the console shows of it (with each of its
        channels' own state), by code."""
        rows, channels = self._read()
        now_us = self._clock.now_us()
        judged = judged_channels(rows, channels, now_us, self._timeout_s)
        by_device: dict[str, list[GbChannelOut]] = {}
        for cam in sorted(judged):
            row, state = channels[cam], judged[cam]
            by_device.setdefault(row.device_id, []).append(
                GbChannelOut(
                    camera_id=cam,
                    status=row.status,
                    reported_us=row.reported_us,
                    online=state.online,
                    reason=state.reason,
                )  # fmt: skip
            )
        return {
            r.device_id: (
                judge(liveness(r), now_us, self._timeout_s),
                _out(r, by_device.get(r.device_id, [])),
            )
            for r in rows
        }


def _out(r: GbDevice, channels: list[GbChannelOut]) -> GbDeviceOut:
    return GbDeviceOut(
        registered_us=r.registered_us,
        expires_us=r.expires_us,
        last_keepalive_us=max(r.last_seen_us, r.registered_us),
        contact=r.contact,
        replica=r.replica,
        channels=r.channels,
        not_answering_since_us=r.unanswered_us,
        channel_states=channels,
    )
