"""Monitoring results as the rows of the output contracts ``crm_monitor_runs`` and ``crm_monitor_metrics``.

Grain: one run row per (scoring_run_id, model, stage); one metric row per (run, section, subject, metric), a
number in ``value`` or a text in ``text``. Sections: ``feature`` (subject = feature column), ``score``, ``band``
(subject = band), ``estimated``, ``quality`` (subject = extract table; stage scoring); ``realized``, ``coverage``,
``band``, ``grade``, ``slice`` (subject = ``column=value``; stage realized).
Pure: the caller gives every timestamp.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from data_contracts.schema import output_schema
from models.monitoring.drift import DRIFT_COLUMNS, ScoreHealth
from models.monitoring.performance import EstimatedPerformance, EstimateGrade, RealizedPerformance
from models.monitoring.policy import Reason
from models.monitoring.reference import finite_or_none

RUN_COLUMNS = output_schema("crm_monitor_runs").column_names
METRIC_COLUMNS = output_schema("crm_monitor_metrics").column_names
Figure = tuple[str, str, str, Any]  # (section, subject, metric, number or text)

_FEATURE_TEXT = ("label", "kind", "status", "reason")
_HEALTH_NUMBERS = ("n", "nan_share", "identical_share", "psi", "p_value", "mean_score", "reference_mean_score",
                   "reference_base_rate", "mean_shift", "mean_p_value", "band_psi", "rank_stability", "n_common")


def scoring_figures(drift: pd.DataFrame, health: ScoreHealth | None,
                    estimate: EstimatedPerformance | None) -> list[Figure]:
    """The figures of one run at scoring time: every feature's drift, the score health, band shares, the estimate."""
    out: list[Figure] = []
    for row in drift.to_dict("records"):
        for col in DRIFT_COLUMNS[1:]:
            value = row[col]
            out.append(("feature", row["feature"], col, value if col in _FEATURE_TEXT else float(value)
                        if value is not None else None))
    if health is not None:
        out += [("score", "score", k, getattr(health, k)) for k in _HEALTH_NUMBERS]
        bands = sorted(set(health.band_shares) | set(health.reference_band_shares))
        out += [("band", b, "share", health.band_shares.get(b)) for b in bands]
        out += [("band", b, "reference_share", health.reference_band_shares.get(b)) for b in bands]
    if estimate is not None:
        out.append(("estimated", "estimated", "n", estimate.n))
        for name in ("auc", "positives", "positive_rate", "brier"):
            e = getattr(estimate, name)
            out += [("estimated", "estimated", name, e.value), ("estimated", "estimated", f"{name}_low", e.low),
                    ("estimated", "estimated", f"{name}_high", e.high)]
    return out


def realized_figures(realized: RealizedPerformance, grade: EstimateGrade | None,
                     slices: Sequence[Mapping[str, Any]] = ()) -> list[Figure]:
    """The figures of one matured run: realized metrics, coverage, precision per band, the estimate's grade, and
    the metrics per slice with their intervals (``slices.realized_slices``: ``<metric>``, ``<metric>_low``,
    ``<metric>_high`` and ``n`` under the subject ``column=value``)."""
    out: list[Figure] = [("realized", "realized", k, v) for k, v in realized.metrics.items()]
    out += [("coverage", "coverage", k, v) for k, v in realized.coverage.items()]
    out += [("band", band, k, v) for band, figures in realized.bands.items() for k, v in figures.items()]
    if grade is not None:
        out += [("grade", "grade", k, float(v) if isinstance(v, bool) else v) for k, v in grade.to_dict().items()]
    for s in slices:
        subject = f"{s['slice_column']}={s['slice_value']}"
        out.append(("slice", subject, "n", s["n"]))
        for name, e in s["metrics"].items():
            out += [("slice", subject, name, e.value), ("slice", subject, f"{name}_low", e.low),
                    ("slice", subject, f"{name}_high", e.high)]
    return out


def quality_figures(tables: Mapping[str, pd.DataFrame], results: Iterable[Mapping[str, Any]]) -> list[Figure]:
    """The data quality of the extract a run was scored from, per table: rows, the share of null cells, the worst
    column's null share (and its name), failed contract rules and the offending rows they counted.

    Parameters
    ----------
    tables : the usable extract tables of the run (no PII column is ever in them).
    results : the contract rules' results on that extract (``RuleResult.to_dict()``: table, status,
        unexpected_count).
    """
    failed: dict[str, list[int]] = {}
    for r in results:
        if r["status"] == "failed":
            failed.setdefault(str(r["table"]), []).append(int(r["unexpected_count"] or 0))
    out: list[Figure] = []
    for name in sorted(set(tables) | set(failed)):
        frame = tables.get(name)
        fails = failed.get(name, [])
        out += [("quality", name, "rules_failed", len(fails)), ("quality", name, "defects", sum(fails))]
        if frame is None:
            continue
        nulls = frame.isna().mean() if len(frame) and frame.shape[1] else pd.Series(dtype=float)
        worst = nulls.idxmax() if len(nulls) else None
        out += [("quality", name, "rows", len(frame)),
                ("quality", name, "null_rate", float(nulls.mean()) if len(nulls) else None),
                ("quality", name, "max_null_rate", float(nulls.max()) if len(nulls) else None),
                ("quality", name, "max_null_column", str(worst) if worst is not None else None)]
    return out


def reasons_json(reasons: Sequence[Reason]) -> str:
    return json.dumps([r.to_dict() for r in reasons])


def run_rows(*, scoring_run_id: str, model: str, stage: str, model_version: str, as_of: pd.Timestamp,
             evaluated_as_of: pd.Timestamp, status: str, reasons: Sequence[Reason], n: int, blocked: bool,
             accepted_by: str | None, accepted_at: pd.Timestamp | None, monitored_at: pd.Timestamp,
             figures: Iterable[Figure]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The run row and its metric rows (numbers in ``value``, texts in ``text``; non-finite numbers are null)."""
    key = {"scoring_run_id": scoring_run_id, "model": model, "stage": stage}
    run = pd.DataFrame([{**key, "model_version": str(model_version), "as_of": as_of, "evaluated_as_of": evaluated_as_of,
                         "status": status, "reasons": reasons_json(reasons), "n": int(n), "blocked": int(blocked),
                         "accepted_by": accepted_by, "accepted_at": accepted_at if accepted_at is not None else pd.NaT,
                         "monitored_at": monitored_at}], columns=list(RUN_COLUMNS))
    rows = []
    for section, subject, metric, v in figures:
        text = v if isinstance(v, str) else None
        number = None if text is not None else finite_or_none(v)
        rows.append({**key, "section": section, "subject": str(subject), "metric": metric,
                     "model_version": str(model_version), "as_of": as_of, "value": np.nan if number is None else number,
                     "text": text})
    return run, pd.DataFrame(rows, columns=list(METRIC_COLUMNS))
