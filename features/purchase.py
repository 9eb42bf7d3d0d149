"""Purchase features (`buy__`): RFM and order rhythm of an account, from orders placed strictly before T."""
from __future__ import annotations

import numpy as np
import pandas as pd

from features._context import Columns, Query, window_phrase
from features._events import (
    US_PER_DAY,
    EventIndex,
    PrefixSum,
    days_between,
    entity_codes,
    first_before,
    last_before,
    require_columns,
    segmented_cumsum,
    sum_upto,
    to_us,
)


def purchase_features(orders: pd.DataFrame, q: Query) -> Columns:
    """Purchase columns for every spine row (accounts).

    Parameters
    ----------
    orders : contract orders frame; only orders with ordered_at < cutoff are read. Completed orders are
        purchases; refund share compares refunded with completed + refunded orders.
    q : the spine as arrays.

    Returns
    -------
    Columns prefixed `buy__`: orders, revenue and margin over each window and over all history, days since the
    last and the first order, average order value, mean days between orders and their regularity (coefficient
    of variation), refund share.

    Known limit: the contract has no refund date, so an order placed before T and refunded after T shows as
    refunded (the status is the extract's current one).
    """
    require_columns(orders, "orders", ("account_id", "ordered_at", "amount", "gross_margin", "status"),
                    "purchase features")
    cols = Columns("buy")
    n = len(q.entities)
    g = entity_codes(orders["account_id"], q.entities)
    ts = to_us(orders["ordered_at"], what="orders.ordered_at")
    status = orders["status"]
    completed = (status == "completed").fillna(False).to_numpy(dtype=bool)
    refunded = (status == "refunded").fillna(False).to_numpy(dtype=bool)
    idx = EventIndex.build(np.where(completed, g, -1), ts, n)
    amount = PrefixSum(idx, orders["amount"].to_numpy(dtype=np.float64, na_value=np.nan))
    margin = PrefixSum(idx, orders["gross_margin"].to_numpy(dtype=np.float64, na_value=np.nan))

    c, t = q.codes, q.t
    at_t = idx.position(c, t)
    start = idx.start(c)
    for w in q.windows_days:
        lo = idx.position(c, t - w * US_PER_DAY)
        ph = window_phrase(w)
        cols.num(f"orders_{w}d", at_t - lo, f"Orders {ph}", "count")
        cols.num(f"revenue_{w}d", amount.between(c, lo, at_t), f"Revenue {ph}", "currency")
        cols.num(f"margin_{w}d", margin.between(c, lo, at_t), f"Gross margin {ph}", "currency")
    n_orders = at_t - start
    revenue = amount.upto(c, at_t)
    cols.num("orders_total", n_orders, "Orders ever", "count")
    cols.num("revenue_total", revenue, "Revenue ever", "currency")
    cols.num("margin_total", margin.upto(c, at_t), "Gross margin ever", "currency")
    cols.num("days_since_order", days_between(t, last_before(idx, c, at_t)), "Days since last order", "days")
    cols.num("days_since_first_order", days_between(t, first_before(idx, c, at_t)), "Days since first order", "days",
             grows_with_time=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols.num("avg_order_value", np.where(n_orders > 0, revenue / n_orders, np.nan), "Average order value",
                 "currency")

    # Gaps between consecutive orders of an account (0 on its first order, which has no gap).
    gap = np.zeros(len(idx.ts), dtype=np.float64)
    if len(gap) > 1:
        same = idx.groups[1:] == idx.groups[:-1]
        gap[1:] = np.where(same, (idx.ts[1:] - idx.ts[:-1]) / US_PER_DAY, 0.0)
    gap_sum = sum_upto(segmented_cumsum(gap, idx.groups), start, at_t)
    gap_sq = sum_upto(segmented_cumsum(gap * gap, idx.groups), start, at_t)
    n_gaps = np.maximum(n_orders - 1, 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_gap = np.where(n_gaps > 0, gap_sum / n_gaps, np.nan)
        var = np.maximum(np.where(n_gaps > 0, gap_sq / n_gaps - mean_gap * mean_gap, np.nan), 0.0)
        cv = np.where((n_gaps > 1) & (mean_gap > 0), np.sqrt(var) / mean_gap, np.nan)
    cols.num("days_between_orders", mean_gap, "Average days between orders", "days")
    cols.num("order_gap_cv", cv, "Irregularity of the order rhythm (coefficient of variation)", "ratio")

    settled = EventIndex.build(np.where(completed | refunded, g, -1), ts, n)
    n_settled = settled.position(c, t) - settled.start(c)
    ref_idx = EventIndex.build(np.where(refunded, g, -1), ts, n)
    n_ref = ref_idx.position(c, t) - ref_idx.start(c)
    with np.errstate(divide="ignore", invalid="ignore"):
        cols.num("refund_share", np.where(n_settled > 0, n_ref / n_settled, np.nan), "Share of orders refunded",
                 "share")
    return cols
