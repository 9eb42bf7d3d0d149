"""Typed errors of the monitoring statistics (a ``models.errors.ModelError``, so the CLI prints them as one line)."""
from __future__ import annotations

from models.errors import ModelError


class MonitoringInputError(ModelError, ValueError):
    """Monitoring inputs that cannot be compared: mismatched bins, a feature missing from the frame, bad thresholds."""
