"""reconciliation: break evidence, explanation author, run thresholds

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("recon_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("params_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("max_unexplained", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("rows_total", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("breaks_total", sa.Integer(), nullable=True))
    with op.batch_alter_table("recon_breaks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ledger_payout_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("transfer_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("payout_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("suggested_action", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("explained_by", sa.String(length=36), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recon_breaks", schema=None) as batch_op:
        for name in ("explained_by", "suggested_action", "reason", "payout_id", "transfer_id", "ledger_payout_id"):
            batch_op.drop_column(name)
    with op.batch_alter_table("recon_runs", schema=None) as batch_op:
        for name in ("breaks_total", "rows_total", "max_unexplained", "params_hash"):
            batch_op.drop_column(name)
