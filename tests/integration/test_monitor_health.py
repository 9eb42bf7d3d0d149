"""The health of ``crmscore monitor`` as people read it, stored on real SQLite and PostgreSQL (marked postgres) and
read back: the realized metrics per slice of a matured run with their intervals, alert episodes (consecutive
alerting nights grouped), and the data-quality trend per extract table."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from crm.monitor_store import read_monitor_metrics, read_monitor_runs, write_monitoring
from models.monitoring import Reason
from models.monitoring.records import quality_figures, run_rows
from models.tasks import TASKS
from pipelines.monitor import backtest_run, health, rows_of
from tests.integration.test_monitor_runs import scored_run
from tests.unit import _monitoring_world as world
from tests.unit._monitoring_world import THRESHOLDS

AS_OF = pd.Timestamp("2026-06-01", tz="UTC")
AT = pd.Timestamp("2026-10-01T03:00:00", tz="UTC")


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="module")
def reference():
    return world.reference(np.random.default_rng(5), 5_000)


def night(run_id: str, as_of: pd.Timestamp, status: str, *, stage: str = "scoring", reasons=(), figures=(),
          n: int = 1000, version: str = "7"):
    return run_rows(scoring_run_id=run_id, model="churn", stage=stage, model_version=version, as_of=as_of,
                    evaluated_as_of=as_of, status=status, reasons=reasons, n=n, blocked=False, accepted_by=None,
                    accepted_at=None, monitored_at=AT, figures=figures)


def stored(url: str):
    return read_monitor_runs(url, model="churn"), read_monitor_metrics(url, model="churn")


def test_the_realized_metrics_per_slice_of_a_matured_run_are_stored_with_their_intervals(url, reference):
    frame, scores, outcomes = scored_run(np.random.default_rng(21), 6_000, flip_logins=False)
    status, reasons, figures, n = backtest_run(TASKS["churn"], reference, scores, outcomes, [], thresholds=THRESHOLDS,
                                               seed=0, draws=50, ece_bins=10, min_slice_rows=1000, slices=frame)
    write_monitoring(url, *night("run-1", AS_OF, status, stage="realized", reasons=reasons, figures=figures, n=n))
    doc = health("churn", "binary", 7, *stored(url))
    (entry,) = doc["realized"]
    got = {s["slice"]: s for s in entry["slices"]}
    joined = frame.merge(outcomes, on="entity_id").merge(scores[["entity_id", "score"]], on="entity_id")
    expected = {f"{col}={value}": part for col in TASKS["churn"].slice_columns if col in frame.columns
                for value, part in joined.groupby(joined[col].astype(str)) if len(part) >= 1000}
    assert set(got) == set(expected) and {"firm__segment=smb", "firm__acquisition_channel=organic"} <= set(got)
    assert "firm__acquisition_channel=partner" not in got  # 8% of 6,000 rows: under the 1,000-row minimum
    for subject, part in expected.items():
        s = got[subject]
        assert s["n"] == len(part)
        assert s["roc_auc"] == pytest.approx(roc_auc_score(part["y"], part["score"]), abs=1e-12)
        brier = float(np.mean((part["score"] - part["y"]) ** 2))
        assert s["brier"] == pytest.approx(brier, abs=1e-12)
        for metric in ("roc_auc", "brier", "ece", "pr_auc"):
            assert s[f"{metric}_low"] <= s[metric] <= s[f"{metric}_high"], (subject, metric)
        assert s["roc_auc_high"] - s["roc_auc_low"] > 0.01  # a real interval, not a point
    # Stored once: a second pass (same rows) adds nothing and changes nothing.
    before = stored(url)
    assert write_monitoring(url, *night("run-1", AS_OF, status, stage="realized", reasons=reasons, figures=figures,
                                        n=n)).runs_written == 0
    for a, b in zip(before, stored(url)):
        pd.testing.assert_frame_equal(a, b)


def test_consecutive_alerting_nights_are_one_episode_with_its_first_and_last_run_and_reason(url):
    drift = Reason("alert", "feature_drift", "eng__logins_30d", 0.4, "Logins in the last 30 days: PSI 0.400")
    shift = Reason("alert", "mean_shift", "score", 0.6, "mean score 60% above the reference base rate")
    warn = Reason("warn", "rank_instability", "score", 0.7, "rank correlation 0.70 with the previous run")
    #          0     1        2        3               4        5     6        7 (a re-check of night 6, ok)
    nights = ["ok", "alert", "alert", "insufficient", "alert", "ok", "alert"]
    frames = []
    for i, status in enumerate(nights):
        why = {1: (drift,), 2: (drift, warn), 4: (shift,), 6: (shift,)}.get(i, ())
        frames.append(night(f"run-{i}", AS_OF + pd.Timedelta(days=i), status, reasons=why,
                            version="7" if i < 4 else "8"))
    frames.append(night("run-realized", AS_OF, "alert", stage="realized", reasons=(shift,)))  # not a night
    write_monitoring(url, *rows_of(frames))
    episodes = health("churn", "binary", 8, *stored(url))["episodes"]
    day = lambda i: (AS_OF + pd.Timedelta(days=i)).isoformat()  # noqa: E731
    assert [(e["first_run"], e["last_run"], e["runs"], e["ongoing"]) for e in episodes] == [
        ("run-1", "run-4", 3, False),  # alert, alert, insufficient (says nothing), alert: one episode
        ("run-6", "run-6", 1, True)]
    first, second = episodes
    assert (first["first_as_of"], first["last_as_of"]) == (day(1), day(4))
    assert first["reason"] == drift.detail and first["codes"] == ["feature_drift", "mean_shift"]
    assert first["model_versions"] == ["7", "8"]  # an episode spans a new champion: never reset
    assert second["reason"] == shift.detail and second["codes"] == ["mean_shift"]
    # A later check of night 6 that is ok ends the episode (the latest computed check of an as-of wins).
    later = run_rows(scoring_run_id="run-6b", model="churn", stage="scoring", model_version="8",
                     as_of=AS_OF + pd.Timedelta(days=6), evaluated_as_of=AS_OF + pd.Timedelta(days=6), status="ok",
                     reasons=(), n=1000, blocked=False, accepted_by=None, accepted_at=None,
                     monitored_at=AT + pd.Timedelta(hours=1), figures=())
    write_monitoring(url, *later)
    assert [e["last_run"] for e in health("churn", "binary", 8, *stored(url))["episodes"]] == ["run-4"]


def test_the_data_quality_trend_per_table_follows_the_nightly_runs(url):
    rng = np.random.default_rng(8)
    accounts = pd.DataFrame({"account_id": [f"A{i}" for i in range(200)], "segment": rng.choice(["smb", "mid"], 200),
                             "mrr": rng.gamma(2.0, 50.0, 200)})
    orders = pd.DataFrame({"order_id": [f"O{i}" for i in range(50)], "amount": rng.gamma(2.0, 10.0, 50)})
    frames, expected = [], []
    for i, null_share in enumerate((0.0, 0.1, 0.2)):
        acc = accounts.copy()
        acc.loc[: int(200 * null_share) - 1, "mrr"] = np.nan  # nulls injected from 0% to 20%
        results = [{"table": "accounts", "status": "failed" if null_share else "passed",
                    "unexpected_count": int(200 * null_share)},
                   {"table": "orders", "status": "passed", "unexpected_count": 0}]
        figures = quality_figures({"accounts": acc, "orders": orders}, results)
        frames.append(night(f"run-{i}", AS_OF + pd.Timedelta(days=i), "ok", figures=figures))
        expected.append((null_share / 3, null_share, int(200 * null_share), int(null_share > 0)))
    write_monitoring(url, *rows_of(frames))
    trend = health("churn", "binary", 7, *stored(url))["quality"]
    assert list(trend) == ["accounts", "orders"]
    got = [(e["null_rate"], e["max_null_rate"], e["defects"], e["rules_failed"]) for e in trend["accounts"]]
    assert [e["scoring_run_id"] for e in trend["accounts"]] == ["run-0", "run-1", "run-2"]
    assert got == [pytest.approx(x, abs=1e-12) for x in expected]
    assert [e["max_null_column"] for e in trend["accounts"][1:]] == ["mrr", "mrr"]
    assert [(e["rows"], e["null_rate"], e["defects"]) for e in trend["orders"]] == [(50, 0.0, 0)] * 3
