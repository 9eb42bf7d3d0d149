"""The catalog's grows_with_time flag marks exactly the columns that grow one per day by construction: between two
cutoffs they grow by the elapsed days even when new events arrive in between (orders, a plan change, a new stage)."""
from __future__ import annotations

import numpy as np

from features.build import build_features
from tests.unit.test_features_families import (
    D,
    T,
    account_tables,
    activities,
    leads,
    orders,
    spine,
    subscriptions,
    tickets,
)

ELAPSED = 30


def growth(fs) -> dict[str, float]:
    """Value at T minus value at T - ELAPSED days, per numeric column (the spine holds one entity at both)."""
    early, late = fs.frame.iloc[0], fs.frame.iloc[1]
    return {c: float(late[c]) - float(early[c]) for c, info in fs.catalog.items() if info.kind == "numeric"}


def test_account_columns_that_grow_with_time():
    events_between = T - 10 * D
    tables = account_tables(
        orders=orders([("a1", T - 200 * D, 10.0, 2.0, "completed"), ("a1", events_between, 30.0, 5.0, "completed")]),
        subscriptions=subscriptions([("a1", "basic", T - 300 * D, events_between, 10.0),
                                     ("a1", "pro", events_between, None, 20.0)]),
        tickets=tickets([("a1", T - 100 * D, T - 99 * D, "low", 4), ("a1", events_between, None, "high", None)]),
        activities=activities([("a1", T - 90 * D, "login"), ("a1", events_between, "login")]),
    )
    fs = build_features(tables, spine(["a1", "a1"], [T - ELAPSED * D, T]), "account")
    flagged = {c for c, info in fs.catalog.items() if info.grows_with_time}
    assert flagged == {"firm__tenure_days", "sub__tenure_days", "buy__days_since_first_order"}
    g = growth(fs)
    for c in flagged:
        assert g[c] == ELAPSED, c
    # "days since last X" reset when X happens again: not flagged, and here they did not grow by 30
    for c in ("buy__days_since_order", "eng__days_since_login", "sup__days_since_ticket"):
        assert not fs.catalog[c].grows_with_time and g[c] != ELAPSED, c


def test_lead_columns_that_grow_with_time():
    tables = {"leads": leads([{"lead_id": "l1", "created_at": T - 100 * D, "mql_at": T - 80 * D,
                               "sql_at": T - 10 * D}]), "activities": activities([], key="lead_id")}
    fs = build_features(tables, spine(["l1", "l1"], [T - 5 * D - ELAPSED * D, T - 5 * D]), "lead")
    flagged = {c for c, info in fs.catalog.items() if info.grows_with_time}
    assert flagged == {"funnel__days_since_created", "funnel__days_since_mql", "funnel__days_since_sql"}
    g = growth(fs)
    for c in ("funnel__days_since_created", "funnel__days_since_mql"):
        assert g[c] == ELAPSED, c
    # days_since_sql starts when the lead reaches SQL (missing before), then grows; days_in_stage resets
    assert np.isnan(g["funnel__days_since_sql"]) and not fs.catalog["funnel__days_in_stage"].grows_with_time
    assert g["funnel__days_in_stage"] != ELAPSED
