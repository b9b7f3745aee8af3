"""The live hub's links: the scheduler's topology and plan (controller/scheduler/live_feeds.py).

Built by the assembly when this controller runs a scheduler; without one the hub admits every
feed (no topology to check) and nothing is planned.
"""

from __future__ import annotations

from controller.config import LiveConfig
from controller.live.feed import LiveOptions, Load
from controller.scheduler.live_feeds import LiveLoad, admit
from controller.scheduler.service import SchedulerService


def live_options(config: LiveConfig) -> LiveOptions:
    return LiveOptions(
        linger_s=config.linger_s,
        viewer_chunks=config.viewer_chunks,
        silent_s=config.silent_s,
        max_streams_per_link=config.max_streams_per_link,
        assumed_bps=config.assumed_kbps * 1000,
    )


class SchedulerLinks:
    """`LinkGate` over a SchedulerService: admission on its topology, feeds as LIVE demand."""

    def __init__(self, service: SchedulerService) -> None:
        self._service = service

    def admit(self, new: Load, running: list[Load], limit: int) -> str | None:
        loads = [LiveLoad(*load) for load in running]
        return admit(self._service.topology, loads, LiveLoad(*new), limit)

    def feeding(self, device_id: str, bps: int) -> None:
        self._service.set_live(device_id, bps)
