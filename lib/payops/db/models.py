"""SQLAlchemy 2.0 models: the reference ledger schema plus payops' own state.

The runner's state and the approver roster are Core tables in :mod:`payops.db.tables` (the quick
commands query them without the ORM); their classes here are mapped onto those tables (``__table__``).

Amounts are BIGINT minor units with a 3-letter currency column, everywhere. Timestamps are stored
as timezone-aware UTC. UUIDs are stored as 36-character strings so SQLite and PostgreSQL agree.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from payops.db import tables
from payops.db.tables import NAMING, UUID, UTCDateTime, utcnow  # noqa: F401  (NAMING: re-exported, its home is tables)


class Base(DeclarativeBase):
    metadata = tables.metadata


# --- the reference ledger ----------------------------------------------------------------------
class Studio(Base):
    __tablename__ = "studios"
    id: Mapped[str] = mapped_column(UUID, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    stripe_account_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    reserve_minimum: Mapped[int] = mapped_column(BigInteger, default=0)
    charges_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    payouts_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PayoutRun(Base):
    __tablename__ = "payout_runs"
    id: Mapped[str] = mapped_column(UUID, primary_key=True)
    cycle_date: Mapped[date] = mapped_column(Date, unique=True)
    status: Mapped[str] = mapped_column(String(16))  # running · completed · failed · partial
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    studios_scheduled: Mapped[int] = mapped_column(Integer, default=0)
    studios_paid: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    currency: Mapped[str | None] = mapped_column(String(3))
    # 0003: the cycle engine's bookkeeping
    runbook_run_id: Mapped[str | None] = mapped_column(UUID)  # the runner's run executing (or that executed) it
    studios_skipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    studios_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    totals_json: Mapped[str | None] = mapped_column(Text)  # {"CAD": minor units, …} transferred per currency
    failure_reason: Mapped[str | None] = mapped_column(Text)


class LedgerPayout(Base):
    __tablename__ = "ledger_payouts"
    id: Mapped[str] = mapped_column(UUID, primary_key=True)  # = ledger_payout_id
    run_id: Mapped[str | None] = mapped_column(ForeignKey("payout_runs.id"))
    studio_id: Mapped[str] = mapped_column(ForeignKey("studios.id"), index=True)
    gross: Mapped[int] = mapped_column(BigInteger)
    fee: Mapped[int] = mapped_column(BigInteger)
    reserve: Mapped[int] = mapped_column(BigInteger)
    net: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # scheduled · pending · transferred · paid · failed · manual
    status: Mapped[str] = mapped_column(String(16), index=True)
    stripe_transfer_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # 0003: the rest of the chain and why it stopped
    stripe_destination_payment_id: Mapped[str | None] = mapped_column(String(64), index=True)
    stripe_payout_id: Mapped[str | None] = mapped_column(String(64), index=True)
    failure_code: Mapped[str | None] = mapped_column(String(64))
    failure_reason: Mapped[str | None] = mapped_column(Text)


class StudioEarning(Base):
    """What a studio earned (a sale's share, an adjustment), waiting for a payout cycle.

    ``ledger_payout_id`` is NULL until a cycle allocates the row to a ledger payout; a skipped studio's
    rows stay NULL and are carried to the next cycle."""

    __tablename__ = "studio_earnings"
    id: Mapped[str] = mapped_column(UUID, primary_key=True)
    studio_id: Mapped[str] = mapped_column(ForeignKey("studios.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)  # minor units; negative for an adjustment
    currency: Mapped[str] = mapped_column(String(3))
    earned_at: Mapped[datetime] = mapped_column(UTCDateTime)
    source: Mapped[str] = mapped_column(String(32))  # sale · adjustment · payment_intent
    source_ref: Mapped[str | None] = mapped_column(String(255), unique=True)  # e.g. pi_… (one row per charge)
    ledger_payout_id: Mapped[str | None] = mapped_column(ForeignKey("ledger_payouts.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PayoutSkip(Base):
    """A studio a cycle did not pay, and why; its earnings were carried to the next cycle."""

    __tablename__ = "payout_skips"
    __table_args__ = (UniqueConstraint("payout_run_id", "studio_id", "currency"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    payout_run_id: Mapped[str] = mapped_column(ForeignKey("payout_runs.id"), index=True)
    studio_id: Mapped[str] = mapped_column(ForeignKey("studios.id"))
    gross: Mapped[int] = mapped_column(BigInteger)
    net: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    code: Mapped[str] = mapped_column(String(32))  # below_threshold · not_eligible · no_account · currency
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEvent(Base):
    """Every Stripe event the receiver accepted, once (primary key = Stripe's event id)."""

    __tablename__ = "webhook_events"
    id: Mapped[str] = mapped_column(String(255), primary_key=True)  # evt_…
    type: Mapped[str] = mapped_column(String(64), index=True)
    account: Mapped[str | None] = mapped_column(String(64))
    livemode: Mapped[bool] = mapped_column(Boolean, default=False)
    object_id: Mapped[str | None] = mapped_column(String(255))
    created: Mapped[int | None] = mapped_column(BigInteger)  # Stripe's event.created (unix seconds)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    outcome: Mapped[str] = mapped_column(Text)  # what the receiver changed ("2 ledger payouts → paid")
    payload_sha256: Mapped[str] = mapped_column(String(64))
    # "webhook" (a signed delivery) or "replay" (fetched from Stripe by id after a refused delivery) (0007)
    delivery: Mapped[str] = mapped_column(String(16), default="webhook", server_default="webhook")


class WebhookFailure(Base):
    """A delivery the receiver refused before reading it (bad signature, not an event, wrong mode) (0007).
    ``event_id`` / ``event_type`` are what the unverified payload claims: a lead for a replay, never applied."""

    __tablename__ = "webhook_failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # signature · payload · mode
    reason: Mapped[str] = mapped_column(Text)
    event_id: Mapped[str | None] = mapped_column(String(255), index=True)
    event_type: Mapped[str | None] = mapped_column(String(64))
    account: Mapped[str | None] = mapped_column(String(64))
    payload_sha256: Mapped[str] = mapped_column(String(64))
    replayed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    replay_outcome: Mapped[str | None] = mapped_column(Text)


class ScheduledExecution(Base):
    """One scheduler slot of one job. The unique (job, slot_at) is what makes "never twice" hold
    across restarts and across two schedulers started by mistake."""

    __tablename__ = "scheduled_executions"
    __table_args__ = (UniqueConstraint("job", "slot_at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job: Mapped[str] = mapped_column(String(64))
    slot_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))  # running · succeeded · failed · missed · interrupted
    owner: Mapped[str | None] = mapped_column(String(128))  # host:pid of the scheduler
    runbook_run_id: Mapped[str | None] = mapped_column(UUID)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    error: Mapped[str | None] = mapped_column(Text)


class OpsFlag(Base):
    """Operational switches, e.g. ``payout_cycle_disabled`` (the rehearsal's disable switch)."""

    __tablename__ = "ops_flags"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    reason: Mapped[str | None] = mapped_column(Text)
    set_by: Mapped[str | None] = mapped_column(String(64))
    set_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


# --- the SOP's audit table ---------------------------------------------------------------------
class ManualPayout(Base):
    __tablename__ = "manual_payouts"
    __table__ = tables.manual_payouts
    id: Mapped[int]
    run_id: Mapped[str]
    incident_id: Mapped[str]
    studio_id: Mapped[str]
    studio_name: Mapped[str]
    ledger_payout_id: Mapped[str]
    amount: Mapped[int]
    currency: Mapped[str]
    reserve_after: Mapped[int]
    reason: Mapped[str]
    destination_account: Mapped[str]
    notes: Mapped[str | None]
    stripe_transfer_id: Mapped[str]
    idempotency_key: Mapped[str]
    stripe_request_id: Mapped[str | None]
    approver_ops_id: Mapped[str]
    approver_finance_id: Mapped[str]
    operator: Mapped[str]
    is_rehearsal: Mapped[bool]
    status: Mapped[str]
    created_at: Mapped[datetime]
    transferred_at: Mapped[datetime | None]
    settled_at: Mapped[datetime | None]
    archive_manifest_sha256: Mapped[str | None]


# --- the runner's own state --------------------------------------------------------------------
class RunbookRun(Base):
    __tablename__ = "runbook_runs"
    __table__ = tables.runbook_runs
    id: Mapped[str]
    sop: Mapped[str]
    mode: Mapped[str]
    status: Mapped[str]
    params_json: Mapped[str]
    params_hash: Mapped[str]
    subject_key: Mapped[str | None]
    parent_run_id: Mapped[str | None]
    operator: Mapped[str | None]
    output_dir: Mapped[str | None]
    error: Mapped[str | None]
    failed_step: Mapped[str | None]
    manifest_sha256: Mapped[str | None]
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    detected_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None]
    lease_expires_at: Mapped[datetime | None]


class RunbookStep(Base):
    __tablename__ = "runbook_steps"
    __table__ = tables.runbook_steps
    id: Mapped[int]
    run_id: Mapped[str]
    step: Mapped[str]
    position: Mapped[int]
    status: Mapped[str]
    attempts: Mapped[int]
    notebook_path: Mapped[str | None]
    result_json: Mapped[str | None]
    error: Mapped[str | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class ArchiveSeal(Base):
    """One sealed manifest, recorded when it was sealed (#19): ``payops archive verify`` holds the archive against
    these rows — a run recorded as sealed whose manifest or chain line is gone (even the newest) is named."""

    __tablename__ = "archive_seals"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    output_root: Mapped[str] = mapped_column(Text, index=True)  # absolute, as sealed
    manifest_path: Mapped[str] = mapped_column(Text)  # relative to output_root
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    chain_seq: Mapped[int] = mapped_column(Integer)  # its position in CHAIN.jsonl
    prev_sha256: Mapped[str | None] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(UUID, index=True)
    sop: Mapped[str | None] = mapped_column(String(64))
    sealed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ArchiveAnchor(Base):
    """The chain head anchored outside the archive folder (#19): ``kind`` db rows are the database anchor;
    file and slack rows log where else the head went (``status`` ok · failed, ``error``). ``target`` is a
    path or a channel name, never a webhook URL."""

    __tablename__ = "archive_anchors"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    output_root: Mapped[str] = mapped_column(Text, index=True)
    kind: Mapped[str] = mapped_column(String(16))  # db · file · slack
    target: Mapped[str | None] = mapped_column(Text)
    chain_seq: Mapped[int] = mapped_column(Integer)
    manifest_path: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16))  # ok · failed
    error: Mapped[str | None] = mapped_column(Text)
    anchored_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Approval(Base):
    """One approval of one parameter set. ``kind`` ``sshsig``: a signed statement checked against the
    roster (0004); ``unsigned``: recorded before signatures existed — shown as legacy, never counted."""

    __tablename__ = "approvals"
    __table__ = tables.approvals
    id: Mapped[int]
    run_id: Mapped[str]
    params_hash: Mapped[str]
    role: Mapped[str]
    approver_id: Mapped[str]
    decided_at: Mapped[datetime]
    note: Mapped[str | None]
    kind: Mapped[str]
    key_fingerprint: Mapped[str | None]
    statement: Mapped[str | None]
    signature: Mapped[str | None]


