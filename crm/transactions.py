"""Turn a plain purchase log (one row per order line) into a contract extract: accounts, orders, activities.

This is the way in for a business without a CRM: a till or shop export (CDNOW, UCI Online Retail) becomes an
extract that the churn (no subscriptions table: "no completed order in the horizon") and CLV tasks can run on.
"""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd

from crm.errors import CrmError, MissingColumnsError
from crm.extract import conform
from data_contracts.schema import table_schema


class TransactionsError(CrmError):
    """A purchase log that cannot be turned into an extract."""


class UnparseableDateError(TransactionsError, ValueError):
    """A date column holds values that are not dates in the expected format."""


class UnparseableAmountError(TransactionsError, ValueError):
    """An amount or margin column holds values that are not numbers."""


_READERS = (".csv", ".txt", ".tsv", ".dat", ".parquet", ".pq", ".csv.gz", ".txt.gz", ".tsv.gz")


def _sniff_separator(first_line: str) -> str:
    for sep in ("\t", ";", ",", "|"):
        if sep in first_line:
            return sep
    return r"\s+"  # CDNOW-style whitespace-aligned columns


def read_transactions_file(path: str | Path) -> pd.DataFrame:
    """Read a purchase log from csv / txt / tsv (optionally .gz) or parquet.

    Text files are read with every column as text (ids keep leading zeros, dates keep their format); the
    separator is sniffed from the first line (tab, semicolon, comma, pipe, else runs of whitespace).
    Conversion to numbers and dates happens in :func:`transactions_to_extract`.

    Raises
    ------
    TransactionsError if the file is missing or its suffix is not one of the supported ones.
    """
    p = Path(path)
    if not p.is_file():
        raise TransactionsError(f"transactions file {str(p)!r} does not exist")
    name = p.name.lower()
    if name.endswith((".parquet", ".pq")):
        return pd.read_parquet(p)
    if not name.endswith(_READERS):
        raise TransactionsError(f"transactions file {str(p)!r}: unsupported suffix; expected one of {_READERS}")
    opener = gzip.open if name.endswith(".gz") else open
    with opener(p, "rt", encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    sep = _sniff_separator(first.strip("\n"))
    return pd.read_csv(p, sep=sep, dtype=str, keep_default_na=True, encoding_errors="replace",
                       skipinitialspace=sep != r"\s+")


def _as_id(s: pd.Series) -> pd.Series:
    """Ids as text; float ids that are whole numbers (a CustomerID column with gaps) lose their '.0'."""
    if pd.api.types.is_float_dtype(s) and s.dropna().mod(1).eq(0).all():
        s = s.astype("Int64")
    return s.astype("str").where(s.notna(), np.nan).astype("str").str.strip()


def _parse_dates(s: pd.Series, column: str, date_format: str | None) -> pd.Series:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        out = s.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(s):
        out = s.dt.tz_localize("UTC")
    else:
        text = s.astype("str").str.strip()
        fmt = date_format
        if fmt is None and text.dropna().str.fullmatch(r"\d{8}").all() and text.notna().any():
            fmt = "%Y%m%d"  # CDNOW-style YYYYMMDD
        try:
            out = pd.to_datetime(text, format=fmt, utc=True, errors="coerce")
        except (ValueError, TypeError) as exc:
            raise UnparseableDateError(
                f"column {column!r} could not be read as dates with format {fmt!r}: {exc}") from exc
        bad = out.isna() & text.notna()
        if bad.any() and fmt is None:
            # the format was inferred from the first value; a log mixing formats gets a per-value parse
            out = pd.to_datetime(text, format="mixed", utc=True, errors="coerce")
            bad = out.isna() & text.notna()
        if bad.any():
            sample = text[bad].unique()[:3].tolist()
            how = f"format {fmt!r}" if fmt else "an inferred format (pass date_format=...)"
            raise UnparseableDateError(
                f"column {column!r} has {int(bad.sum())} values that are not dates in {how}, e.g. {sample}")
    return out.astype("datetime64[us, UTC]").dt.floor("s")


def _parse_number(s: pd.Series, column: str) -> pd.Series:
    out = pd.to_numeric(s, errors="coerce").astype("float64")
    bad = out.isna() & s.notna()
    if bad.any():
        sample = s[bad].astype(str).unique()[:3].tolist()
        raise UnparseableAmountError(
            f"column {column!r} has {int(bad.sum())} values that are not numbers, e.g. {sample}")
    return out


def transactions_to_extract(df: pd.DataFrame, *, customer_col: str, date_col: str, amount_col: str,
                            margin_col: str | None = None, order_col: str | None = None, margin_rate: float = 1.0,
                            date_format: str | None = None, segment_col: str | None = None,
                            segment: str = "consumer") -> dict[str, pd.DataFrame]:
    """Build contract ``accounts``, ``orders`` and an empty ``activities`` table from a purchase log.

    Parameters
    ----------
    df : one row per order line (or per order); rows without a customer are dropped (anonymous sales).
    customer_col, date_col, amount_col : the customer id, the line's date/time (UTC; naive = UTC) and its value.
    margin_col : the line's gross margin; default ``amount * margin_rate``.
    order_col : lines sharing this value (per customer) form one order; default: one order per customer and day.
    margin_rate : used when ``margin_col`` is None; in [-1, 1] so that margin <= amount.
    date_format : strptime format of ``date_col``; default: YYYYMMDD if all values have 8 digits, else inferred.
    segment_col / segment : the account's segment from a column, else this constant.

    Returns
    -------
    ``{"accounts", "orders", "activities"}`` in canonical dtypes. Orders: one row per (customer, order), dated at its
    first line; an order whose lines sum to a negative amount is ``refunded`` with the absolute amount (and margin
    sign flipped), otherwise ``completed``. Accounts: one per customer, ``created_at`` = first order, consenting.

    Raises
    ------
    MissingColumnsError naming absent columns; UnparseableDateError / UnparseableAmountError naming the column and
    sample values; TransactionsError for an invalid margin_rate or margins above amounts.
    """
    wanted = [c for c in (customer_col, date_col, amount_col, margin_col, order_col, segment_col) if c is not None]
    missing = [c for c in wanted if c not in df.columns]
    if missing:
        raise MissingColumnsError(
            f"the transactions have no column(s) {missing}; available columns: {list(map(str, df.columns))}")
    if margin_col is None and not -1.0 <= float(margin_rate) <= 1.0:
        raise TransactionsError(f"margin_rate={margin_rate}; it must be in [-1, 1] so that gross_margin <= amount")

    cust = _as_id(df[customer_col]).reset_index(drop=True)
    keep = cust.notna() & (cust != "")
    lines = pd.DataFrame({"account_id": cust[keep].reset_index(drop=True)})
    src = df.reset_index(drop=True)[keep.to_numpy()].reset_index(drop=True)
    lines["ts"] = _parse_dates(src[date_col], date_col, date_format)
    lines["amount"] = _parse_number(src[amount_col], amount_col)
    lines["margin"] = (_parse_number(src[margin_col], margin_col) if margin_col is not None
                       else lines["amount"] * float(margin_rate))
    if order_col is not None:
        lines["order_key"] = _as_id(src[order_col]).fillna("")
    else:
        lines["order_key"] = lines["ts"].dt.strftime("%Y%m%d")
    if segment_col is not None:
        lines["segment"] = src[segment_col].astype("str")

    orders = (lines.groupby(["account_id", "order_key"], sort=True, observed=True)
              .agg(ordered_at=("ts", "min"), amount=("amount", "sum"), gross_margin=("margin", "sum"))
              .reset_index())
    negative = orders["amount"] < 0
    orders["status"] = np.where(negative, "refunded", "completed")
    orders.loc[negative, "amount"] = -orders.loc[negative, "amount"]
    orders.loc[negative, "gross_margin"] = -orders.loc[negative, "gross_margin"]
    orders[["amount", "gross_margin"]] = orders[["amount", "gross_margin"]].round(6)
    over = orders["gross_margin"] > orders["amount"] + 1e-6
    if over.any():
        ex = orders.loc[over, ["account_id", "order_key", "amount", "gross_margin"]].head(3).to_dict("records")
        raise TransactionsError(
            f"{int(over.sum())} orders have gross margin above their amount (column {margin_col!r}), e.g. {ex}; "
            "the contract requires gross_margin <= amount")
    # An order number names one order per customer; prefix the customer when the same number serves several
    key_customers = orders.groupby("order_key")["account_id"].transform("nunique")
    shared = (key_customers > 1) | (order_col is None)
    orders["order_id"] = np.where(shared, orders["account_id"] + "-" + orders["order_key"], orders["order_key"])
    orders = orders.sort_values(["ordered_at", "order_id"], kind="stable").reset_index(drop=True)

    first = lines.groupby("account_id", sort=True)["ts"].min()
    accounts = pd.DataFrame({"account_id": first.index, "created_at": first.to_numpy()})
    if segment_col is not None:
        seg = lines.groupby("account_id", sort=True)["segment"].first()
        accounts["segment"] = seg.reindex(first.index).fillna(segment).to_numpy()
    else:
        accounts["segment"] = segment
    accounts["consent_profiling"] = True

    act = table_schema("activities")
    return {
        "accounts": conform(accounts, table_schema("accounts")),
        "orders": conform(orders, table_schema("orders")),
        "activities": conform(pd.DataFrame({c: pd.Series([], dtype=object) for c in act.column_names}), act),
    }
