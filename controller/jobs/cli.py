"""`vigil-controller footage`: request footage, follow and cancel requests (jobs).

    footage request --camera C [--camera C2] --from ISO --to ISO --deadline ISO --case ID
                    [--class evidence|event|archive] [--by NAME]
    footage list [--state open|done|cancelled] [--case ID] [--json]
    footage show JOB [--segments] [--json]
    footage cancel JOB

Works on the controller's database directly (give the same --config / --data-dir as
`serve`); a running controller picks new requests up within seconds. Times are ISO 8601
with a UTC offset (`2026-11-28T10:00:00+08:00`, `...Z`), or `now`, `now-15m`, `now+2h`
(s, m, h, d). Exit status: 0 done, 1 refused (the message says why; nothing changed),
2 bad configuration.
"""

from __future__ import annotations

import argparse
import json
import logging
from dataclasses import asdict
from typing import Any

from controller.cli_args import add_config_args, config_from_args
from controller.clock import SystemClock
from controller.config import ConfigError
from controller.times import TimeError, iso_utc, parse_time_us

log = logging.getLogger("vigil.jobs")


def parse_time(text: str, now_us: int) -> int:
    """Microseconds since the epoch for an ISO time with offset, or now[+-N{s,m,h,d}]; a time
    without a zone is refused (controller/times.py says why)."""
    return parse_time_us(text, naive=None, now_us=now_us, epoch_us=False)


def iso(us: int) -> str:
    return iso_utc(us) if us else "-"


def register(sub: argparse._SubParsersAction[Any]) -> None:
    """Add `footage` to `vigil-controller`."""
    footage = sub.add_parser("footage", help="request footage and follow the requests (jobs)")
    verbs = footage.add_subparsers(dest="verb", required=True, metavar="VERB")
    req = verbs.add_parser("request", help="request cameras x time range by a deadline")
    add_config_args(req)
    req.add_argument("--camera", action="append", required=True, help="camera id (repeatable)")
    req.add_argument("--from", dest="start", required=True, help="start of the range")
    req.add_argument("--to", dest="end", required=True, help="end of the range")
    req.add_argument("--deadline", required=True, help="when the footage must be in the cloud")
    req.add_argument("--case", required=True, help="case id")
    req.add_argument("--class", dest="cls", default="evidence", help="evidence, event, archive")
    req.add_argument("--by", default="", help="who asks (recorded with the job)")
    req.add_argument("--json", action="store_true")
    req.set_defaults(func=_request)
    lst = verbs.add_parser("list", help="list jobs, newest first")
    add_config_args(lst)
    lst.add_argument("--state", choices=("open", "done", "cancelled"))
    lst.add_argument("--case")
    lst.add_argument("--limit", type=int, default=100)
    lst.add_argument("--json", action="store_true")
    lst.set_defaults(func=_list)
    show = verbs.add_parser("show", help="one job: progress, per-camera state, gone footage")
    add_config_args(show)
    show.add_argument("job_id")
    show.add_argument("--segments", action="store_true", help="also list every segment")
    show.add_argument("--json", action="store_true")
    show.set_defaults(func=_show)
    cancel = verbs.add_parser("cancel", help="cancel an open job (its holds are released)")
    add_config_args(cancel)
    cancel.add_argument("job_id")
    cancel.set_defaults(func=_cancel)


def _out(text: str) -> None:
    print(text)  # noqa: T201 - CLI output


def _run(args: argparse.Namespace, action: Any) -> int:
    from controller.catalog import Catalog, CatalogError, make_engine
    from controller.jobs import JobError, JobService, JobsUnavailable

    try:
        config = config_from_args(args)
    except ConfigError as exc:
        log.error("%s", exc)
        return 2
    try:
        engine = make_engine(config.resolved_database_url())
    except Exception as exc:
        log.error("cannot open the database: %s", exc)
        return 2
    try:
        clock = SystemClock()
        jobs = JobService(Catalog(engine, clock), clock)
        action(jobs, clock.now_us())
    except (JobError, TimeError, CatalogError, JobsUnavailable) as exc:
        log.error("%s", exc)
        return 1
    finally:
        engine.dispose()
    return 0


def _summary(view: Any) -> str:
    eta = f", eta {iso(view.eta_us)}" if view.eta_us else ""
    return (
        f"{view.job_id}  {view.state:<9} case {view.case_id}  "
        f"{view.bytes_done}/{view.bytes_total} bytes ({view.percent:.0f}%), "
        f"{view.segments_done}/{view.segments_total} segments{eta}"
    )


def _request(args: argparse.Namespace) -> int:
    from controller.jobs import JobRequest, parse_class

    def action(jobs: Any, now: int) -> None:
        req = JobRequest(
            cameras=tuple(args.camera),
            start_us=parse_time(args.start, now),
            end_us=parse_time(args.end, now),
            deadline_us=parse_time(args.deadline, now),
            case_id=args.case,
            traffic_class=parse_class(args.cls),
            requested_by=args.by,
        )
        view = jobs.request(req)
        _out(json.dumps(_plain(view)) if args.json else f"requested: {_summary(view)}")

    return _run(args, action)


def _list(args: argparse.Namespace) -> int:
    def action(jobs: Any, _now: int) -> None:
        views = jobs.jobs(args.state, args.case, args.limit)
        if args.json:
            _out(json.dumps([_plain(v) for v in views]))
        for v in [] if args.json else views:
            _out(_summary(v))

    return _run(args, action)


def _show(args: argparse.Namespace) -> int:
    def action(jobs: Any, _now: int) -> None:
        view = jobs.get(args.job_id)
        segments = jobs.segments(args.job_id) if args.segments else []
        if args.json:
            _out(json.dumps(_plain(view) | {"segments": [asdict(s) for s in segments]}))
            return
        _out(_summary(view))
        _out(f"  cameras {', '.join(view.cameras)}  [{iso(view.start_us)}, {iso(view.end_us)})")
        _out(f"  class {view.traffic_class.name.lower()}  deadline {iso(view.deadline_us)}")
        _out(f"  {view.detail}")
        for cam in view.cameras_status:
            state = "complete" if cam.complete else cam.waiting
            _out(f"  camera {cam.camera_id} on {cam.device_id or '?'}: {state}")
        for g in view.gone:
            _out(f"  GONE {g.camera_id} [{iso(g.start_us)}, {iso(g.end_us)}): {g.reason}")
        for s in segments:
            _out(f"  {s.segment_id}  {iso(s.start_us)}  {s.size_bytes} bytes  {s.state}")

    return _run(args, action)


def _cancel(args: argparse.Namespace) -> int:
    def action(jobs: Any, _now: int) -> None:
        _out(f"cancelled: {_summary(jobs.cancel(args.job_id))}")

    return _run(args, action)


def _plain(view: Any) -> dict[str, Any]:
    data: dict[str, Any] = asdict(view)
    data["traffic_class"] = view.traffic_class.name.lower()
    data["percent"] = round(view.percent, 1)
    return data
