"""Cross-sectional cross-validation with the training recipe of train_task (models.train.cross_validate).

Tiny seeded frames without timestamps: the outcome depends on the SIGN of x1 * x2 (an interaction a
logistic regression cannot represent) plus a plan effect, so the booster must beat the baseline.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from models.errors import ModelConfigError, TrainingDataError
from models.tasks import TASKS
from models.train import SearchConfig, cross_validate
from tests.defaults import evaluation_settings, lightgbm_params


@dataclass(frozen=True)
class Info:
    label: str
    family: str
    kind: str
    unit: str | None = None


CATALOG = {
    "x1": Info("Signal one", "firmographic", "numeric"),
    "x2": Info("Signal two", "firmographic", "numeric"),
    "noise": Info("Noise", "firmographic", "numeric"),
    "plan": Info("Plan", "subscription", "categorical"),
}

FAST = lightgbm_params(max_trees=120, max_total_leaves=1200, early_stopping_rounds=15, min_category_count=5, search=(
    SearchConfig(num_leaves=15, min_child_samples=20, learning_rate=0.1, feature_fraction=1.0),
    SearchConfig(num_leaves=7, min_child_samples=30, learning_rate=0.15, feature_fraction=0.8),
))
SETTINGS = evaluation_settings()


def make_frame(n: int = 900, seed: int = 0, kind: str = "binary") -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    x1, x2 = rng.uniform(-1, 1, n), rng.uniform(-1, 1, n)
    # "legacy" is rare (about 1 %): below min_category_count in some folds, so it is unseen there.
    plan = rng.choice(np.array(["basic", "pro", "team", "legacy", None], dtype=object), n, p=[.45, .3, .19, .01, .05])
    signal = np.sign(x1 * x2) + 0.7 * (plan == "pro")
    frame = pd.DataFrame({"x1": x1, "x2": x2, "noise": rng.normal(size=n), "plan": pd.Series(plan, dtype="str")})
    if kind == "binary":
        y = (rng.uniform(size=n) < 1 / (1 + np.exp(-(2.5 * signal - 0.5)))).astype(int)
        return frame, pd.Series(y, name="churn")
    y = np.where(rng.uniform(size=n) < 0.6, rng.gamma(2.0, np.exp(2 + signal) / 2.0), 0.0)
    return frame, pd.Series(y, name="clv_margin")


def test_folds_partition_rows_and_booster_beats_logistic_on_an_interaction():
    frame, y = make_frame()
    res = cross_validate(TASKS["churn"], frame, y, CATALOG, FAST, folds=3, seed=7, settings=SETTINGS)

    assert list(res.columns[:4]) == ["fold", "model", "n_fit", "n_valid"]
    assert sorted(res["fold"].unique().tolist()) == [0, 1, 2]
    assert (res.groupby("fold")["model"].apply(sorted) == pd.Series([["lightgbm", "logistic"]] * 3)).all()
    model = res[res["model"] == "lightgbm"].set_index("fold")
    # Each row is tested exactly once: the test folds partition the frame ...
    assert model["n"].sum() == len(frame)
    # ... the inner split takes valid_fraction (0.2) of each fold's training rows ...
    assert ((model["n_fit"] + model["n_valid"] + model["n"]) == len(frame)).all()
    assert np.allclose(model["n_valid"] / (model["n_fit"] + model["n_valid"]), 0.2, atol=0.01)
    # ... and folds are stratified: each fold's positive rate is the overall one within a row or two.
    assert np.allclose(model["positive_rate"], y.mean(), atol=0.01)
    logistic = res[res["model"] == "logistic"].set_index("fold")
    assert model["roc_auc"].mean() > 0.8
    assert model["roc_auc"].mean() > logistic["roc_auc"].mean() + 0.1
    assert model["calibration"].isin(["isotonic", "platt"]).all()
    assert (model["best_iteration"] >= 1).all() and (model["best_iteration"] <= 120).all()
    assert model["ece"].max() < 0.12


def test_same_seed_same_figures_other_seed_other_folds():
    frame, y = make_frame(n=500)
    a = cross_validate(TASKS["churn"], frame, y, CATALOG, FAST, folds=3, seed=1, settings=SETTINGS)
    b = cross_validate(TASKS["churn"], frame, y, CATALOG, FAST, folds=3, seed=1, settings=SETTINGS)
    c = cross_validate(TASKS["churn"], frame, y, CATALOG, FAST, folds=3, seed=2, settings=SETTINGS)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["roc_auc"].to_numpy(), c["roc_auc"].to_numpy())


def test_shuffled_label_gives_chance_auc():
    # Nothing of the test fold may leak into fitting: with a label independent of the features the
    # out-of-fold AUC must be near 0.5 for both the booster and the baseline.
    frame, y = make_frame(n=900, seed=3)
    shuffled = pd.Series(np.random.default_rng(5).permutation(y.to_numpy()), name="churn")
    res = cross_validate(TASKS["churn"], frame, shuffled, CATALOG, FAST, folds=3, seed=0, settings=SETTINGS)
    means = res.groupby("model")["roc_auc"].mean()
    assert abs(means["lightgbm"] - 0.5) < 0.07
    assert abs(means["logistic"] - 0.5) < 0.07


def test_ids_are_ignored_and_regression_uses_the_mean_baseline():
    frame, y = make_frame(n=600, kind="regression")
    frame.insert(0, "entity_id", pd.Series([f"a{i}" for i in range(len(frame))], dtype="str"))
    res = cross_validate(TASKS["clv"], frame, y, CATALOG, FAST, folds=3, seed=0, settings=SETTINGS)
    assert sorted(res["model"].unique().tolist()) == ["lightgbm", "mean"]
    model = res[res["model"] == "lightgbm"]
    assert model["n"].sum() == len(frame)
    assert model["normalized_gini"].mean() > 0.3
    # The exp-total calibration makes predicted totals agree with realised ones on average (a single
    # 200-row fold of skewed amounts is noisy, so the mean over folds is checked).
    assert 0.8 < model["total_ratio"].mean() < 1.25
    assert res.loc[res["model"] == "mean", "spearman"].isna().all()


def test_errors_name_the_problem():
    frame, y = make_frame(n=200)
    with pytest.raises(TrainingDataError, match="without a catalog entry: \\['noise'\\]"):
        cross_validate(TASKS["churn"], frame, y, {k: v for k, v in CATALOG.items() if k != "noise"}, FAST, seed=0,
                       settings=SETTINGS)
    with pytest.raises(TrainingDataError, match="not aligned"):
        cross_validate(TASKS["churn"], frame, y.iloc[:-1], CATALOG, FAST, seed=0, settings=SETTINGS)
    with pytest.raises(TrainingDataError, match="values other than 0/1"):
        cross_validate(TASKS["churn"], frame, y * 2, CATALOG, FAST, seed=0, settings=SETTINGS)
    with pytest.raises(ModelConfigError, match="folds >= 2; got 1"):
        cross_validate(TASKS["churn"], frame, y, CATALOG, FAST, folds=1, seed=0, settings=SETTINGS)
    with pytest.raises(ModelConfigError, match="valid_fraction must be in \\(0, 1\\); got 1.5"):
        cross_validate(TASKS["churn"], frame, y, CATALOG, FAST, seed=0, valid_fraction=1.5, settings=SETTINGS)
    rare = pd.Series([1] * 3 + [0] * (len(frame) - 3), name="churn")
    with pytest.raises(TrainingDataError, match="rarer class has 3 rows; 5-fold"):
        cross_validate(TASKS["churn"], frame, rare, CATALOG, FAST, folds=5, seed=0, settings=SETTINGS)
