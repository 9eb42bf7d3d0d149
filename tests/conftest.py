"""Shared fixtures: isolated environment (no calls out), PostgreSQL with a schema per test, the shared datasets.

Rules for tests (``make test`` runs them on 2 pytest-xdist workers, ``--dist loadgroup``; plain ``pytest`` still works):

- Work is handed to the workers in groups (``pytest_collection_modifyitems`` below sets ``xdist_group``):
  every test using the e2e session ``world`` (tests/e2e/conftest.py) runs on ONE worker, so the world is generated,
  trained and scored once, and the tests that re-score it or hash its CRM file never race each other; a module with a
  module-, class- or package-scoped fixture runs whole on one worker, so that fixture is built once; every other test
  is handed out on its own. Nothing to do for a new test that follows this; a test that must share state with another
  module's tests gets an explicit ``@pytest.mark.xdist_group("name")`` (both modules, same name).
- A session-scoped fixture is built once PER WORKER (each worker is its own process). Keep heavy ones behind
  ``world`` or a module fixture, never a new autouse session fixture outside tests/e2e.
- Per-worker resources: files under ``tmp_path`` / ``tmp_path_factory`` (per worker already), never a fixed path or the
  current folder; ports from the OS (bind port 0, as ``prefect_api`` does), never a fixed port; PostgreSQL only through
  ``pg_url`` (a fresh schema per test), never a fixed schema, table or database name outside it; environment variables
  through ``monkeypatch``; a Prefect home from ``tests.e2e.cli.cli_env`` (per process). ``worker_id`` (pytest-xdist)
  names the worker ("gw0", or "master" without xdist) where a name must differ per worker.
- Runs stay deterministic: seed every generator; no test may depend on which other tests ran before it in its worker.
- Anything slower than the suite allows is ``@pytest.mark.slow``, with the test in ``make test`` that covers the same
  behaviour named in its docstring.
"""
from __future__ import annotations

import json
import os
import tempfile
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
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One OpenMP thread per worker (and per CLI subprocess it starts): with 2 workers on 2 cores, LightGBM's spinning
    # OpenMP threads would otherwise fight the other worker (results do not depend on the thread count).
    os.environ.setdefault("OMP_NUM_THREADS", "1")

PG_URL = os.environ.get("CRMSCORE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
#: Start of the skip reason of every test skipped for want of PostgreSQL (the banner below looks for it).
PG_MISSING = "PostgreSQL NOT AVAILABLE"


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
        if os.environ.get("CRMSCORE_REQUIRE_PG") == "1":
            pytest.fail(f"PostgreSQL required (CRMSCORE_REQUIRE_PG=1) but not reachable at {PG_URL}: {why}")
        pytest.skip(f"{PG_MISSING} at {PG_URL}: {why}")


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


#: The xdist group of every test using the e2e session world (tests/e2e/conftest.py).
WORLD_GROUP = "e2e_world"
#: pytest-timeout for the tests using the world (setup included); every other test keeps pyproject's 600 s.
WORLD_TIMEOUT_S = 1800
#: workerinput key: the file where the workers leave {nodeid: group} for the controller's scheduler.
_GROUPS_KEY = "crmscore_xdist_groups"


def _xdist_group(item: pytest.Item) -> str | None:
    if "world" in item.fixturenames:
        return WORLD_GROUP
    defs = getattr(item, "_fixtureinfo", None)
    scopes = {d.scope for ds in (defs.name2fixturedefs.values() if defs else ()) for d in ds}
    if scopes & {"module", "class", "package"}:
        return item.nodeid.split("::")[0]  # the module's path: the whole module on one worker
    return None


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Group the tests for pytest-xdist (rules at the top of this file) and put the world's group first, so that the
    longest unit of work starts at once and the short tests fill the other worker around it. Without xdist the marks
    change nothing but the order (the world's tests first)."""
    for item in items:
        if item.get_closest_marker("xdist_group") is None and (group := _xdist_group(item)) is not None:
            item.add_marker(pytest.mark.xdist_group(group))
        if "world" in item.fixturenames and item.get_closest_marker("timeout") is None:
            # the first of these tests also pays for building the world (4 CLI processes, each capped at 600 s by
            # tests/e2e/cli.run): on a loaded machine that alone passed the suite's 600 s per-test timeout
            item.add_marker(pytest.mark.timeout(WORLD_TIMEOUT_S))
    items.sort(key=lambda it: "world" not in it.fixturenames)  # stable: collection order within each part
    target = getattr(config, "workerinput", {}).get(_GROUPS_KEY)
    if target:  # a worker: tell the controller's scheduler the groups (all workers collect the same tests)
        groups = {it.nodeid: "_".join(sorted({str(m.args[0]) for m in it.iter_markers("xdist_group")}))
                  for it in items if it.get_closest_marker("xdist_group") is not None}
        tmp = Path(f"{target}.{os.getpid()}")
        tmp.write_text(json.dumps(groups))
        os.replace(tmp, target)


class _XdistGroups:
    """``--dist loadgroup`` without pytest-xdist's own grouping, which pytest 9.2 silently broke (it renames node ids,
    pytest-xdist#1386): the workers write the groups to a file (above) and this scheduler reads them."""

    def __init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="crmscore-xdist-groups-", suffix=".json")
        os.close(fd)
        self.path = Path(name)

    @pytest.hookimpl(optionalhook=True)
    def pytest_configure_node(self, node) -> None:
        node.workerinput[_GROUPS_KEY] = str(self.path)

    @pytest.hookimpl(optionalhook=True, tryfirst=True)
    def pytest_xdist_make_scheduler(self, config, log):
        if config.getvalue("dist") != "loadgroup":
            return None
        from xdist.scheduler import LoadScopeScheduling

        path = self.path

        class GroupScheduling(LoadScopeScheduling):
            """Work units: one per xdist group, one per ungrouped test (as ``loadgroup`` means)."""

            groups: dict[str, str] | None = None

            def _split_scope(self, nodeid: str) -> str:
                if self.groups is None:  # read once all workers have collected (the scheduler's first call)
                    self.groups = json.loads(path.read_text() or "{}")
                return self.groups.get(nodeid, nodeid)

        return GroupScheduling(config, log)

    def pytest_unconfigure(self) -> None:
        self.path.unlink(missing_ok=True)


def pytest_configure(config):
    if config.pluginmanager.hasplugin("xdist") and not hasattr(config, "workerinput"):
        config.pluginmanager.register(_XdistGroups(), "crmscore-xdist-groups")


def _pg_skips(terminalreporter) -> list[str]:
    """Skip reasons naming missing PostgreSQL; read from the reports, so it works in the xdist controller too."""
    out = []
    for rep in terminalreporter.stats.get("skipped", []):
        text = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        if PG_MISSING in text:
            out.append(text.split(": ", 1)[-1])
    return out


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    missing = _pg_skips(terminalreporter)
    if missing:
        bar = "!" * 78
        terminalreporter.write_line(bar, red=True, bold=True)
        terminalreporter.write_line(
            f"PostgreSQL was NOT reachable at {PG_URL}: the production-path tests were SKIPPED.", red=True, bold=True)
        terminalreporter.write_line(f"reason: {missing[0]}", red=True)
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
