"""Headless Chromium for the browser tests and the README screenshots, driven by the Playwright wheel.

The browser is Debian's (`make browser` installs it; never `playwright install`, whose download host these machines
cannot reach), launched with `executable_path`, without the sandbox (root), with every host name mapped to nothing so
it cannot call out, and with Chromium's own background traffic switched off (../shared/stack_notes.md).

    python -m tests.browser_support PAGE.html OUT.png [--full]     # a screenshot of a page
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

CHROMIUM = Path(os.environ.get("CRMSCORE_CHROMIUM", "/usr/lib/chromium/chromium"))
ARGS = ("--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-default-apps", "--disable-extensions",
        "--no-pings", "--no-first-run")


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not CHROMIUM.is_file():
        return f"Chromium NOT FOUND at {CHROMIUM} (`make browser` installs it from the Debian packages)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright wheel is not installed (it is a dev dependency: pip install -e '.[dev]')"
    return None


def launch(playwright):
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=list(ARGS), headless=True)


def screenshot(page_file: Path, out: Path, *, full_page: bool = False, width: int = 1280, height: int = 1000,
               anchor: str = "") -> Path:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(Path(page_file).resolve().as_uri() + anchor)
            page.screenshot(path=str(out), full_page=full_page)
        finally:
            browser.close()
    return out


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    screenshot(Path(args[0]), Path(args[1]), full_page="--full" in sys.argv, anchor=args[2] if len(args) > 2 else "")
