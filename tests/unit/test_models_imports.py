"""Import direction: the modelling core never imports mlflow, crm or pipelines (only models/registry.py may import mlflow)."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = ["tasks", "encoding", "train", "calibration", "evaluate", "baselines", "btyd", "errors"]
ROOT = Path(__file__).resolve().parents[2] / "models"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_stay_inside_their_layer(module):
    found = _imports(ROOT / f"{module}.py")
    assert not found & {"mlflow", "crm", "pipelines", "prefect", "great_expectations"}, found
