"""Configuration: ``configs/default.yaml`` parsed once at the edge into frozen, typed objects.

Order of precedence (later wins): the packaged default, ``--config FILE`` (a partial YAML overlay), environment variables
(``CRMSCORE_CRM_URL``, ``CRMSCORE_MLFLOW_URI``), explicit CLI options such as ``--crm``.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class ConfigError(Exception):
    """The configuration could not be read or is invalid."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CrmSettings(_Frozen):
    url: str | None = None


class MlflowSettings(_Frozen):
    tracking_uri: str | None = None
    artifact_root: str | None = None
    experiment: str = "crmscore"


class Eligibility(_Frozen):
    churn_lookback_days: int = Field(365, gt=0)


class Training(_Frozen):
    cutoff_count: int = Field(12, ge=2)
    cutoff_step_days: int = Field(30, gt=0)
    min_history_days: int = Field(90, ge=0)
    seed: int = 42


class FeatureSettings(_Frozen):
    windows_days: tuple[int, ...] = (30, 90, 365)

    @field_validator("windows_days")
    @classmethod
    def _positive_sorted(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or any(w <= 0 for w in v):
            raise ValueError("windows_days must be a non-empty list of positive day counts")
        return tuple(sorted(set(v)))


class SearchPoint(_Frozen):
    num_leaves: int = Field(gt=1)
    min_child_samples: int = Field(gt=0)
    learning_rate: float = Field(gt=0, le=1)
    feature_fraction: float = Field(gt=0, le=1)


class ModelSettings(_Frozen):
    """The LightGBM budget (bounds the cost of exact TreeSHAP at scoring) and the small search."""

    max_trees: int = Field(200, gt=0)
    max_leaves: int = Field(15, gt=1)
    max_depth: int = Field(6, ge=-1)
    max_total_leaves: int = Field(3000, gt=1)
    early_stopping_rounds: int = Field(30, gt=0)
    lambda_l2: float = Field(1.0, ge=0)
    bagging_fraction: float = Field(0.8, gt=0, le=1)
    tweedie_variance_power: float = Field(1.3, gt=1, lt=2)
    min_category_count: int = Field(20, gt=0)
    max_categories: int = Field(200, gt=0)
    n_jobs: int = Field(1, gt=0)
    search: tuple[SearchPoint, ...] | None = None  # null = the built-in search of models.train


class EvaluationConfig(_Frozen):
    calibration: str = "auto"
    ece_bins: int = Field(10, gt=1)
    slice_min_size: int = Field(200, gt=0)
    collapse_max_drop: float = Field(0.05, ge=0)
    purge_label_overlap: bool = False


class GateSettings(_Frozen):
    min_improvement: float = Field(0.002, ge=0)
    max_ece: float | None = 0.05
    min_ece_n: int = Field(500, ge=0)
    min_slice_n: int = Field(50, gt=0)


class ValidationSettings(_Frozen):
    max_volume_drop: float = Field(0.5, ge=0, le=1)
    data_docs: bool = True


class ScoringSettings(_Frozen):
    reasons_up: int = Field(3, ge=0)
    reasons_down: int = Field(1, ge=0)
    chunk_rows: int = Field(200_000, gt=0)
    threads: int = Field(0, ge=0)
    treeshap: Literal["pattern", "lightgbm"] = "pattern"
    lock_timeout_s: float = Field(60.0, gt=0)


class ScheduleSettings(_Frozen):
    cron: str = "0 2 * * *"
    timezone: str = "UTC"
    deployment: str = "nightly"


class DemoSettings(_Frozen):
    accounts: int = Field(5000, gt=0)
    leads: int = Field(5000, ge=0)
    seed: int = 7
    as_of: str = "2026-10-01"


class Settings(_Frozen):
    workdir: Path = Path(".crmscore")
    crm: CrmSettings = CrmSettings()
    mlflow: MlflowSettings = MlflowSettings()
    # task name -> label horizon in days; a task not named uses its registry default (models/tasks.py)
    horizons: Mapping[str, int] = Field(default_factory=dict)
    eligibility: Eligibility = Eligibility()
    training: Training = Training()
    features: FeatureSettings = FeatureSettings()
    model: ModelSettings = ModelSettings()
    evaluation: EvaluationConfig = EvaluationConfig()
    gate: GateSettings = GateSettings()
    validation: ValidationSettings = ValidationSettings()
    scoring: ScoringSettings = ScoringSettings()
    bands: dict[str, dict[str, float]] = Field(default_factory=dict)
    schedule: ScheduleSettings = ScheduleSettings()
    demo: DemoSettings = DemoSettings()

    @field_validator("horizons")
    @classmethod
    def _registered_positive_horizons(cls, v: Mapping[str, int]) -> Mapping[str, int]:
        from models.tasks import TASKS

        unknown = sorted(set(v) - set(TASKS))
        if unknown:
            raise ValueError(f"{unknown} are not registered tasks; name one of {sorted(TASKS)} (`crmscore tasks`)")
        bad = {k: d for k, d in v.items() if d <= 0}
        if bad:
            raise ValueError(f"horizons must be positive day counts, got {bad}")
        return MappingProxyType(dict(v))  # frozen like the rest of the settings

    @field_validator("workdir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        # resolved once, against the directory the command runs in, so every path below is absolute
        return Path(v).expanduser().resolve()

    # Resolved locations ------------------------------------------------------------------------------------------
    @property
    def crm_url(self) -> str:
        return self.crm.url or f"sqlite:///{(self.workdir / 'crm.db').resolve()}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or f"sqlite:///{(self.workdir / 'mlflow.db').resolve()}"

    @property
    def artifact_root(self) -> Path:
        return Path(self.mlflow.artifact_root) if self.mlflow.artifact_root else (self.workdir / "mlartifacts").resolve()

    @property
    def validation_dir(self) -> Path:
        return (self.workdir / "validation").resolve()

    @property
    def reports_dir(self) -> Path:
        return (self.workdir / "reports").resolve()


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping of settings at the top level, found {type(data).__name__}")
    return data


def load_settings(config_file: str | Path | None = None, *, crm: str | None = None,
                  env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None) -> Settings:
    """Build the frozen settings: packaged default, then ``config_file``, then environment, then explicit arguments."""
    env = os.environ if env is None else env
    data = _read_yaml(resources.files("configs").joinpath("default.yaml").read_text(), "configs/default.yaml")
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"--config {path}: no such file")
        data = _deep_merge(data, _read_yaml(path.read_text(), str(path)))
    if env.get("CRMSCORE_CRM_URL"):
        data = _deep_merge(data, {"crm": {"url": env["CRMSCORE_CRM_URL"]}})
    if env.get("CRMSCORE_MLFLOW_URI"):
        data = _deep_merge(data, {"mlflow": {"tracking_uri": env["CRMSCORE_MLFLOW_URI"]}})
    if crm:
        data = _deep_merge(data, {"crm": {"url": crm}})
    if overrides:
        data = _deep_merge(data, overrides)
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"invalid configuration: {problems}") from exc


def task_horizons(settings: Settings) -> dict[str, int]:
    """Label horizon (days) of every registered task: ``horizons.<task>`` of the config, else the registry's."""
    from models.tasks import TASKS, horizon_days

    return {name: horizon_days(spec, settings.horizons) for name, spec in TASKS.items()}


def generator_horizons(settings: Settings) -> dict[str, int]:
    """The horizons handed to the synthetic generator (``<task>_days`` keys; it simulates the tasks it knows)."""
    return {f"{name}_days": days for name, days in task_horizons(settings).items()}
