"""Revision 0012: no schema change (issue 12: the stores no longer call create_all).

The jobs, grants, users, audit and fleet stores made their own tables with SQLModel's
`create_all`, a no-op on a migrated database. Every one of those tables and columns was
already made by revisions 0001 (jobs, grants, users, audit) and 0003 (fleet), as
tests/integration/test_migrations.py shows on SQLite and PostgreSQL, so the stores now rely
on the migrations alone and this revision changes nothing. It stays in the chain: its number
was reserved so that parallel work could add revisions without two claiming one parent.
"""

from __future__ import annotations

revision = "0012"
down_revision: str | None = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing to add (see the module docstring)."""


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
