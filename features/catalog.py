"""The feature catalog: what each feature column means, in words a marketer reads in a score's reasons."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pandas as pd

FAMILIES: dict[str, str] = {
    "eng": "engagement",
    "buy": "purchase",
    "sup": "support",
    "sub": "subscription",
    "firm": "firmographic",
    "funnel": "funnel",
    "btyd": "purchase model",
}


@dataclass(frozen=True)
class FeatureInfo:
    """Description of one feature column.

    Attributes
    ----------
    label : short readable phrase ("Logins in the last 30 days").
    family : one of FAMILIES' values (engagement, purchase, support, subscription, firmographic, funnel,
        purchase model).
    kind : "numeric" or "categorical" (categorical columns are `str` with NaN for missing).
    unit : how to phrase a value: count, days, currency, share, ratio, flag, score, employees, category.
    grows_with_time : True when the value of an unchanged entity grows by exactly one per day by construction
        (cutoff minus a timestamp fixed once set: tenure, days since created / first order / MQL). Drift
        monitoring then allows for the days elapsed since the reference (`models.monitoring.feature_drift`).
        "Days since last X" resets and is not flagged.
    """

    label: str
    family: str
    kind: Literal["numeric", "categorical"]
    unit: str
    grows_with_time: bool = False


@dataclass(frozen=True)
class FeatureSet:
    """Features of one spine.

    Attributes
    ----------
    frame : entity_id, cutoff_ts, then the feature columns; one row per spine row, in spine order and with the
        spine's index (so labels from `features.labels.make_labels` align by index).
    catalog : feature column -> FeatureInfo, for every feature column of `frame`, in column order.
    """

    frame: pd.DataFrame
    catalog: dict[str, FeatureInfo] = field(default_factory=dict)

    @property
    def feature_columns(self) -> list[str]:
        return list(self.catalog)
