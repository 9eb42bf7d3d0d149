"""Realized performance per slice (segment, source, country...) of one matured run, each figure with its interval.

Grain: one record per (slice column, slice value) of the matured rows of one run, for slices of at least
``min_rows`` rows. The figures and intervals are those of the held-out reference (``reference.held_out_metrics``:
AUC with the Hanley-McNeil interval, the others bootstrapped with the given seed), so a slice of a backtested run
reads like the slice of the model card it is compared with. Pure: no clock, no I/O.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from models.monitoring.reference import Estimate, held_out_metrics


def realized_slices(rows: pd.DataFrame, slice_columns: Sequence[str], *, kind: str, min_rows: int, seed: int,
                    draws: int, level: float) -> list[dict[str, Any]]:
    """Metrics with intervals per slice of the matured rows of one run.

    Parameters
    ----------
    rows : matured rows, one per entity: ``score``, ``y`` (the realized outcome) and the slice columns (columns
        absent from it are skipped; a missing value is the slice "(missing)").
    slice_columns : the task's slice columns (``TaskSpec.slice_columns``).
    kind : "binary" or "regression"; min_rows : smaller slices are left out (noise).
    seed, draws, level : bootstrap seed, resamples and confidence level of the intervals.

    Returns
    -------
    Records ``{"slice_column", "slice_value", "n", "metrics": {name: Estimate}}`` sorted by column then value.
    """
    out: list[dict[str, Any]] = []
    for col in slice_columns:
        if col not in rows.columns:
            continue
        keys = rows[col].astype(object).where(rows[col].notna(), "(missing)").astype(str)
        for value, part in rows.groupby(keys.to_numpy(), sort=True):
            if len(part) < min_rows:
                continue
            metrics, _, _ = held_out_metrics(kind, part["y"].to_numpy(dtype=np.float64),
                                             part["score"].to_numpy(dtype=np.float64), seed=seed, n_boot=draws,
                                             level=level)
            out.append({"slice_column": col, "slice_value": str(value), "n": len(part),
                        "metrics": dict(sorted(metrics.items()))})
    return out


__all__ = ["realized_slices"]
