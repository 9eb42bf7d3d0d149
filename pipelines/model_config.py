"""The model-layer objects the settings describe: the one place the configuration's sections become the frozen
option objects of ``models/`` (``LightGBMParams``, ``EvaluationSettings``, ``GateConfig``, ``FeatureOptions``,
``CutoffOptions``, ``ScoringOptions``, ``MonitorThresholds``).

``models/`` has no defaults of its own; every value comes from ``configs/default.yaml`` (and an overlay) through here.
"""
from __future__ import annotations

from models.champion import GateConfig
from models.dataset import CutoffOptions, FeatureOptions
from models.monitoring import MonitorThresholds
from models.scoring import ScoringOptions
from models.train import EvaluationSettings, LightGBMParams, SearchConfig
from pipelines.config import Settings


def lightgbm_params(settings: Settings) -> LightGBMParams:
    """The booster's budget and search from ``settings.model`` (raises ModelConfigError on a bad value)."""
    m = settings.model
    return LightGBMParams(**m.model_dump(exclude={"search"}),
                          search=tuple(SearchConfig(**p.model_dump()) for p in m.search))


def evaluation_settings(settings: Settings) -> EvaluationSettings:
    """Calibration, evaluation and baseline settings from ``settings.evaluation`` (ModelConfigError on a bad value)."""
    return EvaluationSettings(**settings.evaluation.model_dump())


def gate_config(settings: Settings, primary_metric: str) -> GateConfig:
    """The champion gate for a task judged on ``primary_metric``, from ``settings.gate``.

    Slices are judged collapsed on the same rule as in training (``evaluation.collapse_min_n``).
    """
    g = settings.gate
    return GateConfig(primary_metric=primary_metric, min_improvement=g.min_improvement, max_ece=g.max_ece,
                      min_primary=g.min_primary.get(primary_metric), min_slice_n=settings.evaluation.collapse_min_n,
                      min_ece_n=g.min_ece_n, max_total_error=g.max_total_error)


def feature_options(settings: Settings) -> FeatureOptions:
    """Feature windows, the eligibility look-back and the BG/NBD forward horizons (every account task's horizon).

    The `btyd__` columns are forecast over the windows and over each account task's horizon (``horizons`` overrides
    included), so that training and scoring of churn and clv, which share a population, build the same columns.
    """
    from models.tasks import TASKS, horizon_days

    forward = sorted({horizon_days(spec, settings.horizons) for spec in TASKS.values() if spec.entity == "account"})
    return FeatureOptions(windows_days=tuple(settings.features.windows_days),
                          churn_lookback_days=settings.eligibility.churn_lookback_days,
                          forward_days=tuple(forward),
                          lead_decay_half_lives_days=tuple(settings.features.lead_decay_half_lives_days))


def cutoff_options(settings: Settings) -> CutoffOptions:
    """How training cutoffs are laid out (section ``training``)."""
    t = settings.training
    return CutoffOptions(count=t.cutoff_count, step_days=t.cutoff_step_days, min_history_days=t.min_history_days,
                         lead_count=t.lead_cutoff_count)


def scoring_options(settings: Settings) -> ScoringOptions:
    """Reasons, chunking, TreeSHAP method and the band cut-offs (sections ``scoring`` and ``bands``)."""
    sc = settings.scoring
    return ScoringOptions(reasons_up=sc.reasons_up, reasons_down=sc.reasons_down, chunk_rows=sc.chunk_rows,
                          threads=sc.threads, treeshap=sc.treeshap, check_rows=sc.check_rows,
                          band_thresholds={k: dict(v) for k, v in settings.bands.items()})


def monitor_thresholds(settings: Settings) -> MonitorThresholds:
    """Size and evidence thresholds of every monitoring check (section ``monitoring.thresholds``)."""
    return MonitorThresholds.from_dict(settings.monitoring.thresholds)
