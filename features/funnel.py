"""Funnel features (`funnel__`): where a lead stood in the funnel just before T, from leads' stage timestamps."""
from __future__ import annotations

import numpy as np
import pandas as pd

from features._context import Columns, Query
from features._events import NAT, days_between, require_columns, to_us
from features.firmographic import record_positions, take


def funnel_features(leads: pd.DataFrame, q: Query) -> Columns:
    """Funnel columns for every spine row (leads).

    Parameters
    ----------
    leads : contract leads frame. A stage timestamp counts only when it is before T; won_at, lost_at and
        account_id (outcomes) are never read.
    q : the spine as arrays.

    Returns
    -------
    Columns prefixed `funnel__`: stage at T (new, mql, sql; categorical), days since created, MQL flag and days
    since MQL, days in the current stage, days since SQL.
    """
    require_columns(leads, "leads", ("lead_id", "created_at", "mql_at", "sql_at"), "funnel features")
    cols = Columns("funnel")
    pos = record_positions(leads, "leads", "lead_id", q)
    t = q.t

    def known(col: str) -> np.ndarray:
        v = take(to_us(leads[col], what=f"leads.{col}"), pos, NAT).astype(np.int64)
        return np.where(v < t, v, NAT)  # NAT is the smallest int64, so "< t" keeps it NAT

    created, mql, sql = known("created_at"), known("mql_at"), known("sql_at")
    is_mql, is_sql = mql != NAT, sql != NAT
    stage = np.where(is_sql, "sql", np.where(is_mql, "mql", "new")).astype(object)
    stage_start = np.where(is_sql, sql, np.where(is_mql, mql, created))
    cols.cat("stage", stage, "Funnel stage")
    cols.num("days_since_created", days_between(t, created), "Days since the lead was created", "days",
             grows_with_time=True)
    cols.num("is_mql", is_mql.astype(np.int8), "Marketing-qualified", "flag")
    cols.num("days_since_mql", days_between(t, mql), "Days since marked marketing-qualified", "days",
             grows_with_time=True)
    cols.num("days_in_stage", days_between(t, stage_start), "Days in the current funnel stage", "days")
    cols.num("days_since_sql", days_between(t, sql), "Days since accepted by sales", "days",
             grows_with_time=True)
    return cols


__all__ = ["funnel_features"]
