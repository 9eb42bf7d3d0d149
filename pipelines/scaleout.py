"""Feature building and scoring with reasons over the buckets of an extract, on any executor (no Dask here).

The pure code of ``features/`` and ``models/`` runs unchanged on each bucket (``crm.buckets``: every entity with all
its rows); what is not bucket-local is an explicit global step computed from small per-bucket results:

- where the history starts (the minimum over buckets) and so the training cutoffs;
- the BG/NBD + Gamma-Gamma fit of every cutoff (``features.btyd.feature_fit`` on the gathered per-account
  summaries, sorted by account id as the one-process fit sees them), handed to every bucket;
- the CLV total anchor (``Predictor.calibrator_for`` on the gathered features), percentiles and bands (on the
  gathered scores).

Results are gathered in key order and put in the one-process row order (cutoff, entity id), so every frame, and
``crm_scores``, is identical to the one-process run. An :class:`Executor` maps a module-level function over the
buckets and returns the results in bucket order; ``pipelines.cluster`` gives the Dask one, :class:`InProcess` runs
them here.
"""
from __future__ import annotations

import contextlib
import dataclasses
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Protocol

import numpy as np
import pandas as pd

from crm.buckets import read_bucket, write_buckets
from features.btyd import BTYDModel, btyd_summary, feature_fit
from features.build import btyd_horizons
from features.catalog import FeatureSet
from features.errors import InsufficientHistoryError
from features.spine import EVENT_LOGS, history_start
from models.dataset import (
    CutoffOptions,
    FeatureOptions,
    assemble_training_data,
    labelled_features,
    scoring_features,
    training_cutoffs_of,
)
from models.scoring import ExplainedRows, ScoringOptions, explain_rows, score_rows, score_task
from models.tasks import TaskSpec
from models.train import TrainingData
from pipelines.errors import BucketFailedError


class Executor(Protocol):
    """Runs ``fn`` on every item (a bucket) and returns the results in item order; ``threads`` per task."""

    threads: int

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, name: str) -> list[Any]: ...


def bucket_failed(name: str, k: int, n: int, exc: BaseException) -> BucketFailedError:
    """The one line a failed bucket gives (the run stops before anything is written)."""
    detail = " ".join(str(exc).split()) or "no message"
    return BucketFailedError(f"{name}: bucket {k} of {n} failed ({type(exc).__name__}: {detail}); nothing was "
                             "written; fix the cause and run again")


@dataclass(frozen=True)
class InProcess:
    """The executor of this process: one bucket after the other (tests, debugging)."""

    threads: int

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any], *, name: str) -> list[Any]:
        out = []
        for k, item in enumerate(items):
            try:
                out.append(fn(item))
            except Exception as exc:  # any failure of a bucket is reported as that bucket's
                raise bucket_failed(name, k, len(items), exc) from exc
        return out


@dataclass(frozen=True)
class BucketRef:
    """Bucket ``k`` of a bucket folder (``crm.buckets.write_buckets``), read by path where the task runs."""

    folder: str
    k: int


Bucket = BucketRef | Mapping[str, pd.DataFrame]


@dataclass(frozen=True)
class Buckets:
    """An extract's buckets and the executor that runs tasks on them."""

    executor: Executor
    parts: tuple[Bucket, ...]


def _tables(bucket: Bucket) -> dict[str, pd.DataFrame]:
    return read_bucket(bucket.folder, bucket.k) if isinstance(bucket, BucketRef) else dict(bucket)


# ---------------------------------------------------------------------------------------------------------------
# Per-bucket tasks (module level, so a worker process imports them by name)


def _history_bounds(bucket: Bucket) -> tuple[pd.Timestamp | None, pd.Timestamp | None]:
    """(earliest event-log time, earliest time history_start falls back to) of one bucket; None = none there."""
    tables = _tables(bucket)

    def earliest(view: dict[str, pd.DataFrame]) -> pd.Timestamp | None:
        try:
            return history_start(view)
        except InsufficientHistoryError:
            return None

    return earliest({t: tables[t] for t in EVENT_LOGS if t in tables}), earliest(tables)


