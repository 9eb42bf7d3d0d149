"""crm.monitor_store on real SQLite (and PostgreSQL, marked postgres) and a folder: contract tables, write-once
idempotence, refusal of bad rows with nothing written, all-or-nothing under SIGKILL, and the report's tidy series."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from crm.errors import WriteBackError
from crm.monitor_store import (
    METRIC_COLUMNS,
    RUN_COLUMNS,
    monitor_series,
    read_monitor_metrics,
    read_monitor_runs,
    write_monitoring,
)
from crm.writeback import read_scores, write_scores
from tests.integration.test_writeback_kill import kill, make_scores, wait_for

ROOT = Path(__file__).resolve().parents[2]
T1 = pd.Timestamp("2026-03-01", tz="UTC")
T2 = pd.Timestamp("2026-04-01", tz="UTC")
AT = pd.Timestamp("2026-04-02T03:00:00", tz="UTC")


def rows(run_id: str, as_of: pd.Timestamp, *, n_features: int = 3, stage: str = "scoring", seed: int = 0,
         status: str = "ok") -> tuple[pd.DataFrame, pd.DataFrame]:
    """One monitored run of churn v3 with ``n_features`` feature PSIs and two score figures."""
    rng = np.random.default_rng(seed)
    key = {"scoring_run_id": run_id, "model": "churn", "stage": stage}
    runs = pd.DataFrame([{**key, "model_version": "3", "as_of": as_of, "evaluated_as_of": as_of, "status": status,
                          "reasons": json.dumps([]), "n": 1000, "blocked": 0, "accepted_by": None,
                          "accepted_at": pd.NaT, "monitored_at": AT}])
    metrics = [{**key, "section": "feature", "subject": f"f{i}", "metric": m, "model_version": "3", "as_of": as_of,
                "value": v, "text": t}
               for i in range(n_features)
               for m, v, t in (("psi", float(rng.random()), None), ("status", np.nan, "ok"),
                               ("label", np.nan, f"Feature {i}"))]
    metrics += [{**key, "section": "score", "subject": "score", "metric": m, "model_version": "3", "as_of": as_of,
                 "value": v, "text": None} for m, v in (("psi", 0.01), ("nan_share", 0.0))]
    return runs, pd.DataFrame(metrics)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    return request.getfixturevalue("pg_url")


def test_write_once_read_back_and_twice_is_identical(url):
    r1, m1 = rows("run-1", T1)
    res = write_monitoring(url, r1, m1)
    assert (res.runs_written, res.metrics_written, res.runs_already_stored) == (1, len(m1), 0)
    runs, metrics = read_monitor_runs(url), read_monitor_metrics(url)
    assert list(runs.columns) == list(RUN_COLUMNS) and list(metrics.columns) == list(METRIC_COLUMNS)
    assert runs.loc[0, "as_of"] == T1 and str(runs["as_of"].dtype) == "datetime64[us, UTC]"
    assert pd.isna(runs.loc[0, "accepted_by"]) and pd.isna(runs.loc[0, "accepted_at"])
    got = metrics.set_index(["subject", "metric"])
    assert got.loc[("f1", "label"), "text"] == "Feature 1" and pd.isna(got.loc[("f1", "label"), "value"])
    assert got.loc[("f0", "psi"), "value"] == pytest.approx(m1.loc[0, "value"])

    # The same rows again, even with other values (a recomputation), change nothing: stored once.
    r_again, m_again = rows("run-1", T1, seed=5, status="alert")
    again = write_monitoring(url, r_again, m_again)
    assert (again.runs_written, again.metrics_written, again.runs_already_stored) == (0, 0, 1)
    pd.testing.assert_frame_equal(read_monitor_runs(url), runs)
    pd.testing.assert_frame_equal(read_monitor_metrics(url), metrics)

    # A new run (and the realized stage of the first) is added beside them.
    r2, m2 = rows("run-2", T2)
    r3, m3 = rows("run-1", T1, stage="realized")
    write_monitoring(url, pd.concat([r2, r3]), pd.concat([m2, m3]))
    assert len(read_monitor_runs(url)) == 3 and len(read_monitor_metrics(url)) == 3 * len(m1)
    assert read_monitor_runs(url, model="clv").empty


@pytest.mark.parametrize("mutate, match", [
    (lambda r, m: (r.assign(stage="nightly"), m.assign(stage="nightly")), r"unknown stage\(s\) \['nightly'\]"),
    (lambda r, m: (r, m.assign(scoring_run_id="other")), r"belong to no run of this write"),
    (lambda r, m: (r.drop(columns="status"), m), r"runs lack column\(s\) \['status'\]"),
    (lambda r, m: (r, pd.concat([m, m.head(1)])), r"repeat the key"),
    (lambda r, m: (r.assign(model_version=None), m), r"missing values in required column\(s\) \['model_version'\]"),
])
def test_bad_rows_are_refused_in_one_line_and_nothing_is_written(tmp_path, mutate, match):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    write_monitoring(url, *rows("run-0", T1))
    before = read_monitor_metrics(url)
    with pytest.raises(WriteBackError, match=match) as info:
        write_monitoring(url, *mutate(*rows("run-1", T2)))
    assert "\n" not in str(info.value)
    pd.testing.assert_frame_equal(read_monitor_metrics(url), before)


def test_a_folder_crm_keeps_them_beside_its_scores(tmp_path):
    folder = tmp_path / "extract"
    folder.mkdir()
    write_monitoring(str(folder), *rows("run-1", T1))
    write_monitoring(str(folder), *rows("run-1", T1, seed=3))
    assert sorted(p.name for p in (folder / "scores").glob("crm_monitor_*")) == ["crm_monitor_metrics.parquet",
                                                                               "crm_monitor_runs.parquet"]
    assert len(read_monitor_runs(str(folder))) == 1 and len(read_monitor_metrics(str(folder))) == 11


def test_the_series_of_one_model_are_tidy_frames_over_time(url):
    for i, t in enumerate((T1, T2)):
        write_monitoring(url, *rows(f"run-{i}", t, seed=i))
    series = monitor_series(url, "churn")
    assert list(series["runs"]["as_of"]) == [T1, T2]
    features = series["features"]
    assert len(features) == 6 and {"feature", "psi", "status", "label", "as_of", "model_version"} <= set(features)
    assert features.loc[features["feature"] == "f2", "label"].tolist() == ["Feature 2", "Feature 2"]
    assert series["score"]["psi"].tolist() == [0.01, 0.01]
    assert series["realized"].empty and series["estimated"].empty


CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import pandas as pd
    from tests.integration.test_monitor_store import rows
    from tests.integration.test_writeback_kill import make_scores
    from crm.monitor_store import write_monitoring
    from crm.writeback import write_scores

    a = json.loads(sys.argv[1])

    def hook(stage):
        if stage == a["stage"]:
            Path(a["marker"]).write_text(stage)
            time.sleep(a["sleep"])

    runs, metrics = rows("run-big", pd.Timestamp(a["as_of"]), n_features=a["n_features"])
    if a["with_scores"]:
        write_scores(a["location"], make_scores(2000, 4), models=("churn",), scoring_run_id="run-big",
                     as_of=pd.Timestamp(a["as_of"]), scored_at=pd.Timestamp(a["as_of"]), on_stage=hook,
                     monitoring=(runs, metrics))
    else:
        write_monitoring(a["location"], runs, metrics, on_stage=hook)
    """
)


