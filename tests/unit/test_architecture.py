"""The layout shows the architecture: import direction between packages is enforced here (see docs/architecture.md)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("features", "models", "data_contracts", "crm", "pipelines")
# package -> project packages it may import
ALLOWED = {
    "features": set(),
    "models": {"features", "data_contracts"},  # data_contracts.schema: the written-back tables' columns
    "data_contracts": set(),
    "crm": {"data_contracts"},
    "pipelines": {"features", "models", "data_contracts", "crm", "configs"},
}
FEATURES_THIRD_PARTY = {"pandas", "numpy", "scipy"}  # scipy: the BG/NBD fits of features/btyd.py (no I/O)


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def _modules(pkg: str) -> list[Path]:
    return sorted((ROOT / pkg).rglob("*.py"))


@pytest.mark.parametrize("pkg", PACKAGES)
def test_import_direction(pkg):
    bad = {}
    for path in _modules(pkg):
        forbidden = (_imports(path) & set(PACKAGES)) - ALLOWED[pkg] - {pkg}
        if forbidden:
            bad[str(path.relative_to(ROOT))] = sorted(forbidden)
    assert bad == {}, f"{pkg}/ may import only {sorted(ALLOWED[pkg])} of the project's packages"


def test_features_is_pure_pandas_numpy():
    import sys

    stdlib = set(sys.stdlib_module_names)
    bad = {}
    for path in _modules("features"):
        extra = {m for m in _imports(path) - stdlib - {"__future__", "features"} if m not in FEATURES_THIRD_PARTY}
        io_std = _imports(path) & {"os", "io", "pathlib", "sqlite3", "socket", "shutil", "time", "datetime"}
        if extra or io_std:
            bad[str(path.relative_to(ROOT))] = sorted(extra | io_std)
    assert bad == {}, "features/ imports only pandas, numpy and scipy, does no I/O and reads no clock"


def test_mlflow_only_in_registry():
    users = sorted(str(p.relative_to(ROOT)) for pkg in PACKAGES for p in _modules(pkg) if "mlflow" in _imports(p))
    assert set(users) <= {"models/registry.py"}, users


def test_dask_only_in_cluster():
    """Dask is a scheduler at the edge: only pipelines/cluster.py imports it (the pure code never knows)."""
    users = sorted(str(p.relative_to(ROOT)) for pkg in PACKAGES for p in _modules(pkg)
                   if _imports(p) & {"dask", "distributed"})
    assert users == ["pipelines/cluster.py"], users


# Reading the clock: a call of any of these attributes (datetime.now(), pd.Timestamp.now(tz="UTC"), date.today(),
# time.time(), ...), of these names imported from time/datetime, or a constructor given "now"/"today".
CLOCK_ATTRIBUTES = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "monotonic_ns", "perf_counter",
                    "perf_counter_ns", "process_time", "localtime", "gmtime", "ctime", "asctime"}
CLOCK_MODULES = {"time", "datetime"}
CLOCK_STRINGS = {"now", "today", "yesterday", "tomorrow"}


def clock_reads(source: str, filename: str = "<string>") -> list[str]:
    """Every place in ``source`` that reads the clock, as 'line: code' (empty when the code keeps time explicit)."""
    tree = ast.parse(source, filename=filename)
    imported = {alias.asname or alias.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module in CLOCK_MODULES
                for alias in node.names if alias.name in CLOCK_ATTRIBUTES}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
        time_attr = isinstance(func, ast.Attribute) and (
            func.attr not in ("time", "ctime") or (isinstance(func.value, ast.Name) and func.value.id == "time"))
        clock_call = (isinstance(func, ast.Attribute) and func.attr in CLOCK_ATTRIBUTES and time_attr) or (
            isinstance(func, ast.Name) and func.id in imported)
        clock_text = name in ("Timestamp", "to_datetime", "datetime64", "DatetimeIndex") and any(
            isinstance(a, ast.Constant) and isinstance(a.value, str) and a.value.strip().lower() in CLOCK_STRINGS
            for a in node.args)
        if clock_call or clock_text:
            found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("pkg", ["features", "models"])
def test_no_clock_in_pure_code(pkg):
    """Time is explicit: features/ and models/ take as_of/cutoff_ts as parameters and never read the clock.

    models/registry.py is the MLflow edge (I/O): it stamps run start times, so it is exempt.
    """
    edge = {"models/registry.py"}
    bad = {str(p.relative_to(ROOT)): clock_reads(p.read_text(), str(p)) for p in _modules(pkg)
           if str(p.relative_to(ROOT)) not in edge}
    assert {k: v for k, v in bad.items() if v} == {}


PLANTED_CLOCKS = [
    "import pandas as pd\ncutoff = pd.Timestamp.now(tz='UTC')",
    "import pandas as pd\ncutoff = pd.Timestamp.now()",
    "import pandas as pd\ncutoff = pd.Timestamp.today().normalize()",
    "import pandas as pd\ncutoff = pd.Timestamp('now', tz='UTC')",
    "import pandas as pd\ncutoff = pd.to_datetime('today')",
    "import numpy as np\ncutoff = np.datetime64('now')",
    "from datetime import datetime, timezone\ncutoff = datetime.now(timezone.utc)",
    "import datetime as dt\ncutoff = dt.datetime.utcnow()",
    "from datetime import date\ncutoff = date.today()",
    "import time\nstarted = time.time()",
    "import time\nstarted = time.perf_counter()",
    "from time import time as clock\nstarted = clock()",
    "def f(ts=None):\n    return ts or __import__('pandas').Timestamp.now(tz='UTC').floor('s')",
]


@pytest.mark.parametrize("code", PLANTED_CLOCKS)
def test_no_clock_check_catches_a_planted_clock(tmp_path, code):
    planted = tmp_path / "planted.py"
    planted.write_text(code + "\n")
    assert clock_reads(planted.read_text(), str(planted)) != []


@pytest.mark.parametrize("code", [
    "import pandas as pd\ncutoff = pd.Timestamp('2026-10-01', tz='UTC')",
    "def f(frame, as_of):\n    return frame[frame['ts'] <= as_of]",
    "import pandas as pd\nspan = pd.Timedelta(days=30)",
    "x = {'now': 1}['now']",
    "import numpy as np\nt = np.datetime64('2026-10-01')",
    "def f(row):\n    return row.time()",  # datetime.time() of a value is not the clock
])
def test_no_clock_check_passes_explicit_time(code):
    assert clock_reads(code) == []