def _btyd_summaries(bucket: Bucket, cutoffs: tuple[pd.Timestamp, ...]) -> dict[pd.Timestamp, pd.DataFrame]:
    orders = _tables(bucket)["orders"]
    return {c: btyd_summary(orders, c) for c in cutoffs}


def _training_part(bucket: Bucket, spec: TaskSpec, cuts: list[pd.Timestamp], horizon_days: int,
                   options: FeatureOptions, fits: Mapping[pd.Timestamp, BTYDModel | None] | None):
    fs, label = labelled_features(_tables(bucket), spec, cuts, horizon_days=horizon_days, options=options,
                                  btyd_fits=fits)
    return fs.frame, label, fs.catalog


def _scoring_part(bucket: Bucket, spec: TaskSpec, as_of: pd.Timestamp, options: FeatureOptions,
                  fits: Mapping[pd.Timestamp, BTYDModel | None] | None):
    fs = scoring_features(_tables(bucket), spec, as_of=as_of, options=options, btyd_fits=fits)
    return fs.frame, None, fs.catalog


def _explain_part(frame: pd.DataFrame, model, spec: TaskSpec, calibrator, options: ScoringOptions) -> ExplainedRows:
    return explain_rows(model, spec, frame, calibrator.transform, options)


# ---------------------------------------------------------------------------------------------------------------
# Global steps and gathering


def history_start_of(buckets: Buckets) -> pd.Timestamp:
    """``features.spine.history_start`` of the whole extract, as the minimum over its buckets."""
    bounds = buckets.executor.map(_history_bounds, buckets.parts, name="history start")
    events = [e for e, _ in bounds if e is not None]
    fallback = [f for _, f in bounds if f is not None]
    if events:
        return min(events)
    if fallback:
        return min(fallback)
    raise InsufficientHistoryError("the extract holds no dated rows at all; there is no history to train on.")


def btyd_fits_of(buckets: Buckets, cutoffs: Sequence[pd.Timestamp],
                 options: FeatureOptions) -> dict[pd.Timestamp, BTYDModel | None]:
    """The BG/NBD fit of every cutoff on the whole population: per-account summaries gathered from the buckets,
    sorted by account id (the order the one-process fit sees), fitted once here."""
    cuts = tuple(cutoffs)
    parts = buckets.executor.map(partial(_btyd_summaries, cutoffs=cuts), buckets.parts, name="BG/NBD summaries")
    horizons = btyd_horizons(options.windows_days, options.forward_days)
    fits = {}
    for c in cuts:
        got = [p[c] for p in parts if len(p[c])]
        summary = pd.concat(got).sort_index(kind="stable") if got else parts[0][c]
        fits[c] = feature_fit(summary, c, horizons)
    return fits


@dataclass(frozen=True)
class Gathered:
    """Per-bucket frames put together: ``frame`` in the one-process order (cutoff_ts, entity_id; fresh RangeIndex),
    ``parts`` the non-empty bucket frames, ``order`` the position of each row of ``frame`` in ``concat(parts)``."""

    features: FeatureSet
    parts: tuple[pd.DataFrame, ...]
    order: np.ndarray
    label: pd.Series | None


def _gather(results: list[tuple[pd.DataFrame, pd.Series | None, dict]]) -> Gathered:
    kept = [r for r in results if len(r[0])] or results[:1]
    combined = pd.concat([r[0] for r in kept], ignore_index=True)
    order = combined.sort_values(["cutoff_ts", "entity_id"], kind="stable").index.to_numpy()
    frame = combined.take(order).reset_index(drop=True)
    label = None
    if kept[0][1] is not None:
        values = np.concatenate([r[1].to_numpy() for r in kept])
        label = pd.Series(values[order], name=kept[0][1].name)
    return Gathered(features=FeatureSet(frame=frame, catalog=kept[0][2]), parts=tuple(r[0] for r in kept),
                    order=order, label=label)


