"""BG/NBD and Gamma-Gamma ("buy till you die") by maximum likelihood with scipy.

References: Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to
the Pareto/NBD model", Marketing Science 24(2) (BG/NBD, eqs. 6 and 10); Fader, Hardie & Lee (2005),
"RFM and CLV: using iso-value curves for customer base analysis", JMR 42(4) and Fader & Hardie,
"The Gamma-Gamma model of monetary value" (2013 note).

Inputs per customer: ``x`` repeat transactions (purchase days after the first), ``t_x`` time of the
last purchase since the first, ``T`` time from the first purchase to the cutoff (any time unit, the
same for all three; :func:`btyd_clv` uses weeks), ``zbar`` mean value of the repeat transactions.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

from models.errors import BTYDFitError


@dataclass(frozen=True)
class BGNBDFit:
    """Fitted BG/NBD parameters and the maximised log-likelihood."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float

    def expected_transactions(self, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """Conditional expected number of transactions in ``(T, T + t]`` given (x, t_x, T) (FHL 2005 eq. 10)."""
        return bgnbd_conditional_expected(self, t, x, t_x, T)


@dataclass(frozen=True)
class GammaGammaFit:
    """Fitted Gamma-Gamma parameters (spend per transaction) and the maximised log-likelihood."""

    p: float
    q: float
    v: float
    log_likelihood: float

    def expected_spend(self, x: np.ndarray, zbar: np.ndarray) -> np.ndarray:
        """E[Z | x, zbar] = (p (v + x zbar)) / (p x + q - 1); with x = 0 it is the population mean p v / (q - 1)."""
        x = np.asarray(x, dtype=float)
        zbar = np.nan_to_num(np.asarray(zbar, dtype=float))
        return self.p * (self.v + x * zbar) / (self.p * x + self.q - 1)


def _arrays(*cols: object) -> list[np.ndarray]:
    return [np.asarray(c, dtype=float) for c in cols]


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> float:
    """Total BG/NBD log-likelihood (FHL 2005 eq. 6) at ``params = (r, alpha, a, b)``."""
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.where(x > 0, b + x - 1, 1.0))
                      - (r + x) * np.log(alpha + t_x), -np.inf)
    return float(np.sum(a1 + a2 + np.logaddexp(a3, a4)))


def _fit(neg_ll, start: np.ndarray, what: str) -> tuple[np.ndarray, float]:
    # Optimise log-parameters so every parameter stays positive; Nelder-Mead then a polish by L-BFGS-B.
    res = minimize(neg_ll, np.log(start), method="Nelder-Mead", options={"maxiter": 20000, "xatol": 1e-8,
                                                                          "fatol": 1e-8})
    res2 = minimize(neg_ll, res.x, method="L-BFGS-B")
    best = res2 if res2.fun <= res.fun else res
    if not np.isfinite(best.fun):
        raise BTYDFitError(f"{what} fit did not converge (log-likelihood {-best.fun}); check the inputs "
                           "(x >= 0, 0 <= t_x <= T, T > 0).")
    return np.exp(best.x), -float(best.fun)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BGNBDFit:
    """Maximum-likelihood BG/NBD on one row per customer. Raises BTYDFitError on bad inputs."""
    x, t_x, T = _arrays(x, t_x, T)
    if len(x) == 0:
        raise BTYDFitError("BG/NBD needs at least one customer; got none.")
    bad = (x < 0) | (t_x < 0) | (t_x > T + 1e-9) | (T <= 0) | ((x == 0) & (t_x > 0))
    if bad.any():
        raise BTYDFitError(f"BG/NBD inputs invalid for {int(bad.sum())} customers: need x >= 0, "
                           "0 <= t_x <= T, T > 0 and t_x = 0 when x = 0.")

    def neg(logp: np.ndarray) -> float:
        v = -bgnbd_log_likelihood(np.exp(logp), x, t_x, T)
        return v if np.isfinite(v) else 1e300

    (r, alpha, a, b), ll = _fit(neg, np.array([0.5, max(float(T.mean()), 1.0), 1.0, 1.0]), "BG/NBD")
    return BGNBDFit(r=float(r), alpha=float(alpha), a=float(a), b=float(b), log_likelihood=ll)


