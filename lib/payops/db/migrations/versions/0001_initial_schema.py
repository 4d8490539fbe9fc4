"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivery_status", sa.String(length=16), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_alerts_dedupe_key"), ["dedupe_key"], unique=False)

    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        sa.UniqueConstraint("name", name=op.f("uq_credentials_name")),
    )
    op.create_table(
        "manual_payouts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("incident_id", sa.String(length=64), nullable=False),
        sa.Column("studio_id", sa.String(length=36), nullable=False),
        sa.Column("studio_name", sa.String(length=200), nullable=False),
        sa.Column("ledger_payout_id", sa.String(length=36), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reserve_after", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("destination_account", sa.String(length=64), nullable=False),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("stripe_transfer_id", sa.String(length=64), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("stripe_request_id", sa.String(length=64), nullable=True),
        sa.Column("approver_ops_id", sa.String(length=36), nullable=False),
        sa.Column("approver_finance_id", sa.String(length=36), nullable=False),
        sa.Column("operator", sa.String(length=64), nullable=False),
        sa.Column("is_rehearsal", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("transferred_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("settled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("archive_manifest_sha256", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manual_payouts")),
        sa.UniqueConstraint("ledger_payout_id", name=op.f("uq_manual_payouts_ledger_payout_id")),
        sa.UniqueConstraint("run_id", name=op.f("uq_manual_payouts_run_id")),
        sa.UniqueConstraint("stripe_transfer_id", name=op.f("uq_manual_payouts_stripe_transfer_id")),
    )
    with op.batch_alter_table("manual_payouts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_manual_payouts_incident_id"), ["incident_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_manual_payouts_studio_id"), ["studio_id"], unique=False)

    op.create_table(
        "payout_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("cycle_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("studios_scheduled", sa.Integer(), nullable=False),
        sa.Column("studios_paid", sa.Integer(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payout_runs")),
        sa.UniqueConstraint("cycle_date", name=op.f("uq_payout_runs_cycle_date")),
    )
    op.create_table(
        "recon_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("period_from", sa.Date(), nullable=False),
        sa.Column("period_to", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("preparer_id", sa.String(length=36), nullable=True),
        sa.Column("approver_id", sa.String(length=36), nullable=True),
        sa.Column("signed_off_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_runs")),
    )
    op.create_table(
        "runbook_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("sop", sa.String(length=64), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("params_json", sa.Text(), nullable=False),
        sa.Column("params_hash", sa.String(length=64), nullable=False),
        sa.Column("subject_key", sa.String(length=128), nullable=True),
        sa.Column("parent_run_id", sa.String(length=36), nullable=True),
        sa.Column("operator", sa.String(length=64), nullable=True),
        sa.Column("output_dir", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("failed_step", sa.String(length=64), nullable=True),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detected_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runbook_runs")),
    )
    with op.batch_alter_table("runbook_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runbook_runs_params_hash"), ["params_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_runbook_runs_sop"), ["sop"], unique=False)
        batch_op.create_index(batch_op.f("ix_runbook_runs_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_runbook_runs_subject_key"), ["subject_key"], unique=False)

    op.create_table(
        "studios",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("stripe_account_id", sa.String(length=64), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("reserve_minimum", sa.BigInteger(), nullable=False),
        sa.Column("charges_enabled", sa.Boolean(), nullable=False),
        sa.Column("payouts_enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_studios")),
        sa.UniqueConstraint("stripe_account_id", name=op.f("uq_studios_stripe_account_id")),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("params_hash", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("approver_id", sa.String(length=36), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runbook_runs.id"], name=op.f("fk_approvals_run_id_runbook_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.UniqueConstraint("params_hash", "role", name=op.f("uq_approvals_params_hash_role")),
    )
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_approvals_params_hash"), ["params_hash"], unique=False)
        batch_op.create_index(batch_op.f("ix_approvals_run_id"), ["run_id"], unique=False)

    op.create_table(
        "ledger_payouts",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.Column("studio_id", sa.String(length=36), nullable=False),
        sa.Column("gross", sa.BigInteger(), nullable=False),
        sa.Column("fee", sa.BigInteger(), nullable=False),
        sa.Column("reserve", sa.BigInteger(), nullable=False),
        sa.Column("net", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stripe_transfer_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["payout_runs.id"], name=op.f("fk_ledger_payouts_run_id_payout_runs")
        ),
        sa.ForeignKeyConstraint(
            ["studio_id"], ["studios.id"], name=op.f("fk_ledger_payouts_studio_id_studios")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_payouts")),
    )
    with op.batch_alter_table("ledger_payouts", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_payouts_run_studio", ["run_id", "studio_id"], unique=True)
        batch_op.create_index(batch_op.f("ix_ledger_payouts_status"), ["status"], unique=False)
        batch_op.create_index(batch_op.f("ix_ledger_payouts_studio_id"), ["studio_id"], unique=False)

    op.create_table(
        "recon_breaks",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recon_run_id", sa.String(length=36), nullable=False),
        sa.Column("break_key", sa.String(length=200), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("first_seen", sa.Date(), nullable=False),
        sa.Column("explanation", sa.Text(), nullable=True),
        sa.Column("explained_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["recon_run_id"], ["recon_runs.id"], name=op.f("fk_recon_breaks_recon_run_id_recon_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_breaks")),
    )
    with op.batch_alter_table("recon_breaks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recon_breaks_break_key"), ["break_key"], unique=False)
        batch_op.create_index(batch_op.f("ix_recon_breaks_recon_run_id"), ["recon_run_id"], unique=False)

    op.create_table(
        "runbook_steps",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("step", sa.String(length=64), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("notebook_path", sa.Text(), nullable=True),
        sa.Column("result_json", sa.Text(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runbook_runs.id"], name=op.f("fk_runbook_steps_run_id_runbook_runs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_runbook_steps")),
        sa.UniqueConstraint("run_id", "step", name=op.f("uq_runbook_steps_run_id_step")),
    )
    with op.batch_alter_table("runbook_steps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runbook_steps_run_id"), ["run_id"], unique=False)

    op.create_table(
        "transfer_intents",
        sa.Column("ledger_payout_id", sa.String(length=36), nullable=False),
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("idempotency_key", sa.String(length=255), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("destination", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("stripe_transfer_id", sa.String(length=64), nullable=True),
        sa.Column("stripe_request_id", sa.String(length=64), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runbook_runs.id"], name=op.f("fk_transfer_intents_run_id_runbook_runs")
        ),
        sa.PrimaryKeyConstraint("ledger_payout_id", name=op.f("pk_transfer_intents")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_transfer_intents_idempotency_key")),
        sa.UniqueConstraint("stripe_transfer_id", name=op.f("uq_transfer_intents_stripe_transfer_id")),
    )
    with op.batch_alter_table("transfer_intents", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_transfer_intents_run_id"), ["run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("transfer_intents", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transfer_intents_run_id"))

    op.drop_table("transfer_intents")
    with op.batch_alter_table("runbook_steps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runbook_steps_run_id"))

    op.drop_table("runbook_steps")
    with op.batch_alter_table("recon_breaks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recon_breaks_recon_run_id"))
        batch_op.drop_index(batch_op.f("ix_recon_breaks_break_key"))

    op.drop_table("recon_breaks")
    with op.batch_alter_table("ledger_payouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ledger_payouts_studio_id"))
        batch_op.drop_index(batch_op.f("ix_ledger_payouts_status"))
        batch_op.drop_index("ix_ledger_payouts_run_studio")

    op.drop_table("ledger_payouts")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_approvals_run_id"))
        batch_op.drop_index(batch_op.f("ix_approvals_params_hash"))

    op.drop_table("approvals")
    op.drop_table("studios")
    with op.batch_alter_table("runbook_runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runbook_runs_subject_key"))
        batch_op.drop_index(batch_op.f("ix_runbook_runs_status"))
        batch_op.drop_index(batch_op.f("ix_runbook_runs_sop"))
        batch_op.drop_index(batch_op.f("ix_runbook_runs_params_hash"))

    op.drop_table("runbook_runs")
    op.drop_table("recon_runs")
    op.drop_table("payout_runs")
    with op.batch_alter_table("manual_payouts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_manual_payouts_studio_id"))
        batch_op.drop_index(batch_op.f("ix_manual_payouts_incident_id"))

    op.drop_table("manual_payouts")
    op.drop_table("credentials")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_alerts_dedupe_key"))

    op.drop_table("alerts")
