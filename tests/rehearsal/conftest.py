from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from rehearsal_helpers import world_env

from payops.config import get_settings


@pytest.fixture()
def rehearsal_env(payops_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:  # type: ignore[no-untyped-def]
    """``payops_env`` (production: its database, #payments-alerts webhook) plus the rehearsal world's variables."""
    for k, v in world_env(payops_env, tmp_path).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("PAYOPS_OPERATOR_ID", raising=False)
    get_settings(fresh=True)
    yield payops_env
    get_settings(fresh=True)
