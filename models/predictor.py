"""The fitted predictor of a task and its versioned, pickle-free artifact.

A :class:`Predictor` is what scoring needs and nothing more: the booster, the categorical vocabulary,
the calibrator, the feature order and the catalog entries the reasons are phrased with. The training
report (metrics, baselines, slices, held-out rows) lives in :class:`models.train.TrainingReport`.

:func:`save_predictor` writes a folder that holds no pickle of a project class, so refactoring the
training classes cannot break a registered model:

- ``booster.txt``: LightGBM's own model text (``Booster.model_to_string``; it carries the pandas
  categories the booster was trained with);
- ``predictor.json``: ``format_version``, the crmscore version that wrote it, the task name, the
  feature list with label/family/kind/unit, the vocabulary, the calibrator's parameters and the total anchor
  (format 2; format 1 had none).

:func:`load_predictor` refuses a folder of another ``format_version`` (or one without
``predictor.json``: the pickled models registered before versioned artifacts) with a one-line
:class:`~models.errors.ArtifactFormatError`. Pure apart from reading and writing that folder; no MLflow.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.catalog import FeatureInfo
from models.calibration import (
    Calibrator,
    ExpCalibrator,
    IsotonicCalibrator,
    PlattCalibrator,
    SigmoidCalibrator,
    TotalAnchor,
)
from models.encoding import CategoricalVocabulary, prepare_matrix
from models.errors import ArtifactFormatError

# Bump when the files below change meaning; a loader never guesses at another version's layout.
# 2: ``total_anchor`` (CLV total from BG/NBD, :class:`models.calibration.TotalAnchor`), null for other tasks.
FORMAT_VERSION = 2
PREDICTOR_FILE = "predictor.json"
BOOSTER_FILE = "booster.txt"
_CALIBRATORS: dict[str, type] = {cls.method: cls for cls in  # type: ignore[attr-defined]
                                 (SigmoidCalibrator, PlattCalibrator, IsotonicCalibrator, ExpCalibrator)}
_CATALOG_FIELDS = ("label", "family", "kind", "unit")


@dataclass(frozen=True)
class Predictor:
    """A fitted task model: what is registered, loaded back and scored with.

    ``predict`` gives the reported score (calibrated probability, or expected amount for CLV);
    ``predict_raw`` the booster's raw score (log-odds, or log-mean for Tweedie);
    ``contributions`` exact TreeSHAP in raw space (last column = base value, rows sum to the raw score);
    ``calibrate_raw`` maps raw scores to reported scores.

    Attributes
    ----------
    task: the task name (``models.tasks.TASKS`` key).
    feature_names: the booster's feature order.
    catalog: feature -> entry with ``label``, ``family``, ``kind``, ``unit`` (the reasons use them), for each feature.
    vocab: the categorical vocabulary fitted on the fit rows.
    booster: the trimmed LightGBM booster.
    calibrator: raw -> reported score (see :mod:`models.calibration`).
    total_anchor: for amount tasks, the population total from BG/NBD (:class:`models.calibration.TotalAnchor`);
        ``predict`` and :meth:`calibrator_for` then scale each population's total, ``calibrator`` is the fallback.
        None: the fixed ``calibrator``.
    """

    task: str
    feature_names: tuple[str, ...]
    catalog: Mapping[str, Any]
    vocab: CategoricalVocabulary
    booster: lgb.Booster
    calibrator: Calibrator
    total_anchor: TotalAnchor | None

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The LightGBM input for ``frame`` (raises ModelSignatureMismatch on a missing feature)."""
        return prepare_matrix(frame, self.feature_names, self.vocab)

    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw booster score per row of ``frame``: log-odds (binary) or log of the expected amount (Tweedie)."""
        return np.asarray(self.booster.predict(self.matrix(frame), raw_score=True), dtype=float)

    def calibrate_raw(self, raw: np.ndarray) -> np.ndarray:
        """The reported score for raw scores (monotone; used to explain the calibrated score)."""
        return self.calibrator.transform(np.asarray(raw, dtype=float))

    def calibrator_for(self, frame: pd.DataFrame, raw: np.ndarray | None = None) -> Calibrator:
        """The raw -> reported mapping for the population ``frame`` (``raw``: its raw scores, computed if None).

        The fixed calibrator, unless the predictor has a total anchor: then the scale that gives ``frame``'s rows
        BG/NBD's total corrected by its bias (falling back to the fixed one when the anchor column is unusable).
        """
        if self.total_anchor is None or not isinstance(self.calibrator, ExpCalibrator):
            return self.calibrator
        raw = self.predict_raw(frame) if raw is None else raw
        col = self.total_anchor.column
        anchor = frame[col].to_numpy(dtype=float, na_value=np.nan) if col in frame.columns else None
        return self.total_anchor.calibrator(anchor, raw, self.calibrator)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Reported score per row: calibrated probability (binary) or expected margin (clv; its total anchored)."""
        raw = self.predict_raw(frame)
        return self.calibrator_for(frame, raw).transform(raw)

    def contributions(self, frame: pd.DataFrame, *, num_threads: int = 0) -> np.ndarray:
        """Exact TreeSHAP per row in raw space: shape (n, n_features + 1), last column the base value.

        LightGBM's ``pred_contrib`` on every row: the reference, for a few rows (an explanation, a plot). Scoring
        many rows uses :class:`models.treeshap.PatternTreeShap`, the same numbers at a fraction of the cost.
        ``num_threads`` 0 lets LightGBM use every core (scoring runs alone); training keeps its own ``n_jobs``.
        """
        return np.asarray(self.booster.predict(self.matrix(frame), pred_contrib=True, num_threads=num_threads),
                          dtype=float)


