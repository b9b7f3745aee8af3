"""A fast-forwarded month gives exactly the hand-computed KPIs, and a controller restart in the
middle of it changes nothing (issue 15).

Real parts: the catalog (SQLite and PostgreSQL), the FleetService's message path and ticker
fed the agents' MQTT payloads (handle_message, the method paho's callback calls), its
history writer, ingest's catalog commit (Catalog.add_segments, which keeps the hourly
accounting) and the audit log. The clock is a ManualClock moved through 30 days.

The month (UTC, 720 h): device nvr-wudu-01-01 with cameras cam-a and cam-b, handheld
hh-00001 with camera hh-cam.
- day 9 00:00 the NVR's Will arrives (offline); day 9 06:00 it is back (new session):
  cam-a and cam-b are offline 6 h, and their recordings have a 6 h hole (a gap: the chain
  runs across it).
- day 4 10:00-10:30 three 10-minute segments of cam-a are evicted unsent (reported by the
  agent, twice: once counted); they are never uploaded.
- day 14 12:00-14:00 cam-b's picture is frozen (image health events).
- day 19 the controller restarts (a new FleetService and writer; the devices re-announce).
- every other 10-minute segment of cam-a and cam-b is uploaded 20 s after it ends, except
  cam-b's first day, uploaded 2,000 s late; the handheld is online all month, uploads nothing.
- day 2: 2 grants minted and 1 delegated by wudu, 3 live views by gongan.
- traffic classes, as the scheduler leader records them from its leases
  (HistoryCatalog.classify_segments, what its upkeep calls): cam-a's day 2 was leased as
  evidence (144 segments, 20 s late: ≤ 30 s), cam-b's late first day as backfill (144,
  2,000 s: ≤ 1 h), cam-b's day 3 as archive (144, ≤ 30 s); the other 8,133 uploads had no
  lease class (unclassified).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.engine import Engine

from controller.audit.chain import AuditEvent
from controller.audit.log import AuditLog
from controller.catalog import Catalog, make_engine
from controller.catalog.history import HistoryCatalog
from controller.catalog.models import SegmentRow
from controller.catalog.timeliness import ClassError
from controller.clock import ManualClock
from controller.fleet.directory import StaticDirectory
from controller.fleet.history_writer import HistoryWriter
from controller.fleet.mqtt import MqttSettings
from controller.fleet.service import FleetService
from controller.fleet.transitions import event_facts
from controller.grants.policy import default_policy
from controller.kpi.service import ReportInputError, make_report, render
from protos.vigil.v1 import fleet_pb2

US = 1_000_000
H = 3600 * US
DAY = 24 * H
START = 1_793_491_200 * US  # 2026-11-01 00:00 UTC
END = START + 30 * DAY
SEG = 600 * US
NVR, HH = "nvr-wudu-01-01", "hh-00001"
PLACES = {NVR: ("wudu", "wudu-01-01"), HH: ("wudu", "wudu-mobile")}
TARGETS = {"village_hd": 2100, "existing": 9988, "handheld": 5000}


@pytest.fixture
def engine(catalog_url: str) -> Iterator[Engine]:
    eng = make_engine(catalog_url)
    yield eng
    eng.dispose()


class Agent:
    """One device's MQTT payloads with its session and sequence numbers."""

    def __init__(self, device_id: str, cameras: list[str]) -> None:
        self.device_id, self.cameras = device_id, cameras
        self.county, self.site = PLACES[device_id]
        self.session = 0
        self.health_seq = self.event_seq = 0

    def topic(self, leaf: str) -> str:
        return f"vigil/v1/{self.county}/{self.site}/{self.device_id}/{leaf}"

    def connect(self, fleet: FleetService, at_us: int) -> None:
        self.session += 1
        self.health_seq = self.event_seq = 0
        state = fleet_pb2.DeviceState(
            device_id=self.device_id, online=True, session=self.session, at_unix_us=at_us
        )
        fleet.handle_message(self.topic("state"), state.SerializeToString())
        self.birth(fleet, at_us)

    def birth(self, fleet: FleetService, at_us: int) -> None:
        birth = fleet_pb2.Birth(
            device_id=self.device_id,
            session=self.session,
            at_unix_us=at_us,
            health_interval_s=30,
            county=self.county,
            site=self.site,
        )
        self.health_seq = self.event_seq = 0
        assert fleet.handle_message(self.topic("birth"), birth.SerializeToString()) == "accepted"

    def health(self, fleet: FleetService, at_us: int) -> None:
        self.health_seq += 1
        msg = fleet_pb2.Health(
            device_id=self.device_id,
            session=self.session,
            seq=self.health_seq,
            at_unix_us=at_us,
            cameras=[
                fleet_pb2.CameraHealth(camera_id=c, connected=True, state="streaming")
                for c in self.cameras
            ],
        )
        fleet.handle_message(self.topic("health"), msg.SerializeToString())

    def will(self, fleet: FleetService, at_us: int) -> None:
        state = fleet_pb2.DeviceState(
            device_id=self.device_id,
            online=False,
            session=self.session,
            at_unix_us=at_us,
            reason="will",
        )
        assert fleet.handle_message(self.topic("state"), state.SerializeToString()) == "accepted"

    def event(self, fleet: FleetService, ev: fleet_pb2.Event, resend: bool = False) -> str:
        if not resend:
            self.event_seq += 1
        ev.device_id, ev.session, ev.seq = self.device_id, self.session, self.event_seq
        return fleet.handle_message(self.topic("event"), ev.SerializeToString())


