"""The production path: the same extract written to PostgreSQL reads back identical to SQLite and folders."""
from __future__ import annotations

import pandas as pd
import pytest

from crm.extract import read_extract, write_extract
from tests.unit.test_extract import messy_tables

pytestmark = pytest.mark.postgres


def _typed(tables):
    """Parse the messy text timestamps first, as a real PostgreSQL extract holds timestamptz columns."""
    out = {}
    for name, df in tables.items():
        df = df.copy()
        for c in df.columns:
            if c.endswith("_at"):
                df[c] = pd.to_datetime(df[c], utc=True, format="ISO8601")
        out[name] = df
    return out


def test_postgres_reads_identical_to_sqlite(pg_url, tmp_path):
    tables = _typed(messy_tables())
    write_extract(pg_url, tables)
    sqlite = f"sqlite:///{tmp_path / 'crm.db'}"
    write_extract(sqlite, tables)
    from_pg, from_sqlite = read_extract(pg_url), read_extract(sqlite)
    assert set(from_pg.tables) == set(from_sqlite.tables) == {"accounts", "orders", "activities", "leads"}
    for name in from_pg.tables:
        pd.testing.assert_frame_equal(from_pg[name], from_sqlite[name], check_exact=True)
    assert "email" not in from_pg["accounts"].columns
