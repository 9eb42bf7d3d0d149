"""Spines: which (entity, cutoff) rows a task predicts for, and the training cutoffs an extract can support.

A spine row (entity_id, cutoff_ts) means "as seen just before cutoff_ts". Eligibility uses only facts dated
strictly before the cutoff (and the erasure/consent flags, which exclude a record everywhere and always).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

from features._events import (
    NAT,
    US_PER_DAY,
    Coverage,
    EventIndex,
    entity_codes,
    require_columns,
    require_table,
    to_us,
    ts_to_us,
    us_to_ts,
)
from features.errors import InsufficientHistoryError, InvalidInputError, UnknownOptionError

POPULATIONS: tuple[str, ...] = ("active_customers", "open_leads", "sql_leads")
#: Event logs whose earliest row marks where an extract's history begins (see `history_start`).
EVENT_LOGS: dict[str, str] = {"activities": "occurred_at", "orders": "ordered_at", "tickets": "opened_at"}


def normalize_cutoffs(cutoffs: Iterable[pd.Timestamp | str] | pd.Timestamp | str) -> list[pd.Timestamp]:
    """Cutoffs as sorted, de-duplicated tz-aware UTC timestamps (microsecond unit). Naive values are read as UTC."""
    if isinstance(cutoffs, (str, pd.Timestamp)):
        cutoffs = [cutoffs]
    out = sorted({ts_to_us(c, what="cutoff") for c in cutoffs})
    if not out:
        raise InvalidInputError("no cutoffs given; expected at least one UTC timestamp.")
    return list(us_to_ts(np.asarray(out, dtype=np.int64)))


def _eligible_records(frame: pd.DataFrame, table: str, id_col: str) -> pd.DataFrame:
    """Rows that may ever be profiled: consenting and not erased (defence in depth beside crm.privacy)."""
    require_columns(frame, table, (id_col, "created_at", "consent_profiling", "deleted_at"), "a spine")
    consent = frame["consent_profiling"].fillna(False).astype(bool).to_numpy()
    alive = frame["deleted_at"].isna().to_numpy()
    ok = frame.loc[consent & alive]
    if ok[id_col].duplicated().any():
        dup = ok.loc[ok[id_col].duplicated(), id_col].iloc[:3].tolist()
        raise InvalidInputError(f"table {table!r} has duplicated {id_col} values, e.g. {dup}; ids must be unique.")
    return ok


def _cross(ids: np.ndarray, cutoffs_us: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (record row, cutoff) pair: row positions, cutoff times, cutoff order."""
    n, k = len(ids), len(cutoffs_us)
    rows = np.tile(np.arange(n, dtype=np.int64), k)
    cut = np.repeat(cutoffs_us, n)
    return rows, cut, np.repeat(np.arange(k), n)