def crmscore_version() -> str:
    """The installed crmscore version, or ``"unknown"`` when running from a source tree that is not installed."""
    try:
        return metadata.version("crmscore")
    except metadata.PackageNotFoundError:
        return "unknown"


def _calibrator_to_dict(calibrator: Calibrator) -> dict[str, Any]:
    return dataclasses.asdict(calibrator)  # floats and tuples of floats; ``method`` names the class


def _calibrator_from_dict(values: Mapping[str, Any]) -> Calibrator:
    cls = _CALIBRATORS.get(str(values.get("method")))
    if cls is None:
        raise ArtifactFormatError(f"Unknown calibrator {values.get('method')!r} in the model artifact; "
                                  f"format version {FORMAT_VERSION} knows {sorted(_CALIBRATORS)}. Retrain the model.")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def save_predictor(predictor: Predictor, folder: str | Path) -> Path:
    """Write ``predictor`` to ``folder`` (created) as ``booster.txt`` + ``predictor.json``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / BOOSTER_FILE).write_text(predictor.booster.model_to_string(), encoding="utf-8")
    doc = {
        "format_version": FORMAT_VERSION,
        "crmscore_version": crmscore_version(),
        "lightgbm_version": lgb.__version__,
        "task": predictor.task,
        "booster_file": BOOSTER_FILE,
        "features": [{"name": name, **{f: getattr(predictor.catalog[name], f, None) for f in _CATALOG_FIELDS}}
                     for name in predictor.feature_names],
        "vocabulary": {"categories": {c: list(v) for c, v in predictor.vocab.categories.items()},
                       "min_count": predictor.vocab.min_count, "max_categories": predictor.vocab.max_categories},
        "calibrator": _calibrator_to_dict(predictor.calibrator),
        "total_anchor": None if predictor.total_anchor is None else dataclasses.asdict(predictor.total_anchor),
    }
    (folder / PREDICTOR_FILE).write_text(json.dumps(doc, indent=1), encoding="utf-8")
    return folder


def load_predictor(folder: str | Path, *, source: str | None = None) -> Predictor:
    """Read a folder written by :func:`save_predictor`; ``source`` names it in messages (default: the folder).

    Raises
    ------
    ArtifactFormatError
        When the folder is of another format version (a folder without ``predictor.json`` is format 0,
        the pickled models of earlier releases); the message names both versions and says to retrain.
    """
    folder = Path(folder)
    source = source or str(folder)
    path = folder / PREDICTOR_FILE
    if not path.is_file():
        raise ArtifactFormatError(
            f"Model artifact {source} has format version 0 (no {PREDICTOR_FILE}: a pickled model from before "
            f"versioned artifacts); this crmscore ({crmscore_version()}) reads format version {FORMAT_VERSION}. "
            "Retrain with `crmscore train` to register a model in the current format.")
    doc = json.loads(path.read_text(encoding="utf-8"))
    found = doc.get("format_version")
    if found != FORMAT_VERSION:
        raise ArtifactFormatError(
            f"Model artifact {source} has format version {found} (written by crmscore "
            f"{doc.get('crmscore_version', 'unknown')}); this crmscore ({crmscore_version()}) reads format version "
            f"{FORMAT_VERSION}. Retrain with `crmscore train`, or load it with the crmscore version that wrote it.")
    features = doc["features"]
    voc = doc["vocabulary"]
    return Predictor(
        task=doc["task"],
        feature_names=tuple(f["name"] for f in features),
        catalog={f["name"]: FeatureInfo(**{k: f[k] for k in _CATALOG_FIELDS}) for f in features},
        vocab=CategoricalVocabulary(categories={c: tuple(v) for c, v in voc["categories"].items()},
                                    min_count=voc["min_count"], max_categories=voc["max_categories"]),
        booster=lgb.Booster(model_str=(folder / doc["booster_file"]).read_text(encoding="utf-8")),
        calibrator=_calibrator_from_dict(doc["calibrator"]),
        total_anchor=None if doc["total_anchor"] is None else TotalAnchor(**doc["total_anchor"]),
    )
