"""Runs, their steps and approvals as recorded — read with SQLAlchemy Core on :mod:`payops.db.tables`.

The read side that ``payops runs list``, ``payops runs show`` and ``payops approve`` need, without the
ORM, the runner, papermill or pandas, so those commands start fast. Every reader takes a Core
``Connection`` (``db.connection_scope``) or an ORM ``Session`` (``db.session_scope``: a session flushes
pending changes before it runs a Core query, so callers inside a unit of work see their own rows);
rows come back as read-only ``Row`` objects with the columns as attributes (``run.sop``, ``run.mode``…).
:mod:`payops.runstate` (the runner's writes: create, claim, release) and :mod:`payops.recovery`
re-export these, so there is one definition of each question.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Row, select

from payops.db import connection_scope
from payops.db import tables as t
from payops.db.tables import utcnow
from payops.errors import PayopsError

if TYPE_CHECKING:
    from rich.console import Console
    from sqlalchemy.orm import Session

    Reader = Connection | Session

SOP = "manual_payout"
SIGNED = "sshsig"  # signed approvals; rows recorded before signatures (kind 'unsigned') never count


# --- leases ----------------------------------------------------------------------------------------
def lease_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _holder_alive(owner: str | None) -> bool:
    """A lease held by a dead process on this host is free; one on another host waits for expiry."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


def lease_alive(run: Any, *, now: datetime | None = None) -> bool:
    """Is a process still executing this run (a row or a ``RunbookRun``)? Its lease is unexpired and its
    holder not dead on this host."""
    if run.status != "running" or not run.lease_owner:
        return False
    if run.lease_expires_at is not None and run.lease_expires_at < (now or utcnow()):
        return False
    return _holder_alive(run.lease_owner)


def shown_status(run: Any) -> str:
    """The status people see: ``interrupted`` for a run marked running whose lease is gone (crash, SIGKILL)."""
    if run.status == "running" and not lease_alive(run):
        return "interrupted"
    return run.status


# --- runs and steps ---------------------------------------------------------------------------------
def run_row(s: Reader, run_id: str) -> Row[Any]:
    """The run's row; the same error as ``runstate.get_run`` when there is none."""
    row = s.execute(select(t.runbook_runs).where(t.runbook_runs.c.id == run_id)).first()
    if row is None:
        raise PayopsError(f"no run with id {run_id!r} (see `payops runs list`)")
    return row


def step_rows(s: Reader, run_id: str) -> list[Row[Any]]:
    """The run's steps in runbook order."""
    st = t.runbook_steps
    return list(s.execute(select(st).where(st.c.run_id == run_id).order_by(st.c.position)))


def last_finished(s: Reader, run_id: str) -> str | None:
    """The last step that succeeded, in runbook order (None: none yet)."""
    done = [x.step for x in step_rows(s, run_id) if x.status == "succeeded"]
    return done[-1] if done else None


def money_moved(s: Reader, run: Any) -> str:
    """Did this run move money? ``yes (tr_…)`` · ``unknown (…)`` · ``no`` · ``—`` (not a money-moving run)."""
    if run.sop != SOP or run.mode == "dry-run":
        return "—"
    manual = s.execute(select(t.manual_payouts).where(t.manual_payouts.c.run_id == run.id)).first()
    if manual is not None and manual.stripe_transfer_id:
        return f"yes ({manual.stripe_transfer_id})"
    intent = s.execute(select(t.transfer_intents).where(t.transfer_intents.c.run_id == run.id)).first()
    if intent is None:
        return "no"
    if intent.status == "created":
        return f"yes ({intent.stripe_transfer_id})"
    if intent.status == "failed":
        return "no (Stripe refused the transfer)"
    if intent.attempts > 0:
        return "unknown (Stripe may have it: resuming looks it up before sending)"
    return "no"


def golive_row(s: Reader, run_id: str) -> Row[Any] | None:
    """The operator's go-live signature of the run, if there is one."""
    g = t.golive_signatures
    return s.execute(select(g).where(g.c.run_id == run_id)).first()


# --- approvals ---------------------------------------------------------------------------------------
# Signed approvals are written and verified by ``payops.approvals``; this is the read side the SOP steps
# share. Only signed approvals count; rows recorded before signatures (``kind = 'unsigned'``) are shown as
# "unsigned (legacy)" and never count.
@dataclass(frozen=True)
class ApprovalView:
    role: str
    approver_id: str
    run_id: str
    params_hash: str
    decided_at: datetime
    kind: str = SIGNED
    key_fingerprint: str | None = None
    statement: str | None = None
    signature: str | None = None

    @property
    def signed(self) -> bool:
        return self.kind == SIGNED

    @property
    def status(self) -> str:
        return "signed" if self.signed else "unsigned (legacy)"

    def as_dict(self) -> dict[str, Any]:
        return {"role": self.role, "approver_id": self.approver_id, "run_id": self.run_id,
                "params_hash": self.params_hash, "decided_at": self.decided_at.isoformat(),
                "signed": self.signed, "status": self.status, "key_fingerprint": self.key_fingerprint}


