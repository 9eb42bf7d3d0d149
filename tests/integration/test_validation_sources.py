"""The gate against real storage: the fingerprint is the same whichever way the extract is stored and read back
(SQLite, CSV, Parquet, PostgreSQL), GX Data Docs are built on request, and the history store drives the volume
rule across runs."""
from __future__ import annotations

import pandas as pd
import pytest
import sqlalchemy as sa

from data_contracts.fingerprint import compute_fingerprint
from data_contracts.history import load_last_fingerprint, save_run
from data_contracts.testing import BUILD_NOW, build_valid_extract
from data_contracts.validate import validate_extract


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    return build_valid_extract(seed=23, n_accounts=80, n_leads=70, n_orders=150, n_activities=200, n_tickets=50)


def _roundtrip_sql(tables: dict[str, pd.DataFrame], url: str) -> dict[str, pd.DataFrame]:
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for name, frame in tables.items():
                frame.to_sql(name, conn, index=False, if_exists="replace")
        with engine.connect() as conn:
            # a plain query, as a reader would issue it: the driver's own types come back
            return {name: pd.read_sql(sa.text(f"select * from {name}"), conn) for name in tables}
    finally:
        engine.dispose()


def test_fingerprint_is_the_same_read_back_from_sqlite(tables, tmp_path) -> None:
    raw = _roundtrip_sql(tables, f"sqlite:///{tmp_path / 'crm.db'}")
    # SQLite hands back text times and 0/1 booleans; the hash must not notice
    assert raw["accounts"]["consent_profiling"].dtype != bool
    assert not isinstance(raw["accounts"]["created_at"].dtype, pd.DatetimeTZDtype)
    assert compute_fingerprint(raw).hash == compute_fingerprint(tables).hash


def test_fingerprint_is_the_same_read_back_from_csv_and_parquet(tables, tmp_path) -> None:
    for name, frame in tables.items():
        frame.to_csv(tmp_path / f"{name}.csv", index=False)
        frame.to_parquet(tmp_path / f"{name}.parquet", index=False)
    from_csv = {n: pd.read_csv(tmp_path / f"{n}.csv") for n in tables}
    from_parquet = {n: pd.read_parquet(tmp_path / f"{n}.parquet") for n in tables}
    expected = compute_fingerprint(tables).hash
    assert compute_fingerprint(from_csv).hash == expected
    assert compute_fingerprint(from_parquet).hash == expected


@pytest.mark.postgres
def test_fingerprint_is_the_same_read_back_from_postgresql(tables, pg_url) -> None:
    raw = _roundtrip_sql(tables, pg_url)
    assert compute_fingerprint(raw).hash == compute_fingerprint(tables).hash


def test_data_docs_are_built_into_the_folder_given(tables, tmp_path) -> None:
    broken = {t: f.copy() for t, f in tables.items()}
    broken["orders"].loc[0, "status"] = "pending"
    docs = tmp_path / "validation" / "data_docs"
    report = validate_extract(broken, now=BUILD_NOW, data_docs_dir=docs)
    assert report.failed_rules == {"orders.status_valid"}
    assert report.data_docs_index == docs / "index.html" and report.data_docs_index.exists()
    pages = {p.relative_to(docs / "validations" / "crmscore").parts[0]: p
             for p in (docs / "validations" / "crmscore").rglob("*.html")}
    assert sorted(pages) == sorted(tables)  # one validation page per table
    assert "pending" in pages["orders"].read_text()  # the offending value is shown on the orders page


def test_history_drives_the_volume_rule_across_runs(tables, tmp_path) -> None:
    first = validate_extract(tables, now=BUILD_NOW, previous=load_last_fingerprint(tmp_path))
    assert first.ok and first.result("orders.volume_not_emptied").status == "skipped"
    save_run(first, tmp_path)
    emptied = {**tables, "activities": tables["activities"].iloc[0:0]}
    later = BUILD_NOW + pd.Timedelta(days=1)
    second = validate_extract(emptied, now=later, previous=load_last_fingerprint(tmp_path))
    assert second.failed_rules == {"activities.volume_not_emptied"} and not second.ok
    assert second.previous_hash == first.fingerprint.hash
    save_run(second, tmp_path)
    # the failed run is not the baseline: the next extract is still compared with the first one
    assert load_last_fingerprint(tmp_path) == first.fingerprint


def test_run_quality_gate_saves_each_run_with_its_data_docs(tables, tmp_path) -> None:
    from data_contracts import ContractViolation, render_failures_table, run_quality_gate

    report, saved = run_quality_gate(tables, tmp_path, now=BUILD_NOW, as_of=BUILD_NOW - pd.Timedelta(days=7))
    assert report.ok and saved.parent == tmp_path / "validation"
    assert report.data_docs_index is not None and report.data_docs_index.is_relative_to(tmp_path / "validation")
    emptied = {**tables, "orders": tables["orders"].iloc[0:0]}
    report2, saved2 = run_quality_gate(emptied, tmp_path, now=BUILD_NOW + pd.Timedelta(days=1), data_docs=False)
    assert report2.failed_rules == {"orders.volume_not_emptied"} and saved2 != saved
    assert render_failures_table(report2).row_count == 1
    with pytest.raises(ContractViolation, match=r"orders\.volume_not_emptied \[orders\]: 150 offending"):
        report2.raise_for_errors()