def build_spine(
    tables: dict[str, pd.DataFrame],
    population: str,
    cutoffs: Iterable[pd.Timestamp | str] | pd.Timestamp | str,
    *,
    churn_lookback_days: int = 365,
) -> pd.DataFrame:
    """Eligible (entity, cutoff) rows of a population.

    Parameters
    ----------
    tables : the extract, table name -> canonical frame (see docs/architecture.md); not modified.
    population : "active_customers" (accounts), "open_leads" or "sql_leads" (leads).
    cutoffs : one or more UTC timestamps T.
    churn_lookback_days : without a subscriptions table, an account is active at T when it has a completed
        order in [T - churn_lookback_days, T).

    Returns
    -------
    DataFrame with columns entity_id (str) and cutoff_ts (datetime64[us, UTC]), one row per eligible
    (entity, cutoff), sorted by cutoff_ts then entity_id, with a fresh RangeIndex.

    Eligibility at T (records that do not consent to profiling or are erased are never included):
    - active_customers: account created_at < T, and, where a subscriptions table exists, a subscription with
      started_at < T and (ended_at null or ended_at >= T) — i.e. not ended before T, so an account whose
      subscription ends exactly at T is active at T (and churns at T); a plan change (one ends and the next
      starts at the same instant) keeps the account active. Without a subscriptions table: a completed order
      in [T - churn_lookback_days, T).
    - open_leads: created_at < T and none of sql_at, won_at, lost_at before T.
    - sql_leads: sql_at < T and neither won_at nor lost_at before T.
    """
    if population not in POPULATIONS:
        raise UnknownOptionError(f"population={population!r} is not known; possible values are {list(POPULATIONS)}.")
    cut_us = np.asarray([ts_to_us(c) for c in normalize_cutoffs(cutoffs)], dtype=np.int64)

    if population == "active_customers":
        accounts = _eligible_records(require_table(tables, "accounts", "the active_customers spine"),
                                     "accounts", "account_id")
        ids = accounts["account_id"].to_numpy()
        rows, t, corder = _cross(ids, cut_us)
        created = to_us(accounts["created_at"], what="accounts.created_at")[rows]
        keep = (created != NAT) & (created < t)
        index = pd.Index(ids)
        codes = rows  # account row position doubles as the entity code
        subs = tables.get("subscriptions")
        if subs is not None:
            require_columns(subs, "subscriptions", ("account_id", "started_at", "ended_at"), "the active_customers spine")
            cov = Coverage.build(entity_codes(subs["account_id"], index), to_us(subs["started_at"]),
                                 to_us(subs["ended_at"]), len(index))
            keep &= cov.active_at(codes, t)
        else:
            if churn_lookback_days <= 0:
                raise InvalidInputError(f"churn_lookback_days={churn_lookback_days}; expected a positive number of days.")
            orders = require_table(tables, "orders", "the active_customers spine without subscriptions")
            require_columns(orders, "orders", ("account_id", "ordered_at", "status"), "the active_customers spine")
            completed = (orders["status"] == "completed").fillna(False).to_numpy(dtype=bool)
            g = np.where(completed, entity_codes(orders["account_id"], index), -1)
            idx = EventIndex.build(g, to_us(orders["ordered_at"]), len(index))
            keep &= idx.count(codes, t - int(churn_lookback_days) * US_PER_DAY, t) > 0
    else:
        leads = _eligible_records(require_table(tables, "leads", f"the {population} spine"), "leads", "lead_id")
        require_columns(leads, "leads", ("sql_at", "won_at", "lost_at"), f"the {population} spine")
        ids = leads["lead_id"].to_numpy()
        rows, t, corder = _cross(ids, cut_us)

        def before(col: str) -> np.ndarray:
            v = to_us(leads[col], what=f"leads.{col}")[rows]
            return (v != NAT) & (v < t)

        closed = before("won_at") | before("lost_at")
        if population == "open_leads":
            keep = before("created_at") & ~before("sql_at") & ~closed
        else:
            keep = before("sql_at") & ~closed

    out = pd.DataFrame({
        "entity_id": pd.array(ids[rows[keep]], dtype="str"),
        "cutoff_ts": us_to_ts(t[keep]),
    })
    return out.sort_values(["cutoff_ts", "entity_id"], kind="stable", ignore_index=True)


def _dated(tables: dict[str, pd.DataFrame], table: str, col: str) -> np.ndarray:
    """The non-missing times of ``table.col`` as int64 microseconds (empty when the table or column is absent)."""
    frame = tables.get(table)
    if frame is None or col not in frame.columns or len(frame) == 0:
        return np.empty(0, dtype=np.int64)
    v = to_us(frame[col], what=f"{table}.{col}")
    return v[v != NAT]


