"""Realized performance of a past scoring run once its labels have matured, the confidence-based estimate for runs
not yet matured, and the grading of that estimate.

Grain: one result per (model version, scoring run). Time semantics: ``scored`` is what the run wrote at its as-of
date; ``outcomes`` are the labels of those entities over the task's horizon, read from a later extract in which
they have matured (a NaN outcome = not matured yet, e.g. a lead still open). Nothing here reads a clock.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm

from models.evaluate import binary_metrics, regression_metrics, slice_metrics
from models.monitoring.errors import MonitoringInputError
from models.monitoring.reference import Estimate, finite_or_none, numeric_values
from models.monitoring.stats import auc_from_ranks, auc_standard_error, calibration_slope_intercept, expected_auc, \
    ranks
from models.monitoring.thresholds import MonitorThresholds


def _clean(d: Mapping[str, Any]) -> dict[str, float | None]:
    return {k: finite_or_none(v) for k, v in d.items()}


@dataclass(frozen=True)
class RealizedPerformance:
    """Realized metrics of one past run on its matured rows.

    Attributes
    ----------
    kind : "binary" or "regression".
    metrics : binary: n, positive_rate, roc_auc, auc_se, pr_auc, log_loss, brier, ece, lift_top_decile,
        capture_top_decile, calibration_slope, calibration_intercept, expected_positives, observed_positives,
        oe_ratio (observed / expected), oe_p_value. Regression (CLV): n, mean_actual, spearman, normalized_gini,
        mae, total_ratio, capture_top_decile, predicted_total, realized_total.
    bands : band -> {n, mean_score, precision} (precision = positive rate; mean realized amount for regression).
    slices : one record per (slice_column, slice_value) as ``models.evaluate.slice_metrics``.
    coverage : n_scored, n_matured, n_open (outcome not matured), n_erased (erased since the run), n_absent (not in
        the later extract), matured_share.
    """

    kind: str
    metrics: dict[str, float | None]
    bands: dict[str, dict[str, float | None]]
    slices: tuple[dict[str, Any], ...]
    coverage: dict[str, float | None]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "slices": [dict(s) for s in self.slices]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RealizedPerformance:
        return cls(d["kind"], dict(d["metrics"]), {k: dict(v) for k, v in d["bands"].items()},
                   tuple(dict(s) for s in d["slices"]), dict(d["coverage"]))


def _binary_extra(y: np.ndarray, p: np.ndarray) -> tuple[dict[str, float], int]:
    slope, intercept = calibration_slope_intercept(y, p)
    expected = float(p.sum())
    observed = float(y.sum())
    sd = float(np.sqrt((p * (1 - p)).sum()))
    n_pos = int(observed)
    return {"calibration_slope": slope, "calibration_intercept": intercept, "expected_positives": expected,
            "observed_positives": observed, "oe_ratio": observed / expected if expected > 0 else float("nan"),
            "oe_p_value": float(2 * norm.sf(abs(observed - expected) / sd)) if sd > 0 else float("nan")}, n_pos


def realized_performance(
    scored: pd.DataFrame,
    outcomes: pd.DataFrame,
    *,
    kind: str,
    erased: Iterable[str] = (),
    slice_columns: Sequence[str] = (),
    min_slice_rows: int,
    ece_bins: int,
) -> RealizedPerformance:
    """Metrics of one past run on the entities whose outcome has matured, with coverage.

    Parameters
    ----------
    scored : the run's rows: entity_id, score, optionally band and the slice columns (one row per entity).
    outcomes : entity_id, y from the later extract (y NaN = not matured yet). Entities missing from it are
        absent, or erased when listed in ``erased``.
    kind : "binary" or "regression".
    erased : entity ids erased (privacy) since the run.
    slice_columns, min_slice_rows, ece_bins : as ``models.evaluate.slice_metrics``.
    """
    for name, frame, cols in (("scored", scored, ("entity_id", "score")), ("outcomes", outcomes, ("entity_id", "y"))):
        lacking = [c for c in cols if c not in frame.columns]
        if lacking:
            raise MonitoringInputError(f"{name} lacks columns {lacking}; expected at least {list(cols)}.")
    if kind not in ("binary", "regression"):
        raise MonitoringInputError(f"kind={kind!r}; expected 'binary' or 'regression'.")
    erased_set = set(erased)
    joined = scored.merge(outcomes[["entity_id", "y"]], on="entity_id", how="left", indicator=True)
    present = (joined["_merge"] == "both").to_numpy()
    y_all = numeric_values(joined["y"])
    is_erased = joined["entity_id"].isin(erased_set).to_numpy() & ~present
    matured = present & ~np.isnan(y_all)
    n = len(joined)
    coverage = {"n_scored": n, "n_matured": int(matured.sum()), "n_open": int((present & np.isnan(y_all)).sum()),
                "n_erased": int(is_erased.sum()), "n_absent": int((~present & ~is_erased).sum()),
                "matured_share": finite_or_none(matured.mean()) if n else None}
    rows = joined.loc[matured].assign(y=y_all[matured], score=numeric_values(joined.loc[matured, "score"]))
    y = rows["y"].to_numpy()
    p = rows["score"].to_numpy()
    if not len(rows):
        return RealizedPerformance(kind, {"n": 0.0}, {}, (), coverage)
    if kind == "binary":
        metrics = binary_metrics(y, p, ece_bins=ece_bins)
        extra, n_pos = _binary_extra(y, p)
        metrics.update(extra)
        metrics["auc_se"] = auc_standard_error(metrics["roc_auc"], n_pos, len(y) - n_pos)
    else:
        metrics = regression_metrics(y, p)
        metrics.update({"predicted_total": float(p.sum()), "realized_total": float(y.sum())})
    bands = {}
    if "band" in rows.columns:
        for band, part in rows.groupby(rows["band"].astype("str"), sort=True):
            bands[str(band)] = _clean({"n": len(part), "mean_score": part["score"].mean(),
                                       "precision": part["y"].mean()})
    slices = ()
    if slice_columns:
        table = slice_metrics(rows, slice_columns, kind=kind, y_col="y", pred_col="score", min_size=min_slice_rows,
                              ece_bins=ece_bins)
        slices = tuple({k: (v if isinstance(v, str) else finite_or_none(v)) for k, v in r.items()}
                       for r in table.to_dict("records"))
    return RealizedPerformance(kind, _clean(metrics), bands, slices, coverage)


@dataclass(frozen=True)
class EstimatedPerformance:
    """What a run's calibrated scores predict about its outcomes before they mature.

    Attributes
    ----------
    n : scored rows. auc : expected AUC (point: the confidence-based ratio of ``stats.expected_auc``).
    positives, positive_rate, brier : expected count and rate of positives and expected Brier score
        (``mean p(1-p)``). Intervals: the central ``level`` range of the realized value over ``draws`` simulated
        outcome vectors y ~ Bernoulli(score), i.e. where the realized value falls if the scores are calibrated on
        this population.
    """

    n: int
    auc: Estimate
    positives: Estimate
    positive_rate: Estimate
    brier: Estimate

    def to_dict(self) -> dict[str, Any]:
        return {"n": self.n, **{k: getattr(self, k).to_dict() for k in ("auc", "positives", "positive_rate", "brier")}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EstimatedPerformance:
        return cls(int(d["n"]), *(Estimate.from_dict(d[k]) for k in ("auc", "positives", "positive_rate", "brier")))


def estimated_performance(scores: np.ndarray | pd.Series, *, seed: int, draws: int,
                          level: float) -> EstimatedPerformance:
    """Confidence-based estimate of a binary run's performance from its calibrated probabilities.

    Parameters
    ----------
    scores : the run's calibrated probabilities (one per scored entity; non-finite values are left out).
    seed, draws : the seeded simulation of the intervals.
    level : interval level.
    """
    p = numeric_values(scores)
    p = np.clip(p[np.isfinite(p)], 0.0, 1.0)
    n = len(p)
    if n < 2:
        none = Estimate(None, None, None)
        return EstimatedPerformance(n, none, none, none, none)
    rng = np.random.default_rng(seed)
    r = ranks(p)
    sim = {"auc": [], "positives": [], "brier": []}
    for _ in range(draws):
        y = (rng.random(n) < p).astype(np.float64)
        sim["auc"].append(auc_from_ranks(y, r))
        sim["positives"].append(y.sum())
        sim["brier"].append(((y - p) ** 2).mean())
    q = [0.5 - level / 2, 0.5 + level / 2]

    def est(point: float, key: str, scale: float = 1.0) -> Estimate:
        d = np.asarray(sim[key], dtype=np.float64) / scale
        d = d[np.isfinite(d)]
        lo, hi = np.quantile(d, q) if len(d) else (np.nan, np.nan)
        return Estimate(finite_or_none(point), finite_or_none(lo), finite_or_none(hi))

    brier = float((p * (1 - p)).mean())
    return EstimatedPerformance(n, est(expected_auc(p), "auc"), est(float(p.sum()), "positives"),
                                est(float(p.mean()), "positives", scale=n), est(brier, "brier"))


@dataclass(frozen=True)
class EstimateGrade:
    """How an estimate made at scoring time compares with the realized performance once matured.

    Attributes
    ----------
    auc_error : estimated - realized AUC. auc_ok : ``|auc_error| <= estimate_auc_tolerance``.
    rate_ratio : realized / expected positive rate; rate_p_value : two-sided p-value of the gap (binomial noise of
        calibrated scores, variance = expected Brier / n matured). rate_ok : not (p < alpha and
        ``|rate_ratio - 1| > calibration_tolerance``).
    brier_error : estimated - realized Brier. reliable : auc_ok and rate_ok.
    """

    auc_error: float | None
    auc_ok: bool
    rate_ratio: float | None
    rate_p_value: float | None
    rate_ok: bool
    brier_error: float | None
    reliable: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> EstimateGrade:
        return cls(**d)


def grade_estimate(estimate: EstimatedPerformance, realized: RealizedPerformance, *,
                   thresholds: MonitorThresholds) -> EstimateGrade:
    """Grade the estimate of one run against its realized (matured) performance.

    The estimate should be made on the rows that matured (``scored`` restricted to them) when coverage is partial;
    rates, not counts, are compared, so a coverage below 100% does not by itself fail the grade.
    """
    m = realized.metrics
    auc_error = None
    if estimate.auc.value is not None and m.get("roc_auc") is not None:
        auc_error = estimate.auc.value - m["roc_auc"]
    auc_ok = auc_error is not None and abs(auc_error) <= thresholds.estimate_auc_tolerance
    ratio = p_value = None
    rate, n = m.get("positive_rate"), m.get("n")
    exp_rate, exp_brier = estimate.positive_rate.value, estimate.brier.value
    if rate is not None and exp_rate and exp_brier and n:
        ratio = rate / exp_rate
        p_value = float(2 * norm.sf(abs(rate - exp_rate) / np.sqrt(exp_brier / n)))
    rate_ok = ratio is not None and not (p_value < thresholds.alpha
                                         and abs(ratio - 1) > thresholds.calibration_tolerance)
    brier_error = None
    if estimate.brier.value is not None and m.get("brier") is not None:
        brier_error = estimate.brier.value - m["brier"]
    return EstimateGrade(finite_or_none(auc_error), bool(auc_ok), finite_or_none(ratio), finite_or_none(p_value),
                         bool(rate_ok), finite_or_none(brier_error), bool(auc_ok and rate_ok))


def estimator_reliable(grades: Iterable[EstimateGrade]) -> bool:
    """False once any matured run of the model version missed: the estimator is then unreliable for that version."""
    return all(g.reliable for g in grades)
