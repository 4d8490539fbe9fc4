"""The tables the quick commands read and write, as SQLAlchemy Core ``Table`` objects — no ORM.

``payops approve``, ``payops runs list`` and ``payops runs show`` must start fast: importing
``sqlalchemy.orm`` and building the declarative classes of :mod:`payops.db.models` costs more than
those commands do. So the runner's state (runs, steps, approvals, go-live signatures, transfer
intents, the manual payouts audit table) and the approver roster are defined here, once, and the
mapped classes in :mod:`payops.db.models` are mapped onto these very tables (``__table__``): one
schema, one ``MetaData`` (:data:`metadata`, which ``models.Base`` uses), two ways to query it.

Contract: imports SQLAlchemy Core only — never ``sqlalchemy.orm``, never :mod:`payops.db.models`
(``tests/unit/test_quick_commands.py`` checks it). Amounts are BIGINT minor units with a 3-letter
currency column; timestamps timezone-aware UTC (:class:`UTCDateTime`); UUIDs 36-character strings.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Always timezone-aware UTC in Python, whatever the backend stores."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


UUID = String(36)

# --- the manual payout SOP's audit table -------------------------------------------------------------
manual_payouts = Table(
    "manual_payouts", metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("run_id", UUID, nullable=False, unique=True),
    Column("incident_id", String(64), nullable=False, index=True),
    Column("studio_id", UUID, nullable=False, index=True),
    Column("studio_name", String(200), nullable=False),
    Column("ledger_payout_id", UUID, nullable=False, unique=True),  # one manual payout per ledger payout
    Column("amount", BigInteger(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("reserve_after", BigInteger(), nullable=False),
    Column("reason", Text(), nullable=False),
    Column("destination_account", String(64), nullable=False),
    Column("notes", Text(), nullable=True),
    Column("stripe_transfer_id", String(64), nullable=False, unique=True),
    Column("idempotency_key", String(255), nullable=False),
    Column("stripe_request_id", String(64), nullable=True),
    Column("approver_ops_id", UUID, nullable=False),
    Column("approver_finance_id", UUID, nullable=False),
    Column("operator", String(64), nullable=False),
    Column("is_rehearsal", Boolean(), nullable=False, default=False),
    Column("status", String(16), nullable=False),  # transferred · settled · failed
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("transferred_at", UTCDateTime, nullable=True),
    Column("settled_at", UTCDateTime, nullable=True),
    Column("archive_manifest_sha256", String(64), nullable=True),
)

# --- the runner's own state ----------------------------------------------------------------------
runbook_runs = Table(
    "runbook_runs", metadata,
    Column("id", UUID, primary_key=True),
    Column("sop", String(64), nullable=False, index=True),
    Column("mode", String(16), nullable=False),  # dry-run · live · rehearsal
    Column("status", String(16), nullable=False, index=True),  # created · running · failed · succeeded
    Column("params_json", Text(), nullable=False),
    Column("params_hash", String(64), nullable=False, index=True),
    Column("subject_key", String(128), nullable=True, index=True),  # e.g. the ledger payout id
    Column("parent_run_id", UUID, nullable=True),
    Column("operator", String(64), nullable=True),
    Column("output_dir", Text(), nullable=True),
    Column("error", Text(), nullable=True),
    Column("failed_step", String(64), nullable=True),
    Column("manifest_sha256", String(64), nullable=True),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("detected_at", UTCDateTime, nullable=True),
    # who is executing the run now (host:pid) and until when; a dead or expired holder may be taken over
    Column("lease_owner", String(128), nullable=True),
    Column("lease_expires_at", UTCDateTime, nullable=True),
)

runbook_steps = Table(
    "runbook_steps", metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("run_id", UUID, ForeignKey("runbook_runs.id"), nullable=False, index=True),
    Column("step", String(64), nullable=False),
    Column("position", Integer(), nullable=False),
    Column("status", String(16), nullable=False),  # pending · running · succeeded · failed · skipped
    Column("attempts", Integer(), nullable=False, default=0),
    Column("notebook_path", Text(), nullable=True),
    Column("result_json", Text(), nullable=True),
    Column("error", Text(), nullable=True),
    Column("started_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    UniqueConstraint("run_id", "step"),
)

# One approval of one parameter set. ``kind`` ``sshsig``: a signed statement checked against the roster
# (0004); ``unsigned``: recorded before signatures existed — shown as legacy, never counted.
approvals = Table(
    "approvals", metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("run_id", UUID, ForeignKey("runbook_runs.id"), nullable=False, index=True),  # the run the statement named
    Column("params_hash", String(64), nullable=False, index=True),
    Column("role", String(16), nullable=False),  # ops · finance
    Column("approver_id", UUID, nullable=False),
    Column("decided_at", UTCDateTime, nullable=False, default=utcnow),
    Column("note", Text(), nullable=True),
    Column("kind", String(16), nullable=False, server_default="unsigned"),  # sshsig · unsigned (legacy)
    Column("key_fingerprint", String(100), nullable=True),
    Column("statement", Text(), nullable=True),
    Column("signature", Text(), nullable=True),
    UniqueConstraint("params_hash", "role", "kind"),
)

# --- the approver roster (0004): rows are revoked, never deleted; every change is a roster event --------
approver_people = Table(
    "approver_people", metadata,
    Column("id", UUID, primary_key=True),
    Column("name", String(200), nullable=False),
    Column("test_only", Boolean(), nullable=False, default=False),  # generated keys (demo, tests): never live
    Column("created_at", UTCDateTime, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_by", String(64), nullable=True),
    Column("revoke_reason", Text(), nullable=True),
)

# A role held by a person over a window [granted_at, revoked_at).
approver_roles = Table(
    "approver_roles", metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("person_id", UUID, ForeignKey("approver_people.id"), nullable=False, index=True),
    Column("role", String(16), nullable=False),  # ops · finance · operator
    Column("granted_at", UTCDateTime, nullable=False),
    Column("granted_by", String(64), nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_by", String(64), nullable=True),
)

# An SSH public key of a person, active over [added_at, revoked_at).
approver_keys = Table(
    "approver_keys", metadata,
    Column("id", Integer(), primary_key=True, autoincrement=True),
    Column("person_id", UUID, ForeignKey("approver_people.id"), nullable=False, index=True),
    Column("key_type", String(64), nullable=False),
    Column("public_key", Text(), nullable=False),  # base64 blob, as in a .pub file
    Column("comment", String(200), nullable=True),
    Column("fingerprint", String(100), nullable=False, unique=True),  # SHA256:… as ssh-keygen -l prints it
    Column("added_at", UTCDateTime, nullable=False),
    Column("added_by", String(64), nullable=False),
    Column("revoked_at", UTCDateTime, nullable=True),
    Column("revoked_by", String(64), nullable=True),
    Column("revoke_reason", Text(), nullable=True),
)

# The operator's signed go-live statement for one live (or rehearsal) run.
golive_signatures = Table(
    "golive_signatures", metadata,
    Column("run_id", UUID, ForeignKey("runbook_runs.id"), primary_key=True),
    Column("params_hash", String(64), nullable=False),
    Column("person_id", UUID, nullable=False),
    Column("key_fingerprint", String(100), nullable=False),
    Column("statement", Text(), nullable=False),
    Column("signature", Text(), nullable=False),
    Column("signed_at", UTCDateTime, nullable=False),
)

# Write-ahead record of a money movement. One row per ledger payout: the database lock that makes a
# second concurrent run for the same ledger payout impossible.
transfer_intents = Table(
    "transfer_intents", metadata,
    Column("ledger_payout_id", UUID, primary_key=True),
    Column("run_id", UUID, ForeignKey("runbook_runs.id"), nullable=False, index=True),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("amount", BigInteger(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("destination", String(64), nullable=False),
    # intent (about to call Stripe / outcome unknown) · created · failed (Stripe said no: no money moved)
    Column("status", String(16), nullable=False),
    Column("stripe_transfer_id", String(64), nullable=True, unique=True),
    Column("stripe_request_id", String(64), nullable=True),
    Column("error", Text(), nullable=True),
    Column("attempts", Integer(), nullable=False, default=0),
    Column("created_at", UTCDateTime, nullable=False, default=utcnow),
    Column("updated_at", UTCDateTime, nullable=False, default=utcnow, onupdate=utcnow),
)
