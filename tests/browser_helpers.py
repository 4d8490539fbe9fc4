"""An archived HTML report as a person sees it in Debian's Chromium (imported by basename, like e2e_helpers).

``open_report(chromium, args, html)`` loads the file through Playwright and returns what the report tests
check: every ``<img>``'s decoded size, the page's text and a full-page screenshot (PNG bytes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def open_report(chromium: Path, args: list[str], html: Path) -> tuple[list[dict[str, Any]], str, bytes]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), args=args)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(html.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({w: e.naturalWidth, h: e.naturalHeight, done: e.complete}))")
            return images, page.inner_text("body"), page.screenshot(full_page=True)
        finally:
            browser.close()
