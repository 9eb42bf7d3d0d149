"""Training: out-of-time split, search, calibration, baselines, and the Predictor / TrainingReport interface.

The data are tiny seeded frames in the FeatureSet shape (entity_id, cutoff_ts, features; a catalog of
FeatureInfo-like records) with a known non-linear signal: the outcome depends on the SIGN of
x1 * x2 (an interaction a logistic regression cannot represent) plus a segment effect.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import pytest

from models.errors import ModelConfigError, ModelSignatureMismatch, TrainingDataError
from models.tasks import TASKS
from models.train import (
    SearchConfig,
    TrainingData,
    selection_tolerance,
    split_cutoffs,
    train_task,
    trees_allowed,
)
from tests.defaults import evaluation_settings, gate_config, lightgbm_params


@dataclass(frozen=True)
class Info:
    label: str
    family: str
    kind: str
    unit: str | None = None


CATALOG = {
    "eng__x1": Info("Signal one", "eng", "numeric"),
    "eng__x2": Info("Signal two", "eng", "numeric"),
    "buy__noise": Info("Noise", "buy", "numeric"),
    "buy__margin_365d": Info("Margin last 365 days", "buy", "numeric", "currency"),
    "firm__segment": Info("Segment", "firm", "categorical"),
    "firm__country": Info("Country", "firm", "categorical"),
}

# A lean search keeps the unit tests fast; the packaged search is exercised by the benchmark.
FAST = lightgbm_params(max_trees=150, max_total_leaves=1500, early_stopping_rounds=20, min_category_count=5, search=(
    SearchConfig(num_leaves=15, min_child_samples=20, learning_rate=0.1, feature_fraction=1.0),
    SearchConfig(num_leaves=7, min_child_samples=40, learning_rate=0.1, feature_fraction=0.8),
))


def make_data(kind: str = "binary", *, n: int = 700, n_cutoffs: int = 5, seed: int = 0,
              horizon_days: int = 30) -> TrainingData:
    """n entities at each of n_cutoffs monthly cutoffs; label from the known signal."""
    rng = np.random.default_rng(seed)
    cutoffs = pd.date_range("2025-01-01", periods=n_cutoffs, freq="MS", tz="UTC")
    frames, labels = [], []
    for c in cutoffs:
        x1, x2 = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
        seg = rng.choice(np.array(["smb", "enterprise", "consumer", None], dtype=object), n, p=[.4, .2, .35, .05])
        country = rng.choice(np.array(["DE", "FR", "US"], dtype=object), n)
        signal = np.sign(x1 * x2) + 0.6 * (seg == "smb")
        margin_past = rng.gamma(2.0, 50.0, n) * np.exp(0.5 * signal)
        if kind == "binary":
            y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(2.5 * signal - 0.8)))).astype(float)
        else:  # zero-heavy skewed margin
            mu = np.exp(3 + 1.2 * signal)
            y = np.where(rng.uniform(size=n) < 1 / (1 + np.exp(-(1.5 * signal))), rng.gamma(2.0, mu / 2.0), 0.0)
        frames.append(pd.DataFrame({
            "entity_id": pd.Series([f"e{i}" for i in range(n)], dtype="str"),
            "cutoff_ts": pd.Series([c] * n).astype("datetime64[us, UTC]"),
            "eng__x1": x1, "eng__x2": x2, "buy__noise": rng.normal(size=n), "buy__margin_365d": margin_past,
            "firm__segment": pd.Series(seg, dtype="str"), "firm__country": pd.Series(country, dtype="str"),
        }))
        labels.append(y)
    frame = pd.concat(frames, ignore_index=True)
    label = pd.Series(np.concatenate(labels), name="churn" if kind == "binary" else "clv_margin")
    return TrainingData(frame=frame, label=label, catalog=CATALOG, horizon_days=horizon_days)


SETTINGS = evaluation_settings(slice_min_size=100)


@pytest.fixture(scope="module")
def churn_data() -> TrainingData:
    return make_data("binary")


@pytest.fixture(scope="module")
def churn_model(churn_data):
    return train_task(TASKS["churn"], churn_data, FAST, seed=7, settings=SETTINGS)


def test_binary_model_beats_chance_and_the_logistic_baseline(churn_model):
    auc = churn_model.report.metrics["roc_auc"]
    assert auc > 0.8
    assert auc > churn_model.report.baseline_metrics["logistic"]["roc_auc"] + 0.1
    assert churn_model.report.metrics["lift_top_decile"] > 1.3
    table = churn_model.report.comparison()
    assert list(table.index) == ["model", "logistic"]
    assert table.loc["model", "roc_auc"] == auc


def test_oot_split_records_cutoffs_and_evaluates_only_the_last(churn_model, churn_data):
    cutoffs = sorted(churn_data.frame["cutoff_ts"].unique())
    assert churn_model.report.test_cutoffs == (cutoffs[-1],)
    assert churn_model.report.valid_cutoffs == (cutoffs[-2],)
    assert churn_model.report.train_cutoffs == tuple(cutoffs[:-2])
    assert cutoffs[-1] not in churn_model.report.train_cutoffs + churn_model.report.valid_cutoffs
    ev = churn_model.report.evaluation_frame
    assert (ev["cutoff_ts"] == cutoffs[-1]).all()
    assert str(ev["cutoff_ts"].dtype) == "datetime64[us, UTC]" and ev["entity_id"].dtype == "str"
    assert len(churn_model.report.evaluation_frame) == (churn_data.frame["cutoff_ts"] == cutoffs[-1]).sum()


def test_last_cutoff_labels_never_influence_the_fitted_model(churn_model, churn_data):
    # Flip every label of the held-out cutoff: booster, calibrator and vocabulary must be identical.
    last = churn_data.frame["cutoff_ts"] == churn_data.frame["cutoff_ts"].max()
    flipped = churn_data.label.where(~last, 1.0 - churn_data.label)
    other = train_task(TASKS["churn"], replace(churn_data, label=flipped), FAST, seed=7, settings=SETTINGS)
    assert other.predictor.booster.model_to_string() == churn_model.predictor.booster.model_to_string()
    assert other.predictor.calibrator == churn_model.predictor.calibrator
    assert other.report.metrics["roc_auc"] < 0.5  # while the held-out metrics do see the flipped labels


def test_unseen_category_and_missing_values_at_predict_time(churn_model, churn_data):
    new = churn_data.frame.head(50).copy()
    new["firm__segment"] = pd.Series(["martian"] * 25 + [np.nan] * 25, dtype="str", index=new.index)
    p = churn_model.predictor.predict(new)
    assert p.shape == (50,) and np.all((p > 0) & (p < 1))
    # An unseen value is scored exactly as a missing one.
    as_missing = new.assign(firm__segment=pd.Series([np.nan] * 50, dtype="str", index=new.index))
    np.testing.assert_allclose(p, churn_model.predictor.predict(as_missing))


def test_missing_feature_column_raises_with_its_name(churn_model, churn_data):
    with pytest.raises(ModelSignatureMismatch, match=r"missing \['eng__x2'\]"):
        churn_model.predictor.predict(churn_data.frame.drop(columns=["eng__x2"]))


def test_contributions_sum_to_raw_score_and_calibration_maps_raw(churn_model, churn_data):
    x = churn_data.frame.head(200)
    contrib = churn_model.predictor.contributions(x)
    assert contrib.shape == (200, len(churn_model.predictor.feature_names) + 1)
    raw = churn_model.predictor.predict_raw(x)
    np.testing.assert_allclose(contrib.sum(axis=1), raw, atol=1e-6)
    np.testing.assert_allclose(churn_model.predictor.calibrate_raw(raw), churn_model.predictor.predict(x))


def test_booster_is_trimmed_to_best_iteration_within_budget(churn_model):
    assert churn_model.predictor.booster.num_trees() == churn_model.report.best_iteration <= FAST.max_trees
    assert churn_model.report.params["num_leaves"] <= FAST.max_leaves
    leaves = [t["num_leaves"] for t in churn_model.predictor.booster.dump_model()["tree_info"]]
    assert max(leaves) <= FAST.max_leaves and sum(leaves) <= FAST.max_total_leaves
    assert len(churn_model.report.search_results) == len(FAST.search)


def test_total_leaves_budget_lets_small_trees_grow_longer():
    p = lightgbm_params(max_trees=400, max_leaves=15, max_total_leaves=3000)
    assert trees_allowed(p, SearchConfig(15, 20, 0.1, 1.0)) == 200
    assert trees_allowed(p, SearchConfig(7, 20, 0.1, 1.0)) == 400  # 3000 // 7 = 428, capped
    assert trees_allowed(p, SearchConfig(63, 20, 0.1, 1.0)) == 200  # leaves capped at 15 first


def test_selection_tolerance_is_standard_errors_of_the_best_validation_auc():
    from models.monitoring.stats import auc_standard_error

    y = np.r_[np.ones(20), np.zeros(180)]
    assert selection_tolerance(TASKS["churn"], y, 0.8, 0.0) == 0.0
    assert selection_tolerance(TASKS["churn"], y, 0.8, 1.0) == pytest.approx(auc_standard_error(0.8, 20, 180))
    assert selection_tolerance(TASKS["churn"], y, 0.8, 2.0) == pytest.approx(2 * auc_standard_error(0.8, 20, 180))
    # Ten times the validation rows: a tolerance about sqrt(10) times smaller.
    big = np.r_[np.ones(200), np.zeros(1800)]
    ratio = selection_tolerance(TASKS["churn"], y, 0.8, 1.0) / selection_tolerance(TASKS["churn"], big, 0.8, 1.0)
    assert 2.5 < ratio < 3.5
    # No closed-form standard error for the normalised Gini: the best config wins.
    assert selection_tolerance(TASKS["clv"], np.r_[np.zeros(50), np.arange(50.0)], 0.6, 1.0) == 0.0


def test_the_first_listed_config_within_the_tolerance_is_chosen(churn_data):
    # Stumps cannot represent the x1 * x2 interaction, so the 15-leaf config wins on validation by a wide margin.
    stumps, deep = SearchConfig(2, 20, 0.1, 1.0), SearchConfig(15, 20, 0.1, 1.0)
    plain = train_task(TASKS["churn"], churn_data, replace(FAST, search=(stumps, deep), selection_standard_errors=0.0),
                       seed=0, settings=SETTINGS)
    scores = [r["valid_roc_auc"] for r in plain.report.search_results]
    assert scores[1] > scores[0] + 0.05
    assert [r["chosen"] for r in plain.report.search_results] == [False, True]
    assert plain.report.params["num_leaves"] == 15
    # One standard error does not cover that gap; a hundred do, and the first listed (the stumps) is kept.
    one_se = train_task(TASKS["churn"], churn_data, replace(FAST, search=(stumps, deep), selection_standard_errors=1.0),
                        seed=0, settings=SETTINGS)
    assert one_se.report.params["num_leaves"] == 15
    assert 0 < one_se.report.search_results[1]["selection_tolerance"] < scores[1] - scores[0]
    wide = train_task(TASKS["churn"], churn_data, replace(FAST, search=(stumps, deep), selection_standard_errors=100.0),
                      seed=0, settings=SETTINGS)
    assert [r["chosen"] for r in wide.report.search_results] == [True, False]
    assert wide.report.params["num_leaves"] == 2 and wide.report.metrics["valid_roc_auc"] == pytest.approx(scores[0])


def test_slice_metrics_and_calibration_record(churn_model):
    s = churn_model.report.slice_metrics
    assert set(s["slice_column"]) <= {"firm__segment", "firm__country"}
    assert (s["n"] >= SETTINGS.slice_min_size).all()
    assert {"firm__segment", "firm__country"} <= set(s["slice_column"])
    assert churn_model.report.params["calibration"] in {"isotonic", "platt"}
    assert churn_model.report.metrics["slice_collapse_count"] == len(churn_model.report.slice_collapses)


def test_calibration_lowers_ece_when_the_booster_is_miscalibrated():
    # A fit fold with a much higher base rate than the later cutoffs leaves the booster's own
    # probabilities too high; calibration on the validation cutoff repairs it on the held-out cutoff.
    data = make_data("binary", seed=3)
    cut = data.frame["cutoff_ts"]
    rng = np.random.default_rng(0)
    early = cut < sorted(cut.unique())[-2]
    label = data.label.where(~early | (rng.uniform(size=len(cut)) > 0.5), 1.0)
    m = train_task(TASKS["churn"], replace(data, label=label), FAST, seed=1, settings=SETTINGS)
    assert m.report.metrics["ece_uncalibrated"] > 0.1
    assert m.report.metrics["ece"] < m.report.metrics["ece_uncalibrated"] / 2


def test_clv_tweedie_beats_the_mean_and_reports_historical_formula():
    m = train_task(TASKS["clv"], make_data("clv", seed=1), FAST, seed=3, settings=SETTINGS)
    assert m.report.params["objective"] == "tweedie"
    mean = m.report.baseline_metrics["mean"]
    assert m.report.metrics["normalized_gini"] > 0.4 > mean["normalized_gini"]
    assert m.report.metrics["mae"] < mean["mae"]
    assert 0.7 < m.report.metrics["total_ratio"] < 1.3
    hist = m.report.baseline_metrics["historical_formula"]
    assert m.report.metrics["normalized_gini"] > hist["normalized_gini"]
    assert 0 < hist["annual_churn_rate"] < 1 and hist["customer_equity"] > 0
    assert np.all(m.predictor.predict(make_data("clv", seed=9).frame) >= 0)


def test_clv_with_some_negative_margins_trains_on_clipped_labels():
    data = make_data("clv", n=300, n_cutoffs=4, seed=4)
    label = data.label.copy()
    label.iloc[::50] = -25.0  # loss-making accounts
    m = train_task(TASKS["clv"], replace(data, label=label), FAST, seed=0, settings=SETTINGS)
    n_neg_fit_valid = int((label[~data.frame["cutoff_ts"].eq(data.frame["cutoff_ts"].max())] < 0).sum())
    assert m.report.metrics["labels_clipped_at_zero"] == n_neg_fit_valid > 0
    assert (m.report.evaluation_frame["y"] < 0).any()  # evaluation keeps the realised margin


def test_external_baseline_predictions_are_evaluated_on_the_held_out_rows(churn_data):
    oracle = pd.Series(np.where(churn_data.label > 0, 0.9, 0.1), index=churn_data.frame.index)
    m = train_task(TASKS["churn"], replace(churn_data, baseline_predictions={"oracle": oracle}), FAST, seed=7,
                   settings=SETTINGS)
    assert m.report.baseline_metrics["oracle"]["roc_auc"] == pytest.approx(1.0)
    assert "baseline_oracle" in m.report.evaluation_frame


@pytest.mark.parametrize("name", sorted(TASKS))
def test_every_registered_task_trains_scores_and_explains(name):
    spec = TASKS[name]
    data = make_data(spec.kind, n=400, n_cutoffs=4, seed=11)
    data = replace(data, label=data.label.rename(spec.label))
    m = train_task(spec, data, FAST, seed=0, settings=SETTINGS)
    x = data.frame.head(30)
    assert m.predictor.predict(x).shape == (30,)
    np.testing.assert_allclose(m.predictor.contributions(x).sum(axis=1), m.predictor.predict_raw(x), atol=1e-6)
    # every baseline the spec names, but btyd: models.dataset fits that one on the extract's orders
    assert set(m.report.baseline_metrics) == set(spec.baselines) - {"btyd"}
    assert np.isfinite(m.report.metrics[spec.primary_metric])


def test_too_few_cutoffs_is_refused(churn_data):
    two = churn_data.frame["cutoff_ts"] >= sorted(churn_data.frame["cutoff_ts"].unique())[-2]
    data = TrainingData(churn_data.frame[two], churn_data.label[two], CATALOG)
    with pytest.raises(TrainingDataError, match="at least 3 cutoffs"):
        train_task(TASKS["churn"], data, FAST, seed=0, settings=SETTINGS)


def test_misaligned_label_and_non_binary_label_are_refused(churn_data):
    with pytest.raises(TrainingDataError, match="not aligned"):
        train_task(TASKS["churn"], replace(churn_data, label=churn_data.label.iloc[:-1]), FAST, seed=0, settings=SETTINGS)
    with pytest.raises(TrainingDataError, match="values other than 0/1"):
        train_task(TASKS["churn"], replace(churn_data, label=churn_data.label * 2), FAST, seed=0, settings=SETTINGS)


def test_feature_without_catalog_entry_is_refused(churn_data):
    frame = churn_data.frame.assign(eng__mystery=1.0)
    with pytest.raises(TrainingDataError, match=r"without a catalog entry: \['eng__mystery'\]"):
        train_task(TASKS["churn"], replace(churn_data, frame=frame), FAST, seed=0, settings=SETTINGS)


def test_purge_drops_training_cutoffs_whose_labels_reach_past_the_test_cutoff():
    cutoffs = pd.Series(pd.date_range("2025-01-01", periods=6, freq="MS", tz="UTC"))
    fit, valid, test = split_cutoffs(cutoffs, horizon_days=60, purge_label_overlap=True)
    assert test == (cutoffs.iloc[5],)
    # 05-01 + 60 d = 06-30 reaches past the test cutoff 06-01 and is purged; 04-01 + 60 d = 05-31 stays.
    assert valid == (cutoffs.iloc[3],) and fit == tuple(cutoffs.iloc[:3])
    with pytest.raises(TrainingDataError, match="After purging"):
        split_cutoffs(cutoffs, horizon_days=150, purge_label_overlap=True)


def test_same_seed_same_model(churn_data, churn_model):
    again = train_task(TASKS["churn"], churn_data, FAST, seed=7, settings=SETTINGS)
    assert again.predictor.booster.model_to_string() == churn_model.predictor.booster.model_to_string()
    assert again.report.metrics == churn_model.report.metrics


def test_bad_params_and_settings_are_refused():
    with pytest.raises(ModelConfigError, match="tweedie_variance_power must be in"):
        lightgbm_params(tweedie_variance_power=2.5)
    with pytest.raises(ModelConfigError, match="selection_standard_errors must be >= 0; got -1"):
        lightgbm_params(selection_standard_errors=-1.0)
    with pytest.raises(ModelConfigError, match="Unknown calibration method 'beta'"):
        evaluation_settings(calibration="beta")
    with pytest.raises(ModelConfigError, match="collapse_min_n must be >= 1; got 0"):
        evaluation_settings(collapse_min_n=0)


def test_collapsed_slices_are_those_no_better_than_chance(churn_data):
    # Country carries no signal in make_data: reversing the label in one country's held-out rows puts its AUC
    # below chance, and only that slice collapses.
    test_rows = churn_data.frame["cutoff_ts"] == churn_data.frame["cutoff_ts"].max()
    fr = test_rows & (churn_data.frame["firm__country"] == "FR")
    m = train_task(TASKS["churn"], replace(churn_data, label=churn_data.label.where(~fr, 1 - churn_data.label)),
                   FAST, seed=7, settings=SETTINGS)
    collapsed = m.report.slice_collapses
    assert list(zip(collapsed["slice_column"], collapsed["slice_value"])) == [("firm__country", "FR")]
    assert collapsed["value"].iloc[0] < 0.5
    assert m.report.metrics["slice_collapse_count"] == 1


@pytest.mark.parametrize("task", ["churn", "clv"])
def test_the_model_card_labels_every_metric_the_trainer_reports(task, churn_model):
    from models.card import render_model_card
    from models.metrics import metric_spec

    model = churn_model if task == "churn" else train_task(TASKS["clv"], make_data("clv", seed=1), FAST, seed=3,
                                                           settings=SETTINGS)
    model = model.report
    assert [m for m in model.metrics if metric_spec(m) is None] == []
    for values in model.baseline_metrics.values():
        assert [m for m in values if metric_spec(m) is None] == []
    md = render_model_card(model, TASKS[task], version=1, data_window=(None, None), eligibility_text="all",
                           extract_fingerprint={}, top_drivers=[], known_limits=[],
                           max_total_error=gate_config(TASKS[task].primary_metric).max_total_error)
    table = md.split("## Metrics vs baselines (held-out test cutoffs)\n\n", 1)[1].split("\n\n", 1)[0]
    shown = [line.split(" | ")[0].removeprefix("| ") for line in table.splitlines()[2:]]
    assert len(shown) == len(model.metrics)
    assert [name for name in shown if "_" in name] == []  # a raw metric name would show its underscores
