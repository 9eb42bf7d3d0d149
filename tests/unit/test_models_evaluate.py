"""Metric functions against sklearn/scipy and hand-computed values."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from models.evaluate import (
    binary_metrics,
    collapsed_slices,
    expected_calibration_error,
    gini,
    normalized_gini,
    regression_metrics,
    slice_metrics,
    slices_long,
    task_metrics,
    top_fraction_lift,
)
from models.metrics import METRICS


def test_ece_equal_mass_bins_by_hand():
    # 4 rows, 2 bins of 2 (sorted by p): bin1 p=(.1,.2) y=(0,1): |0.5-0.15|=0.35; bin2 p=(.8,.9) y=(1,1): |1-0.85|=0.15
    y = np.array([1, 0, 1, 1])
    p = np.array([0.2, 0.1, 0.9, 0.8])
    assert expected_calibration_error(y, p, n_bins=2) == pytest.approx(0.5 * 0.35 + 0.5 * 0.15)


def test_ece_is_zero_for_perfectly_calibrated_bins():
    y = np.array([0, 1, 0, 1, 1, 1])
    p = np.array([0.5, 0.5, 0.5, 0.5, 1.0, 1.0])
    assert expected_calibration_error(y, p, n_bins=3) == pytest.approx(0.0)


def test_top_decile_lift_and_capture_by_hand():
    # 20 rows, top 10% = 2 rows, both positive; 4 positives overall (rate 0.2): lift 1/0.2 = 5, capture 2/4.
    y = np.zeros(20)
    y[[0, 1, 10, 11]] = 1
    p = np.linspace(1, 0, 20)
    lift, capture = top_fraction_lift(y, p, fraction=0.1)
    assert lift == pytest.approx(5.0)
    assert capture == pytest.approx(0.5)


def test_binary_metrics_agree_with_sklearn():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=500)
    y = (rng.uniform(size=500) < p).astype(int)
    m = binary_metrics(y, p)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    assert m["brier"] == pytest.approx(np.mean((p - y) ** 2))
    assert m["log_loss"] == pytest.approx(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    assert m["n"] == 500


def test_binary_metrics_single_class_gives_nan_auc_not_error():
    m = binary_metrics(np.zeros(10), np.linspace(0, 1, 10))
    assert np.isnan(m["roc_auc"]) and np.isnan(m["pr_auc"])


def test_gini_by_hand_and_normalized_bounds():
    y = np.array([0.0, 0.0, 10.0, 30.0])
    # pred orders 30, 10, 0, 0 -> cum share (0.75, 1, 1, 1) - (0.25, 0.5, 0.75, 1) = 0.5+0.5+0.25+0 -> /4
    assert gini(y, np.array([0, 1, 2, 3])) == pytest.approx(1.25 / 4)
    assert normalized_gini(y, y) == pytest.approx(1.0)
    assert normalized_gini(y, -y) < 0


def test_regression_metrics_spearman_mae_total_ratio():
    y = np.array([0.0, 1.0, 2.0, 10.0])
    pred = np.array([1.0, 1.0, 3.0, 5.0])
    m = regression_metrics(y, pred)
    assert m["mae"] == pytest.approx((1 + 0 + 1 + 5) / 4)
    assert m["total_ratio"] == pytest.approx(10 / 13)
    assert m["spearman"] == pytest.approx(pd.Series(y).corr(pd.Series(pred), method="spearman"))


def _slice_frame() -> pd.DataFrame:
    rng = np.random.default_rng(1)
    n = 600
    seg = np.array(["good"] * 300 + ["bad"] * 250 + ["tiny"] * 50, dtype=object)
    y = rng.integers(0, 2, n)
    noise = rng.uniform(size=n)
    # "good": score follows y; "bad": score leans against y (AUC below chance); "tiny": as bad, but only 50 rows
    score = np.where(seg == "good", 0.7 * y + 0.3 * noise, 0.2 * (1 - y) + 0.8 * noise)
    return pd.DataFrame({"y": y, "score": score, "firm__segment": pd.Series(seg, dtype="str")})


def test_slice_metrics_respects_min_size_and_collapse_flags_the_bad_slice():
    f = _slice_frame()
    s = slice_metrics(f, ["firm__segment", "not_there"], kind="binary", min_size=100)
    assert set(s["slice_value"]) == {"good", "bad"}  # "tiny" (50 rows) below min_size; missing column skipped
    bad = f[f["firm__segment"] == "bad"]
    assert roc_auc_score(bad["y"], bad["score"]) < 0.5  # the premise: worse than chance
    col = collapsed_slices(s, metric="roc_auc", min_n=100)
    assert list(col["slice_value"]) == ["bad"]
    assert col["value"].iloc[0] == pytest.approx(roc_auc_score(bad["y"], bad["score"]))
    assert collapsed_slices(s, metric="roc_auc", min_n=251).empty  # "bad" has 250 rows: too few to judge
    assert collapsed_slices(s, metric="brier", min_n=1).empty  # no chance level: never collapsed
    # the wide frame and its long form give the same verdict
    assert collapsed_slices(slices_long(s), metric="roc_auc", min_n=100).equals(col)


def test_collapse_is_judged_at_the_chance_level_of_the_metric():
    s = pd.DataFrame([("c", "a", 300, "spearman", 0.0), ("c", "b", 300, "spearman", 0.01),
                      ("c", "d", 300, "normalized_gini", -0.2), ("c", "e", 300, "roc_auc", np.nan)],
                     columns=["slice_column", "slice_value", "n", "metric", "value"])
    assert list(collapsed_slices(s, metric="spearman", min_n=1)["slice_value"]) == ["a"]  # at chance: collapsed
    assert list(collapsed_slices(s, metric="normalized_gini", min_n=1)["slice_value"]) == ["d"]
    assert collapsed_slices(s, metric="roc_auc", min_n=1).empty  # a single-class slice's NaN AUC is not judged


@pytest.mark.parametrize("kind", ["binary", "regression"])
def test_every_metric_task_metrics_returns_has_a_spec(kind):
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200).astype(float) if kind == "binary" else rng.gamma(1.0, 50.0, 200)
    pred = rng.uniform(size=200) if kind == "binary" else rng.gamma(1.0, 50.0, 200)
    names = set(task_metrics(kind, y, pred))
    assert names - set(METRICS) == set()
    assert all(METRICS[n].name == n for n in names)

_probs = st.lists(st.floats(0.001, 0.999), min_size=4, max_size=60)


@settings(max_examples=60, deadline=None)
@given(p=_probs, seed=st.integers(0, 10_000))
def test_ece_is_bounded_and_ranking_metrics_ignore_monotone_transforms(p, seed):
    p = np.array(p)
    y = (np.random.default_rng(seed).uniform(size=len(p)) < p).astype(float)
    e = expected_calibration_error(y, p)
    assert 0.0 <= e <= 1.0
    logit = np.log(p / (1 - p))
    m1, m2 = binary_metrics(y, p), binary_metrics(y, 1 / (1 + np.exp(-3 * logit)))
    if np.isfinite(m1["roc_auc"]):
        assert m1["roc_auc"] == pytest.approx(m2["roc_auc"])


@settings(max_examples=60, deadline=None)
@given(y=st.lists(st.floats(0, 1e4), min_size=3, max_size=60), seed=st.integers(0, 10_000))
def test_normalized_gini_is_at_most_one(y, seed):
    y = np.array(y)
    pred = np.random.default_rng(seed).uniform(size=len(y))
    g = normalized_gini(y, pred)
    assert np.isnan(g) or g <= 1.0 + 1e-9
