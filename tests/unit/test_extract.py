"""The extract reader: allow-listed columns, canonical dtypes, UTC timestamps, clear errors."""
from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from crm.connection import read_connection
from crm.errors import ColumnTypeError, CrmNotFoundError, ExtractNotFoundError, MissingColumnsError, MissingTableError
from crm.extract import read_extract, read_tables, redact, write_extract
from crm.writeback import read_history, read_scores, read_value_at_risk


def messy_tables() -> dict[str, pd.DataFrame]:
    """A small valid but messy extract: PII and extra columns, mixed timestamp forms, nulls where allowed."""
    accounts = pd.DataFrame({
        "account_id": ["a1", "a2", "a3"],
        "created_at": ["2025-01-01T10:00:00", "2025-01-02T10:00:00Z", "2025-01-03 06:00:00-04:00"],
        "segment": ["smb", "enterprise", "smb"],
        "industry": [None, "retail", "saas"],
        "country": ["DE", None, "US"],
        "acquisition_channel": ["organic", "partner", None],
        "acquisition_cost": [10.0, None, 0.0],
        "consent_profiling": ["true", "False", "1"],
        "deleted_at": [None, None, "2025-06-01T00:00:00+00:00"],
        "email": ["pii.alice@example.com", "pii.bob@example.com", "pii.carol@example.com"],
        "full_name": ["Alice PII", "Bob PII", "Carol PII"],
        "favourite_colour": ["red", "blue", "green"],
    })
    orders = pd.DataFrame({
        "order_id": ["o1", "o2", "o3"], "account_id": ["a1", "a2", "a3"],
        "ordered_at": ["2025-02-01T00:00:00Z", "2025-02-02T00:00:00", "2025-02-03T00:00:00+00:00"],
        "amount": [100.0, 50.0, 20.0], "gross_margin": [30.0, -5.0, 2.0],
        "status": ["completed", "refunded", "completed"], "notes": ["call me", "pii", "x"],
    })
    activities = pd.DataFrame({
        "activity_id": ["e1", "e2", "e3"], "account_id": ["a1", None, "a3"], "lead_id": [None, "l1", None],
        "occurred_at": ["2025-03-01T00:00:00", "2025-03-01T00:00:01Z", "2025-03-02T00:00:00"],
        "type": ["login", "web_visit", "login"], "channel": [None, "web", "app"],
    })
    leads = pd.DataFrame({
        "lead_id": ["l1"], "created_at": ["2025-02-20T00:00:00Z"], "source": ["web"], "industry": [None],
        "company_size": [None], "job_level": ["vp"], "country": ["FR"], "mql_at": [None], "sql_at": [None],
        "won_at": [None], "lost_at": [None], "account_id": [None], "consent_profiling": [True], "deleted_at": [None],
        "phone": ["+49 555 PII"],
    })
    return {"accounts": accounts, "orders": orders, "activities": activities, "leads": leads}


@pytest.fixture(params=["sqlite", "csv", "parquet"])
def location(request, tmp_path) -> str:
    tables = messy_tables()
    if request.param == "sqlite":
        loc = f"sqlite:///{tmp_path / 'crm.db'}"
        write_extract(loc, tables)
    elif request.param == "csv":
        loc = str(tmp_path / "csv")
        write_extract(loc, tables, folder_format="csv")
    else:
        loc = str(tmp_path / "pq")
        # Parquet gets the raw text columns: timestamps parsed on read like any other source
        write_extract(loc, tables, folder_format="parquet")
    return loc


