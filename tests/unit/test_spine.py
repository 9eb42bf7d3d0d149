"""Spine eligibility and training cutoffs on tiny hand-written frames. T = 2025-06-01 00:00 UTC."""
from __future__ import annotations

import pandas as pd
import pytest

from features.errors import InsufficientHistoryError, InvalidInputError, UnknownOptionError
from features.spine import build_spine, history_end, history_start, training_cutoffs
from tests.unit.test_features_families import (
    D,
    SEC,
    T,
    accounts,
    activities,
    col,
    leads,
    orders,
    subscriptions,
)


def spine_rows(sp: pd.DataFrame) -> list[tuple[str, str]]:
    return [(e, f"{c:%Y-%m-%d %H:%M:%S}") for e, c in zip(sp["entity_id"], sp["cutoff_ts"], strict=True)]


def customer_tables(with_subscriptions: bool) -> dict[str, pd.DataFrame]:
    ids = ("ok", "no_consent", "deleted", "not_yet", "created_1s_before", "churned", "ends_at_t", "plan_change")
    acc = accounts(ids,
                   consent_profiling=col([True, False, True, True, True, True, True, True], "bool"),
                   deleted_at=col([None, None, T - 400 * D, None, None, None, None, None], "ts"),
                   created_at=col([T - 400 * D, T - 400 * D, T - 400 * D, T, T - SEC, T - 400 * D, T - 400 * D,
                                   T - 400 * D], "ts"))
    subs = subscriptions([
        ("ok", "pro", T - 300 * D, None, 10.0),
        ("no_consent", "pro", T - 300 * D, None, 10.0),
        ("deleted", "pro", T - 300 * D, None, 10.0),
        ("not_yet", "pro", T - 300 * D, None, 10.0),
        ("created_1s_before", "pro", T - SEC, None, 10.0),
        ("churned", "pro", T - 300 * D, T - SEC, 10.0),   # ended a second before T: not active
        ("ends_at_t", "pro", T - 300 * D, T, 10.0),       # ends exactly at T: still active at T
        ("plan_change", "basic", T - 300 * D, T - D, 5.0),
        ("plan_change", "pro", T - D, None, 10.0),
    ])
    o = orders([(a, T - 10 * D, 5.0, 1.0, "completed") for a in ids if a != "churned"]
               + [("churned", T - 366 * D, 5.0, 1.0, "completed")])   # last order outside the 365-day look-back
    tables = {"accounts": acc, "orders": o, "activities": activities([])}
    if with_subscriptions:
        tables["subscriptions"] = subs
    return tables


@pytest.mark.parametrize("with_subscriptions", [True, False], ids=["subscriptions", "order-lookback"])
def test_active_customers(with_subscriptions):
    sp = build_spine(customer_tables(with_subscriptions), "active_customers", [T])
    assert sp["entity_id"].dtype == "str" and str(sp["cutoff_ts"].dtype) == "datetime64[us, UTC]"
    assert spine_rows(sp) == [
        ("created_1s_before", "2025-06-01 00:00:00"),
        ("ends_at_t", "2025-06-01 00:00:00"),
        ("ok", "2025-06-01 00:00:00"),
        ("plan_change", "2025-06-01 00:00:00"),
    ]


def test_order_lookback_boundaries():
    o = orders([("a1", T - 365 * D, 5.0, 1.0, "completed"),        # first instant of the look-back: in
                ("a2", T - 365 * D - SEC, 5.0, 1.0, "completed"),  # a second earlier: out
                ("a3", T, 5.0, 1.0, "completed"),                  # at T: not known yet
                ("a4", T - D, 5.0, 1.0, "refunded")])              # not completed
    tables = {"accounts": accounts(("a1", "a2", "a3", "a4")), "orders": o, "activities": activities([])}
    assert build_spine(tables, "active_customers", [T])["entity_id"].tolist() == ["a1"]
    assert build_spine(tables, "active_customers", [T], churn_lookback_days=366)["entity_id"].tolist() == ["a1", "a2"]


def test_several_cutoffs_are_sorted_and_each_uses_its_own_time():
    tables = customer_tables(True)
    sp = build_spine(tables, "active_customers", [T, T - 2 * D])
    assert spine_rows(sp) == [
        ("churned", "2025-05-30 00:00:00"),
        ("ends_at_t", "2025-05-30 00:00:00"),
        ("ok", "2025-05-30 00:00:00"),
        ("plan_change", "2025-05-30 00:00:00"),
        ("created_1s_before", "2025-06-01 00:00:00"),
        ("ends_at_t", "2025-06-01 00:00:00"),
        ("ok", "2025-06-01 00:00:00"),
        ("plan_change", "2025-06-01 00:00:00"),
    ]


