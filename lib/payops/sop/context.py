"""What a runbook step notebook works with: its run, parameters, settings, database and run folder.

A notebook calls ``StepContext.from_notebook(step, run_id, globals())`` once; everything else goes
through the context. Artifacts are append-only: a re-executed step never overwrites what an earlier
attempt wrote (the archive may already have sealed it).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self

from sqlalchemy.orm import Session

from payops import runstate
from payops.config import Settings, get_settings
from payops.db import session_scope
from payops.db.models import RunbookRun, utcnow
from payops.errors import PayopsError
from payops.params import ManualPayoutParams, validate_manual_payout

if TYPE_CHECKING:  # the SDK is imported by the steps that call Stripe, not by every step's context
    import stripe

RUN_FIELDS = ("run_id",)


class StepResult(Protocol):
    ok: bool

    def as_dict(self) -> dict[str, Any]: ...


def json_default(o: Any) -> Any:
    if hasattr(o, "isoformat"):
        return o.isoformat()
    if hasattr(o, "as_dict"):
        return o.as_dict()
    sdk = sys.modules.get("stripe")  # a Stripe object exists only once the SDK is imported
    if sdk is not None and isinstance(o, sdk.StripeObject):
        return o.to_dict()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=json_default, ensure_ascii=False)


@dataclass
class RunContext:
    """What every runbook notebook works with, whatever its parameters: the run, settings, database,
    Stripe clients and the run folder (append-only artifacts, recorded step results)."""

    step: str
    run_id: str
    settings: Settings
    run_dir: Path
    mode: str
    operator: str | None
    params_hash: str
    _clients: dict[str, stripe.StripeClient] = field(default_factory=dict, init=False, repr=False)

    @classmethod
    def _open(cls, step: str, run_id: str, settings: Settings | None,
              extra: Callable[[RunbookRun], dict[str, Any]]) -> Self:
        """Load the run, build the context (``extra(run)`` gives the subclass's own fields, e.g. its
        validated parameters), mark the step running and make sure the run folder exists."""
        settings = settings or get_settings()
        with session_scope(settings) as s:
            run = runstate.get_run(s, run_id)
            ctx = cls(step=step, run_id=run.id, settings=settings, run_dir=Path(run.output_dir or "."),
                      mode=run.mode, operator=run.operator, params_hash=run.params_hash, **extra(run))
            cls.mark_running(s, run_id, step)
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        return ctx

    @staticmethod
    def mark_running(s: Session, run_id: str, step: str) -> None:
        """A step executed outside the runner (JupyterLab, nbval) is marked running here."""
        row = runstate.step_row(s, run_id, step)
        if row.status != "running":
            runstate.set_step(s, run_id, step, status="running", attempts=row.attempts + 1, started_at=utcnow())

    # -- facts ------------------------------------------------------------------------------------
    @property
    def dry_run(self) -> bool:
        return self.mode == "dry-run"

    @contextmanager
    def session(self) -> Iterator[Session]:
        with session_scope(self.settings) as s:
            yield s

    def run_row(self, s: Session) -> RunbookRun:
        return runstate.get_run(s, self.run_id)

    def stripe(self, purpose: str = "fallback", **kw: Any) -> stripe.StripeClient:
        """``fallback``: the SOP's restricted key. ``platform``: STRIPE_SECRET_KEY."""
        from payops.stripe_api import make_client

        key = f"{purpose}:{sorted(kw.items())}"
        if key not in self._clients:
            self._clients[key] = make_client(settings=self.settings, purpose=purpose, **kw)  # type: ignore[arg-type]
        return self._clients[key]

    def has_platform_key(self) -> bool:
        return self.settings.stripe_secret_key is not None

    # -- artifacts (append-only) --------------------------------------------------------------
    def artifact_path(self, name: str) -> Path:
        """A fresh path in the run folder: ``name`` or, if an earlier attempt wrote it, ``name.2`` …"""
        path = self.run_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        n = 2
        while path.exists():
            path = self.run_dir / f"{Path(name).stem}.attempt{n}{Path(name).suffix}"
            n += 1
        return path

    def write_artifact(self, name: str, content: str | dict[str, Any] | list[Any]) -> Path:
        path = self.artifact_path(name)
        text = content if isinstance(content, str) else dumps(content)
        path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        return path

    # -- results ------------------------------------------------------------------------------
    def previous_result(self) -> dict[str, Any] | None:
        with self.session() as s:
            row = runstate.step_row(s, self.run_id, self.step)
            return json.loads(row.result_json) if row.result_json else None

    def save_progress(self, partial: dict[str, Any]) -> None:
        """Persist part of a step's result before the step ends (e.g. one notification delivered)."""
        with self.session() as s:
            runstate.set_step(s, self.run_id, self.step, result_json=dumps(partial))

    def record(self, result: StepResult) -> None:
        """Write the step's result to the run folder and the database. A failed result is recorded
        too, then the caller raises."""
        data = result.as_dict()
        path = self.write_artifact(f"results/{self.step}.json", data)
        with self.session() as s:
            values: dict[str, Any] = {"result_json": dumps(data)}
            if result.ok:
                values.update(status="succeeded", finished_at=utcnow(), error=None)
            runstate.set_step(s, self.run_id, self.step, **values)
        print(f"recorded {self.step} → {path.relative_to(self.run_dir)}")


@dataclass
class StepContext(RunContext):
    """A manual payout SOP step: the run plus its validated ``ManualPayoutParams``."""

    params: ManualPayoutParams = field(kw_only=True)
    detected_at: Any = field(kw_only=True, default=None)

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_notebook(cls, step: str, run_id: str | None, namespace: Mapping[str, Any]) -> StepContext:
        """Build the context from a notebook's parameters. ``run_id=None`` (a person in JupyterLab)
        creates a dry-run run for these parameters first."""
        data = {k: namespace[k] for k in ManualPayoutParams.model_fields if k in namespace}
        if run_id is None:
            from payops import runner

            params = runner.resolve_manual_payout(validate_manual_payout(data))
            run_id = runner.prepare_run("manual_payout", params, live=False).id
            print(f"created dry-run run {run_id} for these parameters")
        return cls.load(step, run_id)

    @classmethod
    def load(cls, step: str, run_id: str, settings: Settings | None = None) -> StepContext:
        return cls._open(step, run_id, settings, lambda run: {
            "params": validate_manual_payout(json.loads(run.params_json)), "detected_at": run.detected_at})

    def record(self, result: StepResult) -> None:
        """Record the step's result; a step run by hand (JupyterLab cell by cell, nbval: no runner holds the
        run) then seals the run folder into the archive, as the runner seals each of its executions."""
        super().record(result)
        from payops import runner

        manifest = runner.seal_hand_run(self.run_id, step_ok=result.ok, step=self.step, settings=self.settings)
        if manifest is not None:
            print(f"sealed {manifest.relative_to(self.run_dir)} (run by hand: every step recorded is archived)")

    @property
    def is_rehearsal(self) -> bool:
        return self.params.is_rehearsal

    @property
    def idempotency_key(self) -> str:
        """Derived, never random: a retry, a crash and a resume of this run all reuse it."""
        return f"manual-payout:{self.params.ledger_payout_id}:{self.run_id}"


def require(condition: bool, message: str) -> None:
    if not condition:
        raise PayopsError(message)
