"""``payops approvers`` — the approver roster (mounted by payops.cli).

    payops approvers add --id UUID --name NAME --role ops|finance|operator [--role …] --key ~/.ssh/id_ed25519.pub
                         [--test-only] [--by UUID]      (an enrolled person: adds roles and/or another key)
    payops approvers list [--all] [--format table|json]
    payops approvers revoke PERSON_ID [--key SHA256:… | --role ROLE] --reason TEXT [--by UUID]
    payops approvers log [--person UUID] [--limit N]
    payops approvers allowed-signers                   (the active roster in git's allowed_signers format)

``--by`` (default ``$PAYOPS_OPERATOR_ID``) names who changes the roster; the OS login is recorded too.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from payops.cli_support import handles_errors

app = typer.Typer(help="The approver roster: who may approve (ops, finance) or operate, with their SSH keys.",
                  no_args_is_help=True, pretty_exceptions_enable=False)
console = Console(highlight=False)


def _ts(value: Any) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%SZ") if value is not None else "—"


@app.command("add")
@handles_errors
def add_cmd(
    person_id: Annotated[str, typer.Option("--id", help="The person's UUID (from your directory/HR system).")],
    roles: Annotated[list[str] | None, typer.Option("--role", help="ops, finance or operator (repeatable).")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Full name (new person).")] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Their SSH public key file (.pub).")] = None,
    key_text: Annotated[str | None, typer.Option("--key-text", help="The public key line itself.")] = None,
    test_only: Annotated[bool, typer.Option("--test-only", help="Generated keys for demos and rehearsals: "
                                                                  "never count in live mode.")] = False,
    by: Annotated[str | None, typer.Option("--by", envvar="PAYOPS_OPERATOR_ID",
                                           help="Your UUID (default $PAYOPS_OPERATOR_ID).")] = None,
) -> None:
    """Enroll a person (id, name, roles, public key), or add roles or a key to an enrolled person."""
    from payops.approvals import roster, sshkeys
    from payops.config import get_settings
    from payops.db import session_scope
    from payops.errors import FieldProblem

    problems: list[FieldProblem] = []
    public = None
    if key is not None and key_text is not None:
        problems.append(FieldProblem("--key", "give --key FILE or --key-text LINE, not both"))
    elif key is not None or key_text is not None:
        try:
            public = sshkeys.read_public_key_file(key) if key is not None else sshkeys.parse_public_key(key_text or "")
        except sshkeys.KeyProblem as exc:
            problems.append(FieldProblem("--key", f"{key or 'the key text'}: {exc}"))
    settings = get_settings()
    with session_scope(settings) as s:
        res = roster.enroll(s, person_id=person_id, name=name, roles=list(roles or []), key=public, by=by,
                            settings=settings, test_only=test_only, problems=problems)
    what = (["enrolled"] if res.created else []) + [f"role {r}" for r in res.roles_added] \
        + ([f"key {res.key_added}"] if res.key_added else [])
    console.print(f"[green]✔[/] {res.person_id}: " + (", ".join(what) if what else "nothing new (already enrolled)"),
                  soft_wrap=True)


@app.command("list")
@handles_errors
def list_cmd(
    show_all: Annotated[bool, typer.Option("--all", help="Include removed people.")] = False,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Who may approve or operate now, with their keys (revoked ones shown as such)."""
    from payops.approvals import roster
    from payops.db import session_scope

    with session_scope() as s:
        people = roster.people(s, include_revoked=show_all)
    if fmt == "json":
        console.print_json(json.dumps([p.as_dict() for p in people], default=str))
        return
    if not people:
        console.print("the roster is empty: `payops approvers add --id UUID --name NAME --role ops --key FILE.pub`")
    for p in people:  # one block per person: full ids and fingerprints, ready to copy into `revoke`
        flags = p.status + (", test-only" if p.test_only else "")
        console.print(f"[bold]{escape(p.name)}[/]  {p.id}  roles: {', '.join(p.active_roles) or '—'}  ({flags})",
                      soft_wrap=True)
        for k in p.keys:
            state = f"revoked {_ts(k['revoked_at'])}" if k["revoked_at"] else "active"
            console.print(f"  key {k['fingerprint']}  {k['type']}  added {_ts(k['added_at'])}  {state}",
                          soft_wrap=True, markup=False)


@app.command("revoke")
@handles_errors
def revoke_cmd(
    person_id: Annotated[str, typer.Argument(help="The person's UUID.")],
    reason: Annotated[str, typer.Option("--reason", help="Why (kept in the roster's history).")],
    key: Annotated[str | None, typer.Option("--key", help="Revoke only this key (SHA256:… fingerprint).")] = None,
    role: Annotated[str | None, typer.Option("--role", help="Revoke only this role.")] = None,
    by: Annotated[str | None, typer.Option("--by", envvar="PAYOPS_OPERATOR_ID",
                                           help="Your UUID (default $PAYOPS_OPERATOR_ID).")] = None,
) -> None:
    """Revoke a key, a role, or (neither given) the person. History is kept; approvals given before stay valid."""
    from payops.approvals import roster
    from payops.db import session_scope

    with session_scope() as s:
        done = roster.revoke(s, person_id=person_id, role=role, fingerprint=key, reason=reason, by=by)
    console.print(f"[green]✔[/] revoked: {', '.join(done)}", soft_wrap=True)


@app.command("log")
@handles_errors
def log_cmd(
    person: Annotated[str | None, typer.Option("--person", help="Only this person's changes.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    fmt: Annotated[str, typer.Option("--format", help="table | json")] = "table",
) -> None:
    """Every roster change, newest first: when, who (and from which login), what."""
    from payops.approvals import roster
    from payops.db import session_scope

    with session_scope() as s:
        rows = [{"id": e.id, "at": e.at, "actor": e.actor, "login": e.actor_login, "action": e.action,
                 "person_id": e.person_id, "detail": json.loads(e.detail_json)}
                for e in roster.events(s, limit=limit, person_id=person)]
    if fmt == "json":
        console.print_json(json.dumps(rows, default=str))
        return
    t = Table("when (UTC)", "by", "login", "action", "person", "detail")
    for r in rows:
        t.add_row(_ts(r["at"]), r["actor"], r["login"], r["action"], r["person_id"],
                  ", ".join(f"{k}={v}" for k, v in r["detail"].items()))
    console.print(t)


@app.command("allowed-signers")
@handles_errors
def allowed_signers_cmd() -> None:
    """The active roster as an allowed_signers file (principal = person id, namespaces and validity set)."""
    import sys

    from payops.approvals import roster
    from payops.db import session_scope

    with session_scope() as s:
        sys.stdout.write(roster.allowed_signers_now(s))
