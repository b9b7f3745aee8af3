"""Discrete-event, fluid simulation of a city's uplinks driven by the real planner.

Between two events every device sends what its plan gives it: one stream per class at that
class's rate, deadline then oldest first inside the class, a class's unused share handed
down to the next (the naive baseline: its whole queue oldest-first at one rate). Events
are the replan period's ticks, evidence requests arriving (the controller replans at once)
and evidence finishing (the agent's FinishLease makes it replan). Alarms,
handhelds coming and going and buffer evictions are taken at the next event. A segment due
for eviction is sent only before its deadline; what is left of it then is lost.

Pure: the plan function and the timer that measures replan time are passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from controller.scheduler.model import ClassBacklog, DeviceDemand, PendingSegment, TrafficClass
from controller.scheduler.plan import Plan, PlanConfig
from controller.scheduler.sim.metrics import Evidence, SimResult, jain
from controller.scheduler.sim.workload import SECOND_US, Workload
from controller.scheduler.topology import Topology

PlanFn = Callable[..., Plan]
_LIVE = int(TrafficClass.LIVE)
_BULK = (int(TrafficClass.ARCHIVE) - 1, int(TrafficClass.BACKFILL) - 1)


class _Item:
    """Footage waiting on a device: bytes left of one class, in the planner's send order."""

    __slots__ = ("key", "left", "cls", "dl", "rid", "start", "seq")

    def __init__(
        self,
        key: tuple[float, ...],
        left: float,
        cls: int,
        dl: float,
        rid: int,
        start: int,
        seq: int,
    ) -> None:
        self.key = key  # sort key: send order
        self.left = left  # bytes not yet sent
        self.cls = cls
        self.dl = dl  # eviction or requested deadline, seconds into the run; inf: none
        self.rid = rid  # evidence request id, -1 if none
        self.start = start  # footage start, us
        self.seq = seq


@dataclass(frozen=True, slots=True)
class SimConfig:
    period_s: float = 10.0
    segment_bytes: int = 4_000_000
    head_per_class: int = 2  # segments of each class a device lists to the planner
    fifo: bool = False  # order queues oldest-first regardless of class (naive baseline)


class _Device:
    __slots__ = ("queue", "stream_chunk", "rates")

    def __init__(self) -> None:
        self.queue: list[_Item] = []
        self.stream_chunk: dict[int, _Item] = {}
        self.rates: tuple[int, ...] = ()


