"""Prefect flows: training and scoring.

The flows stay thin: each task is I/O or validation around one pure call (``models.dataset``, ``models.train``,
``models.scoring``); retries only on I/O tasks. Flow parameters are plain strings so that a deployment (the nightly
schedule) can carry them; the configuration is loaded inside the flow, once.

Both flows start with the quality gate: a failed error-severity contract rule raises ``ContractViolation`` before
anything is trained, registered or written back.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from crm.extract import read_tables, redact
from crm.privacy import usable_view
from data_contracts.gate import run_quality_gate
from data_contracts.validate import ValidationReport
from features.catalog import FeatureSet
from models.dataset import build_scoring_features, build_training_data, missing_tables
from models.errors import TrainingDataError
from models.tasks import TASKS, TaskSpec, check_registry, horizon_days, tasks_named
from pipelines.config import Settings, load_settings
from pipelines.model_config import cutoff_options, feature_options, scoring_options
from pipelines.scaleout import Buckets, Gathered, bucketed, score_buckets, scoring_features_of, training_data
from pipelines.runtime import quiet_great_expectations
from pipelines.timing import phase

#: Progress messages (INFO); silent unless the caller gives the ``crmscore`` logger a handler (the CLI does).
log = logging.getLogger("crmscore.flows")


# ---------------------------------------------------------------------------------------------------------------
# Shared tasks


@task(name="read-extract", retries=2, retry_delay_seconds=3, cache_policy=NO_CACHE)
def read_raw(location: str) -> dict[str, pd.DataFrame]:
    """Contract columns of every table, typed, deleted rows included (validation needs to see them)."""
    return read_tables(location, strict=False)


@task(name="validate-extract", cache_policy=NO_CACHE)
def validate(raw: Mapping[str, pd.DataFrame], settings: Settings, *, now: pd.Timestamp,
             as_of: pd.Timestamp) -> ValidationReport:
    """Run every contract; keep the result per run for auditors; raise ContractViolation on an error rule."""
    quiet_great_expectations()
    report, _ = run_quality_gate(raw, settings.workdir, now=now, as_of=as_of,
                                 max_volume_drop=settings.validation.max_volume_drop,
                                 data_docs=settings.validation.data_docs)
    report.raise_for_errors()
    return report


def usable_tables(raw: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """What models may see: erased records and records that objected to profiling removed, with their rows."""
    return usable_view(raw)


def _registry(settings: Settings):
    from models.registry import Registry

    return Registry(settings.tracking_uri, settings.artifact_root, settings.mlflow.experiment)


def _tasks_to_run(models: str | None) -> list[TaskSpec]:
    """The tasks a flow runs (all registered ones by default), after the registry's cross-entry rules."""
    check_registry(TASKS)
    return tasks_named(models)


def _as_of(as_of: str | None, now: pd.Timestamp) -> pd.Timestamp:
    if as_of is None:
        return now
    ts = pd.Timestamp(as_of)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _gated_extract(config_file: str | None, crm: str | None, as_of: str | None, now: str | None):
    """The common start of every flow: settings, the extract read and validated, the privacy view of it.

    Returns (settings, as_of, validation report, tables models may see, the raw tables). Raises ContractViolation
    first.
    """
    settings = load_settings(config_file, crm=crm)
    now_ts = _as_of(now, pd.Timestamp.now(tz="UTC").floor("s"))
    as_of_ts = _as_of(as_of, now_ts)
    log.info(f"Reading the extract at {redact(settings.crm_url)}")
    with phase("read", log):
        raw = read_raw(settings.crm_url)
    log.info("Validating it against the data contracts")
    with phase("validate", log):
        report = validate(raw, settings, now=now_ts, as_of=as_of_ts)
    with phase("privacy view", log):
        tables = usable_tables(raw)
    return settings, as_of_ts, report, tables, raw


# ---------------------------------------------------------------------------------------------------------------
# Training


@dataclass
class TrainOutcome:
    task: str
    status: str  # "champion", "challenger", "skipped"
    message: str
    version: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    baseline_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    run_id: str | None = None


@dataclass
class TrainSummary:
    as_of: str
    fingerprint: str
    outcomes: list[TrainOutcome]
    tracking_uri: str


