"""`make demo` itself, end to end in a fresh folder: the SOP pays once, the reconciliation finds the planted
breaks, the next cycle runs, and the archive verifies — so the README's first command cannot rot unseen."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

#: the reconciliation's break table in the demo's output: (category, currency, breaks)
PLANTED = {("DUPLICATE_PAYMENT", "USD", 2), ("MISSING_IN_LEDGER", "CAD", 1), ("MISSING_IN_STRIPE", "CAD", 1),
           ("MISSING_IN_STRIPE", "USD", 1), ("PAYOUT_FAILED", "USD", 1), ("REVERSED_PARTIAL", "CAD", 1),
           ("TIMING_IN_TRANSIT", "CAD", 1)}


def test_make_demo_runs_end_to_end(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("PYTEST_", "PAYOPS_", "STRIPE_", "SLACK_", "SMTP_"))}
    env |= {"PAYOPS_OUTPUT_DIR": str(tmp_path / "outputs"), "COLUMNS": "200"}
    res = subprocess.run([sys.executable, "-m", "payops.demo"], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600, check=False)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out[-4000:]
    assert "archive verifies" in out
    rows = {(m[0], m[1], int(m[2])) for m in re.findall(r"│ ([A-Z_]+) +│ ([A-Z]{3}) +│ (\d+) +│", out)}
    assert rows == PLANTED, rows
    ids = json.loads(out[out.rindex("{"):])
    assert set(ids) == {"dry_run", "live_run", "transfer", "reconciliation", "rehearsal"}
    assert ids["transfer"].startswith("tr_") and ids["rehearsal"]

    # the approvers signed with keys generated for the demo; the archive alone proves it (ssh-keygen -Y verify)
    assert out.count('Good "payops-approval" signature for') == 3
    engine = create_engine(f"sqlite:///{tmp_path / 'var' / 'demo.db'}")
    with engine.connect() as conn:  # one transfer, one audit row, for the one ledger payout paid by hand
        audit = conn.execute(text("SELECT stripe_transfer_id, status FROM manual_payouts")).all()
        cycle = conn.execute(text("SELECT status FROM payout_runs WHERE cycle_date = '2026-12-01'")).scalar_one()
        signed = conn.execute(text("SELECT role, kind FROM approvals ORDER BY role")).all()
        golive = conn.execute(text("SELECT count(*) FROM golive_signatures")).scalar_one()
        test_only = conn.execute(text("SELECT DISTINCT test_only FROM approver_people")).scalars().all()
    engine.dispose()
    assert [tuple(r) for r in signed] == [("finance", "sshsig"), ("ops", "sshsig")] and golive == 1
    assert test_only == [1]  # generated keys are test-only roster entries
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and b"PRIVATE KEY" in p.read_bytes()]
    assert [a[0] for a in audit] == [ids["transfer"]] and cycle == "completed"
    runs = sorted(p.name for p in (tmp_path / "outputs").iterdir() if p.is_dir())
    assert runs == ["manual_payout", "monitoring", "payout_cycle", "reconciliation"]
    assert len((tmp_path / "outputs" / "CHAIN.jsonl").read_text().splitlines()) == 6  # every run sealed, chained
    # the monitoring section: every rule fires over the demo's history, each channel hears, nothing twice
    monitoring = out[out.index("7. Monitoring"):]
    for rule in ("automation_failure", "money_moved", "fallback_volume", "credential_expiry", "reserve_breach"):
        assert f"│ {rule}" in monitoring, rule
    for sent in ("pagerduty trigger: sent", "jira ticket: sent — OPS-1", "slack notify: sent",
                 "slack reminder-14d: sent", "slack_ops notify-below: sent", "email notify-below: sent"):
        assert sent in monitoring, sent
    assert "exit 20: 3 SEV-2 condition(s) open" in monitoring and "checked again: 0 opened, 0 sent" in monitoring
    # 8. the rehearsal, unattended, in its own world: four criteria pass, SLA timings, the report's path
    rehearsal = out[out.index("8. The quarterly fallback rehearsal"):]
    assert len(re.findall(r"\bPASS\b", rehearsal)) == 4 and "FAIL" not in rehearsal
    assert "SLA timings" in rehearsal and "manual transfer" in rehearsal
    report = Path(rehearsal.split("report: ")[1].split()[0])
    assert report.name == "90-wrap-up.html" and report.is_file()
    assert (tmp_path / "outputs-rehearsal" / "CHAIN.jsonl").is_file()  # its own archive and chain
    rdb = create_engine(f"sqlite:///{tmp_path / 'var' / 'demo-rehearsal.db'}")
    with rdb.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM manual_payouts WHERE is_rehearsal")).scalar_one() == 1
    rdb.dispose()
