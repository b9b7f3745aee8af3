"""What Vigil answers an upper platform, and when it registers: decisions only, no I/O.

`Responder` turns one MANSCDP query into the bodies to send back (Catalog pages, DeviceInfo,
DeviceStatus, RecordInfo), seeing only the cameras in the platform's scope. `RegisterPlan`
says when to REGISTER and when to send a keepalive: re-register at 2/3 of the granted expiry,
and as soon as keepalives go unanswered `max_missed` times in a row or are answered with an
error (that is how a restarted upper platform, which forgot us, shows itself: it answers 4xx
or nothing). After a failed REGISTER it retries with a capped backoff, and after a wrong
password (a second 401) it waits the longest backoff so a bad password never floods the peer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from controller.gb28181 import manscdp
from controller.gb28181.codes import Coded, Directory, catalog_items, pages
from controller.gb28181.manscdp import Query, RecordItem
from controller.times import LOCAL_ZONE, parse_time_us

US = 1_000_000
MAX_RECORD_ITEMS = 500  # per RecordInfo answer: a year of broken-up footage is still bounded


def gb_time(us: int) -> str:
    return datetime.fromtimestamp(us / US, LOCAL_ZONE).strftime("%Y-%m-%dT%H:%M:%S")


def parse_gb_time(text: str) -> int:
    """GB time text (local, Asia/Shanghai; 'T' or ' ' between date and time) -> UTC µs."""
    return parse_time_us(text.strip().replace(" ", "T"), naive=LOCAL_ZONE, epoch_us=False)


class QueryError(ValueError):
    """The query cannot be answered; `status` is the SIP response to the MESSAGE."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Ranges = Callable[[str, int, int], Sequence[tuple[int, int]]]  # camera, from, to -> ranges


@dataclass(frozen=True, slots=True)
class Responder:
    local_id: str
    name: str
    directory: Directory
    visible: frozenset[str]  # camera ids in this platform's scope
    ranges: Ranges
    now_us: int
    page_size: int = 10
    on_device: Ranges | None = None  # footage still only on the camera's agent (not uploaded)
    # Camera ids known offline, told upward as Status OFF / Online OFFLINE: GB device channels
    # whose device is not online or whose device's Catalog reports them OFF. Others are ON.
    offline: frozenset[str] = frozenset()
    # The platform's footage window (`footage.window_from`): nothing before it is listed.
    window_from_us: int = 0

    def cameras(self) -> list[Coded]:
        return [c for c in self.directory.coded if c.place.camera_id in self.visible]

    def camera(self, code: str) -> Coded:
        coded = self.directory.by_code(code)
        if coded is None or coded.place.camera_id not in self.visible:
            raise QueryError(404, f"no camera {code[:24]!r} in this platform's scope")
        return coded

    def answer(self, q: Query) -> list[bytes]:
        """The Response bodies for query `q` (several for a paged Catalog)."""
        if q.root != "Query":
            return []
        if q.cmd_type == "Catalog":
            cameras = self.cameras()
            states = {c.place.camera_id: c.place.camera_id not in self.offline for c in cameras}
            items = catalog_items(cameras, states)
            return [
                manscdp.catalog_page(q.sn, self.local_id, len(items), page)
                for page in pages(items, self.page_size)
            ]
        if q.cmd_type == "DeviceInfo":
            if q.device_id != self.local_id:
                c = self.camera(q.device_id)
                return [manscdp.device_info(q.sn, c.code, c.place.name or c.place.camera_id, 1)]
            return [manscdp.device_info(q.sn, self.local_id, self.name, len(self.cameras()))]
        if q.cmd_type == "DeviceStatus":
            on = True
            if q.device_id != self.local_id:
                on = self.camera(q.device_id).place.camera_id not in self.offline
            return [manscdp.device_status(q.sn, q.device_id, on, gb_time(self.now_us))]
        if q.cmd_type == "RecordInfo":
            return [self._record_info(q)]
        raise QueryError(400, f"query {q.cmd_type[:30]!r} is not supported")

    def _record_info(self, q: Query) -> bytes:
        c = self.camera(q.device_id)
        try:
            start = parse_gb_time(q.fields.get("StartTime", ""))
            end = parse_gb_time(q.fields.get("EndTime", ""))
        except ValueError:
            raise QueryError(400, "RecordInfo needs StartTime and EndTime") from None
        if end <= start:
            raise QueryError(400, "RecordInfo EndTime is not after StartTime")
        camera = c.place.camera_id
        start = max(start, self.window_from_us)
        if end <= start:  # wholly before the platform's window: nothing it may see
            return manscdp.record_info(q.sn, c.code, c.place.name or camera, 0, [])
        stored = list(self.ranges(camera, start, end))
        buffered = list(self.on_device(camera, start, end)) if self.on_device else []
        found = footage_ranges(stored, buffered)[:MAX_RECORD_ITEMS]
        items = [RecordItem(gb_time(max(a, start)), gb_time(min(b, end))) for a, b in found]
        name = c.place.name or c.place.camera_id
        return manscdp.record_info(q.sn, c.code, name, len(items), items)


