"""The reference of one model version, frozen at training. Two parts with two sources:

- the drift reference (feature bins, score deciles, band shares) describes the population the model will score: the
  scoring population at the training as-of date, built by the same feature path as scoring and scored by the model;
- the performance reference (held-out metrics with confidence intervals, the base rate and mean held-out score)
  comes from the held-out cutoff, the latest cutoff whose outcomes are known at training.

A drift reference taken from the held-out cutoff would be a horizon older than the model (a year for CLV), so
features that move with calendar time (tenure, counts since sign-up, the per-cutoff BG/NBD fits) would drift against
it on a stationary world.

Grain: one :class:`ModelReference` per model version; one :class:`FeatureReference` per feature column. Every
object is a frozen dataclass with ``to_dict()`` / ``from_dict()`` that survive a JSON round trip (missing values
are ``None``, never NaN), so the registry can log them and the CRM tables can store them.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from features.catalog import FeatureInfo
from models.evaluate import expected_calibration_error, normalized_gini
from models.monitoring.errors import MonitoringInputError
from models.monitoring.stats import auc_standard_error, normal_interval

MISSING = "(missing)"
UNSEEN = "(unseen)"
DECILES = tuple(np.arange(1, 10) / 10)


def finite_or_none(x: object) -> float | None:
    """``float(x)``, or None when it is missing or not finite (JSON has no NaN)."""
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def numeric_values(values: pd.Series | np.ndarray) -> np.ndarray:
    """Values as float64 with NaN for missing (nullable dtypes included)."""
    if isinstance(values, (np.ndarray, pd.Series)) and values.dtype.kind in "fiub":
        return np.asarray(values, dtype=np.float64)
    return pd.Series(values).astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def binned_counts(edges: Sequence[float], x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` per right-closed bin ``(-inf, e1], (e1, e2], ..., (ek, inf)``, then NaN (the missing bin).

    ``edges`` are sorted and distinct. Counted edge by edge (``k`` vectorised comparisons and counts, no per-row
    bin index): for the <= 9 decile edges of a reference this is an order of magnitude faster than
    ``np.searchsorted(edges, x, side="left")`` + ``np.bincount`` on a million rows and gives the same integers.
    """
    e = np.asarray(edges, dtype=np.float64)
    n_missing = int(np.count_nonzero(np.isnan(x)))
    n_present = len(x) - n_missing
    at_most = [n_present - int(np.count_nonzero(x > v)) for v in e]  # present rows <= each edge (NaN > v is False)
    return np.append(np.diff(np.array([0, *at_most, n_present], dtype=np.int64)), n_missing)


def gap_edges(finite: np.ndarray) -> tuple[float, ...]:
    """Decile edges moved to the middle of the gap between the reference values around them.

    A decile of values with a mass point lands on it (a count, or the prior mean BG/NBD / Gamma-Gamma give every
    one-time buyer: a tenth of the rows at one value refitted per cutoff). A right-closed edge at the value itself
    sends the whole mass to the next bin when a refit moves it by a cent; at the gap's middle it moves only once it
    crosses half the gap. The reference's own counts are the same either way (no reference value lies in a gap),
    integers are binned alike (an edge at 3.5 instead of 3), and the largest value keeps its edge.
    """
    if not len(finite):
        return ()
    q = np.unique(np.quantile(finite, DECILES))
    values = np.unique(finite)
    below = values[np.searchsorted(values, q, side="right") - 1]  # the largest value <= each decile
    at = np.searchsorted(values, q, side="right")
    above = values[np.minimum(at, len(values) - 1)]
    mid = np.where(at < len(values), below + (above - below) / 2, q)
    return tuple(float(e) for e in np.unique(mid))


