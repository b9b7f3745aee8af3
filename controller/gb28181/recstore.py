"""What recording device channels reads and writes (blocking; run on worker threads).

`channels`: a device's cameras in the catalog, with their last Catalog status. `recorder`: a
channel's `Recorder`, its chain continued from the camera's latest committed segment (so a
controller restart is a gap in the accounting, not a second chain). `note`: a camera state
change in the history (`state_change`, the same rows the fleet writes for agent cameras and
the KPIs read). Segments are committed by an ingest `Committer` of its own that never
assumes it is the sole writer (agent uploads and other replicas' commits are looked up in
the catalog).
"""

from __future__ import annotations

from controller.catalog.history import HistoryCatalog
from controller.catalog.history_models import StateChangeRow
from controller.gb28181.devstore import GbDeviceStore
from controller.gb28181.recorder import Recorder
from controller.ingest.commit import Committer
from controller.ingest.staging import Staging
from controller.runtime import Core

DAY_US = 86_400 * 1_000_000


class CoreRecordingBackend:
    def __init__(self, core: Core, segment_s: float) -> None:
        self.core = core
        self.segment_s = segment_s
        staging = Staging(core.config.data_path / "gb-staging", direct_io=False)
        self.committer = Committer(core.catalog, core.store, staging, core.clock, False)
        self._devices = GbDeviceStore(core.engine, core.clock)
        self._history = HistoryCatalog(core.engine, core.clock)

    def channels(self, device_id: str) -> dict[str, str]:
        """The device's cameras with their last Catalog status (camera id -> status)."""
        return self._devices.own_channels(device_id)

    def recorder(self, camera_id: str) -> Recorder | None:
        camera = self.core.catalog.camera(camera_id)
        if camera is None:
            return None
        last = self.core.catalog.previous_segment(camera_id, self.core.clock.now_us() + DAY_US)
        return Recorder(
            self.committer, self.core.store, camera, self.core.clock.now_us, self.segment_s,
            prev_sha=last.sha256 if last is not None else "",
            last_end_us=last.end_us if last is not None else 0,
        )  # fmt: skip

    def now_us(self) -> int:
        return self.core.clock.now_us()

    def note(self, device_id: str, camera_id: str, state: str, reason: str, at_us: int) -> None:
        row = StateChangeRow(
            subject="camera",
            device_id=device_id,
            camera_id=camera_id,
            state=state,
            reason=reason[:256],
            at_us=at_us,
        )
        self._history.record_changes([row])