@task(name="train-model", cache_policy=NO_CACHE)
def train_one(spec: TaskSpec, tables: Mapping[str, pd.DataFrame], settings: Settings, as_of: pd.Timestamp,
              buckets: Buckets | None = None):
    """Build the multi-cutoff training set and train, calibrate and evaluate one task (pure calls).

    With ``buckets`` the training set is built bucket by bucket on the cluster (the identical set); training itself
    runs here. Returns (model, data, None), or (None, None, reason) when the extract holds too little for this task
    (too few cutoffs, rows or positives to train or to judge it): the task is skipped before anything is registered.
    """
    from models.train import train_task
    from pipelines.model_config import evaluation_settings, lightgbm_params

    build = build_training_data if buckets is None else partial(training_data, buckets)
    try:
        data = build(
            tables, spec, as_of=as_of, horizon_days=horizon_days(spec, settings.horizons),
            cutoffs=cutoff_options(settings), options=feature_options(settings))
        model = train_task(spec, data, lightgbm_params(settings), seed=settings.training.seed,
                           settings=evaluation_settings(settings))
    except TrainingDataError as exc:
        return None, None, str(exc)
    return model, data, None


def _held_out(model, data) -> tuple[pd.DataFrame, np.ndarray]:
    mask = data.frame["cutoff_ts"].isin(list(model.report.test_cutoffs)).to_numpy()
    return data.frame.loc[mask], np.asarray(data.label.to_numpy()[mask], dtype=float)


def _champion_metrics_on(registry, spec: TaskSpec, frame: pd.DataFrame, y: np.ndarray,
                         settings: Settings) -> tuple[dict[str, float] | None, str]:
    """The current champion scored on the candidate's held-out rows (the same data), or None if none/incompatible."""
    from models.errors import ArtifactFormatError, ModelSignatureMismatch, NoChampionError
    from models.evaluate import task_metrics

    if registry.champion(spec.name) is None:
        return None, "no champion yet"
    try:
        champ, version = registry.load_champion(spec.name, expected_features=[c for c in frame.columns
                                                                               if c not in ("entity_id", "cutoff_ts")])
    except NoChampionError:
        return None, "no champion yet"
    except ModelSignatureMismatch as exc:
        return None, f"the champion's features differ from today's ({exc}); it cannot be compared"
    except ArtifactFormatError as exc:
        return None, f"the champion was saved in another artifact format ({exc}); it cannot be compared"
    pred = champ.predict(frame)
    return task_metrics(spec.kind, y, pred, ece_bins=settings.evaluation.ece_bins), f"champion v{version}"


def _artifacts(model, data, spec: TaskSpec, folder: Path) -> tuple[dict[str, Path], list[tuple[str, str, float]],
                                                                   dict[str, float]]:
    """Calibration curve, lift chart and SHAP summary on the held-out fold; the global drivers for the card and the
    report, and the mean |SHAP| of every feature (the monitoring reference's importance)."""
    from models.plots import calibration_curve_plot, lift_chart, shap_summary_plot

    ev = model.report.evaluation_frame
    predictor = model.predictor
    plots: dict[str, Path] = {}
    if spec.kind == "binary":
        plots["calibration_curve"] = calibration_curve_plot(ev["y"], ev["score"], folder / "calibration.png")
    plots["lift_chart"] = lift_chart(ev["y"], ev["score"], folder / "lift.png")
    frame, _ = _held_out(model, data)
    sample = frame.sample(n=min(len(frame), 2000), random_state=0) if len(frame) else frame
    contrib = predictor.contributions(sample)[:, :-1]
    labels = [predictor.catalog[c].label for c in predictor.feature_names]
    plots["shap_summary"] = shap_summary_plot(contrib, sample[list(predictor.feature_names)], labels,
                                              folder / "shap_summary.png")
    mean_abs = np.abs(contrib).mean(axis=0)
    order = np.argsort(-mean_abs)[:10]
    names = list(predictor.feature_names)
    drivers = [(names[i], labels[i], float(mean_abs[i])) for i in order]
    return plots, drivers, {c: float(v) for c, v in zip(predictor.feature_names, mean_abs)}
