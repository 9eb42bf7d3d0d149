"""Seeded simulations of the monitor's operating characteristics (for tests and the benchmark page)."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from features.catalog import FeatureInfo
from models.monitoring.drift import feature_drift
from models.monitoring.reference import ModelReference, ScoreReference, build_feature_reference
from models.monitoring.stats import wilson_interval
from models.monitoring.thresholds import MonitorThresholds

_INFO = FeatureInfo("simulated", "engagement", "numeric", "count")


def _reference(frame: pd.DataFrame) -> ModelReference:
    empty = ScoreReference((), (0,), 0, None, None, None, (), ())
    features = tuple(build_feature_reference(c, _INFO, frame[c]) for c in frame.columns)
    return ModelReference("simulated", "binary", features, empty, importance={c: 1.0 for c in frame.columns})


def detection_curve(shifts_sd: Sequence[float], sizes: Sequence[int], *, replicates: int, null_features: int,
                    thresholds: MonitorThresholds, seed: int) -> pd.DataFrame:
    """Detection rate of a mean shift in one standard-normal feature, by shift and sample size.

    Each replicate draws a reference and a current sample of ``size`` rows each: the tested feature N(0, 1) in the
    reference and N(shift, 1) in the run, next to ``null_features`` stationary N(0, 1) features (so the
    multiple-testing correction bites as in a real model), then runs :func:`feature_drift`.

    Returns
    -------
    One row per (n_rows, shift_sd): replicates, detected (status warn or alert), detection_rate with its Wilson
    interval (low, high) at ``thresholds.level``, and ranked_first (share of replicates where the shifted feature
    ranks first).
    """
    rng = np.random.default_rng(seed)
    cols = ["shifted", *[f"null_{i}" for i in range(null_features)]]
    rows = []
    for n in sizes:
        for shift in shifts_sd:
            detected = first = 0
            for _ in range(replicates):
                ref = pd.DataFrame(rng.standard_normal((n, len(cols))), columns=cols)
                cur = pd.DataFrame(rng.standard_normal((n, len(cols))), columns=cols)
                cur["shifted"] += shift
                drift = feature_drift(_reference(ref), cur, elapsed_days=0, thresholds=thresholds)
                row = drift.set_index("feature").loc["shifted"]
                detected += row["status"] in ("warn", "alert")
                first += row["rank"] == 1
            lo, hi = wilson_interval(detected, replicates, thresholds.level)
            rows.append({"n_rows": n, "shift_sd": float(shift), "replicates": replicates, "detected": detected,
                         "detection_rate": detected / replicates, "low": lo, "high": hi,
                         "ranked_first": first / replicates})
    return pd.DataFrame(rows)
