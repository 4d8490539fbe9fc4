"""What the rehearsal's step notebooks call (``runbooks/rehearsal/``): one function per step.

- ``10-kickoff`` — :func:`kickoff`: the ticket, the start time on Stripe's clock, where the SOP lives.
- ``20-environment`` — :func:`environment`: each check pass/fail; a failure stops the rehearsal here,
  before anything is written (test-mode keys only, the rehearsal database is not production, the two
  connected accounts can receive transfers, the rehearsal channel and alias are configured).
- ``30-failed-payout`` — :func:`failed_payout`: the rehearsal studios and a fresh set of earnings in the
  rehearsal database, then the real payout cycle for a payout day this database has not used yet, with
  the automation switched off *in the rehearsal database only*: it fails on purpose and leaves a new
  ledger payout ``pending`` (a new id every rehearsal: no re-seeding between quarters).
- ``40-request`` — :func:`request`: the fallback request (reason ``stability_rehearsal``) as the SOP's
  parameters, and who approves it.

Steps 50–60 are the manual payout SOP's own notebooks (its dry run, then its live run in test mode),
run by :mod:`payops.rehearsal.flow`; ``70-validate`` and ``90-wrap-up`` are in
:mod:`payops.rehearsal.evidence`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd

from payops import demo_data
from payops.config import Settings
from payops.db.models import LedgerPayout, PayoutRun, Studio, StudioEarning
from payops.errors import PreconditionFailed
from payops.ids import payout_run_id, stable_uuid
from payops.rehearsal import world
from payops.rehearsal.params import REASON, SOP, RehearsalParams, validate_rehearsal
from payops.sop.context import RunContext

SOP_LOCATION = "runbooks/manual_payout/ (10-verify … 50-settle) · README: Manual payout fallback SOP"
STUDIOS = {s.studio_id: s for s in (demo_data.STUDIO_A, demo_data.STUDIO_B)}
ACCOUNTS = ("acct_test_studio_a", "acct_test_studio_b")
MAX_CYCLES_BACK = 400


def create_run(params: RehearsalParams, settings: Settings | None = None) -> str:
    """The rehearsal's runbook run (mode dry-run for the dry part, rehearsal to go live); its id."""
    from payops import runner

    run = runner.create_run(SOP, params=params.model_dump(mode="json"), params_hash=params.params_hash(),
                            mode="dry-run" if params.dry_run else "rehearsal", subject_key=f"rehearsal:{params.ticket}",
                            operator=params.operator, settings=settings)
    return run.id


@dataclass
class RehearsalContext(RunContext):
    """A rehearsal step: the run plus its :class:`RehearsalParams`."""

    params: RehearsalParams = field(kw_only=True)

    @classmethod
    def from_notebook(cls, step: str, run_id: str | None, namespace: Mapping[str, Any]) -> RehearsalContext:
        if run_id is None:  # JupyterLab: a run for these parameters first
            data = {k: namespace[k] for k in RehearsalParams.model_fields if k in namespace}
            run_id = create_run(validate_rehearsal(data))
            print(f"created rehearsal run {run_id} for these parameters")
        return cls.load(step, run_id)

    @classmethod
    def load(cls, step: str, run_id: str, settings: Settings | None = None) -> RehearsalContext:
        return cls._open(step, run_id, settings,
                         lambda run: {"params": validate_rehearsal(json.loads(run.params_json))})

    def result_of(self, step: str) -> dict[str, Any]:
        from payops import runstate

        with self.session() as s:
            row = runstate.step_row(s, self.run_id, step)
            return json.loads(row.result_json) if row.result_json else {}


@dataclass
class Table:
    """A step's result shown as a table (and recorded as JSON)."""

    step: str
    rows: list[dict[str, Any]]
    facts: dict[str, Any]
    ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"step": self.step, "rows": self.rows, "facts": self.facts, "ok": self.ok}

    def frame(self) -> Any:
        return styled(pd.DataFrame(self.rows))


