"""models.explain: calibrated SHAP contributions, top-k reasons, sentences and JSON."""
from __future__ import annotations

import json
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models.explain import (
    ExplanationError,
    calibrated_contributions,
    explain_batch,
    reason_sentence,
    reason_sentences,
    reasons_json,
    select_reasons,
    top_reasons,
)


@dataclass(frozen=True)
class Info:  # the shape of features' FeatureInfo
    label: str
    family: str
    kind: str
    unit: str | None


CATALOG = {
    "eng__logins_30d": Info("Logins in the last 30 days", "eng", "numeric", "count"),
    "sup__open_tickets": Info("Open support tickets", "sup", "numeric", "count"),
    "buy__tenure_days": Info("Tenure", "buy", "numeric", "days"),
    "buy__margin_365d": Info("Gross margin in the last year", "buy", "numeric", "currency"),
    "eng__email_open_share": Info("Share of emails opened", "eng", "numeric", "share"),
    "firm__industry": Info("Industry", "firm", "categorical", None),
}
NAMES = list(CATALOG)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def small_model():
    rng = np.random.default_rng(7)
    X = pd.DataFrame(rng.normal(size=(400, 4)), columns=["a", "b", "c", "d"])
    y = ((X["a"] - 0.5 * X["b"] + rng.normal(scale=0.5, size=400)) > 0).astype(int)
    booster = lgb.train(
        {"objective": "binary", "num_leaves": 7, "verbose": -1, "seed": 7, "deterministic": True},
        lgb.Dataset(X, y),
        num_boost_round=25,
    )
    return booster, X


def test_raw_contributions_plus_base_reproduce_raw_output(small_model):
    booster, X = small_model
    contrib = booster.predict(X, pred_contrib=True)
    raw = booster.predict(X, raw_score=True)
    assert np.max(np.abs(contrib.sum(axis=1) - raw)) < 1e-6
    # explain_batch keeps the exact raw output beside the calibrated score
    out = explain_batch(contrib, sigmoid, list(X.columns), X, {}, outcome="churn risk")
    assert np.max(np.abs(out.raw - raw)) < 1e-6
    assert np.max(np.abs(out.score - booster.predict(X))) < 1e-9


def test_calibrated_contributions_sum_to_calibrated_score_minus_base(small_model):
    booster, X = small_model
    contrib = booster.predict(X, pred_contrib=True)
    # A non-trivial monotone calibration (temperature + shift), as a fitted calibrator would be.
    def calibrate(r):
        return sigmoid(0.7 * r - 0.3)

    cal, base_cal = calibrated_contributions(contrib, calibrate)
    assert cal.shape == (len(X), 4)
    raw = contrib.sum(axis=1)
    np.testing.assert_allclose(cal.sum(axis=1), calibrate(raw) - base_cal, atol=1e-12)
    np.testing.assert_allclose(base_cal, calibrate(contrib[:, -1]), atol=1e-15)
    # Scaling is positive per row: the sign of each reason is the sign of the raw SHAP value.
    nz = np.abs(contrib[:, :-1]) > 1e-12
    assert np.array_equal(np.sign(cal[nz]), np.sign(contrib[:, :-1][nz]))


def test_calibrated_contributions_when_raw_equals_base_uses_the_slope():
    # row 0: contributions cancel exactly (raw == base); row 1: ordinary
    contrib = np.array([[0.4, -0.4, 0.0, 1.0], [0.5, 0.25, 0.0, 1.0]])
    cal, base_cal = calibrated_contributions(contrib, sigmoid)
    slope = sigmoid(1.0) * (1 - sigmoid(1.0))
    np.testing.assert_allclose(cal[0, 1], -0.4 * slope, rtol=1e-6)
    np.testing.assert_allclose(cal[0].sum(), 0.0, atol=1e-12)
    np.testing.assert_allclose(cal[1].sum(), sigmoid(1.75) - sigmoid(1.0), atol=1e-12)
    assert np.all(np.isfinite(cal))


def test_calibrated_contributions_rejects_bad_shapes():
    with pytest.raises(ExplanationError, match=r"base value last; got shape \(3,\)"):
        calibrated_contributions(np.zeros(3), sigmoid)
    with pytest.raises(ExplanationError, match="must be elementwise"):
        calibrated_contributions(np.zeros((2, 3)), lambda r: r[:1])


