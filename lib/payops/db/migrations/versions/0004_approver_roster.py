"""approver roster and signed approvals: people, roles, SSH keys, roster events, go-live signatures

Existing approvals keep their rows and become ``kind = 'unsigned'``: shown as "unsigned (legacy)",
never counted for a live run. A signed approval of the same parameters may be added beside a legacy
one (the unique key now includes ``kind``). The roster is revoke-only: database triggers refuse
DELETE on people, roles, keys and go-live signatures, and UPDATE or DELETE on ``roster_events``.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
NO_DELETE = ("approver_people", "approver_roles", "approver_keys", "golive_signatures")
APPEND_ONLY = ("roster_events", "golive_signatures")


def _guards(dialect: str) -> list[str]:
    """Triggers that make the roster revoke-only and its event log append-only."""
    out: list[str] = []
    if dialect == "postgresql":
        out.append(
            "CREATE FUNCTION payops_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION '% on % refused: the approver roster is revoke-only and its history append-only', "
            "TG_OP, TG_TABLE_NAME; END $$"
        )
        for t in NO_DELETE:
            ops = "UPDATE OR DELETE" if t in APPEND_ONLY else "DELETE"
            out.append(f"CREATE TRIGGER trg_{t}_guard BEFORE {ops} ON {t} FOR EACH ROW "
                       "EXECUTE FUNCTION payops_refuse_change()")
        out.append("CREATE TRIGGER trg_roster_events_guard BEFORE UPDATE OR DELETE ON roster_events "
                   "FOR EACH ROW EXECUTE FUNCTION payops_refuse_change()")
        return out
    for t in (*NO_DELETE, "roster_events"):
        for what in ("DELETE", "UPDATE") if t in APPEND_ONLY else ("DELETE",):
            out.append(
                f"CREATE TRIGGER trg_{t}_no_{what.lower()} BEFORE {what} ON {t} BEGIN "
                f"SELECT RAISE(ABORT, '{what} on {t} refused: the approver roster is revoke-only and its "
                "history append-only'); END"
            )
    return out


def upgrade() -> None:
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="unsigned", nullable=False))
        batch_op.add_column(sa.Column("key_fingerprint", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("statement", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("signature", sa.Text(), nullable=True))
        batch_op.drop_constraint("uq_approvals_params_hash_role", type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_approvals_params_hash_role_kind"),
                                          ["params_hash", "role", "kind"])

    op.create_table(
        "approver_people",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("test_only", sa.Boolean(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approver_people")),
    )
    op.create_table(
        "approver_roles",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("granted_at", TZ, nullable=False),
        sa.Column("granted_by", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["approver_people.id"],
                                name=op.f("fk_approver_roles_person_id_approver_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approver_roles")),
    )
    with op.batch_alter_table("approver_roles", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_approver_roles_person_id"), ["person_id"], unique=False)
    op.create_table(
        "approver_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("key_type", sa.String(length=64), nullable=False),
        sa.Column("public_key", sa.Text(), nullable=False),
        sa.Column("comment", sa.String(length=200), nullable=True),
        sa.Column("fingerprint", sa.String(length=100), nullable=False),
        sa.Column("added_at", TZ, nullable=False),
        sa.Column("added_by", sa.String(length=64), nullable=False),
        sa.Column("revoked_at", TZ, nullable=True),
        sa.Column("revoked_by", sa.String(length=64), nullable=True),
        sa.Column("revoke_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["person_id"], ["approver_people.id"],
                                name=op.f("fk_approver_keys_person_id_approver_people")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approver_keys")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_approver_keys_fingerprint")),
    )
    with op.batch_alter_table("approver_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_approver_keys_person_id"), ["person_id"], unique=False)
    op.create_table(
        "roster_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("actor_login", sa.String(length=200), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("detail_json", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roster_events")),
    )
    with op.batch_alter_table("roster_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_roster_events_person_id"), ["person_id"], unique=False)
    op.create_table(
        "golive_signatures",
        sa.Column("run_id", sa.String(length=36), nullable=False),
        sa.Column("params_hash", sa.String(length=64), nullable=False),
        sa.Column("person_id", sa.String(length=36), nullable=False),
        sa.Column("key_fingerprint", sa.String(length=100), nullable=False),
        sa.Column("statement", sa.Text(), nullable=False),
        sa.Column("signature", sa.Text(), nullable=False),
        sa.Column("signed_at", TZ, nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runbook_runs.id"],
                                name=op.f("fk_golive_signatures_run_id_runbook_runs")),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_golive_signatures")),
    )
    for stmt in _guards(op.get_bind().dialect.name):
        op.execute(stmt)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        for t in (*NO_DELETE, "roster_events"):
            op.execute(f"DROP TRIGGER IF EXISTS trg_{t}_guard ON {t}")
        op.execute("DROP FUNCTION IF EXISTS payops_refuse_change()")
    else:
        for t in (*NO_DELETE, "roster_events"):
            for what in ("delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS trg_{t}_no_{what}")
    op.drop_table("golive_signatures")
    op.drop_table("roster_events")
    op.drop_table("approver_keys")
    op.drop_table("approver_roles")
    op.drop_table("approver_people")
    # signed approvals have no place in the old schema; legacy rows stay
    op.execute("DELETE FROM approvals WHERE kind <> 'unsigned'")
    with op.batch_alter_table("approvals", schema=None) as batch_op:
        batch_op.drop_constraint("uq_approvals_params_hash_role_kind", type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_approvals_params_hash_role"), ["params_hash", "role"])
        for name in ("signature", "statement", "key_fingerprint", "kind"):
            batch_op.drop_column(name)
