"""From an extract to model inputs: one path for training sets and scoring sets.

Both call the same ``features.build.build_features`` on a spine; only the spine's cutoffs differ (many monthly
cutoffs with complete label windows for training, the single as-of date for scoring). Pure: no I/O, no clock.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import pandas as pd

from features.btyd import BTYDModel
from features.build import build_features
from features.catalog import FeatureSet
from features.labels import make_labels
from features.spine import build_spine, history_start, training_cutoffs
from models.btyd import btyd_baseline
from models.errors import BTYDFitError, TrainingDataError
from models.tasks import TaskSpec
from models.train import TrainingData

@dataclass(frozen=True)
class FeatureOptions:
    """How features and spines are built (config sections ``features`` and ``eligibility``)."""

    windows_days: tuple[int, ...]
    churn_lookback_days: int
    # Horizons (days) the BG/NBD features forecast over besides the windows (the account tasks' horizons).
    forward_days: tuple[int, ...]
    lead_decay_half_lives_days: tuple[int, ...]


@dataclass(frozen=True)
class CutoffOptions:
    """How training cutoffs are laid out (config section ``training``).

    ``lead_count`` replaces ``count`` for lead tasks: a lead is open for months, not years, so cutoffs further back
    add other leads (independent rows), where for accounts they mostly add the same accounts again.
    """

    count: int
    step_days: int
    min_history_days: int
    lead_count: int


def missing_tables(tables: Mapping[str, pd.DataFrame], spec: TaskSpec) -> list[str]:
    """Tables the task's population needs that the extract lacks (or holds empty), e.g. ``["leads"]``."""
    return [t for t in spec.population_spec.required_tables if t not in tables or len(tables[t]) == 0]


def training_cutoffs_of(tables: Mapping[str, pd.DataFrame], spec: TaskSpec, *, as_of: pd.Timestamp,
                        horizon_days: int, cutoffs: CutoffOptions,
                        earliest_ts: pd.Timestamp | None = None) -> list[pd.Timestamp]:
    """The training cutoffs of ``spec`` (oldest first), at least 3, or TrainingDataError.

    ``earliest_ts`` is where the extract's history starts (``features.spine.history_start``); None = computed from
    ``tables`` (a bucketed run passes the minimum over its buckets).
    """
    count = cutoffs.lead_count if spec.entity == "lead" else cutoffs.count
    start = history_start(dict(tables)) if earliest_ts is None else earliest_ts
    cuts = training_cutoffs(as_of, horizon_days, count=count, step_days=cutoffs.step_days,
                            earliest_ts=start, min_history_days=cutoffs.min_history_days)
    if len(cuts) < 3:
        raise TrainingDataError(
            f"task {spec.name!r}: only {len(cuts)} training cutoff(s) fit in the extract's history before "
            f"{as_of.date()} with a {horizon_days}-day horizon; out-of-time training needs 3 (fit, validation, test). "
            f"Lower training.cutoff_step_days or the horizon, or use an extract with a longer history.")
    return cuts


def labelled_features(
    tables: Mapping[str, pd.DataFrame], spec: TaskSpec, cuts: list[pd.Timestamp], *, horizon_days: int,
    options: FeatureOptions, btyd_fits: Mapping[pd.Timestamp, BTYDModel | None] | None = None,
) -> tuple[FeatureSet, pd.Series]:
    """Spine, features and labels of ``spec`` at ``cuts``: rows of every eligible entity of ``tables`` (possibly
    empty). Each row depends only on its entity's own rows, and on ``btyd_fits`` (None = fitted on ``tables``)."""
    tables = dict(tables)
    spine = build_spine(tables, spec.population, cuts, churn_lookback_days=options.churn_lookback_days)
    label = make_labels(tables, spine, spec.label, horizon_days)
    fs = build_features(tables, spine, spec.entity, windows_days=options.windows_days,
                        forward_days=options.forward_days,
                        lead_decay_half_lives_days=options.lead_decay_half_lives_days, btyd_fits=btyd_fits)
    return fs, label


def assemble_training_data(tables: Mapping[str, pd.DataFrame], spec: TaskSpec, fs: FeatureSet, label: pd.Series,
                           cuts: list[pd.Timestamp], *, horizon_days: int) -> TrainingData:
    """The training set from its features and labels (every eligible entity), with the baselines that need the whole
    extract (BG/NBD's CLV forecast, on every account's orders)."""
    if fs.frame.empty:
        raise TrainingDataError(f"task {spec.name!r}: no eligible {spec.entity}s at any training cutoff "
                                f"{cuts[0].date()}..{cuts[-1].date()}")
    baselines: dict[str, pd.Series] = {}
    if "btyd" in spec.baselines and "orders" in tables and len(tables["orders"]):
        try:
            baselines["btyd"] = btyd_baseline(tables["orders"], fs.frame, horizon_days)
        except BTYDFitError:
            pass  # too few repeat buyers to fit BG/NBD: the model is compared with the other baselines
    return TrainingData(frame=fs.frame, label=label, catalog=fs.catalog, horizon_days=horizon_days,
                        baseline_predictions=baselines)


def build_training_data(
    tables: Mapping[str, pd.DataFrame],
    spec: TaskSpec,
    *,
    as_of: pd.Timestamp,
    horizon_days: int,
    cutoffs: CutoffOptions,
    options: FeatureOptions,
) -> TrainingData:
    """The multi-cutoff training set of ``spec`` whose labels are all observed before ``as_of``.

    Grain: one row per (eligible entity, cutoff). Features read rows strictly before each cutoff; labels read
    ``[cutoff, cutoff + horizon_days)``, which ends at or before ``as_of`` for every cutoff.
    For CLV on transactional data the BG/NBD + Gamma-Gamma forecast per cutoff is attached as a baseline.
    """
    cuts = training_cutoffs_of(tables, spec, as_of=as_of, horizon_days=horizon_days, cutoffs=cutoffs)
    fs, label = labelled_features(tables, spec, cuts, horizon_days=horizon_days, options=options)
    return assemble_training_data(tables, spec, fs, label, cuts, horizon_days=horizon_days)


def scoring_features(
    tables: Mapping[str, pd.DataFrame], spec: TaskSpec, *, as_of: pd.Timestamp, options: FeatureOptions,
    btyd_fits: Mapping[pd.Timestamp, BTYDModel | None] | None = None,
) -> FeatureSet:
    """:func:`build_scoring_features` with the BG/NBD fit given (a bucket of the population) or fitted here."""
    tables = dict(tables)
    spine = build_spine(tables, spec.population, [as_of], churn_lookback_days=options.churn_lookback_days)
    return build_features(tables, spine, spec.entity, windows_days=options.windows_days,
                          forward_days=options.forward_days,
                          lead_decay_half_lives_days=options.lead_decay_half_lives_days, btyd_fits=btyd_fits)


def build_scoring_features(
    tables: Mapping[str, pd.DataFrame], spec: TaskSpec, *, as_of: pd.Timestamp, options: FeatureOptions,
) -> FeatureSet:
    """Features of every entity eligible for ``spec`` at ``as_of``: the same code as training, one cutoff."""
    return scoring_features(tables, spec, as_of=as_of, options=options)
