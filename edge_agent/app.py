"""The agent's wiring: config, clock, buffer, capture, and the optional components around them.

`Agent` owns the lifecycle. The buffer opens first (it recovers from any crash before anything
writes), capture starts next, then the optional components (the uplink, the MQTT health
reporter: anything with start/stop, added with `add_component`) in the order added. Stopping
goes the other way round, and capture commits every open segment before the buffer closes.

Events (`camera_lost`, `camera_back`, ...) fan out to subscribers (`subscribe`), which must be
quick and must not raise (the health reporter queues them). Hooks for the lead's wiring:

    agent = Agent.open(config, SystemClock())
    agent.add_component(uploader)                  # start()/stop()
    agent.add_component(reporter)
    agent.subscribe(reporter.submit_event)
    ReporterInputs(statuses=agent.statuses, buffer=agent.buffer,
                   on_reconfigure=agent.reconfigure, ...)

A small status file (data_dir/status.json, rewritten every few seconds) lets
`vigil-agent status` show a running agent's cameras: the buffer itself is locked by the
running process.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Protocol

from edge_agent.capture import CaptureManager, CaptureSettings
from edge_agent.clock import Clock
from edge_agent.config import AgentConfig
from edge_agent.live.tap import LiveTaps
from edge_agent.model import AgentEvent, CameraStatus
from edge_agent.store import SegmentBuffer

log = logging.getLogger(__name__)

STATUS_INTERVAL_S = 5.0


class Component(Protocol):
    """Anything the agent starts after capture and stops before it (uplink, health)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


def buffer_dir(config: AgentConfig) -> Path:
    return Path(config.data_dir) / "buffer"


def capture_state_dir(config: AgentConfig) -> Path:
    return Path(config.data_dir) / "capture"


def status_path(config: AgentConfig) -> Path:
    return Path(config.data_dir) / "status.json"


class Agent:
    def __init__(
        self,
        config: AgentConfig,
        clock: Clock,
        buffer: SegmentBuffer,
        settings: CaptureSettings | None = None,
    ) -> None:
        self.config = config
        self.clock = clock
        self.buffer = buffer
        self.settings = settings or CaptureSettings(state_dir=capture_state_dir(config))
        self.live = LiveTaps(clock.now_us)  # the live view's tee on capture (edge_agent/live)
        self.capture = CaptureManager(
            config.cameras, buffer, clock, self.settings, on_event=self.publish, live=self.live
        )
        self._components: list[Component] = []
        self._subscribers: list[Callable[[AgentEvent], None]] = []
        self._lock = threading.Lock()
        self._stop_status = threading.Event()
        self._status_thread: threading.Thread | None = None
        self._started = False

    @classmethod
    def open(
        cls, config: AgentConfig, clock: Clock, settings: CaptureSettings | None = None
    ) -> Agent:
        """Open (and recover) the buffer under config.data_dir; raises StoreError."""
        buffer = SegmentBuffer.open(buffer_dir(config), config.buffer.quota_bytes, clock)
        return cls(config, clock, buffer, settings)

    # -- hooks ------------------------------------------------------------------------------

    def add_component(self, component: Component) -> None:
        """Started after capture (at once if the agent runs already), stopped before it."""
        with self._lock:
            self._components.append(component)
            running = self._started
        if running:
            component.start()

    def subscribe(self, callback: Callable[[AgentEvent], None]) -> None:
        with self._lock:
            self._subscribers.append(callback)

    def publish(self, event: AgentEvent) -> None:
        """Hand an event to every subscriber; a failing subscriber is logged, not fatal."""
        with self._lock:
            subscribers = list(self._subscribers)
        for callback in subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("event subscriber failed on %s", event.kind)

    def statuses(self) -> list[CameraStatus]:
        return self.capture.statuses()

    def reconfigure(self, config: AgentConfig) -> None:
        """Apply a new configuration's cameras now; other sections need a restart."""
        if config.model_dump(exclude={"cameras"}) != self.config.model_dump(exclude={"cameras"}):
            log.warning("configuration changed beyond cameras; restart the agent to apply it")
        self.config = config
        self.capture.reconfigure(config.cameras)

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            if self._started:
                return
            self._started = True
            components = list(self._components)
        self.capture.start()
        for component in components:
            component.start()
        self._stop_status.clear()
        self._status_thread = threading.Thread(
            target=self._status_loop, name="status-file", daemon=True
        )
        self._status_thread.start()
        log.info(
            "agent %s started: %d cameras, buffer %s",
            self.config.device_id,
            len(self.config.cameras),
            buffer_dir(self.config),
        )

    def stop(self) -> None:
        """Stop components (newest first), then capture, then close the buffer."""
        with self._lock:
            components = list(reversed(self._components))
            was_started, self._started = self._started, False
        if was_started:
            for component in components:
                try:
                    component.stop()
                except Exception:
                    log.exception("stopping %s failed", type(component).__name__)
            self.capture.stop()
            self._stop_status.set()
            if self._status_thread is not None:
                self._status_thread.join(10.0)
            self.write_status()
        self.buffer.close()
        log.info("agent %s stopped", self.config.device_id)

    def run(self, stop: threading.Event) -> None:
        """Start, wait for `stop` to be set (signal handlers set it), stop."""
        self.start()
        try:
            # Wake every second: a signal delivered to another thread only runs its Python
            # handler when the main thread next executes bytecode, not inside a bare wait().
            while not stop.wait(1.0):
                pass
        finally:
            self.stop()

    # -- status file ------------------------------------------------------------------------

    def status_snapshot(self) -> dict[str, object]:
        stats = self.buffer.stats()
        return {
            "device_id": self.config.device_id,
            "at_us": self.clock.now_us(),
            "pid": os.getpid(),
            "running": self._started,
            "buffer": asdict(stats),
            "cameras": [asdict(s) for s in self.statuses()],
        }

    def write_status(self) -> None:
        """Write status.json atomically (best effort: a full disk only costs the file)."""
        path = status_path(self.config)
        try:
            payload = json.dumps(self.status_snapshot(), sort_keys=True)
            tmp = path.with_name(path.name + ".tmp")
            tmp.write_text(payload, encoding="utf-8")
            os.replace(tmp, path)
        except Exception as exc:
            log.debug("cannot write %s: %s", path, exc)

    def _status_loop(self) -> None:
        while True:
            self.write_status()
            if self._stop_status.wait(STATUS_INTERVAL_S):
                return
