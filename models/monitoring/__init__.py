"""Monitoring statistics: feature drift and score health of every scoring run against a reference frozen at
training, realized and estimated performance of past runs, and the status policy. Pure numpy/pandas/scipy: no
I/O, no clock, no mlflow (the flows store, log and render what these functions return).

Modules: ``stats`` (PSI, Jensen-Shannon, AUC standard error, corrections), ``reference`` (what is frozen per model
version), ``drift`` (per run), ``performance`` (matured runs and estimates), ``policy`` (statuses, reasons,
episodes), ``thresholds``, ``simulate`` (detection curves).
"""
from models.monitoring.drift import DRIFT_COLUMNS, ScoreHealth, drift_bins, feature_drift, score_health
from models.monitoring.errors import MonitoringInputError, ScoresBlockedError
from models.monitoring.performance import (
    EstimatedPerformance,
    EstimateGrade,
    RealizedPerformance,
    estimated_performance,
    estimator_reliable,
    grade_estimate,
    realized_performance,
)
from models.monitoring.policy import Reason, count_episodes, episode_spans, integrity_failures, model_status
from models.monitoring.reference import (
    Estimate,
    FeatureReference,
    ModelReference,
    ScoreReference,
    build_feature_reference,
    build_reference,
)
from models.monitoring.simulate import detection_curve
from models.monitoring.stats import (
    adjust_p_values,
    auc_standard_error,
    benjamini_hochberg,
    holm,
    jensen_shannon,
    psi,
    psi_p_value,
    wilson_interval,
)
from models.monitoring.thresholds import MonitorThresholds

__all__ = [
    "DRIFT_COLUMNS", "Estimate", "EstimateGrade", "EstimatedPerformance", "FeatureReference", "ModelReference", "MonitoringInputError",
    "MonitorThresholds", "RealizedPerformance", "Reason", "ScoresBlockedError", "ScoreHealth", "ScoreReference", "adjust_p_values",
    "auc_standard_error", "benjamini_hochberg", "build_feature_reference", "build_reference", "count_episodes",
    "detection_curve", "episode_spans", "drift_bins", "estimated_performance", "estimator_reliable", "feature_drift",
    "grade_estimate", "holm", "integrity_failures", "jensen_shannon", "model_status", "psi", "psi_p_value",
    "realized_performance", "score_health", "wilson_interval",
]
