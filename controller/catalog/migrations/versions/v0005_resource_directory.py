"""Revision 0005: reserved.

For issue 14 (console): the camera resource directory (name, location, township/village,
GB/T 28181 code, class) and anything else the console needs.

Empty until that work lands: revision numbers were reserved in order so that several pieces of
work could each add their tables without two revisions claiming the same parent.
"""

from __future__ import annotations

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
