"""What open jobs ask of agents: holds per device, evidence deadlines, MQTT hold commands."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from controller.jobs.model import JOB_OPEN, JobView
from controller.jobs.tracker import desired_holds, evidence_deadlines
from controller.scheduler.model import TrafficClass
from controller.scheduler.upkeep import HoldCommands
from protos.vigil.v1 import fleet_pb2

S = 1_000_000


def job(job_id: str, cameras: tuple[str, ...], deadline: int, cls: TrafficClass) -> JobView:
    return JobView(
        job_id, "case-1", cameras, 10 * S, 20 * S, cls, deadline, JOB_OPEN,
        0, 0, 0, "", 0, 0, 0, 0, 0, "",
    )  # fmt: skip


JOBS = [
    job("aaaaaaaaaaaa", ("cam1", "cam2"), 900 * S, TrafficClass.EVIDENCE),
    job("bbbbbbbbbbbb", ("cam1", "lost"), 500 * S, TrafficClass.EVIDENCE),
    job("cccccccccccc", ("cam2",), 100 * S, TrafficClass.EVENT),
]
CAMERAS = {"cam1": "dev1", "cam2": "dev2"}


def test_holds_go_to_the_device_of_each_camera() -> None:
    holds = desired_holds(JOBS, CAMERAS)
    assert sorted(holds) == ["dev1", "dev2"]
    assert [(h.tag, h.camera_id) for h in holds["dev1"]] == [
        ("vigil-job-aaaaaaaaaaaa", "cam1"),
        ("vigil-job-bbbbbbbbbbbb", "cam1"),
    ]
    assert holds["dev2"][1].traffic_class is TrafficClass.EVENT
    assert (holds["dev2"][0].start_us, holds["dev2"][0].end_us) == (10 * S, 20 * S)


def test_evidence_deadlines_are_the_earliest_per_camera() -> None:
    assert evidence_deadlines(JOBS) == {"cam1": 500 * S, "cam2": 900 * S, "lost": 500 * S}


class Recorder:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail = fail

    def send_command(self, device_id: str, command: fleet_pb2.Command) -> str:
        if self.fail:
            raise RuntimeError("not connected to the MQTT broker")
        self.sent.append((device_id, command.verb, command.case_id))
        return "corr"


def test_mqtt_holds_once_per_job_and_release_when_it_closes() -> None:
    fleet = Recorder()
    commands = HoldCommands(fleet)
    holds = desired_holds(JOBS[:1], CAMERAS)
    commands.sync(holds)
    commands.sync(holds)  # seen before: not sent again
    tag = "vigil-job-aaaaaaaaaaaa"
    assert fleet.sent == [("dev1", "hold", tag), ("dev2", "hold", tag)]
    commands.sync({})
    assert fleet.sent[2:] == [("dev1", "release", tag), ("dev2", "release", tag)]


def test_a_broker_that_is_down_changes_nothing_else() -> None:
    down = Recorder(fail=True)
    HoldCommands(down).sync(desired_holds(JOBS, CAMERAS))  # logged, not raised
    HoldCommands(None).sync(desired_holds(JOBS, CAMERAS))
    assert down.sent == []
    refused = Recorder()
    bad = replace(JOBS[0], start_us=-5)
    HoldCommands(refused).sync(desired_holds([bad], CAMERAS))  # refused by build_command
    assert refused.sent == []


def test_the_fleet_service_exists_before_it_starts(tmp_path: Path) -> None:
    """The scheduler is given the fleet's service when both are built: a hold sent before
    the fleet runs is refused (HoldCommands logs it; the lease stream carries the hold)."""
    from controller.clock import ManualClock
    from controller.config import MqttConfig
    from controller.fleet.component import FleetComponent
    from controller.fleet.directory import StaticDirectory
    from controller.fleet.service import FleetError

    directory = StaticDirectory({"dev1": ("wudu", "v001")})
    fleet = FleetComponent(MqttConfig(), tmp_path, ManualClock(), directory)
    with pytest.raises(FleetError, match="not connected"):  # built, not started yet
        fleet.service.send_command("dev1", fleet_pb2.Command(verb="hold"))
    HoldCommands(fleet.service).sync(desired_holds(JOBS[:1], CAMERAS))  # logged, not raised
    assert not (tmp_path / "mosquitto").exists()  # nothing started, nothing written