def footage_ranges(
    stored: Sequence[tuple[int, int]], on_device: Sequence[tuple[int, int]]
) -> list[tuple[int, int]]:
    """Where the camera has footage: in the city store or still on its agent (unsent
    segments the agent's last inventory listed), as one set of continuous ranges."""
    return merge_ranges([*stored, *on_device])


def merge_ranges(spans: Sequence[tuple[int, int]], gap_us: int = 2 * US) -> list[tuple[int, int]]:
    """Segments (start, end) into continuous recorded ranges (gaps under `gap_us` closed)."""
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1] + gap_us:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out


@dataclass(slots=True)
class RegisterPlan:
    """Registration and keepalive timing for one upper platform (monotonic seconds)."""

    expiry_s: int
    keepalive_s: float
    max_missed: int = 3
    registered_until: float = 0.0
    next_register: float = 0.0
    next_keepalive: float = 0.0
    missed: int = 0
    failures: int = 0

    @property
    def registered(self) -> bool:
        return self.registered_until > 0

    def register_due(self, now: float) -> bool:
        return now >= self.next_register

    def keepalive_due(self, now: float) -> bool:
        return self.registered and now >= self.next_keepalive

    def next_due(self) -> float:
        """When the next REGISTER or keepalive is due: the link sleeps until then (only its
        own steps change the plan), instead of waking every 0.2 s to ask."""
        return (
            min(self.next_register, self.next_keepalive) if self.registered else self.next_register
        )

    def registered_ok(self, now: float, granted_s: int) -> None:
        granted = granted_s if granted_s > 0 else self.expiry_s
        self.registered_until = now + granted
        self.next_register = now + max(granted * 2 / 3, 1.0)
        self.next_keepalive = now + self.keepalive_s
        self.missed = self.failures = 0

    def register_failed(self, now: float, wrong_password: bool = False) -> float:
        """The wait before the next REGISTER (also used after a timeout)."""
        self.registered_until = 0.0
        self.failures += 1
        wait = 60.0 if wrong_password else min(2.0 ** min(self.failures, 6), 60.0)
        self.next_register = now + wait
        return wait

    def keepalive_sent(self, now: float) -> None:
        self.next_keepalive = now + self.keepalive_s

    def keepalive_answered(self, ok: bool, now: float) -> bool:
        """Whether to re-register now: an error answer means the platform forgot us."""
        if ok:
            self.missed = 0
            return False
        self.registered_until = 0.0
        self.next_register = now
        return True

    def keepalive_lost(self, now: float) -> bool:
        self.missed += 1
        if self.missed >= self.max_missed:
            self.registered_until = 0.0
            self.next_register = now
            return True
        return False