# --- the approver roster (0004): rows are revoked, never deleted; every change is a roster event --------
class ApproverPerson(Base):
    __tablename__ = "approver_people"
    __table__ = tables.approver_people
    id: Mapped[str]
    name: Mapped[str]
    test_only: Mapped[bool]
    created_at: Mapped[datetime]
    created_by: Mapped[str]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None]
    revoke_reason: Mapped[str | None]


class ApproverRole(Base):
    """A role held by a person over a window [granted_at, revoked_at)."""

    __tablename__ = "approver_roles"
    __table__ = tables.approver_roles
    id: Mapped[int]
    person_id: Mapped[str]
    role: Mapped[str]
    granted_at: Mapped[datetime]
    granted_by: Mapped[str]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None]


class ApproverKey(Base):
    """An SSH public key of a person, active over [added_at, revoked_at)."""

    __tablename__ = "approver_keys"
    __table__ = tables.approver_keys
    id: Mapped[int]
    person_id: Mapped[str]
    key_type: Mapped[str]
    public_key: Mapped[str]
    comment: Mapped[str | None]
    fingerprint: Mapped[str]
    added_at: Mapped[datetime]
    added_by: Mapped[str]
    revoked_at: Mapped[datetime | None]
    revoked_by: Mapped[str | None]
    revoke_reason: Mapped[str | None]