def test_select_reasons_picks_largest_up_and_most_negative_down():
    m = np.array(
        [
            # f0    f1    f2    f3    f4    f5
            [0.10, -0.30, 0.50, 0.05, -0.01, 0.20],  # up: f2, f5, f0; down: f1
            [-0.10, -0.20, -0.05, 0.00, 0.30, 0.00],  # only one positive: f4; down: f1
            [0.00, 0.00, 0.00, 0.00, 0.00, 0.00],  # nothing stands out
        ]
    )
    idx = select_reasons(m, n_up=3, n_down=1)
    assert idx.feature.tolist() == [[2, 5, 0, 1], [4, -1, -1, 1], [-1, -1, -1, -1]]
    np.testing.assert_allclose(idx.contribution[0], [0.5, 0.2, 0.1, -0.3])
    assert np.isnan(idx.contribution[2]).all()
    idx2 = select_reasons(m, n_up=1, n_down=2)
    assert idx2.feature.tolist() == [[2, 1, 4], [4, 1, 0], [-1, -1, -1]]


def test_select_reasons_with_fewer_features_than_slots_pads():
    idx = select_reasons(np.array([[0.2, -0.1]]), n_up=3, n_down=2)
    assert idx.feature.tolist() == [[0, -1, -1, 1, -1]]


def test_top_reasons_dicts_and_configurable_counts():
    m = np.array([[0.30, 0.20, 0.10, -0.05, -0.40, 0.0]])
    values = pd.DataFrame(
        {
            "eng__logins_30d": [2.0],
            "sup__open_tickets": [3.0],
            "buy__tenure_days": [45.0],
            "buy__margin_365d": [1234.5],
            "eng__email_open_share": [0.125],
            "firm__industry": pd.Series(["retail"], dtype="str"),
        }
    )
    r = top_reasons(m, NAMES, values, CATALOG, n_up=3, n_down=1)
    assert [d["feature"] for d in r[0]] == ["eng__logins_30d", "sup__open_tickets", "buy__tenure_days", "eng__email_open_share"]
    assert r[0][0] == {"feature": "eng__logins_30d", "label": "Logins in the last 30 days", "value": 2, "contribution": 0.30}
    assert isinstance(r[0][0]["value"], int)
    r2 = top_reasons(m, NAMES, values, CATALOG, n_up=1, n_down=2)
    assert [d["feature"] for d in r2[0]] == ["eng__logins_30d", "eng__email_open_share", "buy__margin_365d"]
    assert top_reasons(m, NAMES, values, CATALOG, n_up=0, n_down=0) == [[]]


def test_top_reasons_errors_name_the_problem():
    m = np.zeros((1, 3))
    with pytest.raises(ExplanationError, match="3\\) but 6 feature names"):
        top_reasons(m, NAMES, pd.DataFrame(index=[0]), CATALOG)
    with pytest.raises(ExplanationError, match="values lacks feature columns selected as reasons: \\['eng__logins_30d'\\]"):
        top_reasons(np.array([[1.0, 0, 0, 0, 0, 0]]), NAMES, pd.DataFrame({"x": [1]}), CATALOG)
    with pytest.raises(ExplanationError, match="n_up=-1"):
        select_reasons(np.zeros((1, 2)), n_up=-1)


def test_sentence_formats_values_by_unit():
    reasons = [
        {"feature": "eng__logins_30d", "label": "Logins in the last 30 days", "value": 2, "contribution": 0.3},
        {"feature": "sup__open_tickets", "label": "Open support tickets", "value": 3.0, "contribution": 0.2},
        {"feature": "buy__tenure_days", "label": "Tenure", "value": 45, "contribution": 0.1},
        {"feature": "buy__margin_365d", "label": "Gross margin in the last year", "value": 1234.5, "contribution": -0.2},
    ]
    assert reason_sentence(reasons, CATALOG, outcome="churn risk") == (
        "Logins in the last 30 days: 2 (raises churn risk); Open support tickets: 3 (raises churn risk); "
        "Tenure: 45 days (raises churn risk); Gross margin in the last year: 1,234.50 (lowers churn risk)"
    )


