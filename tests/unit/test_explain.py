"""models.explain (the fast engine) against models.wording (the specification) and tests/reference_reasons.py.

Calibrated SHAP contributions, top-k reasons, and the texts: the wording is pinned by hand-written cases on the
reference, and explain_batch must write the reference's bytes on awkward batches.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from models import explain
from models.explain import ExplanationError, calibrated_contributions, explain_batch, select_reasons
from models.wording import value_text
from tests.reference_reasons import reason_json, reason_sentence, reference_texts, top_reasons


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


def test_explain_batch_errors_name_the_problem():
    with pytest.raises(ExplanationError, match="contrib has 3 feature columns before the base value but 6 feature"):
        explain_batch(np.zeros((1, 4)), sigmoid, NAMES, pd.DataFrame(index=[0]), CATALOG, outcome="x")
    with pytest.raises(ExplanationError, match="values has 2 rows but contrib has 1"):
        explain_batch(np.zeros((1, 7)), sigmoid, NAMES, pd.DataFrame(index=[0, 1]), CATALOG, outcome="x")
    with pytest.raises(ExplanationError, match=r"values lacks feature columns selected as reasons: \['eng__logins_30d'\]"):
        explain_batch(np.array([[1.0, 0, 0, 0, 0, 0, 0]]), sigmoid, NAMES, pd.DataFrame({"x": [1]}), CATALOG,
                      outcome="x")
    with pytest.raises(ExplanationError, match="n_up=-1"):
        select_reasons(np.zeros((1, 2)), n_up=-1)


@pytest.mark.parametrize(
    "value,kind,unit,text",
    [
        (1, "numeric", "days", "1 day"),           # singular only for exactly one
        (1.4, "numeric", "days", "1 day"),
        (-1, "numeric", "days", "-1 days"),
        (2.5, "numeric", "count", "2"),            # ties go to even, as Python's round
        (1234567, "numeric", "count", "1,234,567"),
        (-0.005, "numeric", "currency", "-0.01"),
        (0.125, "numeric", "share", "12%"),
        (99.5, "numeric", "percent", "100%"),
        (True, "numeric", None, "1"),              # bools read as 1 and 0
        (3.0, "numeric", "parsecs", "3"),          # an unknown unit is a plain number
        (3.14159, "numeric", None, "3.14"),
        ("smb_core", "categorical", None, "smb core"),
        (None, "numeric", "count", "none recorded"),
    ],
)
def test_value_text_writes_each_unit(value, kind, unit, text):
    assert value_text(value, kind, unit) == text


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
    assert reason_sentence([], CATALOG, outcome="churn risk") == "No single factor stands out"


def test_reasons_json_is_compact_and_round_trips():
    rows = [
        [{"feature": "eng__logins_30d", "label": "Logins in the last 30 days", "value": 2, "contribution": 0.123456789}],
        [],
    ]
    out = [reason_json(r) for r in rows]
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
    contrib = np.array([[0.8, -0.3, 0.1, 0.5],    # raw 1.1 vs base 0.5: same flat step below
                        [0.0, 0.0, 0.0, 0.5]])   # exactly the base: nothing to say
    flat = lambda raw: np.where(np.asarray(raw) < 2.0, 0.2, 0.9)  # noqa: E731
    values = pd.DataFrame({"a": [3.0, 1.0], "b": [1.0, 1.0], "c": [0.0, 0.0]})
    catalog = {c: {"label": f"Feature {c}", "kind": "numeric", "unit": "count"} for c in "abc"}
    ex = explain_batch(contrib, flat, ["a", "b", "c"], values, catalog, outcome="churn risk", n_up=2, n_down=1)
    first = json.loads(ex.reasons_json[0])
    assert [r["feature"] for r in first] == ["a", "c", "b"]
    assert all(r["contribution"] == 0.0 for r in first)            # calibrated: the score equals the base
    cal, _ = calibrated_contributions(contrib, flat)
    chosen = top_reasons(cal, ["a", "b", "c"], values, catalog, n_up=2, n_down=1, rank_by=contrib[:, :-1])
    assert [r["raw_contribution"] for r in chosen[0]] == [0.8, 0.1, -0.3]
    assert ex.reasons_json == [reason_json(r) for r in chosen]
    assert ex.reason_text[0].startswith("Feature a: 3 (raises churn risk)")
    assert "Feature b: 1 (lowers churn risk)" in ex.reason_text[0]
    assert ex.reasons_json[1] == "[]" and ex.reason_text[1] == "No single factor stands out"


# ---------------------------------------------------------------------------------------------
# explain_batch builds its texts on arrays; tests/reference_reasons.py, row by row, is the reference
# ---------------------------------------------------------------------------------------------
MIXED_CATALOG = {
    "cnt": Info('Open "urgent" tickets', "sup", "numeric", "count"),
    "tenure": Info("Tenure \\ days since start", "buy", "numeric", "days"),
    "spend": Info("Dépense annuelle (€)", "buy", "numeric", "currency"),
    "opened": Info("Share of emails opened", "eng", "numeric", "share"),
    "growth": Info("Growth, %", "buy", "numeric", "percent"),
    "score": Info("Raw score", "eng", "numeric", None),
    "odd": Info("Odd unit", "eng", "numeric", "parsecs"),  # unknown units print as plain numbers
    "orders": Info("Orders (nullable)", "buy", "numeric", "count"),
    "active": Info("Active", "eng", "numeric", None),
    "trial": Info("Trial (nullable)", "eng", "numeric", None),
    "seats": Info("Seats", "firm", "numeric", "days"),
    "arr32": Info("ARR (float32)", "buy", "numeric", "currency"),
    "segment": Info("Segment", "firm", "categorical", None),
    "city": Info("Ville / 都市", "firm", "categorical", None),
    "tier": Info("Tier code", "firm", "categorical", None),
    "mixed": Info("Mixed codes", "firm", "categorical", None),
    "legacy": Info("Legacy amount", "buy", "numeric", "currency"),  # numbers in an object column
}


def _mixed_batch(seed: int, n: int) -> tuple[np.ndarray, pd.DataFrame]:
    """Raw contributions (base last) and feature values of every kind, unit and dtype, with the awkward values:
    missing, negative, integral floats, exact half-cent and half-percent ties, huge and tiny numbers."""
    rng = np.random.default_rng(seed)

    def pick(*choices, p_extra: float = 0.3, base=None) -> np.ndarray:
        out = base.copy()
        extra = rng.random(n) < p_extra
        out[extra] = rng.choice(np.array(choices, dtype=out.dtype), extra.sum())
        return out

    def with_missing(x: np.ndarray, share: float = 0.1) -> np.ndarray:
        x = x.astype(float)
        x[rng.random(n) < share] = np.nan
        return x

    values = pd.DataFrame(
        {
            "cnt": with_missing(pick(2.5, 3.5, -1.0, 1e6, 1234567.0, 1e17, 0.0, -0.0,
                                     base=rng.integers(-3, 40, n).astype(float))),
            "tenure": with_missing(pick(1.0, -1.0, 0.5, 1.5, 2.4999999999999996, 1e16,
                                        base=rng.integers(0, 2000, n).astype(float))),
            "spend": with_missing(pick(0.125, 2.675, 1.005, 0.005, -0.001, -0.0, 1e13, 2.5e14, 1234567.891, -9999.995,
                                       base=rng.gamma(2.0, 400.0, n) * rng.choice([-1, 1], n))),
            "opened": with_missing(pick(0.125, 0.005, -0.001, 0.5, 1.0, 0.0, 1e-7, base=rng.random(n))),
            "growth": with_missing(pick(12.5, 99.5, -0.3, 0.5, 1e20, base=rng.normal(5, 30, n))),
            "score": with_missing(pick(3.0, -7.0, 1e6, 1.005, 2.345, 1e-5, 1.5e-7, 1e15, 1e16, 1e17, 123456789.0,
                                       -0.0, 1234567890123.4, 1e-4, 9.999e-5, base=rng.normal(0, 50, n))),
            "odd": with_missing(rng.normal(0, 3, n).round(rng.integers(0, 3))),
            "orders": pd.array(np.where(rng.random(n) < 0.15, None, rng.integers(-5, 5000, n)), dtype="Int64"),
            "active": rng.random(n) < 0.5,
            "trial": pd.array(np.where(rng.random(n) < 0.2, None, rng.random(n) < 0.5), dtype="boolean"),
            "seats": rng.integers(-3, 300, n).astype(np.int32),
            "arr32": with_missing(rng.gamma(2.0, 5000.0, n)).astype(np.float32),
            "segment": pd.Categorical(rng.choice(["smb_core", "mid_market", "enterprise", None], n)),
            "city": pd.Series(rng.choice(["Zürich_Nord", 'Quote"d', "Back\\slash", "東京", "", None], n), dtype="str"),
            "tier": rng.integers(0, 4, n),
            "mixed": pd.Series(rng.choice(np.array([1, 1.0, True, "1", None, "x_y"], dtype=object), n), dtype=object),
            "legacy": pd.Series(rng.choice(np.array([2, 2.675, True, None, np.nan, 10**20, -0.0], dtype=object), n),
                                dtype=object),
        },
        index=rng.permutation(n) + 1000,  # explain_batch reads rows by position, not by label
    )
    p = values.shape[1]
    raw = rng.normal(0, 0.3, (n, p)) * (rng.random((n, p)) < 0.6)  # many exact zeros: never reasons
    raw[rng.random(n) < 0.1] = 0.0                                   # rows with no reason at all
    ties = rng.random(n) < 0.1                                       # equal contributions within a row
    raw[ties, 1] = raw[ties, 0]
    raw[ties, 3] = -np.abs(raw[ties, 2])
    raw[ties, 4] = raw[ties, 3]
    base = rng.normal(-1, 0.5, (n, 1))
    return np.hstack([raw, base]), values


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("n_up,n_down", [(3, 1), (2, 2), (0, 2), (3, 0), (0, 0), (20, 20)])
def test_explain_batch_texts_equal_the_per_row_reference(seed, n_up, n_down, monkeypatch):
    # Small blocks, so that a few hundred rows cross several block boundaries of both sweeps and texts.
    monkeypatch.setattr(explain, "_BLOCK_ROWS", 37)
    monkeypatch.setattr(explain, "_TEXT_BLOCK_ROWS", 53)
    contrib, values = _mixed_batch(seed, 300)
    names = list(values.columns)
    ex = explain_batch(contrib, sigmoid, names, values, MIXED_CATALOG, outcome="the chance of SQL", n_up=n_up,
                       n_down=n_down)
    ref_json, ref_text = reference_texts(contrib, sigmoid, names, values, MIXED_CATALOG, outcome="the chance of SQL",
                                          n_up=n_up, n_down=n_down)
    assert len(ex.reasons_json) == len(ex.reason_text) == len(values)
    for i, (got, want) in enumerate(zip(ex.reasons_json, ref_json)):
        assert got == want, f"row {i}"
        assert json.loads(got) == json.loads(want)
    for i, (got, want) in enumerate(zip(ex.reason_text, ref_text)):
        assert got == want, f"row {i}"
    if n_up + n_down:
        assert sum(t == "No single factor stands out" for t in ex.reason_text) >= 10
        assert sum(t != "No single factor stands out" for t in ex.reason_text) >= 200


def test_explain_batch_with_fewer_features_than_slots_and_empty_batches():
    values = pd.DataFrame({"a": [1.0, np.nan, 3.0], "b": pd.Series(["x_y", None, "z"], dtype="str")})
    catalog = {"a": Info('Label "a"', "f", "numeric", "days"), "b": Info("Bé\\", "f", "categorical", None)}
    contrib = np.array([[0.2, -0.1, 0.3], [0.0, 0.0, 0.3], [-0.4, 0.5, 0.3]])
    ex = explain_batch(contrib, sigmoid, ["a", "b"], values, catalog, outcome="x", n_up=3, n_down=2)
    assert (ex.reasons_json, ex.reason_text) == reference_texts(contrib, sigmoid, ["a", "b"], values, catalog,
                                                                 outcome="x", n_up=3, n_down=2)
    assert ex.reason_text[1] == "No single factor stands out" and ex.reasons_json[1] == "[]"
    empty = explain_batch(contrib[:0], sigmoid, ["a", "b"], values.iloc[:0], catalog, outcome="x")
    assert empty.reasons_json == empty.reason_text == [] and empty.score.shape == (0,)


def test_explain_batch_score_is_the_calibrated_raw_score(monkeypatch):
    monkeypatch.setattr(explain, "_BLOCK_ROWS", 7)
    contrib, values = _mixed_batch(5, 100)
    ex = explain_batch(contrib, sigmoid, list(values.columns), values, MIXED_CATALOG, outcome="x")
    assert np.array_equal(ex.raw, contrib.sum(axis=1))
    assert np.array_equal(ex.score, sigmoid(contrib[:, :-1].sum(axis=1) + contrib[:, -1]))
    cal, base_cal = calibrated_contributions(contrib, sigmoid)
    np.testing.assert_allclose(cal.sum(axis=1) + base_cal, ex.score, rtol=0, atol=1e-12)


def test_rows_on_one_flat_calibration_step_tie_exactly():
    """Percentiles rank ties together, so rows whose raw scores fall on one flat step must get the same score."""
    step = lambda r: np.where(r < 0.0, 0.1, 0.6)  # an isotonic calibrator with two steps
    rng = np.random.default_rng(4)
    contrib = np.column_stack([rng.normal(size=(50, 3)), np.full(50, 0.3)])
    values = pd.DataFrame(rng.normal(size=(50, 3)), columns=["a", "b", "c"])
    ex = explain_batch(contrib, step, ["a", "b", "c"], values, {}, outcome="x")
    assert set(ex.score.tolist()) == {0.1, 0.6}


def test_non_finite_values_are_refused_as_by_the_reference():
    values = pd.DataFrame({"a": [np.inf, 1.0]})
    catalog = {"a": Info("A", "f", "numeric", "count")}
    contrib = np.array([[0.5, 0.0], [0.5, 0.0]])
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        reference_texts(contrib, sigmoid, ["a"], values, catalog, outcome="x", n_up=1, n_down=0)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        explain_batch(contrib, sigmoid, ["a"], values, catalog, outcome="x", n_up=1, n_down=0)


@pytest.mark.parametrize("seed", [0, 1])
def test_sweep_selection_equals_argpartition_including_ties(seed, monkeypatch):
    """The arg-max sweeps choose what argpartition chose: rows with ties among positive values go to argpartition."""
    monkeypatch.setattr(explain, "_BLOCK_ROWS", 11)
    rng = np.random.default_rng(seed)
    m = rng.choice([-0.5, -0.2, 0.0, 0.0, 0.1, 0.2, 0.2, 0.7], size=(500, 9))  # ties everywhere
    m[rng.random(500) < 0.3] = rng.normal(size=(1, 9))
    for k in (1, 2, 3, 4, 9):
        for lowest in (False, True):
            idx, vals = explain._top_k(m, k, lowest=lowest)
            ref_idx, ref_vals = explain._top_k_partition(-m if lowest else m, k)
            positive = ref_vals > 0
            assert np.array_equal(vals[positive], ref_vals[positive]) and np.array_equal(positive, vals > 0)
            assert np.array_equal(idx[positive], ref_idx[positive]), (k, lowest)


@pytest.mark.parametrize(
    "x",
    [
        [0.125, 0.375, 2.675, 1.005, 0.005, 0.015, -0.001, -0.0, 0.0, 1e13, 1e13 - 0.005, 9.995, -9999.995, 2.5, 3.5],
        [1e-4, 9.99e-5, 1e-5, 1.5e-7, 1e15, 1e16, 1e17, 1e22, 123456789012345.0, 999999999999999.9, 5e-324, 1.7e306],
    ],
)
def test_number_formatters_match_python_on_ties_and_extremes(x):
    x = np.array(x)
    assert explain._float_json(x).to_pylist() == [json.dumps(v) for v in x.tolist()]
    assert explain._two_decimals(x).to_pylist() == [f"{v:,.2f}" for v in x.tolist()]
    assert explain._no_decimals(x * 100).to_pylist() == [f"{v * 100:.0f}" for v in x.tolist()]
    whole = np.rint(x)
    assert explain._thousands(whole).to_pylist() == [f"{int(v):,}" for v in whole.tolist()]
    c = np.concatenate([x, -x, x * 3.3, [0.1234565, 0.1234575, 1234565.0, 0.999999500000001, 9.9999995e-5]])
    assert explain._six_significant(c).tolist() == [float(f"{v:.6g}") for v in c.tolist()]