def styled(df: pd.DataFrame) -> Any:
    """A table for the report: every word shown (no truncation), left-aligned, PASS green and FAIL red."""
    def colour(v: Any) -> str:
        return {"PASS": "color: #1a7f37; font-weight: bold", "FAIL": "color: #cf222e; font-weight: bold"}.get(
            str(v), "")

    return (df.style.hide(axis="index").format(precision=1).map(colour)
            .set_properties(**{"text-align": "left", "white-space": "pre-wrap", "vertical-align": "top"})
            .set_table_styles([{"selector": "th", "props": [("text-align", "left")]}]))


# --- 10 ---------------------------------------------------------------------------------------------
def kickoff(ctx: RehearsalContext) -> Table:
    started = world.stripe_now(ctx.settings)
    p = ctx.params
    facts = {"ticket": p.ticket, "started_at": started.isoformat(), "sop": SOP_LOCATION,
             "operator": p.operator, "mode": "unattended" if p.unattended else "attended",
             "goes_live": not p.dry_run, "sla_minutes": ctx.settings.sla_minutes, "run_id": ctx.run_id}
    rows = [{"item": k, "value": str(v)} for k, v in facts.items()]
    return Table("10-kickoff", rows, facts)


# --- 20 ---------------------------------------------------------------------------------------------
def _key_checks(settings: Settings) -> list[tuple[str, bool, str]]:
    from payops.stripe_api import key_problems

    live = world.live_key_problems()
    out = [("no live key in the environment", not live,
            "; ".join(p.field for p in live) or "none of sk_live_/rk_live_/pk_live_ found")]
    for var, key in (("STRIPE_FALLBACK_SECRET_KEY", settings.stripe_fallback_secret_key),
                     ("STRIPE_SECRET_KEY", settings.stripe_secret_key)):
        problems = key_problems(key, env_var=var, settings=settings, rehearsal=True, want_restricted=False)
        out.append((f"{var} is a test-mode key", not problems, "; ".join(p.message for p in problems) or "test mode"))
    return out


def _account_checks(ctx: RehearsalContext) -> list[tuple[str, bool, str]]:
    import stripe

    from payops.stripe_api import make_client, with_backoff

    out: list[tuple[str, bool, str]] = []
    try:
        client = make_client(settings=ctx.settings, purpose="platform")
    except Exception as exc:  # noqa: BLE001 — shown as the check's failure
        return [(f"{a} can receive transfers", False, str(exc)) for a in ACCOUNTS]
    for acct in ACCOUNTS:
        try:
            a = with_backoff(lambda acct=acct: client.v1.accounts.retrieve(acct)).to_dict()
        except stripe.StripeError as exc:
            out.append((f"{acct} can receive transfers", False, f"{type(exc).__name__}: {exc.user_message or exc}"))
            continue
        caps = a.get("capabilities") or {}
        ok = caps.get("transfers") == "active" and bool(a.get("payouts_enabled"))
        out.append((f"{acct} can receive transfers", ok,
                    f"transfers {caps.get('transfers')}, payouts_enabled {a.get('payouts_enabled')}"))
    return out


def environment(ctx: RehearsalContext) -> Table:
    """Every check, pass or fail; ``ok`` False when one fails (the notebook then raises)."""
    s = ctx.settings
    prod_url = os.environ.get("PAYOPS_REHEARSAL_PRODUCTION_DATABASE_URL", "")
    prod_channel = os.environ.get("PAYOPS_REHEARSAL_PRODUCTION_CHANNEL", "#payments-alerts")
    checks = _key_checks(s)
    separate = bool(prod_url) and world.database_identity(prod_url) != world.database_identity(s.database_url)
    from sqlalchemy.engine import make_url

    checks.append(("rehearsal database is not production", separate,
                   f"{make_url(s.database_url).render_as_string(hide_password=True)}"
                   + ("" if separate else " — is it PAYOPS_DATABASE_URL, or run outside `payops rehearse`?")))
    checks += _account_checks(ctx)
    hook = s.slack_webhook_url is not None and bool(s.slack_webhook_url.get_secret_value())
    checks.append(("rehearsal Slack channel configured", hook and s.slack_channel != prod_channel,
                   f"{s.slack_channel} (production {prod_channel})" + ("" if hook else ", no webhook")))
    checks.append(("rehearsal email alias configured", "@" in s.rehearsal_email_to, s.rehearsal_email_to))
    rows = [{"check": n, "result": "PASS" if ok else "FAIL", "detail": d} for n, ok, d in checks]
    return Table("20-environment", rows, {"failed": [n for n, ok, _ in checks if not ok]},
                 ok=all(ok for _, ok, _ in checks))