def _reference(model, data, spec: TaskSpec, settings: Settings, importance: Mapping[str, float],
               population: FeatureSet, as_of: pd.Timestamp) -> dict:
    """The monitoring reference of a candidate; the registry sets its version when it registers it.

    Drift part: ``population``, the features of the population the model will score, built by the scoring path at
    the training ``as_of``, with the candidate's scores and bands of those rows. Performance part: the held-out
    cutoff's calibrated scores and outcomes. (A drift reference from the held-out cutoff is a horizon older than
    the model, so calendar-time features drift against it on a stationary world.) With nobody eligible at
    ``as_of`` the held-out cutoff's features stand in.
    """
    from models.bands import assign_bands, percentiles
    from models.monitoring import build_reference

    held_out, y = _held_out(model, data)
    scores = model.report.evaluation_frame["score"].to_numpy(dtype=float)
    frame, ref_as_of = population.frame, as_of
    if frame.empty:
        frame, ref_as_of = held_out, pd.Timestamp(model.report.test_cutoffs[-1])
    current = scores if frame is held_out else model.predictor.predict(frame)
    bands = assign_bands(current, percentiles(current), spec.band_scheme, settings.bands[spec.band_scheme])
    catalog = {c: model.predictor.catalog[c] for c in model.predictor.feature_names}
    mon = settings.monitoring
    return build_reference(frame, catalog, current, bands, importance, held_out_scores=scores, held_out_labels=y,
                           model_version="candidate", kind=spec.kind, seed=settings.training.seed,
                           n_boot=mon.reference_bootstrap, level=float(mon.thresholds["level"]),
                           as_of=ref_as_of.isoformat()).to_dict()


def held_out_intervals(spec: TaskSpec, evaluation: pd.DataFrame, settings: Settings) -> dict[str, Any]:
    """Held-out metrics with confidence intervals (seeded bootstrap; AUC by Hanley-McNeil) of the model and of every
    baseline whose held-out scores were kept, for the registry and the report; the same draws, level and seed as the
    monitoring reference's (``monitoring.reference_bootstrap``, ``monitoring.thresholds.level``, ``training.seed``)."""
    from models.monitoring.reference import held_out_metrics

    draws, level = settings.monitoring.reference_bootstrap, float(settings.monitoring.thresholds["level"])
    y = evaluation["y"].to_numpy(dtype=float)
    out = {}
    for col in ["score", *[c for c in evaluation.columns if str(c).startswith("baseline_")]]:
        s = evaluation[col].to_numpy(dtype=float)
        keep = np.isfinite(s) & np.isfinite(y)
        est, _, _ = held_out_metrics(spec.kind, y[keep], s[keep], seed=settings.training.seed, n_boot=draws,
                                     level=level)
        out["model" if col == "score" else str(col).removeprefix("baseline_")] = {
            k: v.to_dict() for k, v in est.items()}
    return {"level": level, "draws": draws, "estimates": out}


KNOWN_LIMITS = [
    "Trained on the history of one CRM extract; a change of process (pricing, sales stages) needs retraining.",
    "Probabilities are calibrated on one out-of-time cutoff; re-check calibration after large population shifts.",
    "Reasons are SHAP contributions: they explain the model, not causes; do not read them as interventions.",
]


@task(name="register-model", retries=2, retry_delay_seconds=3, cache_policy=NO_CACHE)
def log_candidate(model, data, spec: TaskSpec, settings: Settings, report: ValidationReport, candidate_id: str,
                  population: FeatureSet, as_of: pd.Timestamp):
    """Log the run to MLflow and register the candidate's version; idempotent, so it may be retried.

    ``candidate_id`` is computed once by the caller: a retry after the version was created returns that version
    instead of registering a second one.
    """
    from models.card import render_model_card
    from models.registry import CODE_VERSION_TAG
    from pipelines.runtime import code_version

    registry = _registry(settings)
    trained = model.report
    frame, _ = _held_out(model, data)
    with tempfile.TemporaryDirectory() as tmp:
        plots, drivers, importance = _artifacts(model, data, spec, Path(tmp))
        cutoffs = {"train": [str(c) for c in trained.train_cutoffs],
                   "valid": [str(c) for c in trained.valid_cutoffs],
                   "test": [str(c) for c in trained.test_cutoffs], "horizon_days": data.horizon_days}
        all_cuts = list(trained.train_cutoffs) + list(trained.test_cutoffs)
        card = render_model_card(
            trained, spec, version=None, data_window=(min(all_cuts), max(all_cuts)),
            eligibility_text=spec.population_spec.eligibility, extract_fingerprint=report.fingerprint.to_dict(),
            top_drivers=[(label, v) for _, label, v in drivers], known_limits=KNOWN_LIMITS,
            max_total_error=settings.gate.max_total_error)
        return registry.log_training_run(
            model.predictor, trained, spec, extract_fingerprint=report.fingerprint.to_dict(),
            contract_result={"ok": report.ok, "failed_warnings": [r.rule for r in report.warnings],
                             "rules": len(report.results), "validated_at": str(report.validated_at)},
            cutoffs=cutoffs,
            feature_labels={c: model.predictor.catalog[c].label for c in model.predictor.feature_names},
            plots=plots, card_md=card, run_name=f"{spec.name}-{pd.Timestamp(trained.test_cutoffs[-1]).date()}",
            input_example=frame.head(5), candidate_id=candidate_id, importance=drivers,
            intervals=held_out_intervals(spec, trained.evaluation_frame, settings),
            tags={CODE_VERSION_TAG: code_version()},
            reference=_reference(model, data, spec, settings, importance, population, as_of))


