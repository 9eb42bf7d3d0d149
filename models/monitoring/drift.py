"""Drift of one scoring run against the frozen reference: per feature, and of the scores themselves.

Grain: ``feature_drift`` returns one row per reference feature for one (model version, scoring run);
``score_health`` one :class:`ScoreHealth` per (model version, scoring run). Time semantics: ``elapsed_days`` is the
scoring run's as-of date minus the reference's (training) as-of date, in days; nothing here reads a clock.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import norm, spearmanr

from models.monitoring.errors import MonitoringInputError
from models.monitoring.reference import MISSING, UNSEEN, FeatureReference, ModelReference, finite_or_none, \
    numeric_values
from models.monitoring.stats import adjust_p_values, jensen_shannon, psi, psi_contributions, psi_null_mean, \
    psi_p_value
from models.monitoring.thresholds import MonitorThresholds

DRIFT_COLUMNS = ("feature", "label", "kind", "n", "psi", "psi_excess", "js", "p_value", "p_adjusted", "status",
                 "reason", "importance", "impact", "rank", "missing_rate_reference", "missing_rate", "unseen_share",
                 "out_of_range_share", "age_adjusted")


def _compare(ref: FeatureReference, values: pd.Series, elapsed_days: float) -> tuple[np.ndarray, bool]:
    """Current bin counts, and whether they were taken after removing the elapsed days.

    A feature that grows by construction (``grows_with_time``) is tested under two null hypotheses: a stationary
    flow of entities (the values as they are) and the reference base aged by ``elapsed_days`` (the values minus the
    elapsed days). It drifts only if both are rejected: the run keeps the comparison with the smaller PSI, hence
    the larger p-value (an intersection-union test, level alpha; Berger 1982). Entities created since the
    reference then land in the lowest bin, so real acquisition surges still show.
    """
    raw = ref.bin_counts(values)
    if not (ref.grows_with_time and ref.kind == "numeric" and elapsed_days and raw.sum() and ref.n):
        return raw, False
    aged = ref.bin_counts(values, shift=float(elapsed_days))
    if psi(ref.counts, aged) < psi(ref.counts, raw):
        return aged, True
    return raw, False


def _reason(ref: FeatureReference, contrib: np.ndarray) -> str:
    label = ref.bins[int(np.argmax(contrib))]
    if label == MISSING:
        return "missing_share"
    if label == UNSEEN:
        return "unseen_category"
    return "category_mix" if ref.kind == "categorical" else "shift"


def _status(n: int, n_ref: int, value: float, p_adj: float, t: MonitorThresholds) -> str:
    """Status from the size (``value``: the PSI in excess of its null mean) and the evidence (``p_adj``)."""
    if n < t.min_rows or n_ref < t.min_rows:
        return "insufficient"
    if p_adj < t.alpha and value >= t.psi_alert:
        return "alert"
    if p_adj < t.alpha and value >= t.psi_warn:
        return "warn"
    return "ok"


def feature_drift(reference: ModelReference, frame: pd.DataFrame, *, elapsed_days: float,
                  thresholds: MonitorThresholds) -> pd.DataFrame:
    """PSI of every reference feature in one scoring run, with evidence, status and an importance-weighted rank.

    Parameters
    ----------
    reference : the model version's frozen reference.
    frame : the run's feature frame (one row per scored entity); every reference feature must be a column.
    elapsed_days : days from the reference's as-of date to this run's (>= 0); see ``grows_with_time``.
    thresholds : size (``psi_warn``/``psi_alert``), evidence (``alpha`` after ``correction`` across the features
        with enough rows) and ``min_rows``.

    Returns
    -------
    One row per feature (columns ``DRIFT_COLUMNS``), ordered by ``rank``: 1 = the largest ``impact`` (importance x
    PSI; insufficient features last). ``psi_excess`` is the PSI minus its expectation under "nothing changed"
    (``stats.psi_null_mean``, floored at 0): the size thresholds apply to it, so that a small run's sampling noise
    does not pass for drift. ``status`` is ok / warn / alert / insufficient; ``reason`` names the bin that
    contributes most: missing_share, unseen_category, category_mix (categorical) or shift (numeric). PSI uses the
    frozen bins, the missing and unseen bins included; ``js`` is the Jensen-Shannon divergence in bits.
    """
    absent = [f.name for f in reference.features if f.name not in frame.columns]
    if absent:
        raise MonitoringInputError(f"the scoring frame lacks reference features {absent[:10]}; monitor the frame the "
                                   f"model version {reference.model_version!r} scored.")
    if elapsed_days < 0:
        raise MonitoringInputError(f"elapsed_days={elapsed_days}; expected the days from the reference's as-of date "
                                   "to the run's (>= 0).")
    rows = []
    for ref in reference.features:
        values = numeric_values(frame[ref.name]) if ref.kind == "numeric" else frame[ref.name]
        counts, aged = _compare(ref, values, elapsed_days)
        n = int(counts.sum())
        value = psi(ref.counts, counts) if n and ref.n else float("nan")
        contrib = psi_contributions(ref.counts, counts) if n and ref.n else np.zeros(len(counts))
        enough = n >= thresholds.min_rows and ref.n >= thresholds.min_rows
        out_of_range = float("nan")
        if ref.kind == "numeric" and ref.minimum is not None:
            x = values - elapsed_days if aged else values
            present = n - int(counts[-1])  # the last numeric bin is the missing one (NaN compares False below)
            out_of_range = (np.count_nonzero((x < ref.minimum) | (x > ref.maximum)) / present if present
                            else float("nan"))
        rows.append({
            "feature": ref.name, "label": ref.label, "kind": ref.kind, "n": n, "psi": value,
            "psi_excess": max(0.0, value - psi_null_mean(ref.n, n, ref.reference_bins)) if n and ref.n
            else float("nan"),
            "js": jensen_shannon(ref.counts, counts) if n and ref.n else float("nan"),
            "p_value": psi_p_value(value, ref.n, n, ref.reference_bins) if enough else float("nan"),
            "reason": _reason(ref, contrib), "importance": float(reference.importance.get(ref.name, 0.0)),
            "missing_rate_reference": ref.missing_rate, "missing_rate": counts[len(ref.bins) - (
                2 if ref.kind == "categorical" else 1)] / n if n else float("nan"),
            "unseen_share": counts[-1] / n if n and ref.kind == "categorical" else float("nan"),
            "out_of_range_share": out_of_range, "age_adjusted": aged,
        })
    out = pd.DataFrame(rows)
    out["p_adjusted"] = adjust_p_values(out["p_value"].to_numpy(dtype=np.float64), thresholds.correction)
    out["status"] = [_status(n, ref.n, v, p, thresholds)
                     for n, ref, v, p in zip(out["n"], reference.features, out["psi_excess"], out["p_adjusted"])]
    out["impact"] = out["importance"] * out["psi"]
    sufficient = out["status"] != "insufficient"
    order = out.assign(_s=sufficient).sort_values(["_s", "impact", "psi"], ascending=[False, False, False],
                                                  kind="stable").index
    out.loc[order, "rank"] = np.arange(1, len(out) + 1)
    out["rank"] = out["rank"].astype("int64")
    return out.loc[order, list(DRIFT_COLUMNS)].reset_index(drop=True)


def drift_bins(reference: ModelReference, frame: pd.DataFrame, *, elapsed_days: float) -> pd.DataFrame:
    """Per-bin shares behind :func:`feature_drift` (for the report's bar charts).

    Returns
    -------
    One row per (feature, bin): feature, bin (readable label), reference_share, current_share, contribution (the
    bin's PSI term), in reference bin order.
    """
    rows = []
    for ref in reference.features:
        counts, _ = _compare(ref, frame[ref.name], elapsed_days)
        if not counts.sum() or not ref.n:
            continue
        contrib = psi_contributions(ref.counts, counts)
        r = np.asarray(ref.counts, dtype=np.float64) / ref.n
        c = counts / counts.sum()
        rows += [{"feature": ref.name, "bin": b, "reference_share": float(r[i]), "current_share": float(c[i]),
                  "contribution": float(contrib[i])} for i, b in enumerate(ref.bins)]
    return pd.DataFrame(rows, columns=["feature", "bin", "reference_share", "current_share", "contribution"])


@dataclass(frozen=True)
class ScoreHealth:
    """Health of one run's scores against the reference (all shares in [0, 1]; None = not computable).

    Attributes
    ----------
    n : scored rows. nan_share : share of NaN or infinite scores. identical_share : share of the most frequent
        finite score.
    psi, p_value : score PSI on the reference deciles (missing bin included) and its null p-value.
    mean_score, reference_mean_score, reference_base_rate : this run's mean score, the held-out mean score and the
        held-out outcome rate. mean_shift : ``mean_score / reference_base_rate - 1``; mean_p_value : two-sided
        p-value of that gap given the sampling noise of both.
    band_shares, reference_band_shares : band -> share; band_psi : PSI between them (bands of either).
    rank_stability : Spearman correlation with the previous run on the entities scored in both (None without a
        previous run or with fewer than 3 common entities); n_common : those entities.
    """

    n: int
    nan_share: float | None
    identical_share: float | None
    psi: float | None
    p_value: float | None
    mean_score: float | None
    reference_mean_score: float | None
    reference_base_rate: float | None
    mean_shift: float | None
    mean_p_value: float | None
    band_shares: dict[str, float]
    reference_band_shares: dict[str, float]
    band_psi: float | None
    rank_stability: float | None
    n_common: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScoreHealth:
        return cls(**d)


def score_health(reference: ModelReference, scores: pd.Series, *, bands: pd.Series | None = None,
                 previous: pd.Series | None = None) -> ScoreHealth:
    """Score health of one run.

    Parameters
    ----------
    reference : the model version's reference (its ``score`` part).
    scores : this run's scores, indexed by entity_id (one row per scored entity).
    bands : this run's bands (same index), optional.
    previous : the previous run's scores of the same model, indexed by entity_id, optional (rank stability).
    """
    ref = reference.score
    x = numeric_values(scores)
    n = len(x)
    finite = x[np.isfinite(x)]
    nan_share = float((~np.isfinite(x)).mean()) if n else None
    # the most frequent finite score: one sort (np.unique) is 4x cheaper than hashing a million floats
    identical = float(np.unique(finite, return_counts=True)[1].max() / n) if len(finite) else None
    counts = ref.bin_counts(np.where(np.isfinite(x), x, np.nan))
    value = psi(ref.counts, counts) if n and ref.n else None
    p_value = psi_p_value(value, ref.n, n, int(np.count_nonzero(ref.counts))) if value is not None else None
    mean = float(finite.mean()) if len(finite) else None
    base = ref.base_rate
    shift = mean_p = None
    if mean is not None and base:
        shift = mean / base - 1
        if reference.kind == "binary":
            var_base = base * (1 - base) / ref.held_out_rows
        else:
            var_base = (ref.score_sd or 0.0) ** 2 / ref.held_out_rows
        se = np.sqrt(finite.var() / len(finite) + var_base)
        mean_p = float(2 * norm.sf(abs(mean - base) / se)) if se > 0 else (0.0 if mean != base else 1.0)
    ref_bands = dict(zip(ref.bands, ref.band_shares))
    band_shares: dict[str, float] = {}
    band_psi = None
    if bands is not None and len(bands):
        band_shares = {str(k): float(v) for k, v in
                       pd.Series(bands).astype("str").value_counts(normalize=True).sort_index().items()}
        if ref_bands:
            labels = sorted(set(ref_bands) | set(band_shares))
            band_psi = psi([ref_bands.get(b, 0.0) for b in labels], [band_shares.get(b, 0.0) for b in labels])
    rank_stability, n_common = None, 0
    if previous is not None:
        # the entities scored in both runs, in this run's order (one hash look-up per entity, no frame join)
        at = pd.Index(previous.index).get_indexer(scores.index)
        now, before = x[at >= 0], numeric_values(previous)[at[at >= 0]]
        both = ~(np.isnan(now) | np.isnan(before))
        now, before = now[both], before[both]
        n_common = len(now)
        if n_common >= 3 and (now != now[0]).any() and (before != before[0]).any():
            rank_stability = float(spearmanr(now, before).statistic)
    return ScoreHealth(n, nan_share, identical, finite_or_none(value), finite_or_none(p_value), finite_or_none(mean),
                       ref.mean_score, base, finite_or_none(shift), finite_or_none(mean_p), band_shares, ref_bands,
                       finite_or_none(band_psi), finite_or_none(rank_stability), n_common)
