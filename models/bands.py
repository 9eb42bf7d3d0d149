"""Percentiles and bands of one scoring run of one model.

Grain: one value per scored row, aligned with the input (same index). Percentiles are relative to
the rows passed in, so call these per (run, model), never across models or runs.

The band rules (every cut is a threshold given by the caller; their values live in ``configs/default.yaml``
under ``bands.<scheme>.<key>``):

churn -> high / medium / low
    ``high``   if probability >= ``high_probability`` OR in the top ``high_top_percent`` percentiles; the OR
               keeps a retention list even in a quiet month and flags every likely churner even in a bad one.
    ``medium`` if probability >= ``medium_probability`` OR in the top ``medium_top_percent``.
    ``low``    otherwise.
lead -> A / B / C / D (sales capacity is fixed, so bands are ranks, not probabilities)
    ``A`` top ``a_top_percent`` percentiles, ``B`` down to the top ``b_top_percent``,
    ``C`` down to the top ``c_top_percent``, ``D`` the rest.
clv -> top / middle / low
    ``top`` top ``top_percent`` (the Pareto head), ``low`` bottom ``low_percent``, ``middle`` in between.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from data_contracts.schema import output_schema
from models.errors import ModelError
from models.tasks import BAND_SCHEMES

SCHEMES: tuple[str, ...] = BAND_SCHEMES

#: The thresholds each scheme's rule reads (the vocabulary; the values are configuration).
THRESHOLD_KEYS: dict[str, tuple[str, ...]] = {
    "churn": ("high_probability", "high_top_percent", "medium_probability", "medium_top_percent"),
    "lead": ("a_top_percent", "b_top_percent", "c_top_percent"),
    "clv": ("top_percent", "low_percent"),
}

class BandError(ModelError, ValueError):
    """Unknown scheme, unknown or inconsistent thresholds, misaligned inputs."""


def percentiles(scores: pd.Series | np.ndarray) -> pd.Series:
    """Percentile of each score within the given rows, 1..100, higher score -> higher percentile.

    ``ceil(100 * r / n)`` where ``r`` is the rank with ties given the *highest* rank of their group
    ("max"), so tied scores share one percentile and the top score is always 100. Missing scores
    get <NA> and do not count in ``n``.

    Returns
    -------
    Series of dtype Int64 (index of ``scores`` if it is a Series).
    """
    s = pd.Series(scores, dtype="float64") if not isinstance(scores, pd.Series) else scores.astype("float64")
    n = int(s.notna().sum())
    out = pd.Series(pd.NA, index=s.index, dtype="Int64")
    if n == 0:
        return out
    r = s.rank(method="max", na_option="keep").to_numpy()
    pct = np.ceil(100.0 * r / n)
    ok = ~np.isnan(pct)
    vals = np.clip(pct[ok], 1, 100).astype(np.int64)
    out[ok] = vals
    return out


def resolve_thresholds(scheme: str, thresholds: Mapping[str, float]) -> dict[str, float]:
    """The thresholds of ``scheme`` checked: every key present, none unknown, cuts in order; raises BandError."""
    if scheme not in THRESHOLD_KEYS:
        raise BandError(f"Unknown band scheme {scheme!r}. Possible values are: {list(THRESHOLD_KEYS)}.")
    keys = THRESHOLD_KEYS[scheme]
    extra, missing = sorted(set(thresholds) - set(keys)), [k for k in keys if k not in thresholds]
    if extra or missing:
        raise BandError(f"band scheme {scheme!r} (config bands.{scheme}) needs exactly {list(keys)}; "
                        f"unknown {extra or 'none'}, missing {missing or 'none'}.")
    t = {k: float(thresholds[k]) for k in keys}
    if scheme == "churn":
        if not 0 <= t["medium_probability"] <= t["high_probability"] <= 1:
            raise BandError(f"churn bands need 0 <= medium_probability <= high_probability <= 1; got {t}.")
        if not 0 <= t["high_top_percent"] <= t["medium_top_percent"] <= 100:
            raise BandError(f"churn bands need 0 <= high_top_percent <= medium_top_percent <= 100; got {t}.")
    elif scheme == "lead":
        if not 0 <= t["a_top_percent"] <= t["b_top_percent"] <= t["c_top_percent"] <= 100:
            raise BandError(f"lead bands need 0 <= a_top_percent <= b_top_percent <= c_top_percent <= 100; got {t}.")
    else:
        if not (0 <= t["top_percent"] <= 100 and 0 <= t["low_percent"] <= 100 and t["top_percent"] + t["low_percent"] <= 100):
            raise BandError(f"clv bands need top_percent + low_percent <= 100, both in 0..100; got {t}.")
    return t


def assign_bands(
    scores: pd.Series | np.ndarray,
    percentiles: pd.Series | np.ndarray,
    scheme: str,
    thresholds: Mapping[str, float],
) -> pd.Series:
    """Band of each row (see the module docstring for the rules).

    Parameters
    ----------
    scores : the reported scores (probability for churn and leads, amount for clv).
    percentiles : from :func:`percentiles` on the same rows (1..100).
    scheme : "churn", "lead" or "clv" (a task's ``band_scheme``).
    thresholds : the scheme's cut-offs (config ``bands.<scheme>``; keys :data:`THRESHOLD_KEYS`).

    Returns
    -------
    Series of dtype str, index of ``scores`` if it is a Series. "top N percent" means
    ``percentile > 100 - N``.
    """
    t = resolve_thresholds(scheme, thresholds)
    index = scores.index if isinstance(scores, pd.Series) else None
    s = np.asarray(pd.Series(scores).astype("float64"), dtype=np.float64)
    p = pd.Series(percentiles).astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
    if s.shape != p.shape:
        raise BandError(f"scores ({s.shape[0]} rows) and percentiles ({p.shape[0]} rows) must align.")
    if np.isnan(s).any() or np.isnan(p).any():
        raise BandError("scores and percentiles must not be missing when assigning bands; drop unscored rows first.")

    def top(percent: float) -> np.ndarray:
        return p > 100 - percent

    if scheme == "churn":
        band = np.select(
            [(s >= t["high_probability"]) | top(t["high_top_percent"]),
             (s >= t["medium_probability"]) | top(t["medium_top_percent"])],
            ["high", "medium"],
            "low",
        )
    elif scheme == "lead":
        band = np.select(
            [top(t["a_top_percent"]), top(t["b_top_percent"]), top(t["c_top_percent"])], ["A", "B", "C"], "D"
        )
    else:
        band = np.select([top(t["top_percent"]), p <= t["low_percent"]], ["top", "low"], "middle")
    return pd.Series(band, index=index, dtype="str")


#: Columns of the rows handed to ``crm.writeback.write_scores``: the per-row columns of the ``crm_scores``
#: contract (data_contracts/crm_scores.yaml; write_scores adds the run columns).
SCORE_ROW_COLUMNS: tuple[str, ...] = output_schema("crm_scores").input_columns


def build_score_rows(
    task: str,
    entity_type: str,
    entity_ids: pd.Series | np.ndarray | list,
    scores: np.ndarray | pd.Series,
    *,
    scheme: str,
    thresholds: Mapping[str, float],
    model_version: str,
    reasons_json: list[str] | None = None,
    reason_text: list[str] | None = None,
) -> pd.DataFrame:
    """The write-back rows of one model in one run: percentiles and bands computed here.

    Parameters
    ----------
    task : the task name (the ``model`` column).
    entity_type : "account" or "lead".
    scheme : the task's band scheme (``TaskSpec.band_scheme``).
    entity_ids, scores : aligned, one per scored entity (the spine rows at the run's as_of).
    model_version : the registered model version that produced the scores.
    reasons_json, reason_text : from ``models.explain`` (aligned); missing when not explained.
    thresholds : the cut-offs of that scheme (config ``bands.<scheme>``).

    Returns
    -------
    DataFrame with :data:`SCORE_ROW_COLUMNS`, one row per entity, input order.
    """
    s = pd.Series(np.asarray(scores, dtype=np.float64))
    n = len(s)
    ids = pd.Series(np.asarray(entity_ids, dtype=object)).astype("str")
    for name, seq in (("entity_ids", ids), ("reasons_json", reasons_json), ("reason_text", reason_text)):
        if seq is not None and len(seq) != n:
            raise BandError(f"{name} has {len(seq)} rows but scores has {n}; they must align.")
    pct = percentiles(s)
    band = assign_bands(s, pct, scheme, thresholds)
    missing_text = pd.Series([np.nan] * n, dtype="str")
    return pd.DataFrame(
        {
            "entity_type": pd.Series([entity_type] * n, dtype="str"),
            "entity_id": ids,
            "model": pd.Series([task] * n, dtype="str"),
            "score": s,
            "score_percentile": pct,
            "band": band,
            "reasons": pd.Series(reasons_json, dtype="str") if reasons_json is not None else missing_text,
            "reason_text": pd.Series(reason_text, dtype="str") if reason_text is not None else missing_text,
            "model_version": pd.Series([str(model_version)] * n, dtype="str"),
        }
    )


def value_at_risk_rows(churn_rows: pd.DataFrame, clv_rows: pd.DataFrame) -> pd.DataFrame:
    """Value at risk per account of one run: churn probability x predicted CLV (the expected margin lost).

    Inputs are the rows of :func:`build_score_rows` for churn and clv. Accounts scored by only one of
    the two models are left out (no value at risk can be computed). Output columns: entity_type,
    entity_id, churn_probability, clv, value_at_risk (for ``write_scores(value_at_risk=...)``), sorted by
    value_at_risk descending.
    """
    c = churn_rows.loc[:, ["entity_type", "entity_id", "score"]].rename(columns={"score": "churn_probability"})
    v = clv_rows.loc[:, ["entity_type", "entity_id", "score"]].rename(columns={"score": "clv"})
    out = c.merge(v, on=["entity_type", "entity_id"], how="inner", validate="one_to_one")
    out["value_at_risk"] = out["churn_probability"] * out["clv"]
    return out.sort_values(["value_at_risk", "entity_id"], ascending=[False, True], ignore_index=True)
