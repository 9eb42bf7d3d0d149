"""What every feature family receives: the spine as arrays, and a collector for columns and their catalog."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features._events import NAT, require_columns, to_us
from features.catalog import FAMILIES, FeatureInfo
from features.errors import InvalidInputError


@dataclass(frozen=True)
class Query:
    """The spine as arrays.

    Attributes
    ----------
    entities : unique entity ids of the spine; an entity's code is its position here.
    codes : entity code of each spine row.
    t : cutoff of each spine row, int64 microseconds UTC.
    entity_ids : the spine's entity_id column.
    windows_days : look-back windows of the windowed features.
    """

    entities: pd.Index
    codes: np.ndarray
    t: np.ndarray
    entity_ids: pd.Series
    windows_days: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.codes)


@dataclass
class Columns:
    """Feature columns of one family, in the order added, with their catalog entries."""

    prefix: str
    values: dict[str, object] = field(default_factory=dict)
    catalog: dict[str, FeatureInfo] = field(default_factory=dict)

    def num(self, name: str, values: np.ndarray, label: str, unit: str, *, grows_with_time: bool = False) -> None:
        self._add(name, np.asarray(values), label, "numeric", unit, grows_with_time=grows_with_time)

    def cat(self, name: str, values: np.ndarray | pd.api.extensions.ExtensionArray, label: str) -> None:
        if not (isinstance(values, pd.api.extensions.ExtensionArray) and values.dtype == "str"):
            values = pd.Series(np.asarray(values, dtype=object)).astype("str").array
        self._add(name, values, label, "categorical", "category")

    def _add(self, name: str, values: object, label: str, kind: str, unit: str, *,
             grows_with_time: bool = False) -> None:
        col = f"{self.prefix}__{name}"
        if col in self.values:
            raise KeyError(f"feature column {col} defined twice")
        self.values[col] = values
        self.catalog[col] = FeatureInfo(label=label, family=FAMILIES[self.prefix], kind=kind, unit=unit,
                                         grows_with_time=grows_with_time)


def window_phrase(days: int) -> str:
    return "in the last year" if days == 365 else f"in the last {days} days"


def spine_arrays(spine: pd.DataFrame) -> tuple[pd.Index, np.ndarray, np.ndarray]:
    require_columns(spine, "spine", ("entity_id", "cutoff_ts"), "labels and features")
    t = to_us(spine["cutoff_ts"], what="spine.cutoff_ts")
    if (t == NAT).any():
        raise InvalidInputError("spine.cutoff_ts has missing values; every spine row needs a cutoff.")
    if spine["entity_id"].isna().any():
        raise InvalidInputError("spine.entity_id has missing values; every spine row needs an entity id.")
    codes, uniques = pd.factorize(spine["entity_id"])
    return pd.Index(uniques), np.asarray(codes, dtype=np.int64), t
