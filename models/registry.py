"""MLflow tracking and model registry for crmscore: the only module of the project that imports mlflow.

One training run of a task becomes one MLflow run (params, held-out/baseline/slice metrics, feature list
with readable labels, task spec, cutoffs, extract fingerprint, data-contract result, plots, model card)
and one version of the registered model ``crmscore-<task>``. The model is the ``Predictor`` folder of
:func:`models.predictor.save_predictor` (LightGBM model text + JSON, with a format version; no pickle),
logged as the artifact of an MLflow pyfunc "model from code"; the project reads that folder back with
:func:`models.predictor.load_predictor`, which refuses another format version. Serving uses the
``champion`` alias (``models:/crmscore-churn@champion``); a candidate that fails the gate gets
``challenger``. Stages are not used (deprecated in MLflow 3).

Idempotent logging: ``log_training_run(..., candidate_id=...)`` tags the run and the version with the id;
called again with the same id (a retried task) it returns the version already registered instead of
creating a second one.

Nothing happens at import time: mlflow is imported on first use (after ``MLFLOW_DISABLE_TELEMETRY`` has a
default, because mlflow starts its telemetry client at import), and the process-wide MLflow tracking and
registry URIs are only set for the duration of a call and then restored, so two ``Registry`` objects on
different stores can coexist. No folder is used unless passed in: every experiment gets an explicit
``artifact_location`` (MLflow's default would write ``./mlruns`` into the current folder).

Concurrency: creating a **fresh** SQLite tracking DB from several processes at once can corrupt it.
Construct one ``Registry`` (which creates the DB and the experiment) before fanning out parallel work.
"""
from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import date, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from models.errors import ModelError, ModelSignatureMismatch, NoChampionError
from models.evaluate import slices_long
from models.predictor import Predictor, load_predictor, save_predictor

log = logging.getLogger(__name__)

CHAMPION = "champion"
CHALLENGER = "challenger"
MODEL_NAME = "model"
_PREDICTOR_ARTIFACT = "predictor"
CANDIDATE_TAG = "crmscore.candidate_id"
_REFERENCE_DIR, _REFERENCE_FILE = "monitoring", "reference.json"
CODE_VERSION_TAG = "crmscore.code_version"
HELD_OUT_ARTIFACT = "held_out.parquet"
_PIP_PACKAGES = ("mlflow", "lightgbm", "pandas", "numpy", "scikit-learn", "pyarrow")
# The pyfunc is an MLflow "model from code": this source is logged as a file beside the predictor folder,
# so the MLflow model holds no pickle either. Only `mlflow models serve`-style callers run it.
_PYFUNC_CODE = '''"""crmscore pyfunc: scores with the predictor folder logged beside this file (models.predictor)."""
import mlflow
import numpy as np


class CrmscorePyfunc(mlflow.pyfunc.PythonModel):
    _skip_type_hint_validation = True

    def load_context(self, context):
        from models.predictor import load_predictor

        self.predictor = load_predictor(context.artifacts["predictor"])

    def predict(self, context, model_input, params=None):
        return np.asarray(self.predictor.predict(model_input), dtype=float)


mlflow.models.set_model(CrmscorePyfunc())
'''
_METRIC_KEY_BAD = re.compile(r"[^A-Za-z0-9_\-. /]")
# The process-wide MLflow URIs are swapped per call; serialise the swaps between threads.
_URI_LOCK = threading.RLock()


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What one ``log_training_run`` produced."""

    run_id: str
    version: int
    registered_model: str
    model_uri: str
    experiment_id: str
    seconds: float


@dataclasses.dataclass(frozen=True)
class ChampionInfo:
    """The version currently serving a task (alias ``champion``) and its held-out metrics from training."""

    task: str
    version: int
    run_id: str
    metrics: dict[str, float]


@dataclasses.dataclass(frozen=True)
class VersionInfo:
    """One registered version of a task's model, as listed by :meth:`Registry.history`."""

    version: int
    run_id: str
    aliases: tuple[str, ...]
    metrics: dict[str, float]
    tags: dict[str, str]
    created_ts: pd.Timestamp


