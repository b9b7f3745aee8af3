"""GB/T 28181 device channel sessions, kept: continuous recording, and live view on demand.

Every `tick_s` on the SIP loop the supervisor looks at each registered device's channels
(from its Catalog answer, or the catalog's cameras of that device when Vigil restarted and
has not asked yet), starts recording those `[gb28181] record` selects, and judges each
running session with `supervise.drop_reason`: the device's BYE, a new registration epoch (it
restarted), its registration gone, RTP silent for `rtp_timeout_s`. A dead session is closed
at once (its last frames cut into a segment and committed), BYE'd in the background, and
INVITEd again after `supervise.after_drop`'s backoff; a refused INVITE backs off the same
way. A channel its device's Catalog reports OFF is not INVITEd for recording until it is
reported ON again (`supervise.hold`; the history says why), nor, briefly, before a device
that registered afresh answered its Catalog query. One `Recorder` per channel lives across
sessions, so the chain goes on and the time between is a recording gap the catalog accounts
for (`camera_hour.gap_us`). Each change of what a channel is doing is written to the history
as a camera state change (online "gb: recording", offline with the reason), so the gap is
explained, not silent.

Before each INVITE the device's row is read: a device that registered to another controller
replica since (a restart, a fail-over of the address it points to) is forgotten here, so two
replicas never record one channel into one chain; the other replica records it now.

Live view (`live`, driven by the hub through `livebridge`) shares the same session: a
channel is INVITEd while it records or has a live consumer, and a live-only session is BYE'd
(no backoff) once its last consumer left. A recorded channel's live view costs the device no
second stream.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from controller.gb28181 import devplay, supervise
from controller.gb28181.devices import DeviceAccess
from controller.gb28181.devplay import DevicePlay, PlayError
from controller.gb28181.livets import Emit, LiveTs
from controller.gb28181.manscdp import UNKNOWN
from controller.gb28181.ps import AccessUnit
from controller.gb28181.recorder import Recorder
from controller.gb28181.tsmux import DEVICE_AUDIO

log = logging.getLogger("vigil.gb28181")
T = TypeVar("T")
RECORDING = "gb: recording"
CLOSE_WAIT_S = 2.0


class RecordingBackend(Protocol):
    """Blocking calls (run on worker threads)."""

    def channels(self, device_id: str) -> dict[str, str]: ...  # camera id -> Catalog status

    def recorder(self, camera_id: str) -> Recorder | None: ...

    def now_us(self) -> int: ...

    def note(self, device_id: str, camera_id: str, state: str, reason: str, at_us: int) -> None: ...


@dataclass(eq=False)
class Channel:
    device_id: str
    code: str
    recorder: Recorder | None = None
    play: DevicePlay | None = None
    epoch: int = 0  # the device's epoch when this session was INVITEd
    invited_at: float = 0.0
    attempts: int = 0  # failures in a row
    retry_at: float = 0.0
    busy: bool = False  # an INVITE or a drop under way
    noted: tuple[str, str] = ("", "")  # the last state change written
    note_task: asyncio.Task[None] | None = None  # the last state change being written
    sessions: int = 0  # INVITEs answered 200 so far
    last_drop: str = ""
    record: bool = True  # selected by `[gb28181] record`
    live: LiveTs | None = None  # the hub's feed of it, while someone watches
    held: bool = False  # not INVITEd: its device's Catalog reports it OFF (`supervise.hold`)

    @property
    def wanted(self) -> bool:
        return self.record or self.live is not None

    def audio_type(self) -> int | None:
        """The audio stream type the device's PSM lists for this session, if any."""
        types = self.play.rtp_in.rtp.demux.types.values() if self.play is not None else ()
        return next((t for t in types if t in DEVICE_AUDIO), None)

    def on_unit(self, au: AccessUnit) -> None:
        if self.recorder is not None and self.record:
            self.recorder.on_unit(au)
        if self.live is not None:
            self.live.unit(au)


