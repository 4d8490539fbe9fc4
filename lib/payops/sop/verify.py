"""Step 10 — verify. Every precondition is checked and shown; all failures are listed together.

Nothing here writes to Stripe, the ledger or the audit table. The ledger payout's details are
exported to the run folder as the step's attachment.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import stripe
from sqlalchemy import select

from payops import runstate
from payops.approvals.checks import check_run
from payops.db.models import LedgerPayout, ManualPayout, Studio, TransferIntent
from payops.errors import PreconditionFailed
from payops.money import Money
from payops.sop.context import StepContext
from payops.stripe_api import describe_key, key_problems, redact, to_payment_error, with_backoff


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    required: bool = True  # False: shown for information (e.g. approvals in a dry run)
    warning: bool = False  # not required here, but shown loudly (e.g. a full secret key in a dry run)

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.name, "ok": self.ok, "detail": self.detail, "required": self.required,
                "warning": self.warning}


@dataclass
class VerifyResult:
    run_id: str
    mode: str
    checks: list[Check] = field(default_factory=list)
    ledger: dict[str, Any] | None = None
    attachments: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.required and not c.ok]

    @property
    def warnings(self) -> list[Check]:
        return [c for c in self.checks if c.warning and not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failures

    def add(self, name: str, ok: bool, detail: str, required: bool = True, warning: bool = False) -> None:
        self.checks.append(Check(name, ok, detail, required, warning and not required))

    def print_warnings(self) -> None:
        """Shout what a dry run lets through but a live run refuses (a full secret key, an over-broad key)."""
        for c in self.warnings:
            print(f"⚠ WARNING — {c.name}: {c.detail}")

    def table(self) -> pd.DataFrame:
        rows = [{"check": c.name, "result": ("PASS" if c.ok else ("FAIL" if c.required else
                                                                   "WARNING" if c.warning else "PENDING")),
                 "detail": c.detail} for c in self.checks]
        return pd.DataFrame(rows, columns=["check", "result", "detail"])

    def raise_if_failed(self) -> None:
        if self.failures:
            raise PreconditionFailed([(c.name, c.detail) for c in self.failures])

    def as_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "mode": self.mode, "ok": self.ok,
                "checks": [c.as_dict() for c in self.checks],
                "warnings": [f"{c.name}: {c.detail}" for c in self.warnings], "ledger": self.ledger,
                "attachments": self.attachments}


def _stripe_transfers_for(ctx: StepContext, ledger_payout_id: str) -> list[stripe.Transfer]:
    client = ctx.stripe()
    page = with_backoff(lambda: client.v1.transfers.list({"transfer_group": ledger_payout_id, "limit": 100}))
    return list(page.auto_paging_iter())


def run(ctx: StepContext) -> VerifyResult:
    p = ctx.params
    res = VerifyResult(ctx.run_id, ctx.mode)
    live = not ctx.dry_run
    money = p.money
    res.add("parameters", True, f"valid; params sha256 {ctx.params_hash[:16]}…")

    with ctx.session() as s:
        lp = s.get(LedgerPayout, p.ledger_payout_id)
        studio = s.get(Studio, p.studio_id)
        manual = s.scalar(select(ManualPayout).where(ManualPayout.ledger_payout_id == p.ledger_payout_id))
        intent = s.get(TransferIntent, p.ledger_payout_id)
        voided = runstate.other_hash_approvals(s, p.ledger_payout_id, ctx.params_hash)
        # signed approvals and the go-live, each re-verified against the roster as it stood when given
        approvals = check_run(s, run_id=ctx.run_id, settings=ctx.settings, require_golive=live)

        # -- ledger ------------------------------------------------------------------------------
        if lp is None:
            res.add("ledger payout exists", False, f"no ledger payout {p.ledger_payout_id}")
        else:
            res.add("ledger payout exists", True, f"{lp.id} status={lp.status} net={Money(lp.net, lp.currency)}")
            res.ledger = {"ledger_payout_id": lp.id, "run_id": lp.run_id, "studio_id": lp.studio_id,
                          "gross": lp.gross, "fee": lp.fee, "reserve": lp.reserve, "net": lp.net,
                          "currency": lp.currency, "status": lp.status, "stripe_transfer_id": lp.stripe_transfer_id}
            res.add("belongs to the studio", lp.studio_id == p.studio_id,
                    "ledger studio matches" if lp.studio_id == p.studio_id
                    else f"ledger payout belongs to studio {lp.studio_id}, not {p.studio_id}")
            own = intent is not None and intent.run_id == ctx.run_id
            unpaid = lp.status in ("scheduled", "pending", "failed") and lp.stripe_transfer_id is None
            res.add("ledger payout is unpaid", unpaid or own,
                    f"status {lp.status}" + (" (transferred by this run: resuming)" if own and not unpaid else "")
                    if unpaid or own else
                    f"status {lp.status}, transfer {lp.stripe_transfer_id or '—'}: already paid or in progress")
            res.add("currency", lp.currency == money.currency,
                    f"{money.currency}" if lp.currency == money.currency
                    else f"parameters say {money.currency}, ledger says {lp.currency}")
            if lp.currency == money.currency:
                expected = Money(lp.net, lp.currency)
                res.add("amount equals ledger net", expected == money,
                        f"{money} = ledger net" if expected == money else f"{money} given, ledger net is {expected}")
                reserve_ledger = Money(lp.reserve, lp.currency)
                res.add("reserve after matches ledger", p.reserve_money == reserve_ledger,
                        f"{p.reserve_money}" if p.reserve_money == reserve_ledger
                        else f"{p.reserve_money} given, ledger reserve is {reserve_ledger}")
        if manual is not None and manual.run_id != ctx.run_id:
            res.add("no earlier manual payout", False,
                    f"manual payout {manual.stripe_transfer_id} already recorded by run {manual.run_id}")
        elif intent is not None and intent.run_id != ctx.run_id and intent.status != "failed":
            res.add("no earlier manual payout", False,
                    f"run {intent.run_id} holds this ledger payout (transfer {intent.status}"
                    f"{' ' + intent.stripe_transfer_id if intent.stripe_transfer_id else ''})")
        else:
            res.add("no earlier manual payout", True, "none in manual_payouts or transfer_intents")

        # -- studio --------------------------------------------------------------------------
        if studio is None:
            res.add("studio on record", False, f"no studio {p.studio_id}")
        else:
            res.add("studio name matches", studio.name == p.studio_name,
                    "matches" if studio.name == p.studio_name
                    else f"parameters say {p.studio_name!r}, ledger says {studio.name!r}")
            res.add("destination is the studio's account", studio.stripe_account_id == p.destination_account,
                    p.destination_account if studio.stripe_account_id == p.destination_account
                    else f"{p.destination_account} given, studio's account on record is {studio.stripe_account_id}")
            minimum = Money(studio.reserve_minimum, studio.currency)
            if minimum.currency == money.currency:
                res.add("reserve after ≥ studio minimum", p.reserve_money >= minimum,
                        f"{p.reserve_money} ≥ {minimum}" if p.reserve_money >= minimum
                        else f"{p.reserve_money} is below the required minimum {minimum}")

    # -- keys ----------------------------------------------------------------------------------
    kp = key_problems(ctx.settings.stripe_fallback_secret_key, env_var="STRIPE_FALLBACK_SECRET_KEY",
                      settings=ctx.settings, rehearsal=p.is_rehearsal, want_restricted=False)
    key = ctx.settings.stripe_fallback_secret_key
    res.add("key mode matches environment", not kp,
            "; ".join(str(x) for x in kp) if kp else
            f"{redact(key.get_secret_value()) if key else ''} in {ctx.settings.environment} mode"
            + (" (rehearsal)" if p.is_rehearsal else ""))

    # -- Stripe ---------------------------------------------------------------------------------
    if key is not None and not kp:
        kind, _mode = describe_key(key.get_secret_value())
        restricted = kind == "restricted"
        res.add("fallback key is restricted (rk_…)", restricted,
                f"{redact(key.get_secret_value())}: a restricted key" if restricted else
                f"STRIPE_FALLBACK_SECRET_KEY is a full secret key ({redact(key.get_secret_value())}) that can do "
                "anything on the platform account; the SOP requires a restricted key (rk_…) with transfers write "
                "+ balance read only" + ("" if live else " — a live run is refused with this key"),
                required=live, warning=True)

    # -- Stripe ---------------------------------------------------------------------------------
    if not kp:
        try:
            transfers = _stripe_transfers_for(ctx, p.ledger_payout_id)
            foreign = [t for t in transfers if (t.metadata.to_dict() if t.metadata else {}).get("run_id") != ctx.run_id]
            res.add("no transfer in Stripe for this ledger payout", not foreign,
                    "none with transfer_group " + p.ledger_payout_id if not foreign else
                    "found " + ", ".join(f"{t.id} ({Money.from_stripe(t.amount, t.currency)})" for t in foreign))
            res.add("key can read transfers", True, "transfers list allowed")
        except stripe.PermissionError as exc:
            res.add("key can read transfers", False, to_payment_error(exc).args[0])
        except stripe.StripeError as exc:
            res.add("no transfer in Stripe for this ledger payout", False, str(to_payment_error(exc)))
        try:
            bal = with_backoff(lambda: ctx.stripe().v1.balance.retrieve())
            avail = sum(b.amount for b in bal.available if b.currency == money.stripe_currency)
            have = Money(avail, money.currency)
            res.add("platform balance covers amount", avail >= money.amount,
                    f"available {have} ≥ {money}" if avail >= money.amount else f"available {have} < {money}")
        except stripe.PermissionError as exc:
            res.add("platform balance covers amount", False, "key cannot read balance: " + str(to_payment_error(exc)))
        except stripe.StripeError as exc:
            res.add("platform balance covers amount", False, str(to_payment_error(exc)))
        res.add(*_destination_check(ctx))
        _least_privilege(ctx, res, live)

    # -- approvals and people ---------------------------------------------------------------
    problems = approvals.problems
    summary = approvals.summary()
    detail = "signed: " + summary if not problems else "; ".join(str(x) for x in problems) + f" (signed: {summary})"
    if voided:
        detail += "; voided (given for other parameters): " + ", ".join(voided)
    res.add("dual approval (ops + finance)", not problems, detail, required=live)
    go = approvals.signed.get("operator")
    res.add("operator identified", not approvals.operator_problems,
            "; ".join(str(x) for x in approvals.operator_problems) if approvals.operator_problems else
            f"{ctx.operator}, enrolled as operator" + (f"; go-live signed with key {go.fingerprint}" if go else ""),
            required=live)
    if live and p.send_notifications:
        missing = [n for n, v in (("PAYOPS_SLACK_WEBHOOK_URL", ctx.settings.slack_webhook_url),
                                  ("PAYOPS_SMTP_HOST", ctx.settings.smtp_host)) if not v]
        res.add("notification channels configured", not missing,
                "Slack webhook and SMTP set" if not missing else f"{', '.join(missing)} not set (or use --no-send)")

    if res.ledger is not None:
        res.attachments.append(str(ctx.write_artifact("attachments/ledger_payout.json", res.ledger).name))
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(res.ledger))
        writer.writeheader()
        writer.writerow(res.ledger)
        res.attachments.append(str(ctx.write_artifact("attachments/ledger_payout.csv", buf.getvalue()).name))
    return res


# What the SOP's restricted key may do (transfers write, balance read), and the probe: one read outside
# that scope that must answer 403. Reading connected accounts is what a leaked over-broad key would be
# used for first (bank details, capabilities), and it changes nothing.
SOP_SCOPE = "transfers write + balance read"
PROBE = ("read connected accounts", "GET /v1/accounts")


def _least_privilege(ctx: StepContext, res: VerifyResult, live: bool) -> None:
    """Prove the fallback key is restricted to its scope: one call outside it must be refused (403)."""
    name = "key limited to " + SOP_SCOPE
    what, call = PROBE
    try:
        with_backoff(lambda: ctx.stripe().v1.accounts.list({"limit": 1}))
    except stripe.PermissionError:
        res.add(name, True, f"probe {call} answered 403: the key cannot {what}", required=live, warning=True)
        return
    except stripe.StripeError as exc:
        res.add(name, False, f"probe {call} inconclusive: {to_payment_error(exc)}", required=live, warning=True)
        return
    res.add(name, False, f"STRIPE_FALLBACK_SECRET_KEY could {what} (probe {call} answered 200): it can do more "
                         f"than {SOP_SCOPE}; use a restricted key without that permission",
            required=live, warning=True)


def _destination_check(ctx: StepContext) -> tuple[str, bool, str]:
    """Can the destination receive funds? Asked of Stripe when a read-capable platform key is set
    (the SOP's restricted key cannot read accounts); otherwise from the studio record."""
    name = "destination can receive funds"
    if ctx.has_platform_key():
        try:
            acct = with_backoff(lambda: ctx.stripe("platform").v1.accounts.retrieve(ctx.params.destination_account))
        except stripe.StripeError as exc:
            return name, False, str(to_payment_error(exc))
        caps = acct.capabilities.to_dict() if getattr(acct, "capabilities", None) else {}
        ok = bool(acct.payouts_enabled) and caps.get("transfers") == "active"
        return name, ok, (f"{acct.id}: transfers active, payouts enabled" if ok else
                          f"{acct.id}: transfers={caps.get('transfers')}, payouts_enabled={acct.payouts_enabled}")
    with ctx.session() as s:
        studio = s.get(Studio, ctx.params.studio_id)
        ok = bool(studio and studio.payouts_enabled)
        return name, ok, ("payouts enabled per the studio record (no account-read key configured)" if ok
                          else "payouts not enabled per the studio record")