@task(name="champion-gate", cache_policy=NO_CACHE)
def champion_gate(model, data, spec: TaskSpec, settings: Settings, run) -> TrainOutcome:
    """Score the champion on the candidate's held-out rows; move `champion` only if the gate says so. Not retried."""
    from models.champion import promote_if_better
    from pipelines.model_config import gate_config

    registry = _registry(settings)
    frame, y = _held_out(model, data)
    champ_metrics, champ_note = _champion_metrics_on(registry, spec, frame, y, settings)
    gate = gate_config(settings, spec.primary_metric)
    trained = model.report
    decision = promote_if_better(registry, spec.name, run.version, trained.metrics, champ_metrics, gate,
                                 slice_metrics=trained.slice_metrics)
    status = "champion" if decision.promote else "challenger"
    why = "; ".join(decision.reasons)
    return TrainOutcome(task=spec.name, status=status, message=f"{why} (compared with {champ_note})",
                        version=run.version, metrics=dict(trained.metrics),
                        baseline_metrics={k: dict(v) for k, v in trained.baseline_metrics.items()}, run_id=run.run_id)


def register(model, data, spec: TaskSpec, settings: Settings, report: ValidationReport, population: FeatureSet,
             as_of: pd.Timestamp) -> TrainOutcome:
    """Register the candidate (a retried, idempotent task), then run the champion gate once, outside the retries.
    ``population``: the scoring features at the training ``as_of`` (the monitoring reference's drift part)."""
    run = log_candidate(model, data, spec, settings, report, candidate_id=uuid.uuid4().hex, population=population,
                        as_of=as_of)
    return champion_gate(model, data, spec, settings, run)


def _skipped(spec: TaskSpec, why: str) -> TrainOutcome:
    log.info(f"{spec.name}: skipped: {why}")
    return TrainOutcome(task=spec.name, status="skipped", message=f"skipped: {why}")


@flow(name="crmscore-train", validate_parameters=False)
def train_flow(config_file: str | None = None, crm: str | None = None, as_of: str | None = None,
               models: str | None = None, now: str | None = None) -> TrainSummary:
    """Validate the extract, then train, evaluate and register each task; the champion gate decides promotion."""
    # the raw tables are not kept: the privacy view is all the flow needs from here on (memory at millions of rows)
    settings, as_of_ts, report, tables = _gated_extract(config_file, crm, as_of, now)[:4]
    specs = _tasks_to_run(models)
    _registry(settings)  # creates a fresh tracking store once, before any run writes to it
    outcomes: list[TrainOutcome] = []
    populations: dict[tuple[str, str], FeatureSet] = {}  # churn and clv share one: built once, as the score flow does
    with bucketed(settings, tables) as buckets:
        for spec in specs:
            missing = missing_tables(tables, spec)
            if missing:
                outcomes.append(_skipped(spec, f"the extract has no {', '.join(missing)} rows"))
                continue
            log.info(f"{spec.name}: building the training set and training")
            model, data, too_little = train_one(spec, tables, settings, as_of_ts, buckets)
            if too_little:
                outcomes.append(_skipped(spec, too_little))
                continue
            key = (spec.entity, spec.population)
            if key not in populations:  # the monitoring reference describes whom the model will score
                options = feature_options(settings)
                populations[key] = (build_scoring_features(tables, spec, as_of=as_of_ts, options=options)
                                    if buckets is None else
                                    scoring_features_of(buckets, spec, as_of=as_of_ts, options=options).features)
            log.info(f"{spec.name}: registering in MLflow and running the champion gate")
            outcomes.append(register(model, data, spec, settings, report, populations[key], as_of_ts))
    return TrainSummary(as_of=str(as_of_ts), fingerprint=report.fingerprint.short, outcomes=outcomes,
                        tracking_uri=redact(settings.tracking_uri))


# ---------------------------------------------------------------------------------------------------------------
# Scoring


@dataclass
class ScoreSummary:
    scoring_run_id: str
    as_of: str
    rows: dict[str, int]
    versions: dict[str, int]
    skipped: dict[str, str]
    written_to: str
    monitoring: dict[str, str] = field(default_factory=dict)  # model -> status of its checks (ok/warn/alert/...)
    report: str | None = None  # the HTML report the run wrote (report.nightly), or why it could not


