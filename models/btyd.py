"""BG/NBD + Gamma-Gamma ("buy till you die") as the transactional CLV baseline.

The maths (likelihoods, fits, conditional expectations, the RFM summary) lives in :mod:`features.btyd`, which the
`btyd__` feature family uses too: the baseline and the features are the same fit per cutoff. This module keeps the
baseline's shape (a forecast per account, aligned with a training frame) and re-exports the maths for callers.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from features.btyd import (
    BGNBDFit,
    GammaGammaFit,
    bgnbd_conditional_expected,
    bgnbd_log_likelihood,
    btyd_at_cutoff,
    fit_bgnbd,
    fit_gamma_gamma,
    gamma_gamma_log_likelihood,
    rfm_summary,
)

__all__ = ["BGNBDFit", "GammaGammaFit", "bgnbd_conditional_expected", "bgnbd_log_likelihood", "btyd_baseline",
           "btyd_clv", "fit_bgnbd", "fit_gamma_gamma", "gamma_gamma_log_likelihood", "rfm_summary"]


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
    fit = btyd_at_cutoff(orders, cutoff_ts)
    if fit is None:
        return pd.Series(dtype=float, name="btyd_clv", index=pd.Index([], name="account_id"))
    n_tx = fit.expected_purchases(float(horizon_days))
    return pd.Series(np.asarray(n_tx) * fit.spend, index=fit.summary.index, name="btyd_clv")


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
