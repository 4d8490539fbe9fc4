"""payout cycle: earnings, skips, webhook events, scheduler slots, ops flags; chain columns

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("payout_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("runbook_run_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("studios_skipped", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("studios_failed", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("totals_json", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("failure_reason", sa.Text(), nullable=True))
    with op.batch_alter_table("ledger_payouts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stripe_destination_payment_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("stripe_payout_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("failure_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("failure_reason", sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f("ix_ledger_payouts_stripe_destination_payment_id"),
                              ["stripe_destination_payment_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_payouts_stripe_payout_id"), ["stripe_payout_id"], unique=False)

    op.create_table(
        "studio_earnings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("studio_id", sa.String(length=36), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("earned_at", TZ, nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("source_ref", sa.String(length=255), nullable=True),
        sa.Column("ledger_payout_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["studio_id"], ["studios.id"], name=op.f("fk_studio_earnings_studio_id_studios")),
        sa.ForeignKeyConstraint(["ledger_payout_id"], ["ledger_payouts.id"],
                                name=op.f("fk_studio_earnings_ledger_payout_id_ledger_payouts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studio_earnings")),
        sa.UniqueConstraint("source_ref", name=op.f("uq_studio_earnings_source_ref")),
    )
    with op.batch_alter_table("studio_earnings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_studio_earnings_studio_id"), ["studio_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_studio_earnings_ledger_payout_id"), ["ledger_payout_id"], unique=False)

    op.create_table(
        "payout_skips",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("payout_run_id", sa.String(length=36), nullable=False),
        sa.Column("studio_id", sa.String(length=36), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("net", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["payout_run_id"], ["payout_runs.id"],
                                name=op.f("fk_payout_skips_payout_run_id_payout_runs")),
        sa.ForeignKeyConstraint(["studio_id"], ["studios.id"], name=op.f("fk_payout_skips_studio_id_studios")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_skips")),
        sa.UniqueConstraint("payout_run_id", "studio_id", "currency",
                            name=op.f("uq_payout_skips_payout_run_id_studio_id_currency")),
    )
    with op.batch_alter_table("payout_skips", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payout_skips_payout_run_id"), ["payout_run_id"], unique=False)

    op.create_table(
        "webhook_events",
        sa.Column("id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=True),
        sa.Column("livemode", sa.Boolean(), nullable=False),
        sa.Column("object_id", sa.String(length=255), nullable=True),
        sa.Column("created", sa.BigInteger(), nullable=True),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("payload_sha256", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
    )
    with op.batch_alter_table("webhook_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_events_type"), ["type"], unique=False)

    op.create_table(
        "scheduled_executions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("job", sa.String(length=64), nullable=False),
        sa.Column("slot_at", TZ, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("runbook_run_id", sa.String(length=36), nullable=True),
        sa.Column("started_at", TZ, nullable=True),
        sa.Column("finished_at", TZ, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scheduled_executions")),
        sa.UniqueConstraint("job", "slot_at", name=op.f("uq_scheduled_executions_job_slot_at")),
    )
    op.create_table(
        "ops_flags",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("set_by", sa.String(length=64), nullable=True),
        sa.Column("set_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_ops_flags")),
    )


def downgrade() -> None:
    op.drop_table("ops_flags")
    op.drop_table("scheduled_executions")
    op.drop_table("webhook_events")
    op.drop_table("payout_skips")
    op.drop_table("studio_earnings")
    with op.batch_alter_table("ledger_payouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_payouts_stripe_payout_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_payouts_stripe_destination_payment_id"))
        for name in ("failure_reason", "failure_code", "stripe_payout_id", "stripe_destination_payment_id"):
            batch_op.drop_column(name)
    with op.batch_alter_table("payout_runs", schema=None) as batch_op:
        for name in ("failure_reason", "totals_json", "studios_failed", "studios_skipped", "runbook_run_id"):
            batch_op.drop_column(name)
