"""The CLI answers at once: ``payops --help`` imports no command family, a command imports its own family
only, heavy libraries stay out of the quick commands — and the lazy registry shows exactly what the
families themselves say (structural tests: module sets, never timings)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli_probe import imported, modules_after
from payops import __version__
from payops.cli import FAMILIES, app
from payops.cli_lazy import load_family

HEAVY = ("pandas", "papermill", "nbconvert", "matplotlib", "duckdb", "payops.sandbox")
FAMILY_MODULES = sorted({f.module for f in FAMILIES.values()})


def test_root_help_imports_no_family_and_nothing_heavy() -> None:
    code, out, modules = modules_after(["--help"])
    assert code == 0 and "payout-cycle" in out and "manual-payout" in out
    assert [m for m in HEAVY if imported(modules, m)] == []
    assert [m for m in FAMILY_MODULES if m in modules] == []
    # nothing of the database or Stripe stack either: the help is Typer, Rich and the registry
    assert [m for m in ("sqlalchemy", "stripe", "pydantic", "payops.db") if imported(modules, m)] == []


def test_runs_list_imports_nothing_heavy(tmp_path: Path) -> None:
    from payops import db

    url = f"sqlite:///{tmp_path / 'payops.db'}"
    db.upgrade(url)
    db.dispose_engines()
    code, out, modules = modules_after(["runs", "list", "--format", "json"], {"PAYOPS_DATABASE_URL": url})
    assert code == 0 and json.loads(out) == []
    assert [m for m in HEAVY if imported(modules, m)] == []
    assert [m for m in FAMILY_MODULES if m in modules] == []
    assert not imported(modules, "stripe")


def test_a_family_command_imports_its_family_only() -> None:
    code, out, modules = modules_after(["schedule", "next", "--count", "1"])
    assert code == 0 and "upcoming slots" in out
    assert "payops.scheduler.cli" in modules
    assert [m for m in FAMILY_MODULES if m in modules] == ["payops.scheduler.cli"]
    assert [m for m in HEAVY if imported(modules, m)] == []


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_registry_line_is_the_familys_own_help(name: str) -> None:
    family = FAMILIES[name]
    group = load_family(name, family, rich_markup_mode="rich", suggest_commands=True)
    assert group.name == name
    assert (group.short_help or group.help) == family.help, "update FAMILIES in payops/cli.py"


def test_root_help_is_the_same_lazily_and_with_every_family_loaded() -> None:
    import typer

    runner = CliRunner()
    lazy = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    root = typer.main.get_command(app)
    ctx = root.make_context("payops", ["--help"], resilient_parsing=True)
    for name in FAMILIES:
        group = root.get_command(ctx, name)  # the real group, now cached in the root group
        assert group.commands or group.invoke_without_command  # (`payops rehearse` is one command: a callback)
    eager = runner.invoke(app, ["--help"], env={"COLUMNS": "120"})
    assert lazy.exit_code == eager.exit_code == 0
    assert lazy.stdout == eager.stdout
    for name in FAMILIES:
        assert name in lazy.stdout


def test_a_typo_of_a_lazy_family_is_suggested() -> None:
    res = CliRunner().invoke(app, ["recn"])
    assert res.exit_code == 2 and "Did you mean 'recon'?" in res.output
    res = CliRunner().invoke(app, ["run"])
    assert res.exit_code == 2 and "Did you mean 'runs'?" in res.output


def test_version() -> None:
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0 and res.stdout.strip() == f"payops {__version__}"
    code, out, _ = modules_after(["--version"])
    assert code == 0 and out.strip() == f"payops {__version__}"


def test_old_import_paths_of_the_shared_helpers_still_work() -> None:
    from payops import cli, cli_support
    from payops.reconcile import cli as recon_cli

    assert cli.handles_errors is cli_support.handles_errors is recon_cli.handles_errors
    assert cli.parse_duration("1h30m") == 5400
