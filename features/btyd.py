"""BG/NBD and Gamma-Gamma ("buy till you die"): the pure maths, and the `btyd__` feature family built from it.

References: Fader, Hardie & Lee (2005), "Counting your customers the easy way: an alternative to
the Pareto/NBD model", Marketing Science 24(2) (BG/NBD, eqs. 6, 10 and 11); Fader, Hardie & Lee (2005),
"RFM and CLV: using iso-value curves for customer base analysis", JMR 42(4) and Fader & Hardie,
"The Gamma-Gamma model of monetary value" (2013 note).

Inputs per customer: ``x`` repeat transactions (purchase days after the first), ``t_x`` time of the
last purchase since the first, ``T`` time from the first purchase to the cutoff (any time unit, the
same for all three; :func:`rfm_summary` uses weeks), ``zbar`` mean value of the repeat transactions.

Fits run on the distinct (x, t_x, T) triples weighted by how many customers share them (the likelihood is a sum
over customers, so this is the same maximum at a fraction of the cost). Pure numpy/pandas/scipy: no I/O, no clock.
``models.btyd`` (the CLV baseline) calls the same :func:`btyd_at_cutoff` as the feature family.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1

from features._context import Columns, Query
from features._events import require_columns, us_to_ts
from features.errors import BTYDFitError, InvalidInputError

log = logging.getLogger("crmscore.features")
WEEK = pd.Timedelta(days=7)
# Four BG/NBD parameters from fewer customers are no estimate (and such fits wander for seconds): the features of
# a cutoff with fewer customers before it are NaN, with the reason logged.
MIN_FIT_CUSTOMERS = 20
# Below this mean dropout probability per purchase, a / (a + b), BG/NBD is the NBD model (nobody drops out) and eq. 10
# loses every digit to cancellation ((a + b + x - 1) / (a - 1) ~ -b times a difference ~ 1/b): Online Retail's fit at
# 2010-05-07 (a 6e-17, b 9.6e10) gave -4e11 expected purchases. There the NBD limit is exact to this order.
NO_DROPOUT = 1e-9


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

    def p_alive(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """P(still active at T | x, t_x, T) (FHL 2005 eq. 11); 1 for a customer with no repeat purchase."""
        x, t_x, T = _arrays(x, t_x, T)
        odds = np.where(x > 0, self.a / np.where(x > 0, self.b + x - 1, 1.0), 0.0)
        return 1.0 / (1.0 + odds * ((self.alpha + T) / (self.alpha + t_x)) ** (self.r + x))


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


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray,
                         weights: np.ndarray | None = None) -> float:
    """Total BG/NBD log-likelihood (FHL 2005 eq. 6) at ``params = (r, alpha, a, b)``; ``weights`` count customers."""
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(x > 0, np.log(a) - np.log(np.where(x > 0, b + x - 1, 1.0))
                      - (r + x) * np.log(alpha + t_x), -np.inf)
    ll = a1 + a2 + np.logaddexp(a3, a4)
    return float(np.sum(ll if weights is None else weights * ll))


def _fit(neg_ll, start: np.ndarray, what: str) -> tuple[np.ndarray, float]:
    # Optimise log-parameters so every parameter stays positive: L-BFGS-B (numerical gradient), and when it does
    # not report convergence, Nelder-Mead from its end point (bounded work) polished by L-BFGS-B again.
    with np.errstate(all="ignore"):
        best = minimize(neg_ll, np.log(start), method="L-BFGS-B")
        if not best.success or not np.isfinite(best.fun):
            nm = minimize(neg_ll, best.x if np.all(np.isfinite(best.x)) else np.log(start), method="Nelder-Mead",
                          options={"maxiter": 1000, "xatol": 1e-8, "fatol": 1e-8})
            polish = minimize(neg_ll, nm.x, method="L-BFGS-B")
            best = min((best, nm, polish), key=lambda res: res.fun if np.isfinite(res.fun) else np.inf)
    if not np.isfinite(best.fun) or best.fun >= 1e300 or not np.all(np.isfinite(best.x)):
        raise BTYDFitError(f"{what} fit did not converge (log-likelihood {-best.fun}); check the inputs "
                           "(x >= 0, 0 <= t_x <= T, T > 0).")
    return np.exp(best.x), -float(best.fun)


def _distinct(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct rows of the stacked columns and how many times each occurs (the sufficient statistics)."""
    rows, counts = np.unique(np.column_stack(cols), axis=0, return_counts=True)
    return [rows[:, i] for i in range(rows.shape[1])], counts.astype(float)


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> BGNBDFit:
    """Maximum-likelihood BG/NBD on one row per customer. Raises BTYDFitError on bad inputs."""
    x, t_x, T = _arrays(x, t_x, T)
    if len(x) == 0:
        raise BTYDFitError("BG/NBD needs at least one customer; got none.")
    bad = ~np.isfinite(x + t_x + T) | (x < 0) | (t_x < 0) | (t_x > T + 1e-9) | (T <= 0) | ((x == 0) & (t_x > 0))
    if bad.any():
        raise BTYDFitError(f"BG/NBD inputs invalid for {int(bad.sum())} customers: need x >= 0, "
                           "0 <= t_x <= T, T > 0 and t_x = 0 when x = 0.")
    if not (x > 0).any():
        raise BTYDFitError(f"BG/NBD needs at least one repeat buyer; none of the {len(x)} customers bought twice.")
    (ux, ut, uT), w = _distinct(x, t_x, T)

    def neg(logp: np.ndarray) -> float:
        v = -bgnbd_log_likelihood(np.exp(logp), ux, ut, uT, w)
        return v if np.isfinite(v) else 1e300

    (r, alpha, a, b), ll = _fit(neg, np.array([0.5, max(float(T.mean()), 1.0), 1.0, 1.0]), "BG/NBD")
    return BGNBDFit(r=float(r), alpha=float(alpha), a=float(a), b=float(b), log_likelihood=ll)