def test_messy_extract_reads_with_canonical_dtypes_and_no_pii(location):
    ex = read_extract(location)
    acc = ex["accounts"]
    assert list(acc.columns) == ["account_id", "created_at", "segment", "industry", "country", "acquisition_channel",
                                 "acquisition_cost", "consent_profiling", "deleted_at"]
    # a3 requested erasure: gone, and so is its order and activity
    assert acc["account_id"].tolist() == ["a1", "a2"]
    assert ex["orders"]["order_id"].tolist() == ["o1", "o2"]
    assert ex["activities"]["activity_id"].tolist() == ["e1", "e2"]
    assert str(acc["created_at"].dtype) == "datetime64[us, UTC]"
    assert acc["created_at"].tolist() == [pd.Timestamp("2025-01-01T10:00:00Z"), pd.Timestamp("2025-01-02T10:00:00Z")]
    assert acc["consent_profiling"].tolist() == [True, False] and acc["consent_profiling"].dtype == bool
    assert acc["acquisition_cost"].dtype == "float64"
    assert str(ex["leads"]["company_size"].dtype) == "Int64"
    assert ex["activities"]["account_id"].isna().tolist() == [False, True]
    # subscriptions and tickets are optional and absent
    assert not ex.has("subscriptions") and set(ex.missing_optional) == {"subscriptions", "tickets"}
    for df in ex.tables.values():
        flat = [str(v) for v in df.to_numpy().ravel()]
        assert not any("PII" in v or "pii" in v for v in flat)
        assert not {"email", "full_name", "phone", "notes", "favourite_colour"} & set(df.columns)


def test_some_columns_of_a_table_read_as_in_the_whole_table(location):
    """What the report reads of a million accounts: two columns, typed and ordered as in the full read."""
    whole = read_tables(location, tables=["accounts", "leads"])
    part = read_tables(location, tables=["accounts", "leads"], columns={"accounts": ["segment", "account_id"]})
    pd.testing.assert_frame_equal(part["accounts"], whole["accounts"][["account_id", "segment"]])
    pd.testing.assert_frame_equal(part["leads"], whole["leads"])  # a table not named is read whole
    only_industry = read_tables(location, tables=["accounts"], columns={"accounts": ["account_id", "industry"]})
    assert only_industry["accounts"]["industry"].isna().tolist() == [True, False, False]


def test_missing_required_column_names_table_and_column(tmp_path):
    tables = messy_tables()
    tables["orders"] = tables["orders"].drop(columns=["gross_margin"])
    loc = f"sqlite:///{tmp_path / 'crm.db'}"
    write_extract(loc, tables)
    with pytest.raises(MissingColumnsError, match=r"table 'orders' .* lacks required column\(s\) \['gross_margin'\]"):
        read_extract(loc)
    # validation reads leniently so the gate can report it as a rule
    assert "gross_margin" not in read_tables(loc, strict=False)["orders"].columns


def test_missing_required_table(tmp_path):
    tables = messy_tables()
    del tables["orders"]
    loc = str(tmp_path / "f")
    write_extract(loc, tables, folder_format="csv")
    with pytest.raises(MissingTableError, match="no 'orders' table, which the contract requires"):
        read_extract(loc)


def test_bad_timestamp_is_a_clear_type_error(tmp_path):
    tables = messy_tables()
    tables["orders"].loc[1, "ordered_at"] = "yesterday"
    loc = str(tmp_path / "f")
    write_extract(loc, tables, folder_format="csv")
    with pytest.raises(ColumnTypeError, match=r"orders.ordered_at should hold timestamp"):
        read_extract(loc)


def test_missing_location_errors(tmp_path):
    with pytest.raises(CrmNotFoundError, match=r"no CRM at sqlite:///.*nope\.db: the file does not exist; check --crm"):
        read_extract(f"sqlite:///{tmp_path / 'nope.db'}")
    with pytest.raises(CrmNotFoundError, match="neither a SQLAlchemy URL"):
        read_extract(str(tmp_path / "nope"))
    with pytest.raises(CrmNotFoundError, match=r"write sqlite:///"):
        read_extract(str(tmp_path / "crm.db"))  # a SQLite path given without its sqlite:/// prefix
    assert issubclass(CrmNotFoundError, ExtractNotFoundError)


@pytest.mark.parametrize("read", [
    lambda url: read_tables(url, tables=["accounts"]),
    lambda url: read_scores(url),
    lambda url: read_history(url, entity_id="acc_1"),
    lambda url: read_value_at_risk(url),
], ids=["read_tables", "read_scores", "read_history", "read_value_at_risk"])
def test_readers_never_create_a_sqlite_file(tmp_path, read):
    db = tmp_path / "typo.db"
    with pytest.raises(CrmNotFoundError, match="the file does not exist"):
        read(f"sqlite:///{db}")
    assert not db.exists() and list(tmp_path.iterdir()) == []


