"""The go-live smoke tests against Stripe *test mode* (the sandbox or real Stripe): they create
objects, so they are refused for ``target="live"`` and for a live key.

1. onboarding state — an Express account is created and is not ready (charges/payouts disabled);
   onboarding is then completed through the sandbox's control plane. Against real Stripe test mode
   that is a person's job in the hosted onboarding: reported as a WARN "manual step";
2. balance from a destination charge — a card payment with ``transfer_data[destination]`` to the
   ready account, then the account's balance holds its share;
3. payout creation — a payout on the connected account (manual payout schedule, so the balance is
   still there for it).

The account is deleted at the end (test mode allows it). The cycle's own logic (threshold skip,
failure handling, idempotency, webhooks, trigger auth) is exercised offline by
:mod:`payops.checks.smoke_cycle`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import httpx
import stripe

from payops.checks.report import FAIL, PASS, SKIP, WARN, Check, error_line
from payops.config import Settings
from payops.stripe_api import describe_key, make_client

CHARGE_AMOUNT = 5_000
PLATFORM_FEE = 500
ONBOARDING = "smoke: onboarding state"
BALANCE = "smoke: balance from destination charge"
PAYOUT = "smoke: payout creation"
STRIPE_SMOKE = (ONBOARDING, BALANCE, PAYOUT)


def refusal(settings: Settings, target: Literal["test", "live"]) -> str | None:
    """Why smoke tests must not run here (they create objects), or None."""
    if target != "test":
        return "refused for target=live: smoke tests create Stripe objects (run them with --target test)"
    raw = settings.stripe_secret_key.get_secret_value() if settings.stripe_secret_key else ""
    try:
        _kind, mode = describe_key(raw)
    except ValueError:
        return "STRIPE_SECRET_KEY is missing or malformed"
    if mode != "test":
        return "refused: STRIPE_SECRET_KEY is a live key and smoke tests create objects"
    return None


def sandbox_control(settings: Settings) -> str | None:
    """The sandbox's control-plane base URL when payops points at the sandbox, else None."""
    if settings.uses_stripe_api:
        return None
    base = settings.stripe_api_base.rstrip("/")
    try:
        r = httpx.get(f"{base}/_sandbox/ping", timeout=5.0)
    except httpx.HTTPError:
        return None
    return base if r.status_code == 200 else None


