"""Held-out metrics: pure functions on arrays and frames.

Binary scores are probabilities; regression predictions are currency amounts. Every function takes
the realised outcome ``y`` and the prediction of the same rows (one row per entity and cutoff).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy.stats import spearmanr
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, mean_absolute_error, roc_auc_score

from models.metrics import METRICS
from models.tasks import TASKS


def expected_calibration_error(y: np.ndarray, p: np.ndarray, *, n_bins: int = 10) -> float:
    """Expected calibration error over equal-mass bins.

    Rows are sorted by predicted probability and cut into ``n_bins`` bins of (nearly) equal size
    (``np.array_split``; ties may straddle a bin edge). ECE = sum over bins of
    ``(bin size / n) * |mean(y in bin) - mean(p in bin)|``. Equal-mass bins (rather than equal-width)
    keep every bin populated when scores crowd near 0, as churn and lead scores do.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    total = 0.0
    for idx in np.array_split(order, min(n_bins, len(y))):
        if len(idx):
            total += len(idx) / len(y) * abs(y[idx].mean() - p[idx].mean())
    return float(total)


def top_fraction_lift(y: np.ndarray, p: np.ndarray, *, fraction: float = 0.1) -> tuple[float, float]:
    """Lift and capture of the top ``fraction`` of rows by score.

    The top group is the ``ceil(n * fraction)`` highest scores (stable order on ties).
    lift = positive rate in the top group / overall positive rate; capture = share of all positives
    (or of the total outcome, for amounts) that falls in the top group. NaN when there are no positives.
    """
    y = np.asarray(y, dtype=float)
    p = np.asarray(p, dtype=float)
    n = len(y)
    if n == 0 or y.sum() <= 0:
        return float("nan"), float("nan")
    k = max(1, int(np.ceil(n * fraction)))
    top = np.argsort(-p, kind="stable")[:k]
    lift = y[top].mean() / y.mean()
    capture = y[top].sum() / y.sum()
    return float(lift), float(capture)


def binary_metrics(y: np.ndarray, p: np.ndarray, *, ece_bins: int = 10) -> dict[str, float]:
    """ROC AUC, PR AUC, log loss, Brier, ECE, top-decile lift and capture, n and positive rate.

    AUCs are NaN when ``y`` holds a single class (a slice may).
    """
    y = np.asarray(y, dtype=float)
    p = np.clip(np.asarray(p, dtype=float), 1e-15, 1 - 1e-15)
    two_classes = len(np.unique(y)) == 2
    lift, capture = top_fraction_lift(y, p, fraction=0.1)
    return {
        "n": float(len(y)),
        "positive_rate": float(y.mean()) if len(y) else float("nan"),
        "roc_auc": float(roc_auc_score(y, p)) if two_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if two_classes else float("nan"),
        "log_loss": float(log_loss(y, p, labels=[0, 1])) if len(y) else float("nan"),
        "brier": float(brier_score_loss(y, p)) if len(y) else float("nan"),
        "ece": expected_calibration_error(y, p, n_bins=ece_bins),
        "lift_top_decile": lift,
        "capture_top_decile": capture,
    }


def gini(y: np.ndarray, pred: np.ndarray) -> float:
    """Gini of the cumulative share of ``y`` when rows are ordered by ``pred`` (descending).

    The classic insurance/Kaggle definition: ``sum(cum share of y - cum share of rows) / n``.
    Ties in ``pred`` are broken by the original row order (stable sort).
    """
    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    n = len(y)
    if n == 0 or y.sum() == 0:
        return float("nan")
    order = np.argsort(-pred, kind="stable")
    cum_y = np.cumsum(y[order]) / y.sum()
    cum_pop = np.arange(1, n + 1) / n
    return float((cum_y - cum_pop).sum() / n)


def normalized_gini(y: np.ndarray, pred: np.ndarray) -> float:
    """Gini of ``pred`` divided by the Gini of a perfect ordering (1 = perfect rank, 0 = random)."""
    best = gini(y, y)
    if not np.isfinite(best) or best == 0:
        return float("nan")
    return gini(y, pred) / best


