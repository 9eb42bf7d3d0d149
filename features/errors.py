"""Typed errors of the features package. Each message says what was given, what was expected and what to do."""
from __future__ import annotations


class FeatureError(Exception):
    """Base of every error raised by the features package."""


class UnknownOptionError(FeatureError, ValueError):
    """A population, label or entity name that the package does not know."""


class MissingInputError(FeatureError):
    """A table or column that the requested spine, label or feature family needs is not in the extract."""


class InvalidInputError(FeatureError, ValueError):
    """An input whose values or dtypes cannot be used (naive or missing cutoffs, duplicated ids, bad parameters)."""


class InsufficientHistoryError(FeatureError):
    """The extract holds too little history for the requested training cutoffs."""


class BTYDFitError(FeatureError):
    """A BG/NBD or Gamma-Gamma fit that cannot run or did not converge."""
