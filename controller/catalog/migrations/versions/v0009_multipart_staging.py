"""Revision 0009: reserved.

For issue 18 (ingest streaming): S3 multipart uploads as the shared staging.

Empty until that work lands: revision numbers were reserved in order so that several pieces of
work could each add their tables without two revisions claiming the same parent.
"""

from __future__ import annotations

revision = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Nothing yet."""


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