@task(name="score-model", cache_policy=NO_CACHE)
def score_one(spec: TaskSpec, fs: FeatureSet | Gathered, settings: Settings, registry,
              buckets: Buckets | None = None) -> tuple[pd.DataFrame, int]:
    """The champion's scores with reasons for the features at as_of (pure call around the model load); with
    ``buckets`` (``fs`` then gathered from them) the reasons are computed bucket by bucket on the cluster."""
    from models.scoring import score_task

    features = fs.features if isinstance(fs, Gathered) else fs
    model, version = registry.load_champion(spec.name, expected_features=list(features.catalog))
    if buckets is not None and isinstance(fs, Gathered):
        return score_buckets(buckets, model, spec, fs, model_version=version,
                             options=scoring_options(settings)), version
    return score_task(model, spec, fs, model_version=version, options=scoring_options(settings)), version


@task(name="write-back", retries=2, retry_delay_seconds=5, cache_policy=NO_CACHE)
def write_back(location: str, scores: pd.DataFrame, var: pd.DataFrame | None, *, run_id: str,
               as_of: pd.Timestamp, scored_at: pd.Timestamp, lock_timeout_s: float,
               monitoring: tuple[pd.DataFrame, pd.DataFrame] | None = None):
    """All-or-nothing: crm_scores replaced, history appended and the run's checks recorded in one transaction (or
    atomic renames)."""
    from crm.writeback import write_scores

    return write_scores(location, scores, scoring_run_id=run_id, as_of=as_of, scored_at=scored_at,
                        models=tuple(TASKS), value_at_risk=var, lock_timeout_s=lock_timeout_s, monitoring=monitoring)


def _previous_scores(location: str, model: str, as_of: pd.Timestamp) -> pd.Series | None:
    """The model's scores of its latest run before ``as_of`` (rank stability), indexed by entity_id."""
    from crm.writeback import read_history

    hist = read_history(location, model=model)
    hist = hist.loc[hist["as_of"] < as_of]
    if hist.empty:
        return None
    last = hist.loc[hist["as_of"] == hist["as_of"].max()]
    return last.set_index("entity_id")["score"]


def _reference_of(registry, cache: dict, task: str, version) -> object:
    key = (task, str(version))
    if key not in cache:
        cache[key] = registry.load_reference(task, int(version))
    return cache[key]


@task(name="check-scores", cache_policy=NO_CACHE)
def check_scores(frames: Mapping[str, pd.DataFrame], features: Mapping[str, pd.DataFrame],
                 versions: Mapping[str, int], settings: Settings, registry, *, run_id: str, as_of: pd.Timestamp,
                 scored_at: pd.Timestamp, accepted_by: str | None, quality: Sequence = ()):
    """Drift, score health and integrity of every model's scores before write-back.

    ``quality``: the extract's data-quality figures (``records.quality_figures``), stored with every model's run.
    Returns (monitoring rows for the write-back transaction, {model: blocking reasons}). A blocked model's row
    says blocked=1, and who accepted it when ``accepted_by`` is given.
    """
    from models.monitoring.records import run_rows
    from models.tasks import TASKS as REGISTRY
    from pipelines.model_config import monitor_thresholds
    from pipelines.monitor import check_run, rows_of

    thresholds = monitor_thresholds(settings)
    cache: dict = {}
    out, blocked = [], {}
    for name, rows in frames.items():
        checked = check_run(REGISTRY[name], _reference_of(registry, cache, name, versions[name]), features[name], rows,
                            _previous_scores(settings.crm_url, name, as_of), as_of=as_of, thresholds=thresholds,
                            seed=settings.training.seed, draws=settings.monitoring.estimate_draws)
        if checked.blocking:
            blocked[name] = checked.blocking
        accepted = accepted_by if checked.blocking else None
        out.append(run_rows(scoring_run_id=run_id, model=name, stage="scoring", model_version=str(versions[name]),
                            as_of=as_of, evaluated_as_of=as_of, status=checked.status, reasons=checked.reasons,
                            n=checked.n, blocked=bool(checked.blocking), accepted_by=accepted,
                            accepted_at=scored_at if accepted else None, monitored_at=scored_at,
                            figures=[*checked.figures, *quality]))
        log.info(f"{name}: monitoring status {checked.status}"
                 + (f" ({'; '.join(r.detail for r in checked.reasons[:3])})" if checked.reasons else ""))
    return rows_of(out), blocked


