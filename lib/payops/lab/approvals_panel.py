"""The approvals panel: who signed which parameters hash, what is still missing, the commands to run.

For a manual payout dry run it shows, from the signed approvals (``payops.approvals``, #18), each role
(ops, finance) with its state — ``verified`` (re-verified now against the roster as it stood when it was
given), ``does not count`` (and why) or ``missing`` — the approver's name and id, their key's
fingerprint, the parameters sha256 they approved and when; for a missing role, the exact
``payops approve RUN --role ROLE --key …`` command the approver runs in their own terminal (and the
offline variant) with the statement they sign. The operator's roster state is listed too (the go-live
needs it). :attr:`ApprovalsPanel.verified` is what the go-live control is enabled by.

Approvals are given by other people, in other terminals: **Refresh** reads them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ipywidgets as w

from payops import runstate
from payops.approvals import APPROVER_ROLES, checks, roster
from payops.approvals import statement as stmt
from payops.config import Settings, get_settings
from payops.db import session_scope
from payops.errors import FieldProblem
from payops.lab.forms import button, error_html, esc, guarded, ok_html, pre


@dataclass
class RoleState:
    role: str
    state: str  # verified | does not count | missing
    person: str = ""
    fingerprint: str = ""
    params_hash: str = ""
    statement_run: str = ""
    decided_at: str = ""
    problem: str = ""
    commands: list[str] = field(default_factory=list)
    statement: str = ""


@dataclass
class ApprovalState:
    run_id: str
    params_hash: str
    mode: str
    operator: str | None
    roles: dict[str, RoleState]
    problems: list[FieldProblem]
    operator_problems: list[FieldProblem]

    @property
    def verified(self) -> bool:
        """Both approvals verify, dual control holds and the operator may go live."""
        return not self.problems and not self.operator_problems and all(
            self.roles[r].state == "verified" for r in APPROVER_ROLES)


def approval_state(run_id: str, settings: Settings | None = None,
                   key_hint: str = "~/.ssh/id_ed25519") -> ApprovalState:
    """The run's approvals, each re-verified (``checks.approval_problems``), with what is missing."""
    settings = settings or get_settings()
    with session_scope(settings) as s:
        run = runstate.get_run(s, run_id)
        rows = runstate.approvals_for(s, run.params_hash)
        state = checks.approval_problems(s, params_hash=run.params_hash, operator=run.operator, settings=settings)
        op_problems = checks.operator_problems(s, run.operator, at=roster.now_s(), settings=settings)
        roles: dict[str, RoleState] = {}
        for role in APPROVER_ROLES:
            row, signed = rows.get(role), state.signed.get(role)
            problem = next((p.message for p in state.problems if p.field == f"approvals.{role}"), "")
            if signed is not None:
                rs = RoleState(role, "verified", f"{signed.person_name}\n{signed.person_id}", signed.fingerprint,
                               signed.params_hash, signed.statement_run_id, f"{signed.at:%Y-%m-%d %H:%M:%S}Z",
                               statement=signed.statement)
            elif row is not None:
                rs = RoleState(role, "does not count", row.approver_id, row.key_fingerprint or "", row.params_hash,
                               row.run_id, f"{row.decided_at:%Y-%m-%d %H:%M:%S}Z", problem,
                               statement=row.statement or "")
            else:
                rs = RoleState(role, "missing", problem=problem, statement=stmt.for_run(s, run.id, role),
                               commands=stmt.commands(run.id, role, key_hint))
            roles[role] = rs
        dual = [p for p in state.problems if p.field == "approvals"]
        return ApprovalState(run.id, run.params_hash, run.mode, run.operator, roles,
                             [p for p in state.problems if p.field != "approvals"] + dual, op_problems)


class ApprovalsPanel:
    """The panel for one run (``show(run_id)``); ``on_change`` is called after every refresh."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or get_settings()
        self.run_id: str | None = None
        self.state: ApprovalState | None = None
        self.on_change: list[Any] = []
        self.html = w.HTML(error_html("no run yet: run the dry run first (approvals are for its parameters)"))
        self.html.add_class("payops-approvals")
        self.refresh_button = button("Refresh approvals", "payops-refresh-approvals",
                                     tooltip="read the approvals again")
        self.refresh_button.on_click(guarded(self._show_error)(lambda _b: self.refresh()))
        self.widget = w.VBox([w.HTML("<h3>Approvals</h3>"), self.html, self.refresh_button])
        self.widget.add_class("payops-approvals-panel")

    def _show_error(self, exc: BaseException) -> None:
        self.html.value = error_html(str(exc))

    def show(self, run_id: str | None) -> None:
        self.run_id = run_id
        self.refresh()

    def refresh(self) -> None:
        if self.run_id is None:
            self.state = None
        else:
            self.state = approval_state(self.run_id, self.settings)
            self.html.value = render(self.state)
        for cb in self.on_change:
            cb()

    @property
    def verified(self) -> bool:
        return self.state is not None and self.state.verified


def render(st: ApprovalState) -> str:
    head = (f"<div>Dry run <code>{esc(st.run_id)}</code><br>parameters sha256 "
            f"<code class='payops-params-hash'>{esc(st.params_hash)}</code></div>")
    rows = []
    for role in APPROVER_ROLES:
        r = st.roles[role]
        mark = ok_html("verified") if r.state == "verified" else error_html(r.state)
        approved = esc(r.params_hash[:16]) + "…" if r.params_hash else "—"
        person = "<br>".join(f"<span style='{'font-size:11px;color:#555' if i else ''}'>{esc(x)}</span>"
                             for i, x in enumerate(r.person.split("\n"))) or "—"
        rows.append(f"<tr class='payops-approval-{role}' style='border-top:1px solid #ddd'><td><b>{role}</b></td>"
                    f"<td style='white-space:nowrap'>{mark}</td><td style='white-space:nowrap'>{person}</td>"
                    + ("<td>—</td>" if r.state == "missing" else
                       f"<td style='font-size:11px'>key <code>{esc(r.fingerprint) or '—'}</code><br>"
                       f"params sha256 <code>{approved}</code></td>")
                    + f"<td style='white-space:nowrap'>{esc(r.decided_at) or '—'}</td></tr>")
    table = ("<table style='border-collapse:collapse' cellpadding='5'><tr style='text-align:left'><th>role</th>"
             "<th>state</th><th>approver</th><th>signed with / approved</th><th>signed (UTC)</th>"
             "</tr>" + "".join(rows) + "</table>")
    parts = [head, table]
    for role in APPROVER_ROLES:
        r = st.roles[role]
        if r.problem and r.state != "missing":
            parts.append(f"<div>{error_html(r.problem)}</div>")
        if r.state != "verified":
            parts.append(f"<div class='payops-approve-{role}'><b>Still missing: {role}.</b> The {role} approver runs, "
                         f"in their own terminal with their roster key:{pre(chr(10).join(r.commands))}"
                         f"<details><summary>the statement they sign ({len(r.statement.encode())} bytes)</summary>"
                         f"{pre(r.statement)}</details></div>")
    for p in st.problems + st.operator_problems:
        if not p.field.startswith("approvals.ops") and not p.field.startswith("approvals.finance"):
            parts.append(f"<div>{error_html(str(p))}</div>")
    if st.verified:
        ok = ok_html("both approvals verify: the operator may go live")
        parts.append(f"<div class='payops-approvals-ok'>{ok}</div>")
    return "\n".join(parts)
