"""The manual payout runbook in JupyterLab: form → dry run → preview → approvals → go-live, all recorded.

One panel, drawn by the panel cell of each manual payout notebook (``lab.manual_payout_panel``):

1. **Form** — the SOP's parameters, validated exactly as the CLI does (``manual.gather_params``, then the
   currency resolved from the ledger and the fallback key checked: ``runner.resolve_manual_payout``,
   ``runner.preflight_key``). A bad field is shown next to that field and nothing is written: no run, no
   row, no folder.
2. **Dry run** — a run record (``runner.prepare_run``) executed by the runner (``runner.execute``): the
   same notebooks through papermill, the same run and step records, the run folder sealed into the
   archive (manifest, chain, secret scan) after every execution — all steps, or only the next one
   ("several sessions": the run is ``paused`` and sealed; any later session, or ``payops runs resume``,
   finishes it from its first unfinished step).
3. **Preview** — the Stripe request (payload, metadata, idempotency key) and the audit SQL the dry run
   produced, from the run's recorded step results.
4. **Approvals** and **go-live** — :mod:`payops.lab.approvals_panel`, :mod:`payops.lab.golive`.

A run started anywhere can be opened here (the run list), and one started here can be finished from the
CLI: the run records are the only state; the panel holds none of its own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ipywidgets as w
from sqlalchemy.engine import make_url

from payops import manual, runner, runstate
from payops.config import Settings, get_settings
from payops.db import session_scope
from payops.errors import PayopsError
from payops.lab.approvals_panel import ApprovalsPanel
from payops.lab.forms import Field, Form, button, error_html, esc, guarded, note_html, ok_html, pre
from payops.lab.golive import GoLiveControl
from payops.params import ManualPayoutParams

SOP = manual.SOP
FIELDS = (
    Field("studio_id", "Studio id", "UUID"),
    Field("studio_name", "Studio name", "as on record"),
    Field("ledger_payout_id", "Ledger payout id", "UUID"),
    Field("incident_id", "Incident id", "INC-1234"),
    Field("amount", "Amount", "decimal, e.g. 875.50"),
    Field("currency", "Currency", "default: the ledger payout's"),
    Field("reserve_after", "Reserve after", "decimal, e.g. 120.00"),
    Field("reason", "Reason", "why the manual payout is needed"),
    Field("destination_account", "Destination account", "acct_… on record"),
    Field("notes", "Notes", "free text for the audit row", "textarea"),
    Field("operator", "Operator (you)", "your UUID"),
    Field("is_rehearsal", "Rehearsal (test mode)", kind="check"),
    Field("send_notifications", "Send Slack + email (live)", kind="check", value=True),
)


class ManualPayoutPanel:
    def __init__(self, step: str = "10-verify", settings: Settings | None = None) -> None:
        self.step = step
        self.settings = settings or get_settings()
        self.run_id: str | None = None
        s = self.settings
        self.header = w.HTML(
            f"<h2>Manual payout — in JupyterLab</h2><div>{note_html('database')} "
            f"<code>{esc(make_url(s.database_url).render_as_string(hide_password=True))}</code> · "
            f"{note_html('Stripe')} <code>{esc(s.stripe_api_base)}</code> · {note_html('archive')} "
            f"<code>{esc(s.output_dir)}</code></div><div>{note_html(self._step_note())}</div>")
        self.form = Form(FIELDS)
        self.form.set_values({"operator": s.operator_id or ""})
        self.wait = w.BoundedFloatText(value=120.0, min=1, max=3600, description="settle wait (s)",
                                       style={"description_width": "initial"}, layout=w.Layout(width="220px"))
        self.runs = w.Dropdown(options=[], description="open run", style={"description_width": "initial"},
                               layout=w.Layout(width="640px"))
        self.runs.add_class("payops-run-list")
        b_open = button("Open", "payops-open-run")
        b_reload = button("↻", "payops-reload-runs", tooltip="reload the run list")
        b_dry = button("Dry run (all steps)", "payops-dry-run", style="primary")
        b_first = button("Dry run: first step only", "payops-dry-run-step")
        self.b_next = button("Run the next step", "payops-next-step")
        self.b_finish = button("Run the remaining steps", "payops-finish")
        self.status = w.HTML(note_html("fill the form, then run the dry run"))
        self.status.add_class("payops-status")
        self.steps = w.HTML("")
        self.steps.add_class("payops-steps")
        self.preview = w.HTML("")
        self.preview.add_class("payops-preview")
        self.approvals = ApprovalsPanel(self.settings)
        self.golive = GoLiveControl(self.approvals, self._execute_live, self.settings)
        guard = guarded(self._show_error)
        b_open.on_click(guard(lambda _b: self.open(self.runs.value)))
        b_reload.on_click(guard(lambda _b: self.reload_runs()))
        b_dry.on_click(guard(lambda _b: self.start_dry_run()))
        b_first.on_click(guard(lambda _b: self.start_dry_run(max_steps=1)))
        self.b_next.on_click(guard(lambda _b: self.continue_run(max_steps=1)))
        self.b_finish.on_click(guard(lambda _b: self.continue_run()))
        self.buttons = {b._dom_classes[0]: b for b in (b_open, b_reload, b_dry, b_first, self.b_next, self.b_finish)}
        self.widget = w.VBox([
            self.header, w.HBox([self.runs, b_open, b_reload]), w.HTML("<h3>Parameters</h3>"), self.form.box,
            w.HBox([b_dry, b_first, self.wait]), w.HBox([self.b_next, self.b_finish]), self.status, self.steps,
            self.preview, self.approvals.widget, self.golive.widget,
        ])
        self.widget.add_class("payops-manual-payout-panel")
        self.reload_runs()
        self._buttons()

    def _step_note(self) -> str:
        return (f"This notebook is step {self.step}; the cells below the panel are what the runner executes for it "
                "(papermill). The panel runs the SOP through the runner: every run is recorded and sealed in the "
                "archive, as from the CLI.")

    # -- state ------------------------------------------------------------------------------------
    def _show_error(self, exc: BaseException) -> None:
        if self.run_id is None or (isinstance(exc, PayopsError) and getattr(exc, "problems", None)):
            self.form.show_error(exc)
        self.status.value = error_html(f"{type(exc).__name__}: {exc}" if not isinstance(exc, PayopsError) else str(exc))

    def reload_runs(self) -> None:
        rows = manual.list_runs(sop=SOP, limit=30)
        self.runs.options = [(f"{r['id']} · {r['mode']} · {r['status']} · {str(r['created_at'])[:19]}", r["id"])
                             for r in rows]
        if self.run_id in {r["id"] for r in rows}:
            self.runs.value = self.run_id

    def validated(self) -> ManualPayoutParams:
        """The form's parameters, validated and resolved as the CLI does; a bad field → ParamsInvalid."""
        v = self.form.values()
        flags = {k: (v[k] if v[k] != "" else None) for k in
                 ("studio_id", "studio_name", "ledger_payout_id", "incident_id", "amount", "reserve_after", "reason",
                  "destination_account", "notes", "currency", "operator")}
        params = manual.gather_params(flags, params_file=None, live=False, rehearsal=bool(v["is_rehearsal"]),
                                      send=bool(v["send_notifications"]))
        params = runner.resolve_manual_payout(params, self.settings)
        runner.preflight_key(params, self.settings)
        return params

    # -- actions ----------------------------------------------------------------------------------
    def start_dry_run(self, max_steps: int | None = None) -> None:
        self.form.clear()
        params = self.validated()  # raises before anything is written
        run = runner.prepare_run(SOP, params, live=False, settings=self.settings)
        self.run_id = run.id
        self.status.value = note_html(f"dry run {run.id} created · params sha256 {run.params_hash}")
        self._execute(run.id, max_steps)

    def continue_run(self, max_steps: int | None = None) -> None:
        if self.run_id is None:
            raise PayopsError("no run open: start a dry run or open one from the list")
        self._execute(self.run_id, max_steps)

    def open(self, run_id: str | None) -> None:
        if not run_id:
            raise PayopsError("choose a run in the list first")
        with session_scope(self.settings) as s:
            run = runstate.get_run(s, run_id)
            if run.sop != SOP:
                raise PayopsError(f"run {run_id} is a {run.sop} run, not a manual payout")
            params = json.loads(run.params_json)
        self.form.clear()
        self.form.set_values(params)
        self.run_id = run_id
        self.refresh()

    def _on_step(self, step: str, state: str, elapsed: float) -> None:
        self.status.value = note_html(f"{step}: {state}" + (f" ({elapsed:.1f} s)" if state != "running" else "…"))

    def _execute(self, run_id: str, max_steps: int | None = None) -> None:
        self._buttons(busy=True)
        try:
            outcome = runner.execute(run_id, settings=self.settings, overrides={"wait_seconds": float(self.wait.value)},
                                     on_step=self._on_step, max_steps=max_steps)
            self.status.value = ok_html(f"run {run_id}: {outcome.status}")
        except PayopsError as exc:
            self.status.value = error_html(str(exc))
        finally:
            self.reload_runs()
            self.refresh()

    def _execute_live(self, run_id: str) -> None:
        self.run_id = run_id
        self._execute(run_id)

    # -- display ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        if self.run_id is None:
            self._buttons()
            return
        info = manual.show_run(self.run_id)
        self.steps.value = render_steps(info, self.settings.output_dir)
        outcome = runner.outcome_of(self.run_id, settings=self.settings)
        self.preview.value = render_preview(outcome.results)
        dry = self.run_id if info["mode"] == "dry-run" else info["parent_run_id"]
        self.approvals.show(dry)
        self.golive.show(self.run_id)
        self._buttons()

    def _buttons(self, busy: bool = False) -> None:
        status = None
        if self.run_id is not None:
            with session_scope(self.settings) as s:
                status = runstate.get_run(s, self.run_id).status
        # "running" too: a run whose process died (its lease holder is gone); a live holder is refused by the claim
        open_steps = status is not None and status != "succeeded"
        self.b_next.disabled = busy or not open_steps
        self.b_finish.disabled = busy or not open_steps