class Simulation:
    """One run of a workload over a topology with one plan function."""

    def __init__(
        self,
        topology: Topology,
        workload: Workload,
        plan_fn: PlanFn,
        timer: Callable[[], float],
        config: SimConfig | None = None,
    ) -> None:
        self.topo = topology
        self.ct = topology.compiled
        self.work = workload
        self.plan_fn = plan_fn
        self.timer = timer
        self.cfg = config or SimConfig()
        self.devices: dict[str, _Device] = {d: _Device() for d in self.ct.device_ids}
        self.result = SimResult(workload.spec.duration_s)
        self.seq = 0
        self.handheld_windows = {p.device_id: (p.online_s, p.offline_s) for p in workload.presence}

    def _add(
        self, dev: _Device, cls: int, size: float, start_us: int, dl: float, rid: int
    ) -> _Item:
        self.seq += 1
        key: tuple[float, ...] = (
            (start_us, self.seq) if self.cfg.fifo else (cls, dl, start_us, self.seq)
        )
        chunk = _Item(key, size, cls, dl, rid, start_us, self.seq)
        dev.queue.append(chunk)
        dev.queue.sort(key=lambda c: c.key)
        return chunk

    def _streams(self, t: float, t_end: float) -> None:
        """Add what archive and live streams produce over [t, t_end), ahead of sending it.

        Planned before it exists (the plan adds the streams' `arrival_bps`), sent within the
        same interval: a fluid approximation that keeps a stream's rate at its bitrate.
        """
        for s in self.work.streams:
            lo, hi = max(t, s.start_s), min(t_end, s.end_s)
            if hi <= lo:
                continue
            dev = self.devices[s.device_id]
            chunk = dev.stream_chunk.get(s.traffic_class)
            if chunk is None or chunk.left <= 0:
                start = self.work.start_us + int(lo * SECOND_US)
                chunk = self._add(dev, s.traffic_class, 0.0, start, math.inf, -1)
                dev.stream_chunk[s.traffic_class] = chunk
            chunk.left += s.bps * (hi - lo) / 8

    def _arrivals(self, t: float, next_chunk: int) -> int:
        """Add the chunks that arrived by t; the index of the next one."""
        chunks = self.work.chunks
        while next_chunk < len(chunks) and chunks[next_chunk].at_s <= t:
            c = chunks[next_chunk]
            next_chunk += 1
            dl = c.deadline_s if c.deadline_s else math.inf
            self._add(
                self.devices[c.device_id],
                c.traffic_class,
                c.size_bytes,
                c.footage_start_us,
                dl,
                c.request_id,
            )
            if c.request_id >= 0:
                self.result.evidence[c.request_id] = Evidence(
                    c.request_id, c.device_id, c.at_s, c.size_bytes, c.deadline_s
                )
        return next_chunk

    def _online(self, device_id: str, t: float) -> bool:
        w = self.handheld_windows.get(device_id)
        return w is None or w[0] <= t < w[1]

    def _live_bps(self, t: float) -> dict[str, int]:
        out: dict[str, int] = {}
        for s in self.work.streams:
            if s.traffic_class == _LIVE and s.start_s <= t < s.end_s:
                out[s.device_id] = out.get(s.device_id, 0) + s.bps
        return out

    def _stream_bps(self, t: float) -> dict[str, dict[int, int]]:
        """Bit/s each device's streams produce at t, per class: reported as `arrival_bps`."""
        out: dict[str, dict[int, int]] = {}
        for s in self.work.streams:
            if s.start_s <= t < s.end_s:
                per = out.setdefault(s.device_id, {})
                per[s.traffic_class] = per.get(s.traffic_class, 0) + s.bps
        return out

    def _demands(self, t: float) -> list[DeviceDemand]:
        seg = self.cfg.segment_bytes
        per_head = self.cfg.head_per_class
        inflow = self._stream_bps(t)
        out: list[DeviceDemand] = []
        for did, dev in self.devices.items():
            streams = inflow.get(did, {})
            if not (dev.queue or streams) or not self._online(did, t):
                continue
            acc: dict[int, list[int]] = {}  # bytes, segments, oldest, deadline, due
            head: list[PendingSegment] = []
            listed: dict[int, int] = {}
            for c in dev.queue:
                left = math.ceil(c.left)
                if left <= 0:
                    continue
                cls = c.cls
                a = acc.setdefault(cls, [0, 0, 0, 0, 0])
                a[0] += left
                a[1] += -(-left // seg)
                start = c.start
                a[2] = start if not a[2] else min(a[2], start)
                if c.dl != math.inf:
                    dl_us = self.work.start_us + int(c.dl * SECOND_US)
                    if not a[3] or dl_us < a[3]:
                        a[3], a[4] = dl_us, left
                    elif dl_us == a[3]:
                        a[4] += left
                if listed.get(cls, 0) < per_head:
                    listed[cls] = listed.get(cls, 0) + 1
                    head.append(
                        PendingSegment(
                            f"{did}/{c.seq}",
                            "cam",
                            TrafficClass(cls),
                            start,
                            min(seg, left),
                            self.work.start_us + int(c.dl * SECOND_US) if c.dl != math.inf else 0,
                        )
                    )
            for cls in streams:
                acc.setdefault(cls, [0, 0, 0, 0, 0])
            backlog = {
                TrafficClass(cls): ClassBacklog(a[0], a[1], a[2], a[3], a[4], streams.get(cls, 0))
                for cls, a in acc.items()
            }
            if backlog:
                out.append(DeviceDemand(did, backlog, tuple(head)))
        return out

    def _send(
        self, chunks: Iterable[_Item], rate: float, t: float, t_end: float, dry: bool
    ) -> tuple[float, list[tuple[int, float]]]:
        """Send `chunks` in order at `rate` bytes/s over [t, t_end): bytes sent, finished
        evidence (request id, time). A chunk due for eviction is sent only before then."""
        done: list[tuple[int, float]] = []
        if rate <= 0:
            return 0.0, done
        cursor = t
        for c in chunks:
            if cursor >= t_end:
                break
            left = c.left
            if left <= 0:
                continue
            stop = t_end if c.rid >= 0 or c.dl == math.inf else min(t_end, c.dl)
            room = stop - cursor
            if room <= 0:
                continue
            need = left / rate
            if need <= room or left - room * rate < 0.5:
                cursor += min(need, room)
                if not dry:
                    c.left = 0.0
                if c.rid >= 0:
                    done.append((c.rid, cursor))
            else:
                cursor += room
                if not dry:
                    c.left = left - room * rate
        return (cursor - t) * rate, done

    def _drain(self, dev: _Device, t: float, t_end: float, dry: bool) -> list[tuple[int, float]]:
        """Send over [t, t_end) what the plan allows; finished evidence (request id, time).

        Vigil's agent runs one lease per class at that class's rate, oldest-first inside
        the class; a class that runs dry hands its unused bytes down to the next class.
        The naive agent sends its whole queue oldest-first at one rate.
        """
        dt = t_end - t
        if dt <= 0:
            return []
        if self.cfg.fifo:
            sent, done = self._send(dev.queue, sum(dev.rates) / 8, t, t_end, dry)
        else:
            sent, carry, done = 0.0, 0.0, []
            for k, r in enumerate(dev.rates):
                rate = r / 8 + carry / dt
                if rate <= 0:
                    continue
                cls = k + 1
                part, fin = self._send((c for c in dev.queue if c.cls == cls), rate, t, t_end, dry)
                sent += part
                carry = rate * dt - part
                done.extend(fin)
        if not dry:
            self.result.sent_bytes += sent
        return done

    def run(self) -> SimResult:
        res, ct, cfg = self.result, self.ct, self.cfg
        end = res.duration_s
        evidence_times = sorted({c.at_s for c in self.work.chunks if c.request_id >= 0})
        t, next_chunk, next_tick, version = 0.0, 0, 0.0, 0
        n = len(ct.link_ids)
        while t < end - 1e-9:
            next_chunk = self._arrivals(t, next_chunk)
            for dev in self.devices.values():
                kept = []
                for c in dev.queue:
                    if c.left > 0.5 and (c.rid >= 0 or c.dl > t):
                        kept.append(c)
                    elif c.rid >= 0:  # the last fraction of a byte arrived by now
                        if res.evidence[c.rid].done_s is None:
                            res.evidence[c.rid].done_s = t
                    else:
                        if c.left > 0.5:
                            res.evicted_bytes += c.left
                            res.evicted_chunks += 1
                        c.left = 0.0  # gone: a stream starts a new chunk
                dev.queue = kept
            demands = self._demands(t)
            version += 1
            started = self.timer()
            plan = self.plan_fn(
                self.topo,
                demands,
                self.work.start_us + int(t * SECOND_US),
                version=version,
                config=PlanConfig(horizon_s=cfg.period_s),
            )
            res.replan_ms.append((self.timer() - started) * 1000)
            self._ideal(t)
            for did, dev in self.devices.items():
                dp = plan.devices.get(did)
                dev.rates = dp.rates if dp else ()
            if t >= next_tick:
                next_tick += cfg.period_s
            nxt = min(next_tick, end)
            for at in evidence_times:
                if at > t + 1e-9:
                    nxt = min(nxt, at)
                    break
            for e in res.evidence.values():
                if e.done_s is None:
                    for _, fin in self._drain(self.devices[e.device_id], t, nxt, dry=True):
                        nxt = min(nxt, fin)
            self._streams(t, nxt)
            sent = [0.0] * n
            for did, dev in self.devices.items():
                if not dev.rates:
                    continue
                before = res.sent_bytes
                for rid, fin in self._drain(dev, t, nxt, dry=False):
                    if res.evidence[rid].done_s is None:
                        res.evidence[rid].done_s = fin
                sent[ct.device_link[ct.device_index[did]]] += (res.sent_bytes - before) * 8
            self._account(plan, sent, nxt - t, demands)
            t = nxt
        return res

    def _ideal(self, t: float) -> None:
        """Physical ideal of requests that just arrived: bytes / capacity left to evidence."""
        fresh = [e for e in self.result.evidence.values() if e.ideal_s == 0.0]
        if not fresh:
            return
        ct = self.ct
        live = [0] * len(ct.link_ids)
        for did, bps in self._live_bps(t).items():
            live[ct.device_link[ct.device_index[did]]] += bps
        for i in range(len(live) - 1, 0, -1):
            if live[i]:
                live[ct.parent[i]] += live[i]
        for e in fresh:
            d = ct.device_index[e.device_id]
            cap = min(
                min(
                    ct.capacity[i] - min(ct.reserve_cap[i], live[i])
                    for i in ct.paths[ct.device_link[d]]
                ),
                ct.device_max[d],
            )
            e.ideal_s = e.size_bytes * 8 / cap

    def _account(
        self, plan: Plan, sent: list[float], dt: float, demands: list[DeviceDemand]
    ) -> None:
        """Link utilisation over one interval, and fairness of the plan that drove it."""
        if dt <= 0:
            return
        ct, res = self.ct, self.result
        for i in range(len(sent) - 1, 0, -1):
            if sent[i]:
                sent[ct.parent[i]] += sent[i]
        for i, bits in enumerate(sent):
            if bits:
                res.peak_utilisation = max(res.peak_utilisation, bits / (ct.capacity[i] * dt))
        for lid in plan.saturated:
            i = ct.index[lid]
            res.busy_bits[i] = res.busy_bits.get(i, 0.0) + sent[i]
            res.busy_capacity[i] = res.busy_capacity.get(i, 0.0) + ct.capacity[i] * dt
            res.busy_time[i] = res.busy_time.get(i, 0.0) + dt
        # Fairness among bulk flows sharing a bottleneck; a flow with a deadline got a
        # deliberate head start, so it is left out.
        urgent = {
            (d.device_id, cls - 1) for d in demands for cls, b in d.backlog.items() if b.deadline_us
        }
        groups: dict[str, list[float]] = {}
        for did, dp in plan.devices.items():
            for k in _BULK:
                b = dp.bottlenecks[k]
                if b is not None and b in plan.saturated and dp.rates[k] and (did, k) not in urgent:
                    w = ct.device_weight[ct.device_index[did]]
                    groups.setdefault(f"{k}:{b}", []).append(dp.rates[k] / w)
        res.jain.extend(jain(xs) for xs in groups.values() if len(xs) > 1)
