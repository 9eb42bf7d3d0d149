"""The drift reference describes the population the model will score: on a stationary synthetic world the first
scoring runs of every task raise no drift, while the held-out cutoff's features (a horizon older than the model)
as reference alert on CLV, and a shifted feature is still caught.

Pure path, as the flows run it (no Prefect, no MLflow): ``build_training_data`` + ``train_task`` at the training
as-of, the reference by ``pipelines.flows._reference`` from the scoring features at that date, then
``pipelines.monitor.check_run`` on the scoring features 7 and 30 days later of a world simulated past it.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from crm.privacy import exclude_deleted, profiling_view
from crm.synthetic import generate_world
from features.catalog import FeatureSet
from models.bands import assign_bands, percentiles
from models.dataset import build_scoring_features, build_training_data
from models.monitoring import ModelReference
from models.tasks import TASKS, horizon_days
from models.train import SearchConfig, train_task
from pipelines import flows
from pipelines.monitor import check_run
from tests import defaults

TRAIN_AS_OF = pd.Timestamp("2026-06-01", tz="UTC")
LATER_DAYS = (7, 30)
# a small budget: what is tested is the reference, not the model
FAST = defaults.lightgbm_params(max_trees=60, search=(SearchConfig(num_leaves=7, min_child_samples=20,
                                                                    learning_rate=0.15, feature_fraction=1.0),))
CUTOFFS = defaults.cutoff_options(count=4, lead_count=6)
# the production thresholds, with min_rows low enough that lead_mql's few hundred open leads are tested too; lead_sql
# has a few dozen SQL leads here, below any size at which PSI's chi-square approximation holds: insufficient
THRESHOLDS = defaults.monitor_thresholds(min_rows=200)
DRIFT = ("feature_drift", "score_shift", "catastrophic_score_shift")


@pytest.fixture(scope="module")
def world():
    """1,200 accounts and 3,000 leads simulated up to 30 days after the training as-of (a stationary business:
    accounts and leads arrive at a constant rate); the usable tables."""
    w = generate_world(1_200, 3_000, 11, TRAIN_AS_OF + pd.Timedelta(days=max(LATER_DAYS)))
    return profiling_view(exclude_deleted(w.tables))


def _scored(model, spec, settings, tables, as_of):
    fs = build_scoring_features(tables, spec, as_of=as_of, options=defaults.feature_options())
    p = model.predictor.predict(fs.frame)
    bands = assign_bands(p, percentiles(p), spec.band_scheme, settings.bands[spec.band_scheme])
    return fs.frame, pd.DataFrame({"entity_id": fs.frame["entity_id"].to_numpy(), "score": p,
                                   "band": np.asarray(bands, dtype=object)})


def _drift_reasons(checked):
    return [(r.severity, r.code, r.subject, r.value) for r in checked.reasons if r.code in DRIFT]


@pytest.mark.parametrize("task", list(TASKS))
def test_first_scoring_runs_on_a_stationary_world_raise_no_drift(world, task):
    spec, settings = TASKS[task], defaults.settings()
    data = build_training_data(world, spec, as_of=TRAIN_AS_OF, horizon_days=horizon_days(spec, settings.horizons),
                               cutoffs=CUTOFFS, options=defaults.feature_options())
    model = train_task(spec, data, FAST, seed=0, settings=defaults.evaluation_settings())
    importance = {c: 1.0 for c in model.predictor.feature_names}
    population = build_scoring_features(world, spec, as_of=TRAIN_AS_OF, options=defaults.feature_options())
    reference = ModelReference.from_dict(flows._reference(model, data, spec, settings, importance, population,
                                                          TRAIN_AS_OF))
    assert reference.as_of == TRAIN_AS_OF.isoformat()
    assert reference.score.n == len(population.frame) and reference.score.n_held_out == len(data.frame.loc[
        data.frame["cutoff_ts"].isin(list(model.report.test_cutoffs))])
    held_out_as_reference = ModelReference.from_dict(flows._reference(
        model, data, spec, settings, importance, FeatureSet(population.frame.iloc[:0], population.catalog),
        TRAIN_AS_OF))
    assert held_out_as_reference.as_of == pd.Timestamp(model.report.test_cutoffs[-1]).isoformat()
    for days in LATER_DAYS:
        at = TRAIN_AS_OF + pd.Timedelta(days=days)
        frame, scores = _scored(model, spec, settings, world, at)
        checked = check_run(spec, reference, frame, scores, None, as_of=at, thresholds=THRESHOLDS, seed=0, draws=20)
        assert _drift_reasons(checked) == [] and not checked.blocking, (days, checked.reasons)
        assert (checked.status == "insufficient") == (spec.name == "lead_sql"), (checked.n, checked.status)
        if spec.name == "clv":  # the held-out cutoff is a year older: tenure and BG/NBD features alert against it
            old = check_run(spec, held_out_as_reference, frame, scores, None, as_of=at, thresholds=THRESHOLDS,
                            seed=0, draws=20)
            assert old.status == "alert" and any(c == "feature_drift" for _, c, _, _ in _drift_reasons(old))
        if spec.entity == "account" and days == max(LATER_DAYS):  # a real shift against the new reference is caught
            column = "buy__margin_total"
            shifted = frame.assign(**{column: frame[column] * 3 + frame[column].std()})
            caught = check_run(spec, reference, shifted, scores, None, as_of=at, thresholds=THRESHOLDS, seed=0,
                               draws=20)
            assert ("alert", "feature_drift", column) in [r[:3] for r in _drift_reasons(caught)], caught.reasons
