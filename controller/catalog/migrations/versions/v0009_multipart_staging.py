"""Revision 0009: `ingest_multipart`, S3 multipart uploads as ingest's shared staging.

Ingest streams a large segment into an S3 multipart upload (controller/ingest/stream.py); one
row per such upload says which upload id holds which segment, its parts (size, SHA-256, ETag,
the segment's running SHA-256 state after each) and whether every byte is verified (state
`verified`: the durable commit queue, controller/ingest/commit_queue.py). Every replica reads
it, so any replica resumes or completes an upload another one started.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision: str | None = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ingest_multipart",
        sa.Column("segment_id", sa.String(128), nullable=False),
        sa.Column("device_id", sa.String(128), nullable=False),
        sa.Column("camera_id", sa.String(64), nullable=False),
        sa.Column("object_key", sa.String(1024), nullable=False),
        sa.Column("upload_id", sa.String(1024), nullable=False),
        sa.Column("header", sa.Text(), nullable=False),
        sa.Column("part_size", sa.BigInteger(), nullable=False),
        sa.Column("nparts", sa.Integer(), nullable=False),
        sa.Column("parts", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_us", sa.BigInteger(), nullable=False),
        sa.Column("updated_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("segment_id"),
    )
    op.create_index("ix_ingest_multipart_device", "ingest_multipart", ["device_id"])
    op.create_index(
        "ix_ingest_multipart_state_updated", "ingest_multipart", ["state", "updated_us"]
    )


def downgrade() -> None:
    raise NotImplementedError("downgrades are not supported: restore a backup instead")
