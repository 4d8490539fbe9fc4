"""Dual control one person cannot fake, on SQLite and the real PostgreSQL, through the real CLI.

Each way of faking an approval is refused — when it is submitted (``payops approve --signature``) and
when it rides on the live command (``--approve-ops``) — before anything is written or sent, with one
line naming the option and what was wrong: a made-up approver id, a key not in the roster, a roster key
of the wrong role, a signature over other parameters (one cent more), a signature copied from another
run, a revoked key, the operator's own key, one person's key for both roles. And the issue's own
scenario: one operator, two invented ids, ``--live``, no dry run.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from approval_helpers import run_record, sign
from payops import demo_data
from payops.approvals.testkeys import enroll_test_roster, new_key
from payops.cli import app
from payops.db import session_scope
from payops.db.models import Approval, GoLiveSignature, ManualPayout, RunbookRun, TransferIntent

pytestmark = [pytest.mark.e2e, pytest.mark.db]
LP = demo_data.REHEARSAL_LEDGER_PAYOUT_ID
SOP_ARGS = [
    "--studio-id", demo_data.STUDIO_A.studio_id, "--studio-name", "Test Studio A", "--ledger-payout-id", LP,
    "--incident-id", "INC-TEST-1", "--amount", "875.50", "--reserve-after", "120.00",
    "--reason", "automated payout failed", "--destination-account", "acct_test_studio_a",
]
BOTH = "eeeeeeee-0000-4000-8000-000000000005"
REVOKED = "eeeeeeee-0000-4000-8000-000000000006"


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def with_flag(args: list[str], flag: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(flag) + 1] = value
    return out


def counts() -> dict[str, int]:
    with session_scope() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0
                for m in (RunbookRun, Approval, GoLiveSignature, ManualPayout, TransferIntent)}


@dataclass
class World:
    env: Any
    roster: Any
    tmp: Path
    run: RunbookRun  # a run of SOP_ARGS' parameters: the one being approved

    def sig(self, role: str, who: str, run: RunbookRun | None = None, name: str | None = None) -> Path:
        run = run or self.run
        return sign(run.id, role, self.roster[who].key_path, self.tmp / "sigs",
                    name=name or f"{role}-by-{who}-{run.id[:8]}.statement")


@pytest.fixture()
def world(payops_env, roster, tmp_path: Path) -> World:  # type: ignore[no-untyped-def]
    """The roster plus: "both" (enrolled as ops and finance), "revoked" (ops, key revoked), "stranger" (a key
    never enrolled); and a run of the SOP's parameters to approve."""
    extra = enroll_test_roster(tmp_path / "keys", [("both", BOTH, "Bo Both", ("ops", "finance")),
                                                   ("revoked", REVOKED, "Rex Revoked", ("ops",))],
                               by=roster["operator"].person_id)
    roster.members.update(extra.members)
    assert cli("approvers", "revoke", REVOKED, "--key", extra["revoked"].fingerprint, "--reason",
               "laptop stolen").exit_code == 0
    path, public = new_key(tmp_path / "keys", "stranger", "not enrolled")
    roster.members["stranger"] = type(roster["ops"])("stranger", "—", "Stranger", (), path, public)
    return World(payops_env, roster, tmp_path, run_record(SOP_ARGS))


# --- each fake, by name ---------------------------------------------------------------------------------
def made_up_id(w: World) -> str:
    return "0f0f0f0f-1111-4111-8111-111111111111"


def key_not_in_roster(w: World) -> Path:
    return w.sig("ops", "stranger")


def roster_key_of_wrong_role(w: World) -> Path:
    return w.sig("ops", "finance")


def over_other_parameters(w: World) -> Path:
    """The ops statement of a run for 875.49 — one cent less — with its statement file beside it."""
    other = run_record(with_flag(SOP_ARGS, "--amount", "875.49"))
    return w.sig("ops", "ops", other)


def over_other_parameters_sig_only(w: World) -> Path:
    """The same signature handed over alone (payops tries the statements of runs with these parameters)."""
    sig = over_other_parameters(w)
    alone = w.tmp / "alone" / "ops.sig"
    alone.parent.mkdir()
    shutil.copy(sig, alone)
    return alone


def copied_from_another_run(w: World) -> Path:
    """A genuine ops signature from another incident's run, placed beside this run's statement."""
    other = run_record(with_flag(SOP_ARGS, "--incident-id", "INC-OTHER-7"))
    theirs = w.sig("ops", "ops", other)
    ours = w.tmp / "copied" / "ops.statement"
    ours.parent.mkdir()
    with session_scope() as s:
        from payops.approvals.statement import for_run

        ours.write_text(for_run(s, w.run.id, "ops"))
    shutil.copy(theirs, str(ours) + ".sig")
    return Path(str(ours) + ".sig")


def revoked_key(w: World) -> Path:
    return w.sig("ops", "revoked")


def operators_own_key(w: World) -> Path:
    return w.sig("ops", "operator")


