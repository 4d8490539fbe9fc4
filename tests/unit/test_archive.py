"""The audit archive: run folders, secret scan, sealing, the sha256 chain and verification."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import zipfile
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import nbformat
import pytest

from payops.archive import (
    CHAIN_FILE,
    read_chain,
    render_html,
    run_dir,
    scan_for_secrets,
    seal_run,
    verify_archive,
)
from payops.config import Settings
from payops.errors import ArchiveError

STARTED = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)
LIB = str(Path(__file__).resolve().parents[2] / "lib")


def meta(**over: object) -> dict:
    base = {
        "parameters": {"incident_id": "INC-1", "amount": "875.50", "currency": "CAD"},
        "params_hash": "ab" * 32,
        "approvals": [{"role": "ops", "approver": "u-ops"}, {"role": "finance", "approver": "u-fin"}],
        "mode": "dry-run",
        "steps": {"10-verify": "ok", "20-transfer": "ok"},
        "started_at": STARTED,
        "finished_at": STARTED + timedelta(minutes=3),
    }
    base.update(over)
    return base


def make_run(root: Path, run_id: str = "run-a", sop: str = "manual_payout", started: datetime = STARTED) -> Path:
    folder = run_dir(root, sop, run_id, started)
    (folder / "10-verify.ipynb").write_text('{"cells": [], "note": "verify ok"}\n')
    (folder / "20-transfer.ipynb").write_text('{"cells": [], "transfer": "tr_123", "pk": "pk_test_51abcDEF"}\n')
    (folder / "artifacts").mkdir()
    (folder / "artifacts" / "stripe_transfer.json").write_text('{"id": "tr_123", "amount": 87550}\n')
    (folder / "artifacts" / "chart.png").write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00binary")
    return folder


def sealed(root: Path, run_id: str = "run-a", sop: str = "manual_payout") -> tuple[Path, Path]:
    folder = make_run(root, run_id, sop)
    return folder, seal_run(folder, output_root=root, meta=meta())


# -- run folders and HTML ------------------------------------------------------------------------
def test_run_dir_uses_the_utc_date(tmp_path: Path) -> None:
    late_in_toronto = datetime(2026, 11, 23, 22, 30, tzinfo=timezone(timedelta(hours=-5)))
    folder = run_dir(tmp_path, "manual_payout", "run-1", late_in_toronto)
    assert folder == tmp_path / "manual_payout" / "2026-11-24" / "run-1"
    assert folder.is_dir()
    assert run_dir(tmp_path, "manual_payout", "run-1", late_in_toronto) == folder  # idempotent


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".."])
def test_run_dir_refuses_unsafe_names(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ArchiveError):
        run_dir(tmp_path, "manual_payout", bad, STARTED)


def test_render_html_of_an_unexecuted_notebook(tmp_path: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# Step 10 — verify"), nbformat.v4.new_code_cell("x = 1 + 1")]
    path = tmp_path / "10-verify.ipynb"
    nbformat.write(nb, path)
    html = render_html(path)
    assert html == tmp_path / "10-verify.html"
    text = html.read_text(encoding="utf-8")
    assert "Step 10" in text and "<html" in text.lower()


def test_render_html_failure_is_an_archive_error(tmp_path: Path) -> None:
    path = tmp_path / "broken.ipynb"
    path.write_text("this is not a notebook")
    with pytest.raises(ArchiveError, match=r"broken\.ipynb"):
        render_html(path)


# -- seal and verify -----------------------------------------------------------------------------
def test_seal_and_verify(tmp_path: Path) -> None:
    folder, manifest_path = sealed(tmp_path)
    assert manifest_path == folder / "manifest.json"
    m = json.loads(manifest_path.read_text())
    assert m["schema"] == "payops.manifest/1"
    assert (m["sop"], m["run_id"], m["seal_number"], m["chain_seq"]) == ("manual_payout", "run-a", 1, 1)
    assert m["prev_manifest_sha256"] is None and m["prev_manifest_path"] is None
    assert m["params_hash"] == "ab" * 32 and m["mode"] == "dry-run"
    assert m["started_at"] == STARTED.isoformat()
    assert list(m["files"]) == sorted(m["files"]) == [
        "10-verify.ipynb", "20-transfer.ipynb", "artifacts/chart.png", "artifacts/stripe_transfer.json",
    ]
    assert m["files"]["10-verify.ipynb"] == hashlib.sha256((folder / "10-verify.ipynb").read_bytes()).hexdigest()
    assert set(m["package_versions"]) == {"payops", "papermill", "stripe", "sqlalchemy", "nbformat", "python"}
    assert "git_commit" in m and "sealed_at" in m
    chain, problems = read_chain(tmp_path)
    assert problems == [] and len(chain) == 1
    assert chain[0]["manifest"] == "manual_payout/2026-11-23/run-a/manifest.json"
    assert chain[0]["sha256"] == hashlib.sha256(manifest_path.read_bytes()).hexdigest()
    for target in (tmp_path, folder):
        report = verify_archive(target)
        assert report.ok, report.problems
        assert report.first_problem is None
        assert report.runs_checked == 1 and report.files_checked == 4


@pytest.mark.parametrize(
    "victim", ["10-verify.ipynb", "20-transfer.ipynb", "artifacts/chart.png", "artifacts/stripe_transfer.json"]
)
def test_flipping_one_byte_names_the_file(tmp_path: Path, victim: str) -> None:
    folder, _ = sealed(tmp_path)
    path = folder / victim
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    for target in (tmp_path, folder):
        report = verify_archive(target)
        assert not report.ok
        assert report.first_problem is not None
        assert report.first_problem.startswith(f"manual_payout/2026-11-23/run-a/{victim}: sha256 mismatch (sealed ")
        assert len(report.problems) == 1


def test_deleted_file(tmp_path: Path) -> None:
    folder, _ = sealed(tmp_path)
    (folder / "artifacts" / "stripe_transfer.json").unlink()
    report = verify_archive(tmp_path)
    assert report.first_problem == (
        "manual_payout/2026-11-23/run-a/artifacts/stripe_transfer.json: missing (sealed "
        + json.loads((folder / "manifest.json").read_text())["files"]["artifacts/stripe_transfer.json"][:8] + "…)"
    )


def test_extra_file(tmp_path: Path) -> None:
    folder, _ = sealed(tmp_path)
    (folder / "artifacts" / "late.txt").write_text("added after the seal")
    for target in (tmp_path, folder):
        report = verify_archive(target)
        assert not report.ok
        assert report.problems == [
            "manual_payout/2026-11-23/run-a/artifacts/late.txt: not in any manifest (added after the last seal)"
        ]


def test_edited_manifest_names_the_manifest_and_the_link(tmp_path: Path) -> None:
    folder, manifest_path = sealed(tmp_path)
    _, second = sealed(tmp_path, "run-b")
    m = json.loads(manifest_path.read_text())
    m["mode"] = "live"
    manifest_path.write_text(json.dumps(m, indent=2))
    report = verify_archive(tmp_path)
    assert not report.ok
    assert report.first_problem.startswith(
        f"manual_payout/2026-11-23/run-a/manifest.json: sha256 mismatch with {CHAIN_FILE} seq 1"
    )
    single = verify_archive(folder)
    assert single.first_problem.startswith("manual_payout/2026-11-23/run-a/manifest.json: sha256 mismatch")
    assert verify_archive(second.parent).ok


def test_edited_chain_line_breaks_the_link(tmp_path: Path) -> None:
    sealed(tmp_path, "run-a")
    sealed(tmp_path, "run-b")
    chain_path = tmp_path / CHAIN_FILE
    lines = chain_path.read_text().splitlines()
    first = json.loads(lines[0])
    first["sha256"] = "0" * 64
    chain_path.write_text("\n".join([json.dumps(first), lines[1]]) + "\n")
    report = verify_archive(tmp_path)
    assert report.first_problem.startswith(
        f"manual_payout/2026-11-23/run-a/manifest.json: sha256 mismatch with {CHAIN_FILE} seq 1 (sealed 00000000…"
    )
    assert any("run-b/manifest.json: chain link broken" in p or "prev link" in p for p in report.problems)


def test_removed_chain_line(tmp_path: Path) -> None:
    for run in ("run-a", "run-b", "run-c"):
        sealed(tmp_path, run)
    chain_path = tmp_path / CHAIN_FILE
    lines = chain_path.read_text().splitlines()
    chain_path.write_text("\n".join([lines[0], lines[2]]) + "\n")
    report = verify_archive(tmp_path)
    assert not report.ok
    assert report.first_problem.startswith(f"{CHAIN_FILE}: seq 3 where 2 was expected")
    joined = "\n".join(report.problems)
    assert "run-c/manifest.json: chain link broken" in joined
    assert f"manual_payout/2026-11-23/run-b/manifest.json: manifest not in {CHAIN_FILE}" in joined
    assert not verify_archive(tmp_path / "manual_payout" / "2026-11-23" / "run-b").ok


def test_two_runs_are_chained_across_sops(tmp_path: Path) -> None:
    _, first = sealed(tmp_path, "run-a", sop="manual_payout")
    _, second = sealed(tmp_path, "recon-1", sop="reconciliation")
    m2 = json.loads(second.read_text())
    assert m2["prev_manifest_sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    assert m2["prev_manifest_path"] == "manual_payout/2026-11-23/run-a/manifest.json"
    assert m2["chain_seq"] == 2 and m2["sop"] == "reconciliation"
    chain, _ = read_chain(tmp_path)
    assert [c["seq"] for c in chain] == [1, 2]
    assert chain[1]["prev_sha256"] == chain[0]["sha256"]
    report = verify_archive(tmp_path)
    assert report.ok and report.runs_checked == 2


def test_manifest_missing_from_chain(tmp_path: Path) -> None:
    sealed(tmp_path, "run-a")
    other = make_run(tmp_path, "run-forged")
    (other / "manifest.json").write_text(json.dumps({"schema": "payops.manifest/1", "files": {}}))
    report = verify_archive(tmp_path)
    assert report.problems == [f"manual_payout/2026-11-23/run-forged/manifest.json: manifest not in {CHAIN_FILE}"]


def test_missing_manifest_listed_in_chain(tmp_path: Path) -> None:
    _folder, manifest_path = sealed(tmp_path)
    manifest_path.unlink()
    report = verify_archive(tmp_path)
    assert report.first_problem == (
        f"manual_payout/2026-11-23/run-a/manifest.json: manifest listed in {CHAIN_FILE} (seq 1) is missing"
    )


def _seal_many(root: Path, prefix: str, count: int, errors: list[BaseException]) -> None:
    try:
        for i in range(count):
            folder = make_run(root, f"{prefix}-{i}")
            seal_run(folder, output_root=root, meta=meta())
    except Exception as exc:  # noqa: BLE001 - collected; the test asserts there were none
        errors.append(exc)


def _assert_linear(root: Path, expected: int) -> None:
    chain, problems = read_chain(root)
    assert problems == []
    assert [c["seq"] for c in chain] == list(range(1, expected + 1))
    prev = None
    for line in chain:
        m = json.loads((root / line["manifest"]).read_text())
        assert m["prev_manifest_sha256"] == prev
        prev = line["sha256"]
    report = verify_archive(root)
    assert report.ok, report.problems
    assert report.runs_checked == expected


def test_concurrent_seals_from_threads(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_seal_many, args=(tmp_path, f"t{n}", 5, errors)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    _assert_linear(tmp_path, 30)


def test_concurrent_seals_from_processes(tmp_path: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from datetime import datetime, UTC\n"
        "from payops.archive import run_dir, seal_run\n"
        "root = Path(sys.argv[1])\n"
        "for i in range(4):\n"
        "    f = run_dir(root, 'manual_payout', f'{sys.argv[2]}-{i}', datetime(2026, 11, 23, tzinfo=UTC))\n"
        "    (f / 'out.ipynb').write_text('{}')\n"
        "    seal_run(f, output_root=root, meta={'mode': 'dry-run'})\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path), f"p{n}"], env={"PYTHONPATH": LIB, "PATH": ""})
        for n in range(4)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    _assert_linear(tmp_path, 16)


# -- re-sealing ----------------------------------------------------------------------------------
def test_reseal_after_adding_a_file(tmp_path: Path) -> None:
    folder, first = sealed(tmp_path)
    (folder / "30-audit-insert.ipynb").write_text('{"cells": []}')
    second = seal_run(folder, output_root=tmp_path, meta=meta(steps={"30-audit-insert": "ok"}))
    assert second == folder / "manifest.2.json"
    m2 = json.loads(second.read_text())
    assert m2["seal_number"] == 2
    assert m2["files"]["manifest.json"] == hashlib.sha256(first.read_bytes()).hexdigest()
    assert "30-audit-insert.ipynb" in m2["files"]
    assert m2["prev_manifest_sha256"] == hashlib.sha256(first.read_bytes()).hexdigest()
    (folder / "40-notify.ipynb").write_text('{"cells": []}')
    assert seal_run(folder, output_root=tmp_path, meta=meta()) == folder / "manifest.3.json"
    for target in (tmp_path, folder):
        assert verify_archive(target).ok, verify_archive(target).problems


def test_reseal_after_modifying_a_sealed_file_raises(tmp_path: Path) -> None:
    folder, _ = sealed(tmp_path)
    (folder / "20-transfer.ipynb").write_text('{"cells": [], "transfer": "tr_999"}\n')
    (folder / "30-audit-insert.ipynb").write_text("{}")
    with pytest.raises(ArchiveError, match=r"manual_payout/2026-11-23/run-a/20-transfer\.ipynb: sha256 mismatch"):
        seal_run(folder, output_root=tmp_path, meta=meta())
    assert not (folder / "manifest.2.json").exists()
    assert len(read_chain(tmp_path)[0]) == 1


def test_reseal_after_deleting_a_sealed_file_raises(tmp_path: Path) -> None:
    folder, _ = sealed(tmp_path)
    (folder / "artifacts" / "chart.png").unlink()
    with pytest.raises(ArchiveError, match=r"artifacts/chart\.png: sealed by manifest\.json but missing"):
        seal_run(folder, output_root=tmp_path, meta=meta())


def test_reseal_over_a_tampered_manifest_raises(tmp_path: Path) -> None:
    folder, manifest_path = sealed(tmp_path)
    manifest_path.write_text(manifest_path.read_text().replace("dry-run", "live"))
    with pytest.raises(ArchiveError, match=r"run-a/manifest\.json: sha256 mismatch with CHAIN\.jsonl"):
        seal_run(folder, output_root=tmp_path, meta=meta())


def test_seal_outside_the_root_and_reserved_meta_are_refused(tmp_path: Path) -> None:
    folder = make_run(tmp_path / "a")
    with pytest.raises(ArchiveError, match="not inside the output root"):
        seal_run(folder, output_root=tmp_path / "b", meta=meta())
    with pytest.raises(ArchiveError, match="files"):
        seal_run(folder, output_root=tmp_path / "a", meta=meta(files={}))
    assert not (folder / "manifest.json").exists()


# -- the secret scanner --------------------------------------------------------------------------
SANDBOX_WEBHOOK = "http://127.0.0.1:12112/services/TPAYOPS/BSANDBOX/sandbox-webhook-secret"
CONFIGURED_HOOK = "https://chat.example.net/incoming/abc-123-xyz"  # not Slack-shaped: only the setting knows it
SMTP_PASSWORD = "correct-horse-battery"

SECRET_CASES = [
    ("stripe_secret_key", 'print("sk_test_51HxYzAbCdEf")'),
    ("stripe_secret_key", "key = sk_live_0123456789"),
    ("stripe_restricted_key", "rk_live_51AbCdEfGhIj"),
    ("stripe_restricted_key", "rk_test_abcdef123"),
    ("stripe_webhook_secret", "whsec_ABCdef123456"),
    ("slack_webhook_url", "https://hooks.slack.com/services/T0001/B0002/XXXXyyyyZZZZ"),
    ("slack_webhook_path", SANDBOX_WEBHOOK),
    ("configured_secret", f"password={SMTP_PASSWORD}"),
    ("configured_secret", f"posting to {CONFIGURED_HOOK} now"),
]


@pytest.mark.parametrize(("kind", "content"), SECRET_CASES)
def test_scanner_catches_each_kind_and_seal_refuses(tmp_path: Path, kind: str, content: str) -> None:
    settings = Settings(PAYOPS_SMTP_PASSWORD=SMTP_PASSWORD, PAYOPS_SLACK_WEBHOOK_URL=CONFIGURED_HOOK)
    folder = make_run(tmp_path)
    (folder / "artifacts" / "log.txt").write_text(f"line one\n{content}\n")
    findings = scan_for_secrets(folder, settings.secret_values())
    assert [(f.path, f.line, f.kind) for f in findings] == [("artifacts/log.txt", 2, kind)]
    assert findings[0].excerpt.startswith(kind + " ")
    with pytest.raises(ArchiveError) as info:
        seal_run(folder, output_root=tmp_path, meta=meta(), extra_secrets=settings.secret_values())
    message = str(info.value)
    assert "artifacts/log.txt:2" in message and kind in message
    secret_part = content.split("=")[-1].split()[-1] if kind == "configured_secret" else content
    assert secret_part not in message  # redacted: kind + first 4 characters only
    assert not (folder / "manifest.json").exists()
    assert not (tmp_path / CHAIN_FILE).exists() or (tmp_path / CHAIN_FILE).read_text() == ""


def test_secret_in_a_notebook_json_and_html_escaped(tmp_path: Path) -> None:
    pw = 'p"w&<x>'
    folder = make_run(tmp_path)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"password = {pw!r}")]
    nbformat.write(nb, folder / "30-audit.ipynb")
    (folder / "30-audit.html").write_text("<pre>p&quot;w&amp;&lt;x&gt;</pre>")
    kinds = {(f.path, f.kind) for f in scan_for_secrets(folder, [pw])}
    assert kinds == {("30-audit.ipynb", "configured_secret"), ("30-audit.html", "configured_secret")}


def test_secret_inside_an_xlsx_is_found(tmp_path: Path) -> None:
    folder = make_run(tmp_path)
    with zipfile.ZipFile(folder / "artifacts" / "export.xlsx", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("xl/sharedStrings.xml", "<sst><si><t>sk_live_abcdef123456</t></si></sst>")
    [finding] = scan_for_secrets(folder)
    assert finding.path == "artifacts/export.xlsx!xl/sharedStrings.xml" and finding.kind == "stripe_secret_key"


def test_secret_in_meta_is_refused(tmp_path: Path) -> None:
    folder = make_run(tmp_path)
    with pytest.raises(ArchiveError, match="<manifest meta>"):
        seal_run(folder, output_root=tmp_path, meta=meta(parameters={"key": "rk_live_abcdefghij"}))
    assert not (folder / "manifest.json").exists()


def test_harmless_lookalikes_are_allowed(tmp_path: Path) -> None:
    folder = make_run(tmp_path)
    (folder / "artifacts" / "notes.md").write_text(
        "publishable pk_test_51HxYzAbCdEf and pk_live_51HxYzAbCdEf are fine\n"
        "the SOP uses an rk_test key (the word rk_test alone) and sk_test_ prefixes\n"
        "task_test_abcdefgh is a task name; whsec_ alone is a prefix\n"
    )
    assert scan_for_secrets(folder, ["", SMTP_PASSWORD]) == []
    seal_run(folder, output_root=tmp_path, meta=meta(), extra_secrets=["", SMTP_PASSWORD])
    assert verify_archive(tmp_path).ok


def test_finding_redaction(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x sk_test_SUPERSECRETVALUE y")
    [finding] = scan_for_secrets(tmp_path)
    assert finding.excerpt == "stripe_secret_key sk_t…"
    assert "SUPERSECRET" not in str(finding)
