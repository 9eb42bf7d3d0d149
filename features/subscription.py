"""Subscription features (`sub__`): an account's contracts as they stood just before T (optional table)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from features._context import Columns, Query
from features._events import NAT, NEVER, US_PER_DAY, days_between, entity_codes, require_columns, to_us

MRR_CHANGE_DAYS = 90


def subscription_features(subs: pd.DataFrame, q: Query) -> Columns:
    """Subscription columns for every spine row (accounts).

    Parameters
    ----------
    subs : contract subscriptions frame. A subscription is active at T when started_at < T and (ended_at is
        null or ended_at >= T): only "not ended before T" is read from ended_at, never its later value.
        A plan change is a subscription that starts exactly when another of the same account ends.
    q : the spine as arrays.

    Returns
    -------
    Columns prefixed `sub__`: plan at T (categorical; the active subscription that started last), MRR at T,
    active subscriptions, tenure in days since the first subscription started, plan changes before T, and MRR
    change over the last 90 days (MRR at T minus MRR at T - 90 days).
    """
    require_columns(subs, "subscriptions", ("account_id", "plan", "started_at", "ended_at", "mrr"),
                    "subscription features")
    cols = Columns("sub")
    n = len(q.entities)
    g = entity_codes(subs["account_id"], q.entities)
    start = to_us(subs["started_at"], what="subscriptions.started_at")
    end = to_us(subs["ended_at"], what="subscriptions.ended_at")
    end = np.where(end == NAT, NEVER, end)
    keep = np.flatnonzero((g >= 0) & (start != NAT))
    is_change = _starts_on_an_end(g, start, end)
    order = keep[np.lexsort((start[keep], g[keep]))]
    sg, ss, se = g[order], start[order], end[order]
    mrr = subs["mrr"].to_numpy(dtype=np.float64, na_value=np.nan)[order]
    plan = subs["plan"].to_numpy(dtype=object)[order]
    change = is_change[order]
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(sg, minlength=n) if len(sg) else np.zeros(n, dtype=np.int64), out=offsets[1:])

    # Pair every spine row with each subscription of its account (accounts hold a handful), all at once.
    c, t = q.codes, q.t
    nq = len(c)
    first = offsets[c]
    lengths = offsets[c + 1] - first
    row = np.repeat(np.arange(nq), lengths)
    row_start = np.cumsum(lengths) - lengths
    pos = np.repeat(first, lengths) + (np.arange(len(row)) - np.repeat(row_start, lengths))
    tr, s_, e_ = t[row], ss[pos], se[pos]
    started = s_ < tr
    active = started & (e_ >= tr)
    t90 = tr - MRR_CHANGE_DAYS * US_PER_DAY
    active90 = (s_ < t90) & (e_ >= t90)

    mrr_t = np.bincount(row, weights=np.where(active, mrr[pos], 0.0), minlength=nq).astype(np.float64)
    mrr_90 = np.bincount(row, weights=np.where(active90, mrr[pos], 0.0), minlength=nq).astype(np.float64)
    n_active = np.bincount(row, weights=active, minlength=nq).astype(np.int64)
    n_started = np.bincount(row, weights=started, minlength=nq).astype(np.int64)
    n_changes = np.bincount(row, weights=started & change[pos], minlength=nq).astype(np.int64)

    # Rows are in start order within a spine row, so the last active one is the latest started.
    current = np.full(nq, None, dtype=object)
    act = np.flatnonzero(active)
    if len(act):
        r = row[act]
        last = np.ones(len(act), dtype=bool)
        last[:-1] = r[1:] != r[:-1]
        current[r[last]] = plan[pos[act[last]]]
    first_start = np.where(n_started > 0, ss[np.minimum(first, max(len(ss) - 1, 0))] if len(ss) else NAT, NAT)

    cols.cat("plan", current, "Current plan")
    cols.num("mrr", mrr_t, "Monthly recurring revenue", "currency")
    cols.num("active_subscriptions", n_active, "Active subscriptions", "count")
    cols.num("tenure_days", days_between(t, first_start), "Days since the first subscription started", "days",
             grows_with_time=True)
    cols.num("plan_changes", n_changes, "Plan changes so far", "count")
    cols.num("mrr_change_90d", mrr_t - mrr_90, "Change in monthly recurring revenue over the last 90 days",
             "currency")
    return cols


def _starts_on_an_end(g: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """True for subscriptions that start exactly when another subscription of the same account ends."""
    ends = pd.MultiIndex.from_arrays([g[end != NEVER], end[end != NEVER]])
    return np.asarray(pd.MultiIndex.from_arrays([g, start]).isin(ends), dtype=bool) & (g >= 0)
