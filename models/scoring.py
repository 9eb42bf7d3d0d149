"""Scoring one task: scores, percentiles, bands and reasons for every eligible record, in chunks.

Pure apart from the model it is handed: no I/O, no clock. The cost is dominated by exact TreeSHAP
(``pred_contrib``); everything after it (calibration mapping, top-k, sentences, JSON) is vectorised.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.catalog import FeatureSet
from models.bands import TASK_SCHEME, assign_bands, percentiles
from models.explain import explain_batch
from models.tasks import TaskSpec

#: How each task's direction reads in a sentence ("raises churn risk").
OUTCOME_WORDS: dict[str, str] = {
    "churn": "churn risk",
    "clv": "expected value",
    "lead_mql": "the chance of reaching SQL",
    "lead_sql": "the chance of winning",
}


@dataclass(frozen=True)
class ScoringOptions:
    """Config section ``scoring``."""

    reasons_up: int = 3
    reasons_down: int = 1
    chunk_rows: int = 50_000
    band_thresholds: Mapping[str, Mapping[str, float]] | None = None


def score_task(model, spec: TaskSpec, fs: FeatureSet, *, model_version: int | str,
               options: ScoringOptions = ScoringOptions()) -> pd.DataFrame:
    """Score every row of ``fs`` (one cutoff) with ``model``.

    Returns
    -------
    One row per entity with the ``crm_scores`` input columns: entity_type, entity_id, model, score,
    score_percentile, band, reasons (JSON text), reason_text, model_version. Row order follows ``fs``.
    """
    frame = fs.frame
    cols = ["entity_type", "entity_id", "model", "score", "score_percentile", "band", "reasons", "reason_text",
            "model_version"]
    if frame.empty:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    if frame["cutoff_ts"].nunique() != 1:
        raise ValueError("score_task scores one cutoff at a time; the feature set holds several")
    scores, reasons, texts = [], [], []
    outcome = OUTCOME_WORDS.get(spec.name, spec.outcome)
    names = list(model.feature_names)
    for start in range(0, len(frame), options.chunk_rows):
        chunk = frame.iloc[start:start + options.chunk_rows]
        contrib = model.contributions(chunk)
        ex = explain_batch(contrib, model.calibrate_raw, names, chunk[names], model.catalog, outcome=outcome,
                           n_up=options.reasons_up, n_down=options.reasons_down)
        scores.append(ex.score)
        reasons.extend(ex.reasons_json)
        texts.extend(ex.reason_text)
    score = pd.Series(np.concatenate(scores), index=frame.index, dtype="float64")
    pct = percentiles(score)
    scheme = TASK_SCHEME[spec.name]
    thresholds = (options.band_thresholds or {}).get(scheme)
    band = assign_bands(score, pct, scheme, thresholds)
    return pd.DataFrame({
        "entity_type": spec.entity,
        "entity_id": frame["entity_id"].astype("str").to_numpy(),
        "model": spec.name,
        "score": score.to_numpy(),
        "score_percentile": pct.astype("int64").to_numpy(),
        "band": band.to_numpy(),
        "reasons": reasons,
        "reason_text": texts,
        "model_version": str(model_version),
    })


def value_at_risk(churn: pd.DataFrame, clv: pd.DataFrame) -> pd.DataFrame:
    """Expected loss per account scored by both: P(churn) x CLV, for the ``crm_value_at_risk`` table."""
    both = churn[["entity_id", "score"]].merge(clv[["entity_id", "score"]], on="entity_id", suffixes=("_churn", "_clv"))
    return pd.DataFrame({
        "entity_type": "account",
        "entity_id": both["entity_id"],
        "churn_probability": both["score_churn"],
        "clv": both["score_clv"],
        "value_at_risk": both["score_churn"] * both["score_clv"].clip(lower=0.0),
    })
