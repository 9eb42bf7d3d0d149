"""Declarative data contracts (ODCS v3.1 YAML) for the CRM extract, and their compilation to quality gates.

The public names below are loaded on first use, so `import data_contracts.schema` (used by the extract reader)
does not import Great Expectations.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "run_quality_gate": "data_contracts.gate",
    "validate_extract": "data_contracts.validate",
    "ValidationReport": "data_contracts.validate",
    "RuleResult": "data_contracts.validate",
    "compile_suite": "data_contracts.gx_suite",
    "Fingerprint": "data_contracts.fingerprint",
    "compute_fingerprint": "data_contracts.fingerprint",
    "save_run": "data_contracts.history",
    "load_last_fingerprint": "data_contracts.history",
    "render_failures_table": "data_contracts.render",
    "ContractError": "data_contracts.errors",
    "ContractViolation": "data_contracts.errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'data_contracts' has no attribute {name!r}")
