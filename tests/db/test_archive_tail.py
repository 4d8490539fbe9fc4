"""Tail truncation (#19): the archive held against the run records and the anchors of its chain head, on SQLite
and PostgreSQL. Runs are created and sealed through the runner (``runner.create_run`` + ``runner.seal``: the
real seal call site, records and anchors included) with a stand-in notebook file — no kernel."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import delete, select
from typer.testing import CliRunner

from payops import archive, runner
from payops.archive.anchor import read_file_anchor
from payops.archive.audit import verify_with_records
from payops.archive.records import load_db_anchors
from payops.cli import app
from payops.config import get_settings
from payops.db import session_scope
from payops.db.models import ArchiveAnchor, ArchiveSeal

pytestmark = pytest.mark.db


@pytest.fixture()
def world(migrated_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    out = tmp_path / "outputs"
    anchor_file = tmp_path / "anchors" / "payops-heads.jsonl"
    monkeypatch.setenv("PAYOPS_OUTPUT_DIR", str(out))
    monkeypatch.setenv("PAYOPS_ARCHIVE_ANCHORS", f"db,file:{anchor_file}")
    get_settings(fresh=True)
    return {"out": out, "anchor_file": anchor_file}


def sealed_run(n: int) -> tuple[str, Path]:
    """A dry run created and sealed the way the runner does it (its notebook a stand-in)."""
    run = runner.create_run("manual_payout", params={"incident_id": f"INC-{n}"}, params_hash=f"{n:064x}",
                            mode="dry-run", subject_key=f"lp-{n}")
    folder = Path(run.output_dir or "")
    (folder / "10-verify.ipynb").write_text(json.dumps({"cells": [], "n": n}))
    manifest = runner.seal(run.id)
    return run.id, manifest


def cut_the_tail(out: Path, manifest: Path) -> None:
    """What the issue describes: the newest run folder deleted, and the last line of CHAIN.jsonl."""
    import shutil

    shutil.rmtree(manifest.parent)
    chain = out / archive.CHAIN_FILE
    lines = chain.read_text().splitlines(keepends=True)
    chain.write_text("".join(lines[:-1]))


def test_deleting_the_newest_sealed_run_and_its_chain_line_fails_verify_naming_it(world) -> None:  # type: ignore[no-untyped-def]
    out = world["out"]
    ids = [sealed_run(n)[0] for n in range(1, 3)]
    newest, manifest = sealed_run(3)
    with session_scope() as s:
        seals = list(s.scalars(select(ArchiveSeal).order_by(ArchiveSeal.chain_seq)))
    assert [(r.run_id, r.chain_seq) for r in seals] == [(ids[0], 1), (ids[1], 2), (newest, 3)]
    assert seals[-1].manifest_sha256 == archive.sha256_file(manifest) and seals[-1].sealed_at is not None
    assert seals[-1].manifest_path == manifest.relative_to(out).as_posix()

    ok = CliRunner().invoke(app, ["archive", "verify"])
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert "held against the run records and the anchors" in ok.stdout and "not proven" not in ok.stdout
    assert f"chain head: seq 3 · {seals[-1].manifest_path}" in ok.stdout

    cut_the_tail(out, manifest)
    assert archive.verify_archive(out).ok  # the chain alone cannot see its end cut off
    bad = CliRunner().invoke(app, ["archive", "verify"])
    assert bad.exit_code == 9
    assert newest in bad.stderr
    report = verify_with_records(out)
    assert not report.ok
    assert report.problems[0].startswith(f"{seals[-1].manifest_path}: run {newest} (manual_payout, sealed ")
    assert "is not in CHAIN.jsonl; its run folder is gone too" in report.problems[0]
    assert any("the chain ends at seq 2" in p and newest in p and "tail of the archive was cut off" in p
               for p in report.problems)
    # both anchors saw it too, each on its own
    assert any(p.startswith("anchor db: the head anchored") and "seq 3" in p for p in report.problems)
    assert any(p.startswith(f"anchor file:{world['anchor_file']}") and "seq 3" in p for p in report.problems)


def test_a_middle_run_removed_and_the_chain_relinked_is_named(world) -> None:  # type: ignore[no-untyped-def]
    """Whoever rewrites CHAIN.jsonl without a run cannot rewrite the records: the run is named."""
    out = world["out"]
    gone, manifest = sealed_run(1)
    sealed_run(2)
    import shutil

    shutil.rmtree(manifest.parent)
    chain = out / archive.CHAIN_FILE
    chain.write_text("".join(ln for ln in chain.read_text().splitlines(keepends=True) if gone not in ln))
    report = verify_with_records(out)
    assert any(p.startswith(f"{manifest.relative_to(out).as_posix()}: run {gone}") for p in report.problems)


@pytest.mark.parametrize("witness", ["file", "db"])
def test_each_anchor_alone_sees_the_tail_cut_off(world, witness: str) -> None:  # type: ignore[no-untyped-def]
    out = world["out"]
    sealed_run(1)
    _rid, manifest = sealed_run(2)
    if witness == "file":
        source = read_file_anchor(world["anchor_file"], out)
    else:
        with session_scope() as s:
            source = load_db_anchors(s, output_root=out)
    assert [e.seq for e in source.entries] == [1, 2]
    assert archive.verify_archive(out, anchors=[source]).ok
    cut_the_tail(out, manifest)
    report = archive.verify_archive(out, anchors=[source])  # no run records given: only the anchor can tell
    assert not report.ok
    assert report.problems[0].startswith(f"anchor {source.name}: the head anchored ")
    assert "is seq 2" in report.problems[0] and "ends at seq 1" in report.problems[0]


def test_an_anchor_that_disagrees_with_the_chain_is_named(world) -> None:  # type: ignore[no-untyped-def]
    out = world["out"]
    sealed_run(1)
    lines = world["anchor_file"].read_text().splitlines()
    forged = json.loads(lines[-1]) | {"sha256": "0" * 64}
    world["anchor_file"].write_text("\n".join([*lines[:-1], json.dumps(forged)]) + "\n")
    report = verify_with_records(out)
    assert [p for p in report.problems if p.startswith("anchor file:")] == [
        f"anchor file:{world['anchor_file']}: seq 1 was anchored as {forged['manifest']} 00000000… (line 1), "
        f"CHAIN.jsonl seq 1 is {forged['manifest']} {json.loads((out / 'CHAIN.jsonl').read_text())['sha256'][:8]}… "
        "— the chain was rewritten"]
    # the database anchor, rewritten the same way
    world["anchor_file"].write_text("\n".join(lines) + "\n")
    with session_scope() as s:
        row = s.scalars(select(ArchiveAnchor).where(ArchiveAnchor.kind == "db")).one()
        row.manifest_sha256 = "f" * 64
    report = verify_with_records(out)
    assert len(report.problems) == 1 and report.problems[0].startswith("anchor db: seq 1 was anchored as ")


def test_archive_anchor_reanchors_and_prints_the_head(world) -> None:  # type: ignore[no-untyped-def]
    out = world["out"]
    sealed_run(1)
    # seals made outside the runner (no record, no anchor): verify says so, `archive anchor` catches up
    folder = archive.run_dir(out, "manual_payout", "run-by-hand", __import__("datetime").datetime.now())
    (folder / "note.txt").write_text("x")
    manifest = archive.seal_run(folder, output_root=out, meta={})
    report = verify_with_records(out)
    assert report.ok
    assert any("1 seal(s) have no record" in w and "seq 2" in w for w in report.warnings)
    assert any(w.startswith("anchor db: 1 newest seal(s) not anchored") for w in report.warnings)
    res = CliRunner().invoke(app, ["archive", "anchor"])
    assert res.exit_code == 0, res.stdout + res.stderr
    sha = archive.sha256_file(manifest)
    assert f"chain head: seq 2 · {manifest.relative_to(out).as_posix()} · sha256 {sha}" in res.stdout
    assert "✓ db" in res.stdout and f"✓ file {world['anchor_file']}" in res.stdout
    assert json.loads(world["anchor_file"].read_text().splitlines()[-1])["sha256"] == sha
    assert not [w for w in verify_with_records(out).warnings if w.startswith("anchor")]
    printed = CliRunner().invoke(app, ["archive", "anchor", "--print"])
    assert printed.exit_code == 0 and f"sha256 {sha}" in printed.stdout
    assert len(world["anchor_file"].read_text().splitlines()) == 2  # the first seal, `archive anchor`; --print: nothing


def test_a_run_sealed_before_seals_were_recorded_is_still_held_to_its_run_row(world) -> None:  # type: ignore[no-untyped-def]
    """Runs sealed before 0008 have only ``runbook_runs.manifest_sha256``: that is enough to name one deleted."""
    out = world["out"]
    old, manifest = sealed_run(1)
    sealed_run(2)
    with session_scope() as s:
        s.execute(delete(ArchiveSeal).where(ArchiveSeal.run_id == old))
    assert verify_with_records(out).ok
    import shutil

    shutil.rmtree(manifest.parent)
    chain = out / archive.CHAIN_FILE
    chain.write_text("".join(ln for ln in chain.read_text().splitlines(keepends=True) if old not in ln))
    report = verify_with_records(out)
    assert any(p.startswith(f"{manifest.parent.relative_to(out).as_posix()}: run {old} is recorded as sealed")
               for p in report.problems), report.problems


def test_one_run_folder_is_held_to_its_own_record(world) -> None:  # type: ignore[no-untyped-def]
    rid, manifest = sealed_run(1)
    report = verify_with_records(manifest.parent)
    assert report.ok and any("one run folder only" in u for u in report.unproven)
    data = json.loads(manifest.read_text())
    data["mode"] = "live"  # a manifest rewritten (and its chain line with it) no longer matches the record
    manifest.write_text(json.dumps(data))
    report = verify_with_records(manifest.parent)
    assert any(f"run {rid}" in p and "was sealed with manifest sha256" in p for p in report.problems)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_slack_anchor_posts_the_head_and_verify_leaves_it_to_a_person(  # type: ignore[no-untyped-def]
        world, local_sinks, monkeypatch: pytest.MonkeyPatch) -> None:
    local_sinks.clear()
    monkeypatch.setenv("PAYOPS_ARCHIVE_ANCHORS", "db,slack")
    monkeypatch.setenv("PAYOPS_OPS_SLACK_WEBHOOK_URL", local_sinks.slack_webhook_url)
    get_settings(fresh=True)
    _rid, manifest = sealed_run(1)
    sha = archive.sha256_file(manifest)
    (post,) = local_sinks.slack_messages()
    assert post["json"]["channel"] == "#payments-ops"
    assert f"seq 1 · {manifest.relative_to(world['out']).as_posix()} · sha256 {sha}" in post["json"]["text"]
    res = CliRunner().invoke(app, ["archive", "verify"])
    assert res.exit_code == 0, res.stderr
    assert "not proven: the Slack anchor cannot be read back" in res.stdout and f"sha256 {sha}" in res.stdout
    with session_scope() as s:
        rows = s.scalars(select(ArchiveAnchor).order_by(ArchiveAnchor.id)).all()
    assert [(r.kind, r.target, r.status) for r in rows] == [("db", None, "ok"), ("slack", "#payments-ops", "ok")]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_anchor_that_cannot_be_written_never_fails_the_seal(world, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("PAYOPS_ARCHIVE_ANCHORS", f"db,file:{blocker}/heads.jsonl")
    get_settings(fresh=True)
    _rid, manifest = sealed_run(1)  # sealed, recorded, anchored in the database; the file anchor failed
    assert manifest.is_file()
    with session_scope() as s:
        failed = s.scalars(select(ArchiveAnchor).where(ArchiveAnchor.kind == "file")).one()
    assert failed.status == "failed" and "FileExistsError" in (failed.error or "")
    report = verify_with_records(world["out"])
    assert not report.ok  # configured, and unreadable while the chain has a head: a problem, not a pass
    assert report.problems[0].startswith(f"anchor file:{blocker}/heads.jsonl: cannot read")
    res = CliRunner().invoke(app, ["archive", "anchor"])
    assert res.exit_code == 9 and "1 anchor(s) failed: file" in res.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_copy_of_the_archive_is_held_to_its_originals_records(world, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import shutil

    sealed_run(1)
    _rid, manifest = sealed_run(2)
    copy = tmp_path / "auditor-copy"
    shutil.copytree(world["out"], copy)
    report = verify_with_records(copy)
    assert report.ok and any("records no seal under this output root" in u and "--recorded-root" in u
                             for u in report.unproven)
    assert verify_with_records(copy, recorded_root=world["out"]).unproven == []
    cut_the_tail(copy, copy / manifest.relative_to(world["out"]))
    report = verify_with_records(copy, recorded_root=world["out"])
    assert not report.ok and _rid in report.problems[0]