@dataclass(frozen=True)
class FeatureReference:
    """Frozen bins of one feature in the training window.

    Attributes
    ----------
    name, label : column name and its catalog label.
    kind : "numeric" or "categorical".
    grows_with_time : from the catalog (see ``features.catalog.FeatureInfo``).
    edges : numeric only: sorted distinct cut points (the reference's deciles, each moved to the middle of the gap
        between the values around it: :func:`gap_edges`). Bins are right-closed,
        ``(-inf, e1], (e1, e2], ..., (ek, inf)``, then the missing bin.
    categories : categorical only: the training category set (sorted). Bins are the categories, then the missing
        bin, then the unseen bin (a category not in the set).
    counts : training rows per bin, in :attr:`bins` order.
    n : training rows; missing_rate : share missing; minimum, maximum : range of the non-missing numeric values.
    """

    name: str
    label: str
    kind: str
    grows_with_time: bool
    edges: tuple[float, ...]
    categories: tuple[str, ...]
    counts: tuple[int, ...]
    n: int
    missing_rate: float | None
    minimum: float | None
    maximum: float | None

    @property
    def bins(self) -> tuple[str, ...]:
        """Readable bin labels, in the order of :attr:`counts`."""
        if self.kind == "categorical":
            return (*self.categories, MISSING, UNSEEN)
        e = self.edges
        if not e:
            return ("(all values)", MISSING)
        inner = tuple(f"({a:g}, {b:g}]" for a, b in zip(e[:-1], e[1:]))
        return (f"<= {e[0]:g}", *inner, f"> {e[-1]:g}", MISSING)

    def bin_counts(self, values: pd.Series | np.ndarray, *, shift: float = 0.0) -> np.ndarray:
        """Rows of ``values`` per bin (in :attr:`bins` order); ``shift`` is subtracted from numeric values first."""
        if self.kind == "categorical":
            # factorize once (hashing each row once), then place the few distinct values in the frozen bins
            codes, uniques = pd.factorize(pd.Series(values).astype("str"))
            k = len(self.categories)
            found = pd.Index(self.categories, dtype="str").get_indexer(pd.Index(uniques, dtype="str"))
            bin_of_code = np.append(np.where(found >= 0, found, k + 1), k)  # code -1 (missing) -> the last entry
            return np.bincount(bin_of_code[codes], minlength=k + 2)
        x = numeric_values(values)
        return binned_counts(self.edges, x - shift if shift else x)

    @property
    def reference_bins(self) -> int:
        """Bins with a positive training share (the degrees of freedom of the PSI test are this minus one)."""
        return int(np.count_nonzero(self.counts))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureReference:
        return cls(**{**d, "edges": tuple(float(e) for e in d["edges"]), "categories": tuple(d["categories"]),
                      "counts": tuple(int(c) for c in d["counts"])})


def build_feature_reference(name: str, info: FeatureInfo, values: pd.Series) -> FeatureReference:
    """The :class:`FeatureReference` of one training-window column (deciles, or the category set)."""
    n = len(values)
    if info.kind == "categorical":
        s = pd.Series(values).astype("str")
        cats = tuple(sorted(str(c) for c in s.dropna().unique()))
        ref = FeatureReference(name, info.label, "categorical", info.grows_with_time, (), cats, (), n,
                               finite_or_none(s.isna().mean()) if n else None, None, None)
        return replace(ref, counts=tuple(int(c) for c in ref.bin_counts(s)))
    x = numeric_values(values)
    finite = x[~np.isnan(x)]
    edges = gap_edges(finite)
    ref = FeatureReference(name, info.label, "numeric", info.grows_with_time, edges, (), (), n,
                           finite_or_none(np.isnan(x).mean()) if n else None,
                           finite_or_none(finite.min()) if len(finite) else None,
                           finite_or_none(finite.max()) if len(finite) else None)
    return replace(ref, counts=tuple(int(c) for c in ref.bin_counts(x)))


@dataclass(frozen=True)
class Estimate:
    """A value with its confidence interval (any of them None when it cannot be computed)."""

    value: float | None
    low: float | None
    high: float | None

    def to_dict(self) -> dict[str, float | None]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Estimate:
        return cls(d["value"], d["low"], d["high"])


