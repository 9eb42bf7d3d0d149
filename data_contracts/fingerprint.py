"""A fingerprint of an extract: per-table row counts and a content hash that auditors link runs to.

The hash covers the contract columns only (extra columns such as PII never enter it), is independent of row
order, and is the same whether the extract was read from SQLite, CSV, Parquet or PostgreSQL: every column is
first normalized by its contract type (timestamps to UTC microseconds, numbers to float64 rounded to 1e-6,
integers to the same numbers, booleans to 0/1, text to its UTF-8 bytes), with one null marker, then hashed per
row; the table hash is a sha256 over the sorted row hashes.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data_contracts.schema import INPUT_TABLES, table_schema

ALGORITHM = "crmscore-fingerprint-1"
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


_NULL_HASH = np.uint64(0x9E3779B97F4A7C15)
_MIX = np.uint64(0x100000001B3)


_P = np.uint64(0x100000001B3)  # odd multiplier of the polynomial string hash


def _finalize(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer: spreads the polynomial hash over all 64 bits."""
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return h ^ (h >> np.uint64(31))


def _hash_text(values: pd.Series, *, repeated: bool = False) -> np.ndarray:
    """uint64 hash of each value's UTF-8 text, vectorized over the Arrow buffers.

    Hashing a million Python strings one by one (pandas' hash_array) took seconds; this is a polynomial hash
    of the bytes computed with numpy (cumulative sums of byte x position weights, modulo 2**64), then mixed.
    Not cryptographic: the table hash built from it is a sha256 over the sorted row hashes. With ``repeated``
    (a column whose values repeat: a foreign key, a type) each distinct value is hashed once and the hashes are
    taken by the dictionary codes: the same hashes, a fraction of the bytes.
    """
    if not isinstance(values.dtype, pd.StringDtype):
        values = values.astype(object).where(values.notna(), None).map(lambda v: v if v is None else str(v))
    arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):  # e.g. after pd.concat: one contiguous buffer for the offsets below
        arr = arr.combine_chunks()
    if repeated and len(arr):
        enc = pc.dictionary_encode(arr)
        if 2 * len(enc.dictionary) < len(arr):
            # nulls take the code one past the dictionary, where the null marker sits
            codes = pc.fill_null(enc.indices, len(enc.dictionary)).to_numpy(zero_copy_only=False)
            return np.append(_hash_chunks(enc.dictionary), _NULL_HASH)[codes]
    return _hash_chunks(arr)


#: Strings per slice of the byte-level hash: its temporaries (8 bytes per text byte) stay bounded by the slice.
_CHUNK = 1 << 20


def _hash_chunks(arr: pa.LargeStringArray) -> np.ndarray:
    if len(arr) <= _CHUNK:
        return _hash_arrow(arr)
    return np.concatenate([_hash_arrow(arr.slice(i, _CHUNK)) for i in range(0, len(arr), _CHUNK)])


def _hash_arrow(arr: pa.LargeStringArray) -> np.ndarray:
    n = len(arr)
    out = np.full(n, _NULL_HASH, dtype="uint64")
    if n == 0:
        return out
    _, off_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(off_buf, dtype=np.int64)[arr.offset: arr.offset + n + 1]
    lo, hi = int(offsets[0]), int(offsets[-1])
    data = np.frombuffer(data_buf, dtype=np.uint8)[lo:hi] if data_buf is not None and hi > lo \
        else np.empty(0, np.uint8)
    lengths = np.diff(offsets)
    with np.errstate(over="ignore"):
        if len(data):
            max_len = int(lengths.max())
            powers = np.cumprod(np.concatenate([[np.uint64(1)], np.full(max_len - 1, _P, dtype=np.uint64)]),
                                dtype=np.uint64) if max_len > 1 else np.ones(1, np.uint64)
            ends = offsets[1:] - lo
            byte_end = np.repeat(ends, lengths)  # for each byte, the end of its string
            weights = powers[byte_end - 1 - np.arange(len(data))]
            csum = np.concatenate([[np.uint64(0)], np.cumsum((data.astype(np.uint64) + np.uint64(1)) * weights,
                                                             dtype=np.uint64)])
            poly = csum[offsets[1:] - lo] - csum[offsets[:-1] - lo]
        else:
            poly = np.zeros(n, dtype=np.uint64)
        h = _finalize(poly ^ (lengths.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)))
    valid = ~np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    out[valid] = h[valid]
    return out


def _hash_column(values: pd.Series, logical_type: str, *, repeated: bool = False) -> np.ndarray:
    """uint64 hash per row of one column, in a representation that does not depend on the source it was read
    from: a column of the wrong type falls back to its text (column_types reports it)."""
    try:
        if logical_type == "timestamp":
            ts = values
            if not isinstance(ts.dtype, pd.DatetimeTZDtype):
                if pd.api.types.is_datetime64_dtype(ts.dtype):
                    ts = ts.dt.tz_localize("UTC")  # naive times are UTC by contract
                else:
                    ts = pd.to_datetime(ts, utc=True, format="ISO8601")
            arr = ts.dt.tz_convert("UTC").dt.as_unit("us").to_numpy(dtype="datetime64[us]").view("int64")
            return pd.util.hash_array(arr)  # NaT is int64 min, the same for every source
        if logical_type in ("number", "integer"):
            return pd.util.hash_array(_as_float(values))
        if logical_type == "boolean":
            return pd.util.hash_array(_as_float(values.astype("boolean").astype("Int8")))
    except (ValueError, TypeError):
        pass
    return _hash_text(values, repeated=repeated)


def hash_table(table: str, frame: pd.DataFrame) -> str:
    """The order-independent content hash of one table's contract columns (hex sha256)."""
    schema = table_schema(table)
    cols = [c for c in schema.columns if c.name in frame.columns]
    digest = hashlib.sha256(f"{ALGORITHM}|{table}|{','.join(c.name for c in cols)}|".encode())
    if cols and len(frame):
        rows = np.zeros(len(frame), dtype="uint64")
        with np.errstate(over="ignore"):
            for c in cols:  # contract order, so the same values in other columns give another row hash
                h = _hash_column(frame[c.name].reset_index(drop=True), c.logical_type, repeated=not c.unique)
                rows = (rows ^ h) * _MIX
        digest.update(np.sort(rows).tobytes())  # sorted: row order must not matter
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