def _record_run(settings: Settings, summary: ScoreSummary, report: ValidationReport) -> None:
    """What an auditor needs to tie every score of a run to its extract and model versions."""
    folder = settings.workdir / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    doc = {**dataclasses.asdict(summary), "extract_fingerprint": report.fingerprint.to_dict(),
           "validation_ok": report.ok, "warnings": [r.rule for r in report.warnings]}
    tmp = folder / f"{summary.scoring_run_id}.json.tmp"
    tmp.write_text(json.dumps(doc, indent=2, default=str))
    tmp.replace(folder / f"{summary.scoring_run_id}.json")


def _value_at_risk(frames: Mapping[str, pd.DataFrame], specs: list[TaskSpec]) -> pd.DataFrame | None:
    """P(event) x amount for the task that names an amount partner (churn x clv), when both were scored."""
    from models.bands import value_at_risk_rows

    pairs = [(s.name, s.value_at_risk_with) for s in specs if s.value_at_risk_with in frames and s.name in frames]
    if not pairs:
        return None
    probability, amount = pairs[0]
    return value_at_risk_rows(frames[probability], frames[amount])


@flow(name="crmscore-score", validate_parameters=False)
def score_flow(config_file: str | None = None, crm: str | None = None, as_of: str | None = None,
               models: str | None = None, now: str | None = None, accept_drift: bool = False) -> ScoreSummary:
    """Validate, score every eligible record with each task's champion, check the scores, write them back atomically.

    An integrity failure (NaN or identical scores, a catastrophic score shift) blocks the write-back: crm_scores
    stays as it was, the block is recorded in crm_monitor_runs and ScoresBlockedError is raised. ``accept_drift``
    writes them anyway and records who (the login name) and when.
    """
    import getpass

    from models.errors import NoChampionError
    from models.monitoring import ScoresBlockedError

    # the raw tables are not kept: the privacy view is all the flow needs from here on (memory at millions of rows)
    settings, as_of_ts, report, tables = _gated_extract(config_file, crm, as_of, now)[:4]
    specs = _tasks_to_run(models)
    registry = _registry(settings)
    frames: dict[str, pd.DataFrame] = {}
    versions: dict[str, int] = {}
    skipped: dict[str, str] = {}
    features: dict[tuple[str, str], FeatureSet | Gathered] = {}  # churn and clv score the same population: once
    feature_frames: dict[str, pd.DataFrame] = {}
    with bucketed(settings, tables) as buckets:
        for spec in specs:
            missing = missing_tables(tables, spec)
            if missing:
                skipped[spec.name] = f"the extract has no {', '.join(missing)} rows"
                continue
            if registry.champion(spec.name) is None:
                skipped[spec.name] = ("no champion model yet (run `crmscore train`; a model that failed the gate stays "
                                      "challenger)")
                continue
            log.info(f"{spec.name}: scoring with the champion and explaining each score")
            key = (spec.entity, spec.population)
            if key not in features:  # the same code as training, at as_of
                with phase(f"features {spec.population}", log):
                    options = feature_options(settings)
                    features[key] = (build_scoring_features(tables, spec, as_of=as_of_ts, options=options)
                                     if buckets is None else
                                     scoring_features_of(buckets, spec, as_of=as_of_ts, options=options))
            with phase(f"score {spec.name} with reasons", log):
                frames[spec.name], versions[spec.name] = score_one(spec, features[key], settings, registry, buckets)
            got = features[key]
            feature_frames[spec.name] = (got.features if isinstance(got, Gathered) else got).frame
    if not frames:
        raise NoChampionError("no task could be scored: " + "; ".join(f"{k}: {v}" for k, v in skipped.items()))
    for name, why in skipped.items():
        log.info(f"{name}: skipped ({why})")
    with phase("value at risk", log):
        var = _value_at_risk(frames, specs)
        scores = pd.concat(list(frames.values()), ignore_index=True)
    run_id = uuid.uuid4().hex
    scored_at = pd.Timestamp.now(tz="UTC").floor("s")
    log.info("Checking the scores against each model's reference")
    with phase("monitoring", log):
        from models.monitoring.records import quality_figures

        quality = quality_figures(tables, [r.to_dict() for r in report.results])
        monitoring, blocked = check_scores(frames, feature_frames, versions, settings, registry, run_id=run_id,
                                           as_of=as_of_ts, scored_at=scored_at,
                                           accepted_by=getpass.getuser() if accept_drift else None, quality=quality)
    why = "; ".join(f"{name}: {', '.join(r.detail for r in reasons)}" for name, reasons in blocked.items())
    if blocked and not accept_drift:
        from crm.monitor_store import write_monitoring

        write_monitoring(settings.crm_url, *monitoring, lock_timeout_s=settings.scoring.lock_timeout_s)
        log.error(f"Write-back blocked: {why}")
        raise ScoresBlockedError(f"scores not written (crm_scores unchanged; run {run_id} recorded in "
                                 f"crm_monitor_runs): {why}; check the extract and the model, or write them anyway "
                                 "with `crmscore score --accept-drift`")
    if blocked:
        log.warning(f"Integrity failures accepted by {getpass.getuser()} (--accept-drift): {why}")
    log.info(f"Writing {len(scores):,} scores back to {redact(settings.crm_url)}")
    with phase("write-back", log):
        write_back(settings.crm_url, scores, var, run_id=run_id, as_of=as_of_ts, scored_at=scored_at,
                   lock_timeout_s=settings.scoring.lock_timeout_s, monitoring=monitoring)
    summary = ScoreSummary(scoring_run_id=run_id, as_of=str(as_of_ts), rows={k: len(v) for k, v in frames.items()},
                           versions=versions, skipped=skipped, written_to=redact(settings.crm_url),
                           monitoring=dict(zip(monitoring[0]["model"], monitoring[0]["status"])))
    _record_run(settings, summary, report)
    if settings.report.nightly:
        summary.report = write_report(settings, as_of_ts)
    return summary


