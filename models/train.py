"""Train one task: out-of-time split, a small search with early stopping, calibration, evaluation.

Time semantics
--------------
``TrainingData`` holds rows of several cutoffs (one row per entity and cutoff; features strictly
before the cutoff, label in ``[cutoff, cutoff + horizon)``). With cutoffs ``c_1 < ... < c_n``:

- ``c_n`` is the **held-out test fold**: never used for fitting, early stopping, config choice or
  calibration; every reported metric comes from it;
- ``c_{n-1}`` is the **validation fold**: early stopping, choice among the search configs, and
  calibration (out-of-fold ECE decides isotonic vs Platt);
- ``c_1 .. c_{n-2}`` are the **fit fold**.

Optionally (``EvaluationSettings.purge_label_overlap``) training cutoffs whose label window
reaches past ``c_n`` are dropped, so no training label was observed after the test cutoff.

Refit or keep: we **keep** the model fitted on the fit fold. Refitting on fit + validation would
leave no untouched rows for calibration and its early-stopping point would be a guess; the cost is
one cutoff of data less, which at a dozen monthly cutoffs is small.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.baselines import (
    annual_churn_rate_from_horizon,
    customer_equity,
    historical_clv,
    historical_horizon_margin,
    logistic_baseline,
)
from models.calibration import ANCHOR_BIAS, BINARY_METHODS, CalibrationChoice, TotalAnchor, fit_calibrator
from models.encoding import (
    ID_COLUMNS,
    CategoricalVocabulary,
    categorical_columns,
    fit_vocabulary,
    prepare_matrix,
)
from models.errors import ModelConfigError, TrainingDataError
from models.evaluate import collapsed_slices, slice_metrics, task_metrics
from models.monitoring.stats import auc_standard_error
from models.predictor import Predictor
from models.tasks import TaskSpec


@dataclass(frozen=True)
class SearchConfig:
    """One point of the hyper-parameter search (``num_leaves`` is capped by the budget's ``max_leaves``)."""

    num_leaves: int
    min_child_samples: int
    learning_rate: float
    feature_fraction: float


@dataclass(frozen=True)
class LightGBMParams:
    """The booster's budget and the search (config section ``model``; ``pipelines`` builds it from the settings).

    The budget (``max_trees``, ``max_leaves``, ``max_depth``) bounds the cost of exact TreeSHAP at
    scoring time, which grows with trees x leaves x depth and is 10-100x the cost of a prediction.
    The configured budget (at most 200 trees of at most 15 leaves, depth <= 6: at most 3000 leaves in all)
    was measured about 6x cheaper to explain than 300 trees/31 leaves/depth 8, which puts exact TreeSHAP
    for 1M accounts under 5 minutes on 2 cores (docs/benchmarks.md, "Train").
    """

    max_trees: int
    max_leaves: int
    max_depth: int
    # Trees x leaves bound: a config with fewer leaves may grow more trees (up to max_trees), at the
    # same worst-case explanation cost as max_total_leaves / max_leaves trees of max_leaves leaves.
    max_total_leaves: int
    early_stopping_rounds: int
    search: tuple[SearchConfig, ...]
    lambda_l2: float
    bagging_fraction: float
    tweedie_variance_power: float
    min_category_count: int
    max_categories: int
    # LightGBM's OpenMP threads spin-wait: on a machine shared with other work 2 threads measured 9x
    # SLOWER than 1 (docs/benchmarks.md), hence 1 in the packaged config. Raise it on a dedicated machine.
    n_jobs: int
    # The one-SE rule of the search (:func:`selection_tolerance`): the smallest config whose validation score is
    # within this many standard errors of the best is chosen; 0 = the best.
    selection_standard_errors: float

    def __post_init__(self) -> None:
        for name in ("max_trees", "max_leaves", "max_total_leaves", "early_stopping_rounds", "n_jobs",
                     "min_category_count", "max_categories"):
            if getattr(self, name) < 1:
                raise ModelConfigError(f"LightGBMParams.{name} must be >= 1; got {getattr(self, name)}.")
        if self.max_leaves < 2:
            raise ModelConfigError(f"LightGBMParams.max_leaves must be >= 2; got {self.max_leaves}.")
        if self.selection_standard_errors < 0:
            raise ModelConfigError("LightGBMParams.selection_standard_errors must be >= 0; got "
                                   f"{self.selection_standard_errors}.")
        if not 0 < self.bagging_fraction <= 1:
            raise ModelConfigError(f"LightGBMParams.bagging_fraction must be in (0, 1]; got {self.bagging_fraction}.")
        if not 1 < self.tweedie_variance_power < 2:
            raise ModelConfigError("LightGBMParams.tweedie_variance_power must be in (1, 2) for a zero-heavy "
                                   f"amount; got {self.tweedie_variance_power}.")


@dataclass(frozen=True)
class EvaluationSettings:
    """Calibration, held-out evaluation and baseline settings (config section ``evaluation``)."""

    calibration: str
    ece_bins: int
    slice_min_size: int
    # Slices with fewer rows are too noisy to call collapsed (models.evaluate.collapsed_slices).
    collapse_min_n: int
    logistic_min_frequency: int
    purge_label_overlap: bool
    # Inputs of the historical CLV formula; skipped (and said so) when the columns are absent.
    margin_per_year_column: str
    acquisition_cost_column: str
    max_years_active: float
    # Amount tasks: the feature whose per-population total anchors the predicted total (models.calibration.TotalAnchor),
    # ``{horizon_days}`` replaced by the task horizon; None, or a column the frame lacks, keeps the fixed scale.
    total_anchor_column: str | None
    # "validation": the anchor's total times BG/NBD's bias on the validation cutoff; "none": BG/NBD's total as it is.
    total_anchor_bias: str

    def __post_init__(self) -> None:
        if self.total_anchor_bias not in ANCHOR_BIAS:
            raise ModelConfigError(f"Unknown total_anchor_bias {self.total_anchor_bias!r}; "
                                   f"expected one of {list(ANCHOR_BIAS)}.")
        if self.calibration not in BINARY_METHODS:
            raise ModelConfigError(f"Unknown calibration method {self.calibration!r}; "
                                   f"expected one of {list(BINARY_METHODS)}.")
        if self.ece_bins < 2 or self.slice_min_size < 1:
            raise ModelConfigError(f"ece_bins must be >= 2 and slice_min_size >= 1; got {self.ece_bins}, "
                                   f"{self.slice_min_size}.")
        if self.collapse_min_n < 1:
            raise ModelConfigError(f"collapse_min_n must be >= 1; got {self.collapse_min_n}.")


@dataclass(frozen=True)
class TrainingData:
    """Rows of several cutoffs for one task.

    Attributes
    ----------
    frame: ``entity_id``, ``cutoff_ts`` then the feature columns (a ``FeatureSet.frame``).
    label: the outcome per row, aligned with ``frame`` (same index, same order).
    catalog: column -> FeatureInfo (``kind`` in {"numeric", "categorical"}); every feature column must have one.
    horizon_days: the label horizon (used by the optional purge and the historical CLV formula).
    baseline_predictions: extra baselines computed elsewhere (e.g. ``btyd_clv`` per cutoff), each a
        Series aligned with ``frame``; evaluated on the held-out rows beside the model.
    """

    frame: pd.DataFrame
    label: pd.Series
    catalog: Mapping[str, Any]
    horizon_days: int | None = None
    baseline_predictions: Mapping[str, pd.Series] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainingReport:
    """How a model was trained and how it did on the held-out fold (never needed to score).

    ``metrics``, ``baseline_metrics``, ``slice_metrics`` and ``evaluation_frame`` come from the held-out
    (last) cutoff only; ``params`` are the LightGBM settings of the chosen config.
    """

    task: str
    feature_names: tuple[str, ...]
    params: dict[str, Any]
    best_iteration: int
    train_cutoffs: tuple[pd.Timestamp, ...]
    valid_cutoffs: tuple[pd.Timestamp, ...]
    test_cutoffs: tuple[pd.Timestamp, ...]
    metrics: dict[str, float]
    baseline_metrics: dict[str, dict[str, float]]
    slice_metrics: pd.DataFrame
    slice_collapses: pd.DataFrame
    evaluation_frame: pd.DataFrame
    search_results: list[dict[str, Any]]
    calibration_oof_ece: dict[str, float]
    seed: int

    def comparison(self) -> pd.DataFrame:
        """Held-out metrics of the model and of each baseline side by side: one row per (name), one column per metric."""
        rows = {"model": self.metrics, **self.baseline_metrics}
        return pd.DataFrame.from_dict(rows, orient="index")


@dataclass(frozen=True)
class TrainedModel:
    """What :func:`train_task` returns: the fitted predictor (registered, scored with) and the training report.

    Only ``predictor`` is registered and loaded back (:mod:`models.predictor`); the report goes to the
    tracking run as metrics and documents.
    """

    predictor: Predictor
    report: TrainingReport


def _check_inputs(
    spec: TaskSpec, frame: pd.DataFrame, label: pd.Series, catalog: Mapping[str, Any]
) -> tuple[list[str], np.ndarray]:
    """The checks shared by :func:`train_task` and :func:`cross_validate`; returns (feature columns, label as float)."""
    if len(label) != len(frame) or not label.index.equals(frame.index):
        raise TrainingDataError(
            f"Label ({len(label)} rows) is not aligned with the frame ({len(frame)} rows): "
            "build it from the same rows, with the same index and order.")
    if label.isna().any():
        raise TrainingDataError(f"Label {label.name!r} has {int(label.isna().sum())} missing values; "
                                "drop those rows (e.g. rows whose horizon is not complete) before training.")
    # entity_id / cutoff_ts, when present, identify rows; they are never features.
    features = [c for c in frame.columns if c not in ID_COLUMNS]
    if not features:
        raise TrainingDataError("The training frame holds no feature columns.")
    no_info = [c for c in features if c not in catalog]
    if no_info:
        raise TrainingDataError(f"Feature columns without a catalog entry: {no_info}.")
    y = label.astype(float).to_numpy()
    if spec.kind == "binary" and not np.isin(y, (0.0, 1.0)).all():
        raise TrainingDataError(f"Task {spec.name!r} is binary but label {label.name!r} holds "
                                f"values other than 0/1: {sorted(set(y.tolist()))[:5]}...")
    return features, y

def split_cutoffs(
    cutoffs: pd.Series, *, horizon_days: int | None = None, purge_label_overlap: bool = False
) -> tuple[tuple[pd.Timestamp, ...], tuple[pd.Timestamp, ...], tuple[pd.Timestamp, ...]]:
    """Out-of-time split of the distinct cutoffs into (fit, valid, test).

    test = the last cutoff, valid = the one before, fit = the rest. With ``purge_label_overlap``,
    fit/valid cutoffs ``c`` with ``c + horizon_days > test`` are dropped first.
    Raises TrainingDataError when fewer than one cutoff is left for each fold.
    """
    distinct = sorted(pd.Series(cutoffs).unique())
    if len(distinct) < 3:
        raise TrainingDataError(
            f"Out-of-time training needs at least 3 cutoffs (fit, validation, held-out test); "
            f"got {len(distinct)}: {[str(c) for c in distinct]}. Add cutoffs to the training spine.")
    test = distinct[-1]
    earlier = distinct[:-1]
    if purge_label_overlap and horizon_days is not None:
        earlier = [c for c in earlier if c + pd.Timedelta(days=horizon_days) <= test]
        if len(earlier) < 2:
            raise TrainingDataError(
                f"After purging cutoffs whose {horizon_days}-day label window reaches past the test cutoff "
                f"{test}, {len(earlier)} cutoff(s) remain; at least 2 are needed. Add earlier cutoffs "
                "or turn purge_label_overlap off.")
    return tuple(earlier[:-1]), (earlier[-1],), (test,)


def trees_allowed(params: LightGBMParams, cfg: SearchConfig) -> int:
    """Trees a config may grow: ``min(max_trees, max_total_leaves // leaves)``, at least 1."""
    leaves = min(cfg.num_leaves, params.max_leaves)
    return max(1, min(params.max_trees, params.max_total_leaves // leaves))


def _estimator(spec: TaskSpec, params: LightGBMParams, cfg: SearchConfig, seed: int) -> lgb.LGBMModel:
    common = dict(
        n_estimators=trees_allowed(params, cfg),
        num_leaves=min(cfg.num_leaves, params.max_leaves),
        max_depth=params.max_depth,
        learning_rate=cfg.learning_rate,
        min_child_samples=cfg.min_child_samples,
        colsample_bytree=cfg.feature_fraction,
        subsample=params.bagging_fraction,
        subsample_freq=1 if params.bagging_fraction < 1 else 0,
        reg_lambda=params.lambda_l2,
        random_state=seed,
        n_jobs=params.n_jobs,
        deterministic=True,
        verbose=-1,
    )
    if spec.objective == "binary":
        return lgb.LGBMClassifier(objective="binary", **common)
    if spec.objective == "tweedie":
        return lgb.LGBMRegressor(objective="tweedie", tweedie_variance_power=params.tweedie_variance_power, **common)
    raise TrainingDataError(f"Unsupported objective {spec.objective!r} for task {spec.name!r}.")


def _primary(spec: TaskSpec, y: np.ndarray, raw: np.ndarray) -> float:
    # Both metrics are rank-based, so the raw score ranks the same as the reported one.
    m = task_metrics(spec.kind, y, 1 / (1 + np.exp(-raw)) if spec.kind == "binary" else np.exp(raw))
    return float(m[spec.primary_metric])


def _trim(booster: lgb.Booster, best_iteration: int) -> lgb.Booster:
    """A booster holding only the first ``best_iteration`` trees, so scoring and SHAP pay for no more."""
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best_iteration))


def selection_tolerance(spec: TaskSpec, y_valid: np.ndarray, best_score: float, standard_errors: float) -> float:
    """How far below the best validation score a smaller model may score and still be chosen (the one-SE rule).

    Binary tasks: ``standard_errors`` x the Hanley-McNeil standard error of the best validation AUC, which shrinks
    with the validation fold's positives and negatives: on a small fold two configs a few points apart are not told
    apart, and the smaller model is kept (Breiman et al. 1984, Hastie et al. 2009 7.10). Other primary metrics have
    no closed-form standard error here: 0 (the best score wins).
    """
    if standard_errors <= 0 or spec.primary_metric != "roc_auc":
        return 0.0
    n_pos = int((y_valid == 1).sum())
    se = auc_standard_error(best_score, n_pos, len(y_valid) - n_pos)
    return standard_errors * se if np.isfinite(se) else 0.0


def _search(
    spec: TaskSpec, params: LightGBMParams, X_fit: pd.DataFrame, y_fit_obj: np.ndarray, X_valid: pd.DataFrame,
    y_valid: np.ndarray, y_valid_obj: np.ndarray, seed: int,
) -> tuple[float, int, lgb.Booster, SearchConfig, list[dict[str, Any]]]:
    """Fit every search config on the fit rows with early stopping on the validation rows; choose one.

    ``y_*_obj`` are the targets the booster learns (clipped at 0 for Tweedie), ``y_valid`` the realised
    validation outcome the configs are judged on (the task's primary metric). ``params.search`` lists its configs
    from the most regularised (fewer leaves, larger leaves, slower learning); the first whose validation score is
    within :func:`selection_tolerance` of the best is chosen; with a tolerance of 0, the best (on a tie, the first).
    Returns (chosen validation score, its best iteration, its untrimmed booster, its config, one record per config).
    """
    search_results: list[dict[str, Any]] = []
    fitted: list[tuple[float, int, lgb.Booster, SearchConfig]] = []
    for cfg in params.search:
        est = _estimator(spec, params, cfg, seed)
        est.fit(X_fit, y_fit_obj, eval_X=(X_valid,), eval_y=(y_valid_obj,),
                callbacks=[lgb.early_stopping(params.early_stopping_rounds, verbose=False)])
        booster = est.booster_
        n_iter = int(booster.best_iteration or booster.current_iteration())
        score = _primary(spec, y_valid, booster.predict(X_valid, raw_score=True, num_iteration=n_iter))
        search_results.append({**cfg.__dict__, "num_leaves_used": min(cfg.num_leaves, params.max_leaves),
                               "trees_allowed": trees_allowed(params, cfg), "best_iteration": n_iter,
                               f"valid_{spec.primary_metric}": score})
        fitted.append((score, n_iter, booster, cfg))
    if not fitted:
        raise TrainingDataError("LightGBMParams.search is empty: give at least one SearchConfig.")
    scores = np.array([f[0] for f in fitted])
    best = int(np.argmax(scores))  # the first of equal maxima
    tolerance = selection_tolerance(spec, y_valid, float(scores[best]), params.selection_standard_errors)
    # The search lists its configs from the most regularised: the first within the tolerance is chosen.
    chosen = next(i for i in range(len(fitted)) if scores[i] >= scores[best] - tolerance)
    for i, record in enumerate(search_results):
        record["chosen"] = i == chosen
    search_results[chosen]["selection_tolerance"] = tolerance
    return (*fitted[chosen], search_results)


@dataclass(frozen=True)
class _FoldFit:
    """What the fold recipe produced: the fitted parts and the test rows' scores."""

    vocab: CategoricalVocabulary
    booster: lgb.Booster
    calibration: CalibrationChoice
    best_score: float
    best_iteration: int
    best_cfg: SearchConfig
    search_results: list[dict[str, Any]]
    raw_test: np.ndarray
    score_test: np.ndarray


def _fit_fold(
    spec: TaskSpec, params: LightGBMParams, settings: EvaluationSettings, frame: pd.DataFrame,
    features: list[str], cat_cols: list[str], y_all: np.ndarray, fit_idx: np.ndarray, valid_idx: np.ndarray,
    test_idx: np.ndarray, seed: int,
) -> _FoldFit:
    """The training recipe of one fold, shared by :func:`train_task` and :func:`cross_validate`.

    Vocabulary on the fit rows -> matrix -> search with early stopping on the validation rows -> trim to
    the best iteration -> calibration on the validation rows -> raw and reported scores of the test rows.
    ``*_idx`` are row positions in ``frame`` / ``y_all``; the test rows are read only to be scored.
    """
    y_fit, y_valid = y_all[fit_idx], y_all[valid_idx]
    # Tweedie needs y >= 0, but a horizon's gross margin can be negative (loss-making orders): the
    # booster learns E[max(y, 0)]; the held-out metrics still use the realised y.
    clip = spec.objective == "tweedie"
    y_fit_obj = np.clip(y_fit, 0.0, None) if clip else y_fit
    y_valid_obj = np.clip(y_valid, 0.0, None) if clip else y_valid
    # The vocabulary is fitted on the fit rows only: validation/test values unseen there behave
    # exactly as unseen values will at scoring time.
    vocab = fit_vocabulary(frame.iloc[fit_idx], cat_cols, min_count=params.min_category_count,
                           max_categories=params.max_categories)
    X_all = prepare_matrix(frame, features, vocab)
    X_fit, X_valid, X_test = X_all.iloc[fit_idx], X_all.iloc[valid_idx], X_all.iloc[test_idx]
    best_score, best_iteration, full_booster, best_cfg, search_results = _search(
        spec, params, X_fit, y_fit_obj, X_valid, y_valid, y_valid_obj, seed)
    booster = _trim(full_booster, best_iteration)
    choice = fit_calibrator(booster.predict(X_valid, raw_score=True), y_valid, kind=spec.kind,
                            method=settings.calibration, ece_bins=settings.ece_bins, seed=seed)
    raw_test = booster.predict(X_test, raw_score=True)
    return _FoldFit(vocab=vocab, booster=booster, calibration=choice, best_score=best_score,
                    best_iteration=best_iteration, best_cfg=best_cfg, search_results=search_results,
                    raw_test=raw_test, score_test=choice.calibrator.transform(raw_test))


def _check_search(params: LightGBMParams) -> None:
    if not params.search:
        raise TrainingDataError("LightGBMParams.search is empty: give at least one SearchConfig.")


def train_task(
    spec: TaskSpec,
    data: TrainingData,
    params: LightGBMParams,
    *,
    seed: int,
    settings: EvaluationSettings,
) -> TrainedModel:
    """Train, calibrate and evaluate ``spec`` on multi-cutoff ``data`` (see the module docstring).

    Parameters
    ----------
    spec: the task (``models.tasks.TASKS[name]``).
    data: rows of at least 3 cutoffs.
    params: budget and search (``pipelines`` builds them from the ``model`` settings).
    seed: seeds LightGBM, the calibration split and the logistic baseline.
    settings: calibration, evaluation and baseline settings (from the ``evaluation`` settings).

    Returns
    -------
    TrainedModel: the predictor, and a report whose metrics, baseline_metrics and slice_metrics are computed
    on the last cutoff only.
    """
    _check_search(params)
    frame = data.frame
    missing_ids = [c for c in ID_COLUMNS if c not in frame.columns]
    if missing_ids:
        raise TrainingDataError(f"Training frame lacks {missing_ids}; expected a FeatureSet frame "
                                "(entity_id, cutoff_ts, features).")
    features, y_all = _check_inputs(spec, frame, data.label, data.catalog)
    fit_c, valid_c, test_c = split_cutoffs(
        frame["cutoff_ts"], horizon_days=data.horizon_days, purge_label_overlap=settings.purge_label_overlap)
    cut = frame["cutoff_ts"]
    fit_m = cut.isin(fit_c).to_numpy()
    valid_m = cut.isin(valid_c).to_numpy()
    test_m = cut.isin(test_c).to_numpy()
    y_fit, y_valid, y_test = y_all[fit_m], y_all[valid_m], y_all[test_m]
    for name, yy in (("fit", y_fit), ("validation", y_valid), ("held-out", y_test)):
        if len(np.unique(yy)) < 2:  # one class (binary) or one value (amount): nothing to learn or to judge
            raise TrainingDataError(
                f"The {name} fold of task {spec.name!r} holds a single {'class' if spec.kind == 'binary' else 'value'}"
                f" ({len(yy)} rows), so the model could not be {'judged' if name == 'held-out' else 'trained'}; "
                "add cutoffs or use an extract with more history or more records.")

    cat_cols = categorical_columns(data.catalog, features)
    fold = _fit_fold(spec, params, settings, frame, features, cat_cols, y_all, np.flatnonzero(fit_m),
                     np.flatnonzero(valid_m), np.flatnonzero(test_m), seed)
    calibrator, raw_test, score_test = fold.calibration.calibrator, fold.raw_test, fold.score_test
    anchor_col = settings.total_anchor_column
    if anchor_col is not None and data.horizon_days is not None:
        anchor_col = anchor_col.format(horizon_days=data.horizon_days)
    anchor = None
    if spec.kind == "regression" and anchor_col is not None and anchor_col in features:
        # Fitted on the validation cutoff like the scale; judged on the held-out cutoff like everything else.
        anchor = TotalAnchor.fit(anchor_col, frame.loc[valid_m, anchor_col].to_numpy(dtype=float, na_value=np.nan),
                                 y_valid, bias=settings.total_anchor_bias)
        if anchor is not None:
            score_test = anchor.calibrator(frame.loc[test_m, anchor_col].to_numpy(dtype=float, na_value=np.nan),
                                           raw_test, calibrator).transform(raw_test)

    metrics = task_metrics(spec.kind, y_test, score_test, ece_bins=settings.ece_bins)
    if spec.kind == "binary":
        metrics["ece_uncalibrated"] = task_metrics(
            "binary", y_test, 1 / (1 + np.exp(-raw_test)), ece_bins=settings.ece_bins)["ece"]
    metrics[f"valid_{spec.primary_metric}"] = fold.best_score
    if not np.isfinite(metrics[spec.primary_metric]):
        raise TrainingDataError(f"The held-out {spec.primary_metric} of task {spec.name!r} cannot be computed on "
                                f"its {len(y_test)} rows; add cutoffs or use an extract with more records.")
    if spec.objective == "tweedie":
        metrics["labels_clipped_at_zero"] = float((y_fit < 0).sum() + (y_valid < 0).sum())

    test_frame = frame.loc[test_m]
    # reset_index keeps the canonical dtypes (str ids, datetime64[us, UTC]) that to_numpy would lose.
    eval_frame = pd.DataFrame({
        "entity_id": test_frame["entity_id"].reset_index(drop=True),
        "cutoff_ts": test_frame["cutoff_ts"].reset_index(drop=True),
        "y": y_test, "score": score_test, "raw": raw_test,
    })
    for col in spec.slice_columns:
        if col in test_frame.columns:
            eval_frame[col] = test_frame[col].reset_index(drop=True)

    baseline_metrics = _baselines(spec, data, settings, features, cat_cols, fit_m, test_m, y_all, seed)
    for name, pred in data.baseline_predictions.items():
        if not pred.index.equals(frame.index):
            raise TrainingDataError(f"Baseline prediction {name!r} is not aligned with the training frame.")
        baseline_metrics[name] = task_metrics(spec.kind, y_test, pred.to_numpy(dtype=float)[test_m],
                                              ece_bins=settings.ece_bins)
        eval_frame[f"baseline_{name}"] = pred.to_numpy(dtype=float)[test_m]

    slices = slice_metrics(eval_frame, spec.slice_columns, kind=spec.kind, min_size=settings.slice_min_size,
                           ece_bins=settings.ece_bins)
    collapses = collapsed_slices(slices, metric=spec.primary_metric, min_n=settings.collapse_min_n)
    metrics["slice_collapse_count"] = float(len(collapses))

    best_cfg = fold.best_cfg
    used = {**best_cfg.__dict__, "num_leaves": min(best_cfg.num_leaves, params.max_leaves),
            "max_depth": params.max_depth, "max_trees": trees_allowed(params, best_cfg),
            "max_total_leaves": params.max_total_leaves, "objective": spec.objective,
            "early_stopping_rounds": params.early_stopping_rounds, "lambda_l2": params.lambda_l2,
            "bagging_fraction": params.bagging_fraction, "calibration": calibrator.method,
            "calibration_requested": settings.calibration}
    if spec.objective == "tweedie":
        used["tweedie_variance_power"] = params.tweedie_variance_power
        used["total_anchor"] = anchor.column if anchor is not None else None
        used["total_anchor_bias"] = anchor.bias if anchor is not None else None

    catalog = {c: data.catalog[c] for c in features}
    predictor = Predictor(task=spec.name, feature_names=tuple(features), catalog=catalog, vocab=fold.vocab,
                          booster=fold.booster, calibrator=calibrator, total_anchor=anchor)
    report = TrainingReport(
        task=spec.name, feature_names=tuple(features), params=used, best_iteration=fold.best_iteration,
        train_cutoffs=tuple(pd.Timestamp(c) for c in fit_c), valid_cutoffs=tuple(pd.Timestamp(c) for c in valid_c),
        test_cutoffs=tuple(pd.Timestamp(c) for c in test_c), metrics=metrics, baseline_metrics=baseline_metrics,
        slice_metrics=slices, slice_collapses=collapses, evaluation_frame=eval_frame,
        search_results=fold.search_results, calibration_oof_ece=fold.calibration.oof_ece, seed=seed,
    )
    return TrainedModel(predictor=predictor, report=report)


def _simple_baselines(
    spec: TaskSpec, frame: pd.DataFrame, settings: EvaluationSettings, features: list[str], cat_cols: list[str],
    fit_idx: np.ndarray, test_idx: np.ndarray, y_all: np.ndarray, seed: int,
) -> dict[str, dict[str, float]]:
    """The baseline every task gets, fitted on the fit rows and scored on the test rows (row positions).

    Binary: ``logistic`` (:func:`models.baselines.logistic_baseline`); regression: ``mean`` of the fit rows.
    """
    y_fit, y_test = y_all[fit_idx], y_all[test_idx]
    if spec.kind == "binary":
        numeric = [c for c in features if c not in set(cat_cols)]
        pipe = logistic_baseline(numeric, cat_cols, min_frequency=settings.logistic_min_frequency, seed=seed)
        pipe.fit(frame.iloc[fit_idx][features], y_fit.astype(int))
        p = pipe.predict_proba(frame.iloc[test_idx][features])[:, 1]
        return {"logistic": task_metrics("binary", y_test, p, ece_bins=settings.ece_bins)}
    return {"mean": task_metrics("regression", y_test, np.full(len(y_test), y_fit.mean()))}


def _baselines(
    spec: TaskSpec, data: TrainingData, settings: EvaluationSettings, features: list[str],
    cat_cols: list[str], fit_m: np.ndarray, test_m: np.ndarray, y_all: np.ndarray, seed: int,
) -> dict[str, dict[str, float]]:
    """The spec's baselines fitted on the same fit fold and scored on the same held-out fold as the model.

    ``btyd`` needs the extract's orders: ``models.dataset`` fits it per cutoff and hands it in as a prediction.
    """
    frame = data.frame
    y_test = y_all[test_m]
    out = _simple_baselines(spec, frame, settings, features, cat_cols, np.flatnonzero(fit_m), np.flatnonzero(test_m),
                            y_all, seed)
    out = {name: m for name, m in out.items() if name in spec.baselines}
    col = settings.margin_per_year_column
    if "historical_formula" in spec.baselines and col in frame.columns and data.horizon_days:
        past = pd.to_numeric(frame[col], errors="coerce").astype(float)
        buyers = fit_m & (past.fillna(0).to_numpy() > 0)
        zero_share = float((y_all[buyers] <= 0).mean()) if buyers.any() else 0.0
        churn = annual_churn_rate_from_horizon(zero_share, data.horizon_days)
        pred = historical_horizon_margin(past[test_m], churn, data.horizon_days).to_numpy()
        m = task_metrics("regression", y_test, pred)
        acq = settings.acquisition_cost_column
        lifetime = historical_clv(past[test_m], frame.loc[test_m, acq] if acq in frame.columns else None, churn,
                                  max_years=settings.max_years_active)
        m["annual_churn_rate"] = churn
        m["customer_equity"] = customer_equity(lifetime)
        out["historical_formula"] = m
    return out


def with_search(params: LightGBMParams, *configs: SearchConfig) -> LightGBMParams:
    """``params`` with its search replaced by ``configs`` (a convenience for callers and tests)."""
    return replace(params, search=tuple(configs))


def cross_validate(
    spec: TaskSpec,
    frame: pd.DataFrame,
    label: pd.Series,
    catalog: Mapping[str, Any],
    params: LightGBMParams,
    *,
    folds: int = 5,
    seed: int,
    settings: EvaluationSettings,
    valid_fraction: float = 0.2,
) -> pd.DataFrame:
    """K-fold cross-validation of the training recipe of :func:`train_task` on cross-sectional data.

    For snapshots without timestamps (public benchmark tables) there is no out-of-time split; each
    fold plays the role of ``train_task``'s held-out cutoff. Within each fold's training rows an
    inner split (stratified for binary tasks, ``valid_fraction`` of the rows) plays the validation
    cutoff: early stopping, the choice among ``params.search`` and calibration use it, the booster is
    fitted on the rest (the "fit" rows), by the same fold recipe as ``train_task``. The categorical
    vocabulary and the logistic baseline are fitted on the fit rows only, as in ``train_task``. The test
    fold is never seen before scoring.

    Parameters
    ----------
    spec: the task (its kind, objective and primary metric are used; e.g. ``TASKS["churn"]``).
    frame: one row per entity; feature columns (``entity_id``/``cutoff_ts`` columns, if any, are ignored).
    label: outcome per row, aligned with ``frame`` (same index and order); 0/1 for binary tasks.
    catalog: column -> FeatureInfo-like object with ``kind`` in {"numeric", "categorical"}, for every feature.
    params: budget and search (``pipelines`` builds them from the ``model`` settings).
    folds: number of folds (StratifiedKFold with shuffle for binary tasks, KFold for regression).
    seed: seeds the fold split, the inner split, LightGBM, calibration and the logistic baseline.
    settings: calibration and evaluation settings (from the ``evaluation`` settings).
    valid_fraction: share of each fold's training rows held out as the inner validation split.

    Returns
    -------
    One row per (fold, model): ``fold`` (0-based), ``model`` (``"lightgbm"``, and ``"logistic"`` for
    binary tasks, ``"mean"`` for regression), ``n_fit``, ``n_valid``, then the
    :func:`models.evaluate.task_metrics` of the test fold; LightGBM rows also carry ``best_iteration``,
    ``num_leaves``, ``learning_rate``, ``calibration`` and ``valid_<primary metric>``.
    """
    from sklearn.model_selection import KFold, StratifiedKFold, train_test_split

    _check_search(params)
    if folds < 2:
        raise ModelConfigError(f"cross_validate needs folds >= 2; got {folds}.")
    if not 0 < valid_fraction < 1:
        raise ModelConfigError(f"valid_fraction must be in (0, 1); got {valid_fraction}.")
    features, y_all = _check_inputs(spec, frame, label, catalog)
    binary = spec.kind == "binary"
    if binary:
        smallest = int(min((y_all == 1).sum(), (y_all == 0).sum()))
        if smallest < folds:
            raise TrainingDataError(f"The rarer class has {smallest} rows; {folds}-fold stratified CV needs at "
                                    f"least {folds}.")
    splitter = (StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed) if binary
                else KFold(n_splits=folds, shuffle=True, random_state=seed))
    cat_cols = categorical_columns(catalog, features)
    rows: list[dict[str, Any]] = []
    for k, (train_idx, test_idx) in enumerate(splitter.split(np.zeros(len(y_all)), y_all if binary else None)):
        fit_idx, valid_idx = train_test_split(
            train_idx, test_size=valid_fraction, random_state=seed + k,
            stratify=y_all[train_idx] if binary else None)
        fit_idx, valid_idx = np.sort(fit_idx), np.sort(valid_idx)
        fold = _fit_fold(spec, params, settings, frame, features, cat_cols, y_all, fit_idx, valid_idx, test_idx,
                         seed)
        sizes = {"fold": k, "n_fit": len(fit_idx), "n_valid": len(valid_idx)}
        rows.append({**sizes, "model": "lightgbm",
                     **task_metrics(spec.kind, y_all[test_idx], fold.score_test, ece_bins=settings.ece_bins),
                     "best_iteration": fold.best_iteration,
                     "num_leaves": min(fold.best_cfg.num_leaves, params.max_leaves),
                     "learning_rate": fold.best_cfg.learning_rate, "calibration": fold.calibration.calibrator.method,
                     f"valid_{spec.primary_metric}": fold.best_score})
        for name, metrics in _simple_baselines(spec, frame, settings, features, cat_cols, fit_idx, test_idx, y_all,
                                               seed).items():
            rows.append({**sizes, "model": name, **metrics})
    out = pd.DataFrame(rows)
    lead = ["fold", "model", "n_fit", "n_valid"]
    return out[lead + [c for c in out.columns if c not in lead]]
