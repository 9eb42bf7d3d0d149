"""The synthetic CRM: determinism, contract shape, point-in-time cut, truth quality and eligibility."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from crm.errors import CrmError
from crm.synthetic import ACTIVITY_TYPES, SyntheticWorldError, World, generate_world, write_world
from data_contracts.schema import INPUT_TABLES, table_schema

AS_OF = pd.Timestamp("2026-06-01T00:00:00Z")
HORIZONS = {"churn_days": 90, "clv_days": 365, "lead_mql_days": 60, "lead_sql_days": 90}
PII = ("email", "full_name", "phone", "notes")
DTYPE = {"string": "str", "timestamp": "datetime64[us, UTC]", "number": "float64", "integer": "Int64",
         "boolean": "bool"}


@pytest.fixture(scope="module")
def world() -> World:
    # more leads than accounts so that the SQL pool at as_of (a few % of leads) is big enough to rank
    return generate_world(3000, 15000, seed=7, as_of=AS_OF)


def _truth(world: World, task: str) -> pd.DataFrame:
    return world.truth[world.truth["task"] == task]


# ---- determinism ---------------------------------------------------------------------------------------------------

def test_same_seed_gives_identical_tables_and_truth():
    a = generate_world(400, 400, seed=3, as_of=AS_OF)
    b = generate_world(400, 400, seed=3, as_of=AS_OF)
    assert a.tables.keys() == b.tables.keys()
    for name in a.tables:
        pd.testing.assert_frame_equal(a.tables[name], b.tables[name], check_exact=True)
    pd.testing.assert_frame_equal(a.truth, b.truth, check_exact=True)


def test_different_seed_gives_different_world():
    a = generate_world(400, 400, seed=3, as_of=AS_OF)
    b = generate_world(400, 400, seed=4, as_of=AS_OF)
    assert not a.tables["accounts"]["created_at"].equals(b.tables["accounts"]["created_at"])
    assert len(a.tables["activities"]) != len(b.tables["activities"])
    assert not a.truth.equals(b.truth)


# ---- shape ---------------------------------------------------------------------------------------------------------

def test_tables_have_contract_columns_in_order_with_canonical_dtypes(world):
    assert set(world.tables) == set(INPUT_TABLES)
    for name, df in world.tables.items():
        schema = table_schema(name)
        n = len(schema.columns)
        assert tuple(df.columns[:n]) == schema.column_names, name
        for col in schema.columns:
            assert str(df[col.name].dtype) == DTYPE[col.logical_type], (name, col.name, df[col.name].dtype)
            if col.required:
                assert df[col.name].notna().all(), (name, col.name)
        extra = tuple(df.columns[n:])
        assert extra == (PII if name in ("accounts", "leads") else ()), (name, extra)


def test_pii_columns_hold_recognisable_fake_values(world):
    for name in ("accounts", "leads"):
        df = world.tables[name]
        assert df["email"].str.fullmatch(r"[a-z]+\.[a-z]\d+@example\.com").all()
        assert df["email"].is_unique
        assert df["phone"].str.fullmatch(r"\+44 7700 9\d{5}").all()
        assert df["full_name"].str.fullmatch(r"[A-Z][a-z]+ [A-Z][a-z]+").all()
        # free text that names the person: a reader that leaked it would be caught by grepping for the name
        assert (df["notes"].str.slice(0, 1).str.isupper()).all()
        assert df.apply(lambda r: r["notes"].startswith(r["full_name"]), axis=1).all()


def test_timestamps_are_whole_seconds(world):
    for name, df in world.tables.items():
        for col in df.columns:
            if str(df[col].dtype).startswith("datetime64"):
                v = df[col].dropna()
                assert (v == v.dt.floor("s")).all(), (name, col)


def test_nothing_dated_at_or_after_as_of(world):
    for name, df in world.tables.items():
        for col in df.columns:
            if str(df[col].dtype).startswith("datetime64"):
                assert (df[col].dropna() < AS_OF).all(), (name, col)
    assert len(world.tables["activities"]) > 0


def test_consent_and_deletion_shares(world):
    for name in ("accounts", "leads"):
        df = world.tables[name]
        assert 0.03 <= 1 - df["consent_profiling"].mean() <= 0.05, name
        assert 0.005 <= df["deleted_at"].notna().mean() <= 0.025, name
        deleted = df[df["deleted_at"].notna()]
        assert (deleted["deleted_at"] >= deleted["created_at"]).all()


# ---- contract rules ------------------------------------------------------------------------------------------------

def test_ids_unique_and_references_valid(world):
    t = world.tables
    for name, df in t.items():
        pk = table_schema(name).primary_key
        assert df[pk].is_unique, name
    accounts, leads = set(t["accounts"]["account_id"]), set(t["leads"]["lead_id"])
    for name in ("subscriptions", "orders", "tickets"):
        assert set(t[name]["account_id"]) <= accounts, name
    act = t["activities"]
    assert set(act["account_id"].dropna()) <= accounts
    assert set(act["lead_id"].dropna()) <= leads
    assert (act["account_id"].notna() ^ act["lead_id"].notna()).all()
    assert set(t["leads"]["account_id"].dropna()) <= accounts
    assert set(act["type"]) <= set(ACTIVITY_TYPES)
    assert {"login", "feature_use", "email_sent", "email_open", "email_click", "web_visit", "pricing_page_visit",
            "webinar", "form_submit", "content_download", "meeting", "call", "unsubscribe"} == set(act["type"])


def test_value_rules(world):
    t = world.tables
    o = t["orders"]
    assert (o["amount"] >= 0).all() and (o["gross_margin"] <= o["amount"]).all()
    assert set(o["status"]) == {"completed", "refunded", "cancelled"}
    assert 0.85 < (o["status"] == "completed").mean() < 0.98
    tk = t["tickets"]
    assert tk["csat"].dropna().between(1, 5).all()
    assert set(tk["priority"]) == {"low", "normal", "high", "urgent"}
    closed = tk["closed_at"].notna()
    assert (tk.loc[closed, "closed_at"] >= tk.loc[closed, "opened_at"]).all()
    assert tk.loc[~closed, "csat"].isna().all()  # no CSAT before the ticket is closed
    s = t["subscriptions"]
    ended = s["ended_at"].notna()
    assert (s.loc[ended, "ended_at"] >= s.loc[ended, "started_at"]).all()
    assert (s["mrr"] >= 0).all()
    a = t["accounts"]
    assert (a["acquisition_cost"].dropna() >= 0).all()
    assert set(a["segment"]) == {"consumer", "smb", "mid_market", "enterprise"}
    ld = t["leads"]
    assert not (ld["won_at"].notna() & ld["lost_at"].notna()).any()
    assert (ld["company_size"].dropna() >= 1).all()
    sql = ld["sql_at"].notna()
    assert (ld.loc[sql, "sql_at"] >= ld.loc[sql, "created_at"]).all()
    won = ld["won_at"].notna()
    assert ld.loc[won, "sql_at"].notna().all() and (ld.loc[won, "won_at"] >= ld.loc[won, "sql_at"]).all()
    # a won lead is an account created when it was won
    acc = a.set_index("account_id")["created_at"]
    assert (ld.loc[won, "account_id"].map(acc).to_numpy() == ld.loc[won, "won_at"].to_numpy()).all()
    assert ld.loc[~won, "account_id"].isna().all()


def test_plan_changes_are_end_and_start_at_the_same_instant(world):
    s = world.tables["subscriptions"].sort_values(["account_id", "started_at"])
    nxt = s.groupby("account_id")["started_at"].shift(-1)
    has_next = nxt.notna()
    assert has_next.sum() > 50  # plan changes happen
    assert (s.loc[has_next, "ended_at"] == nxt[has_next]).all()
    assert (s.groupby("account_id")["ended_at"].apply(lambda e: e.isna().sum()) <= 1).all()
    # every account has its first subscription from its creation
    first = s.groupby("account_id")["started_at"].min()
    created = world.tables["accounts"].set_index("account_id")["created_at"]
    assert (first.reindex(created.index) == created).all()


# ---- truth ---------------------------------------------------------------------------------------------------------

def test_truth_entities_are_exactly_the_eligible_ones(world):
    t, truth = world.tables, world.truth
    assert list(truth.columns) == ["task", "entity_type", "entity_id", "true_value", "realized"]
    assert not truth.duplicated(["task", "entity_id"]).any()
    a = t["accounts"]
    ok_acc = set(a.loc[a["consent_profiling"] & a["deleted_at"].isna(), "account_id"])
    s = t["subscriptions"]
    active = set(s.loc[s["ended_at"].isna(), "account_id"])
    for task in ("churn", "clv"):
        got = _truth(world, task)
        assert (got["entity_type"] == "account").all()
        assert set(got["entity_id"]) == ok_acc & active, task
    ld = t["leads"]
    ok = ld["consent_profiling"] & ld["deleted_at"].isna() & ld["won_at"].isna() & ld["lost_at"].isna()
    assert set(_truth(world, "lead_mql")["entity_id"]) == set(ld.loc[ok & ld["sql_at"].isna(), "lead_id"])
    assert set(_truth(world, "lead_sql")["entity_id"]) == set(ld.loc[ok & ld["sql_at"].notna(), "lead_id"])
    assert (truth.loc[truth["task"].str.startswith("lead"), "entity_type"] == "lead").all()
    # never a non-consenting or deleted record
    bad = set(a.loc[~a["consent_profiling"] | a["deleted_at"].notna(), "account_id"]) | set(
        ld.loc[~ld["consent_profiling"] | ld["deleted_at"].notna(), "lead_id"])
    assert not bad & set(truth["entity_id"])


@pytest.mark.parametrize("task", ["churn", "lead_mql", "lead_sql"])
def test_true_probability_ranks_outcomes_and_is_calibrated(world, task):
    g = _truth(world, task)
    assert g["true_value"].between(0, 1).all() and set(g["realized"]) <= {0.0, 1.0}
    auc = roc_auc_score(g["realized"], g["true_value"])
    print(f"{task}: n={len(g)} AUC(true_value, realized)={auc:.3f} mean true={g['true_value'].mean():.3f} "
          f"mean realized={g['realized'].mean():.3f}")
    assert auc > 0.7
    # realized outcomes are Bernoulli(true_value): their mean matches within 4 standard errors
    se = np.sqrt((g["true_value"] * (1 - g["true_value"])).sum()) / len(g)
    assert abs(g["realized"].mean() - g["true_value"].mean()) < 4 * se


def test_true_clv_ranks_realized_margin_and_matches_its_mean(world):
    g = _truth(world, "clv")
    rho = g["true_value"].corr(g["realized"], method="spearman")
    print(f"clv: n={len(g)} Spearman(true_value, realized)={rho:.3f}")
    assert rho > 0.6
    assert (g["true_value"] > 0).all() and (g["realized"] >= 0).all()
    se = (g["realized"] - g["true_value"]).std() / np.sqrt(len(g))
    assert abs(g["realized"].mean() - g["true_value"].mean()) < 4 * se


def test_base_rates_in_realistic_ranges(world):
    churn = _truth(world, "churn")
    mql = _truth(world, "lead_mql")
    assert 0.05 <= churn["true_value"].mean() <= 0.20
    assert 0.05 <= churn["realized"].mean() <= 0.20
    assert 0.05 <= mql["true_value"].mean() <= 0.20
    assert 0.04 <= mql["realized"].mean() <= 0.22


def test_churn_is_driven_by_observable_disengagement(world):
    """Few recent logins, and logins falling against the year before, go with a higher true churn probability."""
    act = world.tables["activities"]
    logins = act[act["type"] == "login"]
    days = (AS_OF - logins["occurred_at"]).dt.days
    g = _truth(world, "churn").set_index("entity_id")

    def per_30d(lo: int, hi: int) -> pd.Series:
        n = logins[(days >= lo) & (days < hi)].groupby("account_id").size()
        return n.reindex(g.index).fillna(0) * 30 / (hi - lo)

    recent, last_120, year_before = per_30d(0, 30), per_30d(0, 120), per_30d(120, 365)
    assert g["true_value"].corr(recent, method="spearman") < -0.5
    trend = np.log((last_120 + 1) / (year_before + 1))
    created = world.tables["accounts"].set_index("account_id")["created_at"].reindex(g.index)
    old = created < AS_OF - pd.Timedelta(days=365)  # a year of history to compare against
    assert g.loc[old, "true_value"].corr(trend[old], method="spearman") < -0.15
    assert g.loc[recent == 0, "true_value"].mean() > 1.5 * g["true_value"].mean()


# ---- parameters and writing ----------------------------------------------------------------------------------------

def test_naive_as_of_is_read_as_utc_and_floored():
    w = generate_world(50, 50, seed=1, as_of=pd.Timestamp("2026-06-01 00:00:00.700"), history_days=120)
    assert (w.tables["accounts"]["created_at"] < AS_OF).all()
    assert (w.tables["accounts"]["created_at"] >= AS_OF - pd.Timedelta(days=120)).all()


def test_invalid_parameters_raise_typed_errors():
    with pytest.raises(SyntheticWorldError, match="horizons lacks \\['lead_sql_days'\\]"):
        generate_world(10, 10, 1, AS_OF, horizons={k: v for k, v in HORIZONS.items() if k != "lead_sql_days"})
    with pytest.raises(CrmError, match="n_accounts=0"):
        generate_world(0, 10, 1, AS_OF)
    with pytest.raises(SyntheticWorldError, match="history_days=7"):
        generate_world(10, 10, 1, AS_OF, history_days=7)


def test_horizons_change_the_truth():
    short = generate_world(300, 300, seed=5, as_of=AS_OF, horizons={**HORIZONS, "churn_days": 30})
    long = generate_world(300, 300, seed=5, as_of=AS_OF)
    c_short, c_long = _truth(short, "churn"), _truth(long, "churn")
    assert (c_short["entity_id"].to_numpy() == c_long["entity_id"].to_numpy()).all()
    assert (c_short["true_value"].to_numpy() < c_long["true_value"].to_numpy()).all()


def test_write_world_to_sqlite_and_truth_file(tmp_path):
    from crm.extract import read_extract

    w = generate_world(200, 200, seed=2, as_of=AS_OF, history_days=200)
    write_world(w, f"sqlite:///{tmp_path}/crm.db", tmp_path / "truth.parquet")
    write_world(w, str(tmp_path / "folder"), tmp_path / "truth.csv")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "truth.parquet"), w.truth)
    assert len(pd.read_csv(tmp_path / "truth.csv")) == len(w.truth)
    ex = read_extract(f"sqlite:///{tmp_path}/crm.db")
    acc = w.tables["accounts"]
    assert len(ex["accounts"]) == int(acc["deleted_at"].isna().sum())
    assert "email" not in ex["accounts"].columns
    assert (tmp_path / "folder" / "activities.parquet").exists()
    with pytest.raises(SyntheticWorldError, match="suffix"):
        write_world(w, str(tmp_path / "folder2"), tmp_path / "truth.txt")
