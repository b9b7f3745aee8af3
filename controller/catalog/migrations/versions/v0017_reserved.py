"""Revision 0017: reserved so that parallel work can add revisions without two claiming one parent.

The engineer who takes this number renames the file and writes its docstring; left unused, it stays
in the chain as a no-op (as 0008 and 0012 did).
"""

from __future__ import annotations

revision = "0017"
down_revision: str | None = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet (see the module docstring)."""


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
