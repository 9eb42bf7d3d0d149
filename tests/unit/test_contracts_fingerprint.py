"""The extract fingerprint: independent of row order, column order, extra columns and the reader's dtypes;
different as soon as one contract value changes."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_contracts.fingerprint import Fingerprint, compute_fingerprint
from data_contracts.testing import build_valid_extract


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return build_valid_extract(seed=5, n_accounts=60, n_leads=50, n_orders=90, n_activities=120, n_tickets=40)


def _copy(t: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    return {k: v.copy() for k, v in t.items()}


def test_shuffled_rows_and_columns_and_extra_columns_give_the_same_hash(tables) -> None:
    shuffled = {k: v.sample(frac=1.0, random_state=1).reset_index(drop=True) for k, v in tables.items()}
    shuffled["orders"] = shuffled["orders"][list(reversed(shuffled["orders"].columns))]
    shuffled["accounts"]["email"] = "pii@example.com"
    a, b = compute_fingerprint(tables), compute_fingerprint(shuffled)
    assert a.hash == b.hash and a.table_hashes == b.table_hashes
    assert a.row_counts == {k: len(v) for k, v in tables.items()}


@pytest.mark.parametrize(("table", "column", "value"), [
    ("orders", "amount", 123.45),
    ("accounts", "created_at", pd.Timestamp("2024-02-02T10:00:00.000001", tz="UTC")),
    ("activities", "type", "a_type_no_row_has"),
    ("tickets", "csat", 9),
    ("leads", "company_size", pd.NA),
])
def test_changing_one_value_changes_the_hash(tables, table: str, column: str, value) -> None:
    changed = _copy(tables)
    row = 0 if table != "leads" else int(np.flatnonzero(tables["leads"]["company_size"].notna().to_numpy())[0])
    changed[table].loc[row, column] = value
    assert not changed[table].equals(tables[table])
    a, b = compute_fingerprint(tables), compute_fingerprint(changed)
    assert a.hash != b.hash
    assert {k for k in a.table_hashes if a.table_hashes[k] != b.table_hashes[k]} == {table}


def test_flipping_a_boolean_changes_the_hash(tables) -> None:
    changed = _copy(tables)
    changed["accounts"].loc[0, "consent_profiling"] = not bool(tables["accounts"].loc[0, "consent_profiling"])
    assert compute_fingerprint(changed).hash != compute_fingerprint(tables).hash


def test_reader_dtype_variants_give_the_same_hash(tables) -> None:
    """What SQLite/CSV readers hand back before canonical casting: text times, 0/1 booleans, float integers,
    object strings, another time unit and zone."""
    variant = _copy(tables)
    acc = variant["accounts"]
    acc["created_at"] = acc["created_at"].dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    acc["consent_profiling"] = acc["consent_profiling"].astype(int)
    acc["segment"] = acc["segment"].astype(object)
    variant["tickets"]["csat"] = variant["tickets"]["csat"].astype("float64")
    variant["orders"]["ordered_at"] = variant["orders"]["ordered_at"].dt.as_unit("ns").dt.tz_convert("Europe/Paris")
    variant["leads"]["mql_at"] = variant["leads"]["mql_at"].dt.tz_localize(None)  # naive = UTC
    variant["orders"]["amount"] = variant["orders"]["amount"] + 1e-9  # float noise of a text round trip
    assert compute_fingerprint(variant).hash == compute_fingerprint(tables).hash


def test_null_and_empty_tables_and_absent_tables_are_distinguished(tables) -> None:
    no_tickets = {k: v for k, v in tables.items() if k != "tickets"}
    empty_tickets = {**no_tickets, "tickets": tables["tickets"].iloc[0:0]}
    fa, fe = compute_fingerprint(no_tickets), compute_fingerprint(empty_tickets)
    assert "tickets" not in fa.row_counts and fe.row_counts["tickets"] == 0
    assert fa.hash != fe.hash != compute_fingerprint(tables).hash
    # a null and the text "nan" are different values
    t1, t2 = _copy(tables), _copy(tables)
    t1["accounts"].loc[0, "industry"] = np.nan
    t2["accounts"].loc[0, "industry"] = "nan"
    assert compute_fingerprint(t1).hash != compute_fingerprint(t2).hash


def test_fingerprint_round_trips_through_a_dict(tables) -> None:
    fp = compute_fingerprint(tables)
    again = Fingerprint.from_dict(fp.to_dict())
    assert again == fp and again.short == fp.hash[:12]
    assert fp.contract_versions["orders"] == "1.1.0"


def test_text_hash_is_per_value_whatever_the_arrow_layout() -> None:
    """Concatenated (chunked), sliced, object-dtype and str-dtype text give the same per-value hashes;
    null, the empty string and other values all differ."""
    from data_contracts.fingerprint import _hash_text

    values = ["x", "", None, "é", "x", "xy", "yx"]
    ref = _hash_text(pd.Series(values, dtype="str"))
    chunked = pd.concat([pd.Series(values[:3], dtype="str"), pd.Series(values[3:], dtype="str")],
                        ignore_index=True)
    assert (_hash_text(chunked) == ref).all()
    assert (_hash_text(chunked.iloc[2:]) == ref[2:]).all()
    assert (_hash_text(pd.Series(values, dtype=object)) == ref).all()
    assert ref[0] == ref[4] and len(set(ref.tolist())) == 6
