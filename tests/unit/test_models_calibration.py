"""Calibration maps raw scores to honest probabilities without changing the ranking."""
from __future__ import annotations

import numpy as np
import pytest

from models.calibration import ExpCalibrator, IsotonicCalibrator, PlattCalibrator, fit_calibrator
from models.evaluate import expected_calibration_error


def _overconfident(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """True log-odds z; the 'model' reports 3 z - 1 (overconfident and shifted)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.2, n)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-z))).astype(float)
    return 3 * z - 1, y


@pytest.mark.parametrize("method", ["auto", "platt", "isotonic"])
def test_calibration_lowers_ece_on_fresh_rows(method):
    raw_cal, y_cal = _overconfident(4000, seed=0)
    raw_new, y_new = _overconfident(4000, seed=1)
    choice = fit_calibrator(raw_cal, y_cal, kind="binary", method=method, seed=0)
    before = expected_calibration_error(y_new, 1 / (1 + np.exp(-raw_new)))
    after = expected_calibration_error(y_new, choice.calibrator.transform(raw_new))
    assert before > 0.05
    assert after < before / 2


def test_auto_records_out_of_fold_ece_and_picks_the_lower():
    raw, y = _overconfident(3000, seed=2)
    choice = fit_calibrator(raw, y, kind="binary", method="auto", seed=0)
    assert set(choice.oof_ece) == {"none", "isotonic", "platt"}
    lower = min(("isotonic", "platt"), key=choice.oof_ece.get)
    assert choice.calibrator.method == lower
    # Platt on a pure rescaling recovers slope 1/3 and intercept 1/3.
    platt = PlattCalibrator.fit(raw, y)
    assert platt.slope == pytest.approx(1 / 3, abs=0.05)


def test_calibrators_are_monotone():
    raw, y = _overconfident(2000, seed=3)
    grid = np.linspace(-10, 10, 201)
    for cal in (PlattCalibrator.fit(raw, y), IsotonicCalibrator.fit(raw, y)):
        out = cal.transform(grid)
        assert np.all(np.diff(out) >= 0)
        assert out.min() > 0 and out.max() < 1


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="Unknown calibration method 'beta'"):
        fit_calibrator(np.zeros(4), np.array([0, 1, 0, 1]), kind="binary", method="beta")


def test_regression_scale_matches_totals():
    raw = np.log(np.array([1.0, 2.0, 3.0]))
    y = np.array([2.0, 4.0, 6.0])
    cal = fit_calibrator(raw, y, kind="regression").calibrator
    assert isinstance(cal, ExpCalibrator)
    assert cal.transform(raw).sum() == pytest.approx(y.sum())
