"""Baselines: the logistic pipeline and the historical CLV formula."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.baselines import (
    annual_churn_rate_from_horizon,
    customer_equity,
    expected_years_active,
    historical_clv,
    historical_horizon_margin,
    logistic_baseline,
)


def test_logistic_baseline_handles_pandas3_text_missing_and_unseen_levels():
    rng = np.random.default_rng(0)
    n = 400
    x = rng.normal(size=n)
    seg = pd.Series(rng.choice(np.array(["a", "b", None], dtype=object), n), dtype="str")
    y = (x + (seg == "a").to_numpy() * 1.5 + rng.normal(scale=0.5, size=n) > 0.5).astype(int)
    frame = pd.DataFrame({"num": pd.array(np.where(rng.uniform(size=n) < 0.1, np.nan, x), dtype="Float64"),
                          "seg": seg})
    pipe = logistic_baseline(["num"], ["seg"], min_frequency=5).fit(frame, y)
    new = pd.DataFrame({"num": pd.array([0.0, 0.0, None], dtype="Float64"),
                        "seg": pd.Series(["a", "never_seen", np.nan], dtype="str")})
    p = pipe.predict_proba(new)[:, 1]
    assert np.all(np.isfinite(p))
    assert p[0] > p[1]  # the learnt segment effect


def test_expected_years_active_is_inverse_churn_capped():
    assert expected_years_active(0.25) == pytest.approx(4.0)
    assert expected_years_active(0.01, max_years=10) == 10
    assert expected_years_active(0.0, max_years=7) == 7


def test_annualised_churn_from_a_quarter():
    # 10 % quiet in 90 days -> 1 - 0.9^(365/90)
    assert annual_churn_rate_from_horizon(0.1, 90) == pytest.approx(1 - 0.9 ** (365 / 90))
    assert annual_churn_rate_from_horizon(0.3, 365) == pytest.approx(0.3)


def test_historical_formula_and_equity_by_hand():
    margin = pd.Series([100.0, 0.0, np.nan], index=["a", "b", "c"])
    cost = pd.Series([50.0, np.nan, 10.0], index=["a", "b", "c"])
    clv = historical_clv(margin, cost, annual_churn_rate=0.5)  # 2 expected years
    assert clv.tolist() == [150.0, 0.0, -10.0]
    assert customer_equity(clv) == 140.0


def test_horizon_margin_uses_constant_hazard_survival():
    margin = pd.Series([365.0])
    out = historical_horizon_margin(margin, annual_churn_rate=0.5, horizon_days=365)
    lam = math.log(2)
    assert out.iloc[0] == pytest.approx(365.0 * (1 - math.exp(-lam)) / lam)
    assert historical_horizon_margin(margin, 0.0, 365).iloc[0] == pytest.approx(365.0)
