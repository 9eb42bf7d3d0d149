"""A broken extract stops `train` and `score` before anything is trained, registered or written back.

The CRM (with earlier scores in it) is left byte-for-byte as it was, on SQLite and on PostgreSQL.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from crm.extract import write_extract
from crm.synthetic import generate_world
from crm.writeback import write_scores
from tests.e2e.cli import AS_OF, fast_config, run

DEFECTS = {
    # one defect through the whole CLI; tests/integration/test_validation_defects.py shows each defect caught by its rule
    "gross_margin above amount": "update orders set gross_margin = amount + 50 where order_id = (select min(order_id) from orders)",
}


def _world_tables() -> dict[str, pd.DataFrame]:
    return generate_world(400, 300, 3, pd.Timestamp(AS_OF, tz="UTC")).tables


def _earlier_scores(url: str) -> None:
    rows = pd.DataFrame({
        "entity_type": ["account"], "entity_id": ["acc_1"], "model": ["churn"], "score": [0.2],
        "score_percentile": [100], "band": ["high"], "reasons": ["[]"], "reason_text": ["earlier run"],
        "model_version": ["1"]})
    write_scores(url, rows, models=("churn",), scoring_run_id="earlier", as_of=pd.Timestamp("2026-09-01", tz="UTC"),
                 scored_at=pd.Timestamp("2026-09-01T02:00:00", tz="UTC"))


def _snapshot_sql(url: str) -> dict[str, list]:
    eng = sa.create_engine(url)
    try:
        with eng.connect() as conn:
            names = sorted(sa.inspect(conn).get_table_names())
            return {n: sorted(map(tuple, conn.execute(sa.text(f'select * from "{n}"')).all()), key=repr) for n in names}
    finally:
        eng.dispose()


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_refused(root: Path, cfg: Path, crm: str) -> None:
    for cmd in ("train", "score"):
        proc = run([cmd, "--config", str(cfg), "--crm", crm, "--as-of", AS_OF], root, check=False)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert "contract rule" in proc.stderr and "Traceback" not in proc.stderr
    assert not (root / "wd" / "mlartifacts").exists() or not any((root / "wd" / "mlartifacts").rglob("*.pkl"))


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_sqlite_crm_untouched_by_refused_runs(tmp_path, defect):
    db = tmp_path / "crm.db"
    url = f"sqlite:///{db}"
    write_extract(url, _world_tables())
    _earlier_scores(url)
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.execute(sa.text(DEFECTS[defect]))
    eng.dispose()
    before = _sha(db)
    _assert_refused(tmp_path, fast_config(tmp_path), url)
    assert _sha(db) == before


@pytest.mark.postgres
def test_postgres_crm_untouched_by_refused_runs(tmp_path, pg_url):
    write_extract(pg_url, _world_tables())
    _earlier_scores(pg_url)
    eng = sa.create_engine(pg_url)
    with eng.begin() as conn:
        conn.execute(sa.text(DEFECTS["gross_margin above amount"]))
    eng.dispose()
    before = _snapshot_sql(pg_url)
    assert "crm_scores" in before and len(before["crm_scores"]) == 1
    _assert_refused(tmp_path, fast_config(tmp_path), pg_url)
    assert _snapshot_sql(pg_url) == before
