"""archive: the seals recorded when sealing and the chain head's anchors (issue #19, tail truncation)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "archive_seals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("output_root", sa.Text(), nullable=False),
        sa.Column("manifest_path", sa.Text(), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("chain_seq", sa.Integer(), nullable=False),
        sa.Column("prev_sha256", sa.String(length=64), nullable=True),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("sop", sa.String(length=64), nullable=True),
        sa.Column("sealed_at", TZ, nullable=False),
        sa.Column("recorded_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_seals")),
    )
    with op.batch_alter_table("archive_seals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_archive_seals_output_root"), ["output_root"], unique=False)
        batch_op.create_index(batch_op.f("ix_archive_seals_run_id"), ["run_id"], unique=False)
    op.create_table(
        "archive_anchors",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("output_root", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("target", sa.Text(), nullable=True),
        sa.Column("chain_seq", sa.Integer(), nullable=False),
        sa.Column("manifest_path", sa.Text(), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("anchored_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_anchors")),
    )
    with op.batch_alter_table("archive_anchors", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_archive_anchors_output_root"), ["output_root"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("archive_anchors", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_archive_anchors_output_root"))
    op.drop_table("archive_anchors")
    with op.batch_alter_table("archive_seals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_archive_seals_run_id"))
        batch_op.drop_index(batch_op.f("ix_archive_seals_output_root"))
    op.drop_table("archive_seals")