def bgnbd_conditional_expected(fit: BGNBDFit, t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """E[Y(t) | x, t_x, T]: expected transactions in the next ``t`` time units (FHL 2005 eq. 10)."""
    x, t_x, T = _arrays(x, t_x, T)
    r, alpha, a, b = fit.r, fit.alpha, fit.a, fit.b
    if a / (a + b) < NO_DROPOUT:
        # No dropout: a gamma-Poisson buyer, posterior mean rate (r + x) / (alpha + T).
        return (r + x) / (alpha + T) * t
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
    g = daily.groupby("account_id")
    first_day = g["day"].min()
    last_day = g["day"].max()
    x = g["is_repeat"].sum().astype(float)
    rep = daily[daily["is_repeat"]].groupby("account_id")[value_column].mean()
    out = pd.DataFrame({
        "x": x,
        "t_x": (last_day - first_day) / WEEK,
        "T": (cutoff_ts.floor("D") - first_day) / WEEK,
        "zbar": rep.reindex(x.index),
    })
    out.index.name = "account_id"
    return out


@dataclass(frozen=True)
class BTYDAtCutoff:
    """BG/NBD + Gamma-Gamma fitted on the orders before one cutoff, and the summary of every customer it covers.

    ``summary`` holds the customers with a completed order before the cutoff and T > 0 (x, t_x, T, zbar);
    ``spend`` their expected margin per purchase (Gamma-Gamma, or the mean repeat margin when fewer than 3 repeat
    buyers have a positive one); ``gamma_gamma`` is None in that case.
    """

    summary: pd.DataFrame
    bgnbd: BGNBDFit
    gamma_gamma: GammaGammaFit | None
    spend: np.ndarray

    def expected_purchases(self, days: float) -> np.ndarray:
        s = self.summary
        return np.asarray(self.bgnbd.expected_transactions(days / 7.0, s["x"], s["t_x"], s["T"]), dtype=float)

    def p_alive(self) -> np.ndarray:
        s = self.summary
        return np.asarray(self.bgnbd.p_alive(s["x"], s["t_x"], s["T"]), dtype=float)


def btyd_summary(orders: pd.DataFrame, cutoff_ts: pd.Timestamp) -> pd.DataFrame:
    """:func:`rfm_summary` of the customers a fit at ``cutoff_ts`` covers (T > 0), indexed by account_id (sorted).

    Each row depends only on that account's own orders, so the summaries of disjoint sets of accounts, concatenated
    and sorted by account_id, equal the summary of their union: the bucket-local half of a fit.
    """
    summ = rfm_summary(orders, cutoff_ts)
    return summ[summ["T"] > 0]


@dataclass(frozen=True)
class BTYDModel:
    """The fitted half of :class:`BTYDAtCutoff`: what a cutoff's fit on the whole population leaves to apply.

    ``fallback_spend`` is the margin per purchase every customer gets when ``gamma_gamma`` is None (too few repeat
    buyers with a positive margin). Applied to any customers' summary (:meth:`at`) it gives each of them exactly the
    values the fit on all customers gives them.
    """

    bgnbd: BGNBDFit
    gamma_gamma: GammaGammaFit | None
    fallback_spend: float

    def at(self, summary: pd.DataFrame) -> BTYDAtCutoff:
        if self.gamma_gamma is not None:
            spend = self.gamma_gamma.expected_spend(summary["x"], summary["zbar"].clip(lower=0))
        else:
            spend = np.full(len(summary), self.fallback_spend)
        return BTYDAtCutoff(summary=summary, bgnbd=self.bgnbd, gamma_gamma=self.gamma_gamma,
                            spend=np.asarray(spend, dtype=float))


def fit_btyd(summary: pd.DataFrame, *, min_customers: int = 1) -> BTYDModel | None:
    """BG/NBD and Gamma-Gamma fitted on a :func:`btyd_summary` (every customer of the population, sorted by id).

    Returns None when the summary is empty; raises BTYDFitError when the fit cannot run or fewer than
    ``min_customers`` customers are there to fit on.
    """
    if summary.empty:
        return None
    if len(summary) < min_customers:
        raise BTYDFitError(f"{len(summary)} customers bought before the cutoff; the fit needs at least "
                           f"{min_customers}.")
    bg = fit_bgnbd(summary["x"], summary["t_x"], summary["T"])
    rep = summary[(summary["x"] > 0) & (summary["zbar"] > 0)]
    gg = fit_gamma_gamma(rep["x"], rep["zbar"]) if len(rep) >= 3 else None
    # Too few repeat buyers to fit a spend distribution: the mean observed margin per day of purchase.
    fallback = float(np.nanmean(summary["zbar"])) if summary["zbar"].notna().any() else 0.0
    return BTYDModel(bgnbd=bg, gamma_gamma=gg, fallback_spend=fallback)


def btyd_at_cutoff(orders: pd.DataFrame, cutoff_ts: pd.Timestamp, *, min_customers: int = 1) -> BTYDAtCutoff | None:
    """Fit BG/NBD and Gamma-Gamma on the completed orders strictly before ``cutoff_ts`` (all accounts in ``orders``).

    Returns None when no account has a purchase before the cutoff; raises BTYDFitError when the fit cannot run or
    fewer than ``min_customers`` customers (with T > 0) are there to fit on.
    The first purchase is not a repeat transaction; accounts whose repeat mean margin is not positive are left out
    of the Gamma-Gamma fit and use its formula with zbar clipped at 0.
    """
    summ = btyd_summary(orders, cutoff_ts)
    model = fit_btyd(summ, min_customers=min_customers)
    return None if model is None else model.at(summ)


def _values(fit: BTYDAtCutoff, horizons: Sequence[int]) -> dict[str, np.ndarray]:
    return {"p_alive": fit.p_alive(), "spend": fit.spend, **{f"n{w}": fit.expected_purchases(w) for w in horizons}}


def feature_fit(summary: pd.DataFrame, cutoff_ts: pd.Timestamp, horizons_days: Sequence[int]) -> BTYDModel | None:
    """The fit the ``btyd__`` family uses at one cutoff, from the summary of the whole population, or None.

    None (the cutoff's rows get NaN, the reason logged to ``crmscore.features``) when nobody bought before the
    cutoff, the fit fails, or it gives a non-finite value for any customer of ``summary``. This is the global step of
    the family: a bucketed run fits on the gathered summaries and hands the result to every bucket
    (``build_features(btyd_fits=...)``).
    """
    horizons = tuple(sorted({int(h) for h in horizons_days}))
    try:
        with np.errstate(all="ignore"):
            model = fit_btyd(summary, min_customers=MIN_FIT_CUSTOMERS)
            if model is None:
                return None
            got = _values(model.at(summary), horizons)
    except (BTYDFitError, ArithmeticError, ValueError) as exc:  # a fit that fails never stops the build
        log.warning(f"BG/NBD features at cutoff {cutoff_ts}: NaN for this cutoff ({exc})")
        return None
    bad = [k for k, v in got.items() if not np.isfinite(v).all()]
    if bad:
        log.warning(f"BG/NBD features at cutoff {cutoff_ts}: NaN for this cutoff (the fit "
                    f"{model.bgnbd} gave non-finite {', '.join(bad)})")
        return None
    return model


def _forward_phrase(days: int) -> str:
    return "in the next year" if days == 365 else f"in the next {days} days"


def btyd_features(orders: pd.DataFrame, q: Query, horizons_days: Sequence[int],
                  fits: Mapping[pd.Timestamp, BTYDModel | None] | None = None) -> Columns:
    """BG/NBD + Gamma-Gamma quantities per spine row (accounts), fitted per cutoff on the orders before it.

    Parameters
    ----------
    orders : contract orders frame; only completed orders with ordered_at < cutoff are read.
    q : the spine as arrays; each distinct cutoff gets its own fit on every account's history before it (the
        population the model is fitted on: all accounts of the extract with a purchase before the cutoff).
    fits : the fit of each distinct cutoff of ``q`` (from :func:`feature_fit` on the whole population's summary),
        for a part of the population (a bucket): None = fit here on ``orders``, which must then hold every account.

    Returns
    -------
    Columns prefixed `btyd__`: the chance the customer is still active (P(alive)), expected purchases and expected
    margin over each of ``horizons_days`` (the feature windows and the account tasks' horizons: churn and clv share a
    population, so they share these columns), and the expected margin per purchase. NaN for accounts with no purchase before the cutoff (or a first purchase on its day), and for every
    row of a cutoff whose fit fails or returns non-finite values (the reason is logged to ``crmscore.features``).
    """
    require_columns(orders, "orders", ("account_id", "ordered_at", "gross_margin", "status"), "BG/NBD features")
    n = len(q)
    horizons = tuple(sorted({int(h) for h in horizons_days}))
    if not horizons or horizons[0] <= 0:
        raise InvalidInputError(f"BG/NBD horizons {tuple(horizons_days)!r}; expected one or more positive day counts.")
    p_alive = np.full(n, np.nan)
    spend = np.full(n, np.nan)
    purchases = {w: np.full(n, np.nan) for w in horizons}
    value = {w: np.full(n, np.nan) for w in horizons}
    ids = q.entity_ids.astype("str").to_numpy(dtype=object)
    for t_us in np.unique(q.t):
        rows = np.flatnonzero(q.t == t_us)
        cutoff = us_to_ts(np.array([t_us]))[0]
        summary = btyd_summary(orders, cutoff)
        if fits is None:
            model = feature_fit(summary, cutoff, horizons)
        elif cutoff in fits:
            model = fits[cutoff]
        else:
            raise InvalidInputError(f"no BG/NBD fit given for cutoff {cutoff}; fits cover {sorted(map(str, fits))}.")
        if model is None:
            continue
        with np.errstate(all="ignore"):
            fit = model.at(summary)
            got = _values(fit, horizons)
        pos = fit.summary.index.get_indexer(pd.Index(ids[rows]))
        known = pos >= 0
        at, src = rows[known], pos[known]
        p_alive[at] = got["p_alive"][src]
        spend[at] = got["spend"][src]
        for w in horizons:
            purchases[w][at] = got[f"n{w}"][src]
            value[w][at] = got[f"n{w}"][src] * got["spend"][src]
    cols = Columns("btyd")
    cols.num("p_alive", p_alive, "Chance the customer still buys (BG/NBD P(alive))", "share")
    for w in horizons:
        cols.num(f"expected_purchases_{w}d", purchases[w], f"Expected purchases {_forward_phrase(w)} (BG/NBD)",
                 "count")
    cols.num("expected_order_margin", spend, "Expected margin per purchase (Gamma-Gamma)", "currency")
    for w in horizons:
        cols.num(f"expected_margin_{w}d", value[w], f"Expected margin {_forward_phrase(w)} (BG/NBD x Gamma-Gamma)",
                 "currency")
    return cols
