"""Baselines every trained model is compared with.

- binary tasks: a logistic regression on the same features (impute, one-hot with ``min_frequency``,
  scale), an sklearn Pipeline that takes the feature frame as is (pandas 3 ``str`` columns included);
- clv: predicting the training mean, and the historical formula
  ``margin per year x expected years active - acquisition cost`` with customer equity (its sum).
  The BG/NBD + Gamma-Gamma baseline lives in :mod:`models.btyd`.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

MISSING = "(missing)"


def _as_object_text(x: pd.DataFrame) -> np.ndarray:
    """Categorical block as an object array with missing -> "(missing)" (sklearn trips on pandas 3 str + NaN)."""
    df = pd.DataFrame(x)
    return df.astype(object).where(df.notna(), MISSING).astype(str).to_numpy(dtype=object)


def _as_float(x: pd.DataFrame) -> np.ndarray:
    df = pd.DataFrame(x)
    return df.apply(pd.to_numeric, errors="coerce").astype("float64").to_numpy(na_value=np.nan)


def logistic_baseline(
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    min_frequency: int = 20,
    C: float = 1.0,
    seed: int = 0,
) -> Pipeline:
    """An unfitted logistic-regression Pipeline over the named feature columns.

    Numeric: median imputation with missing indicators, then standardisation (log-odds linear in
    each feature). Categorical: missing as its own level, one-hot with levels rarer than
    ``min_frequency`` pooled, unseen levels at predict time -> the pooled level. L2 penalty ``C``.
    Fit with ``pipe.fit(frame, y)``; ``pipe.predict_proba(frame)[:, 1]`` is the probability.
    """
    transformers = []
    if numeric:
        transformers.append(("num", Pipeline([
            ("float", FunctionTransformer(_as_float)),
            ("impute", SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True)),
            ("scale", StandardScaler()),
        ]), list(numeric)))
    if categorical:
        transformers.append(("cat", Pipeline([
            ("text", FunctionTransformer(_as_object_text)),
            ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=min_frequency,
                                     sparse_output=False)),
        ]), list(categorical)))
    pre = ColumnTransformer(transformers, remainder="drop")
    return Pipeline([("pre", pre), ("model", LogisticRegression(C=C, max_iter=2000, random_state=seed))])


def annual_churn_rate_from_horizon(zero_share: float, horizon_days: int) -> float:
    """Annualise the share of previously buying customers with no margin in a ``horizon_days`` window.

    Under a constant hazard, P(no purchase in h) = 1 - (1 - c)^(h/365) for an annual churn rate c,
    so ``c = 1 - (1 - zero_share)^(365/h)``. A proxy: a quiet horizon is read as churn.
    """
    zero_share = float(np.clip(zero_share, 0.0, 1.0))
    return float(1.0 - (1.0 - zero_share) ** (365.0 / horizon_days))


def expected_years_active(annual_churn_rate: float, *, max_years: float = 10.0) -> float:
    """Expected remaining lifetime in years: ``1 / annual churn rate`` (geometric lifetime), capped at ``max_years``.

    The cap keeps a near-zero churn estimate from producing an unbounded lifetime value.
    """
    if annual_churn_rate <= 0:
        return float(max_years)
    return float(min(1.0 / annual_churn_rate, max_years))


def historical_clv(
    margin_per_year: pd.Series,
    acquisition_cost: pd.Series | None,
    annual_churn_rate: float,
    *,
    max_years: float = 10.0,
) -> pd.Series:
    """The seeds' historical formula: ``margin per year x expected years active - acquisition cost``.

    Parameters
    ----------
    margin_per_year: per account, the gross margin of completed orders in the 365 days before the cutoff.
    acquisition_cost: per account (NaN -> 0); None means no costs are known.
    annual_churn_rate: from :func:`annual_churn_rate_from_horizon` or a churn model's base rate.

    Returns
    -------
    Series aligned to ``margin_per_year`` (a lifetime amount, not a horizon amount). Customer equity is
    :func:`customer_equity` of it.
    """
    years = expected_years_active(annual_churn_rate, max_years=max_years)
    value = margin_per_year.astype(float).fillna(0.0) * years
    if acquisition_cost is not None:
        value = value - acquisition_cost.astype(float).fillna(0.0)
    return value.rename("historical_clv")


def historical_horizon_margin(
    margin_per_year: pd.Series, annual_churn_rate: float, horizon_days: int
) -> pd.Series:
    """The historical formula restricted to the label horizon, comparable with the CLV label.

    Expected active years inside a horizon of h years under a constant hazard
    ``lam = -ln(1 - c)`` are ``(1 - exp(-lam h)) / lam`` (h itself when c = 0); acquisition cost is
    sunk, so it is not subtracted.
    """
    h = horizon_days / 365.0
    c = float(np.clip(annual_churn_rate, 0.0, 1 - 1e-9))
    lam = -np.log1p(-c)
    years = h if lam == 0 else (1 - np.exp(-lam * h)) / lam
    return (margin_per_year.astype(float).fillna(0.0).clip(lower=0.0) * years).rename("historical_horizon_margin")


def customer_equity(clv: pd.Series) -> float:
    """Customer equity: the sum of the lifetime values of the current customers."""
    return float(clv.astype(float).sum())
