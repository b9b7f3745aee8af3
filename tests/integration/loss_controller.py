"""A controller's fleet service with its history writer, as a process a test can kill -9.

    python -m tests.integration.loss_controller PORT USER PASSWORD_FILE DB FLUSH_S DEVICE...

The real FleetService + HistoryWriter + HistoryCatalog on a SQLite catalog, connected to the
test's Mosquitto with the controller account; prints "connected" once on the broker.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from controller.catalog import make_engine
from controller.catalog.history import HistoryCatalog
from controller.clock import SystemClock
from controller.fleet.directory import StaticDirectory
from controller.fleet.history_writer import HistoryWriter
from controller.fleet.mqtt import MqttSettings
from controller.fleet.service import FleetOptions, FleetService

COUNTY, SITE = "wudu", "v001"


def main(argv: list[str]) -> None:
    port, user, password_file, db, flush_s, *devices = argv
    password = Path(password_file).read_text(encoding="utf-8").strip()
    clock = SystemClock()
    writer = HistoryWriter(HistoryCatalog(make_engine(db), clock), flush_s=float(flush_s))
    service = FleetService(
        MqttSettings("127.0.0.1", int(port), user, password, client_id=user),
        clock,
        StaticDirectory({d: (COUNTY, SITE) for d in devices}),
        FleetOptions(tick_s=0.5),
        history=writer,
    )
    writer.start()
    service.start()
    if not service.wait_connected(20):
        raise SystemExit("not connected")
    print("connected", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1:])
