"""models.bands: percentiles within a run, bands per scheme."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.bands import BandError, assign_bands, percentiles, resolve_thresholds
from tests.defaults import settings

T = {scheme: dict(cuts) for scheme, cuts in settings().bands.items()}  # the packaged cut-offs


def test_percentiles_range_order_and_ties():
    s = pd.Series(np.arange(1000, dtype=float), index=np.arange(1000) + 5)
    p = percentiles(s)
    assert p.dtype == "Int64"
    assert p.index.equals(s.index)
    assert p.min() == 1 and p.max() == 100
    assert (p.diff().dropna() >= 0).all()  # monotone in the score
    assert (p.value_counts() == 10).all()  # 1000 distinct scores -> 10 per percentile
    tied = percentiles(pd.Series([0.1, 0.5, 0.5, 0.9]))
    assert tied.tolist() == [25, 75, 75, 100]  # ties share one percentile; top is always 100


def test_percentiles_missing_scores_stay_missing_and_do_not_count():
    p = percentiles(np.array([np.nan, 1.0, 2.0]))
    assert p.isna().tolist() == [True, False, False]
    assert p.iloc[1:].tolist() == [50, 100]
    assert percentiles(pd.Series([], dtype=float)).tolist() == []


def test_churn_bands_probability_or_top_percentiles():
    # 100 rows: scores 0.00 .. 0.99 -> percentiles 1..100
    s = pd.Series(np.arange(100) / 100.0)
    p = percentiles(s)
    b = assign_bands(s, p, "churn", T['churn'])
    assert b.dtype == "str"
    # high: p >= 0.5 (rows 50..99), medium: 0.25 <= p < 0.5, low below
    assert (b.iloc[50:] == "high").all() and (b.iloc[25:50] == "medium").all() and (b.iloc[:25] == "low").all()
    # A quiet month: all probabilities small -> the top 10 percentiles are still "high", next 20 "medium".
    quiet = pd.Series(np.linspace(0.01, 0.05, 100))
    bq = assign_bands(quiet, percentiles(quiet), "churn", T['churn'])
    assert (bq == "high").sum() == 10 and (bq == "medium").sum() == 20 and (bq == "low").sum() == 70


def test_churn_bands_thresholds_are_configurable():
    s = pd.Series([0.05, 0.3, 0.6, 0.8])
    p = pd.Series([10, 40, 70, 95])
    b = assign_bands(s, p, "churn", {**T["churn"], "high_probability": 0.7, "high_top_percent": 0,
                                 "medium_top_percent": 0})
    assert b.tolist() == ["low", "medium", "medium", "high"]


def test_lead_and_clv_bands_by_rank():
    s = pd.Series(np.arange(100, dtype=float))
    p = percentiles(s)
    lead = assign_bands(s, p, "lead", T['lead'])
    assert lead.value_counts().to_dict() == {"D": 40, "C": 30, "B": 20, "A": 10}
    assert lead.iloc[-1] == "A" and lead.iloc[0] == "D"
    clv = assign_bands(s, p, "clv", T['clv'])
    assert clv.value_counts().to_dict() == {"middle": 40, "low": 40, "top": 20}
    clv2 = assign_bands(s, p, "clv", {"top_percent": 5, "low_percent": 50})  # a whole scheme given
    assert clv2.value_counts().to_dict() == {"low": 50, "middle": 45, "top": 5}


def test_band_errors_say_what_is_allowed():
    s, p = pd.Series([0.1]), pd.Series([1])
    with pytest.raises(BandError, match=r"Unknown band scheme 'rfm'. Possible values are: \['churn', 'lead', 'clv'\]"):
        assign_bands(s, p, "rfm", {})
    with pytest.raises(BandError, match=r"band scheme 'lead' \(config bands.lead\) needs exactly \['a_top_percent', "
                       r"'b_top_percent', 'c_top_percent'\]; unknown \['A'\], missing \['a_top_percent'\]"):
        resolve_thresholds("lead", {"A": 10, "b_top_percent": 30, "c_top_percent": 60})
    with pytest.raises(BandError, match="a_top_percent <= b_top_percent"):
        resolve_thresholds("lead", {**T["lead"], "a_top_percent": 50})
    with pytest.raises(BandError, match="must align"):
        assign_bands(pd.Series([0.1, 0.2]), p, "churn", T['churn'])
    with pytest.raises(BandError, match="must not be missing"):
        assign_bands(pd.Series([np.nan]), p, "churn", T['churn'])


def test_build_score_rows_fills_every_write_back_column():
    from models.bands import SCORE_ROW_COLUMNS, build_score_rows, value_at_risk_rows

    churn = build_score_rows(
        "churn", "account", ["a1", "a2", "a3", "a4"], np.array([0.9, 0.1, 0.3, 0.05]), scheme="churn",
        thresholds=T["churn"], model_version="7",
        reasons_json=["[]"] * 4, reason_text=["x"] * 4,
    )
    assert tuple(churn.columns) == SCORE_ROW_COLUMNS
    assert churn["score_percentile"].tolist() == [100, 50, 75, 25]
    assert churn["band"].tolist() == ["high", "low", "medium", "low"]
    assert (churn["model"] == "churn").all() and (churn["model_version"] == "7").all()
    lead = build_score_rows("lead_mql", "lead", ["l1", "l2"], [0.2, 0.4], scheme="lead", thresholds=T["lead"],
                            model_version="1")
    assert lead["band"].tolist() == ["C", "A"] and lead["reasons"].isna().all()  # percentiles 50 and 100
    clv = build_score_rows("clv", "account", ["a1", "a2", "a4"], [100.0, 900.0, 10.0], scheme="clv",
                           thresholds=T["clv"], model_version="2")
    var = value_at_risk_rows(churn, clv)
    assert var["entity_id"].tolist() == ["a1", "a2", "a4"]  # a3 has no clv -> no value at risk
    np.testing.assert_allclose(var["value_at_risk"], [90.0, 90.0, 0.5])  # 0.9 x 100, 0.1 x 900, 0.05 x 10
    with pytest.raises(BandError, match="entity_ids has 1 rows but scores has 2"):
        build_score_rows("churn", "account", ["a"], [0.1, 0.2], scheme="churn", thresholds=T["churn"], model_version="1")
    with pytest.raises(BandError, match="Unknown band scheme 'rfm'"):
        build_score_rows("upsell", "account", ["a"], [0.1], scheme="rfm", thresholds={}, model_version="1")
