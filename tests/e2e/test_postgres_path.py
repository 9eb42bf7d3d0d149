"""The production path through the CLI: the CRM in PostgreSQL, read, trained on, scored and written back there."""
from __future__ import annotations

import json

import pandas as pd
import pytest
import sqlalchemy as sa

from crm.writeback import read_history, read_scores
from tests.e2e.cli import AS_OF, fast_config, run

pytestmark = pytest.mark.postgres


def test_postgres_end_to_end(tmp_path, pg_url):
    # this test is about the production path, not the gate (tests/unit/test_champion.py): a 1,200-account world's
    # calibration is too noisy to judge, so the first model of each task becomes champion whatever its ECE
    cfg = fast_config(tmp_path, gate="{max_ece: null}")
    common = ["--config", str(cfg), "--crm", pg_url]
    run(["generate", *common, "--accounts", "1200", "--leads", "1200", "--seed", "5", "--as-of", AS_OF,
         "--truth", str(tmp_path / "truth.parquet")], tmp_path)
    run(["train", *common, "--as-of", AS_OF, "--models", "churn,clv"], tmp_path)
    proc = run(["score", *common, "--as-of", AS_OF, "--models", "churn,clv"], tmp_path)
    assert "postgresql+psycopg://postgres@127.0.0.1" in proc.stdout
    scores = read_scores(pg_url)
    truth = pd.read_parquet(tmp_path / "truth.parquet")
    for task in ("churn", "clv"):
        mine = scores[scores["model"] == task]
        assert set(mine["entity_id"]) == set(truth.loc[truth["task"] == task, "entity_id"])
    assert scores["reasons"].map(json.loads).map(len).min() >= 1
    eng = sa.create_engine(pg_url)
    with eng.connect() as conn:
        types = dict(conn.execute(sa.text(
            "select column_name, data_type from information_schema.columns "
            "where table_name = 'crm_scores' and table_schema = current_schema()")).all())
    eng.dispose()
    assert types["as_of"].startswith("timestamp") and types["score"] in ("double precision", "real", "numeric")
    assert len(read_history(pg_url)) == len(scores)
    proc = run(["list", "at-risk", *common, "--top", "3", "--format", "csv"], tmp_path)
    assert proc.stdout.count("\n") == 4
