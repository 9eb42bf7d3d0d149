"""Realized performance with coverage, the confidence-based estimate and its grading, integrity failures, statuses
and episodes."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.evaluate import binary_metrics, regression_metrics
from models.monitoring import (
    EstimatedPerformance,
    RealizedPerformance,
    Reason,
    count_episodes,
    estimated_performance,
    estimator_reliable,
    feature_drift,
    grade_estimate,
    integrity_failures,
    model_status,
    realized_performance,
    score_health,
)
from models.monitoring.errors import MonitoringInputError
from tests.unit import _monitoring_world as world
from tests.unit._monitoring_world import THRESHOLDS


def scored_frame(p: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame({"entity_id": [f"a{i}" for i in range(len(p))], "score": p, "band": world.bands(p)})


def realize(rng: np.random.Generator, p_true: np.ndarray, p_scored: np.ndarray) -> RealizedPerformance:
    y = (rng.random(len(p_true)) < p_true).astype(float)
    scored = scored_frame(p_scored)
    return realized_performance(scored, pd.DataFrame({"entity_id": scored["entity_id"], "y": y}), kind="binary",
                                min_slice_rows=200, ece_bins=10)


def test_realized_performance_counts_coverage_and_uses_the_evaluate_metrics():
    scored = pd.DataFrame({"entity_id": ["a", "b", "c", "d", "e", "f", "g"],
                           "score": [0.9, 0.8, 0.3, 0.2, 0.1, 0.5, 0.4],
                           "band": ["high", "high", "low", "low", "low", "medium", "medium"],
                           "segment": ["smb"] * 7})
    outcomes = pd.DataFrame({"entity_id": ["a", "b", "c", "d", "e", "f"],
                             "y": [1.0, 0.0, 1.0, 0.0, 0.0, np.nan]})  # f: a lead still open
    perf = realized_performance(scored, outcomes, kind="binary", erased=["g"], slice_columns=["segment"],
                                min_slice_rows=2, ece_bins=2)
    assert perf.coverage == {"n_scored": 7, "n_matured": 5, "n_open": 1, "n_erased": 1, "n_absent": 0,
                             "matured_share": pytest.approx(5 / 7)}
    y, p = np.array([1.0, 0, 1, 0, 0]), np.array([0.9, 0.8, 0.3, 0.2, 0.1])
    for k, v in binary_metrics(y, p, ece_bins=2).items():
        assert perf.metrics[k] == pytest.approx(v), k
    assert perf.metrics["expected_positives"] == pytest.approx(2.3) and perf.metrics["observed_positives"] == 2
    assert perf.metrics["oe_ratio"] == pytest.approx(2 / 2.3)
    # precision per band on the matured rows: high = a, b (1 of 2); low = c, d, e (1 of 3); medium: f is open
    assert perf.bands["high"]["precision"] == 0.5 and perf.bands["low"]["precision"] == pytest.approx(1 / 3)
    assert set(perf.bands) == {"high", "low"}
    assert perf.slices[0]["slice_value"] == "smb" and perf.slices[0]["n"] == 5
    assert RealizedPerformance.from_dict(json.loads(json.dumps(perf.to_dict(), allow_nan=False))) == perf
    # an entity gone from the later extract without an erasure is absent
    absent = realized_performance(scored, outcomes, kind="binary", min_slice_rows=2, ece_bins=2)
    assert absent.coverage["n_absent"] == 1 and absent.coverage["n_erased"] == 0


def test_realized_performance_for_clv_amounts():
    scored = pd.DataFrame({"entity_id": list("abcd"), "score": [100.0, 50.0, 20.0, 10.0]})
    outcomes = pd.DataFrame({"entity_id": list("abcd"), "y": [120.0, 30.0, 25.0, 0.0]})
    perf = realized_performance(scored, outcomes, kind="regression", min_slice_rows=2, ece_bins=10)
    expected = regression_metrics(outcomes["y"].to_numpy(), scored["score"].to_numpy())
    assert perf.metrics["normalized_gini"] == pytest.approx(expected["normalized_gini"])
    assert perf.metrics["mae"] == pytest.approx(expected["mae"])
    assert perf.metrics["predicted_total"] == 180 and perf.metrics["realized_total"] == 175
    with pytest.raises(MonitoringInputError, match=r"outcomes lacks columns \['y'\]"):
        realized_performance(scored, outcomes.rename(columns={"y": "label"}), kind="regression", min_slice_rows=2,
                             ece_bins=10)


def test_estimate_is_within_002_of_the_realized_auc_under_covariate_shift():
    """The population moves (logins, MRR shift; tenure aged) but P(churn | x) does not: the calibrated scores
    still hold, and the estimate tracks the realized AUC in at least 90% of replicates."""
    rng = np.random.default_rng(20)
    replicates, close, reliable = 40, 0, []
    for _ in range(replicates):
        frame = world.features(rng, 10_000, logins_shift_sd=-0.7, mrr_shift_sd=0.5, elapsed_days=60)
        p = world.churn_probability(frame, elapsed_days=60)
        est = estimated_performance(p, seed=1, draws=50, level=THRESHOLDS.level)
        perf = realize(rng, p, p)
        close += abs(est.auc.value - perf.metrics["roc_auc"]) <= 0.02
        reliable.append(grade_estimate(est, perf, thresholds=THRESHOLDS))
    assert close / replicates >= 0.9, close
    assert np.mean([g.reliable for g in reliable]) >= 0.9
    assert EstimatedPerformance.from_dict(json.loads(json.dumps(est.to_dict(), allow_nan=False))) == est
    assert est.positives.low < est.positives.value < est.positives.high
    assert est.brier.value == pytest.approx(float((p * (1 - p)).mean()))


def test_a_prior_shift_raises_a_calibration_alert_and_marks_the_estimator_unreliable():
    """The base churn rate doubles after scoring: the first matured run alerts on calibration, the estimate made at
    scoring time misses, and the model version's estimator is unreliable from then on."""
    rng = np.random.default_rng(21)
    reference = world.reference(rng, 5000)
    frame = world.features(rng, 10_000)
    p = world.churn_probability(frame)
    est = estimated_performance(p, seed=2, draws=50, level=THRESHOLDS.level)
    drift = feature_drift(reference, frame, elapsed_days=0, thresholds=THRESHOLDS)
    health = score_health(reference, pd.Series(p, index=[f"a{i}" for i in range(len(p))]))

    shifted = realize(rng, np.minimum(2 * p, 1.0), p)
    grade = grade_estimate(est, shifted, thresholds=THRESHOLDS)
    status, reasons = model_status(drift, health, thresholds=THRESHOLDS, reference=reference, realized=shifted,
                                   grade=grade)
    assert status == "alert" and reasons[0].code == "calibration" and reasons[0].value == pytest.approx(2, abs=0.15)
    assert not grade.reliable and not grade.rate_ok and grade.rate_ratio == pytest.approx(2, abs=0.15)
    assert "estimator_unreliable" in [r.code for r in reasons]

    # the stationary twin: no calibration alert, the estimate holds
    same = realize(rng, p, p)
    good = grade_estimate(est, same, thresholds=THRESHOLDS)
    status, reasons = model_status(drift, health, thresholds=THRESHOLDS, reference=reference, realized=same,
                                   grade=good)
    assert good.reliable and status == "ok" and reasons == ()
    assert not estimator_reliable([good, grade]) and estimator_reliable([good])


