"""The metric vocabulary: one frozen spec per metric the project computes, under the one name it is logged by.

Evaluation (:mod:`models.evaluate`, :mod:`models.train`) emits these names, MLflow stores them, the champion gate
takes their direction and chance level from here, and the model card their labels and order. A metric that is not
listed here has no label, no direction and no chance level: add it here first.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType


@dataclass(frozen=True)
class MetricSpec:
    """What one metric is.

    Attributes
    ----------
    name: the key in metric dicts, MLflow runs and slice frames (``roc_auc``).
    label: readable name for gate reasons and the model card (``AUC``).
    higher_is_better: ``True``/``False`` for a quality measure; ``None`` for a description of the data or the
        model (a row count, a rate, a ratio whose ideal is 1) that has no better direction.
    chance: the value a random ordering of the rows reaches on average (AUC 0.5, Spearman 0); ``None`` when
        it depends on the data (PR-AUC, log loss) or the metric is not about ranking.
    """

    name: str
    label: str
    higher_is_better: bool | None
    chance: float | None = None


#: Prefix of a metric measured on the validation cutoff rather than the held-out one (``valid_roc_auc``).
VALIDATION_PREFIX = "valid_"

_SPECS = (
    # Ranking and calibration of probabilities (binary tasks).
    MetricSpec("roc_auc", "AUC", True, 0.5),
    MetricSpec("pr_auc", "PR-AUC", True),
    MetricSpec("log_loss", "log loss", False),
    MetricSpec("brier", "Brier score", False),
    MetricSpec("ece", "ECE", False),
    MetricSpec("ece_uncalibrated", "ECE before calibration", False),
    # The top 10% of rows by score (models.evaluate.top_fraction_lift): a random order holds the base rate there,
    # i.e. lift 1 and 10% of the outcome.
    MetricSpec("lift_top_decile", "top-decile lift", True, 1.0),
    MetricSpec("capture_top_decile", "top-decile capture", True, 0.1),
    # Amounts (regression tasks).
    MetricSpec("spearman", "Spearman", True, 0.0),
    MetricSpec("normalized_gini", "normalized Gini", True, 0.0),
    MetricSpec("mae", "MAE", False),
    MetricSpec("total_ratio", "total ratio", None),
    MetricSpec("total_rel_se", "relative standard error of the realized total", None),
    # Descriptions of the held-out rows and of the training run.
    MetricSpec("n", "rows", None),
    MetricSpec("positive_rate", "positive rate", None),
    MetricSpec("mean_actual", "mean realized value", None),
    MetricSpec("slice_collapse_count", "collapsed slices", False),
    MetricSpec("labels_clipped_at_zero", "labels clipped at zero", None),
    # The historical CLV formula's own estimates (baseline metrics).
    MetricSpec("annual_churn_rate", "annual churn rate", None),
    MetricSpec("customer_equity", "customer equity", None),
)

#: Every metric by name, in the order reports list them.
METRICS: Mapping[str, MetricSpec] = MappingProxyType({s.name: s for s in _SPECS})


def metric_spec(name: str) -> MetricSpec | None:
    """The spec of ``name``, including validation-cutoff metrics (``valid_<name>``); ``None`` if unknown."""
    if name in METRICS:
        return METRICS[name]
    if name.startswith(VALIDATION_PREFIX) and name.removeprefix(VALIDATION_PREFIX) in METRICS:
        base = METRICS[name.removeprefix(VALIDATION_PREFIX)]
        return MetricSpec(name, f"{base.label} (validation cutoff)", base.higher_is_better, base.chance)
    return None


def metric_label(name: str) -> str:
    """The readable name of a metric (the name itself for an unknown one)."""
    spec = metric_spec(name)
    return spec.label if spec is not None else name


def comparable_metrics() -> list[str]:
    """The names of the quality metrics: those with a better direction, on which two models can be compared."""
    return sorted(n for n, s in METRICS.items() if s.higher_is_better is not None)


def higher_is_better(name: str) -> bool:
    """The direction of a quality metric; raises ValueError for an unknown metric or one without a direction."""
    spec = metric_spec(name)
    if spec is None or spec.higher_is_better is None:
        what = "is not a known metric" if spec is None else "describes the data and has no better direction"
        raise ValueError(f"Metric {name!r} {what}; models can be compared on {comparable_metrics()}.")
    return spec.higher_is_better


def metric_order(names: Iterable[str]) -> list[str]:
    """``names`` in report order: known metrics in :data:`METRICS` order, then validation ones, then the rest sorted."""
    names = list(names)
    known = [m for m in METRICS if m in names]
    validation = [m for m in names if m not in METRICS and metric_spec(m) is not None]
    return known + sorted(validation) + sorted(m for m in names if metric_spec(m) is None)