def test_readers_refuse_a_missing_folder_crm(tmp_path):
    with pytest.raises(CrmNotFoundError, match="neither a SQLAlchemy URL"):
        read_scores(str(tmp_path / "nope"))
    assert not (tmp_path / "nope").exists()


def test_reading_leaves_the_sqlite_file_unchanged(tmp_path):
    db = tmp_path / "crm.db"
    write_extract(f"sqlite:///{db}", messy_tables())
    before = db.read_bytes(), db.stat().st_mtime_ns
    read_extract(f"sqlite:///{db}")
    assert read_scores(f"sqlite:///{db}").empty
    assert (db.read_bytes(), db.stat().st_mtime_ns) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crm.db"]  # no journal or WAL file left either


def test_read_connection_is_read_only(tmp_path):
    db = tmp_path / "crm.db"
    write_extract(f"sqlite:///{db}", messy_tables())
    with read_connection(f"sqlite:///{db}") as conn, pytest.raises(sa.exc.OperationalError, match="readonly"):
        conn.exec_driver_sql("delete from accounts")


def test_a_file_that_is_not_a_database_is_one_line(tmp_path):
    bogus = tmp_path / "notes.db"
    bogus.write_text("not a database, just text\n" * 50)
    with pytest.raises(CrmNotFoundError, match=r"cannot open the CRM at sqlite:///.*notes\.db: DatabaseError"):
        read_tables(f"sqlite:///{bogus}")


def test_unreachable_postgres_is_one_line_without_password():
    url = "postgresql+psycopg://bob:s3cret@127.0.0.1:1/crm"  # port 1: nothing listens there
    with pytest.raises(CrmNotFoundError, match=r"cannot open the CRM at postgresql\+psycopg://bob:\*\*\*@") as info:
        read_tables(url)
    assert "s3cret" not in str(info.value) and "\n" not in str(info.value)


def test_malformed_url_is_one_line():
    with pytest.raises(CrmNotFoundError, match="is not a SQLAlchemy URL"):
        read_tables("::://")


def test_redact_hides_password():
    assert redact("postgresql+psycopg://bob:s3cret@db:5432/crm") == "postgresql+psycopg://bob:***@db:5432/crm"
    assert "s3cret" not in redact("postgresql+psycopg://bob:s3cret@db/crm")


def test_reading_after_a_writer_was_killed_mid_transaction(tmp_path):
    """A killed writer leaves a hot journal that only a read-write connection may roll back: readers still read the
    last committed state (SQLite restores it), and the journal is gone afterwards."""
    import signal
    import subprocess
    import sys

    db = tmp_path / "crm.db"
    write_extract(f"sqlite:///{db}", messy_tables())
    committed = read_tables(f"sqlite:///{db}")
    child = ("import sqlite3, sys, time\n"
             "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
             "c.execute('pragma cache_size=1'); c.execute('begin immediate'); c.execute('delete from orders')\n"
             "c.executemany('insert into accounts (account_id) values (?)', [(f'x{i}',) for i in range(50000)])\n"
             "print('in transaction', flush=True); time.sleep(120)\n")
    proc = subprocess.Popen([sys.executable, "-c", child, str(db)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "in transaction"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert (tmp_path / "crm.db-journal").exists()
    back = read_tables(f"sqlite:///{db}")
    assert set(back) == set(committed)
    for name in committed:
        pd.testing.assert_frame_equal(back[name], committed[name])
    assert not (tmp_path / "crm.db-journal").exists()


def test_writing_a_new_sqlite_crm_creates_its_folder(tmp_path):
    url = f"sqlite:///{tmp_path / 'new' / 'folder' / 'crm.db'}"
    write_extract(url, messy_tables())
    assert len(read_extract(url)["orders"]) > 0