@dataclass(frozen=True)
class ScoreReference:
    """The held-out score distribution of one model version.

    Attributes
    ----------
    edges, counts : score deciles (right-closed bins as in :class:`FeatureReference`) then the missing bin, of the
        scores of the reference population (see :func:`build_reference`).
    n : rows behind ``edges``/``counts``. bands, band_shares : band labels (sorted) and their shares there.
    mean_score, score_sd : of the held-out scores. base_rate : mean held-out outcome (positive rate; mean amount for
        CLV). n_held_out : held-out rows behind them (None in references frozen before the two were told apart: then
        ``n`` counts the held-out rows too).
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    n: int
    mean_score: float | None
    score_sd: float | None
    base_rate: float | None
    bands: tuple[str, ...]
    band_shares: tuple[float, ...]
    n_held_out: int | None = None

    @property
    def held_out_rows(self) -> int:
        """Rows behind the mean score and the base rate."""
        return self.n if self.n_held_out is None else self.n_held_out

    def bin_counts(self, scores: np.ndarray) -> np.ndarray:
        return binned_counts(self.edges, numeric_values(scores))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScoreReference:
        return cls(**{**d, "edges": tuple(float(e) for e in d["edges"]), "counts": tuple(int(c) for c in d["counts"]),
                      "bands": tuple(d["bands"]), "band_shares": tuple(float(s) for s in d["band_shares"])})


@dataclass(frozen=True)
class ModelReference:
    """Everything monitoring compares a scoring run of one model version against.

    Attributes
    ----------
    model_version : the registry's version. kind : "binary" or "regression".
    features : one :class:`FeatureReference` per feature, in model feature order.
    score : the held-out :class:`ScoreReference`.
    metrics : held-out metric name -> :class:`Estimate` (binary: roc_auc with the Hanley-McNeil interval; pr_auc,
        brier, ece, gini with bootstrap intervals; regression: normalized_gini, mae, total_ratio).
    importance : feature -> mean |SHAP| on the held-out rows (raw model space).
    n_pos, n_neg : held-out class counts (binary; 0 for regression).
    as_of : ISO timestamp of the cutoff the drift reference describes (the training as-of date; in references
        frozen before issue 12's fix, the held-out cutoff); a run's ``elapsed_days`` count from it. None when unknown
        (then no age adjustment).
    """

    model_version: str
    kind: str
    features: tuple[FeatureReference, ...]
    score: ScoreReference
    metrics: dict[str, Estimate] = field(default_factory=dict)
    importance: dict[str, float] = field(default_factory=dict)
    n_pos: int = 0
    n_neg: int = 0
    as_of: str | None = None

    def feature(self, name: str) -> FeatureReference:
        for f in self.features:
            if f.name == name:
                return f
        raise MonitoringInputError(f"feature {name!r} is not in the reference of model version "
                                   f"{self.model_version!r}; it has {[f.name for f in self.features][:10]}.")

    def to_dict(self) -> dict[str, Any]:
        return {"model_version": self.model_version, "kind": self.kind,
                "features": [f.to_dict() for f in self.features], "score": self.score.to_dict(),
                "metrics": {k: v.to_dict() for k, v in self.metrics.items()},
                "importance": dict(self.importance), "n_pos": self.n_pos, "n_neg": self.n_neg, "as_of": self.as_of}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ModelReference:
        return cls(d["model_version"], d["kind"], tuple(FeatureReference.from_dict(f) for f in d["features"]),
                   ScoreReference.from_dict(d["score"]), {k: Estimate.from_dict(v) for k, v in d["metrics"].items()},
                   {k: float(v) for k, v in d["importance"].items()}, int(d["n_pos"]), int(d["n_neg"]),
                   d.get("as_of"))


def _bootstrap(metrics: Mapping[str, Any], y: np.ndarray, s: np.ndarray, *, seed: int, n_boot: int,
               level: float) -> dict[str, Estimate]:
    """Point value and percentile-bootstrap interval of each metric ``f(y, s)`` (rows resampled, seeded)."""
    rng = np.random.default_rng(seed)
    draws = {k: [] for k in metrics}
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        for k, f in metrics.items():
            draws[k].append(f(y[idx], s[idx]))
    out = {}
    for k, f in metrics.items():
        d = np.asarray(draws[k], dtype=np.float64)
        d = d[np.isfinite(d)]
        lo, hi = (np.quantile(d, [0.5 - level / 2, 0.5 + level / 2]) if len(d) else (np.nan, np.nan))
        out[k] = Estimate(finite_or_none(f(y, s)), finite_or_none(lo), finite_or_none(hi))
    return out


def _binary_or_nan(f):
    def g(y: np.ndarray, s: np.ndarray) -> float:
        return float(f(y, s)) if len(np.unique(y)) == 2 else float("nan")
    return g


def held_out_metrics(kind: str, labels: np.ndarray, scores: np.ndarray, *, seed: int, n_boot: int,
                     level: float) -> tuple[dict[str, Estimate], int, int]:
    """Held-out metrics with intervals (see :class:`ModelReference`), and the class counts."""
    y = np.asarray(labels, dtype=np.float64)
    s = np.asarray(scores, dtype=np.float64)
    if kind == "regression":
        total_ratio = lambda a, b: float(b.sum() / a.sum()) if a.sum() else float("nan")  # noqa: E731
        return _bootstrap({"normalized_gini": normalized_gini, "mae": lambda a, b: float(np.abs(a - b).mean()),
                           "total_ratio": total_ratio}, y, s, seed=seed, n_boot=n_boot, level=level), 0, 0
    if kind != "binary":
        raise MonitoringInputError(f"kind={kind!r}; expected 'binary' or 'regression'.")
    n_pos = int((y > 0.5).sum())
    n_neg = len(y) - n_pos
    metrics = _bootstrap({"pr_auc": _binary_or_nan(average_precision_score), "brier": brier_score_loss,
                          "ece": expected_calibration_error,
                          "gini": _binary_or_nan(lambda a, b: 2 * roc_auc_score(a, b) - 1)},
                         y, s, seed=seed, n_boot=n_boot, level=level)
    auc = float(roc_auc_score(y, s)) if n_pos and n_neg else float("nan")
    lo, hi = normal_interval(auc, auc_standard_error(auc, n_pos, n_neg), level, lo=0.0, hi=1.0)
    metrics["roc_auc"] = Estimate(finite_or_none(auc), finite_or_none(lo), finite_or_none(hi))
    return metrics, n_pos, n_neg


def build_score_reference(scores: np.ndarray, bands: Sequence[str] | None, held_out_scores: np.ndarray,
                          held_out_labels: np.ndarray) -> ScoreReference:
    """The :class:`ScoreReference`: deciles and band shares of ``scores`` (the reference population's), mean score,
    its spread and the base rate of the held-out rows (``held_out_scores`` and ``held_out_labels``, same rows)."""
    x = numeric_values(scores)
    finite = x[np.isfinite(x)]
    h = numeric_values(held_out_scores)
    held = h[np.isfinite(h)]
    y = np.asarray(held_out_labels, dtype=np.float64)
    edges = gap_edges(finite)
    shares = pd.Series(bands, dtype="str").value_counts(normalize=True).sort_index() if bands is not None else None
    ref = ScoreReference(edges, (), len(x), finite_or_none(held.mean()) if len(held) else None,
                         finite_or_none(held.std()) if len(held) else None,
                         finite_or_none(np.nanmean(y)) if len(y) and not np.isnan(y).all() else None,
                         tuple(str(b) for b in shares.index) if shares is not None else (),
                         tuple(float(v) for v in shares.to_numpy()) if shares is not None else (), len(h))
    return replace(ref, counts=tuple(int(c) for c in ref.bin_counts(x)))


def build_reference(
    frame: pd.DataFrame,
    catalog: Mapping[str, FeatureInfo],
    scores: np.ndarray | pd.Series,
    bands: Sequence[str] | pd.Series | None,
    importance: Mapping[str, float],
    *,
    held_out_scores: np.ndarray | pd.Series,
    held_out_labels: np.ndarray | pd.Series,
    model_version: str,
    kind: str,
    seed: int,
    n_boot: int,
    level: float,
    as_of: str | None = None,
) -> ModelReference:
    """Freeze the reference of one model version at training.

    Parameters
    ----------
    frame, scores, bands : the drift reference: the features of the population the model will score, at ``as_of``
        (the training as-of date, built by the scoring feature path; one row per entity, every catalog column),
        with the model's scores and bands of those rows (same order).
    catalog : feature column -> FeatureInfo (the model's features, in model order).
    importance : feature -> mean |SHAP| on the held-out rows; features absent get 0.
    held_out_scores, held_out_labels : the performance reference: the held-out cutoff's calibrated scores and
        realized outcomes (same rows): metrics with intervals, base rate and mean held-out score.
    model_version, kind : registry version, "binary" or "regression".
    seed, n_boot, level : bootstrap of the held-out metric intervals (seeded) and the confidence level.
    as_of : the cutoff ``frame`` describes (ISO timestamp), kept as :attr:`ModelReference.as_of`.

    Returns
    -------
    A :class:`ModelReference`. Time semantics: feature bins, score deciles and band shares describe the population at
    ``as_of``; metrics, mean score and base rate the held-out cutoff; ``feature_drift``'s ``elapsed_days`` count
    from ``as_of``.
    """
    missing = [c for c in catalog if c not in frame.columns]
    if missing:
        raise MonitoringInputError(f"the reference frame lacks catalog columns {missing[:10]}; build the reference "
                                   "from the features of the population the model scores.")
    s = numeric_values(scores)
    if len(s) != len(frame) or (bands is not None and len(bands) != len(s)):
        raise MonitoringInputError(f"the reference frame ({len(frame)} rows), its scores ({len(s)}) and bands "
                                   f"({None if bands is None else len(bands)}) must be the same rows.")
    h = numeric_values(held_out_scores)
    y = np.asarray(pd.Series(held_out_labels).astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan))
    if len(h) != len(y):
        raise MonitoringInputError(f"held-out scores ({len(h)}) and labels ({len(y)}) must be the same rows.")
    keep = np.isfinite(h) & np.isfinite(y)
    metrics, n_pos, n_neg = held_out_metrics(kind, y[keep], h[keep], seed=seed, n_boot=n_boot, level=level)
    return ModelReference(
        model_version=str(model_version), kind=kind,
        features=tuple(build_feature_reference(c, info, frame[c]) for c, info in catalog.items()),
        score=build_score_reference(s, None if bands is None else list(pd.Series(bands).astype("str")), h, y),
        metrics=metrics, importance={c: float(importance.get(c, 0.0)) for c in catalog}, n_pos=n_pos, n_neg=n_neg,
        as_of=as_of)