def test_a_ranking_collapse_raises_an_auc_drop_alert():
    rng = np.random.default_rng(22)
    reference = world.reference(rng, 5000)
    frame = world.features(rng, 5000)
    p = world.churn_probability(frame)
    health = score_health(reference, pd.Series(p, index=[f"a{i}" for i in range(len(p))]))
    drift = feature_drift(reference, frame, elapsed_days=0, thresholds=THRESHOLDS)
    # the outcomes now follow another driver: the scores keep their level but lose their ranking
    perf = realize(rng, rng.permutation(p), p)
    status, reasons = model_status(drift, health, thresholds=THRESHOLDS, reference=reference, realized=perf)
    assert status == "alert" and [r.code for r in reasons] == ["auc_drop"]


@pytest.mark.parametrize("case,code", [("nan", "nan_scores"), ("constant", "identical_scores"),
                                       ("shift", "catastrophic_score_shift"), ("contract", "contract")])
def test_integrity_failures_block_the_write_back(case, code):
    rng = np.random.default_rng(23)
    reference = world.reference(rng, 5000)
    p = world.churn_probability(world.features(rng, 2000))
    ids = [f"a{i}" for i in range(len(p))]
    clean = score_health(reference, pd.Series(p, index=ids))
    assert integrity_failures(clean, thresholds=THRESHOLDS) == ()
    contract = ()
    if case == "nan":
        p = p.copy()
        p[:3] = np.nan
        p[3] = np.inf
    elif case == "constant":
        p = np.where(rng.random(len(p)) < 0.6, 0.1234, p)
    elif case == "shift":
        p = np.clip(p + 0.6, 0, 1)
    else:
        contract = ("accounts.created_at not in the future",)
    health = score_health(reference, pd.Series(p, index=ids))
    failures = integrity_failures(health, thresholds=THRESHOLDS, contract_failures=contract)
    assert code in [f.code for f in failures] and all(f.severity == "block" for f in failures)
    if case == "nan":
        assert health.nan_share == pytest.approx(4 / 2000)
    assert Reason.from_dict(json.loads(json.dumps(failures[0].to_dict()))) == failures[0]


def test_count_episodes():
    assert count_episodes([]) == 0
    assert count_episodes(["ok", "alert", "alert", "alert", "ok"]) == 1  # a persisting alert is one episode
    assert count_episodes(["alert", "ok", "alert"]) == 2
    assert count_episodes(["alert", "insufficient", "alert"]) == 1  # an insufficient run says nothing
    assert count_episodes(["alert", "warn", "alert"]) == 2
    assert count_episodes(["warn", "warn", "ok", "warn"], level="warn") == 2


def test_episode_spans_give_the_first_and_last_run_of_each_episode():
    from models.monitoring import episode_spans

    assert episode_spans([]) == []
    assert episode_spans(["ok", "alert", "alert", "ok"]) == [(1, 2)]
    assert episode_spans(["alert", "insufficient", "alert", "ok", "alert"]) == [(0, 2), (4, 4)]
    assert episode_spans(["insufficient", "alert", "insufficient"]) == [(1, 1)]  # insufficient does not extend it
    assert episode_spans(["warn", "warn", "ok", "warn"], level="warn") == [(0, 1), (3, 3)]
