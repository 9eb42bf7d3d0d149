"""The task registry: one frozen spec per predictive task.

A new model is a new entry in :data:`TASKS`, never a copied script. Everything downstream (training,
evaluation, banding, write-back, explanations) reads the spec.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from models.errors import UnknownTaskError

Kind = Literal["binary", "regression"]


@dataclass(frozen=True)
class BandScheme:
    """Bands assigned from the within-run score percentile (1..100, 100 = highest score).

    Attributes
    ----------
    labels:
        Band labels from the highest scores to the lowest, e.g. ``("high", "medium", "low")``.
    min_percentiles:
        For each label but the last, the lowest percentile that still gets it (descending);
        the last label takes everything below. ``("high", "medium", "low")`` with ``(91, 71)``
        means: top 10 % high, next 20 % medium, the rest low.

    Percentile bands (not probability thresholds) keep the queue sizes stable from run to run,
    which is what a sales or retention team plans capacity on.
    """

    labels: tuple[str, ...]
    min_percentiles: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.min_percentiles) != len(self.labels) - 1:
            raise ValueError(
                f"BandScheme needs len(labels) - 1 = {len(self.labels) - 1} cut points, got {self.min_percentiles}")
        if list(self.min_percentiles) != sorted(self.min_percentiles, reverse=True):
            raise ValueError(f"BandScheme cut points must be descending, got {self.min_percentiles}")

    def assign(self, percentile: pd.Series | np.ndarray) -> np.ndarray:
        """Band label for each percentile (1..100). Output: object array of the same length."""
        pct = np.asarray(percentile, dtype=float)
        out = np.full(pct.shape, self.labels[-1], dtype=object)
        # Walk from the lowest cut to the highest so the higher band overwrites.
        for label, cut in reversed(list(zip(self.labels[:-1], self.min_percentiles))):
            out[pct >= cut] = label
        return out


@dataclass(frozen=True)
class TaskSpec:
    """What one predictive task is: who is scored, what is predicted, how it is judged and shown.

    Attributes
    ----------
    name: task id, also the ``model`` column of ``crm_scores``.
    entity: ``"account"`` or ``"lead"`` (the ``entity_type`` written back).
    population: spine population (``features.spine.build_spine``).
    label: label name (``features.labels.make_labels``).
    horizon_key: config key holding the label horizon in days.
    kind: ``"binary"`` (probability) or ``"regression"`` (currency amount).
    objective: LightGBM objective (``"binary"`` or ``"tweedie"``).
    primary_metric: the held-out metric used to pick configs and to compare models.
    bands: how the score percentile becomes a band.
    slice_columns: feature columns whose values define the evaluation slices.
    outcome: readable phrase for reports and reason text ("churns within the horizon").
    baselines: names of the baselines every trained model is compared with.
    """

    name: str
    entity: Literal["account", "lead"]
    population: Literal["active_customers", "open_leads", "sql_leads"]
    label: str
    horizon_key: str
    kind: Kind
    objective: Literal["binary", "tweedie"]
    primary_metric: Literal["roc_auc", "normalized_gini"]
    bands: BandScheme
    slice_columns: tuple[str, ...]
    outcome: str
    baselines: tuple[str, ...]


_ACCOUNT_SLICES = ("firm__segment", "firm__country", "firm__acquisition_channel")
_LEAD_SLICES = ("firm__source", "firm__country", "firm__job_level")

TASKS: dict[str, TaskSpec] = {
    "churn": TaskSpec(
        name="churn", entity="account", population="active_customers", label="churn",
        horizon_key="churn_days", kind="binary", objective="binary", primary_metric="roc_auc",
        bands=BandScheme(("high", "medium", "low"), (91, 71)),
        slice_columns=_ACCOUNT_SLICES, outcome="churns within the horizon",
        baselines=("logistic",),
    ),
    "clv": TaskSpec(
        name="clv", entity="account", population="active_customers", label="clv_margin",
        horizon_key="clv_days", kind="regression", objective="tweedie", primary_metric="normalized_gini",
        bands=BandScheme(("top", "middle", "low"), (81, 51)),
        slice_columns=_ACCOUNT_SLICES, outcome="gross margin over the horizon",
        baselines=("mean", "historical_formula"),
    ),
    "lead_mql": TaskSpec(
        name="lead_mql", entity="lead", population="open_leads", label="reaches_sql",
        horizon_key="lead_mql_days", kind="binary", objective="binary", primary_metric="roc_auc",
        bands=BandScheme(("A", "B", "C", "D"), (91, 71, 41)),
        slice_columns=_LEAD_SLICES, outcome="is accepted by sales (SQL) within the horizon",
        baselines=("logistic",),
    ),
    "lead_sql": TaskSpec(
        name="lead_sql", entity="lead", population="sql_leads", label="won",
        horizon_key="lead_sql_days", kind="binary", objective="binary", primary_metric="roc_auc",
        bands=BandScheme(("A", "B", "C", "D"), (91, 71, 41)),
        slice_columns=_LEAD_SLICES, outcome="is won within the horizon",
        baselines=("logistic",),
    ),
}


def score_percentiles(scores: np.ndarray | pd.Series) -> np.ndarray:
    """Percentile 1..100 of each score within one run (100 = highest; ties share the higher percentile).

    ``ceil(100 * rank / n)`` with rank the "max" rank, so the top 1 % of scores get 100 and exactly
    tied scores always get the same percentile (and therefore the same band).
    """
    s = pd.Series(np.asarray(scores, dtype=float))
    if s.isna().any():
        raise ValueError(f"{int(s.isna().sum())} scores are NaN; percentiles need every score.")
    if s.empty:
        return np.array([], dtype=int)
    rank = s.rank(method="max").to_numpy()
    return np.ceil(100 * rank / len(s)).astype(int).clip(1, 100)


def get_task(name: str) -> TaskSpec:
    """The registered spec called ``name``; raises :class:`UnknownTaskError` listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"Unknown task {name!r}. Known tasks: {sorted(TASKS)}.") from None
