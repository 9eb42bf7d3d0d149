"""The CLV total anchored on BG/NBD: a population's total follows the anchor column, the model allocates it."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from models.calibration import ExpCalibrator, TotalAnchor
from models.errors import ArtifactFormatError, ModelConfigError
from models.predictor import PREDICTOR_FILE, load_predictor, save_predictor
from models.tasks import TASKS
from models.train import TrainingData, train_task
from tests.unit.test_models_train import CATALOG, FAST, SETTINGS, Info, make_data

ANCHOR = "btyd__expected_margin_30d"


def test_anchor_scales_a_population_to_its_bias_corrected_total():
    anchor = TotalAnchor.fit(ANCHOR, np.array([10.0, 30.0, np.nan]), np.array([8.0, 24.0, 0.0]), bias="validation")
    assert anchor.bias == pytest.approx(0.8)
    raw = np.log(np.array([1.0, 2.0, 5.0]))
    cal = anchor.calibrator(np.array([50.0, 50.0, np.nan]), raw, ExpCalibrator(scale=3.0))
    pred = cal.transform(raw)
    assert pred.sum() == pytest.approx(0.8 * 100.0)               # the anchor's total, times its bias
    np.testing.assert_allclose(pred / pred.sum(), [1 / 8, 2 / 8, 5 / 8])  # the model's allocation
    # No usable anchor (all NaN, absent, or not positive): the fixed fallback scale.
    fallback = ExpCalibrator(scale=3.0)
    assert anchor.calibrator(np.array([np.nan] * 3), raw, fallback) is fallback
    assert anchor.calibrator(None, raw, fallback) is fallback
    assert TotalAnchor.fit(ANCHOR, np.array([np.nan, 0.0]), np.array([1.0, 2.0]), bias="validation") is None


def test_anchor_without_bias_takes_the_anchor_total_as_it_is():
    anchor = TotalAnchor.fit(ANCHOR, np.array([10.0, 30.0]), np.array([8.0, 24.0]), bias="none")
    assert anchor.bias == 1.0
    raw = np.log(np.array([1.0, 3.0]))
    assert anchor.calibrator(np.array([60.0, 40.0]), raw, ExpCalibrator()).transform(raw).sum() == pytest.approx(100.0)
    with pytest.raises(ValueError, match="Unknown total anchor bias 'median'"):
        TotalAnchor.fit(ANCHOR, np.array([10.0]), np.array([8.0]), bias="median")


def test_unknown_anchor_bias_setting_is_refused_with_the_choices():
    with pytest.raises(ModelConfigError, match=r"Unknown total_anchor_bias 'seasonal'; expected one of \['validation', 'none'\]"):
        replace(SETTINGS, total_anchor_bias="seasonal")


def _drifting(decline: float = 0.7, seed: int = 3) -> TrainingData:
    """CLV rows whose level falls by ``decline`` per cutoff (an ageing cohort); the anchor column knows the level."""
    data = make_data("clv", n=1500, n_cutoffs=5, seed=seed)
    step = pd.factorize(data.frame["cutoff_ts"], sort=True)[0]
    level = decline ** step
    rng = np.random.default_rng(seed)
    frame = data.frame.assign(**{ANCHOR: level * np.exp(3 + 0.5 * rng.normal(size=len(step)))})
    label = data.label * level
    return TrainingData(frame=frame, label=label, catalog={**CATALOG, ANCHOR: Info("Expected margin", "btyd",
                                                                                   "numeric", "currency")},
                        horizon_days=30)


def test_training_anchors_the_held_out_total_where_the_fixed_scale_drifts():
    # The anchor column knows each cutoff's level but not the amount's unit: the validation bias supplies it.
    data = _drifting()
    fixed = train_task(TASKS["clv"], data, FAST, seed=1, settings=replace(SETTINGS, total_anchor_column=None))
    anchored = train_task(TASKS["clv"], data, FAST, seed=1,
                          settings=replace(SETTINGS, total_anchor_column="btyd__expected_margin_{horizon_days}d",
                                           total_anchor_bias="validation"))
    assert fixed.predictor.total_anchor is None and fixed.report.params["total_anchor"] is None
    assert anchored.predictor.total_anchor.column == ANCHOR and anchored.report.params["total_anchor"] == ANCHOR
    # The fixed scale, fitted one cutoff earlier, overshoots the declining total; the anchor follows it.
    assert fixed.report.metrics["total_ratio"] > 1.2
    assert abs(anchored.report.metrics["total_ratio"] - 1) < 0.1
    # Same booster, same ranking: only the total moves.
    assert anchored.report.metrics["spearman"] == pytest.approx(fixed.report.metrics["spearman"])
    # The predictor applies it at scoring: predict on the held-out rows reproduces the reported scores.
    test = data.frame[data.frame["cutoff_ts"] == data.frame["cutoff_ts"].max()]
    np.testing.assert_allclose(anchored.predictor.predict(test), anchored.report.evaluation_frame["score"])


def test_training_without_bias_gives_each_population_the_anchor_total():
    data = _drifting(seed=5)
    model = train_task(TASKS["clv"], data, FAST, seed=1,
                       settings=replace(SETTINGS, total_anchor_column="btyd__expected_margin_{horizon_days}d",
                                        total_anchor_bias="none"))
    assert model.predictor.total_anchor.bias == 1.0 and model.report.params["total_anchor_bias"] == 1.0
    test = data.frame[data.frame["cutoff_ts"] == data.frame["cutoff_ts"].max()]
    assert model.report.evaluation_frame["score"].sum() == pytest.approx(test[ANCHOR].sum())
    assert model.predictor.predict(test).sum() == pytest.approx(test[ANCHOR].sum())


def test_anchor_survives_the_artifact_and_format_1_is_refused(tmp_path):
    model = train_task(TASKS["clv"], _drifting(seed=4), FAST, seed=2,
                       settings=replace(SETTINGS, total_anchor_column="btyd__expected_margin_{horizon_days}d",
                                        total_anchor_bias="validation"))
    folder = save_predictor(model.predictor, tmp_path / "clv")
    back = load_predictor(folder)
    assert back.total_anchor == model.predictor.total_anchor
    doc = json.loads((folder / PREDICTOR_FILE).read_text())
    assert doc["format_version"] == 2 and doc["total_anchor"]["column"] == ANCHOR
    (folder / PREDICTOR_FILE).write_text(json.dumps({**{k: v for k, v in doc.items() if k != "total_anchor"},
                                                     "format_version": 1}))
    with pytest.raises(ArtifactFormatError, match=r"format version 1 .*reads format version 2\. Retrain"):
        load_predictor(folder)