class RosterEvent(Base):
    """Append-only (database triggers refuse UPDATE and DELETE): who changed the roster, when, what."""

    __tablename__ = "roster_events"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(64))
    actor_login: Mapped[str] = mapped_column(String(200))  # OS user@host that ran the command
    action: Mapped[str] = mapped_column(String(32))
    person_id: Mapped[str] = mapped_column(UUID, index=True)
    detail_json: Mapped[str] = mapped_column(Text)


class GoLiveSignature(Base):
    """The operator's signed go-live statement for one live (or rehearsal) run."""

    __tablename__ = "golive_signatures"
    __table__ = tables.golive_signatures
    run_id: Mapped[str]
    params_hash: Mapped[str]
    person_id: Mapped[str]
    key_fingerprint: Mapped[str]
    statement: Mapped[str]
    signature: Mapped[str]
    signed_at: Mapped[datetime]


class TransferIntent(Base):
    """Write-ahead record of a money movement. One row per ledger payout: the database lock that
    makes a second concurrent run for the same ledger payout impossible."""

    __tablename__ = "transfer_intents"
    __table__ = tables.transfer_intents
    ledger_payout_id: Mapped[str]
    run_id: Mapped[str]
    idempotency_key: Mapped[str]
    amount: Mapped[int]
    currency: Mapped[str]
    destination: Mapped[str]
    status: Mapped[str]
    stripe_transfer_id: Mapped[str | None]
    stripe_request_id: Mapped[str | None]
    error: Mapped[str | None]
    attempts: Mapped[int]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# --- reconciliation, monitoring ----------------------------------------------------------------
