"""Revision 0013: loss reports keyed by (device, fact id); rows stored before keep theirs."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from controller.catalog import make_engine
from controller.catalog.db import upgrade_database
from controller.catalog.schema import _run as run_migrations
from controller.catalog.schema import script_directory

INSERT = (
    "INSERT INTO loss_event (device_id, camera_id, session, seq, start_us, end_us, size_bytes,"
    " reason, detail, at_us, received_us{extra}) VALUES ('d1', 'c1', :session, :seq, 0, 10,"
    " 5, 'buffer_full', '', 1, 2{value})"
)


def test_rows_before_0013_get_their_session_and_seq_as_fact_id(catalog_url: str) -> None:
    engine = make_engine(catalog_url, create=False)
    try:
        with engine.begin() as conn:
            run_migrations(conn, script_directory(), "0012", stamp=False)
            for session, seq in ((7, 1), (7, 2)):
                conn.execute(
                    text(INSERT.format(extra="", value="")), {"session": session, "seq": seq}
                )
        upgrade_database(engine)
        with engine.connect() as conn:
            facts = conn.execute(text("SELECT fact_id FROM loss_event ORDER BY seq")).scalars()
            assert list(facts) == ["s7:1", "s7:2"]
        # The same fact twice is refused; the same session and seq with another fact is not.
        insert = text(INSERT.format(extra=", fact_id", value=", :fact"))
        with engine.begin() as conn:
            conn.execute(insert, {"session": 7, "seq": 1, "fact": "seg-a"})
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(insert, {"session": 8, "seq": 9, "fact": "seg-a"})
    finally:
        engine.dispose()
