"""The GX-kind rules of a table evaluated in one vectorised pass over its columns, with GX's results.

GX's pandas engine computes each expectation on its own (metrics, a boolean map, the unexpected rows, bookkeeping per
expectation): on a 75M-row activities table that is minutes. The rules themselves are simple column predicates, so
here each one is a numpy/Arrow mask over the frame's columns, with the same semantics as the GX 1.24 pandas metric it
replaces (tests/integration/test_validation_engines.py compares both on every defect of the corrupt extracts):

- column map rules (in_set, regex, range, not_after_now, unique) look at non-null values only; not_null counts nulls;
- unique marks every row of a duplicated value (``duplicated(keep=False)``); on a column in sorted order (the extract
  readers sort each table by its primary key) that is a comparison with the neighbours instead of a hash table;
- column_order compares rows where both values are set (``ignore_row_if="either_value_is_missing"``), ``A >= B``;
- the sample ids are the distinct primary-key texts among the first 20 offending rows (GX's
  ``partial_unexpected_index_list`` of ``PARTIAL_UNEXPECTED_COUNT`` row positions), up to 5.

The suites stay declared once, in the contract YAML: `rules.table_rules` feeds both this module and `gx_suite`.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from data_contracts.gx_suite import NULL_ID, PARTIAL_UNEXPECTED_COUNT, SAMPLE_SIZE, GxOutcome
from data_contracts.rules import Rule, table_rules
from data_contracts.schema import table_schema


def _notna(values: pd.Series) -> np.ndarray:
    return values.notna().to_numpy()


def _arrow(values: pd.Series) -> pa.Array:
    arr = pa.array(values, from_pandas=True)
    return arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr


def _duplicated(values: pd.Series) -> np.ndarray:
    """Rows whose non-null value occurs more than once (every occurrence), as ``duplicated(keep=False)``."""
    present = _notna(values)
    kept = values[present]
    n = len(kept)
    out = np.zeros(len(values), dtype=bool)
    if n < 2:
        return out
    if isinstance(kept.dtype, pd.StringDtype):
        arr = _arrow(kept)
        head, tail = arr.slice(0, n - 1), arr.slice(1)
        ordered = pc.all(pc.less_equal(head, tail)).as_py()
        if ordered:  # equal values are neighbours: one comparison per row instead of a hash table
            same = pc.equal(head, tail).to_numpy(zero_copy_only=False)
            dup = np.zeros(n, dtype=bool)
            dup[:-1] |= same
            dup[1:] |= same
            out[present] = dup
            return out
    out[present] = kept.duplicated(keep=False).to_numpy()
    return out


def _mask(rule: Rule, frame: pd.DataFrame, now: pd.Timestamp) -> np.ndarray:
    """True where the row breaks the rule (GX's "unexpected")."""
    p = rule.params
    if rule.kind == "column_order":
        a, b = frame[p["greater"]], frame[p["lesser"]]
        both = _notna(a) & _notna(b)
        ok = (a >= b).to_numpy(dtype=bool, na_value=True)
        return both & ~ok
    values = frame[rule.column]
    if rule.kind == "not_null":
        return ~_notna(values)
    if rule.kind == "unique":
        return _duplicated(values)
    present = _notna(values)
    if rule.kind == "in_set":
        ok = values.isin(list(p["values"])).to_numpy(dtype=bool)
    elif rule.kind == "regex":
        ok = values[present].astype(str).str.contains(p["pattern"]).to_numpy(dtype=bool)
        return _scatter(present, ~ok)
    elif rule.kind == "range":
        ok = np.ones(len(values), dtype=bool)
        if p.get("min") is not None:
            ok &= (values >= p["min"]).to_numpy(dtype=bool, na_value=True)
        if p.get("max") is not None:
            ok &= (values <= p["max"]).to_numpy(dtype=bool, na_value=True)
    elif rule.kind == "not_after_now":
        ok = (values <= now).to_numpy(dtype=bool, na_value=True)
    else:
        raise ValueError(f"rule {rule.name!r} of kind {rule.kind!r} is not a GX rule")
    return present & ~ok


def _scatter(where: np.ndarray, values: np.ndarray) -> np.ndarray:
    out = np.zeros(len(where), dtype=bool)
    out[where] = values
    return out


def _outcome(rule: Rule, mask: np.ndarray, pk_values: pd.Series | None) -> GxOutcome:
    count = int(mask.sum())
    if count == 0:
        return GxOutcome(rule.name, True, 0, ())
    positions = np.flatnonzero(mask)[:PARTIAL_UNEXPECTED_COUNT]
    ids: list[str] = []
    for pos in positions:
        if pk_values is None:
            t = f"row {pos}"
        else:
            v = pk_values.iloc[int(pos)]
            t = NULL_ID if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)
        if t not in ids:
            ids.append(t)
        if len(ids) == SAMPLE_SIZE:
            break
    return GxOutcome(rule.name, False, count, tuple(ids))


def evaluate_table(table: str, frame: pd.DataFrame, columns: set[str], now: pd.Timestamp) -> dict[str, GxOutcome]:
    """The outcome of each GX-kind rule of ``table`` whose columns are all in ``columns``, by rule name.

    Takes and returns what `gx_suite.run_suite` does (without Data Docs): the raw contract frame in the canonical
    dtypes, the usable columns, the extraction time (tz-aware UTC).
    """
    rules = [r for r in table_rules(table) if r.runs_in_gx and set(r.columns) <= columns]
    if not rules:
        return {}
    frame = frame.reset_index(drop=True)
    pk = table_schema(table).primary_key
    pk_values = frame[pk] if pk in columns else None
    return {r.name: _outcome(r, _mask(r, frame, now), pk_values) for r in rules}
