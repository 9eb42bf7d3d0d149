"""The vectorised engine and GX's pandas engine give the same result for every rule, on every corrupt extract.

Same status, offending-row count, sample ids (and their order) and detail for each of the contract rules, on the valid
base extract, each defect of test_validation_defects.py, and a few cases that stress what the two could disagree on:
many offending rows (the first 20 decide the sample ids), duplicates in an unsorted key (no neighbour shortcut), nulls
in a unique column, an all-null optional column.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from data_contracts.testing import BUILD_NOW, build_valid_extract
from data_contracts.validate import validate_extract
from tests.integration.test_validation_defects import DEFECTS, Tables, _copy


@pytest.fixture(scope="module")
def base() -> Tables:
    return build_valid_extract(seed=11)


def _results(tables: Tables, engine: str, **kwargs) -> list[tuple]:
    report = validate_extract(tables, now=BUILD_NOW, engine=engine, **kwargs)
    return [(r.rule, r.status, r.unexpected_count, r.sample_ids, r.detail, r.column) for r in report.results]


def _assert_same(tables: Tables, **kwargs) -> list[tuple]:
    gx = _results(tables, "gx", **kwargs)
    vec = _results(tables, "vectorised", **kwargs)
    assert vec == gx
    return vec


def test_the_valid_extract_gives_the_same_results(base: Tables) -> None:
    results = _assert_same(base)
    assert all(status != "failed" for _, status, *_ in results)


@pytest.mark.parametrize(("inject", "expected"), DEFECTS, ids=[d[0].__name__ for d in DEFECTS])
def test_each_defect_gives_the_same_results(base: Tables, inject, expected: set[str]) -> None:
    tables = _copy(base)
    inject(tables)
    results = _assert_same(tables)
    assert {rule for rule, status, *_ in results if status == "failed"} == expected


def _many_bad_margins(t: Tables) -> None:
    o = t["orders"]
    bad = np.arange(3, len(o), 7)  # more than 20 offending rows: GX's first 20 positions give the sample ids
    o.loc[bad, "gross_margin"] = o.loc[bad, "amount"] + 1.0


def _duplicates_in_unsorted_key(t: Tables) -> None:
    o = t["orders"].sample(frac=1.0, random_state=5).reset_index(drop=True)
    o.loc[[10, 40, 41], "order_id"] = o.loc[[3, 7, 3], "order_id"].to_numpy()
    t["orders"] = o


def _duplicates_in_sorted_key(t: Tables) -> None:
    a = t["activities"]
    a.loc[[5, 30, 31, 32], "activity_id"] = a.loc[[4, 29, 29, 29], "activity_id"].to_numpy()


def _null_keys(t: Tables) -> None:
    t["accounts"].loc[[2, 9], "account_id"] = np.nan  # not_null fails; unique looks at the other values only


def _null_column_and_future_rows(t: Tables) -> None:
    t["accounts"]["country"] = pd.Series(np.nan, index=t["accounts"].index, dtype="str")
    t["activities"].loc[[1, 2, 50], "occurred_at"] = BUILD_NOW + pd.Timedelta(hours=3)
    t["leads"].loc[[0, 4], "company_size"] = [0, -3]


@pytest.mark.parametrize("inject", [_many_bad_margins, _duplicates_in_unsorted_key, _duplicates_in_sorted_key,
                                    _null_keys, _null_column_and_future_rows], ids=lambda f: f.__name__.strip("_"))
def test_harder_cases_give_the_same_results(base: Tables, inject) -> None:
    tables = _copy(base)
    inject(tables)
    results = _assert_same(tables)
    assert any(status == "failed" for _, status, *_ in results)  # the case broke something


def test_unknown_engine_is_refused(base: Tables) -> None:
    from data_contracts.errors import ValidationParameterError

    with pytest.raises(ValidationParameterError, match="engine='spark'; possible values are 'vectorised', 'gx'"):
        validate_extract(base, now=BUILD_NOW, engine="spark")
