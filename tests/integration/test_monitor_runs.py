"""The monitoring glue (pipelines.monitor) on the seeded monitoring world and a generated CRM, stored on real
SQLite: concept drift is silent in the features and caught by the first matured run's backtest; storing twice
writes identical rows; matured runs are exactly those whose label window closed; coverage counts erased records."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm.monitor_store import monitor_series, read_monitor_metrics, read_monitor_runs, write_monitoring
from models.monitoring.records import run_rows
from models.tasks import TASKS
from pipelines.flows import matured
from pipelines.monitor import backtest_run, check_run, health, outcomes_at, rows_of
from tests.unit import _monitoring_world as world
from tests.unit._monitoring_world import THRESHOLDS

AS_OF = pd.Timestamp("2026-06-01", tz="UTC")
LATER = pd.Timestamp("2026-10-01", tz="UTC")
AT = pd.Timestamp("2026-10-01T03:00:00", tz="UTC")


def scored_run(rng: np.random.Generator, n: int, *, flip_logins: bool):
    """A run of the stationary world: features and calibrated scores as at training; the outcomes follow the same
    relation, or (concept drift) one where logins raise churn instead of lowering it."""
    frame = world.features(rng, n)
    frame.insert(0, "entity_id", [f"A{i:06d}" for i in range(n)])
    p = world.churn_probability(frame)
    truth = p
    if flip_logins:
        loc, scale = 3.0, np.sqrt(3)
        z = np.log(p / (1 - p)) + 2 * 0.9 * (frame["eng__logins_30d"].to_numpy() - loc) / scale
        truth = 1 / (1 + np.exp(-z))
    scores = pd.DataFrame({"entity_id": frame["entity_id"], "score": p, "band": world.bands(p).to_numpy()})
    outcomes = pd.DataFrame({"entity_id": frame["entity_id"], "y": (rng.random(n) < truth).astype(float)})
    return frame, scores, outcomes


def monitored(reference, frame, scores, outcomes, run_id: str, as_of: pd.Timestamp):
    spec = TASKS["churn"]
    checked = check_run(spec, reference, frame, scores, None, as_of=as_of, thresholds=THRESHOLDS, seed=0, draws=50)
    status, reasons, figures, n = backtest_run(spec, reference, scores, outcomes, [], thresholds=THRESHOLDS, seed=0,
                                               draws=50, ece_bins=10, min_slice_rows=200)
    common = {"scoring_run_id": run_id, "model": "churn", "model_version": "7", "as_of": as_of, "blocked": False,
              "accepted_by": None, "accepted_at": None, "monitored_at": AT}
    rows = rows_of([run_rows(**common, stage="scoring", evaluated_as_of=as_of, status=checked.status,
                             reasons=checked.reasons, n=checked.n, figures=checked.figures),
                    run_rows(**common, stage="realized", evaluated_as_of=LATER, status=status, reasons=reasons, n=n,
                             figures=figures)])
    return checked, (status, reasons), rows


@pytest.fixture(scope="module")
def reference():
    return world.reference(np.random.default_rng(3), 20_000)


def test_concept_drift_is_silent_in_the_features_and_caught_by_the_first_matured_run(reference, tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.db'}"
    rng = np.random.default_rng(11)
    stationary = monitored(reference, *scored_run(rng, 20_000, flip_logins=False), "run-stationary", AS_OF)
    drifted = monitored(reference, *scored_run(rng, 20_000, flip_logins=True), "run-concept",
                        AS_OF + pd.Timedelta(days=30))
    for checked, (status, reasons), _ in (stationary, drifted):
        assert checked.status in ("ok", "warn") and not checked.blocking
        assert [r for r in checked.reasons if r.code == "feature_drift"] == []  # the features did not move
    assert stationary[1][0] in ("ok", "warn")  # warn at most: an estimate may miss by chance
    status, reasons = drifted[1]
    assert status == "alert" and "auc_drop" in {r.code for r in reasons}

    for _, _, rows in (stationary, drifted):
        write_monitoring(url, *rows)
    runs, metrics = read_monitor_runs(url), read_monitor_metrics(url)
    for _, _, rows in (stationary, drifted):  # stored once: a second monitoring pass changes nothing
        assert write_monitoring(url, *rows).runs_written == 0
    pd.testing.assert_frame_equal(read_monitor_runs(url), runs)
    pd.testing.assert_frame_equal(read_monitor_metrics(url), metrics)

    series = monitor_series(url, "churn")
    realized = series["realized"].set_index("scoring_run_id")
    assert realized.loc["run-concept", "roc_auc"] < realized.loc["run-stationary", "roc_auc"] - 0.05
    assert realized.loc["run-concept", "n_matured"] == 20_000
    assert len(series["features"]) == 2 * len(reference.features)
    doc = health("churn", "binary", 7, runs, metrics)  # the champion's latest matured run is the concept-drift one
    assert doc["status"] == "alert" and doc["scoring_run_id"] == "run-concept"
    assert [(r["scoring_run_id"], r["status"]) for r in doc["realized"]] == [("run-stationary", stationary[1][0]),
                                                                            ("run-concept", "alert")]
    assert "auc_drop" in {r["code"] for r in doc["reasons"]}
    assert {"scoring_run_id", "as_of", "model_version", "n", "roc_auc", "ece", "status", "slices"} == set(
        doc["realized"][0])
    assert {"feature", "label", "psi", "status"} == set(doc["features"][0])


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2000), st.integers(1, 400), st.integers(-800, 800))
def test_a_run_is_matured_only_once_its_whole_label_window_has_closed(start, horizon, offset):
    run_as_of = pd.Timestamp("2024-01-01", tz="UTC") + pd.Timedelta(days=start)
    extract_as_of = run_as_of + pd.Timedelta(days=horizon + offset)
    last_label_instant = run_as_of + pd.Timedelta(days=horizon) - pd.Timedelta(microseconds=1)
    assert matured(run_as_of, horizon, extract_as_of) == (last_label_instant < extract_as_of)


def test_outcomes_are_rebuilt_with_the_label_code_and_erased_records_counted():
    from crm.privacy import exclude_deleted, profiling_view
    from crm.synthetic import generate_world
    from features.labels import make_labels
    from features.spine import build_spine

    w = generate_world(400, 0, 5, LATER)
    raw = {k: v.copy() for k, v in w.tables.items()}
    run_as_of = LATER - pd.Timedelta(days=120)
    tables = profiling_view(exclude_deleted(raw))
    spine = build_spine(tables, "active_customers", [run_as_of])
    ids = spine["entity_id"]
    gone = ids.iloc[:7].tolist()  # erased since the run
    raw["accounts"].loc[raw["accounts"]["account_id"].isin(gone), "deleted_at"] = LATER - pd.Timedelta(days=1)
    tables = profiling_view(exclude_deleted(raw))
    outcomes, erased = outcomes_at(TASKS["churn"], tables, raw, pd.concat([ids, pd.Series(["NOBODY"])]), run_as_of, 90,
                                   make_labels)
    assert erased == sorted(gone) and "NOBODY" not in set(outcomes["entity_id"])
    kept = spine.loc[~ids.isin(gone)].reset_index(drop=True)
    expected = make_labels(tables, kept, "churn", 90).to_numpy(dtype=float)
    np.testing.assert_array_equal(outcomes.set_index("entity_id").loc[kept["entity_id"], "y"].to_numpy(), expected)