def training_data(buckets: Buckets, tables: Mapping[str, pd.DataFrame], spec: TaskSpec, *, as_of: pd.Timestamp,
                  horizon_days: int, cutoffs: CutoffOptions, options: FeatureOptions) -> TrainingData:
    """``models.dataset.build_training_data`` computed bucket by bucket: the identical training set.

    ``tables`` (the whole extract) is read only by the baselines that need every account (BG/NBD's CLV forecast).
    """
    cuts = training_cutoffs_of(tables, spec, as_of=as_of, horizon_days=horizon_days, cutoffs=cutoffs,
                               earliest_ts=history_start_of(buckets))
    fits = btyd_fits_of(buckets, cuts, options) if spec.entity == "account" else None
    results = buckets.executor.map(
        partial(_training_part, spec=spec, cuts=cuts, horizon_days=horizon_days, options=options, fits=fits),
        buckets.parts, name=f"{spec.name} training features")
    got = _gather(results)
    return assemble_training_data(tables, spec, got.features, got.label, cuts, horizon_days=horizon_days)


def scoring_features_of(buckets: Buckets, spec: TaskSpec, *, as_of: pd.Timestamp, options: FeatureOptions) -> Gathered:
    """``models.dataset.build_scoring_features`` computed bucket by bucket (``.features`` is the identical set)."""
    fits = btyd_fits_of(buckets, [as_of], options) if spec.entity == "account" else None
    results = buckets.executor.map(partial(_scoring_part, spec=spec, as_of=as_of, options=options, fits=fits),
                                   buckets.parts, name=f"{spec.population} features")
    return _gather(results)


def score_buckets(buckets: Buckets, model, spec: TaskSpec, gathered: Gathered, *, model_version: int | str,
                  options: ScoringOptions) -> pd.DataFrame:
    """``models.scoring.score_task`` with the TreeSHAP reasons computed per bucket: the identical rows.

    The population's calibration mapping (the CLV total) is computed here on all rows, the reasons on the workers
    (``options.threads`` replaced by the executor's threads per task), percentiles and bands here on all scores.
    """
    frame = gathered.features.frame
    if frame.empty:
        return score_task(model, spec, gathered.features, model_version=model_version, options=options)
    options = dataclasses.replace(options, threads=buckets.executor.threads)
    parts = buckets.executor.map(
        partial(_explain_part, model=model, spec=spec, calibrator=model.calibrator_for(frame), options=options),
        list(gathered.parts), name=f"{spec.name} scores with reasons")
    order = gathered.order
    explained = ExplainedRows(
        score=np.concatenate([p.score for p in parts])[order],
        reasons_json=list(np.asarray([r for p in parts for r in p.reasons_json], dtype=object)[order]),
        reason_text=list(np.asarray([r for p in parts for r in p.reason_text], dtype=object)[order]))
    return score_rows(spec, frame["entity_id"], explained, model_version=model_version, options=options)


@contextlib.contextmanager
def bucketed(settings, tables: Mapping[str, pd.DataFrame]) -> Iterator[Buckets | None]:
    """The extract's buckets on the configured cluster (``compute``), or None when ``compute.cluster`` is none.

    The buckets are written under ``settings.bucket_dir`` for the workers to read by path, and removed afterwards.
    """
    compute = settings.compute
    if compute.cluster == "none":
        yield None
        return
    from pipelines.cluster import open_executor

    folder = settings.bucket_dir / f"run-{uuid.uuid4().hex[:12]}"
    try:
        write_buckets(tables, folder, compute.buckets)
        with open_executor(compute) as executor:
            yield Buckets(executor=executor, parts=tuple(BucketRef(str(folder), k) for k in range(compute.buckets)))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


__all__ = ["BucketRef", "Buckets", "Executor", "Gathered", "InProcess", "bucket_failed", "bucketed", "btyd_fits_of",
           "history_start_of", "score_buckets", "scoring_features_of", "training_data"]
