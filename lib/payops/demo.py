"""``make demo``: the manual payout SOP end to end, offline — then the reconciliation and the next cycle.

Starts the Stripe sandbox and the local Slack/SMTP sinks in this process, uses an embedded SQLite
database (``var/demo.db``, recreated each time), seeds both sides, enrolls a test-only approver roster
whose keys are generated into a temporary folder, then runs the SOP exactly as ops would: a dry run, two
signed approvals (ops with ``--key``, finance offline with ``ssh-keygen -Y sign``), the live run with the
operator's signed go-live — and re-verifies the approvals from the archive folder with ``ssh-keygen``.
Shows the transfer in Stripe, the audit row, the delivered messages and the archive; reconciles
2026-09-01 … 2026-11-30 (the planted breaks), runs the next automated payout cycle (2026-12-01: dry run,
then live), runs the monitoring checker over the demo's history (every rule fires: PagerDuty, Slack, Jira
and email reach the local sinks) and the dashboards, and verifies the archive's hash chain.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from payops import demo_data
from payops.approvals import NAMESPACE, submit
from payops.approvals.evidence import verify_run_approvals
from payops.approvals.testkeys import GeneratedRoster, enroll_test_roster, sign_offline
from payops.config import Settings

OPERATOR = "aaaaaaaa-0000-4000-8000-000000000001"
OPS_APPROVER = "bbbbbbbb-0000-4000-8000-000000000002"
FINANCE_APPROVER = "cccccccc-0000-4000-8000-000000000003"
SOP_FLAGS = {
    "studio_id": demo_data.STUDIO_A.studio_id, "studio_name": demo_data.STUDIO_A.name,
    "ledger_payout_id": demo_data.REHEARSAL_LEDGER_PAYOUT_ID, "incident_id": "INC-DEMO-001",
    "amount": "875.50", "reserve_after": "120.00", "reason": "automated payout failed (cycle 2026-11-15)",
    "destination_account": demo_data.STUDIO_A.account_id, "notes": "payops demo", "operator": OPERATOR,
}


def _enroll(keydir: Path, settings: Settings, console: Console) -> GeneratedRoster:
    """The demo's approver roster: three test-only people whose keys are generated now (deleted after)."""
    console.rule("[bold]0. The approver roster (test-only keys generated for this demo, never committed)")
    team = enroll_test_roster(keydir, [
        ("operator", OPERATOR, "Oscar Operator (demo)", ("operator",)),
        ("ops", OPS_APPROVER, "Olivia Ops (demo)", ("ops",)),
        ("finance", FINANCE_APPROVER, "Farid Finance (demo)", ("finance",)),
    ], by=OPERATOR, settings=settings)
    t = Table("person", "name", "role", "key")
    for m in team.members.values():
        t.add_row(m.person_id, m.name, ", ".join(m.roles), m.fingerprint)
    console.print(t)
    return team


def _audit_approvals(run_dir: Path, console: Console) -> None:
    """What an auditor runs a year later, from the run folder alone: ssh-keygen -Y verify per approval."""
    manifest = json.loads((run_dir / "manifest.json").read_text())
    t = Table("approval", "ssh-keygen -Y verify (from the archive folder alone)")
    for e in manifest["approvals"]:
        cmd = shlex.split(e["verify_command"].split(" < ")[0])
        proc = subprocess.run(cmd, cwd=run_dir, input=(run_dir / e["statement"]).read_bytes(), capture_output=True,
                              check=False)
        t.add_row(f"{e['role']}: {e['name']}", (proc.stdout or proc.stderr).decode().strip())
    console.print(t)


