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
