"""Support features (`sup__`): an account's tickets as known just before T (tickets table, optional)."""
from __future__ import annotations

import numpy as np
import pandas as pd

from features._context import Columns, Query, window_phrase
from features._events import (
    NAT,
    US_PER_DAY,
    EventIndex,
    PrefixSum,
    days_between,
    entity_codes,
    last_before,
    require_columns,
    to_us,
)


def support_features(tickets: pd.DataFrame, q: Query) -> Columns:
    """Support columns for every spine row (accounts).

    Parameters
    ----------
    tickets : contract tickets frame. A ticket counts from opened_at < T. It is open at T when closed_at is
        null or >= T. Time to close and CSAT are read only from tickets closed before T (a CSAT given after T
        would leak), and a later closed_at never shows.
    q : the spine as arrays.

    Returns
    -------
    Columns prefixed `sup__`: tickets over each window, days since the last ticket, open tickets at T, mean
    days to close, mean and lowest CSAT, share of urgent tickets over the longest window.
    """
    require_columns(tickets, "tickets", ("account_id", "opened_at", "closed_at", "priority", "csat"),
                    "support features")
    cols = Columns("sup")
    n = len(q.entities)
    g = entity_codes(tickets["account_id"], q.entities)
    opened = to_us(tickets["opened_at"], what="tickets.opened_at")
    closed = to_us(tickets["closed_at"], what="tickets.closed_at")
    urgent = (tickets["priority"] == "urgent").fillna(False).to_numpy(dtype=bool)
    csat = tickets["csat"].to_numpy(dtype=np.float64, na_value=np.nan)

    c, t = q.codes, q.t
    op = EventIndex.build(g, opened, n)
    urgent_idx = EventIndex.build(np.where(urgent, g, -1), opened, n)
    at_t = op.position(c, t)
    for w in q.windows_days:
        cols.num(f"tickets_{w}d", at_t - op.position(c, t - w * US_PER_DAY), f"Support tickets {window_phrase(w)}",
                 "count")
    cols.num("days_since_ticket", days_between(t, last_before(op, c, at_t)), "Days since last support ticket", "days")

    # Closed before T: opened before T too (closed_at >= opened_at), so open at T = opened before T - closed before T.
    cl = EventIndex.build(np.where(closed != NAT, g, -1), closed, n)
    cl_t = cl.position(c, t)
    n_closed = cl_t - cl.start(c)
    cols.num("open_tickets", (at_t - op.start(c)) - n_closed, "Open support tickets", "count")
    duration = np.where(closed != NAT, (closed - opened) / US_PER_DAY, 0.0)
    dur_sum = PrefixSum(cl, duration).upto(c, cl_t)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols.num("days_to_close", np.where(n_closed > 0, dur_sum / n_closed, np.nan),
                 "Average days to close a support ticket", "days")

    rated = (closed != NAT) & ~np.isnan(csat)
    rated_idx = EventIndex.build(np.where(rated, g, -1), closed, n)
    r_t = rated_idx.position(c, t)
    n_rated = r_t - rated_idx.start(c)
    csat_sum = PrefixSum(rated_idx, np.nan_to_num(csat)).upto(c, r_t)
    # Lowest score: the smallest s with a score-s ticket among them (CSAT is 1..5), via one running count per score.
    lowest = np.full(len(c), np.nan)
    for s in (5, 4, 3, 2, 1):
        s_idx = EventIndex.build(np.where(rated & (np.round(csat) == s), g, -1), closed, n)
        has = s_idx.position(c, t) > s_idx.start(c)
        lowest = np.where(has, float(s), lowest)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols.num("csat_mean", np.where(n_rated > 0, csat_sum / n_rated, np.nan), "Average satisfaction score (1-5)",
                 "score")
    cols.num("csat_min", lowest, "Lowest satisfaction score (1-5)", "score")

    w = max(q.windows_days)
    lo = op.position(c, t - w * US_PER_DAY)
    n_w = at_t - lo
    n_urg = urgent_idx.position(c, t) - urgent_idx.position(c, t - w * US_PER_DAY)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols.num(f"urgent_share_{w}d", np.where(n_w > 0, n_urg / n_w, np.nan),
                 f"Share of urgent tickets {window_phrase(w)}", "share")
    return cols
