"""The Arrow read path (ADBC, crm.arrow_read) gives exactly the frames of the row-by-row path (read_sql_query).

On the synthetic world, on the valid hand-built extract and on every corrupt extract of the quality-gate tests
(tests/integration/test_validation_defects.py), in SQLite and PostgreSQL: the same tables, the same frames (values,
dtypes, order), and in strict mode the same error with the same message.
"""
from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import adbc_driver_postgresql  # noqa: F401  (installed by `make test`: a missing driver fails here, never skips)
import adbc_driver_sqlite  # noqa: F401
import pytest

from crm.arrow_read import open_arrow_reader
from crm.errors import CrmError
from crm.extract import read_tables, write_extract
from crm.synthetic import generate_world
from data_contracts.testing import build_valid_extract
from tests.integration.test_validation_defects import DEFECTS
from tests.unit.test_extract import messy_tables

Tables = dict[str, pd.DataFrame]


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def sql_url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    return request.getfixturevalue("pg_url")


def _outcome(url: str, *, strict: bool, arrow: bool, tables: list[str] | None = None):
    try:
        return read_tables(url, strict=strict, arrow=arrow, tables=tables)
    except CrmError as exc:
        return type(exc), str(exc)


def _assert_same_reads(url: str, caplog, tables: list[str] | None = None) -> None:
    """Both paths, lenient (validation) and strict (training/scoring); and the Arrow path really used."""
    for strict in (False, True):
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="crmscore.extract"):
            new = _outcome(url, strict=strict, arrow=True, tables=tables)
        old = _outcome(url, strict=strict, arrow=False, tables=tables)
        if isinstance(old, tuple):
            assert new == old
            continue
        assert not [r for r in caplog.records if "row by row" in r.getMessage()], caplog.text
        assert list(new) == list(old)
        for name in old:
            pd.testing.assert_frame_equal(new[name], old[name], check_exact=True, obj=name)


def test_the_arrow_reader_opens_sqlite_read_only(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    write_extract(url, {"accounts": messy_tables()["accounts"]})
    reader = open_arrow_reader(url)
    assert reader is not None
    try:
        with pytest.raises(Exception, match="readonly"):
            with reader._conn.cursor() as cur:
                cur.execute("delete from accounts")
    finally:
        reader.close()


def test_synthetic_world_reads_the_same(sql_url, caplog) -> None:
    world = generate_world(400, 300, 3, pd.Timestamp("2026-10-01", tz="UTC"))
    write_extract(sql_url, world.tables)
    _assert_same_reads(sql_url, caplog)


def test_messy_extract_reads_the_same(sql_url, caplog) -> None:
    write_extract(sql_url, messy_tables())
    _assert_same_reads(sql_url, caplog)


@pytest.fixture(scope="module")
def base() -> Tables:
    return build_valid_extract(seed=11, n_accounts=120, n_leads=100, n_orders=200, n_activities=300, n_tickets=80)


@pytest.mark.parametrize(("inject", "expected"), [(None, None), *DEFECTS],
                         ids=["valid", *[d[0].__name__ for d in DEFECTS]])
def test_corrupt_extracts_read_the_same(sql_url, base, inject, expected, caplog) -> None:
    tables = {t: f.copy() for t, f in base.items()}
    if inject is not None:
        inject(tables)
    write_extract(sql_url, tables)
    _assert_same_reads(sql_url, caplog)


def test_sqlite_mixed_storage_classes_read_the_same(tmp_path, caplog) -> None:
    """SQLite keeps any type in any column: integers then reals in an id column, text in a number column past the
    driver's default batch, nulls first. The same frames, or the same type error."""
    n = 3000
    good = pd.DataFrame({
        "order_id": pd.Series([f"o{i}" for i in range(n)], dtype=object),
        "account_id": pd.Series([*range(n - 1), 12.0], dtype=object),  # ints, then a real
        "ordered_at": ["2025-02-01T00:00:00"] * n,
        "amount": pd.Series([None] * 2000 + list(np.arange(n - 2000, dtype=float)), dtype=object),
        "gross_margin": pd.Series([*range(n - 1), 0.5], dtype=object),
        "status": ["completed"] * n,
    })
    url = f"sqlite:///{tmp_path / 'good.db'}"
    write_extract(url, {"orders": good})
    _assert_same_reads(url, caplog, tables=["orders"])
    bad = good.assign(amount=pd.Series([*range(n - 1), "12 EUR"], dtype=object))
    url = f"sqlite:///{tmp_path / 'bad.db'}"
    write_extract(url, {"orders": bad})
    old = _outcome(url, strict=True, arrow=False, tables=["orders"])
    assert isinstance(old, tuple) and "orders.amount should hold number values" in old[1]
    assert _outcome(url, strict=True, arrow=True, tables=["orders"]) == old
