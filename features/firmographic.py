"""Firmographic features (`firm__`): static attributes of the account or lead record."""
from __future__ import annotations

import numpy as np
import pandas as pd

from features._context import Columns, Query
from features._events import NAT, days_between, require_columns, to_us
from features.errors import InvalidInputError

ACCOUNT_CATEGORICALS: dict[str, str] = {
    "segment": "Customer segment",
    "industry": "Industry",
    "country": "Country",
    "acquisition_channel": "Acquisition channel",
}
LEAD_CATEGORICALS: dict[str, str] = {
    "source": "Lead source",
    "industry": "Industry",
    "job_level": "Job level",
    "country": "Country",
}


def record_positions(frame: pd.DataFrame, table: str, id_col: str, q: Query) -> np.ndarray:
    """Row position in `frame` of each spine row's record (-1 when the record is not there)."""
    ids = frame[id_col]
    if ids.duplicated().any():
        dup = ids[ids.duplicated()].iloc[:3].tolist()
        raise InvalidInputError(f"table {table!r} has duplicated {id_col} values, e.g. {dup}; ids must be unique.")
    # Look up each distinct spine entity once, then spread to the spine's rows (entities repeat across cutoffs).
    lookup = np.asarray(pd.Index(ids).get_indexer(q.entities), dtype=np.int64)
    return lookup[q.codes]


def take_text(column: pd.Series, pos: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Text values at `pos` as a `str` array, missing where pos is -1 (no object round trip)."""
    return column.astype("str").array.take(pos, allow_fill=True)


def take(values: np.ndarray, pos: np.ndarray, missing: object) -> np.ndarray:
    if len(values) == 0:
        return np.full(len(pos), missing, dtype=object if missing is None else np.asarray(values).dtype)
    return np.where(pos >= 0, values[np.maximum(pos, 0)], missing)


def known_positions(frame: pd.DataFrame, table: str, id_col: str, q: Query) -> np.ndarray:
    """Like `record_positions`, but -1 where the record was created at or after the row's cutoff (not known yet)."""
    pos = record_positions(frame, table, id_col, q)
    created = take(to_us(frame["created_at"], what=f"{table}.created_at"), pos, NAT).astype(np.int64)
    return np.where((created != NAT) & (created < q.t), pos, -1)


def account_firmographics(accounts: pd.DataFrame, q: Query) -> Columns:
    """Account attributes for every spine row: segment, industry, country, acquisition channel (categorical),
    acquisition cost and customer tenure in days at T (T - created_at). All missing when the account was
    created at or after T.

    The extract holds only current values of these attributes (no history): an edit made after T shows.
    """
    require_columns(accounts, "accounts", ("account_id", "created_at", *ACCOUNT_CATEGORICALS, "acquisition_cost"),
                    "firmographic features")
    cols = Columns("firm")
    pos = known_positions(accounts, "accounts", "account_id", q)
    for col, label in ACCOUNT_CATEGORICALS.items():
        cols.cat(col, take_text(accounts[col], pos), label)
    cost = accounts["acquisition_cost"].to_numpy(dtype=np.float64, na_value=np.nan)
    cols.num("acquisition_cost", take(cost, pos, np.nan).astype(np.float64), "Cost to acquire", "currency")
    created = take(to_us(accounts["created_at"], what="accounts.created_at"), pos, NAT).astype(np.int64)
    cols.num("tenure_days", days_between(q.t, created), "Days as a customer", "days",
             grows_with_time=True)
    return cols


def lead_firmographics(leads: pd.DataFrame, q: Query) -> Columns:
    """Lead attributes for every spine row: source, industry, job level, country (categorical), company size.
    All missing when the lead was created at or after T."""
    require_columns(leads, "leads", ("lead_id", "created_at", *LEAD_CATEGORICALS, "company_size"),
                    "firmographic features")
    cols = Columns("firm")
    pos = known_positions(leads, "leads", "lead_id", q)
    for col, label in LEAD_CATEGORICALS.items():
        cols.cat(col, take_text(leads[col], pos), label)
    size = leads["company_size"].to_numpy(dtype=np.float64, na_value=np.nan)
    cols.num("company_size", take(size, pos, np.nan).astype(np.float64), "Company size (employees)", "employees")
    return cols
