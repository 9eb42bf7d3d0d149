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

from models.metrics import comparable_metrics


class ConfigError(Exception):
    """The configuration could not be read or is invalid."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CrmSettings(_Frozen):
    url: str | None


class MlflowSettings(_Frozen):
    tracking_uri: str | None
    artifact_root: str | None
    experiment: str = Field(min_length=1)


class Eligibility(_Frozen):
    churn_lookback_days: int = Field(gt=0)


class Training(_Frozen):
    cutoff_count: int = Field(ge=2)
    lead_cutoff_count: int = Field(ge=2)
    cutoff_step_days: int = Field(gt=0)
    min_history_days: int = Field(ge=0)
    seed: int


class FeatureSettings(_Frozen):
    windows_days: tuple[int, ...]
    lead_decay_half_lives_days: tuple[int, ...]

    @field_validator("lead_decay_half_lives_days")
    @classmethod
    def _positive_half_lives(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(h <= 0 for h in v):
            raise ValueError("lead_decay_half_lives_days must be positive day counts (or an empty list)")
        return tuple(sorted(set(v)))

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
    """The LightGBM budget (bounds the cost of exact TreeSHAP at scoring) and the small search.

    No defaults here: ``configs/default.yaml`` holds every value (an overlay is merged onto it).
    """

    max_trees: int = Field(gt=0)
    max_leaves: int = Field(gt=1)
    max_depth: int = Field(ge=-1)
    max_total_leaves: int = Field(gt=1)
    early_stopping_rounds: int = Field(gt=0)
    lambda_l2: float = Field(ge=0)
    bagging_fraction: float = Field(gt=0, le=1)
    tweedie_variance_power: float = Field(gt=1, lt=2)
    min_category_count: int = Field(gt=0)
    max_categories: int = Field(gt=0)
    n_jobs: int = Field(gt=0)
    selection_standard_errors: float = Field(ge=0)
    search: tuple[SearchPoint, ...] = Field(min_length=1)


class EvaluationConfig(_Frozen):
    """Calibration, held-out evaluation and the baselines' inputs; values in ``configs/default.yaml``."""

    calibration: str  # checked against models.calibration.BINARY_METHODS when the settings are converted
    ece_bins: int = Field(gt=1)
    slice_min_size: int = Field(gt=0)
    collapse_min_n: int = Field(gt=0)
    logistic_min_frequency: int = Field(gt=0)
    purge_label_overlap: bool
    margin_per_year_column: str = Field(min_length=1)
    acquisition_cost_column: str = Field(min_length=1)
    max_years_active: float = Field(gt=0)
    total_anchor_column: str | None = Field(min_length=1)
    total_anchor_bias: str  # checked against models.calibration.ANCHOR_BIAS when the settings are converted


class GateSettings(_Frozen):
    """The champion gate; values in ``configs/default.yaml``."""

    min_improvement: float = Field(ge=0)
    max_ece: float | None = Field(ge=0)
    min_ece_n: int = Field(ge=0)
    min_primary: dict[str, float]
    max_total_error: float | None = Field(ge=0)

    @field_validator("min_primary")
    @classmethod
    def _known_metrics(cls, v: dict[str, float]) -> dict[str, float]:
        unknown = sorted(set(v) - set(comparable_metrics()))
        if unknown:
            raise ValueError(f"no quality metric called {unknown}; known: {comparable_metrics()}")
        return v


class ValidationSettings(_Frozen):
    max_volume_drop: float = Field(ge=0, le=1)
    data_docs: bool


class ScoringSettings(_Frozen):
    reasons_up: int = Field(ge=0)
    reasons_down: int = Field(ge=0)
    chunk_rows: int = Field(gt=0)
    threads: int = Field(ge=0)
    treeshap: Literal["pattern", "lightgbm"]
    check_rows: int = Field(ge=1)
    lock_timeout_s: float = Field(gt=0)


class MonitoringSettings(_Frozen):
    """Monitoring thresholds (checked by ``models.monitoring.MonitorThresholds``: exactly its fields, in range) and
    the sizes of the seeded simulations behind the reference's and the estimates' intervals; values in
    ``configs/default.yaml``."""

    thresholds: Mapping[str, float | int | str]
    reference_bootstrap: int = Field(gt=0)
    estimate_draws: int = Field(gt=0)
    record_grace_days: float = Field(ge=0)

    @field_validator("thresholds")
    @classmethod
    def _valid_thresholds(cls, v: Mapping[str, float | int | str]) -> Mapping[str, float | int | str]:
        from models.monitoring import MonitoringInputError, MonitorThresholds

        try:
            MonitorThresholds.from_dict(v)
        except MonitoringInputError as exc:
            raise ValueError(str(exc).removeprefix("monitoring thresholds").lstrip(": ").rstrip(".")) from None
        return MappingProxyType(dict(v))


class ReportSettings(_Frozen):
    list_rows: int = Field(gt=0)
    nightly: bool
    folder: str | None


class ScheduleSettings(_Frozen):
    cron: str = Field(min_length=1)
    timezone: str = Field(min_length=1)
    deployment: str = Field(min_length=1)


class DemoSettings(_Frozen):
    accounts: int = Field(gt=0)
    leads: int = Field(ge=0)
    seed: int
    as_of: str


class ComputeSettings(_Frozen):
    """Where feature building and scoring with reasons run (pipelines/cluster.py): in this process, on a local Dask
    cluster of worker processes, or on an existing cluster by scheduler address."""

    # "none" (this process), "local" (a LocalCluster on loopback), or a scheduler address such as tcp://host:8786
    cluster: str = Field(min_length=1)
    workers: int = Field(ge=1)
    threads_per_worker: int = Field(ge=1)
    memory_limit: str = Field(min_length=1)
    buckets: int = Field(ge=1)
    bucket_dir: str | None
    allowed_failures: int = Field(ge=0)

    @field_validator("cluster")
    @classmethod
    def _known_cluster(cls, v: str) -> str:
        if v not in ("none", "local") and "://" not in v:
            raise ValueError(f"cluster={v!r}: expected none, local or a scheduler address such as tcp://host:8786")
        return v


class Settings(_Frozen):
    """Every setting; no field has a default: ``configs/default.yaml`` is the one home of every default value."""

    workdir: Path
    crm: CrmSettings
    mlflow: MlflowSettings
    # task name -> label horizon in days; a task not named uses its registry default (models/tasks.py)
    horizons: Mapping[str, int]
    eligibility: Eligibility
    training: Training
    features: FeatureSettings
    model: ModelSettings
    evaluation: EvaluationConfig
    gate: GateSettings
    validation: ValidationSettings
    scoring: ScoringSettings
    monitoring: MonitoringSettings
    # band scheme -> its cut-offs (models/bands.py checks the keys and their order)
    bands: Mapping[str, Mapping[str, float]]
    report: ReportSettings
    compute: ComputeSettings
    schedule: ScheduleSettings
    demo: DemoSettings

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
    def bucket_dir(self) -> Path:
        return Path(self.compute.bucket_dir).resolve() if self.compute.bucket_dir else (self.workdir / "buckets").resolve()

    @property
    def reports_dir(self) -> Path:
        return Path(self.report.folder).expanduser().resolve() if self.report.folder else (self.workdir / "reports").resolve()


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else v
    return out


def _read_yaml(text: str, where: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where} is not valid YAML{at}: {problem}; fix it (configs/default.yaml shows the "
                          "shape)") from exc
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
            raise ConfigError(f"--config {path}: no such file; give the path of a YAML file of the shape of "
                              "configs/default.yaml (a partial one is fine)")
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
