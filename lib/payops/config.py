"""Settings from the environment only (pydantic-settings). Secrets never come from anywhere else.

Parameters describe the business action and are archived; settings describe the environment and
are not. Every variable here is listed in the README.
"""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlsplit

from pydantic import AliasChoices, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STRIPE_API_DEFAULT = "https://api.stripe.com"
DEFAULT_SQLITE_URL = "sqlite:///var/payops.db"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def _absolute_sqlite(url: str) -> str:
    """A relative SQLite file URL made absolute (against the working directory); other URLs unchanged."""
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        rel = url[len("sqlite:///"):]
        if rel and rel != ":memory:" and not rel.startswith("file:"):
            return "sqlite:///" + str(Path(rel).resolve())
    return url


class Settings(BaseSettings):
    """Everything payops reads from the environment."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", case_sensitive=False)

    # --- Stripe -----------------------------------------------------------------------------
    stripe_fallback_secret_key: SecretStr | None = Field(
        None, validation_alias=_env("STRIPE_FALLBACK_SECRET_KEY"),
        description="The SOP's restricted key (rk_…): transfers write + balance read.",
    )
    stripe_secret_key: SecretStr | None = Field(
        None, validation_alias=_env("STRIPE_SECRET_KEY"),
        description="Full platform key, used by reconciliation, monitoring and the payout cycle.",
    )
    stripe_webhook_secret: SecretStr | None = Field(None, validation_alias=_env("STRIPE_WEBHOOK_SECRET"))
    stripe_api_base: str = Field(STRIPE_API_DEFAULT, validation_alias=_env("PAYOPS_STRIPE_API_BASE"))
    stripe_max_network_retries: int = Field(3, ge=0, le=10, validation_alias=_env("PAYOPS_STRIPE_MAX_RETRIES"))
    stripe_timeout_seconds: float = Field(30.0, gt=0, validation_alias=_env("PAYOPS_STRIPE_TIMEOUT"))
    environment: Literal["test", "live"] = Field(
        "test", validation_alias=_env("PAYOPS_ENVIRONMENT"),
        description="Which Stripe mode this deployment is for; keys of the other mode are refused.",
    )

    # --- storage ----------------------------------------------------------------------------
    database_url: str = Field(DEFAULT_SQLITE_URL, validation_alias=_env("PAYOPS_DATABASE_URL"))
    output_dir: Path = Field(Path("outputs"), validation_alias=_env("PAYOPS_OUTPUT_DIR"))
    recon_cache_dir: Path | None = Field(
        None, validation_alias=_env("PAYOPS_RECON_CACHE_DIR"),
        description="Raw Stripe pages cached per reconciliation period (never archived); "
                    "default <project>/var/recon-cache.",
    )
    archive_group: str | None = Field(
        None, validation_alias=_env("PAYOPS_ARCHIVE_GROUP"),
        description="Group (name or number) that may read the archive, for auditors: files 0640, folders 2750. "
                    "Unset: owner only (0600/0700).",
    )
    archive_anchors: str = Field(
        "db", validation_alias=_env("PAYOPS_ARCHIVE_ANCHORS"),
        description="Where the chain head is anchored after each seal, comma-separated: db, file:PATH "
                    "(an append-only file outside the archive), slack (posted to the ops Slack channel).",
    )

    # --- people -----------------------------------------------------------------------------
    operator_id: str | None = Field(
        None, validation_alias=_env("PAYOPS_OPERATOR_ID"),
        description="UUID of the person running a runbook (default for --operator).",
    )
    ssh_keygen: str = Field(
        "ssh-keygen", validation_alias=_env("PAYOPS_SSH_KEYGEN"),
        description="OpenSSH's ssh-keygen, which signs and verifies approvals (a name on PATH or a path).",
    )
    incident_url_template: str = Field(
        "https://incidents.example.com/{incident_id}", validation_alias=_env("PAYOPS_INCIDENT_URL_TEMPLATE")
    )
    sla_minutes: int = Field(45, gt=0, validation_alias=_env("PAYOPS_SLA_MINUTES"))

    # --- notifications ----------------------------------------------------------------------
    slack_webhook_url: SecretStr | None = Field(
        None, validation_alias=_env("PAYOPS_SLACK_WEBHOOK_URL", "SLACK_WEBHOOK_URL"),
        description="Incoming webhook for #payments-alerts.",
    )
    slack_channel: str = Field("#payments-alerts", validation_alias=_env("PAYOPS_SLACK_CHANNEL"))
    smtp_host: str = Field("localhost", validation_alias=_env("PAYOPS_SMTP_HOST", "SMTP_HOST"))
    smtp_port: int = Field(25, gt=0, lt=65536, validation_alias=_env("PAYOPS_SMTP_PORT", "SMTP_PORT"))
    smtp_user: str | None = Field(None, validation_alias=_env("PAYOPS_SMTP_USER", "SMTP_USER"))
    smtp_password: SecretStr | None = Field(
        None, validation_alias=_env("PAYOPS_SMTP_PASSWORD", "SMTP_PASSWORD")
    )
    smtp_starttls: bool = Field(False, validation_alias=_env("PAYOPS_SMTP_STARTTLS"))
    smtp_timeout_seconds: float = Field(15.0, gt=0, validation_alias=_env("PAYOPS_SMTP_TIMEOUT"))
    email_from: str = Field("payments-ops@example.com", validation_alias=_env("PAYOPS_EMAIL_FROM"))
    pagerduty_routing_key: SecretStr | None = Field(None, validation_alias=_env("PAGERDUTY_ROUTING_KEY"))

    # --- payout policy (go-live checklist) --------------------------------------------------
    payout_min_threshold_cents: int = Field(1000, ge=0, validation_alias=_env("PAYOUT_MIN_THRESHOLD_CENTS"))
    payout_reserve_percent: str = Field("10", validation_alias=_env("PAYOUT_RESERVE_PERCENT"))
    platform_fee_percent: str = Field("15", validation_alias=_env("PLATFORM_FEE_PERCENT"))
    platform_default_currency: str = Field("CAD", validation_alias=_env("PLATFORM_DEFAULT_CURRENCY"))
    payout_timezone: str = Field("UTC", validation_alias=_env("PAYOUT_TIMEZONE"))

    # --- the automated payout cycle -----------------------------------------------------------
    payout_schedule_cron: str = Field(
        "0 6 1,15 * *", validation_alias=_env("PAYOUT_SCHEDULE_CRON"),
        description="When cycles run, as cron in PAYOUT_TIMEZONE (1st and 15th at 06:00 by default).",
    )
    payout_cycle_disabled: bool = Field(
        False, validation_alias=_env("PAYOUT_CYCLE_DISABLED"),
        description="The disable switch: a cycle then fails on purpose and leaves its payouts pending.",
    )
    payout_cycle_concurrency: int = Field(4, ge=1, le=32, validation_alias=_env("PAYOPS_CYCLE_CONCURRENCY"))
    payout_stuck_after_minutes: int = Field(60, ge=1, validation_alias=_env("PAYOPS_CYCLE_STUCK_MINUTES"))
    pre_run_check_minutes_before: int = Field(60, ge=1, validation_alias=_env("PAYOPS_PRE_RUN_MINUTES_BEFORE"))
    post_run_check_minutes_after: int = Field(30, ge=1, validation_alias=_env("PAYOPS_POST_RUN_MINUTES_AFTER"))
    rehearsal_schedule_cron: str = Field(
        "0 14 * 2,5,8,11 2#1", validation_alias=_env("PAYOPS_REHEARSAL_CRON"),
        description="Quarterly fallback rehearsal (first Tuesday of Feb/May/Aug/Nov, 14:00 PAYOUT_TIMEZONE: "
                    "at least 7 days before the next live cycle — a rule that is not is refused).",
    )
    # --- the rehearsal world (payops rehearse): its own database, channel, alias and archive --------------
    rehearsal_database_url: str | None = Field(
        None, validation_alias=_env("PAYOPS_REHEARSAL_DATABASE_URL"),
        description="The rehearsal's own database: a SQLite file or a PostgreSQL URL whose search_path is the "
                    "`rehearsal` schema; never the production PAYOPS_DATABASE_URL.",
    )
    rehearsal_output_dir: Path | None = Field(
        None, validation_alias=_env("PAYOPS_REHEARSAL_OUTPUT_DIR"),
        description="The rehearsal's archive (its own hash chain); default <PAYOPS_OUTPUT_DIR>-rehearsal.",
    )
    rehearsal_slack_webhook_url: SecretStr | None = Field(
        None, validation_alias=_env("PAYOPS_REHEARSAL_SLACK_WEBHOOK_URL"),
        description="Incoming webhook for #payments-rehearsal (never the #payments-alerts one).",
    )
    rehearsal_slack_channel: str = Field("#payments-rehearsal", validation_alias=_env("PAYOPS_REHEARSAL_SLACK_CHANNEL"))
    rehearsal_email_to: str = Field(
        "payments-rehearsal@example.com", validation_alias=_env("PAYOPS_REHEARSAL_EMAIL_TO"),
        description="The rehearsal's email alias: the rehearsal studios' address, so every email lands there.",
    )
    recon_schedule_cron: str = Field(
        "0 9 4 * *", validation_alias=_env("PAYOPS_RECON_CRON"),
        description="Monthly reconciliation of the previous calendar month (default the 4th, 09:00 "
                    "PAYOUT_TIMEZONE: after its 3-day cut-off margin).",
    )
    recon_max_unexplained: int = Field(
        0, ge=0, validation_alias=_env("PAYOPS_RECON_MAX_UNEXPLAINED"),
        description="The scheduled reconciliation fails (and alerts Slack) above this many unexplained breaks.",
    )
    cron_secret_key: SecretStr | None = Field(
        None, validation_alias=_env("CRON_SECRET_KEY"),
        description="Bearer token the trigger endpoint requires (POST /cron/payout-cycle).",
    )
    webhook_public_url: str | None = Field(
        None, validation_alias=_env("PAYOPS_WEBHOOK_URL"),
        description="The public URL of the webhook receiver, as registered in Stripe (go-live check).",
    )

    # --- monitoring (payops monitor; defaults are the issue's thresholds) ---------------------------
    monitor_schedule_cron: str = Field(
        "*/5 * * * *", validation_alias=_env("PAYOPS_MONITOR_CRON"),
        description="When the scheduler runs `payops monitor check` (cron, in PAYOUT_TIMEZONE).")
    monitor_max_run_minutes: int = Field(30, ge=1, validation_alias=_env("PAYOPS_MONITOR_MAX_RUN_MINUTES"))
    monitor_min_processed_percent: str = Field("90", validation_alias=_env("PAYOPS_MONITOR_MIN_PROCESSED_PERCENT"))
    monitor_record_missing_minutes: int = Field(
        10, ge=1, validation_alias=_env("PAYOPS_MONITOR_RECORD_MISSING_MINUTES"))
    monitor_fallback_window_days: int = Field(30, ge=1, validation_alias=_env("PAYOPS_MONITOR_FALLBACK_WINDOW_DAYS"))
    monitor_fallback_max_count: int = Field(1, ge=0, validation_alias=_env("PAYOPS_MONITOR_FALLBACK_MAX_COUNT"))
    monitor_fallback_max_share_percent: str = Field(
        "5", validation_alias=_env("PAYOPS_MONITOR_FALLBACK_MAX_SHARE_PERCENT"))
    monitor_credential_reminder_days: str = Field(
        "30,14,7", validation_alias=_env("PAYOPS_MONITOR_CREDENTIAL_REMINDER_DAYS"))
    monitor_credential_page_days: int = Field(3, ge=0, validation_alias=_env("PAYOPS_MONITOR_CREDENTIAL_PAGE_DAYS"))
    monitor_overdue_reminder_hours: int = Field(
        24, ge=1, validation_alias=_env("PAYOPS_MONITOR_OVERDUE_REMINDER_HOURS"))
    webhook_secret_max_age_days: int = Field(365, ge=1, validation_alias=_env("PAYOPS_WEBHOOK_SECRET_MAX_AGE_DAYS"))
    monitor_reserve_buffer_percent: str = Field("20", validation_alias=_env("PAYOPS_MONITOR_RESERVE_BUFFER_PERCENT"))
    pagerduty_events_url: str = Field("https://events.pagerduty.com",
                                      validation_alias=_env("PAYOPS_PAGERDUTY_EVENTS_URL"))
    jira_url: str | None = Field(None, validation_alias=_env("PAYOPS_JIRA_URL"))
    jira_user: str | None = Field(None, validation_alias=_env("PAYOPS_JIRA_USER"))
    jira_token: SecretStr | None = Field(None, validation_alias=_env("PAYOPS_JIRA_TOKEN"))
    jira_project: str = Field("OPS", validation_alias=_env("PAYOPS_JIRA_PROJECT"))
    jira_issue_type: str = Field("Task", validation_alias=_env("PAYOPS_JIRA_ISSUE_TYPE"))
    ops_slack_webhook_url: SecretStr | None = Field(None, validation_alias=_env("PAYOPS_OPS_SLACK_WEBHOOK_URL"))
    ops_slack_channel: str = Field("#payments-ops", validation_alias=_env("PAYOPS_OPS_SLACK_CHANNEL"))
    monitor_email_to: str = Field("payments-ops@example.com", validation_alias=_env("PAYOPS_MONITOR_EMAIL_TO"))
    # --- checkout incidents (payops incident …): the checkout systems and the runbook's thresholds ---
    redis_url: str = Field("redis://127.0.0.1:6379/0", validation_alias=_env("PAYOPS_REDIS_URL"),
                           description="Redis holding the payment-window keys (payment:window:{sessionId}).")
    redis_key_prefix: str = Field("", validation_alias=_env("PAYOPS_REDIS_KEY_PREFIX"),
                                  description="Namespace before payment:window:{sessionId} (e.g. 'prod:').")
    amqp_url: str = Field("amqp://guest:guest@127.0.0.1:5672/%2F", validation_alias=_env("PAYOPS_AMQP_URL"),
                          description="RabbitMQ broker of the checkout retry queue.")
    queue_backend: Literal["rabbitmq", "sqs"] = Field("rabbitmq", validation_alias=_env("PAYOPS_QUEUE_BACKEND"))
    retry_queue: str = Field("checkout.retry", validation_alias=_env("PAYOPS_RETRY_QUEUE"))
    dead_letter_queue: str = Field("checkout.retry.dlq", validation_alias=_env("PAYOPS_DEAD_LETTER_QUEUE"))
    s3_endpoint_url: str | None = Field(
        None, validation_alias=_env("PAYOPS_S3_ENDPOINT_URL"),
        description="S3-compatible endpoint of the receipts bucket (unset: AWS S3 itself).")
    s3_bucket: str = Field("payops-receipts", validation_alias=_env("PAYOPS_S3_BUCKET"))
    s3_receipts_prefix: str = Field("receipts/", validation_alias=_env("PAYOPS_S3_RECEIPTS_PREFIX"))
    s3_region: str = Field("us-east-1", validation_alias=_env("PAYOPS_S3_REGION"))
    s3_access_key_id: str | None = Field(None, validation_alias=_env("PAYOPS_S3_ACCESS_KEY_ID"))
    s3_secret_access_key: SecretStr | None = Field(None, validation_alias=_env("PAYOPS_S3_SECRET_ACCESS_KEY"))
    receipt_url_ttl_seconds: int = Field(7 * 86400, ge=60, le=7 * 86400,
                                         validation_alias=_env("PAYOPS_RECEIPT_URL_TTL"))
    service_timeout_seconds: float = Field(5.0, gt=0, validation_alias=_env("PAYOPS_SERVICE_TIMEOUT"))
    incident_success_threshold: Decimal = Field(Decimal("97"), ge=0, le=100,
                                                validation_alias=_env("PAYOPS_INCIDENT_SUCCESS_THRESHOLD"))
    incident_success_window_minutes: int = Field(30, ge=1, validation_alias=_env("PAYOPS_INCIDENT_SUCCESS_WINDOW"))
    incident_pending_hours: int = Field(24, ge=1, validation_alias=_env("PAYOPS_INCIDENT_PENDING_HOURS"))
    incident_retry_depth: int = Field(200, ge=0, validation_alias=_env("PAYOPS_INCIDENT_RETRY_DEPTH"))
    incident_retry_age_minutes: int = Field(30, ge=0, validation_alias=_env("PAYOPS_INCIDENT_RETRY_AGE"))
    incident_retry_ok_depth: int = Field(10, ge=1, validation_alias=_env("PAYOPS_INCIDENT_RETRY_OK_DEPTH"))
    incident_webhook_lag_seconds: int = Field(60, ge=1, validation_alias=_env("PAYOPS_INCIDENT_WEBHOOK_LAG"))
    incident_severe_success: Decimal = Field(Decimal("90"), ge=0, le=100,
                                             validation_alias=_env("PAYOPS_INCIDENT_SEVERE_SUCCESS"))
    incident_escalate_customers: int = Field(25, ge=1, validation_alias=_env("PAYOPS_INCIDENT_ESCALATE_CUSTOMERS"))

    @field_validator("archive_anchors")
    @classmethod
    def _anchor_list(cls, value: str) -> str:
        """Each entry is ``db``, ``slack`` or ``file:PATH``; relative paths are resolved like the others."""
        out = []
        for raw in value.split(","):
            entry = raw.strip()
            if not entry:
                continue
            if entry in ("db", "slack"):
                out.append(entry)
            elif entry.startswith("file:") and entry[5:].strip():
                out.append("file:" + str(Path(entry[5:].strip()).expanduser().resolve()))
            else:
                raise ValueError(f"PAYOPS_ARCHIVE_ANCHORS: {entry!r} is not db, slack or file:PATH")
        return ",".join(dict.fromkeys(out))

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        """Relative paths are resolved once, against the working directory of the process that reads
        them, so a notebook kernel started elsewhere still finds the same database and archive."""
        self.database_url = _absolute_sqlite(self.database_url)
        if self.rehearsal_database_url:
            self.rehearsal_database_url = _absolute_sqlite(self.rehearsal_database_url)
        self.output_dir = self.output_dir.resolve()
        if self.rehearsal_output_dir is not None:
            self.rehearsal_output_dir = self.rehearsal_output_dir.resolve()
        if self.recon_cache_dir is not None:
            self.recon_cache_dir = self.recon_cache_dir.resolve()
        return self

    # -- helpers --------------------------------------------------------------------------------
    @property
    def archive_anchor_list(self) -> list[str]:
        """``PAYOPS_ARCHIVE_ANCHORS`` as entries: ``db``, ``slack``, ``file:/absolute/path``."""
        return [e for e in self.archive_anchors.split(",") if e]

    @property
    def uses_stripe_api(self) -> bool:
        """True when pointed at Stripe itself rather than the local sandbox."""
        return self.stripe_api_base.rstrip("/") == STRIPE_API_DEFAULT

    def secret_values(self) -> list[str]:
        """Every configured secret's plain value — what the archive scanner must never find."""
        out: list[str] = []
        for name in (
            "stripe_fallback_secret_key", "stripe_secret_key", "stripe_webhook_secret",
            "slack_webhook_url", "smtp_password", "pagerduty_routing_key", "cron_secret_key",
            "jira_token", "ops_slack_webhook_url", "rehearsal_slack_webhook_url",
        ):
            val = getattr(self, name)
            if val is not None and val.get_secret_value():
                out.append(val.get_secret_value())
        if self.s3_secret_access_key is not None and self.s3_secret_access_key.get_secret_value():
            out.append(self.s3_secret_access_key.get_secret_value())
        for url in (self.redis_url, self.amqp_url):  # a password in a service URL is a secret too …
            password = unquote(urlsplit(url).password or "")
            if password and password != "guest":  # noqa: S105 — … but RabbitMQ's built-in guest (loopback-only) is not
                out.append(password)
        return out


@lru_cache(maxsize=1)
def _cached() -> Settings:
    return Settings()


def get_settings(*, fresh: bool = False) -> Settings:
    """The process's settings. ``fresh=True`` re-reads the environment (tests, long-lived hosts)."""
    if fresh:
        _cached.cache_clear()
    return _cached()
