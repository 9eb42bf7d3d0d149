"""A fingerprint of an extract: per-table row counts and a content hash that auditors link runs to.

The hash covers the contract columns only (extra columns such as PII never enter it), is independent of row
order, and is the same whether the extract was read from SQLite, CSV, Parquet or PostgreSQL: every column is
first normalized by its contract type (timestamps to UTC microseconds, numbers to float64 rounded to 1e-6,
integers to the same numbers, booleans to 0/1, text to Python str), with one null marker per type.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from data_contracts.schema import INPUT_TABLES, table_schema

ALGORITHM = "crmscore-fingerprint-1"
_NULL_TEXT = "\x00null"
_DECIMALS = 6


@dataclass(frozen=True)
class Fingerprint:
    """Row counts and content hashes of an extract's contract tables (absent optional tables are not listed)."""

    row_counts: Mapping[str, int]
    table_hashes: Mapping[str, str]
    hash: str
    algorithm: str = ALGORITHM
    contract_versions: Mapping[str, str] = field(default_factory=dict)

    @property
    def short(self) -> str:
        return self.hash[:12]

    def to_dict(self) -> dict[str, Any]:
        return {"hash": self.hash, "algorithm": self.algorithm, "row_counts": dict(self.row_counts),
                "table_hashes": dict(self.table_hashes), "contract_versions": dict(self.contract_versions)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Fingerprint:
        return cls(row_counts={k: int(v) for k, v in data["row_counts"].items()},
                   table_hashes=dict(data["table_hashes"]), hash=str(data["hash"]),
                   algorithm=str(data.get("algorithm", ALGORITHM)),
                   contract_versions=dict(data.get("contract_versions", {})))


def _as_float(values: pd.Series) -> np.ndarray:
    out = pd.to_numeric(values, errors="coerce").astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
    out = np.round(out, _DECIMALS) + 0.0  # + 0.0 turns -0.0 into 0.0
    out[np.isnan(out)] = np.nan  # one NaN bit pattern, whatever produced the null
    return out


def _normalize(values: pd.Series, logical_type: str) -> pd.Series:
    """One column in a representation that does not depend on the source the extract was read from."""
    try:
        if logical_type == "timestamp":
            ts = values
            if not isinstance(ts.dtype, pd.DatetimeTZDtype):
                if pd.api.types.is_datetime64_dtype(ts.dtype):
                    ts = ts.dt.tz_localize("UTC")  # naive times are UTC by contract
                else:
                    ts = pd.to_datetime(ts, utc=True, format="ISO8601")
            arr = ts.dt.tz_convert("UTC").dt.as_unit("us").to_numpy(dtype="datetime64[us]").view("int64")
            return pd.Series(arr, copy=False)  # NaT is int64 min, the same for every source
        if logical_type in ("number", "integer"):
            return pd.Series(_as_float(values), copy=False)
        if logical_type == "boolean":
            return pd.Series(_as_float(values.astype("boolean").astype("Int8")), copy=False)
    except (ValueError, TypeError):
        pass  # a column of the wrong type still gets a stable hash of its text; column_types reports it
    text = values.astype(object).where(values.notna(), _NULL_TEXT).map(str)
    return pd.Series(text.to_numpy(dtype=object), dtype=object, copy=False)


def hash_table(table: str, frame: pd.DataFrame) -> str:
    """The order-independent content hash of one table's contract columns (hex sha256)."""
    schema = table_schema(table)
    cols = [c for c in schema.columns if c.name in frame.columns]
    digest = hashlib.sha256(f"{ALGORITHM}|{table}|{','.join(c.name for c in cols)}|".encode())
    if cols and len(frame):
        norm = pd.DataFrame({c.name: _normalize(frame[c.name].reset_index(drop=True), c.logical_type) for c in cols})
        rows = np.sort(pd.util.hash_pandas_object(norm, index=False).to_numpy(dtype="uint64"))  # order-free
        digest.update(rows.tobytes())
    digest.update(f"|rows={len(frame)}".encode())
    return digest.hexdigest()


def compute_fingerprint(tables: Mapping[str, pd.DataFrame]) -> Fingerprint:
    """Fingerprint the contract tables of an extract.

    Parameters
    ----------
    tables
        Raw contract frames keyed by table name; tables that are not contract tables are ignored.

    Returns
    -------
    Fingerprint
        Row counts and hashes of the contract tables present, and one hash over all of them.
    """
    counts: dict[str, int] = {}
    hashes: dict[str, str] = {}
    for t in INPUT_TABLES:
        if t in tables:
            counts[t] = int(len(tables[t]))
            hashes[t] = hash_table(t, tables[t])
    overall = hashlib.sha256(
        "|".join(f"{t}:{counts[t]}:{hashes[t]}" for t in INPUT_TABLES if t in hashes).encode()).hexdigest()
    versions = {t: table_schema(t).version for t in INPUT_TABLES}
    return Fingerprint(row_counts=counts, table_hashes=hashes, hash=overall, contract_versions=versions)
