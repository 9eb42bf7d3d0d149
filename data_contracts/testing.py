"""A small seeded builder of valid raw extracts in the canonical dtypes, for tests and benchmarks.

Hand-written (independent of the synthetic CRM generator in crm/): every row satisfies every contract rule, with
the nulls the contract allows (open subscriptions and tickets, missing csat, activities of leads, deleted and
non-consenting records). Vectorized, so it also builds the 1M-row activities table of the benchmark.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from data_contracts.schema import table_schema

#: The extraction time of built extracts; every row is dated at least a day before it.
BUILD_NOW = pd.Timestamp("2026-11-01T00:00:00", tz="UTC")
_START = pd.Timestamp("2023-01-01T00:00:00", tz="UTC")
_US_PER_DAY = 86_400_000_000

ACTIVITY_TYPES = ("email_sent", "email_open", "email_click", "web_visit", "pricing_page_visit", "login",
                  "feature_use", "webinar", "form_submit", "content_download", "meeting", "call", "unsubscribe")


def _ts(us: np.ndarray) -> pd.Series:
    """Microseconds since the epoch (int64; int64 min = NaT) as datetime64[us, UTC]."""
    return pd.Series(us.astype("datetime64[us]")).dt.tz_localize("UTC")


def _str(values: np.ndarray) -> pd.Series:
    return pd.Series(values, dtype="str")


def _ids(prefix: str, n: int) -> np.ndarray:
    if n == 0:
        return np.empty(0, dtype=object)
    return np.char.add(prefix, np.char.zfill(np.arange(1, n + 1).astype(str), 7)).astype(object)


def _times_between(rng: np.random.Generator, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    return lo + (rng.random(len(lo)) * (hi - lo)).astype("int64")


def _with_nulls(rng: np.random.Generator, values: np.ndarray, share: float) -> np.ndarray:
    out = values.astype(object)
    out[rng.random(len(out)) < share] = None
    return out


def build_valid_extract(*, seed: int = 7, n_accounts: int = 300, n_leads: int = 300, n_orders: int = 600,
                        n_activities: int = 900, n_tickets: int = 200) -> dict[str, pd.DataFrame]:
    """A valid raw extract (all six tables, contract columns in contract order, canonical dtypes).

    Subscriptions: one per account. All times are in [2023-01-01, BUILD_NOW - 1 day).
    """
    rng = np.random.default_rng(seed)
    start, end = _START.value // 1000, (BUILD_NOW - pd.Timedelta(days=1)).value // 1000
    nat = np.iinfo("int64").min

    # accounts
    acc_ids = _ids("A", n_accounts)
    acc_created = rng.integers(start, end - 200 * _US_PER_DAY, n_accounts)
    deleted = np.where(rng.random(n_accounts) < 0.05, _times_between(rng, acc_created, np.full(n_accounts, end)), nat)
    accounts = pd.DataFrame({
        "account_id": _str(acc_ids),
        "created_at": _ts(acc_created),
        "segment": _str(rng.choice(["consumer", "smb", "mid_market", "enterprise"], n_accounts)),
        "industry": _str(_with_nulls(rng, rng.choice(["retail", "software", "finance", "health"], n_accounts), 0.2)),
        "country": _str(_with_nulls(rng, rng.choice(["US", "DE", "FR", "GB", "NL"], n_accounts), 0.1)),
        "acquisition_channel": _str(_with_nulls(rng, rng.choice(["organic", "paid_search", "referral"], n_accounts),
                                                0.2)),
        "acquisition_cost": np.where(rng.random(n_accounts) < 0.2, np.nan, rng.gamma(2.0, 150.0, n_accounts)),
        "consent_profiling": rng.random(n_accounts) < 0.92,
        "deleted_at": _ts(deleted),
    })

    # leads: created -> maybe MQL -> maybe SQL -> won or lost (never both)
    lead_created = rng.integers(start, end - 120 * _US_PER_DAY, n_leads)
    is_mql = rng.random(n_leads) < 0.5
    is_sql = is_mql & (rng.random(n_leads) < 0.5)
    is_won = is_sql & (rng.random(n_leads) < 0.4)
    is_lost = ~is_won & (rng.random(n_leads) < 0.3)
    day = _US_PER_DAY
    mql = np.where(is_mql, lead_created + rng.integers(0, 30 * day, n_leads), nat)
    sql = np.where(is_sql, mql + rng.integers(0, 30 * day, n_leads), nat)
    won = np.where(is_won, sql + rng.integers(0, 30 * day, n_leads), nat)
    lost = np.where(is_lost, lead_created + rng.integers(0, 100 * day, n_leads), nat)
    became = np.where(is_won, rng.choice(acc_ids, n_leads), None)
    size = pd.array(np.where(rng.random(n_leads) < 0.3, 0, rng.integers(1, 5000, n_leads)), dtype="Int64")
    size[size == 0] = pd.NA
    leads = pd.DataFrame({
        "lead_id": _str(_ids("L", n_leads)),
        "created_at": _ts(lead_created),
        "source": _str(rng.choice(["web", "referral", "event", "paid_social", "outbound"], n_leads)),
        "industry": _str(_with_nulls(rng, rng.choice(["retail", "software", "finance"], n_leads), 0.3)),
        "company_size": size,
        "job_level": _str(_with_nulls(rng, rng.choice(["c_level", "vp", "director", "manager"], n_leads), 0.3)),
        "country": _str(_with_nulls(rng, rng.choice(["US", "DE", "FR"], n_leads), 0.2)),
        "mql_at": _ts(mql), "sql_at": _ts(sql), "won_at": _ts(won), "lost_at": _ts(lost),
        "account_id": _str(became),
        "consent_profiling": rng.random(n_leads) < 0.9,
        "deleted_at": _ts(np.where(rng.random(n_leads) < 0.03, lead_created + day, nat)),
    })

    # subscriptions: one per account, about a third ended
    sub_start = acc_created + rng.integers(0, 10 * day, n_accounts)
    ended = rng.random(n_accounts) < 0.35
    sub_end = np.where(ended, _times_between(rng, sub_start, np.full(n_accounts, end)), nat)
    subscriptions = pd.DataFrame({
        "subscription_id": _str(_ids("S", n_accounts)),
        "account_id": _str(acc_ids),
        "plan": _str(rng.choice(["basic", "pro", "enterprise"], n_accounts)),
        "started_at": _ts(sub_start), "ended_at": _ts(sub_end),
        "mrr": np.round(rng.gamma(2.0, 50.0, n_accounts), 2),
    })

    # orders: margin = amount x factor <= 1, sometimes negative
    o_acc = rng.integers(0, n_accounts, n_orders)
    amount = np.round(rng.gamma(2.0, 80.0, n_orders), 2)
    orders = pd.DataFrame({
        "order_id": _str(_ids("O", n_orders)),
        "account_id": _str(acc_ids[o_acc]),
        "ordered_at": _ts(_times_between(rng, acc_created[o_acc], np.full(n_orders, end))),
        "amount": amount,
        "gross_margin": np.round(amount * rng.uniform(-0.2, 0.7, n_orders), 2),
        "status": _str(rng.choice(["completed", "refunded", "cancelled"], n_orders, p=[0.85, 0.1, 0.05])),
    })

    # activities: 70% of accounts, 30% of leads: exactly one id set
    of_lead = rng.random(n_activities) < 0.3
    a_acc = np.where(of_lead, None, acc_ids[rng.integers(0, n_accounts, n_activities)])
    a_lead = np.where(of_lead, leads["lead_id"].to_numpy(dtype=object)[rng.integers(0, n_leads, n_activities)], None)
    activities = pd.DataFrame({
        "activity_id": _str(_ids("E", n_activities)),
        "account_id": _str(a_acc), "lead_id": _str(a_lead),
        "occurred_at": _ts(rng.integers(start, end, n_activities)),
        "type": _str(rng.choice(ACTIVITY_TYPES, n_activities)),
        "channel": _str(_with_nulls(rng, rng.choice(["email", "web", "phone", "app"], n_activities), 0.25)),
    })

    # tickets: open ones have no closed_at; csat only sometimes
    t_acc = rng.integers(0, n_accounts, n_tickets)
    opened = _times_between(rng, acc_created[t_acc], np.full(n_tickets, end - 5 * day))
    closed = np.where(rng.random(n_tickets) < 0.8, opened + rng.integers(0, 5 * day, n_tickets), nat)
    csat = pd.array(rng.integers(1, 6, n_tickets), dtype="Int64")
    csat[rng.random(n_tickets) < 0.5] = pd.NA
    tickets = pd.DataFrame({
        "ticket_id": _str(_ids("T", n_tickets)),
        "account_id": _str(acc_ids[t_acc]),
        "opened_at": _ts(opened), "closed_at": _ts(closed),
        "priority": _str(rng.choice(["low", "normal", "high", "urgent"], n_tickets)),
        "csat": csat,
    })
    out = {"accounts": accounts, "leads": leads, "subscriptions": subscriptions, "orders": orders,
           "activities": activities, "tickets": tickets}
    return {t: f[list(table_schema(t).column_names)] for t, f in out.items()}
