"""The rules GX cannot express on one table, checked in pandas: frame structure (table and columns present,
dtypes), references between tables, two-column presence rules, and volume against the last validated extract.

Each check returns a `CheckOutcome` (offending row count, up to 5 offending primary-key ids, a detail line) that the
validator reports in the same format as the GX results. All checks are vectorized: they stay fast at 1M rows.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data_contracts.gx_suite import NULL_ID, SAMPLE_SIZE
from data_contracts.rules import Rule
from data_contracts.schema import ColumnSpec, TableSchema, table_schema


@dataclass(frozen=True)
class CheckOutcome:
    status: str  # "passed", "failed" or "skipped"
    unexpected_count: int = 0
    sample_ids: tuple[str, ...] = ()
    detail: str = ""
    column: str | None = None  # overrides the rule's column (e.g. the missing columns)


PASSED = CheckOutcome("passed")


def dtype_problem(values: pd.Series, spec: ColumnSpec) -> str | None:
    """Why a column's dtype does not fit its contract type (the canonical dtypes of docs/architecture.md), or None."""
    dt = values.dtype
    lt = spec.logical_type
    if lt == "string":
        if isinstance(dt, pd.StringDtype):
            return None
        if dt == object and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty"):
            return None
        return f"{spec.name}: {dt} (expected str)"
    if lt == "timestamp":
        if isinstance(dt, pd.DatetimeTZDtype):
            return None
        return f"{spec.name}: {dt} (expected datetime64[us, UTC])"
    if lt in ("number", "integer"):
        if pd.api.types.is_bool_dtype(dt) or not pd.api.types.is_numeric_dtype(dt):
            return f"{spec.name}: {dt} (expected {'float64' if lt == 'number' else 'Int64'})"
        if lt == "integer" and pd.api.types.is_float_dtype(dt):
            # Nullable integers come back as float64 from some readers: fine while every value is whole.
            arr = values.to_numpy(dtype="float64", na_value=np.nan)
            arr = arr[~np.isnan(arr)]
            if not np.all(np.mod(arr, 1) == 0):
                return f"{spec.name}: {dt} with fractional values (expected Int64)"
        return None
    if lt == "boolean":
        return None if pd.api.types.is_bool_dtype(dt) else f"{spec.name}: {dt} (expected bool)"
    return f"{spec.name}: unknown contract type {lt!r}"


def sample_ids(frame: pd.DataFrame, mask: np.ndarray | pd.Series, schema: TableSchema) -> tuple[str, ...]:
    """Up to 5 distinct primary-key ids of the rows where `mask` is true (row positions if the key is missing)."""
    mask = np.asarray(mask, dtype=bool)
    pk = schema.primary_key
    if pk in frame.columns:
        picked = frame[pk].to_numpy(dtype=object)[mask]
    else:
        picked = np.flatnonzero(mask).astype(object)
        picked = np.array([f"row {i}" for i in picked[: SAMPLE_SIZE * 4]], dtype=object)
    out: list[str] = []
    for v in picked[: SAMPLE_SIZE * 4]:
        t = NULL_ID if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)
        if t not in out:
            out.append(t)
        if len(out) == SAMPLE_SIZE:
            break
    return tuple(out)


def _failed_or_passed(frame: pd.DataFrame, mask: np.ndarray, schema: TableSchema, detail: str = "") -> CheckOutcome:
    n = int(mask.sum())
    if n == 0:
        return PASSED
    return CheckOutcome("failed", n, sample_ids(frame, mask, schema), detail)


def check_references(rule: Rule, frame: pd.DataFrame, tables: Mapping[str, pd.DataFrame],
                     usable: Mapping[str, set[str]]) -> CheckOutcome:
    """Every non-null value of the rule's column exists in the referenced table's column (deleted rows included)."""
    schema = table_schema(rule.table)
    ref_table, ref_col = rule.params["table"], rule.params["column"]
    values = frame[rule.column]
    present = values.notna().to_numpy()
    target = tables.get(ref_table)
    if target is None:
        if table_schema(ref_table).required:
            return CheckOutcome("skipped", detail=f"referenced table {ref_table} is absent "
                                                  f"(reported by {ref_table}.table_present)")
        return _failed_or_passed(frame, present, schema, f"referenced table {ref_table} is absent")
    if ref_col not in usable.get(ref_table, set()):
        return CheckOutcome("skipped", detail=f"referenced column {ref_table}.{ref_col} is missing or mistyped")
    # Arrow's hash set over the referenced keys (C++), instead of pandas' isin over Python-level string objects
    known = _arrow_text(target[ref_col].dropna())
    found = pc.is_in(_arrow_text(values), value_set=pc.unique(known)).to_numpy(zero_copy_only=False)
    mask = present & ~found
    return _failed_or_passed(frame, mask, schema, f"values not found in {ref_table}.{ref_col}")


def _arrow_text(values: pd.Series) -> pa.Array:
    arr = pa.array(values, type=pa.large_string(), from_pandas=True)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def check_exactly_one_of(rule: Rule, frame: pd.DataFrame) -> CheckOutcome:
    a, b = rule.columns
    mask = (frame[a].notna() == frame[b].notna()).to_numpy()  # both set, or neither
    return _failed_or_passed(frame, mask, table_schema(rule.table), f"rows with both or neither of {a}, {b}")


def check_not_both(rule: Rule, frame: pd.DataFrame) -> CheckOutcome:
    a, b = rule.columns
    mask = (frame[a].notna() & frame[b].notna()).to_numpy()
    return _failed_or_passed(frame, mask, table_schema(rule.table), f"rows with both {a} and {b} set")


def check_volume_not_emptied(rule: Rule, rows: int, previous_rows: int | None) -> CheckOutcome:
    if previous_rows is None:
        return CheckOutcome("skipped", detail="no previous validated extract to compare with")
    if rows == 0 and previous_rows > 0:
        return CheckOutcome("failed", previous_rows, (), f"0 rows now, {previous_rows} in the last validated extract")
    return PASSED


def check_volume_no_collapse(rule: Rule, rows: int, previous_rows: int | None, max_drop: float) -> CheckOutcome:
    if previous_rows is None:
        return CheckOutcome("skipped", detail="no previous validated extract to compare with")
    if rows == 0:
        # An emptied table is the business of volume_not_emptied; one defect, one failed rule.
        return CheckOutcome("skipped", detail=f"table is empty (see {rule.table}.volume_not_emptied)")
    if previous_rows > 0 and rows < previous_rows * (1.0 - max_drop):
        drop = 1.0 - rows / previous_rows
        return CheckOutcome("failed", previous_rows - rows, (),
                            f"{previous_rows} -> {rows} rows (-{drop:.0%}); allowed drop {max_drop:.0%}")
    return PASSED
