"""Typed errors of the monitoring statistics (a ``models.errors.ModelError``, so the CLI prints them as one line)."""
from __future__ import annotations

from models.errors import ModelError


class MonitoringInputError(ModelError, ValueError):
    """Monitoring inputs that cannot be compared: mismatched bins, a feature missing from the frame, bad thresholds."""


class ScoresBlockedError(ModelError):
    """An integrity check refused the write-back of a scoring run (NaN or identical scores, a catastrophic score
    shift); ``crmscore score --accept-drift`` overrides it and records who did."""
