"""One real sealed run, end to end (#19): a manual payout dry run through the CLI (five kernels), its archive
owner-only down to the HTML nbconvert wrote, its seal recorded and anchored — then the run folder and its chain
line deleted, and ``payops archive verify`` names the run."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from e2e_helpers import SOP_ARGS, cli, latest_run
from sqlalchemy import select

from payops import archive
from payops.config import get_settings
from payops.db import session_scope
from payops.db.models import ArchiveAnchor, ArchiveSeal

pytestmark = [pytest.mark.e2e, pytest.mark.db]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_real_run_is_sealed_owner_only_recorded_anchored_and_missed_when_cut(  # type: ignore[no-untyped-def]
        payops_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    heads = tmp_path / "anchors" / "heads.jsonl"
    monkeypatch.setenv("PAYOPS_ARCHIVE_ANCHORS", f"db,file:{heads}")
    get_settings(fresh=True)
    old = os.umask(0o022)  # a shared host's ordinary umask: papermill, nbconvert and the kernels write with it
    try:
        res = cli("manual-payout", *SOP_ARGS, "--dry-run")
    finally:
        os.umask(old)
    assert res.exit_code == 0, res.stdout + res.stderr
    run = latest_run()
    folder = Path(run["output_dir"])
    out = payops_env.output_dir

    # owner-only, everything the run wrote: executed notebooks, HTML, artifacts, manifest, chain
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in folder.glob("*.html")} >= {"10-verify.html", "50-settle.html"}
    assert {p.relative_to(out).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == {
        p.relative_to(out).as_posix(): "0o600" for p in files}
    assert {oct(stat.S_IMODE(p.stat().st_mode)) for p in [out, *out.rglob("*")] if p.is_dir()} == {"0o700"}

    # the seal recorded (sha256, chain position, sealed_at) and the head anchored in the database and the file
    manifest = folder / "manifest.json"
    with session_scope() as s:
        (seal,) = s.scalars(select(ArchiveSeal)).all()
        (anchor,) = s.scalars(select(ArchiveAnchor).where(ArchiveAnchor.kind == "db")).all()
    assert (seal.run_id, seal.chain_seq, seal.manifest_sha256) == (run["id"], 1, archive.sha256_file(manifest))
    assert seal.manifest_sha256 == run["manifest_sha256"] and seal.sealed_at is not None
    assert (anchor.chain_seq, anchor.manifest_sha256) == (1, seal.manifest_sha256)
    assert json.loads(heads.read_text())["sha256"] == seal.manifest_sha256

    ok = cli("archive", "verify")
    assert ok.exit_code == 0, ok.stdout + ok.stderr
    assert "chain intact; held against the run records and the anchors" in ok.stdout

    shutil.rmtree(folder)
    (out / archive.CHAIN_FILE).write_text("")
    bad = cli("archive", "verify")
    assert bad.exit_code == 9
    assert f"run {run['id']} (manual_payout, sealed" in bad.stderr
    assert "the archive lost a sealed run" in bad.stderr