def test_sentence_share_categorical_missing_and_outcome_words():
    reasons = [
        {"feature": "eng__email_open_share", "label": "Share of emails opened", "value": 0.125, "contribution": 0.05},
        {"feature": "firm__industry", "label": "Industry", "value": "financial_services", "contribution": 0.04},
        {"feature": "buy__tenure_days", "label": "Tenure", "value": None, "contribution": -0.01},
    ]
    text = reason_sentence(reasons, CATALOG, outcome="the chance of conversion")
    assert text == (
        "Share of emails opened: 12% (raises the chance of conversion); "
        "Industry: financial services (raises the chance of conversion); "
        "Tenure: none recorded (lowers the chance of conversion)"
    )
    assert reason_sentence([], CATALOG) == "No single factor stands out"


def test_batch_sentences_match_single_row_sentences():
    rng = np.random.default_rng(3)
    m = rng.normal(size=(50, len(NAMES)))
    values = pd.DataFrame(
        {
            "eng__logins_30d": rng.integers(0, 40, 50).astype(float),
            "sup__open_tickets": rng.integers(0, 5, 50).astype(float),
            "buy__tenure_days": np.where(rng.random(50) < 0.2, np.nan, rng.integers(1, 900, 50)),
            "buy__margin_365d": rng.gamma(2, 300, 50),
            "eng__email_open_share": rng.random(50),
            "firm__industry": pd.Series(rng.choice(["retail", "saas", None], 50), dtype="str"),
        }
    )
    rows = top_reasons(m, NAMES, values, CATALOG, n_up=2, n_down=2)
    batch = reason_sentences(rows, CATALOG, outcome="expected value")
    assert batch == [reason_sentence(r, CATALOG, outcome="expected value") for r in rows]
    assert all(s.count("(raises expected value)") <= 2 and s.count("(lowers expected value)") <= 2 for s in batch)


def test_reasons_json_is_compact_and_round_trips():
    rows = [
        [{"feature": "eng__logins_30d", "label": "Logins in the last 30 days", "value": 2, "contribution": 0.123456789}],
        [],
    ]
    out = reasons_json(rows)
    assert out[1] == "[]"
    assert " " not in out[0].replace("Logins in the last 30 days", "")
    back = json.loads(out[0])
    assert back == [{"feature": "eng__logins_30d", "label": "Logins in the last 30 days", "value": 2, "contribution": 0.123457}]


from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra.numpy import arrays  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(
    m=arrays(np.float64, st.tuples(st.integers(1, 8), st.integers(2, 6)), elements=st.floats(-4, 4)),
    temp=st.floats(0.1, 3.0),
    shift=st.floats(-2, 2),
)
def test_calibration_identity_holds_for_any_matrix_and_monotone_calibrator(m, temp, shift):
    def calibrate(r):
        return sigmoid(temp * r + shift)

    cal, base_cal = calibrated_contributions(m, calibrate)
    np.testing.assert_allclose(cal.sum(axis=1) + base_cal, calibrate(m.sum(axis=1)), atol=1e-9)
    assert np.all(np.sign(cal) * np.sign(m[:, :-1]) >= 0)  # a monotone map never flips a reason


def test_flat_calibrator_step_still_names_the_drivers():
    """An isotonic step can map a row's raw score and the base to the same value: calibrated contributions are all
    zero, yet the raw ones still say what moved the model; reasons are chosen and signed by those."""
    from models.explain import explain_batch

    contrib = np.array([[0.8, -0.3, 0.1, 0.5],    # raw 1.1 vs base 0.5: same flat step below
                        [0.0, 0.0, 0.0, 0.5]])   # exactly the base: nothing to say
    flat = lambda raw: np.where(np.asarray(raw) < 2.0, 0.2, 0.9)  # noqa: E731
    values = pd.DataFrame({"a": [3.0, 1.0], "b": [1.0, 1.0], "c": [0.0, 0.0]})
    catalog = {c: {"label": f"Feature {c}", "kind": "numeric", "unit": "count"} for c in "abc"}
    ex = explain_batch(contrib, flat, ["a", "b", "c"], values, catalog, outcome="churn risk", n_up=2, n_down=1)
    first = ex.reasons[0]
    assert [r["feature"] for r in first] == ["a", "c", "b"]
    assert all(r["contribution"] == 0.0 for r in first)            # calibrated: the score equals the base
    assert [r["raw_contribution"] for r in first] == [0.8, 0.1, -0.3]
    assert ex.reason_text[0].startswith("Feature a: 3 (raises churn risk)")
    assert "Feature b: 1 (lowers churn risk)" in ex.reason_text[0]
    assert ex.reasons[1] == [] and ex.reason_text[1] == "No single factor stands out"