def main() -> None:
    console = Console(highlight=False)
    from payops.sandbox.sinks import start_sinks
    from payops.sandbox.testing import start_sandbox

    var = Path("var")
    var.mkdir(exist_ok=True)
    db_file = var / "demo.db"
    for p in (db_file, var / "demo.db-wal", var / "demo.db-shm"):
        p.unlink(missing_ok=True)
    recon_cache = var / "demo-recon-cache"  # the demo world is new each time: so are its cached Stripe pages
    shutil.rmtree(recon_cache, ignore_errors=True)
    console.print(Panel.fit("payops demo — manual payout fallback SOP, offline (Stripe sandbox + SQLite)"))
    sb = start_sandbox(seed="demo", rate_limit=0)
    sinks = start_sinks(http_port=0, smtp_port=0)
    try:
        os.environ.update({
            "PAYOPS_STRIPE_API_BASE": sb.url,
            "STRIPE_FALLBACK_SECRET_KEY": demo_data.FALLBACK_KEY,
            "STRIPE_SECRET_KEY": demo_data.PLATFORM_KEY,
            "PAYOPS_DATABASE_URL": f"sqlite:///{db_file.resolve()}",
            "PAYOPS_OUTPUT_DIR": os.environ.get("PAYOPS_OUTPUT_DIR", "outputs"),
            "PAYOPS_SLACK_WEBHOOK_URL": sinks.slack_webhook_url,
            "PAYOPS_SMTP_HOST": sinks.smtp_host,
            "PAYOPS_SMTP_PORT": str(sinks.smtp_port),
            "PAYOPS_ENVIRONMENT": "test",
            "PAYOPS_RECON_CACHE_DIR": str(recon_cache.resolve()),
            **monitoring_env(sinks),
        })
        from payops import db, manual
        from payops.archive.audit import verify_with_records
        from payops.config import get_settings
        from payops.db.seed import seed_ledger

        settings = get_settings(fresh=True)
        console.print(f"Stripe sandbox {sb.url} · Slack/SMTP sinks {sinks.inbox_url} · database {db_file}")
        db.upgrade()
        seeded = seed_ledger(settings)
        console.print(f"seeded {seeded.studios} studios, {seeded.payout_runs} payout runs, "
                      f"{seeded.ledger_payouts} ledger payouts (cycle 2026-11-15 failed: 875.50 CAD unpaid)\n")

        with tempfile.TemporaryDirectory(prefix="payops-demo-keys-") as keydir:
            team = _enroll(Path(keydir), settings, console)

            console.rule("[bold]1. Dry run")
            dry = manual.run_manual_payout(SOP_FLAGS, console=console, settings=settings)

            console.rule("[bold]2. Approvals: ops signs at the desk, finance signs offline")
            submit.approve(dry.run_id, role="ops", key=team["ops"].key_path, note="demo", console=console)
            sig = sign_offline(dry.run_id, "finance", team["finance"].key_path, Path(keydir))
            console.print(f"finance, at home: payops approve {dry.run_id} --role finance --statement-only > "
                          f"{sig.with_suffix('').name} ; ssh-keygen -Y sign -f ~/.ssh/id_ed25519 -n {NAMESPACE} "
                          f"{sig.with_suffix('').name} — then submits {sig.name}:", markup=False, soft_wrap=True)
            submit.approve(dry.run_id, role="finance", signature=sig, note="demo", console=console)

            console.rule("[bold]3. Live run (the operator signs the go-live)")
            live = manual.resume(dry.run_id, live=True, wait_seconds=60, console=console, settings=settings,
                                 operator_key=team["operator"].key_path)

        console.rule("[bold]4. What happened")
        tr_id = live.results["20-transfer"]["transfer_id"]
        tr = sb.client().v1.transfers.retrieve(tr_id)
        group = sb.client().v1.transfers.list({"transfer_group": demo_data.REHEARSAL_LEDGER_PAYOUT_ID})
        t = Table("in Stripe", "value")
        t.add_row("transfer", f"{tr.id} · {tr.amount} {tr.currency.upper()} (minor units) → {tr.destination}")
        t.add_row("transfers for this ledger payout", str(len(group.data)))
        t.add_row("metadata.run_id", tr.metadata["run_id"])
        console.print(t)
        from sqlalchemy import select

        from payops.db.models import ManualPayout

        with db.session_scope() as s:
            mp = s.scalar(select(ManualPayout).where(ManualPayout.run_id == live.run_id))
            row = {c: getattr(mp, c) for c in ("id", "incident_id", "studio_name", "amount", "currency",
                                               "stripe_transfer_id", "approver_ops_id", "approver_finance_id",
                                               "operator", "is_rehearsal", "status", "settled_at")}
        a = Table("manual_payouts (read from the database)", "value")
        for k in ("id", "incident_id", "studio_name", "amount", "currency", "stripe_transfer_id", "approver_ops_id",
                  "approver_finance_id", "operator", "is_rehearsal", "status", "settled_at"):
            a.add_row(k, str(row.get(k)))
        console.print(a)
        for m in sinks.slack_messages():
            console.print(Panel(m["json"]["text"], title="Slack #payments-alerts (delivered)"))
        for e in sinks.emails():
            console.print(Panel(e["text"][:900], title=f"Email to {', '.join(e['rcpt_tos'])}: {e['subject']}"))
        console.print(f"archive: {live.run_dir}", soft_wrap=True)
        _audit_approvals(live.run_dir, console)
        console.rule("[bold]5. Finance reconciliation, 2026-09-01 … 2026-11-30 (Stripe vs ledger)")
        from payops.reconcile.cli import run_reconciliation
        from payops.reconcile.params import validate_recon

        recon_id = run_reconciliation(validate_recon({
            "period_from": "2026-09-01", "period_to": "2026-11-30", "max_unexplained": 1000}))
        console.rule(f"[bold]6. The next automated payout cycle, {demo_data.NEXT_CYCLE} (dry run, then live)")
        from payops.cycle import cli as cycle_cli

        cycle_cli.run_cmd(cycle_date=demo_data.NEXT_CYCLE.isoformat(), dry_run=True, live=False)
        cycle_cli.run_cmd(cycle_date=demo_data.NEXT_CYCLE.isoformat(), dry_run=False, live=True)
        cycle_cli.status_cmd(limit=8)
        show_monitoring(console, settings, sinks)
        report = verify_with_records(settings.output_dir, settings=settings, run_checks=(verify_run_approvals,))
        console.print(("[green]✓ archive verifies[/]" if report.ok else f"[red]✗ {report.first_problem}[/]")
                      + f" — {report.runs_checked} run(s) in the chain")
        rehearsal = show_rehearsal(console, var, sinks)
        console.print(json.dumps({"dry_run": dry.run_id, "live_run": live.run_id, "transfer": tr_id,
                                  "reconciliation": recon_id, "rehearsal": rehearsal}))
        if not report.ok or rehearsal is None:
            raise SystemExit(1)
    finally:
        sinks.stop()
        sb.stop()


