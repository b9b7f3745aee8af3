"""GB/T 28181 devices in the fleet view: their state from their `gb_device` rows.

A GB device (an NVR or camera registered to Vigil over GB/T 28181) has no agent, no MQTT
state and no health report; what says it is alive is its registration and keepalives, held
by the replica it registered to and written to its row (`gb28181.devstate`). So the fleet
view of any replica reads the rows, shared by every console it serves: at most one query per
`ttl_s`, never one per console per second (the event stream polls each second). A GB
channel counts as online while its device is (the device's per-channel Catalog status is not
kept), so the tree's counts and dots include GB cameras.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from controller.api.schemas import GbDeviceOut
from controller.clock import Clock
from controller.gb28181.devstate import DeviceState, Liveness, judge
from controller.gb28181.devstore import GbDeviceStore
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
        self._channels: dict[str, str] = {}
        self._read_at: float | None = None

    def rows(self) -> list[GbDevice]:
        return self._read()[0]

    def _read(self) -> tuple[list[GbDevice], dict[str, str]]:
        with self._lock:
            now = self._mono()
            if self._read_at is None or now - self._read_at >= self._ttl_s:
                self._rows, self._channels = self._store.rows(), self._store.all_channels()
                self._read_at = now
            return self._rows, self._channels

    def channels_online(self, counties: Callable[[str], bool]) -> dict[str, bool]:
        """camera id -> online, for the channels of devices in a county `counties` accepts;
        channels of a device never registered are left out (unknown)."""
        rows, channels = self._read()
        now_us = self._clock.now_us()
        state = {r.device_id: self._judge(r, now_us).online for r in rows if counties(r.county)}
        return {
            cam: bool(state[dev]) for cam, dev in channels.items() if state.get(dev) is not None
        }

    def states(self) -> dict[str, tuple[DeviceState, GbDeviceOut]]:
        """Each device's judged state and what the console shows of it, by code."""
        now_us = self._clock.now_us()
        return {r.device_id: (self._judge(r, now_us), _out(r)) for r in self.rows()}

    def _judge(self, r: GbDevice, now_us: int) -> DeviceState:
        facts = Liveness(r.registered_us, r.expires_us, r.last_seen_us, r.unanswered_us,
                         r.revoked_us)  # fmt: skip
        return judge(facts, now_us, self._timeout_s)


def _out(r: GbDevice) -> GbDeviceOut:
    return GbDeviceOut(
        registered_us=r.registered_us,
        expires_us=r.expires_us,
        last_keepalive_us=max(r.last_seen_us, r.registered_us),
        contact=r.contact,
        replica=r.replica,
        channels=r.channels,
        not_answering_since_us=r.unanswered_us,
    )
