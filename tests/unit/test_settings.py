"""Settings read from the environment: paths resolved where they were read."""

from __future__ import annotations

from pathlib import Path

import pytest

from payops.config import Settings
from payops.reconcile.params import recon_cache_root
from payops.runner import ROOT


def test_recon_cache_dir_comes_from_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PAYOPS_RECON_CACHE_DIR", raising=False)
    assert recon_cache_root(Settings()) == ROOT / "var" / "recon-cache"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYOPS_RECON_CACHE_DIR", "cache/recon")  # relative: resolved where it was read
    assert recon_cache_root(Settings()) == tmp_path / "cache" / "recon"


def test_every_setting_is_documented_in_the_readme() -> None:
    """The README's configuration table is the operators' reference: each environment variable a setting reads
    (its aliases) is named there."""
    readme = (ROOT / "README.md").read_text()
    missing = []
    for name, f in Settings.model_fields.items():
        alias = f.validation_alias
        names = [c for c in getattr(alias, "choices", [alias]) if isinstance(c, str)] or [name.upper()]
        missing += [n for n in names if f"`{n}`" not in readme]
    assert missing == []
