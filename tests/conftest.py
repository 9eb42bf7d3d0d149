"""Shared fixtures: isolated environment (no calls out), PostgreSQL with a schema per test, the shared datasets."""
from __future__ import annotations

import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

# No telemetry, no analytics, no progress bars: set before any library is imported by a test.
for _k, _v in {
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "GX_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "true",
}.items():
    os.environ.setdefault(_k, _v)

PG_URL = os.environ.get("CRMSCORE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
_pg_missing: list[str] = []


def _pg_reachable() -> str | None:
    import sqlalchemy as sa

    try:
        eng = sa.create_engine(PG_URL)
        with eng.connect() as conn:
            conn.execute(sa.text("select 1"))
        eng.dispose()
        return None
    except Exception as exc:  # any failure to connect means: not there
        return f"{type(exc).__name__}: {str(exc).splitlines()[0]}"


@pytest.fixture(scope="session")
def pg_available() -> None:
    why = _pg_reachable()
    if why is not None:
        _pg_missing.append(why)
        if os.environ.get("CRMSCORE_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL required (CRMSCORE_REQUIRE_PG=1) but not reachable at {PG_URL}: {why}")
        pytest.skip(f"PostgreSQL NOT AVAILABLE at {PG_URL}: {why}")


@pytest.fixture
def pg_url(pg_available) -> str:
    """A SQLAlchemy URL to PostgreSQL whose search_path is a fresh schema, dropped after the test."""
    import sqlalchemy as sa

    schema = f"crmscore_t_{uuid.uuid4().hex[:12]}"
    eng = sa.create_engine(PG_URL)
    with eng.begin() as conn:
        conn.execute(sa.text(f'create schema "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    with eng.begin() as conn:
        conn.execute(sa.text(f'drop schema "{schema}" cascade'))
    eng.dispose()


REPO_ROOT = Path(__file__).resolve().parents[1]
#: The public datasets shared by the project sit beside the repository, at ../shared/datasets (in CI too).
SHARED_DATASETS = REPO_ROOT.parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The shared datasets folder; a test using it is skipped (with the reason) when it is missing, except in CI
    (``CI`` set), where a missing folder fails the test instead of letting golden-value tests skip silently."""
    if SHARED_DATASETS.is_dir():
        return SHARED_DATASETS
    why = f"shared datasets NOT FOUND at {SHARED_DATASETS} (../shared/datasets from the repository root)"
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        pytest.fail(f"{why}; CI must provide them", pytrace=False)
    pytest.skip(why)


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def crmscore(capsys, monkeypatch):
    """Run ``crmscore ARGS...`` in this process (``pipelines.cli.main``): no re-import of Prefect, MLflow and GX per
    command. Returns a function giving (exit code, stdout, stderr). As in a user's shell, no CRMSCORE_ variable is
    set; whatever the command puts in os.environ is undone afterwards."""
    from pipelines.cli import main

    for key in [k for k in os.environ if k.startswith("CRMSCORE_")]:
        monkeypatch.delenv(key)

    def invoke(*args: object) -> CliResult:
        saved = dict(os.environ)
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        finally:
            os.environ.clear()
            os.environ.update(saved)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if _pg_missing:
        bar = "!" * 78
        terminalreporter.write_line(bar, red=True, bold=True)
        terminalreporter.write_line(
            f"PostgreSQL was NOT reachable at {PG_URL}: the production-path tests were SKIPPED.", red=True, bold=True)
        terminalreporter.write_line(f"reason: {_pg_missing[0]}", red=True)
        terminalreporter.write_line("Start it (pg_ctlcluster ... main start) or set CRMSCORE_TEST_PG_URL.", red=True)
        terminalreporter.write_line(bar, red=True, bold=True)


@pytest.fixture(scope="session")
def chromium():
    """A headless Chromium (Debian's, through the Playwright wheel) for the session. Missing, the browser tests are
    skipped with the reason, except in CI (``CI`` set), where they fail: they must never skip silently there."""
    from tests.browser_support import launch, missing

    why = missing()
    if why is not None:
        if os.environ.get("CI", "").lower() not in ("", "0", "false"):
            pytest.fail(f"{why}; CI must run the browser tests", pytrace=False)
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        yield browser
        browser.close()
