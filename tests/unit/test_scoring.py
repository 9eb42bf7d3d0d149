"""models.scoring.score_task: the pattern TreeSHAP path writes exactly what LightGBM's pred_contrib path writes.

A real Predictor (the training tests' seeded data with a known interaction, two categoricals with missing
values) scores one cutoff with each TreeSHAP method and several chunk sizes; the crm_scores rows must agree.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from features.catalog import FeatureSet
from models.errors import ModelConfigError
from models.scoring import score_task
from tests.defaults import scoring_options
from models.tasks import TASKS
from models.train import train_task
from tests.unit.test_models_train import FAST, SETTINGS, make_data


@pytest.fixture(scope="module", params=["binary", "tweedie"])
def scored(request):
    kind = request.param
    task = TASKS["churn" if kind == "binary" else "clv"]
    data = make_data(kind, n=600, seed=3)
    model = train_task(task, data, FAST, seed=7, settings=SETTINGS).predictor
    last = data.frame["cutoff_ts"] == data.frame["cutoff_ts"].max()
    frame = data.frame[last].reset_index(drop=True)
    frame.loc[::17, "firm__segment"] = "a segment never seen in training"
    frame.loc[::13, "buy__margin_365d"] = np.nan
    return task, model, FeatureSet(frame=frame, catalog=dict(data.catalog))


def _score(scored, **options) -> pd.DataFrame:
    task, model, fs = scored
    return score_task(model, task, fs, model_version=3, options=scoring_options(**options))


def test_pattern_and_lightgbm_treeshap_write_the_same_rows(scored):
    reference = _score(scored, treeshap="lightgbm")
    for chunk_rows in (10**6, 97):
        got = _score(scored, treeshap="pattern", chunk_rows=chunk_rows, threads=2)
        pd.testing.assert_frame_equal(got.drop(columns="score"), reference.drop(columns="score"))
        np.testing.assert_allclose(got["score"], reference["score"], rtol=0, atol=1e-12)


def test_scores_are_the_calibrated_predictions_and_reasons_are_complete(scored):
    task, model, fs = scored
    rows = _score(scored)
    np.testing.assert_allclose(rows["score"].to_numpy(float), model.predict(fs.frame), rtol=1e-12, atol=1e-9)
    assert rows["entity_id"].tolist() == fs.frame["entity_id"].tolist()
    parsed = rows["reasons"].map(json.loads)
    assert parsed.map(len).gt(0).all()
    assert set(parsed.iloc[0][0]) == {"feature", "label", "value", "contribution"}


def test_unknown_treeshap_method_is_refused():
    with pytest.raises(ModelConfigError, match=r"scoring.treeshap must be one of \('pattern', 'lightgbm'\); got 'fast'"):
        scoring_options(treeshap="fast")