def regression_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Spearman, normalized Gini, MAE, predicted/realised total ratio and its noise, top-decile capture, n."""
    y = np.asarray(y, dtype=float)
    pred = np.asarray(pred, dtype=float)
    n = len(y)
    if n > 1 and np.ptp(pred) > 0 and np.ptp(y) > 0:
        rho = float(spearmanr(y, pred).statistic)
    else:
        rho = float("nan")
    _, capture = top_fraction_lift(y, pred, fraction=0.1)
    return {
        "n": float(n),
        "mean_actual": float(y.mean()) if n else float("nan"),
        "spearman": rho,
        "normalized_gini": normalized_gini(y, pred),
        "mae": float(mean_absolute_error(y, pred)) if n else float("nan"),
        "total_ratio": float(pred.sum() / y.sum()) if n and y.sum() != 0 else float("nan"),
        # Relative standard error of the realized total (rows as independent draws): how far the realized total of
        # these rows may be from its expectation by chance, so the gate knows when a 10% error can be told from noise.
        "total_rel_se": float(y.std(ddof=1) * np.sqrt(n) / abs(y.sum())) if n > 1 and y.sum() != 0 else float("nan"),
        "capture_top_decile": capture,
    }


def task_metrics(kind: str, y: np.ndarray, pred: np.ndarray, *, ece_bins: int = 10) -> dict[str, float]:
    """:func:`binary_metrics` or :func:`regression_metrics` by task kind (``"binary"``/``"regression"``)."""
    if kind == "binary":
        return binary_metrics(y, pred, ece_bins=ece_bins)
    if kind == "regression":
        return regression_metrics(y, pred)
    raise ValueError(f"Unknown task kind {kind!r}; expected 'binary' or 'regression'.")


def slice_metrics(
    frame: pd.DataFrame,
    slice_columns: Sequence[str],
    *,
    kind: str,
    y_col: str = "y",
    pred_col: str = "score",
    min_size: int = 200,
    ece_bins: int = 10,
) -> pd.DataFrame:
    """Metrics per value of each slice column, for slices of at least ``min_size`` rows.

    Parameters
    ----------
    frame: held-out rows with the outcome ``y_col``, the prediction ``pred_col`` and the slice columns.
    slice_columns: columns to slice by; missing columns are skipped, NaN values form the slice "(missing)".
    kind: ``"binary"`` or ``"regression"``.
    min_size: smaller slices are left out, since their metrics are noise.

    Returns
    -------
    One row per (slice_column, slice_value): those two columns then the metrics of :func:`task_metrics`.
    """
    rows = []
    for col in slice_columns:
        if col not in frame.columns:
            continue
        keys = frame[col].astype(object).where(frame[col].notna(), "(missing)")
        for value, part in frame.groupby(keys, sort=True):
            if len(part) < min_size:
                continue
            m = task_metrics(kind, part[y_col].to_numpy(), part[pred_col].to_numpy(), ece_bins=ece_bins)
            rows.append({"slice_column": col, "slice_value": str(value), **m})
    if not rows:
        return pd.DataFrame(columns=["slice_column", "slice_value", "n"])
    return pd.DataFrame(rows)


def collapsed_slices(slices: pd.DataFrame, *, metric: str, min_n: int) -> pd.DataFrame:
    """The slices on which the model is no better than chance: the one definition of a collapsed slice.

    A slice has collapsed when it holds at least ``min_n`` rows and its ``metric`` is not better than the metric's
    chance level (``models.metrics.METRICS[metric].chance``: AUC 0.5, Spearman and normalized Gini 0). Training
    counts these slices (``slice_collapse_count``) and the champion gate refuses a candidate with one.

    Parameters
    ----------
    slices: output of :func:`slice_metrics` (wide) or its long form (:func:`slices_long`).
    metric: the metric judged (the task's primary metric).
    min_n: slices with fewer rows are too noisy to call collapsed.

    Returns
    -------
    Long rows (slice_column, slice_value, n, metric, value) of the collapsed slices, in input order. Empty when
    none collapsed or the metric has no chance level. A NaN value (AUC of a single-class slice) is not a collapse.
    """
    long = slices_long(slices)
    spec = METRICS.get(metric)
    if spec is None or spec.chance is None or spec.higher_is_better is None or long.empty:
        return long.iloc[0:0]
    rows = long[(long["metric"] == metric) & (long["n"] >= min_n)]
    value = rows["value"].astype(float)
    worse = value <= spec.chance if spec.higher_is_better else value >= spec.chance
    return rows[value.notna() & worse].reset_index(drop=True)


def slices_long(slice_frame: pd.DataFrame) -> pd.DataFrame:
    """Slice metrics as long rows (slice_column, slice_value, n, metric, value).

    :func:`slice_metrics` returns one wide row per slice (a column per metric); the registry, the gate and the
    model card read the long form. A frame already long is returned as it is.
    """
    if slice_frame is None or slice_frame.empty:
        return pd.DataFrame(columns=["slice_column", "slice_value", "n", "metric", "value"])
    if "metric" in slice_frame.columns:
        return slice_frame
    ids = ["slice_column", "slice_value", "n"]
    long = slice_frame.melt(id_vars=ids, var_name="metric", value_name="value")
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def compare_with_truth(scores: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """How well written scores rank the realized future, against what the true probabilities achieve.

    ``scores``: crm_scores rows (model, entity_id, score). ``truth``: the synthetic world's truth (task, entity_id,
    true_value, realized). One row per task scored: n, the scores' ranking quality against ``realized``
    (ROC AUC; normalized Gini for clv), the truth's own, their ratio, and for binary tasks the ECE of the scores.
    """
    rows = []
    for task, part in truth.groupby("task", sort=True):
        mine = scores.loc[scores["model"] == task, ["entity_id", "score"]]
        both = part.merge(mine, on="entity_id", how="inner")
        if both.empty:
            continue
        y = both["realized"].to_numpy(dtype=float)
        if task not in TASKS:
            continue  # the simulation knows a task nobody registered
        if TASKS[task].kind == "regression":
            model_q, truth_q, metric = normalized_gini(y, both["score"].to_numpy()), normalized_gini(
                y, both["true_value"].to_numpy()), "normalized_gini"
            ece = float("nan")
        else:
            if len(np.unique(y)) < 2:
                continue
            model_q = float(roc_auc_score(y, both["score"]))
            truth_q = float(roc_auc_score(y, both["true_value"]))
            metric = "roc_auc"
            ece = expected_calibration_error(y, both["score"].to_numpy())
        rows.append({"task": task, "n": len(both), "unscored_truth_rows": len(part) - len(both), "metric": metric,
                     "model": model_q, "truth": truth_q, "ratio": model_q / truth_q if truth_q else float("nan"),
                     "ece": ece})
    return pd.DataFrame(rows)
