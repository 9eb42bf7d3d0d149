"""Leakage properties, for every feature family and every label, on small random CRMs (hypothesis, derandomized).

- Features: adding, changing or deleting anything dated at or after the cutoff leaves every feature unchanged.
- Labels: adding or changing anything dated before the cutoff leaves every label unchanged (and so does anything
  dated after the label window).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.build import build_features
from features.engagement import ACTIVITY_TYPES
from features.labels import make_labels

T1 = pd.Timestamp("2025-06-01T00:00:00", tz="UTC")
T2 = pd.Timestamp("2025-07-16T00:00:00", tz="UTC")  # the later cutoff: perturbations start here (or at T1)
DAY = 86_400
SETTINGS = settings(max_examples=25, derandomize=True, database=None, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

COLUMNS: dict[str, dict[str, str]] = {
    "accounts": {"account_id": "str", "created_at": "ts", "segment": "str", "industry": "str", "country": "str",
                 "acquisition_channel": "str", "acquisition_cost": "float", "consent_profiling": "bool",
                 "deleted_at": "ts"},
    "leads": {"lead_id": "str", "created_at": "ts", "source": "str", "industry": "str", "company_size": "int",
              "job_level": "str", "country": "str", "mql_at": "ts", "sql_at": "ts", "won_at": "ts", "lost_at": "ts",
              "account_id": "str", "consent_profiling": "bool", "deleted_at": "ts"},
    "subscriptions": {"subscription_id": "str", "account_id": "str", "plan": "str", "started_at": "ts",
                      "ended_at": "ts", "mrr": "float"},
    "orders": {"order_id": "str", "account_id": "str", "ordered_at": "ts", "amount": "float",
               "gross_margin": "float", "status": "str"},
    "activities": {"activity_id": "str", "account_id": "str", "lead_id": "str", "occurred_at": "ts", "type": "str",
                   "channel": "str"},
    "tickets": {"ticket_id": "str", "account_id": "str", "opened_at": "ts", "closed_at": "ts", "priority": "str",
                "csat": "int"},
}
DTYPES = {"str": "str", "ts": "datetime64[us, UTC]", "float": "float64", "int": "Int64", "bool": "bool"}


def frame(table: str, rows: list[dict]) -> pd.DataFrame:
    """A canonical frame (contract columns and dtypes) from row dicts; timestamps given as seconds from T1."""
    cols = COLUMNS[table]
    data = {}
    for col, kind in cols.items():
        values = [r.get(col) for r in rows]
        if kind == "ts":
            values = [None if v is None else T1 + pd.Timedelta(seconds=int(v)) for v in values]
            data[col] = pd.Series(pd.to_datetime(values, utc=True), dtype="datetime64[us, UTC]")
        else:
            data[col] = pd.Series(values, dtype=DTYPES[kind])
    return pd.DataFrame(data)


# Offsets in seconds from T1, weighted towards the edges: the cutoffs, a second either side, window edges.
EDGES = [0, -1, 1, T2_OFF := int((T2 - T1).total_seconds()), T2_OFF - 1, T2_OFF + 1,
         -30 * DAY, -90 * DAY, -120 * DAY, -365 * DAY, 90 * DAY, 365 * DAY]
offsets = st.one_of(st.sampled_from(EDGES), st.integers(-420 * DAY, 420 * DAY))
N_ACC, N_LEAD = 3, 3


@st.composite
def worlds(draw) -> dict[str, list[dict]]:
    acc = [{"account_id": f"a{i}", "created_at": -500 * DAY + i if i < 2 else draw(offsets), "segment": draw(st.sampled_from(["smb", "ent"])),
            "industry": draw(st.sampled_from([None, "retail"])), "country": "DE", "acquisition_channel": "organic",
            "acquisition_cost": 10.0, "consent_profiling": True, "deleted_at": None} for i in range(N_ACC)]
    maybe = st.one_of(st.none(), offsets)
    leads = [{"lead_id": f"l{i}", "created_at": draw(offsets), "source": "web", "industry": None,
              "company_size": draw(st.one_of(st.none(), st.integers(1, 500))), "job_level": "vp", "country": None,
              "mql_at": draw(maybe), "sql_at": draw(maybe), "won_at": draw(maybe), "lost_at": draw(maybe),
              "account_id": None, "consent_profiling": True, "deleted_at": None} for i in range(N_LEAD)]
    acts = []
    for k in range(draw(st.integers(0, 25))):
        owner = draw(st.integers(0, N_ACC + N_LEAD - 1))
        acts.append({"activity_id": f"x{k}", "account_id": f"a{owner}" if owner < N_ACC else None,
                     "lead_id": None if owner < N_ACC else f"l{owner - N_ACC}", "occurred_at": draw(offsets),
                     "type": draw(st.sampled_from(list(ACTIVITY_TYPES))), "channel": None})
    orders = [{"order_id": f"o{k}", "account_id": f"a{draw(st.integers(0, N_ACC - 1))}", "ordered_at": draw(offsets),
               "amount": float(draw(st.integers(0, 500))), "gross_margin": float(draw(st.integers(-50, 200))) / 3,
               "status": draw(st.sampled_from(["completed", "completed", "refunded", "cancelled"]))}
              for k in range(draw(st.integers(0, 12)))]
    tickets = []
    for k in range(draw(st.integers(0, 8))):
        opened = draw(offsets)
        dur = draw(st.one_of(st.none(), st.sampled_from([0, 1, DAY]), st.integers(0, 200 * DAY)))
        tickets.append({"ticket_id": f"k{k}", "account_id": f"a{draw(st.integers(0, N_ACC - 1))}", "opened_at": opened,
                        "closed_at": None if dur is None else opened + dur,
                        "priority": draw(st.sampled_from(["low", "normal", "high", "urgent"])),
                        "csat": draw(st.one_of(st.none(), st.integers(1, 5)))})
    subs = []
    for k in range(draw(st.integers(0, 6))):
        a = draw(st.integers(0, N_ACC - 1))
        start = draw(offsets)
        # Chain some subscriptions as plan changes: start exactly where the previous one of the account ends.
        prev = [s for s in subs if s["account_id"] == f"a{a}" and s["ended_at"] is not None]
        if prev and draw(st.booleans()):
            start = prev[-1]["ended_at"]
        dur = draw(st.one_of(st.none(), st.sampled_from([0, 1]), st.integers(1, 300 * DAY)))
        subs.append({"subscription_id": f"s{k}", "account_id": f"a{a}", "plan": draw(st.sampled_from(["basic", "pro"])),
                     "started_at": start, "ended_at": None if dur is None else start + dur,
                     "mrr": float(draw(st.integers(0, 300)))})
    return {"accounts": acc, "leads": leads, "activities": acts, "orders": orders, "tickets": tickets,
            "subscriptions": subs}


def to_tables(world: dict[str, list[dict]], drop: tuple[str, ...] = ()) -> dict[str, pd.DataFrame]:
    return {name: frame(name, rows) for name, rows in world.items() if name not in drop}


def _after(rng: np.random.Generator, cut: int) -> int:
    """A random offset at or after `cut` (seconds from T1), often exactly at it."""
    return int(cut if rng.random() < 0.3 else cut + rng.integers(0, 400 * DAY))


def perturb_after(world: dict[str, list[dict]], cut: int, seed: int) -> dict[str, list[dict]]:
    """Add, change and delete what is dated at or after `cut`; everything known before it stays as it was."""
    rng = np.random.default_rng(seed)
    out = {k: [dict(r) for r in v] for k, v in world.items()}

    def later(v):  # a time at/after cut: replace it (or clear it) at random
        return None if rng.random() < 0.2 else _after(rng, cut)

    def keep(row, col):  # rows whose event is at/after the cutoff may be deleted
        return row[col] < cut or rng.random() < 0.6

    out["activities"] = [r for r in out["activities"] if keep(r, "occurred_at")]
    for r in out["activities"]:
        if r["occurred_at"] >= cut:
            r["occurred_at"] = _after(rng, cut)
            r["type"] = str(rng.choice(list(ACTIVITY_TYPES)))
    for k in range(int(rng.integers(0, 6))):
        owner = int(rng.integers(0, N_ACC + N_LEAD))
        out["activities"].append({"activity_id": f"new_x{k}", "account_id": f"a{owner}" if owner < N_ACC else None,
                                  "lead_id": None if owner < N_ACC else f"l{owner - N_ACC}",
                                  "occurred_at": _after(rng, cut), "type": str(rng.choice(list(ACTIVITY_TYPES))),
                                  "channel": None})
    out["orders"] = [r for r in out["orders"] if keep(r, "ordered_at")]
    for r in out["orders"]:
        if r["ordered_at"] >= cut:
            r.update(ordered_at=_after(rng, cut), amount=float(rng.integers(0, 999)),
                     gross_margin=float(rng.integers(-99, 99)), status=str(rng.choice(["completed", "refunded"])))
    for k in range(int(rng.integers(0, 4))):
        out["orders"].append({"order_id": f"new_o{k}", "account_id": f"a{int(rng.integers(0, N_ACC))}",
                              "ordered_at": _after(rng, cut), "amount": 77.0, "gross_margin": 7.0,
                              "status": "completed"})
    out["tickets"] = [r for r in out["tickets"] if keep(r, "opened_at")]
    for r in out["tickets"]:
        if r["opened_at"] >= cut:
            r.update(opened_at=_after(rng, cut), priority=str(rng.choice(["low", "urgent"])))
            r["closed_at"] = None if rng.random() < 0.5 else r["opened_at"] + int(rng.integers(0, 50 * DAY))
        if r["closed_at"] is None or r["closed_at"] >= cut:
            # Not closed before the cutoff: its closing time and CSAT are not known yet.
            r["closed_at"] = later(r["closed_at"])
            if r["closed_at"] is not None:
                r["closed_at"] = max(r["closed_at"], r["opened_at"])
            r["csat"] = None if rng.random() < 0.3 else int(rng.integers(1, 6))
    for k in range(int(rng.integers(0, 3))):
        opened = _after(rng, cut)
        out["tickets"].append({"ticket_id": f"new_k{k}", "account_id": f"a{int(rng.integers(0, N_ACC))}",
                               "opened_at": opened, "closed_at": None, "priority": "urgent", "csat": 1})
    out["subscriptions"] = [r for r in out["subscriptions"] if keep(r, "started_at")]
    for r in out["subscriptions"]:
        if r["started_at"] >= cut:
            r.update(started_at=_after(rng, cut), plan=str(rng.choice(["basic", "pro", "max"])),
                     mrr=float(rng.integers(0, 999)))
            r["ended_at"] = None if rng.random() < 0.5 else r["started_at"] + int(rng.integers(0, 90 * DAY))
        elif r["ended_at"] is None or r["ended_at"] >= cut:
            r["ended_at"] = later(r["ended_at"])
    for k in range(int(rng.integers(0, 3))):
        start = _after(rng, cut)
        out["subscriptions"].append({"subscription_id": f"new_s{k}", "account_id": f"a{int(rng.integers(0, N_ACC))}",
                                     "plan": "max", "started_at": start, "ended_at": None, "mrr": 999.0})
    for r in out["accounts"]:
        if r["created_at"] >= cut:  # not a customer yet at the cutoff: nothing about it is known
            r.update(created_at=_after(rng, cut), segment="changed", industry="changed", acquisition_cost=1.0)
    for r in out["leads"]:
        if r["created_at"] >= cut:
            r.update(created_at=_after(rng, cut), source="changed", company_size=7, job_level=None)
        for col in ("mql_at", "sql_at", "won_at", "lost_at"):
            if r[col] is None or r[col] >= cut:
                r[col] = later(r[col])
        r["account_id"] = "a0" if rng.random() < 0.5 else None  # set when a lead converts: after the cutoff
    return out


def spine_of(entity: str) -> pd.DataFrame:
    ids = [f"a{i}" for i in range(N_ACC)] if entity == "account" else [f"l{i}" for i in range(N_LEAD)]
    return pd.DataFrame({"entity_id": pd.array(ids * 2, dtype="str"),
                         "cutoff_ts": pd.Series([T1] * len(ids) + [T2] * len(ids), dtype="datetime64[us, UTC]")})


FAMILY_CASES = [("eng", "account"), ("buy", "account"), ("sup", "account"), ("sub", "account"),
                ("firm", "account"), ("btyd", "account"), ("eng", "lead"), ("firm", "lead"), ("funnel", "lead")]


@pytest.mark.parametrize(("prefix", "entity"), FAMILY_CASES, ids=[f"{p}-{e}" for p, e in FAMILY_CASES])
@SETTINGS
@given(world=worlds(), seed=st.integers(0, 2**32 - 1), from_t2=st.booleans())
def test_features_ignore_everything_at_or_after_the_cutoff(prefix, entity, world, seed, from_t2):
    # Two cutoffs in one spine, perturbed after the later one; or the earlier cutoff alone, perturbed after it.
    spine = spine_of(entity)
    if not from_t2:
        spine = spine[spine["cutoff_ts"] == T1].reset_index(drop=True)
    cut = int((spine["cutoff_ts"].max() - T1).total_seconds())
    # Decayed counts (leads) at a short and a long half-life: an event after the cutoff must weigh nothing.
    opts = dict(lead_decay_half_lives_days=(1, 30))
    before = build_features(to_tables(world), spine, entity, **opts).frame
    after = build_features(to_tables(perturb_after(world, cut, seed)), spine, entity, **opts).frame
    cols = [c for c in before.columns if c.startswith(f"{prefix}__")]
    assert cols, f"no {prefix}__ columns were built for {entity}"
    pd.testing.assert_frame_equal(after[cols], before[cols], check_exact=True)


def perturb_before(world: dict[str, list[dict]], seed: int, horizon_s: int) -> dict[str, list[dict]]:
    """Add events dated before T1, and events after the label window T1 + horizon; change nothing else."""
    rng = np.random.default_rng(seed)
    out = {k: [dict(r) for r in v] for k, v in world.items()}

    def before() -> int:
        return int(-1 if rng.random() < 0.3 else -rng.integers(1, 400 * DAY))

    def beyond() -> int:
        return int(horizon_s + (0 if rng.random() < 0.3 else rng.integers(0, 100 * DAY)))

    for k in range(int(rng.integers(1, 6))):
        when = before() if k % 2 == 0 else beyond()
        owner = int(rng.integers(0, N_ACC + N_LEAD))
        out["activities"].append({"activity_id": f"new_x{k}", "account_id": f"a{owner}" if owner < N_ACC else None,
                                  "lead_id": None if owner < N_ACC else f"l{owner - N_ACC}", "occurred_at": when,
                                  "type": str(rng.choice(list(ACTIVITY_TYPES))), "channel": None})
        out["orders"].append({"order_id": f"new_o{k}", "account_id": f"a{int(rng.integers(0, N_ACC))}",
                              "ordered_at": when, "amount": 50.0, "gross_margin": float(rng.integers(-9, 99)),
                              "status": str(rng.choice(["completed", "refunded"]))})
        out["tickets"].append({"ticket_id": f"new_k{k}", "account_id": f"a{int(rng.integers(0, N_ACC))}",
                               "opened_at": when, "closed_at": None, "priority": "urgent", "csat": None})
        # A subscription wholly before the cutoff (it ended before T1), or one starting after the window.
        start = when - int(rng.integers(1, 100 * DAY)) if when < 0 else when
        end = min(start + int(rng.integers(1, 100 * DAY)), -1) if when < 0 else None
        if when < 0 and end <= start:
            continue
        out["subscriptions"].append({"subscription_id": f"new_s{k}", "account_id": f"a{int(rng.integers(0, N_ACC))}",
                                     "plan": "pro", "started_at": start, "ended_at": end, "mrr": 5.0})
    for r in out["leads"]:
        if r["mql_at"] is None or r["mql_at"] < 0:  # marking MQL earlier is a change before the cutoff
            r["mql_at"] = before()
    return out


LABEL_CASES = [("churn", "account", ()), ("churn", "account", ("subscriptions",)), ("clv_margin", "account", ()),
               ("reaches_sql", "lead", ()), ("won", "lead", ())]


@pytest.mark.parametrize(("label", "entity", "drop"), LABEL_CASES,
                         ids=["churn-subscriptions", "churn-orders", "clv_margin", "reaches_sql", "won"])
@SETTINGS
@given(world=worlds(), seed=st.integers(0, 2**32 - 1))
def test_labels_ignore_everything_before_the_cutoff(label, entity, drop, world, seed):
    horizon_days = 90
    spine = spine_of(entity)
    spine = spine[spine["cutoff_ts"] == T1].reset_index(drop=True)
    before = make_labels(to_tables(world, drop), spine, label, horizon_days)
    after = make_labels(to_tables(perturb_before(world, seed, horizon_days * DAY), drop), spine, label, horizon_days)
    pd.testing.assert_series_equal(after, before, check_exact=True)
