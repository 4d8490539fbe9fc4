"""The go-live control: enabled only when both approvals verify, and the operator types what moves.

Enabled when, all at once: the dry run finished (its payload, metadata and SQL were shown), the approvals
panel says both approvals verify (one ops, one finance, two people, neither the operator, both over these
parameters' sha256) and the operator may operate; the operator typed the **amount** (equal to the
parameters' amount in their currency, exactly) and the **ledger payout id**; and named their roster key.
Whatever is still missing is listed under the button. The click checks it all again, then goes live the
way ``payops runs resume DRY_RUN --live --key KEY`` does: ``runner.preflight_live`` re-verifies every
signature and has the operator sign the go-live statement with their key (shown here), and the live run is
created with it (``prepare_run(..., parent_run_id=dry run, on_created=plan.record)``) — then executed by the
panel through the runner.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import ipywidgets as w

from payops import runner, runstate
from payops.config import Settings, get_settings
from payops.db import session_scope
from payops.errors import FieldProblem, ParamsInvalid
from payops.lab.approvals_panel import ApprovalsPanel
from payops.lab.forms import Field, Form, button, esc, guarded, note_html, ok_html, pre
from payops.money import Money, MoneyError
from payops.params import ManualPayoutParams, validate_manual_payout

SOP = "manual_payout"


def confirmation_problems(params: ManualPayoutParams, typed_amount: str,
                          typed_ledger_payout_id: str) -> list[FieldProblem]:
    """The typed amount and ledger payout id must be this payout's (the amount compared exactly, as money)."""
    problems = []
    try:
        same = Money.parse(typed_amount.strip(), params.currency or "").amount == params.money.amount
    except MoneyError:
        same = False
    if not same:
        problems.append(FieldProblem("confirm_amount", f"type the amount to pay ({params.amount} {params.currency})"))
    if typed_ledger_payout_id.strip().lower() != params.ledger_payout_id:
        problems.append(FieldProblem("confirm_ledger_payout_id", "type the ledger payout id of this payout"))
    return problems


class GoLiveControl:
    """The go-live box for one dry run (``show(run_id)``); ``on_live(live_run_id)`` executes the new run."""

    def __init__(self, approvals: ApprovalsPanel, on_live: Callable[[str], None],
                 settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.approvals = approvals
        self.on_live = on_live
        self.dry_run_id: str | None = None
        self.params: ManualPayoutParams | None = None
        self.dry_ok = False
        self.form = Form([
            Field("confirm_amount", "Type the amount", "e.g. 875.50"),
            Field("confirm_ledger_payout_id", "Type the ledger payout id", "the ledger payout's UUID"),
            Field("operator_key", "Your roster key (operator)", "~/.ssh/id_ed25519 (or its .pub with ssh-agent)"),
        ])
        self.button = button("Go live: move the money", "payops-go-live", style="danger")
        self.button.disabled = True
        self.hint = w.HTML("")
        self.hint.add_class("payops-golive-hint")
        self.statement = w.HTML("")
        self.statement.add_class("payops-golive-statement")
        self.summary = w.HTML(note_html("no dry run yet"))
        for inp in self.form.inputs.values():
            inp.observe(lambda _c: self.update(), names="value")
        self.button.on_click(guarded(self.form.show_error)(lambda _b: self.go_live()))
        approvals.on_change.append(self.update)
        self.widget = w.VBox([w.HTML("<h3>Go live</h3>"), self.summary, self.form.box, self.button, self.hint,
                              self.statement])
        self.widget.add_class("payops-golive-panel")

    def show(self, run_id: str | None) -> None:
        """Bind to a dry run (None, or a live run: already gone live, nothing to go live with)."""
        self.dry_run_id, self.params, self.dry_ok = None, None, False
        live = None
        if run_id is not None:
            with session_scope(self.settings) as s:
                run = runstate.get_run(s, run_id)
                if run.mode == "dry-run":
                    self.dry_run_id, self.dry_ok = run.id, run.status == "succeeded"
                    self.params = validate_manual_payout(json.loads(run.params_json))
                else:
                    live = (run.id, run.mode, run.status, run.parent_run_id)
        if self.params is not None:
            p = self.params
            self.summary.value = (f"Dry run <code>{esc(self.dry_run_id)}</code>: pay <b>{esc(p.money.format())}</b> to "
                                  f"{esc(p.studio_name)} (<code>{esc(p.destination_account)}</code>) for ledger payout "
                                  f"<code>{esc(p.ledger_payout_id)}</code>, incident {esc(p.incident_id)}"
                                  + (" — <b>rehearsal</b> (test mode)" if p.is_rehearsal else ""))
        elif live is not None:
            self.summary.value = (f"{esc(live[1])} run <code>{esc(live[0])}</code> ({esc(live[2])}), gone live "
                                  f"from dry run <code>{esc(live[3] or '—')}</code>: a payout goes live once")
        else:
            self.summary.value = note_html("no dry run open: run one (or open one) first")
        self.update()

    def missing(self) -> list[str]:
        """Why the button is disabled (empty: enabled)."""
        if self.params is None:
            return ["a dry run of these parameters"]
        out = []
        if not self.dry_ok:
            out.append("the dry run has not finished every step (payload, metadata and SQL shown)")
        if not self.approvals.verified:
            out.append("both approvals verified (see the approvals panel; Refresh once they have signed)")
        v = self.form.values()
        typed = confirmation_problems(self.params, v["confirm_amount"], v["confirm_ledger_payout_id"])
        out += [p.message for p in typed]
        if not v["operator_key"].strip():
            out.append("your roster key, to sign the go-live")
        return out

    def update(self) -> None:
        missing = self.missing()
        self.button.disabled = bool(missing)
        self.hint.value = (ok_html("ready: the click signs the go-live with your key and moves the money")
                           if not missing else note_html("Go live needs: " + "; ".join(missing)))

    def go_live(self) -> None:
        self.form.clear()
        missing = self.missing()
        if missing or self.params is None or self.dry_run_id is None:
            raise ParamsInvalid([FieldProblem("go-live", m) for m in missing or ["no dry run"]], "go-live")
        key = Path(self.form.values()["operator_key"].strip()).expanduser()
        params = self.params.model_copy(update={"dry_run": False})
        self.button.disabled = True
        try:
            plan = runner.preflight_live(params, self.settings, operator_key=key, show=self._show_statement)
        except ParamsInvalid as exc:  # --key → the key field
            exc.problems = [FieldProblem("operator_key", p.message) if p.field == "--key" else p
                            for p in exc.problems]
            raise
        finally:
            self.update()
        run = runner.prepare_run(SOP, params, live=True, settings=self.settings, parent_run_id=self.dry_run_id,
                                 run_id=plan.run_id, on_created=plan.record)
        self.hint.value = ok_html(f"go-live signed; live run {run.id} created")
        self.on_live(run.id)

    def _show_statement(self, text: str) -> None:
        self.statement.value = "<details><summary>the go-live statement you signed</summary>" + pre(text) + "</details>"
