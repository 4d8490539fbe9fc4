"""Least privilege, proven by verify (step 10) against the sandbox's scoped keys: the fallback key must be a
restricted key (``rk_…``), and one call outside its scope (reading connected accounts) must answer 403.
Library level: the step's function on a run record, no kernel."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from e2e_helpers import SOP_ARGS
from rich.console import Console

from approval_helpers import params_of, run_record
from payops import manual, runner
from payops.config import get_settings
from payops.errors import PreconditionFailed
from payops.sop import verify
from payops.sop.context import StepContext

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)]

FULL_KEY = "sk_test_payops_platform"
TOO_BROAD = "rk_test_one_scope_too_many"
RESTRICTED = "Fallback key is restricted (rk_…)".lower()
PROBE = "key limited to transfers write + balance read"


def _verify(monkeypatch: pytest.MonkeyPatch, key: str, *, live: bool) -> verify.VerifyResult:
    monkeypatch.setenv("STRIPE_FALLBACK_SECRET_KEY", key)
    settings = get_settings(fresh=True)
    run = (runner.prepare_run("manual_payout", params_of(SOP_ARGS), live=True) if live else run_record(SOP_ARGS))
    return verify.run(StepContext.load("10-verify", run.id, settings))


def _row(res: verify.VerifyResult, name: str) -> verify.Check:
    return next(c for c in res.checks if c.name.lower() == name.lower())


def test_the_sops_restricted_key_passes_both_rows(payops_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    res = _verify(monkeypatch, "rk_test_payops_fallback", live=True)
    assert _row(res, RESTRICTED).ok
    probe = _row(res, PROBE)
    assert probe.ok and "answered 403" in probe.detail and "read connected accounts" in probe.detail


def test_a_full_secret_key_is_a_failed_precondition_of_a_live_run(payops_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    res = _verify(monkeypatch, FULL_KEY, live=True)
    row = _row(res, RESTRICTED)
    assert not row.ok and row.required and "STRIPE_FALLBACK_SECRET_KEY is a full secret key" in row.detail
    assert FULL_KEY not in row.detail  # named by its prefix only
    assert not _row(res, PROBE).ok  # and the probe shows what it can do
    with pytest.raises(PreconditionFailed) as info:
        res.raise_if_failed()
    assert "STRIPE_FALLBACK_SECRET_KEY" in str(info.value)


def test_a_restricted_key_with_one_scope_too_many_is_caught_by_the_probe(payops_env, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    payops_env.sandbox.control("POST", "keys", {"key": TOO_BROAD, "permissions": {
        "transfers": "write", "balance": "read", "accounts": "read"}})
    res = _verify(monkeypatch, TOO_BROAD, live=True)
    assert _row(res, RESTRICTED).ok  # it is an rk_ key…
    probe = _row(res, PROBE)  # …that can do more than the SOP allows
    assert not probe.ok and probe.required
    assert "could read connected accounts" in probe.detail and "answered 200" in probe.detail
    assert PROBE in [c.name for c in res.failures]


def test_a_dry_run_with_a_full_key_warns_loudly(payops_env, monkeypatch, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    res = _verify(monkeypatch, FULL_KEY, live=False)
    row = _row(res, RESTRICTED)
    assert not row.ok and not row.required and row.warning
    assert RESTRICTED not in [c.name.lower() for c in res.failures]  # a dry run still previews…
    assert "WARNING" in res.table().set_index("check").loc[row.name, "result"]
    out = io.StringIO()
    outcome = runner.RunOutcome(res.run_id, "succeeded", tmp_path, None, results={"10-verify": res.as_dict()})
    manual.report(outcome, Console(file=out, width=200))
    text = out.getvalue()
    assert "⚠ WARNING" in text and "STRIPE_FALLBACK_SECRET_KEY is a full secret key" in text  # …but says so
    assert "a live run is refused with this key" in text
