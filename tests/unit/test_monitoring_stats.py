"""Monitoring formulas against scipy, sklearn, simulation or hand-worked cases."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import chi2, false_discovery_control
from sklearn.metrics import roc_auc_score

from models.monitoring import (
    MonitorThresholds,
    auc_standard_error,
    benjamini_hochberg,
    holm,
    jensen_shannon,
    psi,
    psi_p_value,
    wilson_interval,
)
from models.monitoring.errors import MonitoringInputError
from models.monitoring.stats import (
    auc_from_ranks,
    calibration_slope_intercept,
    expected_auc,
    psi_contributions,
    psi_null_mean,
    ranks,
)
from tests.unit._monitoring_world import THRESHOLDS


def test_psi_hand_worked():
    # shares r = (0.5, 0.5), c = (0.25, 0.75):
    # (0.25-0.5) ln(0.25/0.5) + (0.75-0.5) ln(0.75/0.5) = 0.25 ln 2 + 0.25 ln 1.5
    assert psi([50, 50], [25, 75]) == pytest.approx(0.25 * np.log(2) + 0.25 * np.log(1.5), rel=1e-12)
    assert psi([10, 20, 30], [1, 2, 3]) == 0.0  # same shares, different sizes
    # an empty reference bin (e.g. "missing") counts with its share floored at 1e-4 inside the log only
    assert psi([100, 0], [80, 20]) == pytest.approx(-0.2 * np.log(0.8) + 0.2 * np.log(0.2 / 1e-4), rel=1e-12)
    # a bin empty on both sides adds nothing
    assert psi([100, 0, 50], [40, 0, 20]) == 0.0
    assert (psi_contributions([3, 1, 0], [1, 1, 1]) >= 0).all()


def test_psi_refuses_mismatched_or_empty_bins():
    with pytest.raises(MonitoringInputError, match="same bins"):
        psi([1, 2, 3], [1, 2])
    with pytest.raises(MonitoringInputError, match="sums to 0"):
        psi([0, 0], [1, 1])
    with pytest.raises(MonitoringInputError, match="non-negative"):
        psi([1, -1], [1, 1])


def test_psi_null_distribution_is_scaled_chi2_by_simulation():
    """Yurdakul (2018): under H0, PSI ~ (1/n_ref + 1/n_cur) chi2(bins - 1). The p-value is then uniform."""
    rng = np.random.default_rng(3)
    shares = np.array([0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02])
    n_ref, n_cur = 5000, 2000
    values = np.array([psi(rng.multinomial(n_ref, shares), rng.multinomial(n_cur, shares)) for _ in range(3000)])
    scaled = values / (1 / n_ref + 1 / n_cur)
    assert scaled.mean() == pytest.approx(len(shares) - 1, rel=0.05)  # chi2(7) has mean 7
    assert np.quantile(scaled, 0.95) == pytest.approx(chi2.ppf(0.95, 7), rel=0.08)
    assert values.mean() == pytest.approx(psi_null_mean(n_ref, n_cur, len(shares)), rel=0.05)
    assert psi_null_mean(100, 100, 5) == pytest.approx(0.08) and psi_null_mean(100, 100, 1) == 0.0
    p = np.array([psi_p_value(v, n_ref, n_cur, len(shares)) for v in values])
    assert 0.035 <= (p < 0.05).mean() <= 0.065
    assert 0.005 <= (p < 0.01).mean() <= 0.02


def test_psi_p_value_edges():
    assert psi_p_value(0.0, 100, 100, 5) == 1.0
    assert psi_p_value(1.0, 100, 100, 1) == 1.0  # a single populated bin: nothing to test
    assert psi_p_value(0.5, 10_000, 10_000, 10) < 1e-100
    assert psi_p_value(2 / 1000 * chi2.ppf(0.99, 9), 1000, 1000, 10) == pytest.approx(0.01, rel=1e-9)


@pytest.mark.parametrize("p,q", [([1, 2, 3], [3, 2, 1]), ([10, 0, 5], [0, 10, 5]), ([1, 1], [1, 1]), ([1, 0], [0, 1])])
def test_jensen_shannon_is_scipy_distance_squared_in_bits(p, q):
    assert jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-12)
    assert 0.0 <= jensen_shannon(p, q) <= 1.0


def test_jensen_shannon_disjoint_is_one_bit():
    assert jensen_shannon([1, 0], [0, 1]) == pytest.approx(1.0)


def test_auc_standard_error_hand_worked():
    # Hanley & McNeil (1982): A = 0.8, 50 positives, 50 negatives:
    # Q1 = 0.8/1.2 = 0.6667, Q2 = 2*0.64/1.8 = 0.7111,
    # SE^2 = (0.16 + 49*(0.6667-0.64) + 49*(0.7111-0.64)) / 2500
    q1, q2 = 0.8 / 1.2, 1.28 / 1.8
    expected = np.sqrt((0.16 + 49 * (q1 - 0.64) + 49 * (q2 - 0.64)) / 2500)
    assert auc_standard_error(0.8, 50, 50) == pytest.approx(expected, rel=1e-12)
    assert auc_standard_error(0.8, 50, 50) == pytest.approx(0.0445, abs=1e-4)
    assert np.isnan(auc_standard_error(0.8, 0, 50))


def test_auc_standard_error_matches_simulation():
    """Hanley-McNeil's Q1, Q2 are exact for exponential scores: positives Exp(scale 4), negatives Exp(1) give
    AUC = P(pos > neg) = 1 / (1 + 1/4) = 0.8."""
    rng = np.random.default_rng(11)
    n_pos, n_neg = 200, 800
    y = np.r_[np.ones(n_pos), np.zeros(n_neg)]
    aucs = [auc_from_ranks(y, ranks(np.r_[rng.exponential(4.0, n_pos), rng.exponential(1.0, n_neg)]))
            for _ in range(600)]
    assert np.mean(aucs) == pytest.approx(0.8, abs=0.005)
    assert auc_standard_error(0.8, n_pos, n_neg) == pytest.approx(np.std(aucs), rel=0.1)


def test_holm_hand_worked():
    # sorted p (0.01, 0.02, 0.03, 0.04) x (4, 3, 2, 1) = (0.04, 0.06, 0.06, 0.04)
    # -> running max (0.04, 0.06, 0.06, 0.06)
    np.testing.assert_allclose(holm([0.03, 0.01, 0.04, 0.02]), [0.06, 0.04, 0.06, 0.06])
    out = holm([0.5, np.nan, 0.01])  # NaN (an insufficient feature) is not counted: m = 2
    np.testing.assert_allclose(out[[0, 2]], [0.5, 0.02])
    assert np.isnan(out[1])
    assert holm([0.9, 0.8]).max() == 1.0


def test_benjamini_hochberg_matches_scipy():
    rng = np.random.default_rng(5)
    p = np.r_[rng.uniform(size=40), rng.uniform(0, 0.001, 10)]
    np.testing.assert_allclose(benjamini_hochberg(p), false_discovery_control(p, method="bh"), rtol=1e-12)


def test_wilson_interval_hand_worked():
    # k = 0, n = 100, z = 1.96: upper = z^2/n / (1 + z^2/n) = 0.0370
    lo, hi = wilson_interval(0, 100, 0.95)
    assert lo == pytest.approx(0.0, abs=1e-12)
    assert hi == pytest.approx(1.959964**2 / 100 / (1 + 1.959964**2 / 100), rel=1e-6)
    lo, hi = wilson_interval(50, 100, 0.95)
    assert (lo + hi) / 2 == pytest.approx(0.5)
    assert lo == pytest.approx(0.4038, abs=1e-4)


def test_auc_from_ranks_matches_sklearn_with_ties():
    rng = np.random.default_rng(2)
    s = rng.integers(0, 20, 500).astype(float)
    y = (rng.random(500) < s / 25).astype(float)
    assert auc_from_ranks(y, ranks(s)) == pytest.approx(roc_auc_score(y, s), rel=1e-12)


def test_expected_auc_matches_the_mean_simulated_auc():
    rng = np.random.default_rng(4)
    p = 1 / (1 + np.exp(-rng.normal(-2, 1.2, 3000)))
    r = ranks(p)
    sims = [auc_from_ranks((rng.random(len(p)) < p).astype(float), r) for _ in range(300)]
    assert expected_auc(p) == pytest.approx(np.mean(sims), abs=0.003)
    # ties count one half: two groups of identical scores
    assert expected_auc(np.array([0.5, 0.5])) == pytest.approx(0.5)


def test_calibration_slope_and_intercept():
    rng = np.random.default_rng(8)
    logit = rng.normal(-1.5, 1.0, 40_000)
    y = (rng.random(len(logit)) < 1 / (1 + np.exp(-logit))).astype(float)
    slope, intercept = calibration_slope_intercept(y, 1 / (1 + np.exp(-logit)))
    assert slope == pytest.approx(1.0, abs=0.05) and intercept == pytest.approx(0.0, abs=0.05)
    # over-confident scores (logits doubled) have slope 1/2
    slope, _ = calibration_slope_intercept(y, 1 / (1 + np.exp(-2 * logit + 1.5)))
    assert slope == pytest.approx(0.5, abs=0.05)
    assert np.isnan(calibration_slope_intercept(np.ones(10), np.full(10, 0.3))[0])


def test_thresholds_from_dict_names_what_is_wrong():
    d = THRESHOLDS.to_dict()
    assert MonitorThresholds.from_dict(d) == THRESHOLDS
    with pytest.raises(MonitoringInputError, match=r"missing \['alpha'\], unknown \['alpah'\]"):
        MonitorThresholds.from_dict({**{k: v for k, v in d.items() if k != "alpha"}, "alpah": 0.01})
    with pytest.raises(MonitoringInputError, match="psi_warn=0.3, psi_alert=0.25"):
        MonitorThresholds.from_dict({**d, "psi_warn": 0.3})
    with pytest.raises(MonitoringInputError, match="correction='bonferoni'"):
        MonitorThresholds.from_dict({**d, "correction": "bonferoni"})