@pytest.mark.parametrize("stage, with_scores", [("runs_inserted", False), ("metrics_inserted", False),
                                                ("metrics_inserted", True)])
def test_a_kill_during_the_monitoring_write_leaves_no_partial_rows(url, tmp_path, stage, with_scores):
    write_scores(url, make_scores(300, 1), models=("churn",), scoring_run_id="run-1", as_of=T1, scored_at=AT,
                 monitoring=rows("run-1", T1))
    runs, metrics, scores = read_monitor_runs(url), read_monitor_metrics(url), read_scores(url)
    assert len(runs) == 1 and len(scores) == 300  # written together, in the score transaction
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    marker = tmp_path / "marker"
    args = {"location": url, "stage": stage, "sleep": 120, "marker": str(marker), "as_of": T2.isoformat(),
            "n_features": 2000, "with_scores": with_scores}
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(args)], env={**os.environ, "PYTHONPATH": str(ROOT)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    wait_for(marker, proc)
    kill(proc)
    pd.testing.assert_frame_equal(read_monitor_runs(url), runs)
    pd.testing.assert_frame_equal(read_monitor_metrics(url), metrics)
    pd.testing.assert_frame_equal(read_scores(url), scores)
    # The lock died with it: the same write now goes through whole.
    write_monitoring(url, *rows("run-big", T2, n_features=2000), lock_timeout_s=10)
    assert len(read_monitor_metrics(url)) == len(metrics) + 3 * 2000 + 2


def test_the_tables_are_the_contracts(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    write_monitoring(url, *rows("run-1", T1))
    insp = sa.inspect(sa.create_engine(url))
    assert insp.get_pk_constraint("crm_monitor_runs")["constrained_columns"] == ["scoring_run_id", "model", "stage"]
    assert insp.get_pk_constraint("crm_monitor_metrics")["constrained_columns"] == [
        "scoring_run_id", "model", "stage", "section", "subject", "metric"]
    assert {ix["name"] for ix in insp.get_indexes("crm_monitor_runs")} == {"ix_crm_monitor_runs_model",
                                                                         "ix_crm_monitor_runs_as_of"}
