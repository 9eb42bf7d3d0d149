"""Monitoring glue between the CRM, the registry and the pure statistics of ``models/monitoring``.

- :func:`check_run`: drift, score health, integrity and status of one model's scores at scoring time (the score
  flow runs it before write-back; ``crmscore monitor`` for past runs not checked yet).
- :func:`backtest_run`: the realized performance of one past run whose horizon has closed, with its labels rebuilt by
  the label code (``features.labels.make_labels``) at that run's as-of date from the current extract.
- :func:`missing_rows`: every check and backtest not stored yet, as rows of the monitoring tables.
- :func:`health`: the health of each champion, read back from the stored tables (what is printed is what is stored).

Pure apart from the registry and CRM reads the caller hands in; the clock is read by the flows.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import pandas as pd

from models.monitoring import (
    ModelReference,
    MonitorThresholds,
    Reason,
    estimated_performance,
    feature_drift,
    grade_estimate,
    integrity_failures,
    model_status,
    episode_spans,
    realized_performance,
    score_health,
)
from models.monitoring.policy import realized_status
from models.monitoring.records import realized_figures, run_rows, scoring_figures
from models.monitoring.slices import realized_slices
from models.tasks import TaskSpec

ENTITY_TABLE = MappingProxyType({"account": ("accounts", "account_id"), "lead": ("leads", "lead_id")})
SEVERITY = MappingProxyType({"insufficient": 0, "ok": 1, "warn": 2, "alert": 3})


@dataclass(frozen=True)
class CheckedRun:
    """One model's scores of one run against its reference: status, ranked reasons, the integrity failures that
    block the write-back (empty: the scores may be written), and the figures to store."""

    status: str
    reasons: tuple[Reason, ...]
    blocking: tuple[Reason, ...]
    n: int
    figures: list


def elapsed_days(reference: ModelReference, as_of: pd.Timestamp) -> float:
    if reference.as_of is None:
        return 0.0
    return max(0.0, (as_of - pd.Timestamp(reference.as_of)).total_seconds() / 86400)


def scored_rows(features: pd.DataFrame, scored: pd.Index) -> pd.DataFrame:
    """The rows of ``features`` whose entity_id is in ``scored`` (unique ids). The score flow scores every row of
    the feature frame in its order, so the usual case is a comparison and no copy; otherwise one hash look-up per
    row (``Series.isin`` on a million ``str`` ids builds a Python list of them: 7 s instead of 0.7 s)."""
    ids = features["entity_id"]
    if len(ids) == len(scored) and pd.Series(ids.array).equals(pd.Series(scored.array)):
        return features
    return features.loc[pd.Index(scored).get_indexer(ids) >= 0]


def check_run(spec: TaskSpec, reference: ModelReference | None, features: pd.DataFrame, scores: pd.DataFrame,
              previous: pd.Series | None, *, as_of: pd.Timestamp, thresholds: MonitorThresholds, seed: int,
              draws: int) -> CheckedRun:
    """Check one model's scores of one run.

    Parameters
    ----------
    features : the run's feature frame (entity_id and the feature columns); rows of entities not scored are ignored.
    scores : the run's rows of this model: entity_id, score, band.
    previous : the model's previous run's scores indexed by entity_id (rank stability), or None.
    """
    n = len(scores)
    if reference is None:  # a version registered before monitoring: nothing to compare with
        return CheckedRun("insufficient", (), (), n, [])
    scored = scores.set_index("entity_id")
    frame = scored_rows(features, scored.index)
    drift = feature_drift(reference, frame, elapsed_days=elapsed_days(reference, as_of), thresholds=thresholds)
    health = score_health(reference, scored["score"], bands=scored["band"], previous=previous)
    blocking = integrity_failures(health, thresholds=thresholds)
    status, reasons = model_status(drift, health, thresholds=thresholds, reference=reference)
    estimate = estimated_performance(scored["score"], seed=seed, draws=draws, level=thresholds.level) \
        if spec.kind == "binary" else None
    return CheckedRun(status, reasons, blocking, n, scoring_figures(drift, health, estimate))


def outcomes_at(spec: TaskSpec, tables: Mapping[str, pd.DataFrame], raw: Mapping[str, pd.DataFrame],
                entity_ids: pd.Series, as_of: pd.Timestamp, horizon_days: int,
                make_labels: Callable) -> tuple[pd.DataFrame, list[str]]:
    """Labels of the scored entities at a past run's as-of date, rebuilt from the current extract, and the ids
    erased (or that objected to profiling) since: they are in the raw extract but not in the usable tables."""
    table, id_col = ENTITY_TABLE[spec.entity]
    usable = set(tables[table][id_col]) if table in tables else set()
    known = set(raw[table][id_col]) if table in raw else set()
    ids = entity_ids.astype("str")
    present = ids[ids.isin(usable)].drop_duplicates()
    spine = pd.DataFrame({"entity_id": present.to_numpy(),
                          "cutoff_ts": pd.Series(as_of, index=range(len(present))).astype("datetime64[us, UTC]")})
    spine["entity_id"] = spine["entity_id"].astype("str")
    y = make_labels(dict(tables), spine, spec.label, horizon_days) if len(spine) else pd.Series([], dtype=float)
    erased = sorted(set(ids) & (known - usable))
    return pd.DataFrame({"entity_id": spine["entity_id"], "y": np.asarray(y, dtype=float)}), erased


def backtest_run(spec: TaskSpec, reference: ModelReference | None, scores: pd.DataFrame, outcomes: pd.DataFrame,
                 erased: Sequence[str], *, thresholds: MonitorThresholds, seed: int, draws: int, ece_bins: int,
                 min_slice_rows: int, slices: pd.DataFrame | None = None):
    """Realized performance of a matured run, the grade of the estimate it would have had, and the status.

    ``slices``: entity_id and the task's slice columns at the run's as-of (its feature frame); the realized
    metrics per slice, with intervals, are among the figures when given."""
    realized = realized_performance(scores[["entity_id", "score", "band"]], outcomes, kind=spec.kind, erased=erased,
                                    min_slice_rows=min_slice_rows, ece_bins=ece_bins)
    rows = scores[["entity_id", "score"]].merge(outcomes.dropna(), on="entity_id")
    grade = None
    if spec.kind == "binary" and realized.metrics.get("n"):
        grade = grade_estimate(estimated_performance(rows["score"], seed=seed, draws=draws, level=thresholds.level),
                               realized, thresholds=thresholds)
    per_slice = []
    if slices is not None and len(rows):
        cols = [c for c in spec.slice_columns if c in slices.columns]
        with_slices = rows.merge(slices[["entity_id", *cols]].drop_duplicates("entity_id"), on="entity_id",
                                 how="left")
        per_slice = realized_slices(with_slices, cols, kind=spec.kind, min_rows=min_slice_rows, seed=seed,
                                    draws=draws, level=thresholds.level)
    status, reasons = realized_status(realized, thresholds=thresholds, reference=reference, grade=grade)
    return status, reasons, realized_figures(realized, grade, per_slice), int(realized.metrics.get("n") or 0)


def worst(statuses: Sequence[str]) -> str:
    """The most severe status (alert > warn > ok > insufficient); insufficient when there is none."""
    return max(statuses, key=lambda s: SEVERITY[s]) if statuses else "insufficient"


def _figures(part: pd.DataFrame) -> dict:
    out = {}
    for r in part.itertuples():
        out[r.metric] = r.text if isinstance(r.text, str) else (None if pd.isna(r.value) else float(r.value))
    return out


def _nightly(runs: pd.DataFrame) -> pd.DataFrame:
    """One scoring-stage run per as-of, in as-of order (several checks of one as-of: the latest computed wins)."""
    order = ["as_of", "monitored_at", "scoring_run_id"]
    checked = runs.loc[runs["stage"] == "scoring"].sort_values(order)
    return checked.drop_duplicates("as_of", keep="last").reset_index(drop=True)


def alert_episodes(runs: pd.DataFrame) -> list[dict]:
    """The alert episodes of one task's nightly runs (``models.monitoring.episode_spans``): consecutive alerting
    runs grouped, with the first and last run, how many runs alerted, the versions and the reasons."""
    nightly = _nightly(runs)
    out = []
    for first, last in episode_spans(nightly["status"].tolist()):
        part = nightly.iloc[first:last + 1]
        alerting = part.loc[part["status"] == "alert"]
        reasons = [r for js in alerting["reasons"] for r in json.loads(js or "[]")
                   if r.get("severity") in ("alert", "block")]
        out.append({"first_run": part["scoring_run_id"].iloc[0], "first_as_of": part["as_of"].iloc[0].isoformat(),
                    "last_run": part["scoring_run_id"].iloc[-1], "last_as_of": part["as_of"].iloc[-1].isoformat(),
                    "runs": len(alerting), "ongoing": last == len(nightly) - 1,
                    "model_versions": sorted(set(part["model_version"].astype(str))),
                    "reason": reasons[0]["detail"] if reasons else None,
                    "codes": sorted({r["code"] for r in reasons})})
    return out


def quality_trend(runs: pd.DataFrame, metrics: pd.DataFrame) -> dict[str, list[dict]]:
    """Per extract table, the data quality of every nightly run that recorded it (the score flow does), in as-of
    order: rows, null_rate, max_null_rate, max_null_column, rules_failed, defects."""
    nightly = _nightly(runs)
    q = metrics.loc[(metrics["stage"] == "scoring") & (metrics["section"] == "quality")
                    & metrics["scoring_run_id"].isin(nightly["scoring_run_id"])]
    out: dict[str, list[dict]] = {}
    for r in nightly.itertuples():
        mine = q.loc[q["scoring_run_id"] == r.scoring_run_id]
        for table, part in mine.groupby("subject", sort=True):
            out.setdefault(table, []).append({"scoring_run_id": r.scoring_run_id, "as_of": r.as_of.isoformat(),
                                              **_figures(part)})
    return dict(sorted(out.items()))


def _slices(part: pd.DataFrame) -> list[dict]:
    return [{"slice": subject, **_figures(p)} for subject, p in part.groupby("subject", sort=True)]


def health(task: str, kind: str, champion_version: int | None, runs: pd.DataFrame, metrics: pd.DataFrame) -> dict:
    """The health of one task's champion from its stored rows: the JSON of ``crmscore monitor``.

    ``status`` is the worst of the champion's latest checked run and its latest matured run (alert > warn > ok >
    insufficient); ``reasons`` theirs, in that order; ``realized`` lists every matured run of the task, across
    versions (never reset by a new champion), each with its metrics per slice and their intervals (``slices``);
    ``episodes`` the alert episodes of the task's nightly runs (:func:`alert_episodes`); ``quality`` the data
    quality of each extract table over those runs (:func:`quality_trend`).
    """
    mine = runs.loc[runs["model_version"] == str(champion_version)] if champion_version is not None else runs.iloc[:0]
    order = ["as_of", "monitored_at", "scoring_run_id"]  # several checks of one as-of: the latest computed wins
    checked = mine.loc[mine["stage"] == "scoring"].sort_values(order)
    matured = runs.loc[runs["stage"] == "realized"].sort_values(order)
    mine_matured = matured.loc[matured["model_version"] == str(champion_version)]
    latest = [df.iloc[-1] for df in (checked, mine_matured) if len(df)]
    reasons = [reason for r in latest for reason in json.loads(r["reasons"] or "[]")]
    out: dict = {"model": task, "champion_version": champion_version,
                 "status": worst([r["status"] for r in latest]), "reasons": reasons,
                 "scoring_run_id": None, "as_of": None, "features": [], "score": {}, "realized": [], "estimated": {},
                 "episodes": alert_episodes(runs), "quality": quality_trend(runs, metrics)}
    if len(checked):
        last = checked.iloc[-1]
        mm = metrics.loc[(metrics["scoring_run_id"] == last["scoring_run_id"]) & (metrics["stage"] == "scoring")]
        out.update(scoring_run_id=last["scoring_run_id"], as_of=last["as_of"].isoformat())
        feats = mm.loc[mm["section"] == "feature"]
        table = [{"feature": f, **_figures(p)} for f, p in feats.groupby("subject", sort=False)]
        out["features"] = [{k: t.get(k) for k in ("feature", "label", "psi", "status")}
                           for t in sorted(table, key=lambda t: t.get("rank") or 0)]
        out["score"] = _figures(mm.loc[mm["section"] == "score"])
        out["estimated"] = _figures(mm.loc[mm["section"] == "estimated"])
    primary = "roc_auc" if kind == "binary" else "normalized_gini"
    for r in matured.itertuples():
        mm = metrics.loc[(metrics["scoring_run_id"] == r.scoring_run_id) & (metrics["stage"] == "realized")]
        fig = _figures(mm.loc[mm["section"] == "realized"])
        entry = {"scoring_run_id": r.scoring_run_id, "as_of": r.as_of.isoformat(), "model_version": r.model_version,
                 "n": int(r.n), ("roc_auc" if kind == "binary" else "gini"): fig.get(primary), "ece": fig.get("ece"),
                 "status": r.status, "slices": _slices(mm.loc[mm["section"] == "slice"])}
        out["realized"].append(entry)
    return out


def run_keys(runs: pd.DataFrame) -> set[tuple[str, str, str]]:
    return set(runs[["scoring_run_id", "model", "stage"]].astype("str").itertuples(index=False, name=None))


def rows_of(frames: Sequence[tuple[pd.DataFrame, pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One (runs, metrics) pair of the monitoring tables from several."""
    if not frames:
        from models.monitoring.records import METRIC_COLUMNS, RUN_COLUMNS

        return pd.DataFrame(columns=list(RUN_COLUMNS)), pd.DataFrame(columns=list(METRIC_COLUMNS))
    return (pd.concat([r for r, _ in frames], ignore_index=True),
            pd.concat([m for _, m in frames], ignore_index=True))


__all__ = ["CheckedRun", "alert_episodes", "backtest_run", "check_run", "health", "outcomes_at", "quality_trend",
           "rows_of", "run_keys", "run_rows", "worst"]