# ---------------------------------------------------------------------------------------------------------------
# Monitoring


@dataclass
class MonitorSummary:
    as_of: str
    runs_stored: int  # run rows (checks and backtests) computed and stored by this call
    models: dict[str, dict]  # task -> pipelines.monitor.health of its champion


def matured(run_as_of: pd.Timestamp, horizon_days: int, extract_as_of: pd.Timestamp) -> bool:
    """A run's labels are complete once its whole window [as_of, as_of + horizon) lies before the extract's as-of."""
    return run_as_of + pd.Timedelta(days=int(horizon_days)) <= extract_as_of


def _recorded_through(recorded: dict, extract, as_of: pd.Timestamp, settings: Settings) -> pd.Timestamp:
    """The extract's as-of, or the latest event its logs record plus ``monitoring.record_grace_days`` if that is
    earlier (kept in ``recorded``): a run whose window closes after what the extract records has not matured in it
    (an export older than ``as_of``), so its outcomes would read as "nothing happened"."""
    from features.spine import history_end

    if "ts" not in recorded:
        last = history_end(extract()[1], before=as_of)
        end = None if last is None else last + pd.Timedelta(days=settings.monitoring.record_grace_days)
        recorded["ts"] = as_of if end is None else min(as_of, end)
        if end is not None and end < as_of:
            log.info(f"the extract's event logs end at {last.isoformat()} (well before {as_of.date()}): runs whose "
                     f"window closes after {end.date()} are not backtested yet")
    return recorded["ts"]


def _frame_at(built: dict, extract, spec: TaskSpec, as_of: pd.Timestamp, settings: Settings) -> pd.DataFrame:
    """The feature frame of ``spec``'s population at ``as_of``, built on first use and kept in ``built``."""
    if "frame" not in built:
        built["frame"] = build_scoring_features(extract()[0], spec, as_of=as_of,
                                                options=feature_options(settings)).frame
    return built["frame"]


