"""The wording of reasons: the specification of what the CRM reads next to a score.

This module is *the* specification. It is written to be read, one value at a time;
:func:`models.explain.explain_batch` writes the same bytes on arrays, for millions of rows, and
``tests/unit/test_explain.py`` proves it against ``tests/reference_reasons.py``, a per-row chain
built on the functions below.

A reason is one feature that moved a row's score: its column name, its readable ``label`` (from the
feature catalog), its value and its contribution on the reported scale. Per scored row, the raising
reasons come first (largest first), then the lowering ones (most negative first). The row gets two
texts:

- ``reason_text``, a sentence: one clause per reason, ``clause_head(label) + value_text(...) +
  clause_tail(raises, outcome)``, joined by :data:`CLAUSE_SEPARATOR`; a row without reasons reads
  :data:`NOTHING_STANDS_OUT`. ``outcome`` is the task's ``TaskSpec.reason_outcome``. E.g.
  ``Logins in the last 30 days: 2 (raises churn risk); Tenure: 45 days (lowers churn risk)``.
- ``reasons`` (JSON): a list of ``{"feature", "label", "value", "contribution"}`` objects in the same
  order, written by :data:`to_json`; ``value`` is :func:`json_value`, ``contribution`` is
  :func:`round_contribution`. E.g. ``[{"feature":"eng__logins_30d","label":"Logins in the last 30
  days","value":2,"contribution":0.0412}]``; a row without reasons is ``[]``.
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

#: Units a value is written by (:func:`value_text`); any other unit (or None) prints as a plain number.
#: count -> integer; days -> "45 days"; currency -> 2 decimals with thousands separator;
#: share -> a fraction in [0, 1] shown as a percentage; percent -> already in 0..100.
UNIT_FORMATS: tuple[str, ...] = ("count", "days", "currency", "share", "percent")

#: How a missing value reads in a sentence (in JSON it is ``null``).
MISSING_TEXT = "none recorded"
#: The whole sentence of a row without reasons.
NOTHING_STANDS_OUT = "No single factor stands out"
#: Between two clauses of a sentence.
CLAUSE_SEPARATOR = "; "

#: Compact JSON as the CRM stores it, non-ASCII kept; NaN and infinity are refused (they are not JSON).
to_json = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode


def feature_info(catalog: Mapping[str, Any], feature: str) -> tuple[str, str, str | None]:
    """``(label, kind, unit)`` of a feature in the catalog (a ``FeatureInfo`` or a plain mapping).

    A feature the catalog does not know reads as its column name, numeric, without unit.
    """
    info = catalog.get(feature)
    if info is None:
        return feature, "numeric", None
    if isinstance(info, Mapping):
        return info.get("label", feature), info.get("kind", "numeric"), info.get("unit")
    return getattr(info, "label", feature), getattr(info, "kind", "numeric"), getattr(info, "unit", None)


def json_value(v: Any, kind: str, unit: str | None) -> Any:
    """The value of a reason as JSON holds it: None for missing, str for categoricals, bool for bools, int for
    ints and for whole counts and days, float otherwise."""
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, (float, np.floating)) and math.isnan(v):
        return None
    if kind == "categorical":
        return str(v)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    if isinstance(v, (int, np.integer)):
        return int(v)
    f = float(v)
    if unit in ("count", "days") and f.is_integer():
        return int(f)
    return f


def value_text(value: Any, kind: str, unit: str | None) -> str:
    """How a value (as :func:`json_value` gives it) reads in a sentence.

    Categoricals read as their value with underscores as spaces; numbers by unit (see :data:`UNIT_FORMATS`;
    rounding ties go to even, as Python's ``round`` and format do); missing values as :data:`MISSING_TEXT`.
    """
    if value is None:
        return MISSING_TEXT
    if kind == "categorical":
        return str(value).replace("_", " ")
    x = float(value)  # bools read as 1 and 0
    if unit == "count":
        return f"{int(round(x)):,}"
    if unit == "days":
        days = int(round(x))
        return f"{days:,} day" if days == 1 else f"{days:,} days"
    if unit == "currency":
        return f"{x:,.2f}"
    if unit == "share":
        return f"{x * 100:.0f}%"
    if unit == "percent":
        return f"{x:.0f}%"
    return f"{int(x):,}" if x.is_integer() else f"{x:,.2f}"


def clause_head(label: str) -> str:
    """What a clause says before the value: the feature's label."""
    return f"{label}: "


def clause_tail(raises: bool, outcome: str) -> str:
    """What a clause says after the value: whether the reason raises or lowers the task's outcome."""
    return f" ({'raises' if raises else 'lowers'} {outcome})"


def round_contribution(contribution: float) -> float:
    """A contribution as JSON holds it: 6 significant digits (the CRM shows it; MLflow keeps the model)."""
    return float(f"{contribution:.6g}")