def new_fleet(engine: Engine, clock: ManualClock) -> tuple[FleetService, HistoryWriter]:
    writer = HistoryWriter(HistoryCatalog(engine, clock))
    directory = StaticDirectory({d: p for d, p in PLACES.items()})
    # Not started: no broker connection; messages go in through handle_message, as paho's.
    fleet = FleetService(MqttSettings("127.0.0.1", 1, "x"), clock, directory, history=writer)
    return fleet, writer


def run_month(engine: Engine, clock: ManualClock) -> None:
    catalog = Catalog(engine, clock)
    catalog.upsert_device(NVR, *PLACES[NVR], "nvr")
    catalog.upsert_device(HH, *PLACES[HH], "handheld")
    for cam in ("cam-a", "cam-b"):
        catalog.upsert_camera(cam, NVR)
    catalog.upsert_camera("hh-cam", HH)
    nvr, hh = Agent(NVR, ["cam-a", "cam-b"]), Agent(HH, ["hh-cam"])
    fleet, writer = new_fleet(engine, clock)
    for agent in (nvr, hh):
        agent.connect(fleet, clock.now_us())
        agent.health(fleet, clock.now_us())
    evicted = [START + 4 * DAY + 10 * H + i * SEG for i in range(3)]
    outage = (START + 9 * DAY, START + 9 * DAY + 6 * H)
    restarted = False
    for hour in range(30 * 24):
        t = START + hour * H
        clock.advance((t - clock.now_us()) / US)
        if t == outage[0]:
            nvr.will(fleet, t)
        if t == outage[1]:
            nvr.connect(fleet, t)
        if t == START + 4 * DAY + 11 * H:
            for s in evicted:
                ev = fleet_pb2.Event(
                    kind=fleet_pb2.Event.KIND_UNSENT_EVICTED,
                    camera_id="cam-a",
                    bytes=1000,
                    detail=f"segment a-{s} evicted before upload",
                )
                ev.range.start_unix_us, ev.range.end_unix_us = s, s + SEG
                nvr.event(fleet, ev)
        if t in (START + 14 * DAY + 12 * H, START + 14 * DAY + 14 * H):
            kind = "KIND_IMAGE_FAULT" if t == START + 14 * DAY + 12 * H else "KIND_IMAGE_OK"
            ev = fleet_pb2.Event(
                kind=getattr(fleet_pb2.Event, kind),
                camera_id="cam-b",
                at_unix_us=t,
                detail="frozen: picture unchanged for 60 s" if "FAULT" in kind else "frozen",
            )
            assert nvr.event(fleet, ev) == "accepted"
        if t == START + 19 * DAY and not restarted:
            writer.flush()  # kill -9 would lose at most this batch; a stop writes it
            fleet.stop()
            writer.stop()
            fleet, writer = new_fleet(engine, clock)
            restarted = True
            for agent in (nvr, hh):
                agent.birth(fleet, t)  # the controller asks for rebirths; they answer
        for agent in (nvr, hh):
            if agent is nvr and outage[0] <= t < outage[1]:
                continue
            agent.health(fleet, t)
        fleet.tick()
        writer.flush()
    clock.advance((END - clock.now_us()) / US)
    fleet.tick()
    writer.flush()
    # The first eviction report delivered again after the restart (the broker resent it to
    # the new controller): still one loss.
    again = fleet_pb2.Event(
        device_id=NVR,
        session=1,
        seq=1,
        kind=fleet_pb2.Event.KIND_UNSENT_EVICTED,
        camera_id="cam-a",
        bytes=1000,
    )
    again.range.start_unix_us, again.range.end_unix_us = evicted[0], evicted[0] + SEG
    assert HistoryCatalog(engine, clock).record_losses(event_facts(again, clock.now_us())[1]) == 0
    upload(catalog, evicted, outage)
    classify(HistoryCatalog(engine, clock))
    audit = AuditLog(engine, ManualClock(START + 2 * DAY), Ed25519PrivateKey.generate())
    events = [AuditEvent("grant_minted", "u1", "wudu", "cam-a", grant_id=f"g{i}") for i in (1, 2)]
    events.append(AuditEvent("grant_delegated", "u1", "wudu", "cam-a", grant_id="g3"))
    events += [AuditEvent("live_view", "u2", "gongan", "cam-b", grant_id="g9") for _ in range(3)]
    audit.append_many(events)