@dataclass
class StripeSmoke:
    """State carried between the three Stripe smoke tests."""

    settings: Settings
    client: stripe.StripeClient
    control: str | None
    account: str | None = None
    ready: bool = False
    currency: str = "cad"
    share: int = 0
    notes: list[str] = field(default_factory=list)

    def onboarding(self) -> Check:
        country = "CA" if self.currency == "cad" else "US"
        acct = self.client.v1.accounts.create({
            "type": "express", "country": country, "email": "go-live-smoke@example.com",
            "capabilities": {"transfers": {"requested": True}, "card_payments": {"requested": True}},
            "settings": {"payouts": {"schedule": {"interval": "manual"}}},
            "metadata": {"payops_smoke": "go-live"}})
        self.account = acct.id
        if acct.charges_enabled or acct.payouts_enabled:
            return Check(ONBOARDING, FAIL, f"{acct.id} is ready before onboarding (charges_enabled="
                                           f"{acct.charges_enabled}, payouts_enabled={acct.payouts_enabled})")
        due = list(getattr(acct.requirements, "currently_due", None) or []) if acct.requirements else []
        if self.control is None:
            return Check(ONBOARDING, WARN, f"{acct.id} created, not ready ({len(due)} requirement(s) due) — manual "
                                           "step: complete its onboarding in Stripe's hosted flow; the balance and "
                                           "payout smoke tests need a ready account")
        r = httpx.post(f"{self.control}/_sandbox/accounts", json={"id": acct.id, "onboarding": "complete"},
                       timeout=10.0)
        r.raise_for_status()
        after = self.client.v1.accounts.retrieve(acct.id)
        self.ready = bool(after.charges_enabled and after.payouts_enabled)
        if not self.ready:
            return Check(ONBOARDING, FAIL, f"{acct.id} still not ready after onboarding was completed")
        return Check(ONBOARDING, PASS, f"{acct.id}: not ready at creation ({len(due)} requirement(s) due), ready "
                                       "after onboarding (charges and payouts enabled)")

    def _balance(self) -> tuple[int, int]:
        bal = self.client.v1.balance.retrieve(options={"stripe_account": self.account})
        avail = sum(int(b.amount) for b in bal.available if b.currency == self.currency)
        pending = sum(int(b.amount) for b in bal.pending if b.currency == self.currency)
        return avail, pending

    def destination_charge(self) -> Check:
        before = sum(self._balance())
        pi = self.client.v1.payment_intents.create({
            "amount": CHARGE_AMOUNT, "currency": self.currency, "payment_method": "pm_card_visa",
            "payment_method_types": ["card"], "confirm": True, "application_fee_amount": PLATFORM_FEE,
            "transfer_data": {"destination": self.account}, "description": "payops go-live smoke test",
            "metadata": {"payops_smoke": "go-live"}})
        if pi.status != "succeeded":
            return Check(BALANCE, FAIL, f"{pi.id} is {pi.status}, not succeeded")
        avail, pending = self._balance()
        self.share = avail + pending - before
        want = CHARGE_AMOUNT - PLATFORM_FEE
        if self.share != want:
            return Check(BALANCE, FAIL, f"{pi.id} succeeded but {self.account}'s balance grew by {self.share}, "
                                        f"expected {want}")
        return Check(BALANCE, PASS, f"{pi.id} → {self.account}: balance +{want} {self.currency.upper()} "
                                    f"(available {avail}, pending {pending})")

    def payout(self) -> Check:
        avail, _pending = self._balance()
        if avail <= 0:
            return Check(PAYOUT, WARN, f"{self.account} has nothing available yet (card funds pending): "
                                       "no payout can be made until they are")
        po = self.client.v1.payouts.create({"amount": avail, "currency": self.currency,
                                            "description": "payops go-live smoke test"},
                                           options={"stripe_account": self.account})
        got = self.client.v1.payouts.retrieve(po.id, options={"stripe_account": self.account})
        if got.amount != avail:
            return Check(PAYOUT, FAIL, f"{po.id} amount {got.amount} != {avail}")
        return Check(PAYOUT, PASS, f"{po.id} on {self.account}: {avail} {self.currency.upper()}, {got.status}")

    def cleanup(self) -> None:
        if self.account:
            try:
                self.client.v1.accounts.delete(self.account)
            except stripe.StripeError as exc:
                self.notes.append(f"could not delete {self.account}: {error_line(exc)}")


def _guarded(name: str, fn: Any) -> Check:
    try:
        return fn()  # type: ignore[no-any-return]
    except Exception as exc:  # noqa: BLE001 — one failed smoke test is a FAIL row, not a crash
        return Check(name, FAIL, error_line(exc))


def stripe_smoke(settings: Settings, target: Literal["test", "live"]) -> list[Check]:
    """The three Stripe smoke tests (or SKIP rows saying why they did not run)."""
    why = refusal(settings, target)
    if why:
        return [Check(n, SKIP, why) for n in STRIPE_SMOKE]
    try:
        client = make_client(settings=settings, purpose="platform")
    except Exception as exc:  # noqa: BLE001
        return [Check(n, FAIL if n == ONBOARDING else SKIP, error_line(exc)) for n in STRIPE_SMOKE]
    smoke = StripeSmoke(settings, client, sandbox_control(settings),
                        currency=settings.platform_default_currency.lower() or "cad")
    try:
        rows = _stripe_rows(smoke)
    finally:
        smoke.cleanup()
    return rows + [Check("smoke account cleanup", WARN, note) for note in smoke.notes]


def _stripe_rows(smoke: StripeSmoke) -> list[Check]:
    rows = [_guarded(ONBOARDING, smoke.onboarding)]
    if not smoke.ready:
        reason = "needs a ready connected account (onboarding not completed)"
        return [*rows, Check(BALANCE, SKIP, reason), Check(PAYOUT, SKIP, reason)]
    rows.append(_guarded(BALANCE, smoke.destination_charge))
    if rows[-1].status != PASS:
        return [*rows, Check(PAYOUT, SKIP, "no funds on the smoke account")]
    rows.append(_guarded(PAYOUT, smoke.payout))
    return rows


def smoke_tests(settings: Settings, target: Literal["test", "live"]) -> list[Check]:
    """Every go-live smoke test: the three against Stripe, then the five offline ones (test target only)."""
    from payops.checks.smoke_cycle import CYCLE_SMOKE, cycle_smoke

    rows = stripe_smoke(settings, target)
    if target != "test":
        return rows + [Check(n, SKIP, "refused for target=live: smoke tests run against test mode only")
                       for n in CYCLE_SMOKE]
    return rows + cycle_smoke(settings)
