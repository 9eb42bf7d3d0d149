"""The predictor artifact: LightGBM model text + JSON, bit-identical after a round trip, refused in another format."""
from __future__ import annotations

import json
import pickle
import sys
from dataclasses import replace

import numpy as np
import pytest

from models.errors import ArtifactFormatError
from models.predictor import BOOSTER_FILE, FORMAT_VERSION, PREDICTOR_FILE, load_predictor, save_predictor
from models.tasks import TASKS
from models.train import train_task
from tests.unit.test_models_train import FAST, SETTINGS, make_data


@pytest.fixture(scope="module")
def churn_data():
    return make_data("binary", n=400, n_cutoffs=4, seed=5)


@pytest.fixture(scope="module", params=["auto", "platt", "none"])
def churn_trained(request, churn_data):
    return train_task(TASKS["churn"], churn_data, FAST, seed=7,
                      settings=replace(SETTINGS, calibration=request.param))


@pytest.fixture(scope="module")
def clv_trained():
    return train_task(TASKS["clv"], make_data("clv", n=400, n_cutoffs=4, seed=6), FAST, seed=3, settings=SETTINGS)


def _rows(data):
    rows = data.frame.copy()
    rows.loc[::7, "firm__segment"] = "a segment never seen in training"  # unseen -> missing, as in training
    rows.loc[::11, "eng__x1"] = np.nan
    return rows


def test_round_trip_is_bit_identical(churn_trained, clv_trained, churn_data, tmp_path):
    for name, trained in (("churn", churn_trained), ("clv", clv_trained)):
        predictor = trained.predictor
        back = load_predictor(save_predictor(predictor, tmp_path / name))
        rows = _rows(churn_data)
        assert back.task == predictor.task and back.feature_names == predictor.feature_names
        assert back.vocab == predictor.vocab and back.calibrator == predictor.calibrator
        assert back.booster.model_to_string() == predictor.booster.model_to_string()
        np.testing.assert_array_equal(back.predict(rows), predictor.predict(rows))
        np.testing.assert_array_equal(back.contributions(rows), predictor.contributions(rows))
        assert {c: (i.label, i.family, i.kind, i.unit) for c, i in back.catalog.items()} == {
            c: (i.label, i.family, i.kind, i.unit) for c, i in predictor.catalog.items()}


def test_artifact_is_text_and_json_only_and_loads_without_the_training_classes(churn_trained, churn_data, tmp_path,
                                                                               monkeypatch):
    folder = save_predictor(churn_trained.predictor, tmp_path / "artifact")
    assert sorted(p.name for p in folder.iterdir()) == sorted([BOOSTER_FILE, PREDICTOR_FILE])
    doc = json.loads((folder / PREDICTOR_FILE).read_text())
    assert doc["format_version"] == FORMAT_VERSION and doc["task"] == "churn"
    pickled = pickle.dumps(churn_trained)
    # A refactor that removes or renames the training classes: models.train can no longer be imported.
    monkeypatch.setitem(sys.modules, "models.train", None)
    with pytest.raises(ImportError):
        pickle.loads(pickled)  # what a pickled TrainedModel artifact would have done
    back = load_predictor(folder)
    np.testing.assert_array_equal(back.predict(churn_data.frame), churn_trained.predictor.predict(churn_data.frame))


def test_another_format_version_is_refused_with_one_line_naming_both(churn_trained, tmp_path):
    folder = save_predictor(churn_trained.predictor, tmp_path / "v2")
    doc = json.loads((folder / PREDICTOR_FILE).read_text())
    (folder / PREDICTOR_FILE).write_text(json.dumps({**doc, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ArtifactFormatError,
                       match=rf"format version {FORMAT_VERSION + 1} .*reads format version {FORMAT_VERSION}\. Retrain"
                       ) as info:
        load_predictor(folder)
    assert "\n" not in str(info.value)

    legacy = tmp_path / "legacy"
    legacy.mkdir()
    (legacy / "trained_model.pkl").write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ArtifactFormatError, match=rf"format version 0 .*reads format version {FORMAT_VERSION}"):
        load_predictor(legacy)
