"""Feature drift and score health on the seeded synthetic world: no false alarms, power, defects seen through drift,
features that age by construction, the reference's JSON round trip."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.monitoring import (
    DRIFT_COLUMNS,
    ModelReference,
    ScoreHealth,
    count_episodes,
    detection_curve,
    drift_bins,
    feature_drift,
    model_status,
    psi,
    score_health,
    wilson_interval,
)
from models.monitoring.errors import MonitoringInputError
from tests.unit import _monitoring_world as world
from tests.unit._monitoring_world import THRESHOLDS


@pytest.fixture(scope="module")
def reference() -> ModelReference:
    return world.reference(np.random.default_rng(0), 20_000)


def run(reference: ModelReference, frame: pd.DataFrame, *, elapsed_days: float = 0.0, previous=None):
    p = world.churn_probability(frame, elapsed_days=elapsed_days)
    scores = pd.Series(p, index=pd.Index([f"a{i}" for i in range(len(p))], name="entity_id"))
    drift = feature_drift(reference, frame, elapsed_days=elapsed_days, thresholds=THRESHOLDS)
    health = score_health(reference, scores, bands=world.bands(p), previous=previous)
    return drift, health, model_status(drift, health, thresholds=THRESHOLDS)


def by_feature(drift: pd.DataFrame) -> pd.DataFrame:
    return drift.set_index("feature")


def test_reference_freezes_bins_counts_and_metrics(reference):
    mrr = reference.feature("sub__mrr")
    assert len(mrr.edges) == 9 and mrr.bins[-1] == "(missing)"
    assert mrr.counts[-1] == 0 and sum(mrr.counts) == mrr.n == 20_000
    assert all(1900 <= c <= 2100 for c in mrr.counts[:-1])  # deciles
    csat = reference.feature("sup__csat_mean")
    assert csat.missing_rate == pytest.approx(0.3, abs=0.02)
    assert len(csat.edges) < 9  # ties on a 1-5 score collapse the deciles
    channel = reference.feature("firm__acquisition_channel")
    assert channel.categories == tuple(sorted(world.CHANNELS))
    assert channel.bins[-2:] == ("(missing)", "(unseen)") and channel.counts[-1] == 0
    assert reference.feature("firm__tenure_days").grows_with_time
    auc = reference.metrics["roc_auc"]
    assert auc.low < auc.value < auc.high and auc.high - auc.low < 0.04
    assert reference.metrics["ece"].value < 0.02  # the world's probabilities are calibrated
    assert reference.importance["eng__logins_30d"] == max(reference.importance.values())
    assert sum(reference.score.band_shares) == pytest.approx(1.0)


def test_decile_edges_sit_in_the_gaps_so_a_mass_point_that_moves_a_little_stays_in_its_bin():
    from features.catalog import FeatureInfo
    from models.monitoring import build_feature_reference
    from models.monitoring.reference import gap_edges

    # integers: the edges fall between the values, the bins count what decile edges on the values count
    assert gap_edges(np.array([0, 0, 0, 1, 1, 2, 3, 3, 4, 5, 6, 7, 8, 9.0])) == (0.5, 1.5, 2.5, 3.5, 5.5, 6.5, 7.5)
    assert gap_edges(np.array([5.0] * 20)) == (5.0,) and gap_edges(np.array([])) == ()
    # a tenth of the rows at one value (BG/NBD's prior mean for one-time buyers), refitted a little lower next run
    rng = np.random.default_rng(0)
    before = np.r_[np.full(1000, -119.4), rng.uniform(10, 1000, 9000)]
    after = np.r_[np.full(1000, -117.2), rng.uniform(10, 1000, 9000)]
    info = FeatureInfo("Expected margin per purchase", "purchase model", "numeric", "currency")
    ref = build_feature_reference("btyd__expected_order_margin", info, pd.Series(before))
    assert ref.edges[0] == pytest.approx((-119.4 + before[1000:].min()) / 2)
    np.testing.assert_array_equal(ref.bin_counts(before), ref.counts)
    assert ref.bin_counts(after)[0] == 1000  # an edge on -119.4 itself would send all of them to the next bin
    assert psi(ref.counts, ref.bin_counts(after)) < 0.01


def test_reference_survives_a_json_round_trip(reference):
    again = ModelReference.from_dict(json.loads(json.dumps(reference.to_dict(), allow_nan=False)))
    assert again == reference


def test_feature_drift_shape_and_errors(reference):
    drift, health, _ = run(reference, world.features(np.random.default_rng(1), 2000))
    assert tuple(drift.columns) == DRIFT_COLUMNS and len(drift) == len(world.CATALOG)
    assert drift["rank"].tolist() == list(range(1, len(drift) + 1))
    assert ScoreHealth.from_dict(json.loads(json.dumps(health.to_dict(), allow_nan=False))) == health
    with pytest.raises(MonitoringInputError, match=r"lacks reference features \['sub__mrr'\]"):
        feature_drift(reference, world.features(np.random.default_rng(1), 10).drop(columns="sub__mrr"),
                      elapsed_days=0, thresholds=THRESHOLDS)
    with pytest.raises(MonitoringInputError, match="elapsed_days=-1"):
        feature_drift(reference, world.features(np.random.default_rng(1), 10), elapsed_days=-1, thresholds=THRESHOLDS)


def test_no_false_alarms_over_200_stationary_replicates(reference):
    """50 features, the base aged by 90 days: run-level alert rate <= 2% and per-feature warn rate <= 0.5%, both
    with the upper end of their 95% Wilson interval."""
    rng = np.random.default_rng(2)
    replicates, alerts, feature_flags, tests = 200, 0, 0, 0
    for _ in range(replicates):
        drift, _, (status, _) = run(reference, world.features(rng, 2000, elapsed_days=90), elapsed_days=90)
        alerts += status == "alert"
        feature_flags += int(drift["status"].isin(["warn", "alert"]).sum())
        tests += len(drift)
    assert alerts / replicates <= 0.02 and wilson_interval(alerts, replicates, 0.95)[1] <= 0.02, alerts
    assert wilson_interval(feature_flags, tests, 0.95)[1] <= 0.005, feature_flags


def test_thirty_stationary_nightly_runs_give_at_most_one_alert_episode(reference):
    rng = np.random.default_rng(3)
    statuses = []
    for night in range(1, 31):  # the base ages one day a night
        _, _, (status, _) = run(reference, world.features(rng, 3000, elapsed_days=night), elapsed_days=night)
        statuses.append(status)
    assert count_episodes(statuses) <= 1, statuses
    assert statuses.count("ok") >= 29


def test_a_growing_feature_is_compared_after_the_elapsed_days(reference):
    rng = np.random.default_rng(4)
    aged = world.features(rng, 20_000, elapsed_days=180)
    drift = by_feature(feature_drift(reference, aged, elapsed_days=180, thresholds=THRESHOLDS))
    assert drift.loc["firm__tenure_days", "status"] == "ok" and drift.loc["firm__tenure_days", "age_adjusted"]
    # the same values without allowing for the elapsed days drift (the check can fail)
    blind = by_feature(feature_drift(reference, aged, elapsed_days=0, thresholds=THRESHOLDS))
    assert blind.loc["firm__tenure_days", "status"] in ("warn", "alert")
    # an open population whose tenure distribution is stationary is not flagged either (the other null)
    flow = by_feature(feature_drift(reference, world.features(rng, 20_000), elapsed_days=180, thresholds=THRESHOLDS))
    assert flow.loc["firm__tenure_days", "status"] == "ok" and not flow.loc["firm__tenure_days", "age_adjusted"]
    # a real surge of new customers still shows: 40% of the base joined since the reference
    surge = aged.copy()
    new = rng.random(len(surge)) < 0.4
    surge.loc[new, "firm__tenure_days"] = rng.uniform(0, 180, new.sum()).round()
    drift = by_feature(feature_drift(reference, surge, elapsed_days=180, thresholds=THRESHOLDS))
    assert drift.loc["firm__tenure_days", "status"] in ("warn", "alert")


def test_a_03_sd_shift_in_an_important_feature_is_flagged_and_ranked_first(reference):
    rng = np.random.default_rng(5)
    replicates, hits = 20, 0
    for _ in range(replicates):
        drift = feature_drift(reference, world.features(rng, 20_000, logins_shift_sd=0.3), elapsed_days=0,
                              thresholds=THRESHOLDS)
        top = drift.iloc[0]
        hits += top["feature"] == "eng__logins_30d" and top["status"] in ("warn", "alert") and top["reason"] == "shift"
    assert hits / replicates >= 0.95, hits


def test_a_segment_mix_shift_is_caught_on_the_categorical_feature(reference):
    # 60% of the new accounts come from one channel (partner, 8% in the reference); the rest keep their mix
    rest = np.array(world.CHANNEL_P[:-1]) / sum(world.CHANNEL_P[:-1]) * 0.4
    frame = world.features(np.random.default_rng(6), 5000, channel_p=(*rest, 0.6))
    drift = by_feature(feature_drift(reference, frame, elapsed_days=0, thresholds=THRESHOLDS))
    row = drift.loc["firm__acquisition_channel"]
    assert row["status"] == "alert" and row["reason"] == "category_mix"
    assert (drift.drop(index="firm__acquisition_channel")["status"] == "ok").all()


@pytest.mark.parametrize("defect,feature,reason", [
    ("nulls", "sub__mrr", "missing_share"),
    ("x100", "buy__revenue_90d", "shift"),
    ("new_category", "firm__acquisition_channel", "unseen_category"),
    ("frozen_timestamps", "firm__tenure_days", "shift"),
])
def test_data_defects_are_flagged_with_their_reason_and_not_on_the_clean_twin(reference, defect, feature, reason):
    rng = np.random.default_rng(7)
    clean = world.features(rng, 5000)
    broken = clean.copy()
    hit = rng.random(len(broken)) < (0.2 if defect == "nulls" else 0.1)
    if defect == "nulls":  # 0% -> 20% missing
        broken.loc[hit, feature] = np.nan
    elif defect == "x100":  # amounts in cents instead of currency units
        broken[feature] = broken[feature] * 100
    elif defect == "frozen_timestamps":  # a migration stamped every created_at with one date: tenure is one value
        broken[feature] = 12.0
    else:  # a channel the model never saw, on 10% of the rows
        broken.loc[hit, feature] = "tiktok"
    drift = by_feature(feature_drift(reference, broken, elapsed_days=0, thresholds=THRESHOLDS))
    assert drift.loc[feature, "status"] == "alert" and drift.loc[feature, "reason"] == reason
    assert drift.index[0] == feature or drift.loc[feature, "importance"] == 0
    assert (drift.drop(index=feature)["status"] == "ok").all()
    twin = feature_drift(reference, clean, elapsed_days=0, thresholds=THRESHOLDS)
    assert (twin["status"] == "ok").all()
    if defect == "nulls":
        assert drift.loc[feature, "missing_rate"] == pytest.approx(0.2, abs=0.02)
    if defect == "new_category":
        assert drift.loc[feature, "unseen_share"] == pytest.approx(0.1, abs=0.02)
    if defect == "x100":
        assert drift.loc[feature, "out_of_range_share"] > 0.5
    bins = drift_bins(reference, broken, elapsed_days=0)
    part = bins[bins["feature"] == feature]
    assert part["reference_share"].sum() == pytest.approx(1.0) and part["current_share"].sum() == pytest.approx(1.0)
    assert part["contribution"].sum() == pytest.approx(drift.loc[feature, "psi"])


def test_too_few_rows_is_insufficient_not_ok_or_alert(reference):
    frame = world.features(np.random.default_rng(8), 300)
    frame["eng__noise_0"] = np.nan  # even a broken feature is not judged on 300 rows
    drift, health, (status, reasons) = run(reference, frame)
    assert (drift["status"] == "insufficient").all() and drift["p_value"].isna().all()
    assert status == "insufficient" and reasons == ()


def test_score_health_reads_the_scores(reference):
    rng = np.random.default_rng(9)
    frame = world.features(rng, 4000)
    p = world.churn_probability(frame)
    ids = pd.Index([f"a{i}" for i in range(len(p))])
    same = score_health(reference, pd.Series(p, index=ids), bands=world.bands(p),
                        previous=pd.Series(p + rng.normal(0, 0.001, len(p)), index=ids))
    assert same.nan_share == 0 and same.identical_share < 0.01 and same.psi < THRESHOLDS.psi_warn
    assert abs(same.mean_shift) < 0.1 and same.rank_stability > 0.99 and same.n_common == 4000
    assert same.band_psi < 0.01 and set(same.band_shares) == {"high", "medium", "low"}
    shuffled = score_health(reference, pd.Series(p, index=ids), previous=pd.Series(rng.permutation(p), index=ids))
    assert abs(shuffled.rank_stability) < 0.1
    status, reasons = model_status(feature_drift(reference, frame, elapsed_days=0, thresholds=THRESHOLDS), shuffled,
                                   thresholds=THRESHOLDS)
    assert status == "warn" and [r.code for r in reasons] == ["rank_instability"]
    doubled = score_health(reference, pd.Series(np.minimum(2 * p, 1), index=ids))
    assert doubled.mean_shift == pytest.approx(1.0, abs=0.1) and doubled.mean_p_value < 1e-10
    status, reasons = model_status(feature_drift(reference, frame, elapsed_days=0, thresholds=THRESHOLDS), doubled,
                                   thresholds=THRESHOLDS)
    assert status == "alert" and {r.code for r in reasons} == {"mean_shift", "score_shift"}


def test_detection_curve_rises_with_shift_and_rows():
    curve = detection_curve([0.0, 0.15, 0.3], [1000, 10_000], replicates=15, null_features=9, thresholds=THRESHOLDS,
                            seed=10)
    assert list(curve.columns) == ["n_rows", "shift_sd", "replicates", "detected", "detection_rate", "low", "high",
                                   "ranked_first"]
    rate = curve.set_index(["n_rows", "shift_sd"])["detection_rate"]
    assert rate[(1000, 0.0)] == 0 and rate[(10_000, 0.0)] == 0
    # 0.3 sd (PSI 0.086 on deciles) is above psi_warn: found at 10k rows always, at 1k mostly
    assert rate[(10_000, 0.3)] == 1.0 and rate[(1000, 0.3)] >= 0.5
    # 0.15 sd (PSI 0.022) is below the size threshold: however many rows, it is not worth a warning
    assert rate[(10_000, 0.15)] == 0 and rate[(1000, 0.15)] <= 0.2
    assert (curve["low"] <= curve["detection_rate"]).all() and (curve["detection_rate"] <= curve["high"]).all()
