"""Money: integer minor units plus an ISO 4217 currency. Never a float.

``Money.parse("875.50", "CAD")`` → ``Money(87550, "CAD")``. Strings only: a ``float`` is refused,
because by the time a value is a float it may already be wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

# ISO 4217 currencies Stripe settles in, with their minor-unit exponent. Stripe treats a few
# three-decimal currencies as two-decimal on the wire; payops follows ISO here and Stripe for
# amounts it reads back (both are integers in minor units).
_ZERO_DECIMAL = {
    "BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV",
    "XAF", "XOF", "XPF", "ISK",
}
_THREE_DECIMAL = {"BHD", "JOD", "KWD", "OMR", "TND"}
_TWO_DECIMAL = {
    "AED", "AFN", "ALL", "AMD", "ANG", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BGN",
    "BMD", "BND", "BOB", "BRL", "BSD", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF", "CNY", "COP", "CRC",
    "CVE", "CZK", "DKK", "DOP", "DZD", "EGP", "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GIP", "GMD",
    "GTQ", "GYD", "HKD", "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "JMD", "KES", "KGS", "KHR", "KYD",
    "KZT", "LAK", "LBP", "LKR", "LRD", "LSL", "MAD", "MDL", "MKD", "MMK", "MNT", "MOP", "MUR", "MVR",
    "MWK", "MXN", "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "PAB", "PEN", "PGK", "PHP",
    "PKR", "PLN", "QAR", "RON", "RSD", "RUB", "SAR", "SBD", "SCR", "SEK", "SGD", "SHP", "SLE", "SOS",
    "SRD", "STD", "SZL", "THB", "TJS", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "USD", "UYU", "UZS",
    "WST", "XCD", "YER", "ZAR", "ZMW",
}
CURRENCY_EXPONENT: dict[str, int] = (
    {c: 2 for c in _TWO_DECIMAL} | {c: 0 for c in _ZERO_DECIMAL} | {c: 3 for c in _THREE_DECIMAL}
)

_AMOUNT_RE = re.compile(r"(?P<int>0|[1-9][0-9]*)(?:\.(?P<frac>[0-9]+))?")  # used with fullmatch
# Stripe's largest amount is 8 digits of major units for most currencies; a generous bound that
# still catches a pasted account number or a unit mix-up.
MAX_MINOR_UNITS = 99_999_999_999


class MoneyError(ValueError):
    """A value that is not a valid amount or currency. The message says what is wrong."""


def normalize_currency(code: Any) -> str:
    """Upper-case ISO 4217 code, or MoneyError naming what is wrong."""
    if not isinstance(code, str):
        raise MoneyError(f"currency must be a 3-letter ISO 4217 code, got {type(code).__name__}")
    c = code.strip().upper()
    if c != code.strip().upper() or not re.fullmatch(r"[A-Z]{3}", c):
        raise MoneyError(f"currency must be a 3-letter ISO 4217 code, got {code!r}")
    if c not in CURRENCY_EXPONENT:
        raise MoneyError(f"unknown currency {code!r} (not an ISO 4217 code Stripe settles in)")
    return c


def exponent(currency: str) -> int:
    return CURRENCY_EXPONENT[normalize_currency(currency)]


@dataclass(frozen=True, order=False)
class Money:
    """An exact amount: ``amount`` in minor units (cents) and an upper-case ISO currency."""

    amount: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise MoneyError(f"amount must be an integer number of minor units, got {self.amount!r}")
        object.__setattr__(self, "currency", normalize_currency(self.currency))
        if abs(self.amount) > MAX_MINOR_UNITS:
            raise MoneyError(f"amount {self.amount} minor units is beyond any payout payops handles")

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: Any, currency: str, *, allow_negative: bool = False) -> Money:
        """Parse a decimal string in major units ("875.50") exactly. Refuses floats and excess precision."""
        cur = normalize_currency(currency)
        if isinstance(text, bool) or isinstance(text, float):
            raise MoneyError(
                f"amount must be given as a decimal string like '875.50', not a float ({text!r})"
            )
        if isinstance(text, int):
            text = str(text)
        if isinstance(text, Decimal):
            text = format(text, "f")
        if not isinstance(text, str):
            raise MoneyError(f"amount must be a decimal string, got {type(text).__name__}")
        raw = text.strip()
        negative = raw.startswith("-")
        if negative:
            raw = raw[1:]
        m = _AMOUNT_RE.fullmatch(raw)
        if not m:
            raise MoneyError(
                f"amount {text!r} is not a plain decimal like '875.50' "
                "(no signs, exponents, separators or currency symbols)"
            )
        exp = CURRENCY_EXPONENT[cur]
        frac = m.group("frac") or ""
        if len(frac) > exp:
            raise MoneyError(
                f"amount {text!r} has {len(frac)} decimal places; {cur} allows at most {exp}"
            )
        minor = int(m.group("int")) * 10**exp + (int(frac.ljust(exp, "0")) if exp else 0)
        if negative:
            if not allow_negative and minor != 0:
                raise MoneyError(f"amount {text!r} is negative")
            minor = -minor
        return cls(minor, cur)

    @classmethod
    def from_stripe(cls, amount: int, currency: str) -> Money:
        """Stripe sends integer minor units and a lower-case currency."""
        return cls(int(amount), currency)

    # -- presentation ---------------------------------------------------------------------------
    def decimal_str(self) -> str:
        """Major units as an exact decimal string: 87550 CAD → '875.50'."""
        exp = CURRENCY_EXPONENT[self.currency]
        sign = "-" if self.amount < 0 else ""
        q, r = divmod(abs(self.amount), 10**exp) if exp else (abs(self.amount), 0)
        return f"{sign}{q}" + (f".{r:0{exp}d}" if exp else "")

    def format(self) -> str:
        """Human form with thousands separators: '1,234.50 CAD'."""
        exp = CURRENCY_EXPONENT[self.currency]
        sign = "-" if self.amount < 0 else ""
        q, r = divmod(abs(self.amount), 10**exp) if exp else (abs(self.amount), 0)
        return f"{sign}{q:,}" + (f".{r:0{exp}d}" if exp else "") + f" {self.currency}"

    def __str__(self) -> str:
        return f"{self.decimal_str()} {self.currency}"

    @property
    def stripe_currency(self) -> str:
        return self.currency.lower()

    # -- arithmetic (same currency only) -------------------------------------------------------
    def _check(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise MoneyError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._check(other)
        return self.amount <= other.amount

    def __gt__(self, other: Money) -> bool:
        self._check(other)
        return self.amount > other.amount

    def __ge__(self, other: Money) -> bool:
        self._check(other)
        return self.amount >= other.amount

    def is_zero(self) -> bool:
        return self.amount == 0


def totals_by_currency(amounts: Iterable[tuple[str, int]]) -> dict[str, int]:
    """Sum ``(currency, minor units)`` pairs per currency; currencies in alphabetical order.

    Amounts of different currencies are never added together, and a float is refused (as in ``Money``).
    """
    out: dict[str, int] = {}
    for currency, amount in amounts:
        if isinstance(amount, bool) or not isinstance(amount, int):
            raise MoneyError(f"amount must be integer minor units, got {type(amount).__name__} {amount!r}")
        out[currency] = out.get(currency, 0) + amount
    return dict(sorted(out.items()))


def format_totals(totals: Mapping[str, int], empty: str = "nothing") -> str:
    """``{"CAD": 77250, "USD": 51750}`` → ``"772.50 CAD, 517.50 USD"`` (alphabetical); ``empty`` when none."""
    return ", ".join(Money(v, c).format() for c, v in sorted(totals.items())) or empty
