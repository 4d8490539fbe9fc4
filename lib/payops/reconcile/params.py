"""Reconciliation parameters (the notebook's contract) and the notebook's context.

``ReconParams`` is validated before any side effect; errors name the field (``ParamsInvalid``).
The report notebook ``notebooks/reconciliation/payouts_vs_ledger.ipynb`` declares exactly these
fields plus ``run_id`` in its ``parameters`` cell, and builds its context with
``ReconContext.from_notebook(run_id, globals())``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from payops.config import Settings, get_settings
from payops.errors import ParamsInvalid
from payops.params import _problems_from, canonical_sha256
from payops.reconcile.schema import ReconConfig

SOP = "reconciliation"
STEP = "payouts_vs_ledger"
MAX_SPAN_DAYS = 370
LEDGER_SUFFIXES = (".csv", ".parquet")



def _source(v: str, live: str, suffixes: tuple[str, ...], wrong_kind: str) -> str:
    """``live`` (read the system directly) or an existing export file with one of ``suffixes``."""
    if v == live:
        return v
    path = Path(v)
    if path.suffix.lower() not in suffixes:
        raise ValueError(wrong_kind)
    if not path.is_file():
        raise ValueError(f"{v!r} does not exist")
    return str(path.resolve())

class ReconParams(BaseModel):
    """One reconciliation: the period, where the ledger and Stripe data come from, the thresholds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    period_from: date
    period_to: date
    ledger: str = "db"
    stripe: str = "api"
    tolerance: int = 0
    timezone: str = "UTC"
    max_unexplained: int = 0
    cutoff_margin_days: int = 3

    @field_validator("ledger")
    @classmethod
    def _ledger(cls, v: str) -> str:
        return _source(v, "db", LEDGER_SUFFIXES, f"{v!r} must be 'db' or a .csv / .parquet ledger export")

    @field_validator("stripe")
    @classmethod
    def _stripe(cls, v: str) -> str:
        return _source(v, "api", (".csv",), f"{v!r} must be 'api' or a .csv export of transfers")

    @field_validator("tolerance", "max_unexplained", "cutoff_margin_days", mode="before")
    @classmethod
    def _non_negative_int(cls, v: Any) -> int:
        if isinstance(v, bool) or isinstance(v, float):
            raise ValueError(f"must be a whole number (minor units / a count), not {v!r}")
        if isinstance(v, str) and v.strip().lstrip("-").isdigit():
            v = int(v)
        if not isinstance(v, int):
            raise ValueError(f"must be a whole number, got {type(v).__name__}")
        if v < 0:
            raise ValueError(f"must be >= 0, got {v}")
        return v

    @field_validator("cutoff_margin_days")
    @classmethod
    def _margin(cls, v: int) -> int:
        if v > 60:
            raise ValueError(f"must be at most 60 days, got {v}")
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not an IANA time zone (e.g. UTC, America/Toronto)") from None
        return v

    @model_validator(mode="after")
    def _period(self) -> ReconParams:
        if self.period_to < self.period_from:
            raise ValueError("period_to is before period_from")
        span = (self.period_to - self.period_from).days + 1
        if span > MAX_SPAN_DAYS:
            raise ValueError(f"the period spans {span} days; at most {MAX_SPAN_DAYS} per reconciliation")
        return self

    # -- derived ------------------------------------------------------------------------------------
    def config(self) -> ReconConfig:
        """The pure core's configuration."""
        return ReconConfig(period_from=self.period_from, period_to=self.period_to, tolerance=self.tolerance,
                           cutoff_margin_days=self.cutoff_margin_days, timezone=self.timezone)

    @property
    def subject_key(self) -> str:
        return f"{self.period_from.isoformat()}..{self.period_to.isoformat()}"

    def params_hash(self) -> str:
        """sha256 of the canonical parameters (archived with the run)."""
        return canonical_sha256(self.model_dump(mode="json"))


def validate_recon(data: Mapping[str, Any]) -> ReconParams:
    """Validate or raise ParamsInvalid listing every bad field (``period_to`` for period problems)."""
    try:
        return ReconParams.model_validate(dict(data))
    except ValidationError as exc:
        problems = _problems_from(exc)
        for p in problems:
            if p.field == "parameters":  # the model-level period check
                object.__setattr__(p, "field", "period_to")
        raise ParamsInvalid(problems, "reconciliation parameters") from None


def check_files(params: ReconParams) -> None:
    """Read and check the export files the parameters name (``--ledger FILE``, ``--stripe FILE``) against their
    column contracts — ``ParamsInvalid`` naming ``ledger.<column>`` / ``stripe.<column>`` — so a bad export is
    refused before a run is created, not half-way through the report."""
    if params.ledger != "db":
        from payops.reconcile.load_ledger import load_ledger

        load_ledger(params.ledger, params.config())
    if params.stripe != "api":
        from payops.reconcile.load_stripe import load_stripe_csv

        load_stripe_csv(params.stripe)


def create_recon_run(params: ReconParams, settings: Settings | None = None) -> str:
    """A runbook run for this reconciliation (mode ``report``); returns its id. Export files named by the
    parameters are checked first (:func:`check_files`): a bad one is refused with no run created."""
    from payops import runner

    check_files(params)

    run = runner.create_run(SOP, params=params.model_dump(mode="json"), params_hash=params.params_hash(),
                            mode="report", subject_key=params.subject_key, settings=settings)
    return run.id


def recon_cache_root(settings: Settings) -> Path:
    """``PAYOPS_RECON_CACHE_DIR`` or ``<project>/var/recon-cache`` (raw Stripe pages; never archived)."""
    from payops.runner import ROOT

    return settings.recon_cache_dir or ROOT / "var" / "recon-cache"


@dataclass
class ReconContext:
    """What the report notebook works with: its run, parameters, settings and run folder."""

    run_id: str
    params: ReconParams
    settings: Settings
    run_dir: Path

    @classmethod
    def from_notebook(cls, run_id: str | None, namespace: Mapping[str, Any]) -> ReconContext:
        """From the notebook's parameters; ``run_id=None`` (JupyterLab) creates a run for them first."""
        if run_id is None:
            data = {k: namespace[k] for k in ReconParams.model_fields if k in namespace}
            run_id = create_recon_run(validate_recon(data))
            print(f"created reconciliation run {run_id} for these parameters")
        return cls.load(run_id)

    @classmethod
    def load(cls, run_id: str, settings: Settings | None = None) -> ReconContext:
        from payops import runstate
        from payops.db import session_scope

        settings = settings or get_settings()
        with session_scope(settings) as s:
            run = runstate.get_run(s, run_id)
            params = validate_recon(json.loads(run.params_json))
            folder = Path(run.output_dir or ".")
        folder.mkdir(parents=True, exist_ok=True)
        return cls(run_id=run_id, params=params, settings=settings, run_dir=folder)

    @property
    def config(self) -> ReconConfig:
        return self.params.config()

    @property
    def cache_dir(self) -> Path:
        """Raw Stripe pages, per period, reused by the next run over the same period (not archived); the cache
        and its folders are owner-only (0700), its files 0600."""
        from payops.filemodes import PRIVATE, make_dirs

        root = recon_cache_root(self.settings)
        return make_dirs(root / self.params.subject_key, PRIVATE, below=root)

    def stripe_client_factory(self) -> Any:
        """A factory of platform-key StripeClients (one per pulling thread)."""
        from functools import partial

        from payops.stripe_api import make_client

        return partial(make_client, settings=self.settings, purpose="platform", max_network_retries=0)
