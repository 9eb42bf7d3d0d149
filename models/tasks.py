"""The task registry: one frozen spec per predictive task, the single place a task is described.

A new model is a new entry in :data:`TASKS`, never a copied script or a second table keyed by task id. Training,
evaluation, banding, write-back (the allowed model names), reasons (the outcome words), the ``list`` command (its
list names), the model card (eligibility text) and scoring (which populations to build) all read the spec at call
time, so an entry added here (or, in a test, inserted into :data:`TASKS`) runs through all of them.

What two tasks share because they score the same people lives on the population they name (:data:`POPULATIONS`):
the entity, the tables it needs and the eligibility rule in words; what an entity is in the CRM (its table, id and
the column a list can be filtered by) lives on :data:`ENTITIES`.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal

from features.labels import LABELS
from features.spine import POPULATIONS as SPINE_POPULATIONS
from models.errors import ModelConfigError, UnknownTaskError

Kind = Literal["binary", "regression"]

#: Band schemes of ``models.bands`` (their cut-offs are configured in ``bands.<scheme>``).
BAND_SCHEMES: tuple[str, ...] = ("churn", "lead", "clv")
#: Baselines ``models.train`` knows how to fit; a spec lists those its models are compared with.
BASELINES: dict[Kind, tuple[str, ...]] = {
    "binary": ("logistic",),
    "regression": ("mean", "historical_formula", "btyd"),
}


@dataclass(frozen=True)
class EntitySpec:
    """What an entity is in the CRM extract (``docs/crm_data_model.md``).

    Attributes
    ----------
    name: ``entity_type`` written back (``"account"``, ``"lead"``).
    table: the extract table holding one row per entity.
    id_column: its primary key.
    segment_column: the column a list is filtered by (``crmscore list --segment``) and explain shows.
    """

    name: str
    table: str
    id_column: str
    segment_column: str


ENTITIES: dict[str, EntitySpec] = {
    "account": EntitySpec(name="account", table="accounts", id_column="account_id", segment_column="segment"),
    "lead": EntitySpec(name="lead", table="leads", id_column="lead_id", segment_column="source"),
}


@dataclass(frozen=True)
class PopulationSpec:
    """Who is scored: a spine population of ``features.spine.build_spine``.

    Attributes
    ----------
    name: the spine population.
    entity: key of :data:`ENTITIES`.
    required_tables: tables without which the population is empty (a task on it is skipped, not failed).
    eligibility: the rule in words, for the model card and the report.
    """

    name: str
    entity: Literal["account", "lead"]
    required_tables: tuple[str, ...]
    eligibility: str


POPULATIONS: dict[str, PopulationSpec] = {
    "active_customers": PopulationSpec(
        name="active_customers", entity="account", required_tables=("accounts",),
        eligibility="accounts active at the cutoff (consenting, not deleted; an active subscription, or without a "
                    "subscriptions table a completed order in the look-back)"),
    "open_leads": PopulationSpec(
        name="open_leads", entity="lead", required_tables=("leads",),
        eligibility="open leads at the cutoff (created before it; not SQL, won or lost; consenting, not deleted)"),
    "sql_leads": PopulationSpec(
        name="sql_leads", entity="lead", required_tables=("leads",),
        eligibility="SQL leads not yet won or lost at the cutoff (consenting, not deleted)"),
}


@dataclass(frozen=True)
class TaskSpec:
    """What one predictive task is: who is scored, what is predicted, how it is judged and shown.

    Attributes
    ----------
    name: task id, also the ``model`` column of ``crm_scores`` and the registered model ``crmscore-<name>``.
    population: key of :data:`POPULATIONS` (who is scored; the entity follows from it).
    label: label name (``features.labels.make_labels``).
    horizon_days: the label horizon (days after the cutoff); config ``horizons.<name>`` overrides it.
    kind: ``"binary"`` (probability) or ``"regression"`` (currency amount).
    objective: LightGBM objective (``"binary"`` or ``"tweedie"``).
    primary_metric: the held-out metric used to pick configs and to compare models.
    band_scheme: how the score becomes a band: a scheme of ``models.bands`` (churn, lead, clv), whose
        cut-offs are configurable (config ``bands.<scheme>``).
    slice_columns: feature columns whose values define the evaluation slices.
    outcome: readable phrase for the model card and reports ("churns within the horizon").
    reason_outcome: the words after "raises"/"lowers" in the plain-language reasons ("churn risk").
    baselines: names of the baselines (:data:`BASELINES`) every trained model is compared with.
    list_name: the ``crmscore list`` kind showing this task's current scores, ranked ("at-risk").
    list_title: what that list is, in words (help texts, the report).
    value_at_risk_with: for a probability task, the amount task whose score multiplied by this one is the value at
        risk written to ``crm_value_at_risk`` (and by which this task's list is ranked); ``None`` for none.
    """

    name: str
    population: str
    label: str
    horizon_days: int
    kind: Kind
    objective: Literal["binary", "tweedie"]
    primary_metric: Literal["roc_auc", "normalized_gini"]
    band_scheme: str
    slice_columns: tuple[str, ...]
    outcome: str
    reason_outcome: str
    baselines: tuple[str, ...]
    list_name: str
    list_title: str
    value_at_risk_with: str | None = None

    def __post_init__(self) -> None:
        problems = []
        if self.population not in POPULATIONS or self.population not in SPINE_POPULATIONS:
            problems.append(f"population {self.population!r} is not one of {sorted(POPULATIONS)}")
        if self.label not in LABELS:
            problems.append(f"label {self.label!r} is not one of {list(LABELS)} (features.labels)")
        expected = {"binary": ("binary", "roc_auc"), "regression": ("tweedie", "normalized_gini")}[self.kind]
        if (self.objective, self.primary_metric) != expected:
            problems.append(f"a {self.kind} task uses objective/primary metric {expected}, not "
                            f"{(self.objective, self.primary_metric)}")
        if self.band_scheme not in BAND_SCHEMES:
            problems.append(f"band_scheme {self.band_scheme!r} is not one of {list(BAND_SCHEMES)}")
        unknown = [b for b in self.baselines if b not in BASELINES[self.kind]]
        if unknown:
            problems.append(f"baselines {unknown} are not known for a {self.kind} task ({list(BASELINES[self.kind])})")
        if self.horizon_days <= 0:
            problems.append(f"horizon_days must be positive, got {self.horizon_days}")
        if self.value_at_risk_with is not None and self.kind != "binary":
            problems.append("value_at_risk_with belongs on a probability (binary) task")
        if problems:
            raise ModelConfigError(f"task {self.name!r}: " + "; ".join(problems) + ".")

    @property
    def population_spec(self) -> PopulationSpec:
        return POPULATIONS[self.population]

    @property
    def entity(self) -> Literal["account", "lead"]:
        """``"account"`` or ``"lead"``: the ``entity_type`` written back, from the population."""
        return POPULATIONS[self.population].entity

    @property
    def entity_spec(self) -> EntitySpec:
        return ENTITIES[self.entity]

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain data, derived fields included (logged with every model version)."""
        return {**asdict(self), "entity": self.entity, "eligibility": self.population_spec.eligibility}


_ACCOUNT_SLICES = ("firm__segment", "firm__country", "firm__acquisition_channel")
_LEAD_SLICES = ("firm__source", "firm__country", "firm__job_level")

TASKS: dict[str, TaskSpec] = {
    "churn": TaskSpec(
        name="churn", population="active_customers", label="churn", horizon_days=90,
        kind="binary", objective="binary", primary_metric="roc_auc", band_scheme="churn",
        slice_columns=_ACCOUNT_SLICES, outcome="churns within the horizon", reason_outcome="churn risk",
        baselines=("logistic",), list_name="at-risk",
        list_title="customers most at risk, ranked by value at risk (P(churn) x CLV) when CLV is scored",
        value_at_risk_with="clv",
    ),
    "clv": TaskSpec(
        name="clv", population="active_customers", label="clv_margin", horizon_days=365,
        kind="regression", objective="tweedie", primary_metric="normalized_gini", band_scheme="clv",
        slice_columns=_ACCOUNT_SLICES, outcome="gross margin over the horizon", reason_outcome="expected value",
        baselines=("mean", "historical_formula", "btyd"), list_name="clv",
        list_title="customers with the highest expected gross margin",
    ),
    "lead_mql": TaskSpec(
        name="lead_mql", population="open_leads", label="reaches_sql", horizon_days=60,
        kind="binary", objective="binary", primary_metric="roc_auc", band_scheme="lead",
        slice_columns=_LEAD_SLICES, outcome="is accepted by sales (SQL) within the horizon",
        reason_outcome="the chance of reaching SQL", baselines=("logistic",), list_name="top-leads",
        list_title="open leads most likely to become sales-qualified (the marketing-qualified queue)",
    ),
    "lead_sql": TaskSpec(
        name="lead_sql", population="sql_leads", label="won", horizon_days=90,
        kind="binary", objective="binary", primary_metric="roc_auc", band_scheme="lead",
        slice_columns=_LEAD_SLICES, outcome="is won within the horizon", reason_outcome="the chance of winning",
        baselines=("logistic",), list_name="sql-leads", list_title="sales-qualified leads most likely to be won",
    ),
}


def get_task(name: str) -> TaskSpec:
    """The registered spec called ``name``; raises :class:`UnknownTaskError` listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise UnknownTaskError(f"Unknown task {name!r}. Known tasks: {sorted(TASKS)}.") from None


def check_registry(tasks: Mapping[str, TaskSpec]) -> None:
    """Cross-entry rules of a registry: keys are the names, list names are unique, value-at-risk partners exist.

    Raises :class:`ModelConfigError` naming every problem. Each entry checks itself when it is built.
    """
    problems = [f"key {k!r} holds the task named {s.name!r}" for k, s in tasks.items() if k != s.name]
    seen: dict[str, str] = {}
    for spec in tasks.values():
        if spec.list_name in seen:
            problems.append(f"list name {spec.list_name!r} is used by {seen[spec.list_name]!r} and {spec.name!r}")
        seen[spec.list_name] = spec.name
        partner = tasks.get(spec.value_at_risk_with) if spec.value_at_risk_with else None
        if spec.value_at_risk_with and (partner is None or partner.kind != "regression"
                                        or partner.population != spec.population):
            problems.append(f"task {spec.name!r}: value_at_risk_with={spec.value_at_risk_with!r} must name a "
                            "registered amount (regression) task on the same population")
    at_risk = [s.name for s in tasks.values() if s.value_at_risk_with]
    if len(at_risk) > 1:
        problems.append(f"only one task can write crm_value_at_risk; {at_risk} all name value_at_risk_with")
    if problems:
        raise ModelConfigError("invalid task registry: " + "; ".join(problems) + ".")


def tasks_named(names: str | Iterable[str] | None) -> list[TaskSpec]:
    """The specs of a comma-separated list (``"churn,clv"``) or iterable of names, registry order for ``None``."""
    if names is None:
        return list(TASKS.values())
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    return [get_task(n) for n in names]


def task_for_list(list_name: str) -> TaskSpec:
    """The task whose ``crmscore list`` kind is ``list_name``; raises :class:`UnknownTaskError` listing the kinds."""
    for spec in TASKS.values():
        if spec.list_name == list_name:
            return spec
    kinds = ", ".join(s.list_name for s in TASKS.values())
    raise UnknownTaskError(f"unknown list {list_name!r}; possible values are {kinds}.")


def populations_of(entity: str) -> list[str]:
    """The populations the registered tasks score for one entity, in registry order (for ``crmscore features``)."""
    out: list[str] = []
    for spec in TASKS.values():
        if spec.entity == entity and spec.population not in out:
            out.append(spec.population)
    return out


def horizon_days(spec: TaskSpec, overrides: Mapping[str, int]) -> int:
    """The label horizon of ``spec``: ``overrides[name]`` (config ``horizons``) or the spec's own."""
    return int(overrides.get(spec.name, spec.horizon_days))
