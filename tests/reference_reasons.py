"""The per-row reference for reasons: :mod:`models.wording` applied row by row, the oracle of ``explain_batch``.

Slow on purpose (a dict per reason, one value at a time, plain loops), so that it reads like the specification:
``tests/unit/test_explain.py`` checks that :func:`models.explain.explain_batch` writes the same bytes.
Production never calls it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.explain import calibrated_contributions, select_reasons
from models import wording


def top_reasons(
    contrib_cal: np.ndarray,
    feature_names: Sequence[str],
    values: pd.DataFrame,
    catalog: Mapping[str, Any],
    *,
    n_up: int = 3,
    n_down: int = 1,
    rank_by: np.ndarray | None = None,
) -> list[list[dict]]:
    """Per row, the raising reasons (largest first) then the lowering ones (most negative first).

    Each reason is ``{"feature", "label", "value", "contribution"}`` with ``value`` as JSON holds it and
    ``contribution`` the calibrated one. With ``rank_by`` (the raw contributions, same shape) reasons are chosen
    and signed by those, and each also carries its ``raw_contribution``.
    """
    feature_names = list(feature_names)
    contrib_cal = np.asarray(contrib_cal, dtype=np.float64)
    idx = select_reasons(contrib_cal if rank_by is None else rank_by, n_up=n_up, n_down=n_down)
    columns = {name: values[name].to_numpy(dtype=object)
               for name in {feature_names[j] for j in idx.feature[idx.feature >= 0].tolist()}}
    out: list[list[dict]] = []
    for i, chosen in enumerate(idx.feature.tolist()):
        row = []
        for j in chosen:
            if j < 0:
                continue
            name = feature_names[j]
            label, kind, unit = wording.feature_info(catalog, name)
            reason = {"feature": name, "label": label, "value": wording.json_value(columns[name][i], kind, unit),
                      "contribution": float(contrib_cal[i, j])}
            if rank_by is not None:
                reason["raw_contribution"] = float(rank_by[i, j])
            row.append(reason)
        out.append(row)
    return out


def reason_sentence(reasons: list[dict], catalog: Mapping[str, Any], *, outcome: str) -> str:
    """One row's sentence: a clause per reason, raising or lowering by the sign of its (raw) contribution."""
    clauses = []
    for reason in reasons:
        label, kind, unit = wording.feature_info(catalog, reason["feature"])
        raises = reason.get("raw_contribution", reason["contribution"]) > 0
        value = wording.value_text(reason["value"], kind, unit)
        clauses.append(wording.clause_head(label) + value + wording.clause_tail(raises, outcome))
    return wording.CLAUSE_SEPARATOR.join(clauses) if clauses else wording.NOTHING_STANDS_OUT


def reason_json(reasons: list[dict]) -> str:
    """One row's JSON text."""
    return wording.to_json([{"feature": r["feature"], "label": r["label"], "value": r["value"],
                             "contribution": wording.round_contribution(r["contribution"])} for r in reasons])


def reference_texts(
    contrib: np.ndarray,
    calibrate: Callable[[np.ndarray], np.ndarray],
    feature_names: Sequence[str],
    values: pd.DataFrame,
    catalog: Mapping[str, Any],
    *,
    outcome: str,
    n_up: int,
    n_down: int,
) -> tuple[list[str], list[str]]:
    """What ``explain_batch`` must write (its ``reasons_json`` and ``reason_text``), row by row."""
    contrib = np.asarray(contrib, dtype=np.float64)
    contrib_cal, _ = calibrated_contributions(contrib, calibrate)
    rows = top_reasons(contrib_cal, feature_names, values, catalog, n_up=n_up, n_down=n_down,
                       rank_by=contrib[:, :-1])
    return [reason_json(r) for r in rows], [reason_sentence(r, catalog, outcome=outcome) for r in rows]
