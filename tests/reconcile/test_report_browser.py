"""The archived HTML report in a real browser (Debian's Chromium through Playwright): what Finance opens.

After ``payops recon`` over the demo seed, the rendered report is loaded from the archive as a file, the way
an auditor opens it: every chart image decodes, the sections and the planted breaks' evidence ids are on the
page, no cell shows a traceback, and a full-page screenshot is not blank. Chromium comes from ``make browser``
(Debian's package; ``make test`` runs it); without it the test skips, and under ``CI=true`` it fails.
"""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from browser_helpers import open_report
from payops import demo_data as dd
from payops.cli import app

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]
SECTIONS = ["Summary: counts and amounts per category and currency", "Expected vs paid per payout run",
            "Manual vs automated share", "Charts: breaks by category", "Break list", "Exports"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_report_renders_in_chromium(payops_env, chromium: Path, chromium_args: list[str],  # type: ignore[no-untyped-def]
                                    tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    monkeypatch.setenv("PAYOPS_RECON_CACHE_DIR", str(tmp_path / "recon-cache"))
    res = CliRunner().invoke(app, ["recon", "--from", "2026-09-01", "--to", "2026-11-30", "--max-unexplained", "100"])
    assert res.exit_code == 0, res.output
    folder = Path(re.search(r"archive: (\S+)", res.output).group(1))  # type: ignore[union-attr]
    html = folder / "payouts_vs_ledger.html"
    assert html.is_file()

    images, text, shot = open_report(chromium, chromium_args, html)

    # three charts: breaks by category, amounts over the period, break aging — each decoded to real pixels
    assert len(images) == 3 and all(i["done"] and i["w"] > 300 and i["h"] > 150 for i in images), images
    for heading in SECTIONS:
        assert heading in text, f"section {heading!r} is not on the page"
    for evidence in (dd.RECON_DUP_TRANSFER, dd.RECON_REVERSED_TRANSFER, dd.RECON_FAILED_TRANSFER,
                     dd.RECON_ORPHAN_TRANSFER, dd.RECON_FAILED_PAYOUT, dd.RECON_MISSING_LEDGER_ID):
        assert evidence in text, f"{evidence} (a planted break's evidence) is not on the page"
    assert "Traceback" not in text

    (tmp_path / "report.png").write_bytes(shot)  # kept with the test's tmp dir, to look at
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    assert image.width == 1280 and image.height > 3000  # the whole report, not one screen
    colours = image.resize((160, max(1, image.height // 8))).getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "the screenshot is (nearly) one colour: nothing rendered"