@task(name="monitor-runs", cache_policy=NO_CACHE)
def monitor_missing(settings: Settings, extract, registry, *, as_of: pd.Timestamp, monitored_at: pd.Timestamp):
    """Every check (runs scored before monitoring, or elsewhere) and every backtest (runs matured by ``as_of``) not
    stored yet, as (runs, metrics) rows. Runs of models no longer registered as tasks are left alone.

    ``extract()`` returns (usable tables, raw tables), read and validated on first call: only when something is
    missing, so a monitor with nothing new to compute reads no extract.
    """
    from crm.monitor_store import read_monitor_runs
    from crm.writeback import read_history
    from features.labels import make_labels
    from models.monitoring.records import run_rows
    from pipelines.model_config import monitor_thresholds
    from pipelines.monitor import backtest_run, check_run, outcomes_at, rows_of, run_keys

    thresholds = monitor_thresholds(settings)
    stored = run_keys(read_monitor_runs(settings.crm_url))
    history = read_history(settings.crm_url)
    history = history.loc[history["as_of"] <= as_of]
    seed, draws = settings.training.seed, settings.monitoring.estimate_draws
    cache: dict = {}
    recorded: dict = {}  # how far the extract's event logs reach: read once, only when a run's window has closed
    out = []
    for model, per_model in history.groupby("model", sort=True):
        spec = TASKS.get(model)
        if spec is None:
            continue
        horizon = horizon_days(spec, settings.horizons)
        previous = None
        for (run_as_of, run_id), rows in per_model.groupby(["as_of", "scoring_run_id"], sort=True):
            version = str(rows["model_version"].iloc[0])
            reference = _reference_of(registry, cache, model, version)
            common = {"scoring_run_id": run_id, "model": model, "model_version": version, "as_of": run_as_of,
                      "evaluated_as_of": as_of, "blocked": False, "accepted_by": None, "accepted_at": None,
                      "monitored_at": monitored_at}
            built: dict = {}  # the run's features: built once, only when its check or backtest needs them
            if (run_id, model, "scoring") not in stored:
                frame = _frame_at(built, extract, spec, run_as_of, settings)
                checked = check_run(spec, reference, frame, rows, previous, as_of=run_as_of, thresholds=thresholds,
                                    seed=seed, draws=draws)
                out.append(run_rows(**common, stage="scoring", status=checked.status, reasons=checked.reasons,
                                    n=checked.n, figures=checked.figures))
            previous = rows.set_index("entity_id")["score"]
            if (matured(run_as_of, horizon, as_of) and (run_id, model, "realized") not in stored
                    and matured(run_as_of, horizon, _recorded_through(recorded, extract, as_of, settings))):
                outcomes, erased = outcomes_at(spec, *extract(), rows["entity_id"], run_as_of, horizon, make_labels)
                status, reasons, figures, n = backtest_run(
                    spec, reference, rows, outcomes, erased, thresholds=thresholds, seed=seed, draws=draws,
                    ece_bins=settings.evaluation.ece_bins, min_slice_rows=settings.evaluation.slice_min_size,
                    slices=_frame_at(built, extract, spec, run_as_of, settings) if len(outcomes) else None)
                out.append(run_rows(**common, stage="realized", status=status, reasons=reasons, n=n, figures=figures))
                log.info(f"{model}: run of {run_as_of.date()} (v{version}) matured: {status}")
    return rows_of(out)


@flow(name="crmscore-monitor", validate_parameters=False)
def monitor_flow(config_file: str | None = None, crm: str | None = None, as_of: str | None = None,
                 now: str | None = None) -> MonitorSummary:
    """Check and backtest every scoring run not monitored yet, store the results, return each champion's health."""
    from crm.monitor_store import read_monitor_metrics, read_monitor_runs, write_monitoring
    from pipelines.monitor import health

    settings = load_settings(config_file, crm=crm)
    monitored_at = pd.Timestamp.now(tz="UTC").floor("s")
    as_of_ts = _as_of(as_of, _as_of(now, monitored_at))
    read: list = []

    def extract():
        if not read:
            _, _, _, tables, raw = _gated_extract(config_file, crm, as_of_ts.isoformat(), now)
            read.append((tables, raw))
        return read[0]

    registry = _registry(settings)
    runs, metrics = monitor_missing(settings, extract, registry, as_of=as_of_ts, monitored_at=monitored_at)
    if len(runs):
        log.info(f"Storing {len(runs)} monitored run(s) in {redact(settings.crm_url)}")
        write_monitoring(settings.crm_url, runs, metrics, lock_timeout_s=settings.scoring.lock_timeout_s)
    all_runs, all_metrics = read_monitor_runs(settings.crm_url), read_monitor_metrics(settings.crm_url)
    models = {}
    for spec in _tasks_to_run(None):
        champion = registry.champion(spec.name)
        mine = all_runs["model"] == spec.name
        if champion is None and not mine.any():
            continue
        models[spec.name] = health(spec.name, spec.kind, champion.version if champion else None,
                                   all_runs.loc[mine], all_metrics.loc[all_metrics["model"] == spec.name])
    return MonitorSummary(as_of=str(as_of_ts), runs_stored=len(runs), models=models)


@task(name="write-report", cache_policy=NO_CACHE)
def write_report(settings: Settings, as_of: pd.Timestamp) -> str:
    """The HTML report of the run, in ``report.folder`` (default ``<workdir>/reports/``). The scores are written by
    then: a report that cannot be built is said in the summary, it does not fail the run."""
    from pipelines.report import build_report, write_page

    target = settings.reports_dir / f"report_{as_of:%Y-%m-%d}.html"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        path = write_page(build_report(settings), target)
    except Exception as exc:  # the scores are written; the report is an addition to the run
        log.info(f"report not written: {type(exc).__name__}: {exc}")
        return f"not written: {type(exc).__name__}: {exc}"
    log.info(f"Report written to {path}")
    return str(path)
