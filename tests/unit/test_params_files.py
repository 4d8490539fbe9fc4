"""Every named parameter set under params/ validates against its runbook's model."""

from __future__ import annotations

from pathlib import Path

import pytest

from payops.params import load_params_file, validate_manual_payout

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "params" / "manual_payout").glob("*.yaml"))


def test_there_are_parameter_sets() -> None:
    assert FILES, "params/manual_payout/ should hold at least the rehearsal example"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_manual_payout_parameter_set_is_valid(path: Path) -> None:
    params = validate_manual_payout(load_params_file(path) | {"currency": "CAD"})
    assert params.dry_run is True  # files never switch a run to live
    assert params.money.amount > 0


def test_the_rehearsal_parameter_set_is_valid_and_never_live() -> None:
    from datetime import date

    from payops.rehearsal.params import DEFAULT_PARAMS_FILE, gather

    assert DEFAULT_PARAMS_FILE == ROOT / "params" / "rehearsal" / "default.yaml"
    data = load_params_file(DEFAULT_PARAMS_FILE)
    assert "dry_run" not in data and "unattended" not in data  # the command decides, never the file
    params = gather(params_file=None, ticket=None, operator=None, actions=["Rotate keys=Security"], unattended=False,
                    live=False, wait_seconds=60, today=date(2027, 2, 2))
    assert params.ticket == "REH-2027-Q1" and params.dry_run is True
    assert params.actions[-1] == "Rotate keys=Security" and len(params.actions) == len(data["actions"]) + 1
