"""The JupyterLab widgets driven in-process (ipywidgets objects work without a browser): the same validation,
run records, sealed archive and approval rules as the CLI. The browser tests (test_lab_browser.py) drive the
same panels through JupyterLab and Chromium."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from lab_helpers import FORM, LP, OPERATOR, audit_rows, fill, runs
from rich.console import Console

from payops import lab
from payops.approvals import submit
from payops.config import get_settings
from payops.lab.golive import confirmation_problems
from payops.params import validate_manual_payout

pytestmark = [pytest.mark.db]


def test_panels_only_in_a_lab_kernel_without_injected_run_id(monkeypatch: pytest.MonkeyPatch) -> None:
    """Papermill and nbval inject run_id: the panel cell returns None there (and without payops lab)."""
    monkeypatch.delenv(lab.ENV_FLAG, raising=False)
    assert lab.manual_payout_panel("10-verify", {"run_id": None}) is None
    assert lab.recon_panel({"run_id": None}) is None
    monkeypatch.setenv(lab.ENV_FLAG, "1")
    injected = {"run_id": "3f1c2d4e-0000-4000-8000-000000000001", "amount": "875.50"}
    assert lab.manual_payout_panel("10-verify", injected) is None
    assert lab.recon_panel(injected) is None
    assert lab.interactive({"run_id": None}) and lab.interactive({})


def test_confirmation_is_exact_money_and_the_ledger_payout_id() -> None:
    p = validate_manual_payout(FORM | {"currency": "CAD"})
    assert confirmation_problems(p, "875.50", LP.upper()) == []
    assert confirmation_problems(p, "875.5", f" {LP} ") == []  # the same money, the same id
    assert [x.field for x in confirmation_problems(p, "875.51", LP)] == ["confirm_amount"]
    assert [x.field for x in confirmation_problems(p, "875.50 CAD", LP[:-1] + "0")] == [
        "confirm_amount", "confirm_ledger_payout_id"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_fields_are_shown_next_to_them_and_nothing_is_written(payops_env) -> None:  # type: ignore[no-untyped-def]
    from payops.lab.manual_panel import ManualPayoutPanel

    panel = ManualPayoutPanel()
    assert panel.form.values()["operator"] == OPERATOR  # from PAYOPS_OPERATOR_ID
    fill(panel.form, FORM | {"amount": "875,50", "destination_account": "bank 123", "studio_id": ""})
    panel.buttons["payops-dry-run"].click()
    errors = {k: v.value for k, v in panel.form.errors.items() if v.value}
    assert set(errors) == {"amount", "destination_account", "studio_id"}, errors
    assert "not a plain decimal" in errors["amount"] and "acct_" in errors["destination_account"]
    fill(panel.form, FORM | {"amount": "875.505"})  # three decimals: known only once CAD is resolved
    panel.buttons["payops-dry-run-step"].click()
    assert "CAD" in panel.form.errors["amount"].value and not panel.form.errors["studio_id"].value
    fill(panel.form, FORM | {"ledger_payout_id": "99999999-9999-4999-8999-999999999999"})
    panel.buttons["payops-dry-run"].click()
    assert "does not exist" in panel.form.errors["currency"].value
    assert runs() == [] and audit_rows() == 0
    assert not payops_env.output_dir.exists() or not any(payops_env.output_dir.rglob("*.ipynb"))
    assert panel.buttons["payops-next-step"].disabled and panel.golive.button.disabled


def _cli(*args: str) -> None:
    from typer.testing import CliRunner

    from payops.cli import app

    res = CliRunner().invoke(app, list(args), catch_exceptions=False)
    assert res.exit_code == 0, res.output


def _manifests(run_dir: Path) -> list[Path]:
    """In seal order: manifest.json, manifest.2.json, …"""
    return sorted(run_dir.glob("manifest*.json"), key=lambda p: int(p.name.split(".")[1]) if p.name.count(".") == 2
                  else 1)


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_started_in_lab_step_by_step_over_two_sessions_finished_by_the_cli(payops_env, roster) -> None:  # type: ignore[no-untyped-def]
    """Session 1 runs step 10 only; session 2 (a new panel, as after a kernel restart) opens the run and runs
    step 20; `payops runs resume` finishes it. Every execution sealed; the archive verifies; then the approvals
    panel and the go-live control follow the signed approvals."""
    from payops.lab.manual_panel import ManualPayoutPanel

    one = ManualPayoutPanel()
    fill(one.form, FORM)
    one.buttons["payops-dry-run-step"].click()
    (run,) = runs()
    assert run.mode == "dry-run" and run.status == "paused" and run.manifest_sha256, one.status.value
    assert "10-verify" in one.steps.value and "sealed" in one.steps.value
    folder = Path(run.output_dir or "")
    assert (folder / "10-verify.ipynb").exists() and not (folder / "20-transfer.ipynb").exists()
    assert len(_manifests(folder)) == 1

    two = ManualPayoutPanel()  # another session: nothing in memory, the run record is the state
    assert run.id in dict((v, k) for k, v in two.runs.options)
    two.runs.value = run.id
    two.buttons["payops-open-run"].click()
    assert two.form.values()["amount"] == "875.50" and not two.buttons["payops-next-step"].disabled
    two.buttons["payops-next-step"].click()
    (run,) = runs()
    assert run.status == "paused" and (folder / "20-transfer.ipynb").exists() and len(_manifests(folder)) == 2
    assert "Idempotency-Key" in two.preview.value and "manual-payout:" in two.preview.value

    _cli("runs", "resume", run.id)  # finished from the CLI
    (run,) = runs()
    assert run.status == "succeeded" and len(_manifests(folder)) == 3
    _cli("archive", "verify")
    manifest = json.loads(_manifests(folder)[-1].read_text())
    assert [s["status"] for s in manifest["steps"]] == ["succeeded"] * 5

    # the approvals panel and the go-live control of that dry run, in a third session
    three = ManualPayoutPanel()
    three.open(run.id)
    state = three.approvals.state
    assert state is not None and {r.state for r in state.roles.values()} == {"missing"}
    assert f"payops approve {run.id} --role ops --key" in three.approvals.html.value
    assert three.golive.button.disabled
    quiet = Console(file=io.StringIO())
    submit.approve(run.id, role="ops", key=roster["ops"].key_path, yes=True, console=quiet)
    three.approvals.refresh_button.click()
    assert three.approvals.state.roles["ops"].state == "verified"  # type: ignore[union-attr]
    assert "Olivia Ops" in three.approvals.html.value and three.golive.button.disabled
    submit.approve(run.id, role="finance", key=roster["finance"].key_path, yes=True, console=quiet)
    three.approvals.refresh_button.click()
    assert three.approvals.verified and "payops-approvals-ok" in three.approvals.html.value
    g = three.golive
    fill(g.form, {"confirm_amount": "875.51", "confirm_ledger_payout_id": LP,
                  "operator_key": str(roster["operator"].key_path)})
    assert g.button.disabled and "type the amount" in g.hint.value
    g.form.inputs["confirm_amount"].value = "875.50"
    assert not g.button.disabled, g.hint.value
    assert audit_rows() == 0  # nothing moved until the click (the browser test clicks)
    assert get_settings().output_dir == payops_env.output_dir.resolve()