class RecordingSupervisor:
    def __init__(
        self,
        access: DeviceAccess,
        backend: RecordingBackend,
        patterns: Sequence[str],
        timing: supervise.Timing,
        tick_s: float = 0.5,
        tcp_patterns: Sequence[str] = (),
        tcp_active_patterns: Sequence[str] = (),
    ) -> None:
        self.access = access
        self.tcp_patterns = list(tcp_patterns)
        self.tcp_active_patterns = list(tcp_active_patterns)
        self.backend = backend
        self.patterns = list(patterns)
        self.timing = timing
        self.tick_s = tick_s
        self.channels: dict[tuple[str, str], Channel] = {}
        self._loading: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.after_tick: list[Callable[[], None]] = []  # the live bridge's
        self.on_live_failed: Callable[[Channel, str], None] | None = None

    async def _in_thread(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(None, fn, *args)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until `stop`, then end every session (BYE) and commit what is left."""
        while not stop.is_set():
            try:
                self.tick()
                for hook in self.after_tick:
                    hook()
            except Exception:  # a bug here must not end recording for good
                log.exception("GB recording supervisor tick failed")
            try:
                await asyncio.wait_for(stop.wait(), self.tick_s)
            except TimeoutError:
                pass
        await self.close()

    def tick(self) -> None:
        now = asyncio.get_running_loop().time()
        for dev in list(self.access.devices.values()):
            if dev.channel_codes is None:
                if dev.device_id not in self._loading:
                    self._loading.add(dev.device_id)
                    self._spawn(self._load(dev.device_id))
                continue
            for code in dev.channel_codes:
                key = (dev.device_id, code)
                if supervise.wanted(self.patterns, *key):
                    ch = self.channels.setdefault(key, Channel(dev.device_id, code, retry_at=now))
                    ch.record = True
        for key, ch in list(self.channels.items()):
            if ch.busy:
                continue
            if ch.play is not None:
                if ch.wanted:
                    self._check(ch, now)
                else:
                    self._release(ch)
                continue
            if not ch.wanted:
                del self.channels[key]  # live only, and nobody watches any more
                continue
            holder = self.access.devices.get(ch.device_id)
            if holder is not None and holder.epoch != ch.epoch:  # registered afresh: at once
                ch.epoch, ch.attempts, ch.retry_at = holder.epoch, 0, now
            if holder is None or not self.access.online(ch.device_id):
                continue
            status = holder.channel_status.get(ch.code, UNKNOWN)
            why = supervise.hold(status, ch.live is not None, holder.catalog_wait, now)
            if why is not None:
                if why != supervise.WAIT_CATALOG:
                    ch.held = True
                    self._note(ch, "offline", why)
                continue
            if ch.held:  # reported ON again: at once
                ch.held, ch.attempts, ch.retry_at = False, 0, now
            if now >= ch.retry_at:
                ch.busy = True
                self._spawn(self._invite(ch))

    def _check(self, ch: Channel, now: float) -> None:
        play = ch.play
        assert play is not None
        if play.frames and ch.noted[0] != "online":
            self._note(ch, "online", RECORDING)
        dev = self.access.devices.get(ch.device_id)
        facts = supervise.SessionFacts(
            invited_at=ch.invited_at,
            last_packet_at=play.last_packet_at,
            epoch=ch.epoch,
            device_epoch=dev.epoch if dev is not None else None,
            remote_bye=play.remote_bye,
        )
        reason = supervise.drop_reason(facts, now, self.timing)
        if reason is not None:
            ch.busy = True
            self._spawn(self._drop(ch, reason))

    async def _load(self, device_id: str) -> None:
        try:
            known = await self._in_thread(self.backend.channels, device_id)
        except Exception as exc:  # the database away: asked again next tick
            log.warning("device %s: cannot read its channels: %s", device_id, exc)
            return
        finally:
            self._loading.discard(device_id)
        dev = self.access.devices.get(device_id)
        if dev is not None and dev.channel_codes is None:
            dev.channel_codes, dev.channel_status = sorted(known), dict(known)

    def live(self, device_id: str, camera_id: str, emit: Emit | None) -> None:
        """A live consumer of the channel starts (`emit`: where its TS chunks go) or ends
        (None). Starting INVITEs at once unless a session runs already (then it is shared)."""
        key = (device_id, camera_id)
        ch = self.channels.get(key)
        if ch is not None and ch.live is not None:
            ch.live.close()
            ch.live = None
        if emit is None:
            return
        now = asyncio.get_running_loop().time()
        if ch is None:
            record = supervise.wanted(self.patterns, device_id, camera_id)
            ch = self.channels[key] = Channel(device_id, camera_id, retry_at=now, record=record)
        ch.live = LiveTs(emit, ch.audio_type)
        if ch.play is None:
            ch.retry_at = min(ch.retry_at, now)  # a viewer waits: no backoff for it
            self.tick()

    def _release(self, ch: Channel) -> None:
        """End a session nobody wants any more (the last live viewer left)."""
        play, ch.play = ch.play, None
        if play is not None:
            play.close()
            self._spawn(_bye(play))
            log.info("device %s channel %s: live session ended", ch.device_id, ch.code)

    async def _invite(self, ch: Channel) -> None:
        loop = asyncio.get_running_loop()
        try:
            if ch.recorder is None and ch.record:
                ch.recorder = await self._in_thread(self.backend.recorder, ch.code)
                if ch.recorder is None:
                    raise PlayError(404, f"camera {ch.code} is not in the catalog")
            dev = self.access.devices.get(ch.device_id)
            if dev is None:
                raise PlayError(404, f"device {ch.device_id} is not registered")
            if other := await self.access.moved_to(ch.device_id):
                raise PlayError(410, f"device {ch.device_id} registered to replica {other}")
            epoch = dev.epoch
            if ch.recorder is not None:
                ch.recorder.new_session()
            if ch.live is not None:
                ch.live.reset()
            ch.invited_at = loop.time()
            media = supervise.media_mode(
                self.tcp_patterns, self.tcp_active_patterns, ch.device_id, ch.code
            )
            ch.play = await devplay.play(
                self.access, ch.device_id, ch.code, ch.on_unit, media, self.timing.invite_answer_s
            )
            if not ch.wanted:  # the viewer left while the device answered
                self._release(ch)
                return
            ch.epoch = epoch
            ch.sessions += 1
            log.info("device %s channel %s: recording (session %d)", ch.device_id, ch.code,
                     ch.sessions)  # fmt: skip
        except Exception as exc:
            status = exc.status if isinstance(exc, PlayError) else 500
            retry = supervise.after_failure(ch.attempts, loop.time(), self.timing)
            ch.attempts, ch.retry_at = retry.attempts, retry.at
            log.warning("device %s channel %s: not recording (%s); INVITE again in %.1f s",
                        ch.device_id, ch.code, exc, retry.at - loop.time())  # fmt: skip
            self._note(ch, "offline", f"gb: INVITE failed {status}")
            if ch.live is not None and self.on_live_failed is not None:
                self.on_live_failed(ch, f"{status} {exc}")
        finally:
            ch.busy = False

    async def _drop(self, ch: Channel, reason: str) -> None:
        loop = asyncio.get_running_loop()
        play, ch.play = ch.play, None
        try:
            if play is not None:
                play.close()  # the last frame into the recorder, at once
                self._spawn(_bye(play))
            if ch.recorder is not None:
                await ch.recorder.close()
        finally:
            up_for = loop.time() - ch.invited_at
            retry = supervise.after_drop(ch.attempts, up_for, loop.time(), self.timing)
            ch.attempts, ch.retry_at = retry.attempts, retry.at
            ch.last_drop = reason
            log.warning("device %s channel %s: stream lost (%s); INVITE again in %.1f s",
                        ch.device_id, ch.code, reason, retry.at - loop.time())  # fmt: skip
            self._note(ch, "offline", reason)
            ch.busy = False

    def _note(self, ch: Channel, state: str, reason: str) -> None:
        """Write a state change, stamped now (not when a worker thread gets to it) and after
        the channel's earlier ones: on a loaded machine two writes on two threads could land
        out of order, or after a reader looked."""
        if not ch.record or ch.noted == (state, reason):
            return
        ch.noted = (state, reason)
        at_us = self.backend.now_us()
        before = ch.note_task

        async def write() -> None:
            if before is not None:
                await asyncio.wait({before})
            try:
                args = (ch.device_id, ch.code, state, reason, at_us)
                await self._in_thread(self.backend.note, *args)
            except Exception:
                log.exception("camera %s: state change %s not written", ch.code, state)

        ch.note_task = self._spawn(write())

    async def close(self) -> None:
        for ch in self.channels.values():
            play, ch.play = ch.play, None
            if ch.live is not None:
                ch.live.close()
            if play is not None:
                play.close()
                self._spawn(_bye(play))
                self._note(ch, "offline", "gb: recording stopped (controller stopping)")
            if ch.recorder is not None:
                await ch.recorder.close()
        if self._tasks:  # BYEs and commits; a device that does not answer is not waited for
            _done, late = await asyncio.wait(list(self._tasks), timeout=CLOSE_WAIT_S)
            for task in late:
                task.cancel()


async def _bye(play: DevicePlay) -> None:
    try:
        await play.bye()
    except Exception:
        log.exception("BYE to a device failed")
