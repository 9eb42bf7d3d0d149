"""The monitoring policy: integrity failures that block the write-back, a status per model with ranked reasons,
and alert episodes over a sequence of runs.

Grain: ``integrity_failures`` and ``model_status`` take one (model version, scoring run); ``count_episodes`` one
model's statuses in run order.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd
from scipy.stats import norm

from models.monitoring.drift import ScoreHealth
from models.monitoring.performance import EstimateGrade, RealizedPerformance
from models.monitoring.reference import ModelReference
from models.monitoring.thresholds import MonitorThresholds

STATUSES = ("ok", "warn", "alert", "insufficient")
SEVERITY = {"block": 3, "alert": 2, "warn": 1}


@dataclass(frozen=True)
class Reason:
    """One reason behind a status.

    Attributes
    ----------
    severity : "block" (integrity: the write-back is refused), "alert" or "warn".
    code : what fired: nan_scores, identical_scores, catastrophic_score_shift, contract, calibration, auc_drop,
        estimator_unreliable, score_shift, mean_shift, rank_instability, feature_drift.
    subject : the feature (feature_drift) or "score" / "model".
    value : the measured size (PSI, share, ratio, AUC...). detail : one readable sentence.
    """

    severity: str
    code: str
    subject: str
    value: float | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Reason:
        return cls(**d)


def integrity_failures(health: ScoreHealth, *, thresholds: MonitorThresholds,
                       contract_failures: Sequence[str] = ()) -> tuple[Reason, ...]:
    """Reasons to refuse writing this run's scores: NaN or infinite scores, more than ``max_identical_share``
    identical scores, a score PSI at or above ``catastrophic_score_psi``, or a failed contract rule (given by the
    caller as readable names). Empty when the scores may be written."""
    out = []
    if health.nan_share:
        out.append(Reason("block", "nan_scores", "score", health.nan_share,
                          f"{health.nan_share:.1%} of scores are NaN or infinite"))
    if health.identical_share is not None and health.identical_share > thresholds.max_identical_share:
        out.append(Reason("block", "identical_scores", "score", health.identical_share,
                          f"{health.identical_share:.1%} of scores are identical "
                          f"(more than {thresholds.max_identical_share:.0%})"))
    if health.psi is not None and health.psi >= thresholds.catastrophic_score_psi:
        out.append(Reason("block", "catastrophic_score_shift", "score", health.psi,
                          f"score PSI {health.psi:.2f} against the reference (>= {thresholds.catastrophic_score_psi})"))
    out += [Reason("block", "contract", "data", None, f"contract rule failed: {rule}") for rule in contract_failures]
    return tuple(out)


def _performance_reasons(reference: ModelReference | None, realized: RealizedPerformance,
                         t: MonitorThresholds) -> list[Reason]:
    m = realized.metrics
    out = []
    if (m.get("n") or 0) < t.min_rows or realized.kind != "binary":
        return out
    oe, p = m.get("oe_ratio"), m.get("oe_p_value")
    if oe is not None and p is not None and p < t.alpha and abs(oe - 1) > t.calibration_tolerance:
        out.append(Reason("alert", "calibration", "model", oe,
                          f"observed positives are {oe:.2f} x the expected (p = {p:.1e})"))
    ref_auc = reference.metrics.get("roc_auc") if reference is not None else None
    auc, se = m.get("roc_auc"), m.get("auc_se")
    if ref_auc is not None and ref_auc.value is not None and auc is not None and se:
        ref_se = 0.0  # the held-out AUC's standard error, back from its interval
        if ref_auc.low is not None and ref_auc.high is not None:
            ref_se = (ref_auc.high - ref_auc.low) / (2 * norm.ppf(0.5 + t.level / 2))
        drop = ref_auc.value - auc
        p_drop = float(norm.sf(drop / (se**2 + ref_se**2) ** 0.5))
        if drop > t.auc_drop_alert and p_drop < t.alpha:
            out.append(Reason("alert", "auc_drop", "model", auc,
                              f"realized AUC {auc:.3f} against {ref_auc.value:.3f} held out (p = {p_drop:.1e})"))
    return out


def _grade_reasons(grade: EstimateGrade | None) -> list[Reason]:
    if grade is None or grade.reliable:
        return []
    return [Reason("warn", "estimator_unreliable", "model", grade.auc_error,
                   "the estimated performance missed the realized one; estimates of this version are unreliable")]


def _health_reasons(h: ScoreHealth, t: MonitorThresholds) -> list[Reason]:
    out = []
    if h.psi is not None and h.p_value is not None and h.p_value < t.alpha and h.psi >= t.psi_warn:
        sev = "alert" if h.psi >= t.psi_alert else "warn"
        out.append(Reason(sev, "score_shift", "score", h.psi, f"score PSI {h.psi:.3f} against the held-out scores"))
    if h.mean_shift is not None and h.mean_p_value is not None and h.mean_p_value < t.alpha \
            and abs(h.mean_shift) >= t.mean_shift_warn:
        sev = "alert" if abs(h.mean_shift) >= t.mean_shift_alert else "warn"
        out.append(Reason(sev, "mean_shift", "score", h.mean_shift,
                          f"mean score {h.mean_score:.4g} against a base rate of {h.reference_base_rate:.4g} "
                          f"({h.mean_shift:+.0%})"))
    if h.rank_stability is not None and h.n_common >= t.min_rows and h.rank_stability < t.min_rank_stability:
        out.append(Reason("warn", "rank_instability", "score", h.rank_stability,
                          f"rank correlation {h.rank_stability:.2f} with the previous run on {h.n_common} entities"))
    return out


def _drift_reasons(drift: pd.DataFrame) -> list[Reason]:
    flagged = drift[drift["status"].isin(["warn", "alert"])].sort_values("rank")
    if flagged.empty:
        return []
    return [Reason(r.status, "feature_drift", r.feature, float(r.psi),
                   f"{r.label}: PSI {r.psi:.3f} ({r.reason.replace('_', ' ')})") for r in flagged.itertuples()]


def model_status(
    drift: pd.DataFrame,
    health: ScoreHealth,
    *,
    thresholds: MonitorThresholds,
    reference: ModelReference | None = None,
    realized: RealizedPerformance | None = None,
    grade: EstimateGrade | None = None,
    contract_failures: Sequence[str] = (),
) -> tuple[str, tuple[Reason, ...]]:
    """Status of one model in one run, with its reasons ranked (most severe first; features by drift rank).

    Parameters
    ----------
    drift : :func:`feature_drift` of this run. health : :func:`score_health` of this run.
    reference, realized : the reference and the realized performance of the latest matured run (calibration and
        AUC-drop alerts), optional. grade : the grade of that run's estimate (an unreliable estimator warns).
    contract_failures : failed contract rules (they block the write-back).

    Returns
    -------
    (status, reasons): "alert" if any reason is an alert or a block, else "warn" if any warns, else "insufficient"
    when the run has fewer than ``min_rows`` scores or no feature could be tested, else "ok".
    """
    reasons = list(integrity_failures(health, thresholds=thresholds, contract_failures=contract_failures))
    if realized is not None:
        reasons += _performance_reasons(reference, realized, thresholds)
    reasons += _grade_reasons(grade)
    enough = health.n >= thresholds.min_rows
    if enough:
        reasons += _health_reasons(health, thresholds)
    reasons += _drift_reasons(drift)
    reasons.sort(key=lambda r: -SEVERITY[r.severity])  # stable: the order within a severity is kept
    worst = max((SEVERITY[r.severity] for r in reasons), default=0)
    if worst >= SEVERITY["alert"]:
        return "alert", tuple(reasons)
    if worst == SEVERITY["warn"]:
        return "warn", tuple(reasons)
    if not enough or (len(drift) and (drift["status"] == "insufficient").all()):
        return "insufficient", tuple(reasons)
    return "ok", tuple(reasons)


def episode_spans(statuses: Iterable[str], *, level: str = "alert") -> list[tuple[int, int]]:
    """The episodes of ``level`` in one model's statuses, in run order, as (first, last) run positions.

    An episode is a maximal stretch of consecutive runs at ``level``; an "insufficient" run neither ends nor starts
    one (it says nothing), so alert, insufficient, alert is one episode (positions 0 to 2), alert, ok, alert two.
    """
    spans: list[tuple[int, int]] = []
    inside = False
    for i, s in enumerate(statuses):
        if s == "insufficient":
            continue
        if s == level:
            if inside:
                spans[-1] = (spans[-1][0], i)
            else:
                spans.append((i, i))
        inside = s == level
    return spans


def count_episodes(statuses: Iterable[str], *, level: str = "alert") -> int:
    """Number of episodes of ``level`` in one model's statuses, in run order (see :func:`episode_spans`)."""
    return len(episode_spans(statuses, level=level))


def realized_status(realized: RealizedPerformance, *, thresholds: MonitorThresholds,
                    reference: ModelReference | None = None,
                    grade: EstimateGrade | None = None) -> tuple[str, tuple[Reason, ...]]:
    """Status of one matured run from its realized performance alone (its backtest), with ranked reasons.

    "alert" on a calibration or AUC-drop alert (see :func:`model_status`), "warn" when the estimate made at scoring
    time missed (the estimator is unreliable for that version), "insufficient" under ``min_rows`` matured rows,
    else "ok".
    """
    reasons = _performance_reasons(reference, realized, thresholds)
    reasons += _grade_reasons(grade)
    worst = max((SEVERITY[r.severity] for r in reasons), default=0)
    if worst >= SEVERITY["alert"]:
        return "alert", tuple(reasons)
    if worst == SEVERITY["warn"]:
        return "warn", tuple(reasons)
    if (realized.metrics.get("n") or 0) < thresholds.min_rows:
        return "insufficient", tuple(reasons)
    return "ok", tuple(reasons)
