"""Map the booster's raw score to the reported score.

Binary tasks: raw = log-odds; the reported score is a calibrated probability. Two methods:
Platt (a logistic regression on the raw log-odds, 2 parameters) and isotonic (monotone step
function). :func:`fit_calibrator` with ``method="auto"`` picks the one with the lower expected
calibration error measured out of fold (2-fold, time-agnostic split of the calibration rows), then
refits it on all calibration rows: fitting and judging isotonic on the same rows would always win.

Regression (Tweedie): raw = log of the expected amount; the reported amount is ``exp(raw) * scale``
where ``scale`` (fitted on the calibration rows) makes predicted and realised totals agree. With a
:class:`TotalAnchor` the scale of a scored population is instead set so that its total follows BG/NBD + Gamma-Gamma
(a model of how a cohort's buying declines as it ages, which a tree fitted on earlier cutoffs cannot extrapolate),
optionally corrected by BG/NBD's own bias measured on the calibration rows; the model keeps the allocation between
records.

All calibrators are monotone, so they never change the ranking (AUC, Gini).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from models.evaluate import expected_calibration_error


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=float)))


@dataclass(frozen=True)
class SigmoidCalibrator:
    """No calibration: the booster's own probability, sigmoid(raw)."""

    method: str = "none"

    def transform(self, raw: np.ndarray) -> np.ndarray:
        return _sigmoid(raw)


@dataclass(frozen=True)
class PlattCalibrator:
    """sigmoid(slope * raw + intercept), fitted by (nearly unpenalised) logistic regression."""

    slope: float
    intercept: float
    method: str = "platt"

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray) -> PlattCalibrator:
        lr = LogisticRegression(C=1e6, max_iter=1000)
        lr.fit(np.asarray(raw, dtype=float).reshape(-1, 1), np.asarray(y, dtype=int))
        return cls(slope=float(lr.coef_[0, 0]), intercept=float(lr.intercept_[0]))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        return _sigmoid(self.slope * np.asarray(raw, dtype=float) + self.intercept)