def raise_if_failed(table: Table) -> None:
    if not table.ok:
        raise PreconditionFailed(f"{table.step}: " + "; ".join(
            f"{r.get('check') or r.get('item')}: {r.get('detail')}" for r in table.rows if r.get("result") == "FAIL"))


# --- 30 ---------------------------------------------------------------------------------------------
def _seed_studios(ctx: RehearsalContext) -> None:
    """The rehearsal studios (Stripe test accounts), their email the rehearsal alias."""
    with ctx.session() as s:
        for st in STUDIOS.values():
            row = s.get(Studio, st.studio_id)
            if row is None:
                s.add(Studio(id=st.studio_id, name=st.name, email=ctx.settings.rehearsal_email_to,
                             stripe_account_id=st.account_id, currency=st.currency,
                             reserve_minimum=st.reserve_minimum, charges_enabled=True, payouts_enabled=True))
            else:
                row.email = ctx.settings.rehearsal_email_to


def _in_stripe(ctx: RehearsalContext, ledger_payout_id: str) -> bool:
    """Whether Stripe test mode already holds a transfer for this ledger payout (shared with another world)."""
    from payops.stripe_api import with_backoff

    client = ctx.stripe("platform")
    found = with_backoff(lambda: client.v1.transfers.list({"transfer_group": ledger_payout_id, "limit": 1}))
    return bool(found.data)


def unused_cycle_date(ctx: RehearsalContext, now: datetime) -> date:
    """The latest payout day at or before ``now`` that this database has no payout run for, and whose ledger
    payout id (derived from the day and the studio) Stripe test mode has never seen a transfer for."""
    from payops.cycle import slots

    at = now
    with ctx.session() as s:
        for _ in range(MAX_CYCLES_BACK):
            day = slots.current_cycle_date(ctx.settings, at)
            if (s.get(PayoutRun, payout_run_id(day)) is None
                    and not _in_stripe(ctx, stable_uuid("ledger_payout", day, ctx.params.studio_id))):
                return day
            at = datetime.combine(day, datetime.min.time(), tzinfo=UTC) - timedelta(seconds=1)
    raise PreconditionFailed(f"no unused payout day in the last {MAX_CYCLES_BACK} cycles of this rehearsal database")


def _minor(amount: str) -> int:
    return int(Decimal(amount) * 100)


def _seed_earnings(ctx: RehearsalContext, day: date, cutoff: datetime) -> int:
    p = ctx.params
    added = 0
    with ctx.session() as s:
        for studio_id, amounts in ((p.studio_id, p.earnings), (p.other_studio_id, p.other_earnings)):
            st = STUDIOS[studio_id]
            for i, amount in enumerate(amounts):
                eid = stable_uuid("rehearsal-earning", ctx.run_id, studio_id, i)
                s.add(StudioEarning(id=eid, studio_id=studio_id, amount=_minor(amount), currency=st.currency,
                                    earned_at=cutoff - timedelta(days=3, hours=i), source="sale",
                                    source_ref=f"rehearsal:{ctx.run_id}:{studio_id[:8]}:{i}"))
                added += 1
    return added


