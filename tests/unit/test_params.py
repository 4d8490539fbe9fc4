"""payops.params: the manual payout parameters contract, its hash and named parameter files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from payops.errors import ParamsInvalid
from payops.money import Money
from payops.params import ManualPayoutParams, load_params_file, validate_manual_payout

OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"

BASE: dict[str, Any] = {
    "studio_id": "11111111-1111-1111-1111-111111111111",
    "studio_name": "Test Studio A",
    "ledger_payout_id": "22222222-2222-2222-2222-222222222222",
    "incident_id": "INC-1",
    "amount": "875.50",
    "reserve_after": "120.00",
    "reason": "automated payout failed",
    "destination_account": "acct_test_studio_a",
    "currency": "CAD",
}


def params(**over: Any) -> ManualPayoutParams:
    data = dict(BASE)
    data.update(over)
    return validate_manual_payout(data)


def invalid(**over: Any) -> ParamsInvalid:
    data = dict(BASE)
    for k, v in over.items():
        if v is _DROP:
            data.pop(k, None)
        else:
            data[k] = v
    with pytest.raises(ParamsInvalid) as info:
        validate_manual_payout(data)
    return info.value


_DROP = object()


# --- the valid base set --------------------------------------------------------------------------
def test_base_set_is_valid_and_typed() -> None:
    p = params()
    assert isinstance(p, ManualPayoutParams)
    assert p.money == Money(87550, "CAD")
    assert p.reserve_money == Money(12000, "CAD")
    assert p.amount == "875.50" and p.reserve_after == "120.00"
    assert p.dry_run is True  # the safe default
    assert p.is_rehearsal is False
    assert p.notes == "" and p.operator is None


def test_amounts_are_canonicalized() -> None:
    p = params(amount="875.5", reserve_after="120")
    assert p.amount == "875.50"
    assert p.reserve_after == "120.00"
    assert params(amount=875).amount == "875.00"  # an int is exact, so it is accepted


def test_currency_and_uuids_are_canonicalized() -> None:
    p = params(currency="cad", studio_id=BASE["studio_id"].upper(), operator=OPERATOR.upper())
    assert p.currency == "CAD"
    assert p.studio_id == BASE["studio_id"]
    assert p.operator == OPERATOR


def test_currency_may_be_left_to_the_ledger() -> None:
    p = params(currency=None, amount="875.5")
    assert p.currency is None
    # amounts can only be checked against a currency once it is known; hashing refuses until then
    with pytest.raises(ParamsInvalid) as info:
        p.params_hash()
    assert info.value.fields == ["currency"]


def test_empty_operator_means_none() -> None:
    assert params(operator="").operator is None


def test_params_are_frozen() -> None:
    p = params()
    with pytest.raises(ValidationError, match="frozen"):
        p.amount = "1.00"  # type: ignore[misc]


# --- the params hash -----------------------------------------------------------------------------
def test_hash_is_sha256_hex() -> None:
    h = params().params_hash()
    assert len(h) == 64 and int(h, 16) >= 0


def test_hash_stable_across_equivalent_spellings() -> None:
    h = params().params_hash()
    assert params(amount="875.5").params_hash() == h
    assert params(reserve_after="120").params_hash() == h
    assert params(currency="cad").params_hash() == h
    assert params(studio_id=BASE["studio_id"].upper()).params_hash() == h
    assert validate_manual_payout(dict(BASE)).params_hash() == h  # a fresh validation, same hash


@pytest.mark.parametrize(
    "change",
    [
        {"amount": "875.51"},
        {"amount": "800.00"},
        {"reserve_after": "119.99"},
        {"destination_account": "acct_test_studio_b"},
        {"reason": "automated payout failed (retry)"},
        {"incident_id": "INC-2"},
        {"studio_id": "33333333-3333-3333-3333-333333333333"},
        {"ledger_payout_id": "44444444-4444-4444-4444-444444444444"},
        {"currency": "USD"},
        {"notes": "see ticket"},
        {"is_rehearsal": True},
        {"operator": OPERATOR},
    ],
    ids=lambda c: next(iter(c)),
)
def test_hash_changes_with_business_parameters(change: dict[str, Any]) -> None:
    assert params(**change).params_hash() != params().params_hash()


@pytest.mark.parametrize("change", [{"dry_run": False}, {"send_notifications": False},
                                    {"dry_run": False, "send_notifications": False}])
def test_hash_ignores_run_switches(change: dict[str, Any]) -> None:
    p = params(**change)
    for k, v in change.items():
        assert getattr(p, k) is v
    assert p.params_hash() == params().params_hash()
    assert "dry_run" not in p.business_dict()
    assert "send_notifications" not in p.business_dict()


def test_business_dict_carries_what_approvers_approve() -> None:
    d = params().business_dict()
    for k in ("amount", "currency", "destination_account", "reason", "ledger_payout_id", "studio_id"):
        assert d[k] == params().model_dump()[k]


# --- bad parameter sets --------------------------------------------------------------------------
BAD: list[tuple[str, dict[str, Any], list[str], str]] = [
    # (id, overrides, expected fields, a fragment of the message)
    ("amount-float", {"amount": 875.5}, ["amount"], "not a float"),
    ("amount-negative", {"amount": "-875.50"}, ["amount"], "negative"),
    ("amount-zero", {"amount": "0"}, ["amount"], "greater than zero"),
    ("amount-zero-decimals", {"amount": "0.00"}, ["amount"], "greater than zero"),
    ("amount-over-precision", {"amount": "875.505"}, ["amount"], "at most 2"),
    ("amount-exponent", {"amount": "8.755e2"}, ["amount"], "plain decimal"),
    ("amount-separator", {"amount": "1,000.00"}, ["amount"], "plain decimal"),
    ("amount-symbol", {"amount": "$875.50"}, ["amount"], "plain decimal"),
    ("amount-plus", {"amount": "+875.50"}, ["amount"], "plain decimal"),
    ("amount-spaces", {"amount": " 875.50"}, ["amount"], "plain decimal"),
    ("amount-empty", {"amount": ""}, ["amount"], "plain decimal"),
    ("amount-none", {"amount": None}, ["amount"], "decimal string"),
    ("amount-bool", {"amount": True}, ["amount"], "not a float"),
    ("amount-huge", {"amount": "1000000000.00"}, ["amount"], "beyond"),
    ("amount-missing", {"amount": _DROP}, ["amount"], "is required"),
    ("reserve-float", {"reserve_after": 120.0}, ["reserve_after"], "not a float"),
    ("reserve-negative", {"reserve_after": "-1.00"}, ["reserve_after"], "negative"),
    ("reserve-over-precision", {"reserve_after": "120.001"}, ["reserve_after"], "at most 2"),
    ("both-amounts-over-precision", {"amount": "1.234", "reserve_after": "1.234"},
     ["amount", "reserve_after"], "at most 2"),
    ("jpy-with-decimals", {"currency": "JPY"}, ["amount", "reserve_after"], "JPY allows at most 0"),
    ("currency-unknown", {"currency": "XXX"}, ["currency"], "unknown currency"),
    ("currency-malformed", {"currency": "CA"}, ["currency"], "3-letter"),
    ("studio-id-not-uuid", {"studio_id": "studio-a"}, ["studio_id"], "not a UUID"),
    ("studio-id-no-hyphens", {"studio_id": "11111111111111111111111111111111"}, ["studio_id"], "canonical UUID"),
    ("studio-id-braces", {"studio_id": "{11111111-1111-1111-1111-111111111111}"}, ["studio_id"], "canonical"),
    ("studio-id-int", {"studio_id": 11111111}, ["studio_id"], "valid string"),
    ("ledger-id-not-uuid", {"ledger_payout_id": "22222222"}, ["ledger_payout_id"], "not a UUID"),
    ("operator-not-uuid", {"operator": "bob"}, ["operator"], "not a UUID"),
    ("studio-name-newline", {"studio_name": "Test\nStudio A"}, ["studio_name"], "control character"),
    ("studio-name-padded", {"studio_name": " Test Studio A"}, ["studio_name"], "leading or trailing"),
    ("studio-name-empty", {"studio_name": ""}, ["studio_name"], "non-empty"),
    ("studio-name-long", {"studio_name": "x" * 201}, ["studio_name"], "200"),
    ("incident-spaces", {"incident_id": "INC 1"}, ["incident_id"], "INC-1234"),
    ("incident-too-short", {"incident_id": "I"}, ["incident_id"], "2-64"),
    ("incident-too-long", {"incident_id": "I" * 65}, ["incident_id"], "2-64"),
    ("incident-leading-dash", {"incident_id": "-INC-1"}, ["incident_id"], "INC-1234"),
    ("reason-blank", {"reason": "   "}, ["reason"], "why"),
    ("reason-newline", {"reason": "failed\nDROP TABLE"}, ["reason"], "control character"),
    ("reason-line-separator", {"reason": "failed\u2028again"}, ["reason"], "control character"),
    ("reason-long", {"reason": "x" * 501}, ["reason"], "500"),
    ("notes-control", {"notes": "ok\x00"}, ["notes"], "control character"),
    ("notes-long", {"notes": "x" * 2001}, ["notes"], "2000"),
    ("destination-not-acct", {"destination_account": "ba_123"}, ["destination_account"], "acct_"),
    ("destination-injection", {"destination_account": "acct_1; rm -rf"}, ["destination_account"], "acct_"),
    ("destination-empty-suffix", {"destination_account": "acct_"}, ["destination_account"], "acct_"),
    ("dry-run-garbage", {"dry_run": "maybe"}, ["dry_run"], "boolean"),
    ("unknown-field", {"amout": "875.50"}, ["amout"], "not a parameter of this runbook"),
    ("secret-as-param", {"stripe_key": "rk_test_x"}, ["stripe_key"], "not a parameter of this runbook"),
    ("two-missing", {"reason": _DROP, "destination_account": _DROP}, ["reason", "destination_account"],
     "is required"),
    ("several-at-once", {"amount": 1.5, "studio_id": "x", "incident_id": "a b"},
     ["studio_id", "incident_id", "amount"], "invalid manual payout parameters"),
]


@pytest.mark.parametrize(("over", "fields", "fragment"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_sets_name_their_fields(over: dict[str, Any], fields: list[str], fragment: str) -> None:
    exc = invalid(**over)
    assert sorted(exc.fields) == sorted(fields)
    msg = str(exc)
    assert fragment in msg
    assert msg.startswith("invalid manual payout parameters: ")
    for f in fields:
        assert f"{f}: " in msg
    # one readable line: no pydantic internals, no tracebacks
    assert "\n" not in msg
    assert "pydantic" not in msg.lower() and "errors.pydantic.dev" not in msg
    assert "Value error" not in msg
    assert "For further information" not in msg


def test_valid_edge_values_are_accepted() -> None:
    assert params(amount="0.01").money == Money(1, "CAD")
    assert params(reserve_after="0").reserve_money == Money(0, "CAD")
    assert params(incident_id="INC-2026.11_15").incident_id == "INC-2026.11_15"
    assert params(notes="line one\nline two").notes == "line one\nline two"  # notes may span lines
    assert params(studio_name="x" * 200).studio_name == "x" * 200
    assert params(currency="JPY", amount="875", reserve_after="120").money == Money(875, "JPY")
    assert params(currency="KWD", amount="875.505", reserve_after="1.5").money == Money(875505, "KWD")


# --- named parameter files -----------------------------------------------------------------------
def _yaml(tmp_path: Path, body: str) -> Path:
    p = tmp_path / "set.yaml"
    p.write_text(body)
    return p


GOOD_YAML = """\
studio_id: 11111111-1111-1111-1111-111111111111
studio_name: Test Studio A
ledger-payout-id: 22222222-2222-2222-2222-222222222222
incident_id: INC-1
amount: "875.50"
reserve-after: '120.00'
reason: automated payout failed
destination_account: acct_test_studio_a
currency: CAD
"""


def test_load_params_file_good(tmp_path: Path) -> None:
    data = load_params_file(_yaml(tmp_path, GOOD_YAML))
    assert data["ledger_payout_id"] == BASE["ledger_payout_id"]  # dashes become underscores
    assert data["reserve_after"] == "120.00"
    assert validate_manual_payout(data).params_hash() == params().params_hash()


@pytest.mark.parametrize(("line", "field"), [("amount: 875.50", "amount"), ("reserve_after: 120.00", "reserve_after"),
                                             ("amount: .nan", "amount"), ("amount: 8.755e+2", "amount")])
def test_load_params_file_refuses_yaml_floats(tmp_path: Path, line: str, field: str) -> None:
    body = "\n".join(x for x in GOOD_YAML.splitlines() if not x.startswith(field.split("_")[0])) + "\n" + line + "\n"
    with pytest.raises(ParamsInvalid) as info:
        load_params_file(_yaml(tmp_path, body))
    assert info.value.fields == [field]
    assert "float" in str(info.value) and "quote" in str(info.value)
    assert "set.yaml" in str(info.value)


@pytest.mark.parametrize("body", ["- studio_id\n- amount\n", "just a string\n", "", "42\n"])
def test_load_params_file_refuses_non_mapping(tmp_path: Path, body: str) -> None:
    with pytest.raises(ParamsInvalid) as info:
        load_params_file(_yaml(tmp_path, body))
    assert info.value.fields == ["--params-file"]
    assert "expected a mapping" in str(info.value)


def test_load_params_file_refuses_broken_yaml(tmp_path: Path) -> None:
    with pytest.raises(ParamsInvalid) as info:
        load_params_file(_yaml(tmp_path, "amount: [\n"))
    assert info.value.fields == ["--params-file"]


def test_load_params_file_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ParamsInvalid) as info:
        load_params_file(tmp_path / "nope.yaml")
    assert info.value.fields == ["--params-file"]
    assert "nope.yaml" in str(info.value)


def test_load_params_file_non_string_key_is_a_params_error(tmp_path: Path) -> None:
    data = load_params_file(_yaml(tmp_path, GOOD_YAML + "1: x\n"))
    with pytest.raises(ParamsInvalid) as info:
        validate_manual_payout(data)
    assert info.value.fields == ["1"]


@pytest.mark.parametrize("raw", ["010", "0x10", "1:30", "1_000"])
def test_load_params_file_refuses_disguised_yaml_ints(tmp_path: Path, raw: str) -> None:
    body = GOOD_YAML.replace('amount: "875.50"', f"amount: {raw}")
    with pytest.raises(ParamsInvalid) as info:
        validate_manual_payout(load_params_file(_yaml(tmp_path, body)))
    assert info.value.fields == ["amount"]
