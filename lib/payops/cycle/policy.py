"""The payout policy and its arithmetic, in integer minor units. Pure: no clock, no database.

- ``PLATFORM_FEE_PERCENT`` and ``PAYOUT_RESERVE_PERCENT`` are read as exact decimals with at most
  two decimal places ("15", "12.5", "2.25") and held as basis points; never as floats.
- The fee and the reserve are each rounded *down* to the minor unit (rounding never takes a cent
  from a studio); the net is what remains, so ``fee + reserve + net == gross`` always holds.
- A studio is paid when its net reaches ``PAYOUT_MIN_THRESHOLD_CENTS`` (minor units of the payout
  currency); below it the earnings are carried to the next cycle.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from payops.config import Settings
from payops.errors import ConfigError
from payops.money import MoneyError, normalize_currency

_PERCENT = re.compile(r"(\d{1,3})(?:\.(\d{1,2}))?")


def percent_to_bps(text: str, env_var: str) -> int:
    """``"12.5"`` → 1250 basis points. ConfigError naming ``env_var`` for anything else."""
    m = _PERCENT.fullmatch(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ConfigError(f"{env_var} {text!r} is not a percentage like 15 or 12.5 (at most two decimals)")
    bps = int(m.group(1)) * 100 + int((m.group(2) or "0").ljust(2, "0"))
    if bps > 10_000:
        raise ConfigError(f"{env_var} {text!r} is more than 100")
    return bps


@dataclass(frozen=True)
class Split:
    """One payout's parts, in minor units. ``fee + reserve + net == gross``."""

    gross: int
    fee: int
    reserve: int
    net: int


@dataclass(frozen=True)
class PayoutPolicy:
    fee_bps: int
    reserve_bps: int
    min_threshold: int  # minor units of the payout currency
    default_currency: str  # upper-case ISO

    def __post_init__(self) -> None:
        if not 0 <= self.fee_bps <= 10_000 or not 0 <= self.reserve_bps <= 10_000:
            raise ConfigError("fee and reserve must each be between 0 and 100 percent")
        if self.fee_bps + self.reserve_bps > 10_000:
            total = (self.fee_bps + self.reserve_bps) / 100
            raise ConfigError(f"PLATFORM_FEE_PERCENT + PAYOUT_RESERVE_PERCENT is {total:g}%: more than the gross")
        if self.min_threshold < 0:
            raise ConfigError("PAYOUT_MIN_THRESHOLD_CENTS must be >= 0")

    @classmethod
    def from_settings(cls, settings: Settings) -> PayoutPolicy:
        try:
            currency = normalize_currency(settings.platform_default_currency)
        except MoneyError as exc:
            raise ConfigError(f"PLATFORM_DEFAULT_CURRENCY: {exc}") from None
        return cls(
            fee_bps=percent_to_bps(settings.platform_fee_percent, "PLATFORM_FEE_PERCENT"),
            reserve_bps=percent_to_bps(settings.payout_reserve_percent, "PAYOUT_RESERVE_PERCENT"),
            min_threshold=settings.payout_min_threshold_cents,
            default_currency=currency,
        )

    def split(self, gross: int) -> Split:
        """Fee and reserve rounded down; a zero or negative gross (refunds exceeding sales) has no fee
        and no reserve, and nets to itself."""
        if isinstance(gross, bool) or not isinstance(gross, int):
            raise TypeError(f"gross must be an int of minor units, got {type(gross).__name__}")
        if gross <= 0:
            return Split(gross, 0, 0, gross)
        fee = gross * self.fee_bps // 10_000
        reserve = gross * self.reserve_bps // 10_000
        return Split(gross, fee, reserve, gross - fee - reserve)

    def describe(self) -> str:
        return (f"fee {self.fee_bps / 100:g}% · reserve {self.reserve_bps / 100:g}% (both rounded down) · "
                f"minimum payout {self.min_threshold} minor units · default currency {self.default_currency}")
