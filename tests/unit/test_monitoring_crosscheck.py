"""Cross-checks of the monitoring code: the vectorised bin counting against the per-row algorithm it replaced
(``np.searchsorted`` + ``np.bincount``, ``Index.get_indexer`` on every row), and the formulas against scipy and
sklearn where the other tests use hand-worked cases."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binomtest, entropy, spearmanr
from sklearn.linear_model import LogisticRegression

from features.catalog import FeatureInfo
from models.monitoring import ModelReference, build_feature_reference, psi, score_health, wilson_interval
from models.monitoring.reference import FeatureReference, ScoreReference, binned_counts, numeric_values
from models.monitoring.stats import calibration_slope_intercept

NUMERIC = FeatureInfo("x", "engagement", "numeric", "count")
CATEGORICAL = FeatureInfo("c", "firmographic", "categorical", "category")


def searchsorted_counts(edges, x: np.ndarray) -> np.ndarray:
    """The per-row algorithm binned_counts replaced: a bin index per row, then bincount."""
    k = len(edges) + 1
    idx = np.where(np.isnan(x), k, np.searchsorted(np.asarray(edges, dtype=np.float64), x, side="left"))
    return np.bincount(idx.astype(np.int64), minlength=k + 1)


def indexer_counts(ref: FeatureReference, values) -> np.ndarray:
    """The per-row categorical algorithm bin_counts replaced."""
    s = pd.Series(values).astype("str")
    codes = pd.Index(ref.categories, dtype="str").get_indexer(s)
    k = len(ref.categories)
    idx = np.where(codes >= 0, codes, np.where(s.isna().to_numpy(), k, k + 1))
    return np.bincount(idx, minlength=k + 2)


@pytest.mark.parametrize("seed", range(8))
def test_binned_counts_equal_searchsorted_on_random_inputs(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 3000))
    # ties on integers, values exactly on the edges, +-inf, NaN, and edges of every length deciles give (0 to 9)
    x = rng.integers(-5, 6, n).astype(np.float64) if seed % 2 else rng.normal(0, 3, n)
    x[rng.random(n) < 0.1] = np.nan
    x[rng.random(n) < 0.01] = np.inf
    x[rng.random(n) < 0.01] = -np.inf
    for k in range(10):
        edges = np.unique(rng.choice(np.arange(-5.0, 6.0), k, replace=False)) if k else np.array([])
        got = binned_counts(tuple(edges), x)
        np.testing.assert_array_equal(got, searchsorted_counts(edges, x))
        assert got.dtype == np.int64 and got.sum() == n


@pytest.mark.parametrize("seed", range(4))
def test_feature_and_score_bin_counts_equal_the_old_algorithm(seed):
    rng = np.random.default_rng(100 + seed)
    train = pd.Series(np.where(rng.random(5000) < 0.2, np.nan, rng.poisson(4, 5000)), dtype="float64")
    ref = build_feature_reference("x", NUMERIC, train)
    now = rng.poisson(5, 4000).astype(np.float64)
    now[rng.random(len(now)) < 0.3] = np.nan
    for shift in (0.0, 3.0):
        np.testing.assert_array_equal(ref.bin_counts(now, shift=shift), searchsorted_counts(ref.edges, now - shift))
    # nullable integers, as an extract reads them
    ints = pd.Series(pd.array(np.where(rng.random(100) < 0.5, rng.integers(0, 9, 100), -1), dtype="Int64"))
    ints = ints.mask(ints < 0)
    np.testing.assert_array_equal(ref.bin_counts(ints), searchsorted_counts(ref.edges, numeric_values(ints)))
    scores = ScoreReference(tuple(np.quantile(rng.random(100), np.arange(1, 10) / 10)), (), 100, None, None, None,
                            (), ())
    s = rng.random(2000)
    s[:7] = np.nan
    np.testing.assert_array_equal(scores.bin_counts(s), searchsorted_counts(scores.edges, s))


@pytest.mark.parametrize("kind", ["str", "object", "category"])
def test_categorical_bin_counts_equal_the_old_algorithm(kind):
    rng = np.random.default_rng(7)
    levels = np.array(["organic", "paid", "referral", "events", ""])
    train = pd.Series(rng.choice(levels[:4], 3000), dtype="str").mask(rng.random(3000) < 0.05)
    ref = build_feature_reference("c", CATEGORICAL, train)
    raw = rng.choice(np.array([*levels, "tiktok", "Paid"]), 5000).astype(object)
    raw[rng.random(len(raw)) < 0.1] = None
    values = pd.Series(raw, dtype={"str": "str", "object": object, "category": "category"}[kind])
    got = ref.bin_counts(values)
    np.testing.assert_array_equal(got, indexer_counts(ref, values))
    assert got[-2] == int(pd.isna(raw).sum()) and got[-1] > 0  # the missing bin, then the unseen bin
    np.testing.assert_array_equal(ref.bin_counts(pd.Series([], dtype="str")), np.zeros(len(ref.bins), dtype=int))


def test_psi_is_the_symmetrised_kl_divergence_of_scipy():
    rng = np.random.default_rng(1)
    r, c = rng.integers(1, 100, 12), rng.integers(1, 100, 12)
    # scipy.stats.entropy(p, q) = KL(p || q) in nats (natural log) after normalising both
    assert psi(r, c) == pytest.approx(entropy(c, r) + entropy(r, c), rel=1e-12)


@pytest.mark.parametrize("k,n", [(0, 100), (3, 200), (50, 100), (199, 200), (7, 7)])
def test_wilson_interval_matches_scipy(k, n):
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    np.testing.assert_allclose(wilson_interval(k, n, 0.95), (ci.low, ci.high), rtol=1e-9, atol=1e-12)


def test_calibration_slope_and_intercept_match_an_unpenalised_logistic_regression():
    rng = np.random.default_rng(3)
    p = 1 / (1 + np.exp(-rng.normal(-1.0, 1.3, 5000)))
    y = (rng.random(len(p)) < np.clip(1.4 * p, 0, 1)).astype(float)  # under-predicted: intercept > 0
    logit = np.log(p / (1 - p))[:, None]
    fit = LogisticRegression(C=np.inf, tol=1e-12, max_iter=1000).fit(logit, y)
    slope, intercept = calibration_slope_intercept(y, p)
    assert slope == pytest.approx(fit.coef_[0, 0], abs=1e-6) and intercept == pytest.approx(fit.intercept_[0], abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_rank_stability_equals_the_frame_join_it_replaced(seed):
    rng = np.random.default_rng(200 + seed)
    ids = np.array([f"a{i}" for i in range(3000)])
    now = pd.Series(rng.random(3000), index=ids)
    now.iloc[rng.random(3000) < 0.02] = np.nan
    # last run: a shuffled, partly different population with its own missing scores and ties
    before_ids = np.r_[rng.permutation(ids)[:2500], [f"b{i}" for i in range(400)]]
    before = pd.Series(np.round(rng.random(len(before_ids)), 2), index=before_ids)
    before.iloc[rng.random(len(before)) < 0.02] = np.nan
    before = before.where(pd.Index(before.index).isin(ids) | (rng.random(len(before)) < 0.5), np.nan)
    both = pd.concat([now.rename("now"), before.rename("before")], axis=1, join="inner").dropna()
    reference = ModelReference("1", "binary", (), ScoreReference((0.5,), (5, 5, 0), 10, 0.5, 0.1, 0.5, (), ()))
    health = score_health(reference, now, previous=before)
    assert health.n_common == len(both)
    assert health.rank_stability == spearmanr(both["now"], both["before"]).statistic  # exactly: same pairs, order
    constant = score_health(reference, now, previous=pd.Series(0.3, index=before.index))
    assert constant.rank_stability is None and constant.n_common > 3
