"""Without Chromium the browser tests fail in CI, never skip there (locally they skip with the reason)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST = "tests/browser/test_report_browser.py::test_every_image_has_a_size"


def _run(ci: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "CRMSCORE_CHROMIUM": str(ROOT / "no-such-chromium"), "CI": ci}
    return subprocess.run([sys.executable, "-m", "pytest", TEST, "-q", "-rs", "-p", "no:cacheprovider"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=300)


def test_a_missing_browser_fails_the_browser_tests_in_ci():
    proc = _run("true")
    assert proc.returncode == 1, proc.stdout[-2000:]
    assert "Chromium NOT FOUND" in proc.stdout and "CI must run the browser tests" in proc.stdout