EVIDENCE, ARCHIVE, BACKFILL = 1, 4, 5  # controller.traffic.TrafficClass values


def classify(history: HistoryCatalog) -> None:
    """The leases' classes, as the scheduler's upkeep hands them over (then again: a retried
    round, and a later lease naming another class for the same segments, change nothing)."""
    day = lambda cam, d: [f"{cam}-{i:05d}" for i in range(d * 144, (d + 1) * 144)]  # noqa: E731
    leased = dict.fromkeys(day("cam-a", 2), EVIDENCE)
    leased |= dict.fromkeys(day("cam-b", 0), BACKFILL) | dict.fromkeys(day("cam-b", 3), ARCHIVE)
    leased["cam-a-99999"] = BACKFILL  # leased, never committed: nothing to classify
    assert history.classify_segments(leased) == 3 * 144
    assert history.classify_segments(leased) == 0
    assert history.classify_segments(dict.fromkeys(day("cam-a", 2), BACKFILL)) == 0
    for bad in (0, 6, -1, 99):  # not a class: refused whole, nothing written
        with pytest.raises(ClassError, match="unknown traffic class"):
            history.classify_segments({"cam-a-00500": ARCHIVE, "cam-a-00501": bad})


def upload(catalog: Catalog, evicted: list[int], outage: tuple[int, int]) -> None:
    rows: list[SegmentRow] = []
    for cam in ("cam-a", "cam-b"):
        prev = ""
        for i in range(30 * 144):
            s = START + i * SEG
            if outage[0] <= s < outage[1]:
                continue  # nothing recorded: the chain goes on across the hole
            sha = f"{cam}-{i:05d}".encode().hex().ljust(64, "0")[:64]
            late = cam == "cam-b" and s < START + DAY
            link, prev = prev, sha
            if cam == "cam-a" and s in evicted:
                continue  # evicted unsent: never uploaded (the next one breaks the chain)
            rows.append(
                SegmentRow(
                    segment_id=f"{cam}-{i:05d}",
                    camera_id=cam,
                    device_id=NVR,
                    start_us=s,
                    duration_us=SEG,
                    end_us=s + SEG,
                    size_bytes=1000,
                    sha256=sha,
                    prev_sha256=link,
                    object_key=f"k/{cam}/{i}",
                    committed_at_us=s + SEG + (2000 if late else 20) * US,
                )
            )
    rows.sort(key=lambda r: r.segment_id[-5:])  # interleaved cameras, time order
    for i in range(0, len(rows), 500):
        catalog.add_segments(rows[i : i + 500])


