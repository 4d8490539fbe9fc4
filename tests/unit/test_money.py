"""payops.money.Money: exact parsing, refusal of anything ambiguous, same-currency arithmetic."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payops.money import (
    CURRENCY_EXPONENT,
    MAX_MINOR_UNITS,
    Money,
    MoneyError,
    exponent,
    format_totals,
    normalize_currency,
    totals_by_currency,
)

CURRENCIES = sorted(CURRENCY_EXPONENT)


# --- parsing: exactness per exponent -------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        # two decimals
        ("875.50", "CAD", 87550),
        ("875.5", "CAD", 87550),
        ("875", "CAD", 87500),
        ("0.01", "CAD", 1),
        ("0", "CAD", 0),
        ("0.10", "CAD", 10),
        ("1000000.99", "CAD", 100000099),
        # zero decimals
        ("1500", "JPY", 1500),
        ("0", "JPY", 0),
        # three decimals
        ("1.234", "KWD", 1234),
        ("1.2", "KWD", 1200),
        ("0.001", "KWD", 1),
        ("7", "KWD", 7000),
    ],
)
def test_parse_is_exact(text: str, currency: str, minor: int) -> None:
    m = Money.parse(text, currency)
    assert m == Money(minor, currency)
    assert m.amount == minor
    assert isinstance(m.amount, int)


def test_parse_classic_float_trap_is_exact() -> None:
    # 0.1 + 0.2 != 0.3 in floats; Money never goes through a float
    assert Money.parse("0.10", "CAD") + Money.parse("0.20", "CAD") == Money.parse("0.30", "CAD")
    assert Money.parse("1.15", "CAD").amount == 115  # int(1.15 * 100) == 114


def test_parse_accepts_int_and_decimal() -> None:
    assert Money.parse(5, "CAD") == Money(500, "CAD")
    assert Money.parse(Decimal("875.50"), "CAD") == Money(87550, "CAD")
    assert Money.parse(Decimal("1E+2"), "JPY") == Money(100, "JPY")


@pytest.mark.parametrize("value", [875.5, 0.0, 1e2, float("nan")])
def test_parse_refuses_floats(value: float) -> None:
    with pytest.raises(MoneyError, match="float"):
        Money.parse(value, "CAD")


@pytest.mark.parametrize("value", [True, False])
def test_parse_refuses_bools(value: bool) -> None:
    with pytest.raises(MoneyError):
        Money.parse(value, "CAD")


@pytest.mark.parametrize("value", [None, b"5.00", ["5"], {"amount": "5"}])
def test_parse_refuses_non_strings(value: object) -> None:
    with pytest.raises(MoneyError, match="decimal string"):
        Money.parse(value, "CAD")


@pytest.mark.parametrize(
    "text",
    [
        "8.755e2", "8755E-1", "1e3",  # exponents
        "1,000.00", "1 000.00", "1_000.00", "1.000,00", "1'000.00",  # separators
        "$5", "5$", "CA$5.00", "€5", "5 CAD", "CAD 5",  # symbols / codes
        "+5", "++5", "--5", "-+5",  # signs
        "", " ", ".", "5.", ".50", "05", "00.50", "0x10", "five", "5.0.0", "NaN", "Infinity", "٥",  # junk
    ],
)
def test_parse_refuses_non_plain_decimals(text: str) -> None:
    with pytest.raises(MoneyError, match="not a plain decimal"):
        Money.parse(text, "CAD")


def test_parse_refuses_negative_unless_allowed() -> None:
    with pytest.raises(MoneyError, match="negative"):
        Money.parse("-5", "CAD")
    with pytest.raises(MoneyError, match="negative"):
        Money.parse("-0.01", "CAD")
    assert Money.parse("-5", "CAD", allow_negative=True) == Money(-500, "CAD")
    assert Money.parse("-0.01", "CAD", allow_negative=True) == Money(-1, "CAD")


@pytest.mark.parametrize(
    ("text", "currency", "places"),
    [("875.505", "CAD", 3), ("1.5", "JPY", 1), ("1.0", "JPY", 1), ("1.2345", "KWD", 4), ("0.001", "USD", 3),
     ("1.230", "CAD", 3)],
)
def test_parse_refuses_over_precision(text: str, currency: str, places: int) -> None:
    with pytest.raises(MoneyError, match=rf"{places} decimal places; {currency} allows at most {exponent(currency)}"):
        Money.parse(text, currency)


def test_parse_refuses_amounts_beyond_bound() -> None:
    Money(MAX_MINOR_UNITS, "CAD")
    with pytest.raises(MoneyError, match="beyond"):
        Money.parse("1000000000.00", "CAD")
    with pytest.raises(MoneyError, match="beyond"):
        Money(-MAX_MINOR_UNITS - 1, "CAD")


# --- currencies ------------------------------------------------------------------------------------
def test_exponents() -> None:
    assert exponent("JPY") == 0
    assert exponent("CAD") == 2
    assert exponent("KWD") == 3
    assert exponent("USD") == 2


@pytest.mark.parametrize(("given_code", "expected"), [("cad", "CAD"), ("Cad", "CAD"), (" jpy ", "JPY"), ("KWD", "KWD")])
def test_lower_case_currency_is_normalized(given_code: str, expected: str) -> None:
    assert normalize_currency(given_code) == expected
    assert Money(100, given_code).currency == expected
    assert Money.parse("1", given_code) == Money.parse("1", expected)
    assert Money.from_stripe(100, expected.lower()) == Money(100, expected)


@pytest.mark.parametrize("code", ["XXX", "ABC", "BTC", "ZZZ"])
def test_unknown_currency_refused(code: str) -> None:
    with pytest.raises(MoneyError, match="unknown currency"):
        Money.parse("1.00", code)
    with pytest.raises(MoneyError, match="unknown currency"):
        Money(100, code)


@pytest.mark.parametrize("code", ["", "CA", "CADD", "C4D", "$", "US D", None, 124])
def test_malformed_currency_refused(code: object) -> None:
    with pytest.raises(MoneyError, match="3-letter ISO 4217"):
        Money(100, code)  # type: ignore[arg-type]


@pytest.mark.parametrize("amount", [1.0, "100", Decimal(100), True, None])
def test_constructor_requires_int_minor_units(amount: object) -> None:
    with pytest.raises(MoneyError, match="integer number of minor units"):
        Money(amount, "CAD")  # type: ignore[arg-type]


def test_money_is_immutable() -> None:
    m = Money(100, "CAD")
    with pytest.raises(AttributeError):
        m.amount = 5  # type: ignore[misc]


# --- arithmetic ----------------------------------------------------------------------------------
def test_arithmetic_within_currency() -> None:
    a, b = Money.parse("875.50", "CAD"), Money.parse("120.00", "CAD")
    assert a + b == Money(99550, "CAD")
    assert a - b == Money(75550, "CAD")
    assert b - a == Money(-75550, "CAD")
    assert -a == Money(-87550, "CAD")
    assert b < a and b <= a and a > b and a >= b and a >= a and a <= a
    assert not (a < a)
    assert Money(0, "CAD").is_zero() and not a.is_zero()


@pytest.mark.parametrize(
    "op",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a < b,
        lambda a, b: a <= b,
        lambda a, b: a > b,
        lambda a, b: a >= b,
    ],
)
def test_currency_mismatch_raises(op) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(MoneyError, match="currency mismatch: CAD vs USD"):
        op(Money(100, "CAD"), Money(100, "USD"))


def test_combining_with_non_money_raises() -> None:
    with pytest.raises(TypeError):
        Money(100, "CAD") + 1  # type: ignore[operator]
    with pytest.raises(TypeError):
        Money(100, "CAD") + Decimal("1.00")  # type: ignore[operator]


def test_equality_includes_currency() -> None:
    assert Money(100, "CAD") != Money(100, "USD")
    assert Money(100, "CAD") != Money(101, "CAD")
    assert Money(100, "cad") == Money(100, "CAD")
    assert hash(Money(100, "cad")) == hash(Money(100, "CAD"))


# --- presentation --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("minor", "currency", "dec", "fmt"),
    [
        (87550, "CAD", "875.50", "875.50 CAD"),
        (123456789, "CAD", "1234567.89", "1,234,567.89 CAD"),
        (5, "CAD", "0.05", "0.05 CAD"),
        (0, "CAD", "0.00", "0.00 CAD"),
        (-150, "CAD", "-1.50", "-1.50 CAD"),
        (-123456, "CAD", "-1234.56", "-1,234.56 CAD"),
        (1500000, "JPY", "1500000", "1,500,000 JPY"),
        (0, "JPY", "0", "0 JPY"),
        (1234, "KWD", "1.234", "1.234 KWD"),
        (1000001, "KWD", "1000.001", "1,000.001 KWD"),
        (7, "KWD", "0.007", "0.007 KWD"),
    ],
)
def test_decimal_str_and_format(minor: int, currency: str, dec: str, fmt: str) -> None:
    m = Money(minor, currency)
    assert m.decimal_str() == dec
    assert m.format() == fmt
    assert str(m) == f"{dec} {currency}"


def test_stripe_currency_is_lower_case() -> None:
    assert Money(100, "CAD").stripe_currency == "cad"


def test_formatted_amount_is_not_parseable() -> None:
    # format() is for humans; feeding it back must be refused, not misread
    with pytest.raises(MoneyError):
        Money.parse(Money(123456, "CAD").format().removesuffix(" CAD"), "CAD")


# --- properties ----------------------------------------------------------------------------------
amounts = st.integers(min_value=-MAX_MINOR_UNITS, max_value=MAX_MINOR_UNITS)
half = st.integers(min_value=-(MAX_MINOR_UNITS // 2), max_value=MAX_MINOR_UNITS // 2)
currencies = st.sampled_from(CURRENCIES)


@given(amounts, currencies)
def test_round_trip_decimal_str(minor: int, currency: str) -> None:
    m = Money(minor, currency)
    assert Money.parse(m.decimal_str(), currency, allow_negative=True) == m
    assert Money.parse(m.decimal_str(), currency.lower(), allow_negative=True) == m


@given(st.integers(min_value=0, max_value=MAX_MINOR_UNITS), currencies)
def test_round_trip_non_negative_without_flag(minor: int, currency: str) -> None:
    m = Money(minor, currency)
    assert Money.parse(m.decimal_str(), currency) == m
    assert Money.parse(Decimal(m.decimal_str()), currency) == m


@given(half, half, currencies)
def test_addition_exact_and_commutative(a: int, b: int, currency: str) -> None:
    x, y = Money(a, currency), Money(b, currency)
    assert x + y == y + x
    assert (x + y).amount == a + b
    assert (x + y) - y == x
    # exact in decimal terms too: summing the decimal strings gives the decimal string of the sum
    assert Decimal(x.decimal_str()) + Decimal(y.decimal_str()) == Decimal((x + y).decimal_str())


@given(amounts, currencies)
def test_decimal_str_has_exactly_exponent_places(minor: int, currency: str) -> None:
    s = Money(minor, currency).decimal_str()
    exp = CURRENCY_EXPONENT[currency]
    if exp == 0:
        assert "." not in s
    else:
        assert len(s.split(".")[1]) == exp
    assert Decimal(s).scaleb(exp) == minor


# --- per-currency totals ----------------------------------------------------------------------------
def test_totals_by_currency_keeps_currencies_apart_and_sorted() -> None:
    totals = totals_by_currency([("USD", 51750), ("CAD", 50000), ("USD", -1750), ("CAD", 27250), ("JPY", 1500)])
    assert totals == {"CAD": 77250, "JPY": 1500, "USD": 50000}
    assert list(totals) == ["CAD", "JPY", "USD"]
    assert totals_by_currency([]) == {}
    assert format_totals(totals) == "772.50 CAD, 1,500 JPY, 500.00 USD"
    assert format_totals({}) == "nothing"
    assert format_totals({}, empty="") == ""


@pytest.mark.parametrize("bad", [12.5, True, "100", None])
def test_totals_by_currency_refuses_non_integer_amounts(bad: object) -> None:
    with pytest.raises(MoneyError, match="integer minor units"):
        totals_by_currency([("CAD", 100), ("CAD", bad)])  # type: ignore[list-item]


@given(st.lists(st.tuples(currencies, half), max_size=30))
def test_totals_by_currency_equals_per_currency_sums(pairs: list[tuple[str, int]]) -> None:
    totals = totals_by_currency(pairs)
    assert set(totals) == {c for c, _ in pairs}
    for c, total in totals.items():
        assert total == sum(a for cur, a in pairs if cur == c)
