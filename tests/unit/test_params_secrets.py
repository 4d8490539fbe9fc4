"""Secrets never become parameters: a key pasted into a free-text field is refused, naming the field."""

from __future__ import annotations

import pytest

from payops.errors import ParamsInvalid
from payops.params import validate_manual_payout

BASE = dict(studio_id="11111111-1111-1111-1111-111111111111", studio_name="Test Studio A",
            ledger_payout_id="22222222-2222-2222-2222-222222222222", incident_id="INC-1", amount="875.50",
            reserve_after="120.00", reason="automated payout failed", destination_account="acct_test_studio_a",
            currency="CAD")


@pytest.mark.parametrize(("field", "value", "secret"), [
    ("reason", "paid with sk_live_51Habcdefghijk by mistake", "sk_live_51Habcdefghijk"),
    ("notes", "fallback key rk_test_payops_fallback", "rk_test_payops_fallback"),
    ("notes", "whsec_abcdef123456", "whsec_abcdef123456"),
    ("notes", "post to https://hooks.slack.com/services/T000/B000/XXXXXXXX", "XXXXXXXX"),
    ("studio_name", "Studio sk_test_abcdefgh", "sk_test_abcdefgh"),
])
def test_secret_in_text_field_is_refused(field: str, value: str, secret: str) -> None:
    with pytest.raises(ParamsInvalid) as info:
        validate_manual_payout(BASE | {field: value})
    assert info.value.fields == [field]
    assert "secret" in str(info.value)
    assert secret not in str(info.value)  # the error never echoes the secret back


@pytest.mark.parametrize("text", ["rk_test alone is fine", "pk_test_abcdefgh is publishable", "task_test_abcdef"])
def test_lookalikes_are_allowed(text: str) -> None:
    assert validate_manual_payout(BASE | {"notes": text}).notes == text