def test_a_month_gives_the_hand_computed_figures_across_a_restart(
    engine: Engine, tmp_path: Path
) -> None:
    clock = ManualClock(START - 10 * US)
    clock.advance(10)
    run_month(engine, clock)
    report = make_report(engine, clock, default_policy(), TARGETS, START, END)
    s = report["summary"]
    assert s["cameras"] == 3 and s["connected"] == 3
    assert s["expected_h"] == 3 * 720
    assert s["online_h"] == 714 + 714 + 720
    assert s["image_fault_h"] == 2
    assert s["working_h"] == 714 + 712 + 720
    assert s["online_rate"] == round(2148 / 2160, 6)
    assert s["working_rate"] == round(2146 / 2160, 6)
    assert s["recorded_h"] == 714 + 714  # cam-a: 713.5 uploaded + 0.5 evicted
    assert s["uploaded_h"] == 713.5 + 714
    assert s["evicted_h"] == 0.5
    assert s["gap_h"] == 12  # the outage, both cameras
    assert s["integrity"] == round(1428 / 2160, 6)
    assert s["cloud_rate"] == round(1427.5 / 1428, 6)
    assert s["delay_p50_s"] == 30.0 and s["delay_p95_s"] == 30.0
    by_cam = {w["camera_id"]: w for w in report["worst"]}
    assert by_cam["cam-b"]["working_rate"] == round(712 / 720, 6)
    assert by_cam["cam-a"]["working_rate"] == round(714 / 720, 6)
    assert report["worst"][0]["camera_id"] == "cam-b"
    kinds = {t["kind"]: t for t in report["targets"]}
    assert kinds["existing"]["connected"] == 2 and kinds["handheld"]["connected"] == 1
    assert kinds["handheld"]["target"] == 5000
    assert report["losses"] == [{"reason": "buffer_full", "segments": 3, "h": 0.5, "bytes": 3000}]
    # Timeliness per kind of camera (the evaluator's resource classes), in the targets' order.
    timely = [(t["kind"], t["segments"] > 0, t["p50_s"], t["p95_s"]) for t in report["timeliness"]]
    assert timely == [("existing", True, 30.0, 30.0), ("handheld", False, None, None)]
    # Timeliness per traffic class leased (hand-computed above; p = bucket upper bound).
    by_class = [
        (t["class"], t["segments"], t["p50_s"], t["p95_s"]) for t in report["timeliness_by_class"]
    ]
    assert by_class == [
        ("evidence", 144, 30.0, 30.0),
        ("live", 0, None, None),
        ("event", 0, None, None),
        ("archive", 144, 30.0, 30.0),
        ("backfill", 144, 3600.0, 3600.0),
        ("unclassified", 8133, 30.0, 30.0),
    ]
    assert sum(t["segments"] for t in report["timeliness_by_class"]) == 8565
    assert report["timeliness_by_class"][4]["histogram"]["delay_le_3600"] == 144
    wudu = next(c for c in report["counties"] if c["name"] == "wudu")
    assert wudu["delay_by_class"]["backfill"] == {"segments": 144, "p50_s": 3600.0, "p95_s": 3600.0}
    assert set(by_cam["cam-a"]["delay_by_class"]) == {"evidence", "unclassified"}
    day9 = report["daily"][9]
    assert day9["online_rate"] == round((18 + 18 + 24) / 72, 6)
    assert day9["gap_h"] == 12
    sharing = {r["tier"]: r for r in report["sharing"]}
    assert sharing["county"]["grants"] == 2 and sharing["county"]["delegations"] == 1
    assert sharing["department"]["live_views"] == 3
    assert sharing["department"]["grants_used"] == 1
    # The device-offline alert: raised an hour into the outage, cleared when it came back.
    assert report["incidents"] == {
        "alerts_raised": 1,
        "alerts_cleared": 1,
        "median_s_to_clear": 5 * 3600,
        "max_s_to_clear": 5 * 3600,
    }
    # The restart wrote the states again (device and cameras "online"): no figure moved.
    changes = HistoryCatalog(engine, clock).changes(START, END)
    restart = [c for c in changes if c.at_us == START + 19 * DAY and c.state == "online"]
    assert {c.subject for c in restart} == {"device", "camera"}
    # The report in every format; the HTML is self-contained with its charts.
    page = render(report, "html")
    assert page.count("<svg") == 6 and "在线率" in page and "http://" not in page.split("<svg")[0]
    table = render(report, "csv").splitlines()
    assert table[1].startswith("total,city,3,3,")
    assert "timeliness,city,backfill,144,3600.0,3600.0" in table
    assert "timeliness,wudu,evidence,144,30.0,30.0" in table
    assert "上传及时性(按业务类别)" in page and "补传" in page and "各县区上传时延P95" in page
    (tmp_path / "report.html").write_text(page, encoding="utf-8")