def bgnbd_conditional_expected(fit: BGNBDFit, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected transactions in the next ``t`` time units (FHL 2005 eq. 10)."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = fit.r, fit.alpha, fit.a, fit.b
    z = t / (alpha + T + t)
    num = (a + b + x - 1) / (a - 1) * (
        1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(r + x, b + x, a + b + x - 1, z))
    den = 1 + (x > 0) * a / np.where(x > 0, b + x - 1, 1.0) * ((alpha + T) / (alpha + t_x)) ** (r + x)
    return num / den


def gamma_gamma_log_likelihood(params: np.ndarray, x: np.ndarray, zbar: np.ndarray) -> float:
    """Total Gamma-Gamma log-likelihood of the mean spend ``zbar`` over ``x`` transactions (x > 0, zbar > 0)."""
    p, q, v = params
    px = p * x
    return float(np.sum(gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
                        + (px - 1) * np.log(zbar) + px * np.log(x) - (px + q) * np.log(x * zbar + v)))


def fit_gamma_gamma(x: np.ndarray, zbar: np.ndarray) -> GammaGammaFit:
    """Maximum-likelihood Gamma-Gamma on repeat buyers (``x > 0`` and ``zbar > 0``; other rows are rejected)."""
    x, zbar = _arrays(x, zbar)
    bad = (x <= 0) | ~(zbar > 0)
    if bad.any():
        raise BTYDFitError(f"Gamma-Gamma takes repeat buyers with positive mean spend only; {int(bad.sum())} "
                           "rows have x <= 0 or zbar <= 0 (filter them first).")
    if len(x) < 3:
        raise BTYDFitError(f"Gamma-Gamma needs at least 3 repeat buyers; got {len(x)}.")

    def neg(logp: np.ndarray) -> float:
        v = -gamma_gamma_log_likelihood(np.exp(logp), x, zbar)
        return v if np.isfinite(v) else 1e300

    (p, q, v), ll = _fit(neg, np.array([1.0, 2.0, max(float(zbar.mean()), 1.0)]), "Gamma-Gamma")
    return GammaGammaFit(p=float(p), q=float(q), v=float(v), log_likelihood=ll)


def rfm_summary(orders: pd.DataFrame, cutoff_ts: pd.Timestamp, *, value_column: str = "gross_margin") -> pd.DataFrame:
    """Per account, the BTYD summary of completed orders strictly before ``cutoff_ts``, in weeks.

    Orders of one day count as one transaction (their values summed), as in the CDNOW analyses.
    Returns a frame indexed by account_id with x (repeat purchase days), t_x, T (weeks) and zbar
    (mean value of the repeat transactions; NaN when x = 0).
    """
    o = orders[(orders["status"] == "completed") & (orders["ordered_at"] < cutoff_ts)]
    if o.empty:
        return pd.DataFrame(columns=["x", "t_x", "T", "zbar"], index=pd.Index([], name="account_id"))
    day = o["ordered_at"].dt.floor("D")
    daily = (o.assign(day=day).groupby(["account_id", "day"], sort=True)[value_column].sum().reset_index())
    first = daily.groupby("account_id")["day"].transform("min")
    daily["is_repeat"] = daily["day"] > first
    week = pd.Timedelta(days=7)
    g = daily.groupby("account_id")
    first_day = g["day"].min()
    last_day = g["day"].max()
    x = g["is_repeat"].sum().astype(float)
    rep = daily[daily["is_repeat"]].groupby("account_id")[value_column].mean()
    out = pd.DataFrame({
        "x": x,
        "t_x": (last_day - first_day) / week,
        "T": (cutoff_ts.floor("D") - first_day) / week,
        "zbar": rep.reindex(x.index),
    })
    out.index.name = "account_id"
    return out


def btyd_clv(orders: pd.DataFrame, cutoff_ts: pd.Timestamp, horizon_days: int) -> pd.Series:
    """Transactional CLV baseline: expected gross margin per account in ``[cutoff_ts, cutoff_ts + horizon_days)``.

    BG/NBD (repeat transactions) x Gamma-Gamma (margin per transaction), both fitted on completed
    orders before ``cutoff_ts`` (the same information the model sees). Accounts with a first
    purchase on the cutoff day (T = 0) get no forecast; accounts whose repeat mean margin is not
    positive are left out of the Gamma-Gamma fit and use its formula with zbar clipped at 0.
    The first purchase is not a repeat transaction and is not predicted again.

    Parameters
    ----------
    orders: the contract's orders table (account_id, ordered_at UTC, gross_margin, status).
    cutoff_ts: tz-aware UTC cutoff; only orders strictly before it are read.
    horizon_days: the CLV horizon.

    Returns
    -------
    Series named ``btyd_clv`` indexed by account_id (accounts with at least one completed order before
    the cutoff). Reindex to a spine with ``fill_value=0.0`` for accounts without orders.
    """
    summ = rfm_summary(orders, cutoff_ts)
    summ = summ[summ["T"] > 0]
    if summ.empty:
        return pd.Series(dtype=float, name="btyd_clv", index=pd.Index([], name="account_id"))
    bg = fit_bgnbd(summ["x"], summ["t_x"], summ["T"])
    n_tx = bg.expected_transactions(horizon_days / 7.0, summ["x"], summ["t_x"], summ["T"])
    rep = summ[(summ["x"] > 0) & (summ["zbar"] > 0)]
    if len(rep) >= 3:
        gg = fit_gamma_gamma(rep["x"], rep["zbar"])
        spend = gg.expected_spend(summ["x"], summ["zbar"].clip(lower=0))
    else:
        # Too few repeat buyers to fit a spend distribution: the mean observed margin per day of purchase.
        spend = np.full(len(summ), float(np.nanmean(summ["zbar"])) if summ["zbar"].notna().any() else 0.0)
    return pd.Series(np.asarray(n_tx) * np.asarray(spend), index=summ.index, name="btyd_clv")


def btyd_baseline(orders: pd.DataFrame, frame: pd.DataFrame, horizon_days: int) -> pd.Series:
    """:func:`btyd_clv` for every row of a multi-cutoff frame, aligned with it.

    One BG/NBD + Gamma-Gamma fit per distinct ``cutoff_ts`` (on orders before that cutoff); accounts
    with no completed order before their cutoff get 0. Pass the result as
    ``TrainingData.baseline_predictions={"btyd": ...}`` so the clv model is compared with it.

    Parameters
    ----------
    orders: the contract's orders table.
    frame: rows with ``entity_id`` (account_id) and ``cutoff_ts``.
    horizon_days: the CLV horizon.

    Returns
    -------
    Series named ``btyd_clv`` with ``frame``'s index.
    """
    out = pd.Series(0.0, index=frame.index, name="btyd_clv")
    for cutoff, rows in frame.groupby("cutoff_ts", sort=True):
        clv = btyd_clv(orders, pd.Timestamp(cutoff), horizon_days)
        out.loc[rows.index] = clv.reindex(rows["entity_id"].astype(str).to_numpy(), fill_value=0.0).to_numpy()
    return out