def render_steps(info: dict[str, Any], output_root: Path) -> str:
    rows = "".join(
        f"<tr><td>{esc(st['step'])}</td><td>{esc(st['status'])}</td><td>{st['attempts']}</td><td><code>"
        f"{esc(_rel(st['notebook'], output_root))}</code></td></tr>" for st in info["steps"])
    sealed = (ok_html(f"sealed · manifest sha256 {info['manifest_sha256']}") if info["manifest_sha256"]
              else note_html("not sealed yet"))
    err = f"<div>{error_html(info['error'])}</div>" if info["error"] else ""
    return (f"<div class='payops-run-state' data-status='{esc(info['status'])}'><b>Run</b> <code>{esc(info['id'])}"
            f"</code> · {esc(info['mode'])} · <b>{esc(info['status'])}</b> · archive <code>"
            f"{esc(_rel(info['output_dir'], output_root))}</code> · {sealed}</div>{err}"
            "<table cellpadding='3'><tr style='text-align:left'><th>step</th><th>status</th><th>attempts</th>"
            f"<th>executed notebook</th></tr>{rows}</table>")


def _rel(path: str | None, root: Path) -> str:
    if not path:
        return ""
    try:
        return str(Path(path).relative_to(root))
    except ValueError:
        return path


def render_preview(results: dict[str, Any]) -> str:
    parts = []
    ver = results.get("10-verify")
    if ver:
        rows = "".join(
            f"<tr><td>{esc(c.get('check'))}</td><td>"
            f"{ok_html('PASS') if c.get('ok') else error_html('FAIL' if c.get('required') else 'PENDING')}</td>"
            f"<td>{esc(c.get('detail'))}</td></tr>" for c in ver.get("checks", []))
        parts.append(f"<b>Verify</b><table cellpadding='2' class='payops-verify'>{rows}</table>")
    tr = results.get("20-transfer")
    if tr:
        payload = tr.get("payload") or {}
        parts.append(f"<b>Stripe transfer request</b> (Idempotency-Key <code>{esc(tr.get('idempotency_key'))}</code>)"
                     + pre(json.dumps({k: v for k, v in payload.items() if k != "metadata"}, indent=2)))
        parts.append("<b>Metadata</b>" + pre(json.dumps(payload.get("metadata") or {}, indent=2)))
        if tr.get("transfer_id"):
            parts.append(ok_html(f"transfer {tr['transfer_id']} ({tr.get('status')}), request {tr.get('request_id')}"))
    audit = results.get("30-audit-insert")
    if audit:
        note = " — dry run, not executed" if audit.get("dry_run") else ""
        parts.append(f"<b>Audit insert (manual_payouts)</b>{note}" + pre(audit.get("sql") or ""))
    st = results.get("50-settle")
    if st and st.get("status") not in (None, "skipped"):
        parts.append(note_html(f"settlement: payout {st.get('payout_id')} {st.get('payout_status')}"))
    return "<h3>Preview</h3>" + "\n".join(parts) if parts else ""
