"""The archived triage report in a real browser (Debian's Chromium through Playwright), the way the on-call engineer
or an auditor opens it: the chart decodes, the numbers table and the affected auctions are on the page, no
traceback, and a full-page screenshot that is not blank (kept next to the test's tmp dir to look at)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from incident_helpers import archive_of, cli, wait_deliveries

from browser_helpers import open_report

pytestmark = [pytest.mark.e2e, pytest.mark.db, pytest.mark.slow]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_triage_report_renders_in_chromium(incident_env, chromium: Path, chromium_args: list[str],  # type: ignore[no-untyped-def]
                                           tmp_path: Path) -> None:
    from PIL import Image

    w, sb = incident_env.world, incident_env.sandbox
    w.checkouts(12, tag="ok")
    declined = w.checkouts(3, card="pm_card_chargeDeclinedInsufficientFunds", tag="nsf")
    wait_deliveries(sb)
    res = cli("checkout", "--scenario", "checkout-failures", "--incident-id", f"INC-BR-{incident_env.tag}")
    assert res.exit_code == 0, res.output
    html = archive_of(res) / "10-triage.html"

    images, text, shot = open_report(chromium, chromium_args, html)

    assert len(images) == 1 and images[0]["done"] and images[0]["w"] > 500 and images[0]["h"] > 150, images
    for words in ("Checkout incident — step 10: triage", "PaymentIntent success, last 30 min", "80.00% (12/15)",
                  "ALERT", "Commerce Backend", "#ops-oncall"):
        assert words in text, f"{words!r} is not on the page"
    for d in declined:
        assert d["session"]["metadata"]["auction_id"] in text
    assert "Traceback" not in text
    (tmp_path / "triage.png").write_bytes(shot)
    keep = Path(__file__).resolve().parents[2] / "var" / "incident-triage-report.png"
    keep.parent.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "triage.png", keep)  # var/ is git-ignored: the last screenshot, to look at
    image = Image.open(io.BytesIO(shot)).convert("RGB")
    assert image.width == 1280 and image.height > 1500
    colours = image.resize((160, max(1, image.height // 8))).getcolors(maxcolors=1 << 16)
    assert colours is None or len(colours) > 50, "the screenshot is (nearly) one colour: nothing rendered"