def show_rehearsal(console: Console, var: Path, sinks: object) -> str | None:
    """Section 8: the quarterly fallback rehearsal, unattended, in its own world (var/demo-rehearsal.db,
    #payments-rehearsal, its own archive): the criteria table, the SLA timings and the report's path."""
    from payops.config import get_settings
    from payops.rehearsal import flow
    from payops.rehearsal.cli import print_outcome
    from payops.rehearsal.params import gather

    console.rule("[bold]8. The quarterly fallback rehearsal (payops rehearse --unattended), in its own world")
    rdb = var / "demo-rehearsal.db"
    for p in (rdb, var / "demo-rehearsal.db-wal", var / "demo-rehearsal.db-shm"):
        p.unlink(missing_ok=True)
    base = sinks.slack_webhook_url.split("/services/")[0]  # type: ignore[attr-defined]
    os.environ.update({
        "PAYOPS_REHEARSAL_DATABASE_URL": f"sqlite:///{rdb.resolve()}",
        "PAYOPS_REHEARSAL_SLACK_WEBHOOK_URL": base + "/services/TDEMO/BREHEARSAL/demo-rehearsal",
        "PAYOPS_REHEARSAL_OUTPUT_DIR": str(Path(os.environ["PAYOPS_OUTPUT_DIR"]).resolve().with_name(
            Path(os.environ["PAYOPS_OUTPUT_DIR"]).name + "-rehearsal")),
    })
    get_settings(fresh=True)
    from datetime import UTC, datetime

    params = gather(params_file=None, ticket=None, operator=None, actions=[], unattended=True, live=True,
                    wait_seconds=0, today=datetime.now(UTC).date())
    outcome = flow.rehearse(flow.default_operator(params), settle_wait=120, console=console)
    print_outcome(outcome, console)
    return outcome.run_id if outcome.status == "passed" else None


def monitoring_env(sinks: object) -> dict[str, str]:
    """PagerDuty and Jira pointed at the local sinks, next to Slack and SMTP."""
    from payops.sandbox.alert_sinks import SANDBOX_ROUTING_KEY

    return {"PAGERDUTY_ROUTING_KEY": SANDBOX_ROUTING_KEY, "PAYOPS_PAGERDUTY_EVENTS_URL": sinks.pagerduty_url,  # type: ignore[attr-defined]
            "PAYOPS_JIRA_URL": sinks.jira_url, "PAYOPS_JIRA_TOKEN": "sandbox-jira-token"}  # type: ignore[attr-defined]


def show_monitoring(console: Console, settings: object, sinks: object) -> None:
    """Section 7: the checker over the demo's history, what reached each sink, the dashboards."""
    from datetime import UTC, datetime

    from payops.monitor.check import run_check
    from payops.monitor.cli import print_check
    from payops.monitor.dashboard_run import run_dashboard
    from payops.monitor.demo_seed import seed_monitoring_history
    from payops.sandbox.alert_sinks import alert_tables

    console.rule("[bold]7. Monitoring: `payops monitor check` over the demo's history")
    seed_monitoring_history(settings, datetime.now(UTC))  # type: ignore[arg-type]
    before = {k: len(v) for k, v in sinks.store.snapshot().items()}  # type: ignore[attr-defined]
    report = run_check(settings)  # type: ignore[arg-type]
    print_check(report, console)
    inbox = sinks.store.snapshot()  # type: ignore[attr-defined]
    for table in alert_tables(inbox):
        console.print(table)
    new_slack = inbox["slack"][before["slack"]:]
    new_mail = inbox["email"][before["email"]:]
    console.print(f"Slack: {len(new_slack)} monitoring post(s) · email: "
                  + "; ".join(m["subject"] for m in new_mail), soft_wrap=True, markup=False)
    again = run_check(settings)  # type: ignore[arg-type]
    console.print(f"checked again: {len(again.opened)} opened, {len(again.outcomes)} sent (nothing pages twice)")
    dash = run_dashboard(settings=settings)  # type: ignore[arg-type]
    console.print(f"dashboards: {dash.run_dir / 'dashboards.html'}", soft_wrap=True, markup=False)


if __name__ == "__main__":
    main()