class ReconRun(Base):
    __tablename__ = "recon_runs"
    id: Mapped[str] = mapped_column(UUID, primary_key=True)
    period_from: Mapped[date] = mapped_column(Date)
    period_to: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    preparer_id: Mapped[str | None] = mapped_column(UUID)
    approver_id: Mapped[str | None] = mapped_column(UUID)
    signed_off_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    params_hash: Mapped[str | None] = mapped_column(String(64))
    max_unexplained: Mapped[int | None] = mapped_column(Integer)  # threshold the run was judged against
    rows_total: Mapped[int | None] = mapped_column(Integer)
    breaks_total: Mapped[int | None] = mapped_column(Integer)


class ReconBreak(Base):
    __tablename__ = "recon_breaks"
    id: Mapped[str] = mapped_column(UUID, primary_key=True)
    recon_run_id: Mapped[str] = mapped_column(ForeignKey("recon_runs.id"), index=True)
    break_key: Mapped[str] = mapped_column(String(200), index=True)
    category: Mapped[str] = mapped_column(String(32))
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    first_seen: Mapped[date] = mapped_column(Date)
    explanation: Mapped[str | None] = mapped_column(Text)
    explained_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # evidence and the matcher's words (0002)
    ledger_payout_id: Mapped[str | None] = mapped_column(String(64))
    transfer_id: Mapped[str | None] = mapped_column(String(64))
    payout_id: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str | None] = mapped_column(Text)
    suggested_action: Mapped[str | None] = mapped_column(Text)
    explained_by: Mapped[str | None] = mapped_column(UUID)


