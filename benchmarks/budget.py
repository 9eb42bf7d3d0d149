"""The budget production trains with: ``configs/default.yaml`` (or a config file) through ``pipelines.model_config``.

Benchmarks measure what production runs; a comparison budget is this one with named changes (``dataclasses.replace``).
"""
from __future__ import annotations

from pathlib import Path


def production(config_file: str | Path | None = None):
    """(LightGBMParams, EvaluationSettings) of the packaged configuration, or of ``config_file`` overlaid on it."""
    from pipelines.config import load_settings
    from pipelines.model_config import evaluation_settings, lightgbm_params

    settings = load_settings(config_file, env={})
    return lightgbm_params(settings), evaluation_settings(settings)