def _view(a: Any) -> ApprovalView:
    return ApprovalView(a.role, a.approver_id, a.run_id, a.params_hash, a.decided_at, a.kind, a.key_fingerprint,
                        a.statement, a.signature)


def approvals_for(s: Reader, params_hash: str) -> dict[str, ApprovalView]:
    """The signed approvals of these exact parameters, by role (legacy rows never count)."""
    a = t.approvals
    rows = s.execute(select(a).where(a.c.params_hash == params_hash, a.c.kind == SIGNED))
    return {r.role: _view(r) for r in rows}


def legacy_approvals(s: Reader, params_hash: str) -> list[ApprovalView]:
    """Approvals recorded before signatures existed: shown as "unsigned (legacy)", never counted."""
    a = t.approvals
    rows = s.execute(select(a).where(a.c.params_hash == params_hash, a.c.kind != SIGNED).order_by(a.c.id))
    return [_view(r) for r in rows]


# --- `payops runs list` / `payops runs show` ------------------------------------------------------------
def run_summary(s: Reader, r: Any) -> dict[str, Any]:
    """A run as people see it: ``interrupted`` when marked running but nobody holds its lease (a crash),
    its last finished step and whether it moved money."""
    return {"id": r.id, "sop": r.sop, "mode": r.mode, "status": shown_status(r), "created_at": r.created_at,
            "finished_at": r.finished_at, "failed_step": r.failed_step,
            "last_finished": last_finished(s, r.id),
            "money_moved": money_moved(s, r), "params_hash": r.params_hash,
            "parent_run_id": r.parent_run_id, "output_dir": r.output_dir, "manifest_sha256": r.manifest_sha256,
            "lease_owner": r.lease_owner, "lease_expires_at": r.lease_expires_at}


def list_runs(*, sop: str | None, limit: int) -> list[dict[str, Any]]:
    """Recent runs, newest first (``payops runs list``)."""
    rr = t.runbook_runs
    with connection_scope() as conn:
        q = select(rr).order_by(rr.c.created_at.desc()).limit(limit)
        if sop:
            q = q.where(rr.c.sop == sop)
        return [run_summary(conn, r) for r in conn.execute(q).all()]


def show_run(run_id: str) -> dict[str, Any]:
    """One run: parameters, steps, approvals, go-live (``payops runs show``)."""
    with connection_scope() as conn:
        run = run_row(conn, run_id)
        info = run_summary(conn, run) | {
            "params": json.loads(run.params_json), "operator": run.operator, "error": run.error,
            "detected_at": run.detected_at, "started_at": run.started_at,
            "steps": [{"step": x.step, "status": x.status, "attempts": x.attempts, "notebook": x.notebook_path,
                       "error": x.error, "finished_at": x.finished_at} for x in step_rows(conn, run_id)],
            "approvals": [a.as_dict() for a in approvals_for(conn, run.params_hash).values()]
            + [a.as_dict() for a in legacy_approvals(conn, run.params_hash)],
        }
        go = golive_row(conn, run_id)
        info["golive"] = None if go is None else {
            "operator": go.person_id, "key_fingerprint": go.key_fingerprint, "signed_at": go.signed_at.isoformat()}
    return info


def print_run(info: dict[str, Any], console: Console) -> None:
    """``payops runs show`` as a table."""
    from rich.markup import escape
    from rich.table import Table

    console.print(f"[bold]{info['id']}[/] {info['sop']} · {info['mode']} · [bold]{info['status']}[/]")
    console.print(f"params sha256 {info['params_hash']} · operator {info['operator']}")
    console.print(f"archive {info['output_dir']}")
    console.print(f"last finished {info['last_finished'] or '—'} · money moved {info['money_moved']}")
    if info["status"] == "interrupted":
        console.print(f"interrupted: its process is gone (lease {info['lease_owner']}). Repeat the same approved "
                      f"live command, or `payops runs resume {info['id']}`, to finish it", style="yellow",
                      soft_wrap=True)
    if info["error"]:
        console.print(escape(info["error"]), style="red")
    tb = Table("step", "status", "attempts", "notebook")
    for st in info["steps"]:
        tb.add_row(st["step"], st["status"], str(st["attempts"]), st["notebook"] or "")
    console.print(tb)
    a = Table("role", "approver")
    a.add_column("status", no_wrap=True)
    for col in ("key", "decided (UTC)", "statement of run"):
        a.add_column(col)
    for ap in info["approvals"]:
        a.add_row(ap["role"], ap["approver_id"], ap.get("status", "signed"), ap.get("key_fingerprint") or "—",
                  ap["decided_at"][:19], ap["run_id"])
    go = info.get("golive")
    if go:
        a.add_row("go-live", go["operator"], "signed", go["key_fingerprint"], go["signed_at"][:19], info["id"])
    console.print(a)
    console.print_json(json.dumps(info["params"]))
