"""Settings from the environment only (pydantic-settings). Secrets never come from anywhere else.

Parameters describe the business action and are archived; settings describe the environment and
are not. Every variable here is listed in the README.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

STRIPE_API_DEFAULT = "https://api.stripe.com"
DEFAULT_SQLITE_URL = "sqlite:///var/payops.db"


def _env(*names: str) -> AliasChoices:
    return AliasChoices(*names)


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
        "0 14 * 1,4,7,10 2#2", validation_alias=_env("PAYOPS_REHEARSAL_CRON"),
        description="Quarterly fallback rehearsal (second Tuesday of Jan/Apr/Jul/Oct, 14:00 PAYOUT_TIMEZONE).",
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

    @model_validator(mode="after")
    def _absolute_paths(self) -> Settings:
        """Relative paths are resolved once, against the working directory of the process that reads
        them, so a notebook kernel started elsewhere still finds the same database and archive."""
        if self.database_url.startswith("sqlite:///") and not self.database_url.startswith("sqlite:////"):
            rel = self.database_url[len("sqlite:///"):]
            if rel and rel != ":memory:" and not rel.startswith("file:"):
                self.database_url = "sqlite:///" + str(Path(rel).resolve())
        self.output_dir = self.output_dir.resolve()
        if self.recon_cache_dir is not None:
            self.recon_cache_dir = self.recon_cache_dir.resolve()
        return self

    # -- helpers --------------------------------------------------------------------------------
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
        ):
            val = getattr(self, name)
            if val is not None and val.get_secret_value():
                out.append(val.get_secret_value())
        return out


@lru_cache(maxsize=1)
def _cached() -> Settings:
    return Settings()


def get_settings(*, fresh: bool = False) -> Settings:
    """The process's settings. ``fresh=True`` re-reads the environment (tests, long-lived hosts)."""
    if fresh:
        _cached.cache_clear()
    return _cached()
