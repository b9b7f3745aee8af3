"""Catalog subscription (GB/T 28181-2016 §9.11.1) with SIPp playing the NVR.

The NVR registers; Vigil asks for its catalog (two channels, ON) and SUBSCRIBEs to it (Event:
Catalog). The NVR grants a short subscription and NOTIFYs changes in that dialog: a channel
OFF, a channel ADDed, another device's camera code OFF and ADDed, an unknown event. Vigil
applies them with no new Catalog query. Bad NOTIFYs (malformed, oversize, another event
package, a short code, one outside the subscription's Call-ID) are each refused with a SIP
status and change nothing. Vigil renews the subscription in the same dialog before the grant
ends, and the NOTIFY after the renewal (the channel ON again) is applied too. An NVR that
refuses SUBSCRIBE is left with the periodic query.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from controller.api.gb_devices import GbFleet
from controller.assembly import Controller
from controller.gb28181.catalog_sub import CatalogSubscriber
from controller.gb28181.devices import DeviceAccess
from controller.gb28181.devstore import GbDeviceStore
from controller.gb28181.manscdp import OFF, ON
from tests.integration.gb_device_support import REALM, device_controller
from tests.integration.test_gb28181_support import SIPP_DIR, free_udp_port, sipp_binary

SERVER_ID = "62120000002000000004"
NVR = "62120200001110000041"
CH1, CH2, CH3 = "62120200001310000411", "62120200001310000412", "62120200001310000413"
FOREIGN = "62120200001310000477"  # an agent's camera with a GB-looking id
EXPIRES_S = 10  # granted by the NVR: renewed after about 6.7 s


@dataclass
class SubWorld:
    controller: Controller
    devices: DeviceAccess
    subs: CatalogSubscriber
    sip_port: int
    password: str
    tmp: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SubWorld]:
    tmp = tmp_path_factory.mktemp("gbsub")
    controller, password, sip_port = device_controller(tmp / "ctl", SERVER_ID, NVR)
    catalog = controller.core.catalog
    catalog.upsert_device("edge-foreign", "wudu", "东关村", "agent")
    catalog.upsert_camera(FOREIGN, "edge-foreign")
    try:
        assert controller.gb28181 is not None and controller.gb28181.devices is not None
        devices = controller.gb28181.devices
        assert isinstance(devices.subscriptions, CatalogSubscriber)
        yield SubWorld(controller, devices, devices.subscriptions, sip_port, password, tmp)
    finally:
        controller.stop(grace_s=1.0)


def nvr(world: SubWorld, ooc: str, log: Path, keep_ms: int) -> subprocess.Popen[bytes]:
    scenario = world.tmp / ooc
    text = (SIPP_DIR / ooc).read_text()
    scenario.write_text(text.replace("<!--PADDING-->", "<Pad>" + "x" * 40_000 + "</Pad>"))
    keys = {"device": NVR, "server_id": SERVER_ID, "realm": REALM, "ch1": CH1, "ch2": CH2,
            "ch3": CH3, "foreign": FOREIGN, "expires": str(EXPIRES_S)}  # fmt: skip
    return subprocess.Popen(
        [sipp_binary(), f"127.0.0.1:{world.sip_port}", "-sf",
         str(SIPP_DIR / "device_subscribe.xml"), "-oocsf", str(scenario), "-i", "127.0.0.1",
         "-p", str(free_udp_port()), "-m", "1",
         "-nostdin", "-au", NVR, "-ap", world.password, "-d", str(keep_ms), "-timeout", "60s",
         "-trace_msg", "-message_file", str(log),
         *[arg for k, v in keys.items() for arg in ("-key", k, v)]],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=world.tmp,
    )  # fmt: skip


def wait_for(what: str, ok: Callable[[], bool], seconds: float = 20.0) -> None:
    end = time.monotonic() + seconds
    while not ok():
        assert time.monotonic() < end, f"timed out waiting for {what}"
        time.sleep(0.05)


def fleet_channels(world: SubWorld) -> dict[str, tuple[bool | None, str, str]]:
    core = world.controller.core
    fleet = GbFleet(GbDeviceStore(core.engine, core.clock), core.clock, 180.0, ttl_s=0.0)
    _state, shown = fleet.states()[NVR]
    return {c.camera_id: (c.online, c.reason, c.status) for c in shown.channel_states}


def test_a_subscribed_nvr_notifies_changes_and_they_are_applied_without_a_query(
    world: SubWorld, caplog: pytest.LogCaptureFixture
) -> None:
    log = world.tmp / "subscribe.log"
    catalog = world.controller.core.catalog
    with caplog.at_level("INFO", logger="vigil.gb28181"):
        proc = nvr(world, "device_ooc_subscribe.xml", log, keep_ms=14_000)
        try:
            wait_for("the subscription", lambda: (s := world.subs.subs.get(NVR)) is not None
                     and s.granted_s == EXPIRES_S)  # fmt: skip
            sub = world.subs.subs[NVR]
            wait_for("the first NOTIFY applied", lambda: sub.notifies >= 1)
            dev = world.devices.devices[NVR]
            assert dev.channel_status == {CH1: ON, CH2: OFF, CH3: ON}
            assert dev.channel_codes == [CH1, CH2, CH3] and dev.channels == 3
            applied = fleet_channels(world)
            assert applied == {CH1: (True, "", "on"), CH2: (False, "catalog_off", "off"),
                               CH3: (True, "", "on")}  # fmt: skip
            added = catalog.camera(CH3)
            assert added is not None and added.device_id == NVR
            # another device's camera: neither switched off nor taken over
            foreign = catalog.camera(FOREIGN)
            assert foreign is not None and foreign.device_id == "edge-foreign"
            store = GbDeviceStore(world.controller.core.engine, world.controller.core.clock)
            assert FOREIGN not in store.all_channels()
            # renewed in the dialog before the grant ran out; the NOTIFY after it applied
            wait_for("the renewal and its NOTIFY", lambda: sub.notifies >= 2, EXPIRES_S + 10)
            assert dev.channel_status[CH2] == ON
            assert fleet_channels(world)[CH2] == (True, "", "on")
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)
    out = log.read_text(errors="replace")
    # the bad NOTIFYs, each refused, nothing changed by them (CH1 stayed ON throughout)
    for said in ("481 no subscription with that Call-ID", "400 malformed XML",
                 "413 XML body of", "489 event 'presence' is not subscribed",
                 "400 catalog item code '6212'"):  # fmt: skip
        assert said in out, said
    assert world.devices.devices[NVR].channel_status[CH1] == ON
    # one Catalog query (for the registration), none for the NOTIFYs: applied as they came
    assert out.count(f"MESSAGE sip:{NVR}@") == 1
    subscribes = [m for m in out.split("SUBSCRIBE sip:")[1:] if "CSeq: " in m]
    assert any("CSeq: 2 SUBSCRIBE" in m for m in subscribes)  # the renewal, same dialog
    renewal = out[out.index("CSeq: 2 SUBSCRIBE") - 800 : out.index("CSeq: 2 SUBSCRIBE")]
    assert "Event: Catalog" in out and ";tag=" in renewal.split("To:")[-1].split("\n")[0]
    messages = [r.getMessage() for r in caplog.records]
    assert any("Catalog event 'EXPLODE' is not one of" in m for m in messages)
    assert any(f"Catalog event for {FOREIGN}" in m or f"channel {FOREIGN}, a camera of" in m
               for m in messages)  # fmt: skip


def test_an_nvr_that_refuses_subscribe_keeps_the_periodic_query(
    world: SubWorld, caplog: pytest.LogCaptureFixture
) -> None:
    log = world.tmp / "nosub.log"
    with caplog.at_level("INFO", logger="vigil.gb28181"):
        proc = nvr(world, "device_ooc_nosub.xml", log, keep_ms=3000)
        try:
            refused = "Catalog SUBSCRIBE not taken (489"
            wait_for("the refusal", lambda: any(refused in r.getMessage()
                                                for r in caplog.records))  # fmt: skip
            assert NVR not in world.subs.subs
            assert world.devices.online(NVR)  # registered and kept alive as before
        finally:
            proc.terminate()
            proc.wait(10)
    assert "SIP/2.0 489 Bad Event" in log.read_text(errors="replace")
