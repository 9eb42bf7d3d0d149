"""Typed errors raised by the models package.

Each message says what was given, what was expected and what is missing, so the CLI can print it
as one line.
"""
from __future__ import annotations

from features.errors import BTYDFitError as BTYDFitError  # the BG/NBD maths lives in features.btyd (re-exported for callers)


class ModelError(Exception):
    """Base of every error raised by the models package."""


class UnknownTaskError(ModelError):
    """A task name that is not in ``models.tasks.TASKS``."""


class ModelSignatureMismatch(ModelError):
    """The features at hand differ from those the model was trained on (missing and/or unexpected columns)."""


class TrainingDataError(ModelError):
    """Training data that cannot produce an honest model (too few cutoffs, one class, misaligned label)."""


class NoChampionError(ModelError):
    """No model version of a task carries the ``champion`` alias yet."""


class ModelConfigError(ModelError):
    """Training parameters or settings that are unknown or out of range."""


class ArtifactFormatError(ModelError):
    """A saved model artifact of another format version than this code reads (retrain, or use the code that wrote it)."""
