"""Write the next schema revision from what the models have and the migrations do not.

    .venv/bin/python scripts/new_migration.py "fleet: device notes"

Migrates a scratch SQLite database to the current head, compares it with every table the
controller's modules define (each module imported, as tests/integration/test_migrations.py
does), and writes `controller/catalog/migrations/versions/vNNNN_<slug>.py` with the
operations Alembic found (SQLite-compatible batch operations). Read and edit it before
committing: renames come out as drop + add, data moves are yours to write, and the new file
must pass tests/integration/test_migrations.py on SQLite and PostgreSQL (docs/operations.md,
"Adding a migration").
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import re
import sys
from pathlib import Path
from typing import Any, Literal

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from alembic.autogenerate import produce_migrations, render_python_code  # noqa: E402
from alembic.autogenerate.api import AutogenContext  # noqa: E402
from alembic.runtime.migration import MigrationContext  # noqa: E402
from sqlmodel import SQLModel  # noqa: E402

import controller  # noqa: E402
from controller.catalog import make_engine  # noqa: E402
from controller.catalog.schema import MIGRATIONS_DIR, script_directory  # noqa: E402

TEMPLATE = '''"""Revision {rev}: {message}

Say here why the schema changes (what needs it).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "{rev}"
down_revision: str | None = "{down}"
branch_labels = None
depends_on = None


def upgrade() -> None:
{body}


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
'''


def models() -> sa.MetaData:
    skip = ("controller.__main__", "controller.catalog.migrations")
    for info in pkgutil.walk_packages(controller.__path__, "controller."):
        if not info.name.startswith(skip):
            importlib.import_module(info.name)
    combined = sa.MetaData()
    sources = [SQLModel.metadata]
    for name, module in list(sys.modules.items()):
        if name.startswith("controller.") and not name.startswith(skip):
            sources += [v for v in vars(module).values() if isinstance(v, sa.MetaData)]
    for source in dict.fromkeys(sources):
        for table in source.sorted_tables:
            if table.name not in combined.tables:
                table.to_metadata(combined)
    return combined


def render_type(type_: str, obj: Any, _context: AutogenContext) -> str | Literal[False]:
    """sqlmodel's AutoString as plain sa.String: revisions import SQLAlchemy only."""
    if type_ == "type" and type(obj).__name__ == "AutoString":
        return f"sa.String({getattr(obj, 'length', None)})"
    return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("message", help="what the revision changes, one line")
    args = parser.parse_args()
    head = script_directory().get_current_head() or "0000"
    rev = f"{int(head) + 1:04d}"
    engine = make_engine("sqlite://")
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"render_item": render_type, "render_as_batch": True}
            )
            ops = produce_migrations(context, models())
    finally:
        engine.dispose()
    if ops.upgrade_ops is None or ops.upgrade_ops.is_empty():
        print("the migrations already make every model's table: nothing to write")
        return 1
    body = render_python_code(ops.upgrade_ops, render_as_batch=True, render_item=render_type)
    body = "\n".join(
        line for line in body.splitlines() if "### commands" not in line and "### end" not in line
    )
    slug = re.sub(r"[^a-z0-9]+", "_", args.message.lower()).strip("_")[:40] or "change"
    path = MIGRATIONS_DIR / "versions" / f"v{rev}_{slug}.py"
    path.write_text(TEMPLATE.format(rev=rev, down=head, message=args.message, body=body))
    print(
        f"wrote {path.relative_to(ROOT)}: review it, then run tests/integration/test_migrations.py"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
