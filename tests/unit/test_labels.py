"""Labels on tiny hand-written frames. T = 2025-06-01, horizon 90 days: the window is [T, T + 90 days).

An event exactly at T IS in the label window; one a second before T is not; one at T + 90 days is not.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.errors import InvalidInputError, UnknownOptionError
from features.labels import make_labels
from tests.unit.test_features_families import (
    D,
    SEC,
    T,
    account_tables,
    leads,
    orders,
    spine,
    subscriptions,
)

H = 90
END = T + H * D


def test_churn_with_subscriptions_follows_coverage_of_the_window():
    s = subscriptions([
        ("a1", "basic", T - 100 * D, T + 10 * D, 10.0),   # a1: plan change inside the window -> not churn
        ("a1", "pro", T + 10 * D, None, 30.0),
        ("a2", "basic", T - 100 * D, END - SEC, 10.0),    # a2: ends a second before the window closes -> churn
        ("a3", "basic", T - 100 * D, END, 10.0),          # a3: ends exactly when the window closes -> not churn
        ("a4", "basic", T - 100 * D, T, 10.0),            # a4: ends exactly at T -> churn (at T itself)
        ("a5", "basic", T - 100 * D, T + D, 10.0),        # a5: gap of one second, then a new subscription -> churn
        ("a5", "basic", T + D + SEC, None, 10.0),
    ])
    ids = ["a1", "a2", "a3", "a4", "a5"]
    got = make_labels(account_tables(subscriptions=s), spine(ids), "churn", H)
    want = pd.Series(np.array([0, 1, 0, 1, 1], dtype=np.int8), name="churn")
    pd.testing.assert_series_equal(got, want)


def test_churn_without_subscriptions_means_no_completed_order_in_the_window():
    o = orders([
        ("a1", T, 5.0, 1.0, "completed"),            # at T: in the window -> a1 stays
        ("a2", END, 5.0, 1.0, "completed"),          # at T + 90 days: outside -> a2 churns
        ("a3", T + D, 5.0, 1.0, "refunded"),         # refunded is not a purchase -> a3 churns
    ])
    got = make_labels(account_tables(orders=o), spine(["a1", "a2", "a3"]), "churn", H)
    pd.testing.assert_series_equal(got, pd.Series(np.array([0, 1, 1], dtype=np.int8), name="churn"))


def test_clv_margin_sums_completed_margin_in_the_window():
    o = orders([
        ("a1", T - SEC, 100.0, 100.0, "completed"),  # before T: not in the label
        ("a1", T, 10.0, 4.0, "completed"),           # at T: in
        ("a1", END - SEC, 10.0, -1.5, "completed"),  # last second of the window: in (a loss-making order)
        ("a1", END, 10.0, 50.0, "completed"),        # at T + 90 days: out
        ("a1", T + D, 10.0, 9.0, "cancelled"),       # not completed: out
    ])
    sp = spine(["a1", "a2"])
    sp.index = [3, 1]
    got = make_labels(account_tables(orders=o), sp, "clv_margin", H)
    pd.testing.assert_series_equal(got, pd.Series([2.5, 0.0], index=[3, 1], name="clv_margin"))


@pytest.mark.parametrize(("label", "column"), [("reaches_sql", "sql_at"), ("won", "won_at")])
def test_lead_labels_read_the_stage_time_in_the_window(label, column):
    ld = leads([
        {"lead_id": "l1", "created_at": T - 9 * D, column: T},            # at T: in
        {"lead_id": "l2", "created_at": T - 9 * D, column: END - SEC},    # last second: in
        {"lead_id": "l3", "created_at": T - 9 * D, column: END},          # at T + 90 days: out
        {"lead_id": "l4", "created_at": T - 9 * D, column: T - SEC},      # before T: not a label
        {"lead_id": "l5", "created_at": T - 9 * D},                       # never
    ])
    got = make_labels({"leads": ld}, spine(["l1", "l2", "l3", "l4", "l5"]), label, H)
    pd.testing.assert_series_equal(got, pd.Series(np.array([1, 1, 0, 0, 0], dtype=np.int8), name=label))


def test_labels_over_several_cutoffs_use_each_rows_own_window():
    o = orders([("a1", T + 10 * D, 5.0, 2.0, "completed")])
    got = make_labels(account_tables(orders=o), spine(["a1", "a1"], [T, T + 20 * D]), "clv_margin", 30)
    assert got.tolist() == [2.0, 0.0]


def test_label_errors():
    with pytest.raises(UnknownOptionError, match=r"label='ltv' is not known; possible values are \['churn', 'clv_margin'"):
        make_labels(account_tables(), spine(["a1"]), "ltv", 90)
    with pytest.raises(InvalidInputError, match=r"horizon_days=0; expected a positive integer"):
        make_labels(account_tables(), spine(["a1"]), "churn", 0)