def history_start(tables: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """Earliest event time in the extract's event logs (activities, orders, tickets).

    Accounts' created_at and subscriptions' started_at are not used: a customer of 2012 in an extract whose
    activity and order logs start in 2025 still gives only the history those logs hold. When every log is
    empty, falls back to the earliest leads.created_at / subscriptions.started_at / accounts.created_at.
    """
    def earliest(table: str, col: str) -> int | None:
        v = _dated(tables, table, col)
        return int(v.min()) if len(v) else None

    found = [e for tab, col in EVENT_LOGS.items() if (e := earliest(tab, col)) is not None]
    if not found:
        found = [e for tab, col in (("leads", "created_at"), ("subscriptions", "started_at"),
                                    ("accounts", "created_at")) if (e := earliest(tab, col)) is not None]
    if not found:
        raise InsufficientHistoryError("the extract holds no dated rows at all; there is no history to train on.")
    return us_to_ts(np.asarray([min(found)]))[0]


def history_end(tables: dict[str, pd.DataFrame], *, before: pd.Timestamp) -> pd.Timestamp | None:
    """Latest event time before ``before`` in the extract's event logs (activities, orders, tickets, leads'
    created_at): how far the extract's record reaches. None when no log holds a dated row before ``before``.

    A label window that closes after it cannot be observed in this extract (a stale or partial export), whatever
    the calendar says.
    """
    limit = ts_to_us(before, what="before")
    found = []
    for table, col in (*EVENT_LOGS.items(), ("leads", "created_at")):
        v = _dated(tables, table, col)
        v = v[v < limit]
        if len(v):
            found.append(int(v.max()))
    return us_to_ts(np.asarray([max(found)]))[0] if found else None


def training_cutoffs(
    as_of: pd.Timestamp | str,
    horizon_days: int,
    *,
    count: int = 12,
    step_days: int = 30,
    earliest_ts: pd.Timestamp | str,
    min_history_days: int = 90,
) -> list[pd.Timestamp]:
    """Cutoffs for a training set whose labels are complete by `as_of`.

    Starts at the latest cutoff whose label window closes by `as_of` (cutoff + horizon_days <= as_of) and goes
    back `step_days` at a time, at most `count` cutoffs, never earlier than `earliest_ts + min_history_days`
    (each cutoff keeps that much history for its features). A short extract therefore yields fewer cutoffs
    rather than an error: a year of history with a 180-day horizon, 30-day steps and 90 days of minimum history
    gives 4 cutoffs.

    Returns
    -------
    list of tz-aware UTC timestamps, oldest first.

    Raises
    ------
    InsufficientHistoryError
        when fewer than 2 cutoffs fit; the message says how much history there is and how much is needed.
    """
    for name, value, minimum in (("horizon_days", horizon_days, 1), ("count", count, 1),
                                 ("step_days", step_days, 1), ("min_history_days", min_history_days, 0)):
        if not isinstance(value, (int, np.integer)) or value < minimum:
            raise InvalidInputError(f"{name}={value!r}; expected an integer >= {minimum}.")
    as_of_us = ts_to_us(as_of, what="as_of")
    start_us = ts_to_us(earliest_ts, what="earliest_ts")
    latest = as_of_us - horizon_days * US_PER_DAY
    floor = start_us + min_history_days * US_PER_DAY
    picked = [latest - k * step_days * US_PER_DAY for k in range(count)]
    picked = [c for c in picked if c >= floor]
    if len(picked) < 2:
        have = (as_of_us - start_us) / US_PER_DAY
        need = min_history_days + step_days + horizon_days
        first = us_to_ts(np.asarray([start_us]))[0]
        last = us_to_ts(np.asarray([as_of_us]))[0]
        raise InsufficientHistoryError(
            f"the extract holds {have:.0f} days of history ({first:%Y-%m-%d} to {last:%Y-%m-%d}); "
            f"2 training cutoffs with a {horizon_days}-day horizon, {step_days} days apart and "
            f"{min_history_days} days of history before the first need at least {need} days. "
            "Use a shorter horizon, a smaller step or minimum history, or an extract with more history."
        )
    return list(us_to_ts(np.asarray(sorted(picked), dtype=np.int64)))


__all__: Sequence[str] = ("POPULATIONS", "build_spine", "history_start", "normalize_cutoffs", "training_cutoffs")
