"""The rules' thresholds, read once from Settings and validated (a bad value is a ConfigError naming its
environment variable). Percentages are exact (basis points, never floats), like the payout policy's.

=====================================  =================================================  =========
what                                   variable                                           default
=====================================  =================================================  =========
a payout run lasting longer than       ``PAYOPS_MONITOR_MAX_RUN_MINUTES``                 30 min
studios processed below                ``PAYOPS_MONITOR_MIN_PROCESSED_PERCENT``           90 %
money moved, record missing after      ``PAYOPS_MONITOR_RECORD_MISSING_MINUTES``          10 min
fallback window                        ``PAYOPS_MONITOR_FALLBACK_WINDOW_DAYS``            30 days
manual payouts in the window above     ``PAYOPS_MONITOR_FALLBACK_MAX_COUNT``              1
fallback share of automated volume     ``PAYOPS_MONITOR_FALLBACK_MAX_SHARE_PERCENT``      5 %
  (in ``PLATFORM_DEFAULT_CURRENCY``, CAD)
credential Slack reminders at          ``PAYOPS_MONITOR_CREDENTIAL_REMINDER_DAYS``        30,14,7
credential page at                     ``PAYOPS_MONITOR_CREDENTIAL_PAGE_DAYS``            3 days
overdue credential reminder every      ``PAYOPS_MONITOR_OVERDUE_REMINDER_HOURS``          24 h
webhook signing secret maximum age     ``PAYOPS_WEBHOOK_SECRET_MAX_AGE_DAYS``             365 days
reserve buffer over the minimum        ``PAYOPS_MONITOR_RESERVE_BUFFER_PERCENT``          20 %
=====================================  =================================================  =========
"""

from __future__ import annotations

from dataclasses import dataclass, field

from payops.config import Settings
from payops.cycle.policy import PayoutPolicy, percent_to_bps
from payops.errors import ConfigError


def _days_list(text: str, env_var: str) -> tuple[int, ...]:
    try:
        days = tuple(sorted({int(x) for x in text.replace(" ", "").split(",") if x}, reverse=True))
    except ValueError:
        raise ConfigError(f"{env_var} {text!r} is not a list of whole days like 30,14,7") from None
    if not days or any(d <= 0 for d in days):
        raise ConfigError(f"{env_var} {text!r}: give at least one positive number of days, like 30,14,7")
    return days


@dataclass(frozen=True)
class Thresholds:
    """Every number the rules compare against."""

    max_run_minutes: int = 30
    min_processed_bps: int = 9_000
    record_missing_minutes: int = 10
    fallback_window_days: int = 30
    fallback_max_count: int = 1
    fallback_max_share_bps: int = 500
    fallback_currency: str = "CAD"
    reminder_days: tuple[int, ...] = (30, 14, 7)
    page_days: int = 3
    overdue_reminder_hours: int = 24
    webhook_secret_max_age_days: int = 365
    reserve_buffer_bps: int = 2_000
    policy: PayoutPolicy = field(default_factory=lambda: PayoutPolicy(
        fee_bps=1_500, reserve_bps=1_000, min_threshold=1_000, default_currency="CAD"))

    @classmethod
    def from_settings(cls, settings: Settings) -> Thresholds:
        policy = PayoutPolicy.from_settings(settings)
        reminders = _days_list(settings.monitor_credential_reminder_days, "PAYOPS_MONITOR_CREDENTIAL_REMINDER_DAYS")
        if settings.monitor_credential_page_days >= min(reminders):
            raise ConfigError(f"PAYOPS_MONITOR_CREDENTIAL_PAGE_DAYS {settings.monitor_credential_page_days} must be "
                              f"below the last Slack reminder ({min(reminders)} days)")
        return cls(
            max_run_minutes=settings.monitor_max_run_minutes,
            min_processed_bps=percent_to_bps(settings.monitor_min_processed_percent,
                                             "PAYOPS_MONITOR_MIN_PROCESSED_PERCENT"),
            record_missing_minutes=settings.monitor_record_missing_minutes,
            fallback_window_days=settings.monitor_fallback_window_days,
            fallback_max_count=settings.monitor_fallback_max_count,
            fallback_max_share_bps=percent_to_bps(settings.monitor_fallback_max_share_percent,
                                                  "PAYOPS_MONITOR_FALLBACK_MAX_SHARE_PERCENT"),
            fallback_currency=policy.default_currency,
            reminder_days=reminders,
            page_days=settings.monitor_credential_page_days,
            overdue_reminder_hours=settings.monitor_overdue_reminder_hours,
            webhook_secret_max_age_days=settings.webhook_secret_max_age_days,
            reserve_buffer_bps=percent_to_bps(settings.monitor_reserve_buffer_percent,
                                              "PAYOPS_MONITOR_RESERVE_BUFFER_PERCENT"),
            policy=policy,
        )

    @property
    def steps(self) -> tuple[int, ...]:
        """Every credential step, most distant first: the Slack reminders, then the page (30, 14, 7, 3)."""
        return (*self.reminder_days, self.page_days)


def pct(bps: int) -> str:
    """Basis points as a percentage for messages: 500 → ``5%``, 1250 → ``12.5%``."""
    return f"{bps / 100:g}%"
