"""Categorical vocabulary and the LightGBM matrix."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.encoding import check_signature, fit_vocabulary, prepare_matrix
from models.errors import ModelSignatureMismatch


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "entity_id": pd.Series(["a", "b", "c", "d", "e"], dtype="str"),
        "cutoff_ts": pd.Timestamp("2025-01-01", tz="UTC"),
        "firm__segment": pd.Series(["smb", "smb", "enterprise", np.nan, "rare"], dtype="str"),
        "eng__logins_30d": pd.array([1, None, 3, 4, 5], dtype="Int64"),
        "sub__active": [True, False, True, True, False],
    })


def test_vocabulary_is_sorted_drops_rare_values_and_never_holds_nan():
    v = fit_vocabulary(_frame(), ["firm__segment"], min_count=1)
    assert v.categories["firm__segment"] == ("enterprise", "rare", "smb")
    v2 = fit_vocabulary(_frame(), ["firm__segment"], min_count=2)
    assert v2.categories["firm__segment"] == ("smb",)


def test_prepare_matrix_fixed_categories_unseen_to_nan_and_numeric_float():
    v = fit_vocabulary(_frame(), ["firm__segment"], min_count=2)
    score = _frame().assign(firm__segment=pd.Series(["smb", "never_seen", np.nan, "enterprise", "smb"], dtype="str"))
    m = prepare_matrix(score, ["eng__logins_30d", "firm__segment", "sub__active"], v)
    assert list(m.columns) == ["eng__logins_30d", "firm__segment", "sub__active"]
    assert m["firm__segment"].dtype == "category"
    assert list(m["firm__segment"].cat.categories) == ["smb"]
    assert m["firm__segment"].isna().tolist() == [False, True, True, True, False]
    assert m["eng__logins_30d"].dtype == np.float64 and np.isnan(m["eng__logins_30d"].iloc[1])
    assert m["sub__active"].tolist() == [1.0, 0.0, 1.0, 1.0, 0.0]


def test_missing_feature_column_raises_and_names_it():
    v = fit_vocabulary(_frame(), ["firm__segment"])
    with pytest.raises(ModelSignatureMismatch, match=r"missing \['buy__orders_90d'\]"):
        prepare_matrix(_frame(), ["eng__logins_30d", "buy__orders_90d"], v)


def test_extra_columns_named_and_refused_when_strict():
    with pytest.raises(ModelSignatureMismatch, match=r"extra \['sub__active'\]"):
        check_signature(_frame().columns, ["firm__segment", "eng__logins_30d"], allow_extra=False)
    check_signature(_frame().columns, ["firm__segment", "eng__logins_30d"])  # extras tolerated by default


def test_text_column_not_in_vocabulary_is_a_clear_error():
    v = fit_vocabulary(_frame(), [])
    with pytest.raises(ModelSignatureMismatch, match="'firm__segment' is not numeric"):
        prepare_matrix(_frame(), ["firm__segment"], v)