class Credential(Base):
    """The credential inventory (0006): metadata and dates only, never a secret value.

    ``expires_at`` is a hard expiry (a certificate's notAfter), ``rotation_due_at`` a rotation date (a
    restricted key's policy date, or "now" after a real incident used it), ``issued_at`` when the current
    value was issued (a webhook signing secret's age counts from it). ``rotated_at`` is the last rotation.
    """

    __tablename__ = "credentials"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(32))
    name: Mapped[str] = mapped_column(String(128), unique=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # 0006: the monitor's inventory
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rotation_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rotation_due_reason: Mapped[str | None] = mapped_column(Text)
    owner: Mapped[str | None] = mapped_column(String(128))
    notes: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Incident(Base):
    """A checkout incident (``payops incident``): one scenario, its numbers at triage and at verification, the
    plan of its last dry run, the actions taken and its timeline. Open until the verification passes (0007)."""

    __tablename__ = "incidents"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # INC-…
    scenario: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)  # open · verified · closed
    alert: Mapped[str] = mapped_column(Text)
    operator: Mapped[str | None] = mapped_column(String(64))
    escalation_level: Mapped[int | None] = mapped_column(Integer)
    triage_json: Mapped[str | None] = mapped_column(Text)  # the numbers at triage (latest)
    verification_json: Mapped[str | None] = mapped_column(Text)  # the numbers and steps at verification (latest)
    plan_json: Mapped[str | None] = mapped_column(Text)  # what the last dry run listed for the live action
    plan_sha256: Mapped[str | None] = mapped_column(String(64))
    actions_json: Mapped[str] = mapped_column(Text, default="[]")
    timeline_json: Mapped[str] = mapped_column(Text, default="[]")
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    close_run_id: Mapped[str | None] = mapped_column(UUID)


class Alert(Base):
    """One episode of one monitored condition (0006): opened when a rule first sees it, resolved when the
    condition clears. ``open_key`` equals ``dedupe_key`` while open and is NULL once resolved, so the unique
    constraint allows one open episode per condition and any number of resolved ones."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    rule: Mapped[str] = mapped_column(String(32), index=True)
    dedupe_key: Mapped[str] = mapped_column(String(200), index=True)
    open_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    severity: Mapped[str] = mapped_column(String(8))  # SEV-2 · SEV-3 · SEV-4
    status: Mapped[str] = mapped_column(String(16), index=True)  # open · resolved
    summary: Mapped[str] = mapped_column(Text)
    details_json: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_reason: Mapped[str | None] = mapped_column(Text)
    pagerduty_dedup_key: Mapped[str | None] = mapped_column(String(255))
    jira_issue_key: Mapped[str | None] = mapped_column(String(64))


class AlertDelivery(Base):
    """What was (or is still to be) sent for an alert, one row per channel and action — the outbox.

    A row is written ``pending`` in the same transaction that opens, escalates or resolves the alert, then
    sent; a failed send stays ``pending`` (``attempts``, ``last_error``) and is retried by the next check.
    Unique (alert, channel, action): each reminder step, page and ticket goes out once."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (UniqueConstraint("alert_id", "channel", "action"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alerts.id"), index=True)
    channel: Mapped[str] = mapped_column(String(16))  # pagerduty · slack · slack_ops · jira · email
    action: Mapped[str] = mapped_column(String(32))  # trigger · resolve · notify · ticket · reminder-30d · resolved …
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending · sent · superseded
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    response: Mapped[str | None] = mapped_column(Text)  # PagerDuty dedup key, Jira issue key, SMTP reply, "200 ok"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


Index("ix_ledger_payouts_run_studio", LedgerPayout.run_id, LedgerPayout.studio_id, unique=True)
