"""Typed errors raised by the models package. Each message says what was found, what was expected and what to do."""
from __future__ import annotations


class ModelError(Exception):
    """Base of every error raised by the models package."""


class ModelSignatureMismatch(ModelError):
    """A stored model expects other features than the ones at hand (missing and/or unexpected columns)."""


class NoChampionError(ModelError):
    """No model version of a task carries the ``champion`` alias yet."""
