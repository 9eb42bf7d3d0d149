"""The champion gate: pure rules deciding whether a newly trained model replaces the serving champion.

A candidate is promoted only if (a) there is no champion, or it beats the champion's primary metric
**measured on the same out-of-time data** (the candidate's held-out frame) by a configured margin, and
(b) it passes minimum quality on its own: calibration (ECE, binary tasks), the predicted total within a
share of the realized total (amount tasks: CLV sums to customer equity), a floor on the primary metric and no
collapsed slice. Otherwise it is registered as the ``challenger``. The reasons are readable
sentences, because they end up in the run log, the model version tags and the CLI output.

Nothing here imports mlflow: :func:`promote_if_better` only calls ``registry.set_alias`` and
``registry.tag_version`` on whatever registry object it is given (``models.registry.Registry``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import pandas as pd

from models.evaluate import collapsed_slices
from models.metrics import higher_is_better, metric_label

CHAMPION = "champion"
CHALLENGER = "challenger"


@dataclass(frozen=True)
class GateConfig:
    """Tunables of the gate (config section ``gate``; ``pipelines`` builds it from the settings).

    Parameters
    ----------
    primary_metric
        Metric compared between candidate and champion (the task spec's ``primary_metric``); its direction
        comes from :mod:`models.metrics`.
    min_improvement
        Margin the candidate must beat the champion by, in the metric's own units (0.002 AUC points).
    max_ece
        Largest expected calibration error accepted; applies only when the candidate reports ``ece``
        (binary tasks). ``None`` disables the check.
    min_primary
        Floor on the candidate's primary metric (direction-aware). ``None`` disables the check.
    min_slice_n
        Slices with fewer rows are too noisy to call collapsed (:func:`models.evaluate.collapsed_slices`).
    min_ece_n
        Held-out rows below which ECE is reported rather than judged.
    max_total_error
        Largest accepted ``|total_ratio - 1|`` (held-out predicted total / realized total); applies only when the
        candidate reports ``total_ratio`` (amount tasks). ``None`` disables the check.
    """

    primary_metric: str
    min_improvement: float
    max_ece: float | None
    min_primary: float | None
    min_slice_n: int
    min_ece_n: int
    max_total_error: float | None


@dataclass(frozen=True)
class GateDecision:
    """Outcome of the gate: ``promote`` and the sentences that explain it (one per check)."""

    promote: bool
    reasons: list[str] = field(default_factory=list)

    @property
    def alias(self) -> str:
        """The alias the candidate receives: ``champion`` or ``challenger``."""
        return CHAMPION if self.promote else CHALLENGER


class _AliasSetter(Protocol):
    def set_alias(self, task: str, version: int, alias: str) -> None: ...

    def tag_version(self, task: str, version: int, tags: Mapping[str, str]) -> None: ...


def total_not_judged(total_rel_se: float, max_total_error: float) -> bool:
    """Whether the held-out total is too noisy to judge: two standard errors of the realized total exceed the
    tolerance (like ``min_ece_n`` for calibration: a small or very skewed held-out set is reported, not judged)."""
    return bool(math.isfinite(total_rel_se) and 2 * total_rel_se > max_total_error)

def _fmt(value: float) -> str:
    return f"{value:.3f}"


def _total_text(ratio: float) -> str:
    """``1.4`` -> ``"40% above"``, ``0.93`` -> ``"7% below"``, NaN -> ``"unknown (NaN)"``."""
    if math.isnan(ratio):
        return "unknown (NaN)"
    return f"{abs(ratio - 1):.1%} {'above' if ratio >= 1 else 'below'}"


def _better(a: float, b: float, metric: str) -> bool:
    """Whether ``a`` is strictly better than ``b`` for ``metric``."""
    return a > b if higher_is_better(metric) else a < b


def find_collapsed_slices(slice_metrics: pd.DataFrame, *, metric: str, min_n: int) -> list[str]:
    """Name the collapsed slices (:func:`models.evaluate.collapsed_slices`: no better than chance) for the reasons.

    Parameters
    ----------
    slice_metrics
        ``TrainingReport.slice_metrics`` (wide, or long with ``slice_column``, ``slice_value``, ``n``, ``metric``,
        ``value``), computed on the held-out frame.
    metric
        Metric to check (the task's primary metric).
    min_n
        Slices with fewer rows are ignored (too noisy to judge).

    Returns
    -------
    list[str]
        ``"column=value (AUC 0.480, n=120)"`` per collapsed slice, in input order; empty when none or when the
        metric has no chance level.
    """
    rows = collapsed_slices(slice_metrics, metric=metric, min_n=min_n)
    label = metric_label(metric)
    return [f"{r.slice_column}={r.slice_value} ({label} {_fmt(float(r.value))}, n={int(r.n)})"
            for r in rows.itertuples(index=False)]


def decide(
    candidate: Mapping[str, float],
    champion: Mapping[str, float] | None,
    *,
    primary_metric: str,
    min_improvement: float,
    max_ece: float | None,
    min_primary: float | None,
    slice_collapse: bool,
    collapsed_slices: Sequence[str] = (),
    min_ece_n: int,
    max_total_error: float | None,
) -> GateDecision:
    """Decide whether a candidate model becomes champion.

    Parameters
    ----------
    candidate
        Candidate's held-out (out-of-time test) metrics, e.g. ``{"roc_auc": 0.79, "ece": 0.01, ...}``.
    champion
        The current champion's metrics **scored on the candidate's held-out frame** (same rows, same
        cutoffs), or ``None`` when there is no champion. Metrics from the champion's own training run
        are not comparable and must not be passed here.
    primary_metric
        Metric to compare; its direction comes from :mod:`models.metrics`.
    min_improvement
        Required margin over the champion (non-negative, metric units).
    max_ece
        Calibration ceiling, checked only when ``candidate`` has ``ece``; ``None`` disables it.
    min_primary
        Floor (ceiling for lower-is-better metrics) on the candidate's primary metric; ``None`` disables it.
    slice_collapse
        Whether some slice of the held-out frame collapsed (see :func:`find_collapsed_slices`).
    collapsed_slices
        Names of the collapsed slices, only used to word the reason.
    min_ece_n
        Held-out rows (``candidate["n"]``) below which ECE is too noisy to judge: the check is then reported
        as not made instead of failing a small but sound model (10 bins of 4 rows say nothing).
    max_total_error
        Largest accepted ``|total_ratio - 1|``, checked only when ``candidate`` has ``total_ratio`` (a missing or
        NaN ratio fails it: the total could not be checked); ``None`` disables it.

    Returns
    -------
    GateDecision
        ``promote`` is True only if every check passes; ``reasons`` has one sentence per check, passing
        or failing, so a reader sees why either way.

    Raises
    ------
    ValueError
        If the primary metric has no direction, is missing or NaN in ``candidate`` or ``champion``, or the
        margin is negative.
    """
    if min_improvement < 0:
        raise ValueError(f"min_improvement must be >= 0, got {min_improvement}.")
    lower = not higher_is_better(primary_metric)
    label = metric_label(primary_metric)
    cand = candidate.get(primary_metric)
    if cand is None or math.isnan(float(cand)):
        raise ValueError(
            f"Candidate metrics have no usable {primary_metric!r} (got {cand!r}); "
            f"available: {sorted(candidate)}."
        )
    cand = float(cand)
    ok = True
    reasons: list[str] = []

    if champion is None:
        reasons.append(f"no champion yet: {label} {_fmt(cand)} is the first model")
    else:
        champ = champion.get(primary_metric)
        if champ is None or math.isnan(float(champ)):
            raise ValueError(
                f"Champion metrics have no usable {primary_metric!r} (got {champ!r}); score the champion "
                f"on the candidate's held-out frame first. Available: {sorted(champion)}."
            )
        champ = float(champ)
        target = champ - min_improvement if lower else champ + min_improvement
        sign = "-" if lower else "+"
        if _better(cand, target, primary_metric):
            reasons.append(
                f"{label} {_fmt(cand)} beats champion {_fmt(champ)} {sign} margin {min_improvement:g} "
                "on the same held-out data"
            )
        else:
            ok = False
            reasons.append(
                f"{label} {_fmt(cand)} does not beat champion {_fmt(champ)} {sign} margin {min_improvement:g}"
            )

    if min_primary is not None:
        passes = cand <= min_primary if lower else cand >= min_primary
        word = "at most" if lower else "at least"
        if passes:
            reasons.append(f"{label} {_fmt(cand)} meets the minimum quality ({word} {min_primary:g})")
        else:
            ok = False
            reasons.append(f"{label} {_fmt(cand)} is below the minimum quality ({word} {min_primary:g})")

    n_rows = candidate.get("n")
    if max_ece is not None and "ece" in candidate and n_rows is not None and float(n_rows) < min_ece_n:
        reasons.append(f"calibration not judged: {int(n_rows)} held-out rows are fewer than {min_ece_n} "
                       f"(ECE {_fmt(float(candidate['ece']))} is noise at that size)")
    elif max_ece is not None and "ece" in candidate:
        ece = float(candidate["ece"])
        if math.isnan(ece) or ece > max_ece:
            ok = False
            reasons.append(f"calibration ECE {_fmt(ece)} exceeds the maximum {max_ece:g}")
        else:
            reasons.append(f"calibration ECE {_fmt(ece)} is within the maximum {max_ece:g}")

    if max_total_error is not None and "total_ratio" in candidate:
        ratio = float(candidate["total_ratio"])
        se = float(candidate.get("total_rel_se", float("nan")))
        if total_not_judged(se, max_total_error):
            rows = f"{int(n_rows)} " if n_rows is not None else ""
            reasons.append(f"total not judged: the realized total of the {rows}held-out rows has a relative "
                           f"standard error of {se:.1%}, too large to tell a {max_total_error:.0%} error from noise "
                           f"(predicted total is {_total_text(ratio)} the realized total)")
        elif math.isnan(ratio) or abs(ratio - 1) > max_total_error:
            ok = False
            reasons.append(f"predicted total is {_total_text(ratio)} the realized total on the held-out data, "
                           f"outside the accepted {max_total_error:.0%}")
        else:
            reasons.append(f"predicted total is {_total_text(ratio)} the realized total, within "
                           f"{max_total_error:.0%}")

    if slice_collapse:
        ok = False
        which = ", ".join(collapsed_slices) if collapsed_slices else "see slice metrics"
        reasons.append(f"collapsed slice(s), no better than chance: {which}")

    return GateDecision(promote=ok, reasons=reasons)


def promote_if_better(
    registry: _AliasSetter,
    task: str,
    candidate_version: int,
    candidate_metrics: Mapping[str, float],
    champion_metrics_on_same_data: Mapping[str, float] | None,
    gate_cfg: GateConfig,
    *,
    slice_metrics: pd.DataFrame | None = None,
) -> GateDecision:
    """Run the gate and move the ``champion`` or ``challenger`` alias to the candidate version.

    Parameters
    ----------
    registry
        ``models.registry.Registry`` (anything with ``set_alias`` and ``tag_version``).
    task
        Task name (``churn``, ``clv``, ``lead_mql``, ``lead_sql``).
    candidate_version
        Registered version of the candidate (``RunInfo.version`` from ``log_training_run``).
    candidate_metrics
        Candidate's held-out metrics (``TrainingReport.metrics``).
    champion_metrics_on_same_data
        The current champion scored on the candidate's held-out frame, or ``None`` if there is no champion.
    gate_cfg
        Gate tunables.
    slice_metrics
        Candidate's slice metrics (``TrainingReport.slice_metrics``); when given, collapsed slices block promotion.

    Returns
    -------
    GateDecision
        The decision; its reasons are also stored as the version tag ``gate_reasons``.
    """
    collapsed: list[str] = []
    if slice_metrics is not None:
        collapsed = find_collapsed_slices(
            slice_metrics,
            metric=gate_cfg.primary_metric,
            min_n=gate_cfg.min_slice_n,
        )
    decision = decide(
        candidate_metrics,
        champion_metrics_on_same_data,
        primary_metric=gate_cfg.primary_metric,
        min_improvement=gate_cfg.min_improvement,
        max_ece=gate_cfg.max_ece,
        min_primary=gate_cfg.min_primary,
        slice_collapse=bool(collapsed),
        collapsed_slices=collapsed,
        min_ece_n=gate_cfg.min_ece_n,
        max_total_error=gate_cfg.max_total_error,
    )
    registry.set_alias(task, candidate_version, decision.alias)
    registry.tag_version(
        task,
        candidate_version,
        {"gate_decision": decision.alias, "gate_reasons": "; ".join(decision.reasons)},
    )
    return decision
