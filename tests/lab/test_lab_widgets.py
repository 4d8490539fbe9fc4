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


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_started_from_the_cli_finished_in_lab(payops_env, roster, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A live CLI run killed right after its transfer (money moved, no audit row yet) is opened in JupyterLab
    and finished there: no second transfer, one audit row, the run sealed, the archive verified."""
    import os
    import subprocess
    import sys

    from lab_helpers import stripe_transfers

    from approval_helpers import signed_live_args
    from payops.lab.manual_panel import ManualPayoutPanel

    args = ["--studio-id", FORM["studio_id"], "--studio-name", FORM["studio_name"], "--ledger-payout-id", LP,
            "--incident-id", "INC-LAB-2", "--amount", "875.50", "--reserve-after", "120.00", "--reason",
            "automated payout failed", "--destination-account", "acct_test_studio_a"]
    live_args = signed_live_args(roster, args, tmp_path / "sigs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")} | {
        "PAYOPS_FAULT_KILL_AT": "after:20-transfer"}
    proc = subprocess.run([sys.executable, "-m", "payops.cli", *live_args, "--wait", "60s"], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == -9, proc.stdout + proc.stderr  # killed like a power cut, after the transfer
    (live,) = [r for r in runs() if r.mode == "live"]
    assert live.status == "running" and len(stripe_transfers(payops_env.sandbox)) == 1 and audit_rows() == 0

    panel = ManualPayoutPanel()
    panel.runs.value = live.id
    panel.buttons["payops-open-run"].click()
    # its process is gone: shown interrupted (runs list's word), and the panel offers to finish it
    assert not panel.buttons["payops-finish"].disabled and "data-status='interrupted'" in panel.steps.value
    assert panel.golive.button.disabled and "gone live" in panel.golive.summary.value
    panel.buttons["payops-finish"].click()
    (live,) = [r for r in runs() if r.mode == "live"]
    assert live.status == "succeeded", panel.status.value
    assert live.manifest_sha256 and "sealed" in panel.steps.value
    assert len(stripe_transfers(payops_env.sandbox)) == 1 and audit_rows() == 1
    assert "tr_" in panel.preview.value and "settlement: payout" in panel.preview.value
    _cli("archive", "verify")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_recon_panel_filters_explain_and_signoff_follow_the_cli_rules(migrated_db: str,  # type: ignore[no-untyped-def]
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from lab_helpers import saved_reconciliation

    from payops.lab.recon_table import ALL, ReconPanel
    from payops.reconcile import store

    monkeypatch.setenv("PAYOPS_OPERATOR_ID", OPERATOR)
    get_settings(fresh=True)
    run_id = saved_reconciliation()
    monkeypatch.setenv(lab.ENV_FLAG, "1")
    for _ in range(2):  # a cell run twice draws twice (no submodule shadows the function)
        assert lab.recon_panel({}) is not None and lab.manual_payout_panel("10-verify", {"run_id": None}) is not None
    panel = ReconPanel()
    assert panel.run_id == run_id and set(panel.category.options) == {ALL, "MISSING_IN_STRIPE", "REVERSED_PARTIAL"}
    assert panel.table.value.count("payops-break'") == 2 and "50.00 CAD, 150.00 USD" in panel.table.value
    panel.currency.value = "USD"
    assert panel.table.value.count("payops-break'") == 1 and len(panel.choice.options) == 1
    panel.currency.value, panel.unexplained.value = ALL, True
    assert len(panel.choice.options) == 2

    panel.signoff_form.inputs["approver"].value = OPERATOR  # the preparer (PAYOPS_OPERATOR_ID) twice
    panel.buttons["payops-signoff"].click()
    assert "different person" in panel.signoff_form.errors["approver"].value
    panel.signoff_form.inputs["approver"].value = "dddddddd-0000-4000-8000-000000000004"
    panel.buttons["payops-signoff"].click()
    assert "unexplained" in panel.signoff_form.general.value and "threshold 0" in panel.signoff_form.general.value
    panel.buttons["payops-explain"].click()  # no note
    assert "must say why" in panel.explain_form.errors["note"].value, (panel.explain_form.general.value,
                                                                       panel.status.value)
    panel.explain_form.inputs["by"].value = "not-a-uuid"
    panel.explain_form.inputs["note"].value = "refunded by the bank"
    panel.buttons["payops-explain"].click()
    assert "UUID" in panel.explain_form.errors["by"].value
    assert store.unexplained_count(run_id) == 2  # nothing written by a refused explanation
    panel.explain_form.inputs["by"].value = OPERATOR
    for _ in range(2):
        panel.explain_form.inputs["note"].value = "refunded by the bank"
        panel.buttons["payops-explain"].click()
        assert "explained by" in panel.status.value, panel.explain_form.general.value
    assert store.unexplained_count(run_id) == 0 and panel.choice.options == ()  # "unexplained only" hides them
    panel.buttons["payops-signoff"].click()
    assert "signed off" in panel.status.value and "signed off at" in panel.summary.value
    panel.buttons["payops-signoff"].click()
    assert "already signed off" in panel.signoff_form.general.value
    panel.unexplained.value = False
    panel.explain_form.inputs["note"].value = "too late"
    panel.buttons["payops-explain"].click()
    assert "signed off" in panel.explain_form.general.value
    assert all(b["explanation"] == "refunded by the bank" for b in store.breaks_of(run_id))


def test_lab_server_is_loopback_with_a_token_and_absolute_settings(tmp_path: Path,  # type: ignore[no-untyped-def]
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from payops.cli import app
    from payops.errors import ParamsInvalid
    from payops.lab import server

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYOPS_DATABASE_URL", "sqlite:///var/payops.db")  # relative: a kernel's cwd differs
    monkeypatch.setenv("PAYOPS_OUTPUT_DIR", "outputs")
    monkeypatch.setenv("PAYOPS_STRIPE_API_BASE", "http://127.0.0.1:12111")
    monkeypatch.setenv("STRIPE_FALLBACK_SECRET_KEY", "rk_test_from_the_environment")
    srv = server.build(0, settings=get_settings(fresh=True))
    argv = " ".join(srv.argv)
    assert "--ServerApp.ip=127.0.0.1" in argv and f"--ServerApp.port={srv.port}" in argv and srv.port > 0
    assert f"--IdentityProvider.token={srv.token}" in argv and len(srv.token) >= 32
    assert f"--ServerApp.root_dir={server.ROOT}" in argv and (server.ROOT / "runbooks" / "manual_payout").is_dir()
    assert srv.argv[:3] == [__import__("sys").executable, "-m", "jupyterlab"]  # the project's own environment
    assert srv.env["PAYOPS_DATABASE_URL"] == f"sqlite:///{tmp_path / 'var' / 'payops.db'}"
    assert srv.env["PAYOPS_OUTPUT_DIR"] == str(tmp_path / "outputs")
    assert srv.env["PAYOPS_STRIPE_API_BASE"] == "http://127.0.0.1:12111" and srv.env["PAYOPS_LAB"] == "1"
    assert srv.env["STRIPE_FALLBACK_SECRET_KEY"] == "rk_test_from_the_environment"  # secrets: environment only
    assert "rk_test" not in argv and srv.token != server.build(0).token
    with pytest.raises(ParamsInvalid, match="--port"):
        server.build(70000)
    res = CliRunner().invoke(app, ["lab", "--help"], env={"COLUMNS": "120"})
    assert res.exit_code == 0 and "--port" in res.output and "127.0.0.1" in res.output
    get_settings(fresh=True)
