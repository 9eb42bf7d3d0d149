"""Labels: what happens to a spine row's entity in the window [cutoff_ts, cutoff_ts + horizon).

Labels read only the label window (an event exactly at the cutoff is in it); nothing dated before the cutoff
changes a label, except the state that the window starts from (a subscription that began before T and still
runs at T covers the start of the window).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from features._events import (
    NAT,
    US_PER_DAY,
    Coverage,
    EventIndex,
    entity_codes,
    range_sum,
    require_columns,
    require_table,
    to_us,
)
from features._context import spine_arrays
from features.errors import InvalidInputError, UnknownOptionError

LABELS: tuple[str, ...] = ("churn", "clv_margin", "reaches_sql", "won")


def _completed_orders(tables: dict[str, pd.DataFrame], index: pd.Index, needed_for: str) -> tuple[EventIndex, pd.DataFrame]:
    orders = require_table(tables, "orders", needed_for)
    require_columns(orders, "orders", ("account_id", "ordered_at", "status", "gross_margin"), needed_for)
    completed = (orders["status"] == "completed").fillna(False).to_numpy(dtype=bool)
    g = np.where(completed, entity_codes(orders["account_id"], index), -1)
    return EventIndex.build(g, to_us(orders["ordered_at"], what="orders.ordered_at"), len(index)), orders


def make_labels(tables: dict[str, pd.DataFrame], spine: pd.DataFrame, label: str, horizon_days: int) -> pd.Series:
    """The label of every spine row, from the window [cutoff_ts, cutoff_ts + horizon_days).

    Parameters
    ----------
    tables : the extract (canonical frames); not modified.
    spine : entity_id, cutoff_ts rows (from `features.spine.build_spine`); not modified.
    label :
        - "churn" (accounts): with a subscriptions table, 1 when the account is not covered by a subscription at
          some instant of the window (a plan change — one subscription ends and the next starts at the same
          instant — is not churn); without one, 1 when it places no completed order in the window.
        - "clv_margin" (accounts): sum of gross_margin of completed orders in the window (0.0 when none).
        - "reaches_sql" (leads): 1 when sql_at falls in the window.
        - "won" (leads): 1 when won_at falls in the window.
    horizon_days : window length in days (> 0).

    Returns
    -------
    Series aligned to the spine (same index, same order), named `label`: int8 0/1, or float64 for clv_margin.
    The caller must choose cutoffs whose window has closed (cutoff + horizon <= as_of; see
    `features.spine.training_cutoffs`), or recent rows read as "nothing happened".
    """
    if label not in LABELS:
        raise UnknownOptionError(f"label={label!r} is not known; possible values are {list(LABELS)}.")
    if not isinstance(horizon_days, (int, np.integer)) or horizon_days <= 0:
        raise InvalidInputError(f"horizon_days={horizon_days!r}; expected a positive integer number of days.")
    index, codes, t = spine_arrays(spine)
    end = t + int(horizon_days) * US_PER_DAY

    if label == "churn":
        subs = tables.get("subscriptions")
        if subs is not None:
            require_columns(subs, "subscriptions", ("account_id", "started_at", "ended_at"), "the churn label")
            cov = Coverage.build(entity_codes(subs["account_id"], index), to_us(subs["started_at"]),
                                 to_us(subs["ended_at"]), len(index))
            values = (~cov.covers(codes, t, end)).astype(np.int8)
        else:
            idx, _ = _completed_orders(tables, index, "the churn label without subscriptions")
            values = (idx.count(codes, t, end) == 0).astype(np.int8)
    elif label == "clv_margin":
        idx, orders = _completed_orders(tables, index, "the clv_margin label")
        margin = orders["gross_margin"].to_numpy(dtype=np.float64, na_value=np.nan)
        values = range_sum(idx, margin, idx.position(codes, t), idx.position(codes, end))
    else:
        leads = require_table(tables, "leads", f"the {label} label")
        col = "sql_at" if label == "reaches_sql" else "won_at"
        require_columns(leads, "leads", ("lead_id", col), f"the {label} label")
        pos = pd.Index(leads["lead_id"]).get_indexer(spine["entity_id"])
        at = to_us(leads[col], what=f"leads.{col}")
        at = np.where(pos >= 0, at[np.maximum(pos, 0)], NAT) if len(at) else np.full(len(pos), NAT)
        values = ((at != NAT) & (at >= t) & (at < end)).astype(np.int8)
    return pd.Series(values, index=spine.index.copy(), name=label)