FAKES: dict[str, tuple[Callable[[World], Any], str]] = {
    "made-up-approver-id": (made_up_id, "is an approver id, not a signature"),
    "key-not-in-roster": (key_not_in_roster, "which is not in the approver roster"),
    "roster-key-of-wrong-role": (roster_key_of_wrong_role, "Farid Finance (cccccccc-0000-4000-8000-000000000003) is "
                                                           "not enrolled as ops"),
    "signature-over-other-parameters": (over_other_parameters, "an approval never carries over to other parameters"),
    "signature-over-other-parameters-sig-only": (over_other_parameters_sig_only, "whose parameters differ"),
    "signature-copied-from-another-run": (copied_from_another_run, "does not verify over its statement"),
    "revoked-key": (revoked_key, "of Rex Revoked (eeeeeeee-0000-4000-8000-000000000006) was revoked at"),
    "operators-own-key": (operators_own_key, "the operator cannot approve their own payout"),
}


def assert_refused(res: Any, w: World, before: dict[str, int], code: int, *named: str) -> str:
    out = res.stdout + res.stderr
    assert res.exit_code == code, out
    err = res.stderr.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in out, err
    for n in named:
        assert n in err, (n, err)
    assert counts() == before  # nothing written: no run, approval, go-live, audit row or intent
    assert list(w.env.sandbox.client().v1.transfers.list({"transfer_group": LP}).data) == []  # nothing sent
    assert w.env.sinks.slack_messages() == [] and w.env.sinks.emails() == []
    return err


@pytest.mark.parametrize("fake", list(FAKES))
def test_fake_approval_refused_when_submitted(world: World, fake: str) -> None:
    make, why = FAKES[fake]
    given = make(world)
    before = counts()
    if fake == "made-up-approver-id":
        res = cli("approve", world.run.id, "--role", "ops", "--approver", given)
        assert_refused(res, world, before, 2, "--approver", "proves nothing")
        res = cli("approve", world.run.id, "--role", "ops", "--signature", given)
        assert_refused(res, world, before, 2, "--signature", why)
        return
    res = cli("approve", world.run.id, "--role", "ops", "--signature", str(given))
    assert_refused(res, world, before, 2, "--signature", why)


@pytest.mark.parametrize("fake", list(FAKES))
def test_fake_approval_refused_on_the_live_command(world: World, fake: str) -> None:
    """With a genuine finance signature and the operator's key: only the faked ops approval is wrong."""
    make, why = FAKES[fake]
    given = str(make(world))
    finance = str(world.sig("finance", "finance"))
    before = counts()
    res = cli("manual-payout", *SOP_ARGS, "--live", "--approve-ops", given, "--approve-finance", finance,
              "--key", str(world.roster["operator"].key_path))
    err = assert_refused(res, world, before, 2, "--approve-ops", why)
    assert "--approve-finance" not in err  # the genuine one is not blamed


def test_one_persons_key_for_both_roles(world: World) -> None:
    ops, finance = world.sig("ops", "both"), world.sig("finance", "both")
    before = counts()
    res = cli("manual-payout", *SOP_ARGS, "--live", "--approve-ops", str(ops), "--approve-finance", str(finance),
              "--key", str(world.roster["operator"].key_path))
    assert_refused(res, world, before, 2, "--approve-ops", "--approve-finance", "Bo Both", "two different people")
    # recorded one at a time, the second is refused just the same
    assert cli("approve", world.run.id, "--role", "ops", "--signature", str(ops)).exit_code == 0
    before = counts()
    res = cli("approve", world.run.id, "--role", "finance", "--signature", str(finance))
    assert_refused(res, world, before, 2, "--signature", "already approved these parameters as ops", "must differ")


def test_the_issue_scenario_one_operator_two_invented_ids_live_no_dry_run(world: World) -> None:
    """`payops manual-payout … --live --approve-ops 0f0f… --approve-finance 0e0e…` moved 875.50 CAD before."""
    before = counts()
    res = cli("manual-payout", *SOP_ARGS, "--live", "--approve-ops", "0f0f0f0f-1111-4111-8111-111111111111",
              "--approve-finance", "0e0e0e0e-2222-4222-8222-222222222222")
    err = assert_refused(res, world, before, 2, "--approve-ops", "--approve-finance", "a typed id proves nothing")
    assert err.count("is an approver id, not a signature") == 2
    # and with the operator's own key too: still refused, nothing written
    res = cli("manual-payout", *SOP_ARGS, "--live", "--approve-ops", "0f0f0f0f-1111-4111-8111-111111111111",
              "--approve-finance", "0e0e0e0e-2222-4222-8222-222222222222", "--key",
              str(world.roster["operator"].key_path))
    assert_refused(res, world, before, 2, "--approve-ops", "--approve-finance")


def test_operator_must_sign_the_go_live_with_their_own_key(world: World) -> None:
    ops, finance = str(world.sig("ops", "ops")), str(world.sig("finance", "finance"))
    live = ["manual-payout", *SOP_ARGS, "--live", "--approve-ops", ops, "--approve-finance", finance]
    before = counts()
    assert_refused(cli(*live), world, before, 4, "approvals.operator", "needs the operator's go-live signature")
    # someone else's key (here the ops approver's) for the go-live: refused, naming --key
    res = cli(*live, "--key", str(world.roster["ops"].key_path))
    assert_refused(res, world, before, 2, "--key", "not to the operator of these parameters")
    res = cli(*live, "--key", str(world.tmp / "no-such-key"))
    assert_refused(res, world, before, 2, "--key", "does not exist")
