"""Scoring one task: scores, percentiles, bands and reasons for every eligible record, in chunks.

Pure apart from the model it is handed: no I/O, no clock. Reasons need exact TreeSHAP for every row, which
LightGBM's ``pred_contrib`` computes at about 1% of prediction speed; :class:`models.treeshap.PatternTreeShap`
gives the same numbers by calling it once per distinct decision pattern of each tree, and each chunk is
checked against a direct ``pred_contrib`` on a few rows. Everything after it (calibration mapping, top-k,
sentences, JSON) is vectorised.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalog import FeatureSet
from models.bands import SCORE_ROW_COLUMNS, build_score_rows
from models.errors import ModelConfigError
from models.explain import explain_batch
from models.tasks import TaskSpec
from models.treeshap import PatternTreeShap

TREESHAP_METHODS = ("pattern", "lightgbm")


@dataclass(frozen=True)
class ScoringOptions:
    """Config section ``scoring`` (and the band cut-offs of ``bands``); values in configs/default.yaml.

    ``treeshap``: "pattern" (PatternTreeShap, exact, checked on ``check_rows`` rows per chunk) or "lightgbm"
    (``pred_contrib`` on every row). ``threads`` 0 = every core.
    """

    reasons_up: int
    reasons_down: int
    chunk_rows: int
    threads: int
    band_thresholds: Mapping[str, Mapping[str, float]]
    treeshap: str
    check_rows: int

    def __post_init__(self) -> None:
        if self.treeshap not in TREESHAP_METHODS:
            raise ModelConfigError(f"scoring.treeshap must be one of {TREESHAP_METHODS}; got {self.treeshap!r}.")


def score_task(model, spec: TaskSpec, fs: FeatureSet, *, model_version: int | str,
               options: ScoringOptions) -> pd.DataFrame:
    """Score every row of ``fs`` (one cutoff) with ``model`` (a :class:`models.predictor.Predictor`).

    Returns
    -------
    One row per entity with the ``crm_scores`` input columns: entity_type, entity_id, model, score,
    score_percentile, band, reasons (JSON text), reason_text, model_version. Row order follows ``fs``.
    """
    frame = fs.frame
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in SCORE_ROW_COLUMNS})
    if frame["cutoff_ts"].nunique() != 1:
        raise ValueError("score_task scores one cutoff at a time; the feature set holds several")
    # One mapping for the whole population (a CLV total anchored on BG/NBD is a property of all rows, not a chunk).
    explained = explain_rows(model, spec, frame, model.calibrator_for(frame).transform, options)
    return score_rows(spec, frame["entity_id"], explained, model_version=model_version, options=options)


@dataclass(frozen=True)
class ExplainedRows:
    """Scores and reasons of some rows, aligned with them (what :func:`explain_rows` returns)."""

    score: np.ndarray
    reasons_json: list[str]
    reason_text: list[str]


def explain_rows(model, spec: TaskSpec, frame: pd.DataFrame, calibrate, options: ScoringOptions) -> ExplainedRows:
    """Calibrated scores and top reasons of every row of ``frame``, chunk by chunk; each row's result depends only on
    that row and on ``calibrate`` (the population's raw -> reported mapping, ``Predictor.calibrator_for``), so a
    population can be explained in parts (buckets) and the parts concatenated."""
    scores, reasons, texts = [], [], []
    names = list(model.feature_names)
    explainer = PatternTreeShap(model.booster) if options.treeshap == "pattern" else None
    for start in range(0, len(frame), options.chunk_rows):
        chunk = frame.iloc[start:start + options.chunk_rows]
        if explainer is None:
            contrib = model.contributions(chunk, num_threads=options.threads)
        else:
            X = explainer.to_numpy(model.matrix(chunk))
            contrib = explainer.contributions(X, num_threads=options.threads)
            explainer.check(X, contrib, np.linspace(0, len(X) - 1, min(options.check_rows, len(X))).astype(int))
        ex = explain_batch(contrib, calibrate, names, chunk[names], model.catalog, outcome=spec.reason_outcome,
                           n_up=options.reasons_up, n_down=options.reasons_down)
        scores.append(ex.score)
        reasons.extend(ex.reasons_json)
        texts.extend(ex.reason_text)
    return ExplainedRows(score=np.concatenate(scores) if scores else np.zeros(0), reasons_json=reasons,
                         reason_text=texts)


def score_rows(spec: TaskSpec, entity_ids: pd.Series, explained: ExplainedRows, *, model_version: int | str,
               options: ScoringOptions) -> pd.DataFrame:
    """The ``crm_scores`` input rows of a whole scored population: percentiles and bands are computed over all of it."""
    if spec.band_scheme not in options.band_thresholds:
        raise ModelConfigError(f"no band cut-offs for scheme {spec.band_scheme!r} of task {spec.name!r}: "
                               f"add bands.{spec.band_scheme} to the configuration.")
    return build_score_rows(spec.name, spec.entity, entity_ids, explained.score, scheme=spec.band_scheme,
                            thresholds=options.band_thresholds[spec.band_scheme], model_version=str(model_version),
                            reasons_json=explained.reasons_json, reason_text=explained.reason_text)