def failed_payout(ctx: RehearsalContext) -> Table:
    """Fresh earnings, then the real cycle with the switch off (rehearsal database only): it fails on purpose."""
    from payops import runner
    from payops.cycle import engine, slots
    from payops.cycle.runbook import run_cycle_runbook

    if not world.in_rehearsal_world(ctx.settings):
        raise PreconditionFailed("not in the rehearsal world: the cycle's switch is only ever turned off in the "
                                 "rehearsal database (run this through `payops rehearse`)")
    if ctx.params.studio_id not in STUDIOS or ctx.params.other_studio_id not in STUDIOS:
        raise PreconditionFailed(f"studio_id / other_studio_id must be the rehearsal studios {sorted(STUDIOS)}")
    _seed_studios(ctx)
    now = datetime.now(UTC)
    day = unused_cycle_date(ctx, now)
    cutoff = (slots.cycle_slot(ctx.settings, day) or now).astimezone(UTC)
    earnings = _seed_earnings(ctx, day, cutoff)
    with ctx.session() as s:
        engine.set_disabled(s, disabled=True, reason=f"fallback rehearsal {ctx.params.ticket} (rehearsal database)",
                            by=ctx.operator)
    error = None
    cycle_run = None
    try:
        run_cycle_runbook(day, live=True, settings=ctx.settings, trigger="manual")
    except runner.StepFailed as exc:
        error, cycle_run = exc.error, exc.run_id
    failed_at = world.stripe_now(ctx.settings)
    lp_id = stable_uuid("ledger_payout", day, ctx.params.studio_id)
    with ctx.session() as s:
        lp = s.get(LedgerPayout, lp_id)
        run = s.get(PayoutRun, payout_run_id(day))
        lp_row = None if lp is None else {"ledger_payout_id": lp.id, "status": lp.status, "gross": lp.gross,
                                          "fee": lp.fee, "reserve": lp.reserve, "net": lp.net, "currency": lp.currency}
        cycle_status = run.status if run else None
    ok = error is not None and "CycleDisabled" in error and lp_row is not None and lp_row["status"] == "pending"
    facts = {"cycle_date": day.isoformat(), "cycle_run_id": cycle_run, "cycle_status": cycle_status,
             "cycle_error": error, "failed_at": failed_at.isoformat(), "earnings_seeded": earnings,
             "ledger_payout": lp_row}
    rows = [{"item": k, "value": json.dumps(v) if isinstance(v, dict) else str(v)} for k, v in facts.items()]
    if not ok:
        rows.append({"item": "result", "value": "the cycle did not fail on purpose leaving the payout pending",
                     "result": "FAIL", "detail": f"cycle {cycle_status}: {error}"})
    return Table("30-failed-payout", rows, facts, ok=ok)


# --- 40 ---------------------------------------------------------------------------------------------
def sop_params(ctx: RehearsalContext, payout: dict[str, Any]) -> dict[str, Any]:
    """The SOP's parameters for this rehearsal's failed payout (what the approvers approve)."""
    from payops.money import Money

    lp = payout["ledger_payout"]
    st = STUDIOS[ctx.params.studio_id]
    return {
        "studio_id": st.studio_id, "studio_name": st.name, "ledger_payout_id": lp["ledger_payout_id"],
        "incident_id": ctx.params.ticket, "amount": Money(lp["net"], lp["currency"]).decimal_str(),
        "reserve_after": Money(lp["reserve"], lp["currency"]).decimal_str(), "reason": REASON,
        "destination_account": st.account_id, "currency": lp["currency"],
        "notes": f"Quarterly fallback rehearsal {ctx.params.ticket} (cycle {payout['cycle_date']} failed on purpose)",
        "operator": ctx.params.operator, "is_rehearsal": True,
    }


def request(ctx: RehearsalContext) -> Table:
    payout = ctx.result_of("30-failed-payout").get("facts") or {}
    if not payout.get("ledger_payout"):
        raise PreconditionFailed("step 30-failed-payout recorded no pending ledger payout")
    params = sop_params(ctx, payout)
    who = ("generated rehearsal-only roster entries (keys made for the rehearsal database, deleted after)"
           if ctx.params.unattended else "two rostered people other than the operator, each with their own key")
    facts = {"sop_params": params, "approvals": {"ops": who, "finance": who}, "reason": REASON}
    rows = [{"field": k, "value": str(v)} for k, v in params.items()]
    rows += [{"field": f"approval ({r})", "value": w} for r, w in facts["approvals"].items()]
    return Table("40-request", rows, facts)
