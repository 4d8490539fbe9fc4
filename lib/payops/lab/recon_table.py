"""The reconciliation notebook in JupyterLab: the break list as a table with filters, explain, sign-off.

- **Reconciliation** — any saved reconciliation (the newest first), or run a new one for a period: that
  goes through ``reconcile.run.execute_reconciliation`` (the runner: papermill, run records, the sealed
  archive), exactly as ``payops recon --from … --to …``.
- **Break table** — the run's breaks (``store.breaks_of``) filtered by category and currency (and
  "unexplained only"): id, category, amount (exact, ``Money``), reason, evidence, suggested action,
  first seen, explanation. Totals per filter.
- **Explain** — a break chosen from the filtered list, a note, who (default ``PAYOPS_OPERATOR_ID``):
  ``store.explain`` — the CLI's rules (a note is required, ``--by`` a UUID, a signed-off run is closed).
- **Sign off** — preparer and approver: ``store.signoff`` — two distinct UUIDs, refused while the
  unexplained breaks exceed the run's threshold, once only. Errors are shown next to the field they name.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import ipywidgets as w
from sqlalchemy import select

from payops.config import Settings, get_settings
from payops.db import session_scope
from payops.db.models import ReconRun
from payops.errors import FieldProblem, ParamsInvalid, PayopsError
from payops.lab.forms import Field, Form, button, error_html, esc, guarded, note_html, ok_html
from payops.money import Money, format_totals
from payops.reconcile import store

ALL = "(all)"


def recon_runs(settings: Settings, limit: int = 30) -> list[dict[str, Any]]:
    with session_scope(settings) as s:
        rows = s.scalars(select(ReconRun).order_by(ReconRun.created_at.desc()).limit(limit))
        return [store.run_dict(r) for r in rows]


def filter_breaks(breaks: list[dict[str, Any]], category: str = ALL, currency: str = ALL,
                  unexplained_only: bool = False) -> list[dict[str, Any]]:
    return [b for b in breaks if (category == ALL or b["category"] == category)
            and (currency == ALL or b["currency"] == currency) and not (unexplained_only and b["explanation"])]


def break_label(b: dict[str, Any]) -> str:
    evidence = b["ledger_payout_id"] or b["transfer_id"] or b["payout_id"] or ""
    return f"{b['category']} · {Money(b['amount'], b['currency']).format()} · {evidence} · {b['id'][:8]}"


def render_table(breaks: list[dict[str, Any]]) -> str:
    if not breaks:
        return note_html("no break matches the filters")
    head = ("<tr style='text-align:left'><th>break</th><th>category</th><th>amount</th><th>reason</th>"
            "<th>evidence</th><th>suggested action</th><th>first seen</th><th>explanation</th></tr>")
    rows = []
    for b in breaks:
        evidence = " · ".join(x for x in (b["ledger_payout_id"], b["transfer_id"], b["payout_id"]) if x)
        expl = (ok_html(b["explanation"]) + f"<br><span style='font-size:11px;color:#555'>by "
                f"{esc(b['explained_by'] or '—')}</span>" if b["explanation"] else error_html("unexplained"))
        rows.append(f"<tr class='payops-break' data-category='{esc(b['category'])}' "
                    f"data-currency='{esc(b['currency'])}'>"
                    f"<td style='white-space:nowrap'><code title='{esc(b['id'])}'>{esc(b['id'][:8])}</code></td>"
                    f"<td>{esc(b['category'])}</td><td style='text-align:right;white-space:nowrap'>"
                    f"{esc(Money(b['amount'], b['currency']).format())}</td><td>{esc(b['reason'])}</td><td>"
                    f"{esc(evidence)}</td><td>{esc(b['suggested_action'])}</td>"
                    f"<td style='white-space:nowrap'>{esc(b['first_seen'])}</td>"
                    f"<td>{expl}</td></tr>")
    totals: Counter[str] = Counter()
    for b in breaks:
        totals[b["currency"]] += b["amount"]
    return (f"<div>{len(breaks)} break(s) · {esc(format_totals(totals))}</div>"
            "<table class='payops-break-table' cellpadding='4' style='border-collapse:collapse'>"
            + head + "".join(rows) + "</table>")


class ReconPanel:
    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.run_id: str | None = None
        self.breaks: list[dict[str, Any]] = []
        style = {"description_width": "initial"}
        self.runs = w.Dropdown(options=[], description="reconciliation", style=style, layout=w.Layout(width="560px"))
        self.runs.add_class("payops-recon-list")
        self.category = w.Dropdown(options=[ALL], value=ALL, description="category", style=style)
        self.category.add_class("payops-filter-category")
        self.currency = w.Dropdown(options=[ALL], value=ALL, description="currency", style=style)
        self.currency.add_class("payops-filter-currency")
        self.unexplained = w.Checkbox(value=False, description="unexplained only", indent=False)
        self.unexplained.add_class("payops-filter-unexplained")
        self.summary = w.HTML("")
        self.summary.add_class("payops-recon-summary")
        self.table = w.HTML("")
        self.table.add_class("payops-break-table-box")
        self.period = Form([Field("period_from", "Period from", "YYYY-MM-DD"),
                            Field("period_to", "Period to (inclusive)", "YYYY-MM-DD"),
                            Field("max_unexplained", "Max unexplained", "0", value="0")], prefix="payops-recon")
        self.choice = w.Dropdown(options=[], description="break", style=style, layout=w.Layout(width="640px"))
        self.choice.add_class("payops-break-choice")
        self.explain_form = Form([Field("note", "Explanation", "why the break is acceptable / what was done",
                                        "textarea"),
                                  Field("by", "By (your UUID)", "UUID", value=self.settings.operator_id or "")],
                                 prefix="payops-explain")
        self.signoff_form = Form([Field("preparer", "Preparer (UUID)", "UUID", value=self.settings.operator_id or ""),
                                  Field("approver", "Approver (UUID, another person)", "UUID")],
                                 prefix="payops-signoff")
        self.status = w.HTML("")
        self.status.add_class("payops-recon-status")
        guard = guarded(lambda exc: setattr(self.status, "value", error_html(str(exc))))
        b_open = button("Open", "payops-open-recon")
        b_open.on_click(guard(lambda _b: self.open(self.runs.value)))
        b_run = button("Run reconciliation", "payops-run-recon")
        b_run.on_click(guarded(self.period.show_error)(lambda _b: self.run_new()))
        b_explain = button("Explain break", "payops-explain", style="primary")
        b_explain.on_click(guarded(self.explain_form.show_error)(lambda _b: self.explain()))
        b_signoff = button("Sign off", "payops-signoff", style="success")
        b_signoff.on_click(guarded(self.signoff_form.show_error)(lambda _b: self.signoff()))
        self.buttons = {b._dom_classes[0]: b for b in (b_open, b_run, b_explain, b_signoff)}
        for f in (self.category, self.currency, self.unexplained):
            f.observe(lambda _c: self.render(), names="value")
        self.widget = w.VBox([
            w.HTML("<h2>Reconciliation — in JupyterLab</h2>"), w.HBox([self.runs, b_open]),
            w.HTML("<h3>Run a new reconciliation</h3>"), self.period.box, b_run,
            self.summary, w.HBox([self.category, self.currency, self.unexplained]), self.table,
            w.HTML("<h3>Explain a break</h3>"), self.choice, self.explain_form.box, b_explain,
            w.HTML("<h3>Sign off</h3>"), self.signoff_form.box, b_signoff, self.status,
        ])
        self.widget.add_class("payops-recon-panel")
        runs = self.reload_runs()
        if runs:
            self.open(runs[0]["id"])

    def reload_runs(self) -> list[dict[str, Any]]:
        runs = recon_runs(self.settings)
        self.runs.options = [(f"{r['period_from']} → {r['period_to']} · {r['status']} · {r['breaks']} break(s) · "
                              f"{r['id']}", r["id"]) for r in runs]
        if self.run_id in {r["id"] for r in runs}:
            self.runs.value = self.run_id
        return runs

    def open(self, run_id: str | None) -> None:
        if not run_id:
            self.status.value = error_html("no reconciliation saved yet: run one for a period")
            return
        self.run_id = run_id
        self.breaks = store.breaks_of(run_id, settings=self.settings)
        cats = sorted({b["category"] for b in self.breaks})
        curs = sorted({b["currency"] for b in self.breaks})
        self.category.options, self.currency.options = [ALL, *cats], [ALL, *curs]
        self.category.value, self.currency.value = ALL, ALL
        self.render()

    def visible(self) -> list[dict[str, Any]]:
        return filter_breaks(self.breaks, self.category.value, self.currency.value, self.unexplained.value)

    def render(self) -> None:
        if self.run_id is None:
            return
        unexplained = store.unexplained_count(self.run_id, settings=self.settings)
        with session_scope(self.settings) as s:
            info = store.run_dict(s.get(ReconRun, self.run_id), unexplained)
        signed = (ok_html(f"signed off at {info['signed_off_at']} by {info['preparer_id']} and {info['approver_id']}")
                  if info["signed_off_at"] else note_html("not signed off"))
        self.summary.value = (f"<div>Reconciliation <code>{esc(self.run_id)}</code> · {esc(info['period_from'])} → "
                              f"{esc(info['period_to'])} · {info['breaks']} break(s), <b>{unexplained} unexplained</b> "
                              f"(threshold {info['max_unexplained']}) · {signed}</div>")
        rows = self.visible()
        self.table.value = render_table(rows)
        current = self.choice.value
        self.choice.options = [(break_label(b), b["id"]) for b in rows]
        ids = [b["id"] for b in rows]
        self.choice.value = current if current in ids else (ids[0] if ids else None)

    def _reload(self) -> None:
        if self.run_id:
            self.breaks = store.breaks_of(self.run_id, settings=self.settings)
        self.render()

    def explain(self) -> None:
        self.explain_form.clear()
        if not self.choice.value:
            raise ParamsInvalid(FieldProblem("break", "choose a break to explain"), "explanation")
        v = self.explain_form.values()
        row = store.explain(self.choice.value, v["note"], v["by"].strip() or None, settings=self.settings)
        self.explain_form.inputs["note"].value = ""
        self._reload()
        self.status.value = ok_html(f"{row['category']} {row['break_key']} explained by {row['explained_by'] or '—'}")

    def signoff(self) -> None:
        self.signoff_form.clear()
        if self.run_id is None:
            raise PayopsError("no reconciliation open")
        v = self.signoff_form.values()
        info = store.signoff(self.run_id, v["preparer"].strip(), v["approver"].strip(), settings=self.settings)
        self.reload_runs()
        self.render()
        self.status.value = ok_html(f"reconciliation {self.run_id} signed off at {info['signed_off_at']}")

    def run_new(self) -> None:
        from payops.reconcile.params import validate_recon
        from payops.reconcile.run import execute_reconciliation

        self.period.clear()
        v = self.period.values()
        params = validate_recon({"period_from": v["period_from"].strip(), "period_to": v["period_to"].strip(),
                                 "max_unexplained": v["max_unexplained"].strip() or "0"})
        self.status.value = note_html(f"reconciling {params.subject_key}…")
        outcome = execute_reconciliation(params, settings=self.settings)
        self.reload_runs()
        self.open(outcome.run_id)
        self.status.value = ok_html(f"reconciliation {outcome.run_id}: {outcome.unexplained} unexplained break(s); "
                                    f"archive {outcome.folder}")
