"""Small pure statistics over counts and scores: PSI and its null p-value, Jensen-Shannon, AUC standard error,
multiple-testing corrections, Wilson intervals, calibration slope and intercept, expected AUC.

Every function takes arrays (no frames, no I/O) and is checked against scipy or hand-worked cases in
tests/unit/test_monitoring_stats.py.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.special import chdtrc
from scipy.stats import norm, rankdata

from models.monitoring.errors import MonitoringInputError

#: Floor on a bin's share inside PSI's logarithm, so that an empty bin (the reference's "missing" bin of a feature
#: that was never missing, or the "unseen" bin) gives a large but finite term.
PSI_EPS = 1e-4


def _shares(counts: Sequence[float] | np.ndarray, what: str) -> np.ndarray:
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or len(c) == 0 or not np.isfinite(c).all() or (c < 0).any():
        raise MonitoringInputError(f"{what} must be a non-empty 1-d array of non-negative counts; "
                                   f"got {c.tolist()[:5]}.")
    total = c.sum()
    if total <= 0:
        raise MonitoringInputError(f"{what} sums to 0; expected at least one counted row.")
    return c / total


def psi_contributions(reference: Sequence[float], current: Sequence[float], *, eps: float = PSI_EPS) -> np.ndarray:
    """Per-bin terms of the population stability index, ``(c - r) * ln(max(c, eps) / max(r, eps))``.

    ``reference`` and ``current`` are counts (or shares) over the same bins, in the same order. Each term is >= 0; a
    bin empty in both contributes 0.
    """
    r = _shares(reference, "reference")
    c = _shares(current, "current")
    if r.shape != c.shape:
        raise MonitoringInputError(f"reference has {len(r)} bins and current {len(c)}; they must share the same bins.")
    return (c - r) * np.log(np.maximum(c, eps) / np.maximum(r, eps))


def psi(reference: Sequence[float], current: Sequence[float], *, eps: float = PSI_EPS) -> float:
    """Population stability index of two count vectors over the same bins (natural log).

    PSI = sum over bins of ``(c_i - r_i) * ln(c_i / r_i)`` with shares r, c; shares are floored at ``eps`` inside the
    logarithm only. It is the symmetrised Kullback-Leibler divergence (Jeffreys) of the binned distributions.
    """
    return float(psi_contributions(reference, current, eps=eps).sum())


def psi_p_value(value: float, n_reference: int, n_current: int, bins: int) -> float:
    """P(PSI >= value) when both samples come from the same distribution.

    Under H0, PSI is approximately ``(1/n_reference + 1/n_current) * chi2(bins - 1)`` (Yurdakul 2018, "Statistical
    properties of population stability index"); ``bins`` counts the bins with a positive reference share (an empty
    reference bin has probability 0 under H0). Returns 1.0 when there is nothing to test (fewer than 2 bins).
    """
    if bins < 2 or n_reference <= 0 or n_current <= 0:
        return 1.0
    scale = 1.0 / n_reference + 1.0 / n_current
    return float(chdtrc(bins - 1, value / scale))  # the chi-square survival function


def psi_null_mean(n_reference: int, n_current: int, bins: int) -> float:
    """Expected PSI when nothing changed, ``(1/n_reference + 1/n_current) * (bins - 1)`` (the mean of the scaled
    chi-square of :func:`psi_p_value`): PSI's small-sample bias, subtracted before a size threshold applies."""
    if bins < 2 or n_reference <= 0 or n_current <= 0:
        return 0.0
    return (1.0 / n_reference + 1.0 / n_current) * (bins - 1)


def jensen_shannon(p: Sequence[float], q: Sequence[float]) -> float:
    """Jensen-Shannon divergence of two count (or share) vectors, in bits (log base 2), so it lies in [0, 1].

    JS = (KL(p || m) + KL(q || m)) / 2 with m = (p + q) / 2 and 0 log 0 = 0. (scipy's
    ``scipy.spatial.distance.jensenshannon(p, q, base=2)`` returns its square root, the JS distance.)
    """
    a = _shares(p, "p")
    b = _shares(q, "q")
    if a.shape != b.shape:
        raise MonitoringInputError(f"p has {len(a)} bins and q {len(b)}; they must share the same bins.")
    m = (a + b) / 2

    def kl(x: np.ndarray) -> float:
        pos = x > 0
        return float((x[pos] * np.log2(x[pos] / m[pos])).sum())

    return (kl(a) + kl(b)) / 2


def auc_standard_error(auc: float, n_pos: int, n_neg: int) -> float:
    """Standard error of a ROC AUC (Hanley & McNeil 1982, Radiology 143:29-36).

    ``SE^2 = (A(1-A) + (n_pos-1)(Q1-A^2) + (n_neg-1)(Q2-A^2)) / (n_pos n_neg)`` with ``Q1 = A/(2-A)`` and
    ``Q2 = 2A^2/(1+A)``. NaN without both classes.
    """
    if n_pos <= 0 or n_neg <= 0 or not np.isfinite(auc):
        return float("nan")
    q1 = auc / (2 - auc)
    q2 = 2 * auc**2 / (1 + auc)
    var = (auc * (1 - auc) + (n_pos - 1) * (q1 - auc**2) + (n_neg - 1) * (q2 - auc**2)) / (n_pos * n_neg)
    return float(np.sqrt(max(var, 0.0)))


