"""Persistence of reconciliations: ``recon_runs`` and ``recon_breaks``, and the break lifecycle.

- ``save_result`` stores one reconciliation under the runbook run's id: one ``recon_breaks`` row per
  break with its break key (``match.break_key``). A break whose key was seen by an earlier
  reconciliation keeps that FIRST SEEN date (aging) and its explanation (who, when, why): an
  explained break stays explained while it persists; a new break starts unexplained.
- ``explain(break_id, note, by)`` records why a break is acceptable (by = a person's UUID).
- ``signoff(recon_run_id, preparer, approver)``: two distinct people (UUIDs), the time recorded.
  Refused while the run's unexplained breaks exceed its threshold (``max_unexplained``): sign-off
  says Finance accepts every difference, so what is still unexplained must be explained first.
  A run is signed off once; a second sign-off is refused.
- ``amount`` on a break is the money at stake in minor units: ``|difference|`` when non-zero, else
  the Stripe amount, else the ledger amount.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import pandas as pd
from sqlalchemy import func, select

from payops.config import Settings
from payops.db import session_scope
from payops.db.models import ReconBreak, ReconRun, utcnow
from payops.errors import FieldProblem, ParamsInvalid, PayopsError, ReconciliationBreaks
from payops.params import canonical_uuid
from payops.reconcile.match import ReconResult, break_key

CHUNK = 500


@dataclass(frozen=True)
class SavedRun:
    recon_run_id: str
    breaks: int
    unexplained: int
    max_unexplained: int
    first_seen: dict[str, date]  # break key → first seen

    @property
    def over_threshold(self) -> bool:
        return self.unexplained > self.max_unexplained


def _nullable(v: Any) -> Any:
    return None if v is None or v is pd.NA or (isinstance(v, float) and v != v) else v


def _stake(row: Any) -> int:
    diff, stripe_amt, ledger_amt = (_nullable(row.get(k)) for k in ("difference", "stripe_amount", "ledger_amount"))
    if diff is not None and int(diff) != 0:
        return abs(int(diff))
    return abs(int(stripe_amt if stripe_amt is not None else ledger_amt if ledger_amt is not None else 0))


@dataclass
class _Prior:
    first_seen: date
    explanation: str | None = None
    explained_at: datetime | None = None
    explained_by: str | None = None


def _earlier(s: Any, keys: list[str], run_id: str) -> dict[str, _Prior]:
    """Per key: the first date any earlier reconciliation saw it, and its latest explanation."""
    out: dict[str, _Prior] = {}
    cols = (ReconBreak.break_key, ReconBreak.first_seen, ReconBreak.explanation, ReconBreak.explained_at,
            ReconBreak.explained_by)
    for i in range(0, len(keys), CHUNK):
        stmt = select(*cols).where(ReconBreak.break_key.in_(keys[i:i + CHUNK]), ReconBreak.recon_run_id != run_id)
        for key, first, note, at, by in s.execute(stmt):
            prior = out.setdefault(key, _Prior(first))
            prior.first_seen = min(prior.first_seen, first)
            if note is not None and (prior.explained_at is None or (at is not None and at > prior.explained_at)):
                prior.explanation, prior.explained_at, prior.explained_by = note, at, by
    return out


def save_result(result: ReconResult, *, run_id: str, max_unexplained: int = 0, params_hash: str | None = None,
                settings: Settings | None = None, today: date | None = None) -> SavedRun:
    """Store the reconciliation under ``run_id`` (replacing an earlier save of the same run)."""
    today = today or datetime.now(UTC).date()
    breaks = result.breaks()
    records = breaks.to_dict("records")
    keys = [break_key(r) for r in records]
    with session_scope(settings) as s:
        old = s.get(ReconRun, run_id)
        if old is not None:
            if old.signed_off_at is not None:
                raise PayopsError(f"reconciliation {run_id} is signed off; it cannot be saved again")
            for b in s.scalars(select(ReconBreak).where(ReconBreak.recon_run_id == run_id)):
                s.delete(b)
            s.delete(old)
            s.flush()
        earlier = _earlier(s, sorted(set(keys)), run_id)
        s.add(ReconRun(id=run_id, period_from=result.config.period_from, period_to=result.config.period_to,
                       status="open", params_hash=params_hash, max_unexplained=max_unexplained,
                       rows_total=len(result.results), breaks_total=len(records)))
        s.flush()
        first_seen: dict[str, date] = {}
        unexplained = 0
        for key, r in zip(keys, records, strict=True):
            prev = earlier.get(key)
            first = min(prev.first_seen, today) if prev is not None else today
            first_seen[key] = min(first, first_seen.get(key, first))
            explained = prev is not None and prev.explanation is not None
            unexplained += not explained
            s.add(ReconBreak(
                id=str(uuid.uuid4()), recon_run_id=run_id, break_key=key[:200], category=str(r["category"]),
                amount=_stake(r), currency=str(_nullable(r.get("currency")) or _nullable(r.get("stripe_currency"))
                                               or "XXX")[:3],
                first_seen=first_seen[key], ledger_payout_id=_nullable(r.get("ledger_payout_id")),
                transfer_id=_nullable(r.get("transfer_id")), payout_id=_nullable(r.get("payout_id")),
                reason=_nullable(r.get("reason")), suggested_action=_nullable(r.get("suggested_action")),
                explanation=prev.explanation if explained and prev is not None else None,
                explained_at=prev.explained_at if explained and prev is not None else None,
                explained_by=prev.explained_by if explained and prev is not None else None,
            ))
    return SavedRun(run_id, len(records), unexplained, max_unexplained, first_seen)


def _uuid(value: str | None, field: str) -> str:
    try:
        return canonical_uuid(value, field)
    except ValueError as exc:
        raise ParamsInvalid(FieldProblem(field, str(exc))) from None


def explain(break_id: str, note: str, by: str | None, *, settings: Settings | None = None) -> dict[str, Any]:
    """Record why a break is acceptable (or what was done about it)."""
    problems = []
    if not note or not note.strip():
        problems.append(FieldProblem("--note", "must say why the break is acceptable or what was done"))
    elif len(note) > 2000:
        problems.append(FieldProblem("--note", "is longer than 2000 characters"))
    if problems:
        raise ParamsInvalid(problems, "explanation")
    who = _uuid(by, "--by") if by else None
    with session_scope(settings) as s:
        b = s.get(ReconBreak, break_id)
        if b is None:
            raise PayopsError(f"no break with id {break_id!r} (see `payops recon breaks`)")
        run = s.get(ReconRun, b.recon_run_id)
        if run is not None and run.signed_off_at is not None:
            raise PayopsError(f"reconciliation {run.id} is signed off; its breaks can no longer be explained")
        b.explanation, b.explained_by, b.explained_at = note.strip(), who, utcnow()
        return _break_dict(b)


def unexplained_count(recon_run_id: str, *, settings: Settings | None = None) -> int:
    with session_scope(settings) as s:
        _run(s, recon_run_id)
        return int(s.scalar(select(func.count()).select_from(ReconBreak).where(
            ReconBreak.recon_run_id == recon_run_id, ReconBreak.explanation.is_(None))) or 0)


def signoff(recon_run_id: str, preparer: str, approver: str, *, settings: Settings | None = None) -> dict[str, Any]:
    """Preparer and approver (distinct UUIDs) sign the reconciliation off; the time is recorded."""
    problems: list[FieldProblem] = []
    ids: dict[str, str] = {}
    for field, value in (("--preparer", preparer), ("--approver", approver)):
        try:
            ids[field] = canonical_uuid(value, field)
        except ValueError as exc:
            problems.append(FieldProblem(field, str(exc)))
    if not problems and ids["--preparer"] == ids["--approver"]:
        problems.append(FieldProblem("--approver", "must be a different person from the preparer"))
    if problems:
        raise ParamsInvalid(problems, "sign-off")
    open_breaks = unexplained_count(recon_run_id, settings=settings)
    with session_scope(settings) as s:
        run = _run(s, recon_run_id)
        if run.signed_off_at is not None:
            raise PayopsError(f"reconciliation {recon_run_id} was already signed off at "
                              f"{run.signed_off_at:%Y-%m-%d %H:%M}Z by {run.preparer_id} and {run.approver_id}")
        limit = run.max_unexplained or 0
        if open_breaks > limit:
            raise ReconciliationBreaks(f"{open_breaks} unexplained break(s) in {recon_run_id} exceed the threshold "
                                       f"{limit}: explain them first (`payops recon explain BREAK_ID --note …`)")
        run.preparer_id, run.approver_id, run.signed_off_at = ids["--preparer"], ids["--approver"], utcnow()
        run.status = "signed_off"
        return run_dict(run, open_breaks)


def _run(s: Any, recon_run_id: str) -> ReconRun:
    run = s.get(ReconRun, recon_run_id)
    if run is None:
        raise PayopsError(f"no reconciliation with id {recon_run_id!r} (see `payops runs list --sop reconciliation`)")
    return run


def run_dict(run: ReconRun, unexplained: int | None = None) -> dict[str, Any]:
    return {"id": run.id, "period_from": run.period_from.isoformat(), "period_to": run.period_to.isoformat(),
            "status": run.status, "breaks": run.breaks_total, "unexplained": unexplained,
            "max_unexplained": run.max_unexplained, "preparer_id": run.preparer_id, "approver_id": run.approver_id,
            "signed_off_at": run.signed_off_at.isoformat() if run.signed_off_at else None}


def _break_dict(b: ReconBreak) -> dict[str, Any]:
    return {"id": b.id, "recon_run_id": b.recon_run_id, "break_key": b.break_key, "category": b.category,
            "amount": b.amount, "currency": b.currency, "first_seen": b.first_seen.isoformat(),
            "ledger_payout_id": b.ledger_payout_id, "transfer_id": b.transfer_id, "payout_id": b.payout_id,
            "reason": b.reason, "suggested_action": b.suggested_action, "explanation": b.explanation,
            "explained_by": b.explained_by, "explained_at": b.explained_at.isoformat() if b.explained_at else None}


def latest_run_id(*, settings: Settings | None = None) -> str:
    with session_scope(settings) as s:
        rid = s.scalar(select(ReconRun.id).order_by(ReconRun.created_at.desc()).limit(1))
    if rid is None:
        raise PayopsError("no reconciliation has been saved yet (run `payops recon --from … --to …`)")
    return rid


def breaks_of(recon_run_id: str, *, settings: Settings | None = None) -> list[dict[str, Any]]:
    """The run's breaks, oldest first-seen first."""
    with session_scope(settings) as s:
        _run(s, recon_run_id)
        rows: Iterable[ReconBreak] = s.scalars(select(ReconBreak).where(ReconBreak.recon_run_id == recon_run_id)
                                               .order_by(ReconBreak.first_seen, ReconBreak.category,
                                                         ReconBreak.break_key))
        return [_break_dict(b) for b in rows]


def break_table(recon_run_id: str, *, settings: Settings | None = None) -> Any:
    """The break list as Finance reads it: the id to pass to `payops recon explain`, amount, reason,
    evidence, suggested action, age. A pandas Styler, so long reasons wrap instead of being cut."""
    import pandas as pd

    from payops.money import Money

    rows = breaks_of(recon_run_id, settings=settings)
    df = pd.DataFrame([{
        "break id (for explain)": b["id"], "category": b["category"],
        "amount": Money(b["amount"], b["currency"]).format(), "reason": b["reason"],
        "evidence": " · ".join(x for x in (b["ledger_payout_id"], b["transfer_id"], b["payout_id"]) if x),
        "suggested action": b["suggested_action"], "first seen": b["first_seen"],
        "explanation": b["explanation"] or "",
    } for b in rows])
    return df.style.hide(axis="index").set_properties(**{"white-space": "normal", "text-align": "left"})
