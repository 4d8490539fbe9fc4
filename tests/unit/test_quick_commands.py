"""The quick commands stay quick: ``payops approve``, ``payops runs list`` and ``payops runs show`` import
neither the ORM and the mapped models, nor the runner, papermill or pandas, nor pydantic's Typer adapters
(issue #19; ``bench/bench_cli.py`` times them) — structural tests: module sets, never timings. And the
pydantic-free coercion that keeps Typer's adapters out answers exactly as Typer's own does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer

from cli_probe import imported, modules_after
from payops import demo_data
from payops.cli_lazy import _plain, plain_coercion

OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"
APPROVER = "bbbbbbbb-0000-4000-8000-000000000002"
#: what the three commands must never import (the ORM, the mapped models, the runner and what it drives,
#: Typer's pydantic adapters)
HEAVY = ("sqlalchemy.orm", "payops.db.models", "payops.runner", "payops.runstate", "payops.manual", "papermill",
         "pandas", "typer._adapters")


def _heavy(modules: set[str]) -> list[str]:
    return [h for h in HEAVY if imported(modules, h)]


@pytest.fixture()
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[dict[str, str], str, Path]:
    """A migrated SQLite database with a test-only roster and a dry-run manual payout run to approve."""
    from payops import db, runner
    from payops.approvals.testkeys import enroll_test_roster
    from payops.config import get_settings
    from payops.params import validate_manual_payout

    env = {"PAYOPS_DATABASE_URL": f"sqlite:///{tmp_path / 'payops.db'}", "PAYOPS_OUTPUT_DIR": str(tmp_path / "out"),
           "PAYOPS_STRIPE_API_BASE": "http://127.0.0.1:9"}  # test-only keys count only away from real Stripe
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    db.upgrade(env["PAYOPS_DATABASE_URL"])
    settings = get_settings(fresh=True)
    (tmp_path / "keys").mkdir(mode=0o700)
    team = enroll_test_roster(tmp_path / "keys", [("operator", OPERATOR, "Quick Operator", ("operator",)),
                                                  ("ops", APPROVER, "Quick Ops", ("ops",))],
                              by=OPERATOR, settings=settings)
    params = validate_manual_payout({
        "studio_id": demo_data.STUDIO_A.studio_id, "studio_name": "Test Studio A",
        "ledger_payout_id": demo_data.REHEARSAL_LEDGER_PAYOUT_ID, "incident_id": "INC-QUICK-1",
        "amount": "875.50", "reserve_after": "120.00", "reason": "quick", "currency": "CAD",
        "destination_account": "acct_test_studio_a", "notes": "", "operator": OPERATOR, "dry_run": True})
    run_id = runner.prepare_run("manual_payout", params, live=False, settings=settings).id
    db.dispose_engines()
    get_settings(fresh=True)
    return env, run_id, team["ops"].key_path


def test_approve_and_runs_list_show_import_nothing_heavy(world: tuple[dict[str, str], str, Path]) -> None:
    env, run_id, ops_key = world
    code, out, modules = modules_after(["approve", run_id, "--role", "ops", "--key", str(ops_key)], env)
    assert code == 0 and "ops approval by Quick Ops" in out, out
    assert _heavy(modules) == []

    code, out, modules = modules_after(["runs", "list", "--format", "json"], env)
    assert code == 0 and [r["id"] for r in json.loads(out)] == [run_id]
    assert _heavy(modules) == []

    code, out, modules = modules_after(["runs", "show", run_id, "--format", "json"], env)
    assert code == 0 and [(a["role"], a["approver_id"], a["status"]) for a in json.loads(out)["approvals"]] == [
        ("ops", APPROVER, "signed")]
    assert _heavy(modules) == []

    code, out, modules = modules_after(["runs", "show", run_id], env)
    assert code == 0 and "signed" in out and "10-verify" in out, out
    assert _heavy(modules) == []


def test_the_core_modules_import_no_orm() -> None:
    probe = ("import sys\nimport payops.db.tables, payops.runrecords, payops.approvals.submit\n"
             "print(sorted(m for m in sys.modules if m == 'sqlalchemy.orm' or m == 'payops.db.models'))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# --- the pydantic-free coercion answers as Typer's own ---------------------------------------------------------
def _command() -> Any:
    app = typer.Typer()

    @app.command()
    def cmd(name: Annotated[str, typer.Argument()],
            text: Annotated[str | None, typer.Option("--text")] = None,
            count: Annotated[int, typer.Option("--count")] = 20,
            path: Annotated[Path | None, typer.Option("--path")] = None,
            existing: Annotated[Path | None, typer.Option("--existing", exists=True, dir_okay=False)] = None,
            folder: Annotated[Path | None, typer.Option("--folder", file_okay=False, resolve_path=True)] = None,
            ranged: Annotated[int, typer.Option("--ranged", min=1, max=5)] = 2,
            flag: Annotated[bool, typer.Option("--flag")] = False) -> None:
        pass

    return typer.main.get_command(app)


def _outcome(fn: Any) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except Exception as exc:  # noqa: BLE001 — the error and its message are what a user sees, whatever it is
        return type(exc).__name__, str(exc)


VALUES: list[Any] = ["", "a", "  a b ", "ünï", "\udcff", "a\x00b", "-", "~", ".", "/", "./x/../y//", "0", "7",
                     "007", "-3", "+4", " 5", "1_000", "12345678901234567890", "3.0", "x", 20, 0, True]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_plain_coercion_answers_as_typers_own(value: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_runtime_param = pytest.importorskip("typer._coercion").build_runtime_param  # Typer with pydantic coercion

    monkeypatch.chdir(tmp_path)
    (tmp_path / "a").write_text("file")
    (tmp_path / "x").mkdir()
    command = _command()
    ctx = command.make_context("cmd", ["n"])
    for param in command.params:
        param._runtime_param = None  # as before the command parsed anything
        plain = _plain(param)
        assert plain is not None, param.name
        own = build_runtime_param(param.type_descriptor)
        theirs = _outcome(lambda own=own, param=param: own.coerce(value, param=param, ctx=ctx))
        ours = _outcome(lambda plain=plain, param=param: plain.coerce(value, param=param, ctx=ctx))
        assert ours == theirs, (param.name, value)


def test_plain_coercion_is_installed_on_the_command_that_runs() -> None:
    pytest.importorskip("typer._coercion")
    command = _command()
    plain_coercion(command)
    assert all(type(p._runtime_param).__name__ == "_PlainParam" for p in command.params)


# --- the schema check reads the migrations' revision variables without parsing their bodies ----------------------
def _revision_vars(module: Any) -> dict[str, str]:
    import ast

    return {n.targets[0].id: ast.dump(n.value) for n in module.body if isinstance(n, ast.Assign)
            and len(n.targets) == 1 and isinstance(n.targets[0], ast.Name)
            and n.targets[0].id in ("revision", "down_revision", "branch_labels", "depends_on")}


def test_migration_headers_carry_the_whole_scripts_revision_variables() -> None:
    import ast

    from payops import db

    scripts = sorted((db.MIGRATIONS_DIR / "versions").glob("*.py"))
    assert scripts
    for path in scripts:
        text = path.read_text(encoding="utf-8")
        header = db._header(text)
        assert len(header.body) < len(ast.parse(text).body)  # the bodies were not parsed …
        assert _revision_vars(header) == _revision_vars(ast.parse(text))  # … and nothing it needs was lost


@pytest.mark.parametrize("source", [
    'revision = "1"\ndef upgrade():\n    pass\ndown_revision = "0"\n',  # assigned after a definition
    '"""doc\ndef not_code\n"""\nrevision = "1"\ndown_revision = None\n',  # the cut would fall inside a string
], ids=["late-assignment", "def-in-docstring"])
def test_migration_header_falls_back_to_the_whole_script(source: str) -> None:
    import ast

    from payops import db

    assert ast.dump(db._header(source)) == ast.dump(ast.parse(source))