def normal_interval(value: float, se: float, level: float, *, lo: float = -np.inf,
                    hi: float = np.inf) -> tuple[float, float]:
    """``value -/+ z * se`` at the two-sided confidence ``level``, clipped to [lo, hi]."""
    z = norm.ppf(0.5 + level / 2)
    return float(max(lo, value - z * se)), float(min(hi, value + z * se))


def _sorted_finite(p_values: Sequence[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(p, an all-NaN result of its shape, the positions of the finite p-values in ascending order)."""
    p = np.asarray(p_values, dtype=np.float64)
    ok = np.flatnonzero(np.isfinite(p))
    return p, np.full(p.shape, np.nan), ok[np.argsort(p[ok], kind="stable")]


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm step-down adjusted p-values (family-wise error control). NaN entries stay NaN and are not counted."""
    p, out, order = _sorted_finite(p_values)
    m = len(order)
    if m == 0:
        return out
    adj = np.maximum.accumulate((m - np.arange(m)) * p[order])
    out[order] = np.minimum(adj, 1.0)
    return out


def benjamini_hochberg(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini-Hochberg step-up adjusted p-values (false discovery rate). NaN entries stay NaN and are not counted."""
    p, out, order = _sorted_finite(p_values)
    m = len(order)
    if m == 0:
        return out
    scaled = p[order] * m / np.arange(1, m + 1)
    out[order] = np.minimum(np.minimum.accumulate(scaled[::-1])[::-1], 1.0)
    return out


CORRECTIONS = {"holm": holm, "bh": benjamini_hochberg}


def adjust_p_values(p_values: Sequence[float], method: str) -> np.ndarray:
    """Adjusted p-values by ``method``: "holm" (family-wise error) or "bh" (false discovery rate)."""
    if method not in CORRECTIONS:
        raise MonitoringInputError(f"correction={method!r}; expected one of {sorted(CORRECTIONS)}.")
    return CORRECTIONS[method](p_values)


def wilson_interval(k: int, n: int, level: float) -> tuple[float, float]:
    """Wilson score interval of a rate k/n at the two-sided confidence ``level`` (NaN, NaN when n == 0)."""
    if n <= 0:
        return float("nan"), float("nan")
    z = norm.ppf(0.5 + level / 2)
    phat = k / n
    centre = (phat + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(phat * (1 - phat) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def auc_from_ranks(y: np.ndarray, ranks: np.ndarray) -> float:
    """ROC AUC from the mid-ranks of the scores (Mann-Whitney U / (n_pos n_neg)); NaN with a single class."""
    pos = y > 0.5
    n1 = int(pos.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    return float((ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def expected_auc(p: np.ndarray, scores: np.ndarray | None = None) -> float:
    """AUC expected if outcomes were Bernoulli(p) (the confidence-based estimate; NannyML's CBPE uses the same ratio).

    ``E[AUC] ~ sum_{i != j} p_i (1 - p_j) [s_i > s_j] / sum_{i != j} p_i (1 - p_j)``, ties counted one half.
    ``scores`` orders the rows (default: ``p`` itself, as for a calibrated score).
    """
    p = np.asarray(p, dtype=np.float64)
    s = p if scores is None else np.asarray(scores, dtype=np.float64)
    if len(p) < 2:
        return float("nan")
    _, group = np.unique(s, return_inverse=True)
    pos_w = np.bincount(group, weights=p)
    neg_w = np.bincount(group, weights=1 - p)
    self_w = np.bincount(group, weights=p * (1 - p))
    neg_below = np.concatenate([[0.0], np.cumsum(neg_w)[:-1]])
    num = (pos_w * neg_below).sum() + 0.5 * (pos_w * neg_w - self_w).sum()
    den = p.sum() * (1 - p).sum() - (p * (1 - p)).sum()
    return float(num / den) if den > 0 else float("nan")


def calibration_slope_intercept(y: np.ndarray, p: np.ndarray, *, max_iter: int = 50) -> tuple[float, float]:
    """Slope and intercept of the logistic recalibration ``logit P(y=1) = a + b logit(p)`` (Cox 1958).

    A calibrated score has slope 1 and intercept 0; slope < 1 means over-confident scores. Fitted by Newton-Raphson;
    (NaN, NaN) with a single class or when the fit does not converge (separation).
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-9, 1 - 1e-9)
    if len(np.unique(y)) < 2:
        return float("nan"), float("nan")
    x = np.column_stack([np.ones_like(p), np.log(p / (1 - p))])

    def loglik(b: np.ndarray) -> float:
        eta = x @ b
        return float((y * eta - np.logaddexp(0, eta)).sum())

    beta = np.array([0.0, 1.0])
    current = loglik(beta)
    for _ in range(max_iter):
        mu = 1 / (1 + np.exp(-np.clip(x @ beta, -500, 500)))
        hess = x.T @ (x * (mu * (1 - mu))[:, None])
        try:
            step = np.linalg.solve(hess, x.T @ (y - mu))
        except np.linalg.LinAlgError:
            return float("nan"), float("nan")
        # step halving keeps Newton from overshooting when the scores are far from calibrated
        for _ in range(30):
            candidate = loglik(beta + step)
            if candidate >= current - 1e-12:
                break
            step = step / 2
        beta, current = beta + step, candidate
        if np.abs(step).max() < 1e-10:
            return float(beta[1]), float(beta[0])
    return float("nan"), float("nan")


def ranks(scores: np.ndarray) -> np.ndarray:
    """Mid-ranks (1-based, ties averaged), the input of :func:`auc_from_ranks`."""
    return rankdata(scores, method="average")
