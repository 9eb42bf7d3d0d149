"""models.treeshap: pattern TreeSHAP equals LightGBM's own pred_contrib on every kind of split.

Each booster is trained on seeded data built to exercise one of LightGBM's decision rules (NaN as missing,
zero as missing, no missing marker, categorical sets with NaN, negative and unseen codes), and the rows scored
include values placed exactly on the split thresholds, where a `<` instead of `<=` would show.
"""
from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.treeshap import PatternTreeShap, TreeShapError


def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    b = rng.poisson(2, n).astype(float)  # many exact zeros and repeated integers
    c = rng.uniform(-3, 3, n)
    a[rng.random(n) < 0.1] = np.nan
    b[rng.random(n) < 0.1] = np.nan
    seg = pd.Categorical.from_codes(rng.integers(-1, 5, n), categories=["s0", "s1", "s2", "s3", "s4"])  # -1 = NaN
    logit = np.nan_to_num(a) * 0.8 - 0.5 * np.nan_to_num(b, nan=4) + np.sin(c) + (seg.codes == 2) - 0.5 * (seg.codes < 0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return pd.DataFrame({"a": a, "b": b, "c": c, "seg": seg}), y


def _booster(objective: str = "binary", **params) -> tuple[lgb.Booster, pd.DataFrame]:
    X, y = _frame(3000, seed=11)
    target = y if objective == "binary" else np.where(y == 1, np.abs(X["c"].to_numpy()) * 10, 0.0)
    base = {"objective": objective, "num_leaves": 15, "max_depth": 6, "learning_rate": 0.1, "min_data_in_leaf": 10,
            "min_data_per_group": 5, "cat_smooth": 1, "verbose": -1, "seed": 3, "deterministic": True,
            "num_threads": 1}
    booster = lgb.train({**base, **params}, lgb.Dataset(X, target), num_boost_round=60)
    return booster, X


def _scoring_rows(booster: lgb.Booster, X: pd.DataFrame) -> pd.DataFrame:
    """Fresh rows plus rows carrying every numeric threshold of the model exactly, and zeros and NaN."""
    fresh, _ = _frame(2000, seed=99)
    thresholds: dict[int, list[float]] = {}

    def walk(node: dict) -> None:
        if "split_feature" in node:
            if node["decision_type"] == "<=":
                thresholds.setdefault(node["split_feature"], []).append(float(node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in booster.dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    edge = fresh.iloc[:0].copy()
    rows = []
    rng = np.random.default_rng(5)
    for f, values in thresholds.items():
        col = X.columns[f]
        for v in values + [0.0, np.nan, -0.0]:
            row = fresh.iloc[int(rng.integers(0, len(fresh)))].copy()
            row[col] = v
            rows.append(row)
    edge = pd.DataFrame(rows).astype({"a": float, "b": float, "c": float})
    edge["seg"] = pd.Categorical(edge["seg"], categories=X["seg"].cat.categories)
    return pd.concat([fresh, edge], ignore_index=True)


@pytest.mark.parametrize(
    ("objective", "params"),
    [
        ("binary", {}),  # NaN is the missing marker
        ("binary", {"zero_as_missing": True}),  # zero (and NaN) is the missing marker
        ("binary", {"use_missing": False}),  # no marker: NaN is read as 0.0
        ("tweedie", {"tweedie_variance_power": 1.3}),
        ("binary", {"num_leaves": 31, "max_depth": -1}),  # deeper trees: the np.unique path and the fallback
    ],
    ids=["nan-missing", "zero-missing", "no-missing", "tweedie", "31-leaves"],
)
@pytest.mark.parametrize("threads", [1, 2])
def test_equals_lightgbm_pred_contrib(objective, params, threads):
    booster, X = _booster(objective, **params)
    rows = _scoring_rows(booster, X)
    explainer = PatternTreeShap(booster)
    got = explainer.contributions(rows, num_threads=threads)
    want = booster.predict(rows, pred_contrib=True)
    assert got.shape == want.shape == (len(rows), X.shape[1] + 1)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    # and the contributions plus base reproduce the raw output
    np.testing.assert_allclose(got.sum(axis=1), booster.predict(rows, raw_score=True), rtol=0, atol=1e-9)
    # too few rows to share patterns: trees are explained row by row (the fallback)
    few = rows.iloc[[0, 500, 1000, 1500, len(rows) - 1]]
    np.testing.assert_allclose(explainer.contributions(few, num_threads=threads),
                               booster.predict(few, pred_contrib=True), rtol=0, atol=1e-12)


def test_categorical_codes_follow_the_training_categories_not_the_frame():
    booster, X = _booster()
    rows = _scoring_rows(booster, X).iloc[:300]
    # Same values, categories listed in another order and with an extra unseen level: codes must be remapped,
    # the unseen level read as missing, exactly as LightGBM does for pandas input.
    shuffled = rows.copy()
    values = shuffled["seg"].astype(object)
    values.iloc[:10] = "never-seen"
    shuffled["seg"] = pd.Categorical(values, categories=["s4", "never-seen", "s2", "s0", "s3", "s1"])
    got = PatternTreeShap(booster).contributions(shuffled)
    want = booster.predict(shuffled, pred_contrib=True)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)


def test_check_passes_on_its_own_output_and_catches_a_wrong_matrix():
    booster, X = _booster()
    rows = _scoring_rows(booster, X).iloc[:500]
    explainer = PatternTreeShap(booster)
    contrib = explainer.contributions(rows)
    sample = np.arange(0, 500, 50)
    assert explainer.check(rows, contrib, sample) < 1e-12
    broken = contrib.copy()
    broken[100, 0] += 1e-3
    with pytest.raises(TreeShapError, match="differs from LightGBM's pred_contrib by 0.001"):
        explainer.check(rows, broken, sample)


def test_empty_frame_and_wrong_width():
    booster, X = _booster()
    explainer = PatternTreeShap(booster)
    assert explainer.contributions(X.iloc[:0]).shape == (0, X.shape[1] + 1)
    with pytest.raises(TreeShapError, match="has 3 columns; the booster expects 4"):
        explainer.contributions(X[["a", "b", "c"]])


def test_multiclass_is_refused_with_a_reason():
    X, y = _frame(600, seed=1)
    booster = lgb.train({"objective": "multiclass", "num_class": 3, "verbose": -1, "num_threads": 1},
                        lgb.Dataset(X[["a", "c"]], (y + (X["c"] > 1)).to_numpy()), num_boost_round=3)
    with pytest.raises(TreeShapError, match="one tree per iteration.*multiclass"):
        PatternTreeShap(booster)
