"""``payops approvers`` on SQLite and the real PostgreSQL: enroll, list, rotate, revoke, the change log —
bad input refused naming the option with nothing written, history never deleted (database triggers)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from payops import db
from payops.approvals import NAMESPACE
from payops.cli import app
from payops.config import get_settings
from payops.db.models import ApproverKey, ApproverPerson, ApproverRole, RosterEvent

pytestmark = pytest.mark.db
ADMIN = "aaaaaaaa-0000-4000-8000-000000000001"
ADA = "12345678-0000-4000-8000-00000000ada0"
BOB = "12345678-0000-4000-8000-00000000b0b0"


@pytest.fixture()
def env(migrated_db: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("PAYOPS_STRIPE_API_BASE", "http://127.0.0.1:9")  # test mode, offline
    monkeypatch.setenv("PAYOPS_OPERATOR_ID", ADMIN)
    get_settings(fresh=True)
    return migrated_db


def cli(*args: str) -> Any:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def keypair(tmp: Path, name: str) -> Path:
    path = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True,
                   capture_output=True)
    return path


def roster_counts() -> dict[str, int]:
    with db.session_scope() as s:
        return {m.__tablename__: s.scalar(select(func.count()).select_from(m)) or 0
                for m in (ApproverPerson, ApproverRole, ApproverKey, RosterEvent)}


def listed() -> list[dict[str, Any]]:
    res = cli("approvers", "list", "--all", "--format", "json")
    assert res.exit_code == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def test_enroll_rotate_revoke_and_the_log(env: str, tmp_path: Path) -> None:
    ada1, ada2 = keypair(tmp_path, "ada1"), keypair(tmp_path, "ada2")
    res = cli("approvers", "add", "--id", ADA, "--name", "Ada Finance", "--role", "finance", "--role", "operator",
              "--key", str(ada1.with_suffix(".pub")))
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "enrolled" in res.stdout and "role finance" in res.stdout and "SHA256:" in res.stdout
    (ada,) = listed()
    assert (ada["id"], ada["name"], ada["status"], ada["test_only"]) == (ADA, "Ada Finance", "active", False)
    assert ada["active_roles"] == ["finance", "operator"]
    fp1 = ada["keys"][0]["fingerprint"]
    # rotation: a second key, then the first revoked — history stays
    assert cli("approvers", "add", "--id", ADA, "--key", str(ada2.with_suffix(".pub"))).exit_code == 0
    assert cli("approvers", "revoke", ADA, "--key", fp1, "--reason", "laptop replaced").exit_code == 0
    (ada,) = listed()
    assert [k["revoked_at"] is None for k in ada["keys"]] == [False, True]
    assert ada["keys"][0]["revoke_reason"] == "laptop replaced"
    # a role revoked, then the person (and every key and role left) — nothing deleted
    assert cli("approvers", "revoke", ADA, "--role", "operator", "--reason", "moved to finance only").exit_code == 0
    assert listed()[0]["active_roles"] == ["finance"]
    assert cli("approvers", "revoke", ADA, "--reason", "left the company").exit_code == 0
    (ada,) = listed()
    assert ada["status"] == "revoked" and ada["active_roles"] == [] and all(k["revoked_at"] for k in ada["keys"])
    assert cli("approvers", "list", "--format", "json").stdout.strip() == "[]"  # active people only
    log = json.loads(cli("approvers", "log", "--format", "json").stdout)
    assert [e["action"] for e in reversed(log)] == [
        "person.add", "role.grant", "role.grant", "key.add", "key.add", "key.revoke", "role.revoke", "person.revoke"]
    assert {e["actor"] for e in log} == {ADMIN} and all("@" in e["login"] for e in log)
    assert log[0]["detail"]["reason"] == "left the company"
    # a removed person cannot come back under the same id; a revoked key cannot be enrolled again
    again = cli("approvers", "add", "--id", BOB, "--name", "Bob", "--role", "ops", "--key",
                str(ada1.with_suffix(".pub")))
    assert again.exit_code == 2 and "--key" in again.stderr and "already enrolled (revoked)" in again.stderr
    back = cli("approvers", "add", "--id", ADA, "--role", "ops")
    assert back.exit_code == 2 and "--id" in back.stderr and "removed from the roster" in back.stderr


def _refused(args: list[str], *fields: str) -> str:
    before = roster_counts()
    res = cli("approvers", "add", *args)
    err = res.stderr.strip()
    assert res.exit_code == 2, res.stdout + res.stderr
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in res.stdout + res.stderr
    for f in fields:
        assert f in err, (f, err)
    assert roster_counts() == before  # nothing written
    return err


def test_bad_roster_input_is_named_and_nothing_is_written(env: str, tmp_path: Path) -> None:
    k = keypair(tmp_path, "k")
    pub = str(k.with_suffix(".pub"))
    ok = ["--name", "Bob Ops", "--role", "ops", "--key", pub]
    assert "not a UUID" in _refused(["--id", "bob", *ok], "--id")
    assert "not a canonical UUID" in _refused(["--id", "{" + BOB + "}", *ok], "--id")
    assert "'treasury'" in _refused(["--id", BOB, "--name", "Bob", "--role", "treasury", "--key", pub], "--role")
    assert "PRIVATE key" in _refused(["--id", BOB, "--name", "Bob", "--role", "ops", "--key", str(k)], "--key")
    bad = tmp_path / "bad.pub"
    bad.write_text("ssh-foo AAAAC3NzaC1lZDI1NTE5AAAAIEHu4vz+wrongwrongwrongwrongwrongwrongwro bob\n")
    assert "unknown key type" in _refused(["--id", BOB, "--name", "Bob", "--role", "ops", "--key", str(bad)], "--key")
    _refused(["--id", BOB, "--name", "Bob", "--role", "ops", "--key-text", "hello"], "--key")
    _refused(["--id", BOB, "--role", "ops", "--key", pub], "--name")
    _refused(["--id", BOB, "--name", "Bob\nops", "--role", "ops", "--key", pub], "--name")
    _refused(["--id", BOB, "--name", "Bob", "--key", pub], "--role")
    _refused(["--id", BOB, "--name", "Bob", "--role", "ops"], "--key")
    _refused(["--id", BOB, *ok, "--by", "admin"], "--by")
    # several problems at once: every one named
    _refused(["--id", "x", "--name", "Bob", "--role", "boss", "--key", str(k)], "--id", "--role", "--key")
    # revoke: unknown person / key / role, missing reason
    for args, field in ((["revoke", BOB, "--reason", "x"], "PERSON_ID"),
                        (["revoke", "bob", "--reason", "x"], "PERSON_ID")):
        res = cli("approvers", *args)
        assert res.exit_code == 2 and field in res.stderr
    assert cli("approvers", "add", "--id", BOB, *ok).exit_code == 0
    for args, field in ((["--key", "SHA256:nope"], "--key"), (["--role", "finance"], "--role"),
                        (["--role", "x"], "--role")):
        res = cli("approvers", "revoke", BOB, "--reason", "r", *args)
        assert res.exit_code == 2 and field in res.stderr, res.stderr
    res = cli("approvers", "revoke", BOB, "--reason", " ")
    assert res.exit_code == 2 and "--reason" in res.stderr


def test_no_one_can_delete_or_rewrite_roster_history(env: str, tmp_path: Path) -> None:
    assert cli("approvers", "add", "--id", ADA, "--name", "Ada", "--role", "ops", "--key",
               str(keypair(tmp_path, "a").with_suffix(".pub"))).exit_code == 0
    for stmt in (delete(ApproverKey), delete(ApproverRole), delete(ApproverPerson), delete(RosterEvent),
                 update(RosterEvent).values(actor="someone-else")):
        with pytest.raises(DBAPIError, match="refused"), db.session_scope() as s:
            s.execute(stmt)
    with db.session_scope() as s:
        assert s.scalar(select(func.count()).select_from(RosterEvent)) == 3
        assert s.scalar(select(RosterEvent.actor).limit(1)) == ADMIN
        s.execute(text("SELECT 1"))


def test_test_only_entries_are_refused_in_live_mode(env: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pub = str(keypair(tmp_path, "t").with_suffix(".pub"))
    args = ["--id", BOB, "--name", "Demo Bob", "--role", "ops", "--key", pub, "--test-only"]
    for var, value in (("PAYOPS_ENVIRONMENT", "live"), ("PAYOPS_STRIPE_API_BASE", "https://api.stripe.com")):
        with monkeypatch.context() as mp:
            mp.setenv(var, value)
            get_settings(fresh=True)
            assert "live mode" in _refused(args, "--test-only")
    get_settings(fresh=True)
    assert cli("approvers", "add", *args).exit_code == 0
    assert listed()[0]["test_only"] is True


def test_allowed_signers_export_verifies_with_ssh_keygen(env: str, tmp_path: Path) -> None:
    k = keypair(tmp_path, "ada")
    assert cli("approvers", "add", "--id", ADA, "--name", "Ada", "--role", "finance", "--key",
               str(k.with_suffix(".pub"))).exit_code == 0
    out = cli("approvers", "allowed-signers").stdout
    assert out.startswith(f'{ADA} namespaces="{NAMESPACE}",valid-after="') and "Ada [finance]" in out
    signers = tmp_path / "allowed_signers"
    signers.write_text(out)
    msg = tmp_path / "msg"
    msg.write_text("hello\n")
    subprocess.run(["ssh-keygen", "-Y", "sign", "-f", str(k), "-n", NAMESPACE, str(msg)], check=True,
                   capture_output=True)
    ok = subprocess.run(["ssh-keygen", "-Y", "verify", "-f", str(signers), "-I", ADA, "-n", NAMESPACE, "-s",
                         f"{msg}.sig"], input=msg.read_bytes(), capture_output=True, check=False)
    assert ok.returncode == 0 and b"Good" in ok.stdout