def test_lead_populations():
    ld = leads([
        {"lead_id": "open", "created_at": T - 5 * D},
        {"lead_id": "open_sql_at_t", "created_at": T - 5 * D, "sql_at": T},          # SQL exactly at T: still open
        {"lead_id": "not_yet", "created_at": T},
        {"lead_id": "sql", "created_at": T - 5 * D, "sql_at": T - SEC},
        {"lead_id": "sql_won_later", "created_at": T - 5 * D, "sql_at": T - D, "won_at": T + D},
        {"lead_id": "won", "created_at": T - 5 * D, "sql_at": T - 3 * D, "won_at": T - D},
        {"lead_id": "lost", "created_at": T - 5 * D, "lost_at": T - D},
        {"lead_id": "no_consent", "created_at": T - 5 * D, "consent_profiling": False},
        {"lead_id": "deleted", "created_at": T - 5 * D, "deleted_at": T - D},
    ])
    tables = {"leads": ld, "activities": activities([], key="lead_id")}
    assert build_spine(tables, "open_leads", [T])["entity_id"].tolist() == ["open", "open_sql_at_t"]
    assert build_spine(tables, "sql_leads", [T])["entity_id"].tolist() == ["sql", "sql_won_later"]


def test_spine_errors():
    tables = customer_tables(True)
    with pytest.raises(UnknownOptionError, match=r"population='customers' is not known; possible values are"):
        build_spine(tables, "customers", [T])
    with pytest.raises(InvalidInputError, match=r"no cutoffs given"):
        build_spine(tables, "active_customers", [])
    with pytest.raises(InvalidInputError, match=r"cutoff is missing \(NaT\)"):
        build_spine(tables, "active_customers", [pd.NaT])


def test_training_cutoffs_step_back_from_the_last_complete_label_window():
    got = training_cutoffs("2026-01-01", 90, count=3, step_days=30, earliest_ts="2024-01-01", min_history_days=90)
    assert [f"{c:%Y-%m-%d}" for c in got] == ["2025-08-04", "2025-09-03", "2025-10-03"]
    assert all(c + pd.Timedelta(days=90) <= pd.Timestamp("2026-01-01", tz="UTC") for c in got)
    assert str(got[0].tz) == "UTC"


def test_training_cutoffs_adapt_to_a_short_history():
    # One year of transactions, a 180-day horizon: 185 days remain, minus 90 of minimum history -> 4 monthly cutoffs.
    got = training_cutoffs("2026-01-01", 180, count=12, step_days=30, earliest_ts="2025-01-01", min_history_days=90)
    assert [f"{c:%Y-%m-%d}" for c in got] == ["2025-04-06", "2025-05-06", "2025-06-05", "2025-07-05"]


def test_training_cutoffs_refuse_too_little_history():
    with pytest.raises(InsufficientHistoryError,
                       match=r"holds 200 days of history \(2025-06-15 to 2026-01-01\); 2 training cutoffs with a "
                             r"180-day horizon, 30 days apart and 90 days of history before the first need at least "
                             r"300 days"):
        training_cutoffs("2026-01-01", 180, count=12, step_days=30, earliest_ts="2025-06-15", min_history_days=90)
    with pytest.raises(InvalidInputError, match=r"step_days=0; expected an integer >= 1"):
        training_cutoffs("2026-01-01", 90, count=3, step_days=0, earliest_ts="2024-01-01")


def test_history_start_reads_the_event_logs():
    tables = customer_tables(True)
    # Accounts created 400 days before T and a subscription of 300 days do not count: orders do.
    assert history_start(tables) == T - 366 * D
    acts = activities([("ok", T - 500 * D, "login")])
    assert history_start({**tables, "activities": acts}) == T - 500 * D


def test_history_end_is_the_latest_event_before_the_as_of():
    tables = customer_tables(True)
    acts = activities([("ok", T - 10 * D, "login"), ("ok", T - 2 * D, "login"), ("ok", T + 5 * D, "login")])
    with_acts = {**tables, "activities": acts}
    assert history_end(with_acts, before=T) == max(T - 2 * D, history_end(tables, before=T))
    assert history_end(with_acts, before=T - 2 * D) < T - 2 * D  # strictly before
    assert history_end({"accounts": tables["accounts"]}, before=T) is None  # no event log: nothing to tell
