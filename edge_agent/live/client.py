"""The agent's live feed: one outbound `vigil.v1.Live/Feed` stream to the controller.

The stream goes to the control route's current address (edge_agent/uplink/routing.py: the
scheduler leader, followed by the lease client), over the same mutual-TLS channel pool as
leases and uploads: no port opens on the NVR and nothing connects to the village. The
controller sends start/stop per camera; chunks from the taps go up through a bounded queue.
When the village link cannot keep up the queue fills, the tap skips to the next keyframe
(live never queues stale video), and the controller's viewers simply see a later frame.

A broken stream stops every tap (no viewer is left fed into nothing) and is reopened with
capped, jittered backoff; the controller asks again for what its viewers still want. When the
control route moves (a new scheduler leader), `route_moved` ends a stream left on the old
address, so the feed follows the route as the lease stream does.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

from edge_agent.clock import Clock
from edge_agent.live.tap import LiveTaps
from protos.vigil.v1 import live_pb2, live_pb2_grpc

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveClientOptions:
    queue_chunks: int = 512  # ~10 s of a 4 Mbit/s camera at one chunk per frame
    backoff_initial_s: float = 0.5
    backoff_cap_s: float = 10.0
    poll_s: float = 0.5  # how soon the sending side notices a stop


class LiveClient:
    """start()/stop() like the agent's other components."""

    def __init__(
        self,
        taps: LiveTaps,
        address: Callable[[], str],
        channel_for: Callable[[str], grpc.Channel],
        clock: Clock,
        options: LiveClientOptions | None = None,
    ) -> None:
        self._taps = taps
        self._address = address
        self._channel_for = channel_for
        self._clock = clock
        self._opt = options or LiveClientOptions()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._out: queue.Queue[live_pb2.LivePacket | None] = queue.Queue(self._opt.queue_chunks)
        self._call: Any = None  # the open Feed call (cancel() ends it)
        self._call_address = ""
        self._lock = threading.Lock()
        self.connected = threading.Event()
        self.streams_opened = 0
        self.starts = 0  # start commands received (what crossed the link: tests, metrics)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="live-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            call = self._call
        if call is not None:
            call.cancel()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        self._taps.stop_all()

    def route_moved(self, address: str) -> None:
        """The control route now points at `address`: leave a stream open elsewhere."""
        with self._lock:
            call = self._call if self._call_address != address else None
        if call is not None:
            log.info("live feed: the control route moved to %s; reconnecting there", address)
            call.cancel()

    # -- the taps' side (capture threads) ---------------------------------------------------

    def _chunk(self, camera_id: str, data: bytes, key: bool, at_us: int, codec: str) -> bool:
        msg = live_pb2.LivePacket(
            camera_id=camera_id,
            data=data,
            keyframe=key,
            captured_us=at_us,
            codec=codec if key else "",
        )
        try:
            self._out.put_nowait(msg)
        except queue.Full:
            return False
        return True

    def _down(self, camera_id: str, reason: str) -> None:
        msg = live_pb2.LivePacket(camera_id=camera_id, camera_down=True, detail=reason[:200])
        try:
            self._out.put_nowait(msg)
        except queue.Full:
            pass

    # -- the stream -------------------------------------------------------------------------

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                self._stream_once()
                failures = 0
            except grpc.RpcError as exc:
                code = exc.code() if isinstance(exc, grpc.Call) else None
                if not self._stop.is_set():
                    log.warning("live feed ended: %s", code.name if code else exc)
                failures += 1
            except Exception:
                log.exception("live feed failed unexpectedly")
                failures += 1
            finally:
                self.connected.clear()
                self._taps.stop_all()
            delay = min(
                self._opt.backoff_cap_s, self._opt.backoff_initial_s * 2 ** min(failures, 8)
            )
            self._stop.wait(delay * (0.5 + random.random() / 2))  # noqa: S311 - jitter

    def _requests(
        self, out: queue.Queue[live_pb2.LivePacket | None], done: threading.Event
    ) -> Iterator[live_pb2.LivePacket]:
        """One stream's packets from its own queue: gRPC reads this on its own thread, which
        may still be waiting here after the stream ended; it must not take the next
        stream's chunks (a missing chunk corrupts the picture until the next keyframe)."""
        yield live_pb2.LivePacket()  # hello: the controller registers this device
        while not (self._stop.is_set() or done.is_set()):
            try:
                msg = out.get(timeout=self._opt.poll_s)
            except queue.Empty:
                continue
            if msg is None:
                return
            yield msg

    def _stream_once(self) -> None:
        address = self._address()
        stub = live_pb2_grpc.LiveStub(self._channel_for(address))
        out: queue.Queue[live_pb2.LivePacket | None] = queue.Queue(self._opt.queue_chunks)
        done = threading.Event()
        self._out = out  # the taps' chunks go to this stream from now on
        call = stub.Feed(self._requests(out, done))
        with self._lock:
            self._call, self._call_address = call, address
        self.streams_opened += 1
        self.connected.set()
        log.info("live feed open to %s", address)
        try:
            for command in call:
                self._command(command)
        except grpc.RpcError as exc:
            if not (isinstance(exc, grpc.Call) and exc.code() is grpc.StatusCode.CANCELLED):
                raise  # a cancel is ours (stop or a route move): reconnect without complaint
        finally:
            done.set()
            with self._lock:
                self._call = None
            call.cancel()

    def _command(self, command: live_pb2.LiveCommand) -> None:
        camera = command.camera_id
        if not command.start:
            if self._taps.known(camera):
                self._taps.tap(camera).stop()
            log.info("camera %s: live feed stopped", camera)
            return
        if not self._taps.known(camera):
            self._down(camera, "not a camera of this agent")
            return
        self.starts += 1
        log.info("camera %s: live feed started", camera)
        self._taps.tap(camera).start(self._chunk, self._down)
