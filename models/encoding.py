"""Categorical vocabulary and the feature matrix handed to LightGBM.

LightGBM rejects pandas 3 ``str``/object columns; it accepts ``category``. The vocabulary is fitted
once on training rows, stored in the :class:`~models.predictor.Predictor`, and applied identically at
training and scoring time: a ``category`` column with FIXED categories, so a value never seen in
training (or dropped as rare) becomes NaN, which LightGBM routes like a missing value.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.errors import ModelSignatureMismatch

ID_COLUMNS = ("entity_id", "cutoff_ts")


@dataclass(frozen=True)
class CategoricalVocabulary:
    """The categories of each categorical feature, in a fixed order (sorted), as seen in training.

    Attributes
    ----------
    categories: column -> tuple of category values (codes follow this order).
    min_count: values seen fewer times than this in training were left out (mapped to NaN).
    max_categories: at most this many most frequent values were kept per column.
    """

    categories: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    min_count: int = 1
    max_categories: int = 200

    @property
    def columns(self) -> tuple[str, ...]:
        return tuple(self.categories)


def categorical_columns(catalog: Mapping[str, object], feature_names: Iterable[str]) -> list[str]:
    """The feature names whose catalog entry has ``kind == "categorical"``, in feature order."""
    out = []
    for name in feature_names:
        info = catalog.get(name)
        if info is not None and getattr(info, "kind", None) == "categorical":
            out.append(name)
    return out


def fit_vocabulary(
    frame: pd.DataFrame,
    categorical: Sequence[str],
    *,
    min_count: int = 1,
    max_categories: int = 200,
) -> CategoricalVocabulary:
    """Fit the vocabulary of ``categorical`` columns on training rows.

    Parameters
    ----------
    frame: training rows (one per entity and cutoff); only the named columns are read.
    categorical: columns to encode; values are compared as strings, NaN is never a category.
    min_count: drop values seen fewer times (they become NaN), so rare values do not get their own splits.
    max_categories: keep at most this many most frequent values (ties broken by value) per column.

    Returns
    -------
    CategoricalVocabulary with sorted categories per column.
    """
    cats: dict[str, tuple[str, ...]] = {}
    for col in categorical:
        if col not in frame.columns:
            raise ModelSignatureMismatch(
                f"Cannot fit the vocabulary: categorical column {col!r} is missing from the training frame.")
        counts = frame[col].dropna().astype(str).value_counts()
        counts = counts[counts >= min_count]
        # Most frequent first, value as tie-breaker: deterministic whatever the row order.
        order = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:max_categories]
        cats[col] = tuple(sorted(v for v, _ in order))
    return CategoricalVocabulary(categories=cats, min_count=min_count, max_categories=max_categories)


def check_signature(columns: Iterable[str], feature_names: Sequence[str], *, allow_extra: bool = True) -> None:
    """Raise :class:`ModelSignatureMismatch` when ``columns`` lack a model feature.

    Parameters
    ----------
    columns: columns available (a frame's columns).
    feature_names: the model's features.
    allow_extra: if False, feature-like columns the model does not know (anything but entity_id and
        cutoff_ts) are an error too; either way they are named in the message.
    """
    have = list(columns)
    missing = [c for c in feature_names if c not in set(have)]
    extra = [c for c in have if c not in set(feature_names) and c not in ID_COLUMNS]
    if missing or (extra and not allow_extra):
        raise ModelSignatureMismatch(
            f"Feature columns do not match the model: missing {missing}, extra {extra}. "
            f"The model expects {len(feature_names)} features; rebuild the features with the same "
            "feature configuration as at training, or retrain the model."
        )


def prepare_matrix(frame: pd.DataFrame, feature_names: Sequence[str], vocab: CategoricalVocabulary) -> pd.DataFrame:
    """The LightGBM input: ``feature_names`` in order, numeric as float64, categoricals as fixed categories.

    Parameters
    ----------
    frame: rows to score or train on (entity_id, cutoff_ts, feature columns; extra columns ignored).
    feature_names: the model's feature order.
    vocab: the training vocabulary; columns in it become ``category`` with exactly its categories
        (unseen values -> NaN); every other column is cast to float64 (nullable NA -> NaN, bool -> 0/1).

    Returns
    -------
    DataFrame with the same index and row order as ``frame``.
    """
    check_signature(frame.columns, feature_names)
    out: dict[str, object] = {}
    for col in feature_names:
        s = frame[col]
        if col in vocab.categories:
            cats = list(vocab.categories[col])
            text = s.astype(object).where(s.notna(), None).map(lambda v: v if v is None else str(v))
            # Unseen (or rare) values become missing explicitly; pandas deprecates doing it implicitly.
            known = text.where(text.isin(cats), None)
            out[col] = pd.Categorical(known, categories=cats)
        else:
            try:
                out[col] = pd.to_numeric(s, errors="raise").astype("float64").to_numpy(na_value=np.nan)
            except (TypeError, ValueError) as exc:
                raise ModelSignatureMismatch(
                    f"Feature {col!r} is not numeric (dtype {s.dtype}) but is not in the categorical "
                    f"vocabulary either; mark it kind='categorical' in the catalog. ({exc})") from exc
    return pd.DataFrame(out, index=frame.index)