@dataclasses.dataclass(frozen=True)
class VersionRecord:
    """What the registry holds about one version, for auditors (:meth:`Registry.version_record`).

    ``documents`` are the run's JSON files by stem (``metrics``, ``cutoffs``, ``extract_fingerprint``,
    ``contract_result``, ``task_spec``, ``importance``...), ``texts`` its Markdown files (``model_card.md``),
    ``held_out`` the held-out rows (``y``, ``score``, ``baseline_*``), ``slices`` the slice metrics (long form),
    ``plots`` the PNGs logged under ``plots/`` by stem.
    """

    task: str
    version: int
    run_id: str
    run_name: str
    run_start: pd.Timestamp
    version_tags: dict[str, str]
    run_tags: dict[str, str]
    params: dict[str, str]
    documents: dict[str, Any]
    texts: dict[str, str]
    held_out: pd.DataFrame | None
    slices: pd.DataFrame | None
    plots: dict[str, bytes]


def registered_model_name(task: str) -> str:
    """Registered model name of a task: ``crmscore-<task>``."""
    return f"crmscore-{task}"


def _mlflow() -> Any:
    """Import mlflow on first use, after giving the no-calls-out settings a default."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    return mlflow


def _json_default(obj: Any) -> Any:
    if isinstance(obj, pd.Timestamp | datetime | date):
        return obj.isoformat()
    if isinstance(obj, pd.Timedelta):
        return obj.isoformat()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, set | frozenset | tuple):
        return sorted(obj, key=str) if isinstance(obj, set | frozenset) else list(obj)
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, enum.Enum):
        return obj.value
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    if callable(obj):
        return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"
    return str(obj)


def _dumps(obj: Any) -> str:
    return json.dumps(obj, default=_json_default, indent=2, sort_keys=False)


def _spec_dict(spec: Any) -> dict[str, Any]:
    if hasattr(spec, "to_dict"):  # a TaskSpec: its derived fields (entity, eligibility) included
        return spec.to_dict()
    if dataclasses.is_dataclass(spec) and not isinstance(spec, type):
        return dataclasses.asdict(spec)
    return dict(vars(spec))


def _metric_key(*parts: Any) -> str:
    return ".".join(_METRIC_KEY_BAD.sub("_", str(p)) for p in parts)


def _pip_requirements() -> list[str]:
    reqs = []
    for pkg in _PIP_PACKAGES:
        try:
            reqs.append(f"{pkg}=={metadata.version(pkg)}")
        except metadata.PackageNotFoundError:
            continue
    return reqs


def _is_not_found(exc: Exception) -> bool:
    """A missing registered model, version or alias (MLflow reports a missing alias as an invalid parameter)."""
    code = getattr(exc, "error_code", "")
    return code == "RESOURCE_DOES_NOT_EXIST" or (code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc))


def _window(cutoffs: Sequence[Any]) -> tuple[str, str]:
    stamps = sorted(pd.Timestamp(c) for c in cutoffs)
    return (stamps[0].isoformat(), stamps[-1].isoformat()) if stamps else ("", "")


class Registry:
    """Tracking and registry of crmscore models on one MLflow store.

    Parameters
    ----------
    tracking_uri
        MLflow tracking (and registry) URI, e.g. ``sqlite:////abs/.crmscore/mlflow.db``; the folder of a
        SQLite file is created.
    artifact_root
        Folder under which the experiment's artifacts are stored (``<artifact_root>/<experiment>``).
    experiment
        Experiment name (config key ``registry.experiment``).

    Notes
    -----
    Construction creates the store's tables (first use of a SQLite file) and the experiment. Do it once
    in the parent before parallel runs write to the same fresh store.
    """

    def __init__(self, tracking_uri: str, artifact_root: str | Path, experiment: str = "crmscore") -> None:
        self.tracking_uri = str(tracking_uri)
        self.artifact_root = Path(artifact_root).expanduser().resolve()
        self.experiment = experiment
        if self.tracking_uri.startswith("sqlite:///"):
            db_path = Path(self.tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
            if str(db_path) not in ("", ":memory:"):
                db_path.parent.mkdir(parents=True, exist_ok=True)
        self.artifact_root.mkdir(parents=True, exist_ok=True)
        mlflow = _mlflow()
        self._client = mlflow.MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        self.experiment_id = self._ensure_experiment()

    @classmethod
    def open_existing(cls, tracking_uri: str, artifact_root: str | Path, experiment: str = "crmscore") -> Registry | None:
        """The registry at ``tracking_uri`` for reading only, or None when there is none yet.

        Unlike the constructor it creates nothing: no SQLite file, no artifact folder, no experiment (a report or an
        explanation must not leave a store behind where there was none).
        """
        tracking_uri = str(tracking_uri)
        if tracking_uri.startswith("sqlite:///"):
            db_path = Path(tracking_uri.removeprefix("sqlite:///").split("?", 1)[0])
            if str(db_path) in ("", ":memory:") or not db_path.is_file():
                return None
        mlflow = _mlflow()
        self = cls.__new__(cls)
        self.tracking_uri = tracking_uri
        self.artifact_root = Path(artifact_root).expanduser().resolve()
        self.experiment = experiment
        self._client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
        existing = self._client.get_experiment_by_name(experiment)
        if existing is None or existing.lifecycle_stage != "active":
            return None
        self.experiment_id = existing.experiment_id
        return self

    def version_record(self, task: str, version: int) -> VersionRecord:
        """What training stored for one version: run documents, held-out rows, plots, tags (for the report).

        A document the version lacks (a version logged before it existed) is simply absent from the record.
        """
        mv = self._client.get_model_version(registered_model_name(task), str(int(version)))
        run = self._client.get_run(mv.run_id)
        documents: dict[str, Any] = {}
        texts: dict[str, str] = {}
        held_out = None
        slices = None
        plots: dict[str, bytes] = {}
        with tempfile.TemporaryDirectory(prefix="crmscore-read-") as tmp:
            # one download of the run's artifacts (the documents, the held-out rows and the plots; the model itself
            # is a logged model stored apart): per-file downloads cost a third of a second each
            root = Path(self._client.download_artifacts(mv.run_id, "", tmp))
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                name = path.relative_to(root).as_posix()
                if name.endswith(".json") and "/" not in name:
                    documents[name.removesuffix(".json")] = json.loads(path.read_text(encoding="utf-8"))
                elif name.endswith(".md") and "/" not in name:
                    texts[name] = path.read_text(encoding="utf-8")
                elif name == HELD_OUT_ARTIFACT:
                    held_out = pd.read_parquet(path)
                elif name == "slice_metrics.csv":
                    slices = pd.read_csv(path, dtype={"slice_value": "str"})
                elif name.startswith("plots/") and name.endswith(".png"):
                    plots[path.stem] = path.read_bytes()
        return VersionRecord(task=task, version=int(version), run_id=mv.run_id, run_name=run.info.run_name or "",
                             run_start=pd.Timestamp(run.info.start_time, unit="ms", tz="UTC"),
                             version_tags=dict(mv.tags or {}), run_tags=dict(run.data.tags or {}),
                             params=dict(run.data.params or {}), documents=documents, texts=texts,
                             held_out=held_out, slices=slices, plots=plots)

    # ----------------------------------------------------------------- plumbing
    @contextlib.contextmanager
    def _scoped(self) -> Iterator[Any]:
        """Point MLflow's process-wide tracking/registry URIs at this store for the duration of a call.

        ``mlflow.pyfunc.log_model``/``load_model`` and ``models:/`` URIs resolve through those globals;
        the previous values (usually unset) are restored afterwards.
        """
        mlflow = _mlflow()
        from mlflow.tracking._model_registry import utils as registry_utils
        from mlflow.tracking._tracking_service import utils as tracking_utils

        with _URI_LOCK:
            old_tracking = tracking_utils._tracking_uri
            old_registry = registry_utils._registry_uri
            old_env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
            mlflow.set_tracking_uri(self.tracking_uri)
            mlflow.set_registry_uri(self.tracking_uri)
            try:
                yield mlflow
            finally:
                tracking_utils._tracking_uri = old_tracking
                registry_utils._registry_uri = old_registry
                for key, value in old_env.items():
                    if value is None:
                        os.environ.pop(key, None)
                    else:
                        os.environ[key] = value

    def _ensure_experiment(self) -> str:
        location = (self.artifact_root / self.experiment).as_uri()
        existing = self._client.get_experiment_by_name(self.experiment)
        if existing is None:
            try:
                return self._client.create_experiment(self.experiment, artifact_location=location)
            except Exception as exc:  # another process created it between the two calls
                existing = self._client.get_experiment_by_name(self.experiment)
                if existing is None:
                    raise ModelError(
                        f"Could not create MLflow experiment {self.experiment!r} at {self.tracking_uri}: {exc}"
                    ) from exc
        if existing.lifecycle_stage != "active":
            raise ModelError(
                f"MLflow experiment {self.experiment!r} at {self.tracking_uri} is deleted; restore it "
                "(mlflow experiments restore) or configure another registry.experiment name."
            )
        if existing.artifact_location.rstrip("/") != location.rstrip("/"):
            log.warning("MLflow experiment %r keeps its artifacts at %s, not at %s (created earlier).",
                        self.experiment, existing.artifact_location, location)
        return existing.experiment_id

    def _ensure_registered_model(self, name: str, task: str) -> None:
        try:
            self._client.get_registered_model(name)
            return
        except Exception as exc:
            if not _is_not_found(exc):
                raise
        try:
            self._client.create_registered_model(
                name, tags={"crmscore.task": task},
                description=f"crmscore {task} model; serving version = alias 'champion'.")
        except Exception as exc:  # created by a concurrent run in the meantime
            if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                raise

    def _version_by_alias(self, task: str, alias: str) -> Any | None:
        try:
            return self._client.get_model_version_by_alias(registered_model_name(task), alias)
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise

    def _run_metrics(self, run_id: str) -> dict[str, float]:
        """Held-out metrics of a run: the keys without a namespace (baselines/slices carry a dot)."""
        metrics = self._client.get_run(run_id).data.metrics
        return {k: float(v) for k, v in metrics.items() if "." not in k}

    # ----------------------------------------------------------------- logging
    def log_training_run(
        self,
        predictor: Predictor,
        report: Any,
        spec: Any,
        *,
        extract_fingerprint: Mapping[str, Any],
        contract_result: Mapping[str, Any],
        cutoffs: Mapping[str, Any],
        feature_labels: Mapping[str, str],
        plots: Mapping[str, Path],
        card_md: str,
        run_name: str | None = None,
        input_example: pd.DataFrame | None = None,
        tags: Mapping[str, str] | None = None,
        candidate_id: str | None = None,
        reference: Mapping[str, Any] | None = None,
        importance: Sequence[tuple[str, str, float]] = (),
        intervals: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> RunInfo:
        """Log one trained model as an MLflow run and register it as a new version of ``crmscore-<task>``.

        Parameters
        ----------
        predictor
            The fitted ``models.predictor.Predictor``: saved with ``save_predictor`` as the model artifact.
        report
            The ``models.train.TrainingReport`` (params, best_iteration, cutoffs, metrics, baselines, slices):
            logged as params, metrics and documents.
        spec
            The task spec (frozen dataclass); logged as ``task_spec.json`` via ``dataclasses.asdict``.
        extract_fingerprint
            Fingerprint of the CRM extract (row counts, hashes, contract versions) -> ``extract_fingerprint.json``.
        contract_result
            Summary of the data-contract validation -> ``contract_result.json``.
        cutoffs
            Cutoffs and windows used (e.g. ``{"train": [...], "valid": [...], "test": [...], "horizon_days": 90}``)
            -> ``cutoffs.json``; the first/last cutoff of each split are also params.
        feature_labels
            Feature column -> readable label; ``features.json`` lists name, label, family, kind, unit.
        plots
            Plot name -> PNG path, logged under ``plots/``.
        card_md
            Model card Markdown -> ``model_card.md``.
        run_name
            MLflow run name.
        input_example
            A few feature rows for the pyfunc input example (numeric columns are cast to float, categorical
            to str). Default: one row of missing values.
        tags
            Extra run tags.
        candidate_id
            Idempotency key of this candidate, computed once by the caller (e.g. a uuid): stored as the
            ``crmscore.candidate_id`` tag of the run and the version. When a version with this id is already
            registered (a retry after a failure that came after the version was created), that version is
            returned and no second one is created. Without it, every call registers a new version.
        reference
            The monitoring reference of this candidate (``models.monitoring.ModelReference.to_dict()``): logged,
            once the version is known, as ``monitoring/reference.json`` with ``model_version`` set to it (a retry
            logs it if the first call stopped before). Read back with :meth:`load_reference`.
        importance
            ``(feature, readable label, mean |SHAP|)`` of the global drivers -> ``importance.json`` (the report).
        intervals
            ``{"level", "draws", "estimates": {"model" or a baseline: {metric: {"value", "low", "high"}}}}``, the
            held-out metrics with their confidence intervals -> ``intervals.json`` (the report).

        The held-out outcomes and scores of ``report.evaluation_frame`` (``y``, ``score`` and the baselines' scores,
        no record ids) are logged as ``held_out.parquet``, so the report can draw the calibration curve and lift chart
        and compute metric intervals from what is stored.

        Returns
        -------
        RunInfo
            Run id, registered version (int), model URI and the seconds the call took.
        """
        start = time.perf_counter()
        mlflow = _mlflow()
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.models import Model

        task = predictor.task
        name = registered_model_name(task)
        if candidate_id is not None:
            done = self._candidate_version(task, candidate_id)
            if done is not None:
                # A retry of a call that registered the version and failed afterwards: finish the run, reuse it.
                if reference is not None and not self._has_reference(done.run_id):
                    self._log_reference(done.run_id, reference, int(done.version))
                if self._client.get_run(done.run_id).info.status != "FINISHED":
                    self._client.set_terminated(done.run_id, "FINISHED")
                log.info("Candidate %s of %s is already registered as version %s; not registering it again.",
                         candidate_id, name, done.version)
                return RunInfo(run_id=done.run_id, version=int(done.version), registered_model=name,
                               model_uri=f"models:/{name}/{int(done.version)}", experiment_id=self.experiment_id,
                               seconds=time.perf_counter() - start)
        candidate_tags = {CANDIDATE_TAG: candidate_id} if candidate_id is not None else {}
        feature_names = list(predictor.feature_names)
        now_ms = int(time.time() * 1000)

        params: dict[str, Any] = {f"lgb.{k}": v for k, v in dict(report.params).items()}
        params.update({
            "task": task,
            "best_iteration": report.best_iteration,
            "n_features": len(feature_names),
            "n_train_cutoffs": len(report.train_cutoffs),
            "n_valid_cutoffs": len(report.valid_cutoffs),
            "n_test_cutoffs": len(report.test_cutoffs),
        })
        for split, values in (("train", report.train_cutoffs), ("valid", report.valid_cutoffs),
                              ("test", report.test_cutoffs)):
            first, last = _window(values)
            params[f"{split}_first_cutoff"], params[f"{split}_last_cutoff"] = first, last
        for key in ("horizon_days", "data_window_start", "data_window_end"):
            if key in cutoffs:
                params[key] = _json_default(cutoffs[key]) if not isinstance(cutoffs[key], int | float) else cutoffs[key]

        metrics: dict[str, float] = {_metric_key(k): float(v) for k, v in report.metrics.items()}
        for baseline, values in report.baseline_metrics.items():
            metrics.update({_metric_key("baseline", baseline, k): float(v) for k, v in values.items()})
        sm = slices_long(report.slice_metrics)
        if sm is not None and len(sm):
            for row in sm.itertuples(index=False):
                metrics[_metric_key("slice", row.slice_column, row.slice_value, row.metric)] = float(row.value)
                metrics[_metric_key("slice", row.slice_column, row.slice_value, "n")] = float(row.n)

        features = []
        for col in feature_names:
            info = predictor.catalog.get(col)
            features.append({
                "name": col,
                "label": feature_labels.get(col, getattr(info, "label", col)),
                "family": getattr(info, "family", None),
                "kind": getattr(info, "kind", None),
                "unit": getattr(info, "unit", None),
            })

        run = self._client.create_run(
            self.experiment_id,
            run_name=run_name,
            tags={"crmscore.task": task, "crmscore.registered_model": name, **dict(tags or {}), **candidate_tags},
        )
        run_id = run.info.run_id
        try:
            param_list = [Param(k, str(v)[:6000]) for k, v in params.items()]
            metric_list = [Metric(k, v, now_ms, 0) for k, v in metrics.items()]
            for i in range(0, len(param_list), 100):
                self._client.log_batch(run_id, params=param_list[i:i + 100])
            for i in range(0, len(metric_list), 1000):
                self._client.log_batch(run_id, metrics=metric_list[i:i + 1000])
            self._client.log_batch(run_id, tags=[RunTag("crmscore.primary_metric",
                                                        str(getattr(spec, "primary_metric", "")))])

            with tempfile.TemporaryDirectory(prefix="crmscore-run-") as tmp:
                staging = Path(tmp) / "run"
                staging.mkdir()
                documents = {
                    "task_spec.json": _dumps(_spec_dict(spec)),
                    "features.json": _dumps(features),
                    "cutoffs.json": _dumps({
                        **dict(cutoffs),
                        "train_cutoffs": list(report.train_cutoffs),
                        "valid_cutoffs": list(report.valid_cutoffs),
                        "test_cutoffs": list(report.test_cutoffs),
                    }),
                    "extract_fingerprint.json": _dumps(dict(extract_fingerprint)),
                    "contract_result.json": _dumps(dict(contract_result)),
                    "metrics.json": _dumps({"held_out": dict(report.metrics),
                                            "baselines": dict(report.baseline_metrics)}),
                    "model_card.md": card_md,
                }
                documents["intervals.json"] = _dumps(dict(intervals or {}))
                documents["importance.json"] = _dumps([{"feature": f, "label": label, "mean_abs_shap": float(v)}
                                                       for f, label, v in importance])
                for filename, text in documents.items():
                    (staging / filename).write_text(text, encoding="utf-8")
                ev = report.evaluation_frame
                keep = [c for c in ev.columns if c in ("y", "score") or str(c).startswith("baseline_")]
                ev[keep].reset_index(drop=True).to_parquet(staging / HELD_OUT_ARTIFACT, index=False)
                if sm is not None and len(sm):
                    sm.to_csv(staging / "slice_metrics.csv", index=False)
                self._client.log_artifacts(run_id, str(staging))
                for plot_name, plot_path in plots.items():
                    plot_path = Path(plot_path)
                    if not plot_path.is_file():
                        raise ModelError(f"Plot {plot_name!r} was not written: {plot_path} does not exist.")
                    self._client.log_artifact(run_id, str(plot_path), "plots")

                predictor_dir = save_predictor(predictor, Path(tmp) / _PREDICTOR_ARTIFACT)
                code_path = Path(tmp) / "crmscore_pyfunc.py"
                code_path.write_text(_PYFUNC_CODE, encoding="utf-8")
                signature = self._signature(predictor)
                example = self._input_example(predictor, input_example)
                # The logged model must be created in our experiment explicitly: left to MLflow it lands
                # in the default experiment "0", whose artifacts go to ./mlruns in the current folder.
                logged = self._client.create_logged_model(
                    experiment_id=self.experiment_id,
                    name=MODEL_NAME,
                    source_run_id=run_id,
                    params={k: str(v)[:6000] for k, v in params.items()},
                    tags={"crmscore.task": task},
                )
                with self._scoped(), _quiet_mlflow():
                    info = Model.log(
                        model_id=logged.model_id,
                        artifact_path=None,
                        name=MODEL_NAME,
                        flavor=mlflow.pyfunc,
                        run_id=run_id,
                        python_model=str(code_path),
                        artifacts={_PREDICTOR_ARTIFACT: str(predictor_dir)},
                        pip_requirements=_pip_requirements(),
                        signature=signature,
                        input_example=example,
                    )
            # Registered here rather than through log_model(registered_model_name=...), which prints to stderr.
            # Scoped: the client resolves a ``models:/m-...`` source through the process-wide tracking URI.
            self._ensure_registered_model(name, task)
            with self._scoped():
                mv = self._client.create_model_version(
                    name, source=info.model_uri, run_id=run_id, model_id=logged.model_id, await_creation_for=0,
                    tags={"run_id": run_id, "n_features": str(len(feature_names)),
                          "primary_metric": str(getattr(spec, "primary_metric", "")), **candidate_tags},
                )
            version = int(mv.version)
            if reference is not None:
                self._log_reference(run_id, reference, version)
            self._client.set_terminated(run_id, "FINISHED")
        except BaseException:
            self._client.set_terminated(run_id, "FAILED")
            raise
        return RunInfo(run_id=run_id, version=version, registered_model=name, model_uri=f"models:/{name}/{version}",
                       experiment_id=self.experiment_id, seconds=time.perf_counter() - start)

    def _log_reference(self, run_id: str, reference: Mapping[str, Any], version: int) -> None:
        with tempfile.TemporaryDirectory(prefix="crmscore-ref-") as tmp:
            path = Path(tmp) / _REFERENCE_FILE
            path.write_text(_dumps({**dict(reference), "model_version": str(version)}), encoding="utf-8")
            self._client.log_artifact(run_id, str(path), _REFERENCE_DIR)

    def _has_reference(self, run_id: str) -> bool:
        return any(f.path == f"{_REFERENCE_DIR}/{_REFERENCE_FILE}" for f in self._client.list_artifacts(run_id,
                                                                                                       _REFERENCE_DIR))

    def load_reference(self, task: str, version: int) -> Any | None:
        """The monitoring reference (``models.monitoring.ModelReference``) logged with one version, or None for a
        version registered without one (before monitoring existed)."""
        from models.monitoring import ModelReference

        try:
            mv = self._client.get_model_version(registered_model_name(task), str(int(version)))
        except Exception as exc:
            if _is_not_found(exc):
                raise NoChampionError(f"version {version} of {registered_model_name(task)!r} is not in "
                                      f"{self.tracking_uri}; `crmscore train` registers versions") from exc
            raise
        if not mv.run_id or not self._has_reference(mv.run_id):
            return None
        with tempfile.TemporaryDirectory(prefix="crmscore-ref-") as tmp, self._scoped() as mlflow, _quiet_mlflow():
            local = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=f"{_REFERENCE_DIR}/"
                                                        f"{_REFERENCE_FILE}", dst_path=tmp)
            return ModelReference.from_dict(json.loads(Path(local).read_text(encoding="utf-8")))

    @staticmethod
    def _signature(model: Predictor) -> Any:
        """Signature from the catalog: categorical features as (optional) strings, the rest as doubles.

        pandas ``category`` columns break pyfunc signatures, so callers pass categoricals as strings and the
        ``Predictor`` maps them to its fixed vocabulary.
        """
        from mlflow.models import ModelSignature
        from mlflow.types import ColSpec, DataType, Schema, TensorSpec

        cols = []
        for col in model.feature_names:
            kind = getattr(model.catalog.get(col), "kind", "numeric")
            cols.append(ColSpec(DataType.string if kind == "categorical" else DataType.double, col, required=False))
        return ModelSignature(inputs=Schema(cols), outputs=Schema([TensorSpec(np.dtype("float64"), (-1,))]))

    @staticmethod
    def _input_example(model: Predictor, frame: pd.DataFrame | None) -> pd.DataFrame:
        names = list(model.feature_names)
        if frame is None:
            frame = pd.DataFrame({c: [np.nan] for c in names})
        missing = [c for c in names if c not in frame.columns]
        if missing:
            raise ModelError(f"input_example lacks feature columns {missing}; pass rows of the training features.")
        out = {}
        for col in names:
            kind = getattr(model.catalog.get(col), "kind", "numeric")
            values = frame[col].head(5)
            if kind == "categorical":
                out[col] = values.astype("str").where(values.notna(), None)
            else:
                out[col] = pd.to_numeric(values, errors="coerce").astype("float64")
        return pd.DataFrame(out)

    # ----------------------------------------------------------------- aliases and reading
    def set_alias(self, task: str, version: int, alias: str) -> None:
        """Point ``alias`` (``champion``/``challenger``) of ``crmscore-<task>`` at ``version`` (moves it if set)."""
        self._client.set_registered_model_alias(registered_model_name(task), alias, str(int(version)))

    def tag_version(self, task: str, version: int, tags: Mapping[str, str]) -> None:
        """Set tags on one model version (used by the gate to record its decision and reasons)."""
        for key, value in tags.items():
            self._client.set_model_version_tag(registered_model_name(task), str(int(version)), key, str(value)[:5000])

    def champion(self, task: str) -> ChampionInfo | None:
        """The version carrying the ``champion`` alias, with its held-out metrics; ``None`` if there is none."""
        mv = self._version_by_alias(task, CHAMPION)
        if mv is None:
            return None
        return ChampionInfo(task=task, version=int(mv.version), run_id=mv.run_id, metrics=self._run_metrics(mv.run_id))

    def _candidate_version(self, task: str, candidate_id: str) -> Any | None:
        """The registered version tagged with ``candidate_id``, or None (no such version, or no registered model)."""
        try:
            versions = self._client.search_model_versions(f"name = '{registered_model_name(task)}'")
        except Exception as exc:
            if _is_not_found(exc):
                return None
            raise
        found = [mv for mv in versions if (mv.tags or {}).get(CANDIDATE_TAG) == candidate_id]
        return min(found, key=lambda mv: int(mv.version)) if found else None

    def _load_predictor(self, task: str, version: int) -> Predictor:
        """Download version ``version``'s artifacts and read its predictor folder (no code of the artifact runs)."""
        uri = f"models:/{registered_model_name(task)}/{int(version)}"
        # Download into a folder we remove again: the Predictor is fully in memory once read.
        with tempfile.TemporaryDirectory(prefix="crmscore-load-") as tmp, self._scoped() as mlflow, _quiet_mlflow():
            try:
                local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=tmp))
            except Exception as exc:
                if _is_not_found(exc):
                    raise NoChampionError(f"version {version} of {registered_model_name(task)!r} is not in "
                                          f"{self.tracking_uri}") from exc
                raise
            flavor = mlflow.models.Model.load(str(local)).flavors.get("python_function", {})
            entry = (flavor.get("artifacts") or {}).get(_PREDICTOR_ARTIFACT) or {}
            # A version without a predictor artifact (the pickled models of earlier releases) is refused by
            # load_predictor as format version 0.
            folder = local / entry["path"] if "path" in entry else local / "artifacts" / _PREDICTOR_ARTIFACT
            return load_predictor(folder, source=uri)

    def load_model(self, task: str, alias: str = CHAMPION) -> tuple[Predictor, int]:
        """Load the ``Predictor`` behind ``models:/crmscore-<task>@<alias>``.

        Returns
        -------
        tuple[Predictor, int]
            The predictor and its version.

        Raises
        ------
        NoChampionError
            If no version carries the alias.
        ArtifactFormatError
            If that version was saved in another artifact format version (retrain to replace it).
        """
        mv = self._version_by_alias(task, alias)
        if mv is None:
            raise NoChampionError(
                f"No model of task {task!r} carries the alias {alias!r} in {self.tracking_uri} "
                f"(registered model {registered_model_name(task)!r}). Run `crmscore train --task {task}` first."
            )
        version = int(mv.version)
        return self._load_predictor(task, version), version

    def load_version(self, task: str, version: int) -> Predictor:
        """The ``Predictor`` of one registered version (for explaining a past score with the model that made it)."""
        return self._load_predictor(task, version)

    def load_champion(self, task: str, expected_features: Sequence[str]) -> tuple[Any, int]:
        """Load the champion of a task, refusing it if its features differ from the features at hand.

        Parameters
        ----------
        task
            Task name.
        expected_features
            Feature columns the scoring flow built (order does not matter: the model selects by name).

        Returns
        -------
        tuple[Predictor, int]

        Raises
        ------
        NoChampionError
            If the task has no champion yet.
        ModelSignatureMismatch
            If the champion was trained on other features (lists the missing and unexpected ones).
        """
        model, version = self.load_model(task, CHAMPION)
        trained = list(model.feature_names)
        expected = list(expected_features)
        missing = [f for f in trained if f not in set(expected)]
        unexpected = [f for f in expected if f not in set(trained)]
        if missing or unexpected:
            raise ModelSignatureMismatch(
                f"The champion of task {task!r} (version {version}) was trained on {len(trained)} features but "
                f"the features at hand have {len(expected)}: missing {missing or 'none'} (the model needs them), "
                f"unexpected {unexpected or 'none'} (the model has never seen them). The feature code changed "
                f"since that model was trained: retrain with `crmscore train --task {task}` (the gate then "
                "registers a new champion), or score with the code version that trained it."
            )
        return model, version

    def history(self, task: str) -> list[VersionInfo]:
        """All registered versions of a task, newest first, with aliases, held-out metrics and tags."""
        try:
            versions = self._client.search_model_versions(f"name = '{registered_model_name(task)}'")
        except Exception as exc:
            if _is_not_found(exc):
                return []
            raise
        if not versions:
            return []
        # search_model_versions does not fill in aliases; the registered model has the alias map.
        alias_map = self._client.get_registered_model(registered_model_name(task)).aliases or {}
        out = []
        for mv in versions:
            out.append(VersionInfo(
                version=int(mv.version),
                run_id=mv.run_id,
                aliases=tuple(sorted(a for a, v in alias_map.items() if int(v) == int(mv.version))),
                metrics=self._run_metrics(mv.run_id) if mv.run_id else {},
                tags=dict(mv.tags or {}),
                created_ts=pd.Timestamp(mv.creation_timestamp, unit="ms", tz="UTC"),
            ))
        return sorted(out, key=lambda v: v.version, reverse=True)


@contextlib.contextmanager
def _quiet_mlflow() -> Iterator[None]:
    """Silence MLflow's per-call chatter (type-hint hints, cloudpickle notes, registration INFO lines)."""
    import warnings

    logger = logging.getLogger("mlflow")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"mlflow\..*")
            warnings.filterwarnings("ignore", message=r".*type hint.*")
            yield
    finally:
        logger.setLevel(level)
