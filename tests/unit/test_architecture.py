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
FEATURES_THIRD_PARTY = {"pandas", "numpy"}


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
    assert bad == {}, "features/ imports only pandas and numpy, does no I/O and reads no clock"


def test_mlflow_only_in_registry():
    users = sorted(str(p.relative_to(ROOT)) for pkg in PACKAGES for p in _modules(pkg) if "mlflow" in _imports(p))
    assert set(users) <= {"models/registry.py"}, users


@pytest.mark.parametrize("pkg", ["features", "models"])
def test_no_clock_in_pure_code(pkg):
    """Time is explicit: features/ and models/ take as_of/cutoff_ts as parameters and never read the clock.

    models/registry.py is the MLflow edge (I/O): it stamps run start times, so it is exempt.
    """
    import re

    clock = re.compile(r"\b(now|utcnow|today)\(\)|time\.time\(\)")
    edge = {"models/registry.py"}
    bad = [str(p.relative_to(ROOT)) for p in _modules(pkg)
           if str(p.relative_to(ROOT)) not in edge and clock.search(p.read_text())]
    assert bad == []