def test_bad_periods_and_organisations_are_clear_errors(engine: Engine) -> None:
    clock = ManualClock(START)
    with pytest.raises(ReportInputError, match="before --to"):
        make_report(engine, clock, default_policy(), TARGETS, END, START)
    with pytest.raises(ReportInputError, match="no history"):
        make_report(engine, clock, default_policy(), TARGETS, START, END)
    run_month(engine, clock)
    with pytest.raises(ReportInputError, match="unknown organisation 'nowhere'"):
        make_report(engine, clock, default_policy(), TARGETS, START, END, "nowhere")
    with pytest.raises(ReportInputError, match="ends before the first recorded data"):
        make_report(engine, clock, default_policy(), TARGETS, START - 60 * DAY, START - 59 * DAY)
    only = make_report(engine, clock, default_policy(), TARGETS, START, END, "chengxian")
    assert only["summary"]["cameras"] == 0
    wudu = make_report(engine, clock, default_policy(), TARGETS, START, END, "wudu")
    assert wudu["summary"]["cameras"] == 3


def test_the_report_command_says_what_is_wrong_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from controller.__main__ import main
    from controller.config import load_config

    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    config = load_config(None, data_dir=str(data))
    engine = make_engine(config.resolved_database_url())
    clock = ManualClock(START - 10 * US)
    clock.advance(10)
    base = ["report", "--data-dir", str(data)]
    assert main([*base, "--from", "2026-11-01", "--to", "2026-12-01"]) == 2
    assert "no history or accounting recorded yet" in capsys.readouterr().err
    run_month(engine, clock)
    engine.dispose()
    assert main([*base, "--from", "2026-12-01", "--to", "2026-11-01"]) == 2
    assert "--from must be before --to" in capsys.readouterr().err
    assert main([*base, "--from", "2026-11-01", "--to", "2026-12-01", "--org", "x"]) == 2
    assert "unknown organisation 'x'" in capsys.readouterr().err
    assert main([*base, "--from", "2020-01-01", "--to", "2020-02-01"]) == 2
    assert "ends before the first recorded data" in capsys.readouterr().err
    out = tmp_path / "r.csv"
    args = ["--from", "2026-11-01T08:00", "--to", "2026-12-01T08:00", "--format", "csv"]
    assert main([*base, *args, "--out", str(out)]) == 0
    assert out.read_text(encoding="utf-8").splitlines()[1].startswith("total,city,3,3,")
