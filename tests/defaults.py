"""The packaged defaults (``configs/default.yaml``) as the model-layer objects production builds from them.

Tests that need a budget, evaluation settings or a gate start from what production runs and change only what
they are about: ``lightgbm_params(max_trees=120)``. There is no second set of defaults in the tests.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

from models.champion import GateConfig
from models.train import EvaluationSettings, LightGBMParams
from pipelines import model_config
from pipelines.config import Settings, load_settings


def settings() -> Settings:
    """The packaged configuration alone (no overlay, no environment)."""
    return load_settings(env={})


def lightgbm_params(**changes: Any) -> LightGBMParams:
    """The production budget and search, with ``changes`` applied."""
    return replace(model_config.lightgbm_params(settings()), **changes)


def evaluation_settings(**changes: Any) -> EvaluationSettings:
    """The production evaluation settings, with ``changes`` applied."""
    return replace(model_config.evaluation_settings(settings()), **changes)


def gate_config(primary_metric: str, **changes: Any) -> GateConfig:
    """The production gate for ``primary_metric``, with ``changes`` applied."""
    return replace(model_config.gate_config(settings(), primary_metric), **changes)


def band_thresholds(scheme: str) -> dict[str, float]:
    """The packaged cut-offs of one band scheme (config ``bands.<scheme>``)."""
    return dict(settings().bands[scheme])


def feature_options(**changes: Any):
    """The production feature windows and eligibility look-back, with ``changes`` applied."""
    return replace(model_config.feature_options(settings()), **changes)


def cutoff_options(**changes: Any):
    """The production training-cutoff layout, with ``changes`` applied."""
    return replace(model_config.cutoff_options(settings()), **changes)


def scoring_options(**changes: Any):
    """The production scoring options (bands included), with ``changes`` applied."""
    return replace(model_config.scoring_options(settings()), **changes)


def monitor_thresholds(**changes: Any):
    """The production monitoring thresholds, with ``changes`` applied."""
    return replace(model_config.monitor_thresholds(settings()), **changes)
