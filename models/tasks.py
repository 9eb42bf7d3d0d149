"""The task registry: one frozen spec per predictive task.

A new model is a new entry in :data:`TASKS`, never a copied script. Everything downstream (training,
evaluation, banding, write-back, explanations) reads the spec.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from models.errors import UnknownTaskError

Kind = Literal["binary", "regression"]


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
    band_scheme: how the score becomes a band: a scheme of ``models.bands`` (churn, lead, clv), whose
        cut-offs are configurable (config ``bands.<scheme>``).
    slice_columns: feature columns whose values define the evaluation slices.
    outcome: readable phrase for reports and reason text ("churns within the horizon").
    reason_outcome: the words after "raises"/"lowers" in reason text ("churn risk"; see ``models.wording``).
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
    band_scheme: Literal["churn", "lead", "clv"]
    slice_columns: tuple[str, ...]
    outcome: str
    reason_outcome: str
    baselines: tuple[str, ...]


_ACCOUNT_SLICES = ("firm__segment", "firm__country", "firm__acquisition_channel")
_LEAD_SLICES = ("firm__source", "firm__country", "firm__job_level")

TASKS: dict[str, TaskSpec] = {
    "churn": TaskSpec(
        name="churn", entity="account", population="active_customers", label="churn",
        horizon_key="churn_days", kind="binary", objective="binary", primary_metric="roc_auc",
        band_scheme="churn",
        slice_columns=_ACCOUNT_SLICES, outcome="churns within the horizon",
        reason_outcome="churn risk",
        baselines=("logistic",),
    ),
    "clv": TaskSpec(
        name="clv", entity="account", population="active_customers", label="clv_margin",
        horizon_key="clv_days", kind="regression", objective="tweedie", primary_metric="normalized_gini",
        band_scheme="clv",
        slice_columns=_ACCOUNT_SLICES, outcome="gross margin over the horizon",
        reason_outcome="expected value",
        baselines=("mean", "historical_formula"),
    ),
    "lead_mql": TaskSpec(
        name="lead_mql", entity="lead", population="open_leads", label="reaches_sql",
        horizon_key="lead_mql_days", kind="binary", objective="binary", primary_metric="roc_auc",
        band_scheme="lead",
        slice_columns=_LEAD_SLICES, outcome="is accepted by sales (SQL) within the horizon",
        reason_outcome="the chance of reaching SQL",
        baselines=("logistic",),
    ),
    "lead_sql": TaskSpec(
        name="lead_sql", entity="lead", population="sql_leads", label="won",
        horizon_key="lead_sql_days", kind="binary", objective="binary", primary_metric="roc_auc",
        band_scheme="lead",
        slice_columns=_LEAD_SLICES, outcome="is won within the horizon",
        reason_outcome="the chance of winning",
        baselines=("logistic",),
    ),
}


def get_task(name: str) -> TaskSpec:
    """The registered spec called ``name``; raises :class:`UnknownTaskError` listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"Unknown task {name!r}. Known tasks: {sorted(TASKS)}.") from None