@dataclass(frozen=True)
class IsotonicCalibrator:
    """Monotone step function of raw, clipped to the fitted range (and to [eps, 1 - eps])."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    method: str = "isotonic"

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray) -> IsotonicCalibrator:
        iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
        iso.fit(np.asarray(raw, dtype=float), np.asarray(y, dtype=float))
        return cls(x=tuple(map(float, iso.X_thresholds_)), y=tuple(map(float, iso.y_thresholds_)))

    def transform(self, raw: np.ndarray) -> np.ndarray:
        # np.interp clips outside the fitted range, as out_of_bounds="clip" does.
        p = np.interp(np.asarray(raw, dtype=float), self.x, self.y)
        # A probability of exactly 0 or 1 would give infinite log loss on one surprise.
        return np.clip(p, 1e-6, 1 - 1e-6)


@dataclass(frozen=True)
class ExpCalibrator:
    """Regression: ``exp(raw) * scale``; scale matches predicted to realised totals on calibration rows."""

    scale: float = 1.0
    method: str = "exp_total"

    @classmethod
    def fit(cls, raw: np.ndarray, y: np.ndarray) -> ExpCalibrator:
        pred = np.exp(np.asarray(raw, dtype=float))
        total = float(pred.sum())
        scale = float(np.sum(y) / total) if total > 0 and np.sum(y) > 0 else 1.0
        return cls(scale=scale)

    def transform(self, raw: np.ndarray) -> np.ndarray:
        return np.exp(np.asarray(raw, dtype=float)) * self.scale


@dataclass(frozen=True)
class TotalAnchor:
    """The total of a scored population from BG/NBD, the allocation between its records from the model.

    ``column`` is a feature holding each record's BG/NBD + Gamma-Gamma expected margin (fitted on the history before
    the record's cutoff); ``bias`` the realised total over the sum of that column on the calibration (validation)
    rows (``evaluation.total_anchor_bias: validation``, the default), or 1 (``none``: BG/NBD's total as refitted at
    the scoring date; closer where BG/NBD's bias drifts with history length and season, as on CDNOW and Online
    Retail, and far off where the bias is stable and large, as on the synthetic world: docs/benchmarks.md, "CLV
    candidates"). For rows ``frame`` with raw scores ``raw``, :meth:`calibrator` returns ``exp(raw) * s`` with
    ``s = bias * sum(column) / sum(exp(raw))``: the population's predicted total is BG/NBD's, corrected by its bias.
    A record's amount therefore depends on the population it is scored with (a scoring run scores the whole eligible
    population of one cutoff at once). Where the column is absent or sums to no positive finite value (BG/NBD could
    not be fitted), the fixed ``fallback`` scale is used.
    """

    column: str
    bias: float
    method: str = "btyd_total"

    @classmethod
    def fit(cls, column: str, anchor: np.ndarray, y: np.ndarray, *, bias: str) -> TotalAnchor | None:
        """From the calibration rows' anchor column and outcomes; None when the anchor has no positive total.

        ``bias``: ``"validation"`` multiplies BG/NBD's total by its bias on these rows; ``"none"`` takes BG/NBD's
        total as it is (bias 1), refitted at each scoring date on all the history before it.
        """
        if bias not in ANCHOR_BIAS:
            raise ValueError(f"Unknown total anchor bias {bias!r}; expected one of {ANCHOR_BIAS}.")
        total = float(np.nansum(np.asarray(anchor, dtype=float)))
        realised = float(np.sum(y))
        if not np.isfinite(total) or total <= 0 or realised <= 0:
            return None
        return cls(column=column, bias=realised / total if bias == "validation" else 1.0)

    def scale(self, anchor: np.ndarray, raw: np.ndarray) -> float | None:
        """The population scale for these rows, or None when the anchor gives no usable total."""
        total = float(np.nansum(np.asarray(anchor, dtype=float)))
        pred = float(np.sum(np.exp(np.asarray(raw, dtype=float))))
        if not np.isfinite(total) or total <= 0 or not np.isfinite(pred) or pred <= 0:
            return None
        return self.bias * total / pred

    def calibrator(self, anchor: np.ndarray | None, raw: np.ndarray, fallback: ExpCalibrator) -> ExpCalibrator:
        s = None if anchor is None else self.scale(anchor, raw)
        return fallback if s is None else ExpCalibrator(scale=s)


Calibrator = SigmoidCalibrator | PlattCalibrator | IsotonicCalibrator | ExpCalibrator

BINARY_METHODS = ("auto", "isotonic", "platt", "none")
#: How a TotalAnchor corrects BG/NBD's total (``evaluation.total_anchor_bias``).
ANCHOR_BIAS = ("validation", "none")


@dataclass(frozen=True)
class CalibrationChoice:
    """The fitted calibrator and the out-of-fold ECE of each candidate that was compared."""

    calibrator: Calibrator
    oof_ece: dict[str, float]


def fit_calibrator(
    raw: np.ndarray,
    y: np.ndarray,
    *,
    kind: str,
    method: str = "auto",
    ece_bins: int = 10,
    seed: int = 0,
) -> CalibrationChoice:
    """Fit the raw -> reported score mapping on calibration rows (never the held-out fold).

    Parameters
    ----------
    raw: booster raw scores of the calibration rows (log-odds, or log-mean for Tweedie).
    y: their outcomes.
    kind: ``"binary"`` or ``"regression"``.
    method: binary only: ``"auto"`` (lower out-of-fold ECE of isotonic and Platt), ``"isotonic"``,
        ``"platt"`` or ``"none"``. Ignored for regression (always :class:`ExpCalibrator`).
    seed: seeds the 2-fold split used by ``"auto"``.
    """
    raw = np.asarray(raw, dtype=float)
    y = np.asarray(y, dtype=float)
    if kind == "regression":
        return CalibrationChoice(ExpCalibrator.fit(raw, y), {})
    if method not in BINARY_METHODS:
        raise ValueError(f"Unknown calibration method {method!r}; expected one of {BINARY_METHODS}.")
    if method == "none" or len(np.unique(y)) < 2:
        return CalibrationChoice(SigmoidCalibrator(), {})
    fitters = {"isotonic": IsotonicCalibrator.fit, "platt": PlattCalibrator.fit}
    if method != "auto":
        return CalibrationChoice(fitters[method](raw, y), {})
    rng = np.random.default_rng(seed)
    fold = rng.permutation(len(y)) % 2
    oof: dict[str, float] = {"none": expected_calibration_error(y, _sigmoid(raw), n_bins=ece_bins)}
    for name, fit in fitters.items():
        pred = np.empty_like(raw)
        ok = True
        for k in (0, 1):
            tr, te = fold != k, fold == k
            if len(np.unique(y[tr])) < 2:
                ok = False
                break
            pred[te] = fit(raw[tr], y[tr]).transform(raw[te])
        oof[name] = expected_calibration_error(y, pred, n_bins=ece_bins) if ok else float("inf")
    best = min(("isotonic", "platt"), key=lambda m: oof[m])
    return CalibrationChoice(fitters[best](raw, y), oof)
