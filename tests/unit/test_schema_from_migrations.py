"""The schema comes from the Alembic migrations only: no store creates its own tables.

`create_all` against a migrated database is a no-op that hides a missing migration (a new
column never reaches a production database); tests/integration/test_migrations.py checks
that the migrations make every model's table. Allowed: the catalog's migration code itself
(the ingest ledger's table is made by revision 0009 like every other store's).
"""

from __future__ import annotations

import re
from pathlib import Path

import controller

ALLOWED = {
    "catalog/schema.py",
    "catalog/migrations/versions/v0001_baseline.py",
}


def test_no_store_calls_create_all() -> None:
    root = Path(controller.__file__).parent
    calls = re.compile(r"\.create_all\(")
    found = sorted(
        str(path.relative_to(root))
        for path in root.rglob("*.py")
        if calls.search(path.read_text(encoding="utf-8"))
    )
    assert [f for f in found if f not in ALLOWED] == []
    assert "catalog/schema.py" in found  # the check finds a call where there is one
