"""The runbooks in JupyterLab, in a real browser: ``payops lab`` from the project's venv, driven through
Playwright in Debian's Chromium (``make browser``; never a downloaded browser). Under CI=true a missing
Chromium fails (the ``chromium`` fixture).

1. The manual payout, as ops does it during an incident: open ``10-verify.ipynb``, run the panel cell, fill
   the form with a bad amount (the error is next to the field; nothing is written), fix it, run the dry
   run (the payload, metadata and SQL are shown), the two approvers sign in their own terminals
   (``payops approve RUN --role … --key …``), the operator types the amount and the ledger payout id and
   goes live — one transfer in the sandbox, one audit row, an archive that ``payops archive verify`` accepts.
2. Finance on the reconciliation notebook: filter the break table, explain a break, sign it off.

Screenshots of the form, the approvals panel and the go-live control are kept in ``var/lab-screenshots/``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from lab_helpers import (
    FORM,
    LP,
    audit_rows,
    jupyterlab,
    keep_screenshot,
    open_notebook,
    run_cell_with,
    runs,
    stripe_transfers,
)

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]
PAYOPS = str(Path(sys.executable).with_name("payops"))
FINANCE_B = "dddddddd-0000-4000-8000-000000000004"


def _payops(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run([PAYOPS, *args], env=env, capture_output=True, text=True, timeout=300, check=False)


def page_name(page) -> str:  # type: ignore[no-untyped-def]
    return "recon" if "reconciliation" in page.url else "manual-payout"


def _fill(page, values: dict[str, str], prefix: str = "payops") -> None:  # type: ignore[no-untyped-def]
    for name, value in values.items():
        css = f".{prefix}-field-{name.replace('_', '-')}"
        page.fill(f"{css} input, {css} textarea", value)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_manual_payout_from_jupyterlab_in_chromium(payops_env, roster, chromium: Path,  # type: ignore[no-untyped-def]
                                                   chromium_args: list[str], tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    with jupyterlab(tmp_path) as (base, token), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=chromium_args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(60_000)
            open_notebook(page, base, token, "runbooks/manual_payout/10-verify.ipynb")
            run_cell_with(page, "lab.manual_payout_panel")
            page.wait_for_selector(".payops-manual-payout-panel .payops-field-amount input")

            # a bad amount: the error next to the field, nothing written
            _fill(page, FORM | {"amount": "875,50"})
            page.click("button.payops-dry-run")
            page.wait_for_selector(".payops-error-amount:has-text('not a plain decimal')")
            assert page.inner_text(".payops-error-studio-id") == ""
            keep_screenshot(page.locator(".payops-form").first, tmp_path, "lab-form-bad-amount.png")
            assert runs() == [] and audit_rows() == 0
            assert not payops_env.output_dir.exists() or not any(payops_env.output_dir.rglob("*"))

            # fixed: the dry run, its preview
            _fill(page, {"amount": "875.50"})
            page.click("button.payops-dry-run")
            page.wait_for_selector(".payops-run-state[data-status='succeeded']", timeout=180_000)
            assert page.inner_text(".payops-error-amount") == ""
            preview = page.inner_text(".payops-preview")
            for words in ("Stripe transfer request", "87550", "acct_test_studio_a", "Metadata", "INC-LAB-1",
                          "Audit insert (manual_payouts)", "dry run, not executed", "INSERT INTO manual_payouts"):
                assert words in preview, f"{words!r} not in the preview"
            keep_screenshot(page.locator(".payops-form").first, tmp_path, "lab-form.png")
            (dry,) = runs()
            assert dry.mode == "dry-run" and dry.status == "succeeded" and dry.manifest_sha256

            # the approvals panel says what is missing and the commands; go-live is disabled
            panel = page.locator(".payops-approvals-panel")
            text = panel.inner_text()
            assert f"payops approve {dry.id} --role ops --key" in text and "missing" in text
            assert page.is_disabled("button.payops-go-live")
            keep_screenshot(panel, tmp_path, "lab-approvals-missing.png")
            keep_screenshot(page.locator(".payops-golive-panel"), tmp_path, "lab-golive-disabled.png")
            for role in ("ops", "finance"):  # each approver, in their own terminal, with their roster key
                res = _payops("approve", dry.id, "--role", role, "--key", str(roster[role].key_path), "--yes")
                assert res.returncode == 0, res.stdout + res.stderr
            page.click("button.payops-refresh-approvals")
            page.wait_for_selector(".payops-approvals-ok")
            text = panel.inner_text()
            assert "Olivia Ops" in text and "Farid Finance" in text and dry.params_hash in text
            keep_screenshot(panel, tmp_path, "lab-approvals.png")

            # the confirmation: the amount and the ledger payout id typed, the operator's key
            assert page.is_disabled("button.payops-go-live")
            _fill(page, {"confirm_amount": "857.50", "confirm_ledger_payout_id": LP,
                         "operator_key": str(roster["operator"].key_path)})
            page.wait_for_selector(".payops-golive-hint:has-text('type the amount')")
            assert page.is_disabled("button.payops-go-live")
            _fill(page, {"confirm_amount": "875.50"})
            page.wait_for_selector("button.payops-go-live:not([disabled])")
            keep_screenshot(page.locator(".payops-golive-panel"), tmp_path, "lab-golive.png")
            page.click("button.payops-go-live")
            page.wait_for_selector(".payops-run-state[data-status='succeeded']:has-text('live')", timeout=240_000)
            page.wait_for_selector(".payops-golive-statement:has-text('the go-live statement you signed')")
            keep_screenshot(page.locator(".payops-steps"), tmp_path, "lab-after-go-live.png")
            assert "Traceback" not in page.inner_text(".payops-manual-payout-panel")
        except Exception:
            keep_screenshot(page, tmp_path, f"failed-{page_name(page)}.png")  # what the page showed, to look at
            raise
        finally:
            browser.close()

    transfers = stripe_transfers(payops_env.sandbox, LP)
    assert len(transfers) == 1 and transfers[0].amount == 87550 and transfers[0].destination == "acct_test_studio_a"
    assert audit_rows() == 1
    live = [r for r in runs() if r.mode == "live"]
    assert len(live) == 1 and live[0].status == "succeeded" and live[0].parent_run_id == dry.id
    assert live[0].manifest_sha256
    res = _payops("archive", "verify")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 run(s)" in " ".join(res.stdout.split())  # the dry run and the live run


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_reconciliation_explain_and_signoff_from_widgets(migrated_db: str, chromium: Path,  # type: ignore[no-untyped-def]
                                                         chromium_args: list[str], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from lab_helpers import OPERATOR, saved_reconciliation
    from playwright.sync_api import sync_playwright

    from payops.lab.recon_table import break_label
    from payops.reconcile import store

    monkeypatch.setenv("PAYOPS_OPERATOR_ID", OPERATOR)
    monkeypatch.setenv("PAYOPS_OUTPUT_DIR", str(tmp_path / "outputs"))
    run_id = saved_reconciliation()
    breaks = store.breaks_of(run_id)
    missing = next(b for b in breaks if b["category"] == "MISSING_IN_STRIPE")

    with jupyterlab(tmp_path) as (base, token), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=chromium_args)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.set_default_timeout(60_000)
            open_notebook(page, base, token, "notebooks/reconciliation/payouts_vs_ledger.ipynb")
            run_cell_with(page, "lab.recon_panel")
            page.wait_for_selector(".payops-recon-panel .payops-break-table")
            assert page.locator("tr.payops-break").count() == len(breaks) == 2
            page.select_option(".payops-filter-currency select", "CAD")
            page.wait_for_function("document.querySelectorAll('tr.payops-break').length === 1")
            assert page.get_attribute("tr.payops-break", "data-category") == "MISSING_IN_STRIPE"
            page.select_option(".payops-filter-currency select", "(all)")
            page.wait_for_function("document.querySelectorAll('tr.payops-break').length === 2")
            page.select_option(".payops-filter-category select", "REVERSED_PARTIAL")
            page.wait_for_function("document.querySelectorAll('tr.payops-break').length === 1")
            assert page.get_attribute("tr.payops-break", "data-currency") == "USD"
            page.select_option(".payops-filter-category select", "(all)")
            page.wait_for_function("document.querySelectorAll('tr.payops-break').length === 2")

            # sign-off refused while breaks are unexplained; same person twice refused next to the field
            _fill(page, {"approver": OPERATOR}, "payops-signoff")
            page.click("button.payops-signoff")
            page.wait_for_selector(".payops-signoff-error-approver:has-text('different person')")
            _fill(page, {"approver": FINANCE_B}, "payops-signoff")
            page.click("button.payops-signoff")
            page.wait_for_selector(".payops-signoff-error-form:has-text('unexplained break')")

            # explain both: an empty note is refused next to the field
            page.select_option(".payops-break-choice select", label=break_label(missing))
            page.click("button.payops-explain")
            page.wait_for_selector(".payops-explain-error-note:has-text('must say why')")
            assert store.breaks_of(run_id)[0]["explanation"] is None
            for b in breaks:
                page.select_option(".payops-break-choice select", label=break_label(b))
                page.fill(".payops-explain-field-note textarea", f"checked with the bank: {b['category']}")
                page.click("button.payops-explain")
                page.wait_for_selector(f".payops-recon-status:has-text('{b['break_key']} explained')")
            page.wait_for_selector(".payops-recon-summary:has-text('0 unexplained')")
            page.click("button.payops-signoff")
            page.wait_for_selector(".payops-recon-status:has-text('signed off')")
            keep_screenshot(page.locator(".payops-recon-panel"), tmp_path, "lab-recon.png")
        except Exception:
            keep_screenshot(page, tmp_path, f"failed-{page_name(page)}.png")  # what the page showed, to look at
            raise
        finally:
            browser.close()

    rows = {b["id"]: b for b in store.breaks_of(run_id)}
    assert all(b["explanation"].startswith("checked with the bank") and b["explained_by"] == OPERATOR
               for b in rows.values())
    from payops.db import session_scope
    from payops.db.models import ReconRun

    with session_scope() as s:
        run = s.get(ReconRun, run_id)
        assert run.signed_off_at is not None and run.preparer_id == OPERATOR and run.approver_id == FINANCE_B
        assert run.status == "signed_off"
    assert uuid.UUID(run_id)
