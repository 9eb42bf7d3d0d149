"""A seeded synthetic scoring world for the monitoring tests: a feature frame of 50 columns (counts with ties,
amounts with zeros, a feature with missing values, a tenure that ages, categoricals, noise), calibrated churn
probabilities from a known logistic model, and the thresholds the tests run with (THRESHOLDS: the packaged
``monitoring:`` block of configs/default.yaml, through tests/defaults.py).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from features.catalog import FeatureInfo
from models.monitoring import build_reference
from tests.defaults import monitor_thresholds

THRESHOLDS = monitor_thresholds()

CHANNELS = ("organic", "paid", "referral", "events", "partner")
CHANNEL_P = (0.35, 0.25, 0.2, 0.12, 0.08)
SEGMENTS = ("smb", "mid", "enterprise")
N_NOISE = 43

CATALOG: dict[str, FeatureInfo] = {
    "eng__logins_30d": FeatureInfo("Logins in the last 30 days", "engagement", "numeric", "count"),
    "buy__revenue_90d": FeatureInfo("Revenue in the last 90 days", "purchase", "numeric", "currency"),
    "sub__mrr": FeatureInfo("Monthly recurring revenue", "subscription", "numeric", "currency"),
    "sup__csat_mean": FeatureInfo("Average satisfaction score (1-5)", "support", "numeric", "score"),
    "firm__tenure_days": FeatureInfo("Days as a customer", "firmographic", "numeric", "days", grows_with_time=True),
    "firm__acquisition_channel": FeatureInfo("Acquisition channel", "firmographic", "categorical", "category"),
    "firm__segment": FeatureInfo("Customer segment", "firmographic", "categorical", "category"),
    **{f"eng__noise_{i}": FeatureInfo(f"Noise {i}", "engagement", "numeric", "ratio") for i in range(N_NOISE)},
}
# logit of churn = INTERCEPT + sum of COEF * standardised feature (the model's "importance" follows from them)
INTERCEPT = -2.0
COEF = {"eng__logins_30d": -0.9, "sub__mrr": -0.6, "firm__tenure_days": -0.3, "buy__revenue_90d": -0.2}


def features(rng: np.random.Generator, n: int, *, elapsed_days: float = 0.0, logins_shift_sd: float = 0.0,
             mrr_shift_sd: float = 0.0, channel_p: tuple[float, ...] = CHANNEL_P) -> pd.DataFrame:
    """``n`` entities of the stationary world; the base has aged by ``elapsed_days`` (tenure grows by it)."""
    revenue = rng.lognormal(5, 1, n) * (rng.random(n) > 0.05)
    csat = rng.integers(1, 6, n).astype(np.float64)
    csat[rng.random(n) < 0.3] = np.nan
    frame = {
        "eng__logins_30d": rng.poisson(3, n).astype(np.float64) + logins_shift_sd * np.sqrt(3),
        "buy__revenue_90d": revenue,
        "sub__mrr": rng.normal(100, 20, n) + mrr_shift_sd * 20,
        "sup__csat_mean": csat,
        "firm__tenure_days": rng.uniform(0, 1500, n).round() + elapsed_days,
        "firm__acquisition_channel": rng.choice(CHANNELS, n, p=channel_p),
        "firm__segment": rng.choice(SEGMENTS, n, p=(0.6, 0.3, 0.1)),
        **{f"eng__noise_{i}": rng.normal(0, 1, n) for i in range(N_NOISE)},
    }
    out = pd.DataFrame(frame)
    for c in ("firm__acquisition_channel", "firm__segment"):
        out[c] = out[c].astype("str")
    return out


_LOC_SCALE = {"eng__logins_30d": (3.0, np.sqrt(3)), "sub__mrr": (100.0, 20.0), "firm__tenure_days": (750.0, 433.0),
              "buy__revenue_90d": (230.0, 300.0)}


def churn_probability(frame: pd.DataFrame, *, elapsed_days: float = 0.0) -> np.ndarray:
    """The true (hence calibrated) churn probability; tenure enters as it was at the reference date."""
    z = np.full(len(frame), INTERCEPT)
    for col, beta in COEF.items():
        loc, scale = _LOC_SCALE[col]
        x = frame[col].to_numpy(dtype=np.float64) - (elapsed_days if col == "firm__tenure_days" else 0.0)
        z += beta * (x - loc) / scale
    return 1 / (1 + np.exp(-z))


def bands(p: np.ndarray) -> pd.Series:
    return pd.Series(np.select([p >= 0.3, p >= 0.15], ["high", "medium"], "low"), dtype="str")


def importance(frame: pd.DataFrame) -> dict[str, float]:
    """Mean |SHAP| of the logistic model: mean |beta (x - mean x) / scale|; 0 for the features it ignores."""
    out = {c: 0.0 for c in CATALOG}
    for col, beta in COEF.items():
        x = frame[col].to_numpy(dtype=np.float64)
        out[col] = float(np.abs(beta * (x - x.mean()) / _LOC_SCALE[col][1]).mean())
    return out


def reference(rng: np.random.Generator, n: int, *, n_boot: int = 20):
    """A ModelReference frozen from the population scored at the training as-of date (with its scores and bands)
    and a held-out frame with outcomes, ``n`` rows each."""
    population = features(rng, n)
    held_out = features(rng, n)
    p = churn_probability(held_out)
    y = (rng.random(n) < p).astype(np.float64)
    scores = churn_probability(population)
    return build_reference(population, CATALOG, scores, bands(scores), importance(held_out), held_out_scores=p,
                           held_out_labels=y, model_version="7", kind="binary", seed=0, n_boot=n_boot,
                           level=THRESHOLDS.level)
