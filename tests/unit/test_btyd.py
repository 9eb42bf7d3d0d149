"""BG/NBD and Gamma-Gamma against the published CDNOW values (Fader, Hardie & Lee 2005)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.btyd import (
    BGNBDFit,
    btyd_baseline,
    btyd_clv,
    fit_bgnbd,
    fit_gamma_gamma,
    rfm_summary,
)
from features.btyd import btyd_features
from models.errors import BTYDFitError

@pytest.fixture
def cdnow(shared_datasets) -> Path:
    return shared_datasets / "cdnow"


def test_bgnbd_matches_published_cdnow_estimates(cdnow):
    d = pd.read_csv(cdnow / "cdnow_customers_summary.csv")
    fit = fit_bgnbd(d["frequency"], d["recency"], d["T"])
    assert fit.r == pytest.approx(0.243, abs=1e-3)
    assert fit.alpha == pytest.approx(4.414, abs=1e-3)
    assert fit.a == pytest.approx(0.793, abs=1e-3)
    assert fit.b == pytest.approx(2.426, abs=1e-3)
    assert fit.log_likelihood == pytest.approx(-9582.4, abs=0.1)
    # The paper's worked example: customer with x=2, t_x=30.43, T=38.86, next 39 weeks.
    assert fit.expected_transactions(39, [2], [30.43], [38.86])[0] == pytest.approx(1.226, abs=1e-3)


def test_gamma_gamma_matches_published_cdnow_estimates(cdnow):
    d = pd.read_csv(cdnow / "cdnow_customers_summary_with_transactions.csv")
    rep = d[d["x"] > 0]
    assert len(rep) == 946
    fit = fit_gamma_gamma(rep["x"], rep["zbar"])
    assert fit.p == pytest.approx(6.25, abs=0.01)
    assert fit.q == pytest.approx(3.74, abs=0.01)
    assert fit.v == pytest.approx(15.44, abs=0.01)
    # Expected spend shrinks the observed mean toward the population mean p v / (q - 1).
    pop = fit.p * fit.v / (fit.q - 1)
    e = fit.expected_spend(np.array([1.0, 1.0]), np.array([100.0, 1.0]))
    assert 1.0 < e[1] < pop < e[0] < 100.0


def test_conditional_expectation_falls_with_time_since_last_purchase():
    fit = BGNBDFit(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0)
    recent, stale = fit.expected_transactions(39, [3, 3], [38.0, 5.0], [39.0, 39.0])
    assert recent > stale > 0


def test_gamma_gamma_rejects_non_repeat_buyers():
    with pytest.raises(BTYDFitError, match="repeat buyers with positive mean spend"):
        fit_gamma_gamma([0, 2, 3], [np.nan, 10.0, 12.0])


def test_bgnbd_rejects_recency_after_age():
    with pytest.raises(BTYDFitError, match="0 <= t_x <= T"):
        fit_bgnbd([1, 2], [5.0, 50.0], [10.0, 20.0])


def _orders(seed: int = 0, n_accounts: int = 300) -> pd.DataFrame:
    """Accounts buying at account-specific Poisson rates from 2024-01-01, some stopping (dying) early."""
    rng = np.random.default_rng(seed)
    rows = []
    start = pd.Timestamp("2024-01-01", tz="UTC")
    for i in range(n_accounts):
        rate = rng.gamma(1.0, 1 / 20)  # purchases per day
        life = rng.exponential(400)
        value = rng.gamma(3.0, 20.0)
        t = rng.uniform(0, 200)
        first = True
        while t < min(life, 900) or first:
            rows.append({"order_id": f"o{len(rows)}", "account_id": f"a{i}",
                         "ordered_at": start + pd.Timedelta(days=float(t)),
                         "amount": value * 2, "gross_margin": value * rng.uniform(0.5, 1.5),
                         "status": "completed" if rng.uniform() < 0.95 else "refunded"})
            first = False
            t += rng.exponential(1 / rate)
    o = pd.DataFrame(rows)
    o["ordered_at"] = o["ordered_at"].astype("datetime64[us, UTC]")
    o["account_id"] = o["account_id"].astype("str")
    return o


def test_btyd_clv_ignores_orders_after_cutoff_and_ranks_frequent_recent_buyers_higher():
    orders = _orders()
    cutoff = pd.Timestamp("2025-01-01", tz="UTC")
    clv = btyd_clv(orders, cutoff, 365)
    # Point-in-time: changing orders on or after the cutoff changes nothing.
    later = orders["ordered_at"] >= cutoff
    tampered = orders.copy()
    tampered.loc[later, "gross_margin"] = 1e6
    pd.testing.assert_series_equal(btyd_clv(tampered, cutoff, 365), clv)
    assert (clv >= 0).all() and clv.name == "btyd_clv"
    # Realised margin in the horizon: the forecast ranks it better than chance.
    in_horizon = later & (orders["ordered_at"] < cutoff + pd.Timedelta(days=365))
    window = orders[in_horizon & (orders["status"] == "completed")]
    realised = (window.groupby("account_id")["gross_margin"].sum()
                .reindex(clv.index, fill_value=0.0))
    assert realised.corr(clv, method="spearman") > 0.3


def test_rfm_summary_counts_purchase_days_before_cutoff():
    ts = pd.to_datetime(["2024-01-01T10:00", "2024-01-01T15:00", "2024-01-15T00:00", "2024-01-29T00:00", "2024-02-05T00:00"],
                        utc=True).astype("datetime64[us, UTC]")
    orders = pd.DataFrame({
        "order_id": list("abcde"), "account_id": ["x"] * 5, "ordered_at": ts,
        "amount": [1.0] * 5, "gross_margin": [1.0, 2.0, 10.0, 20.0, 99.0],
        "status": ["completed", "completed", "completed", "completed", "completed"],
    })
    s = rfm_summary(orders, pd.Timestamp("2024-02-05", tz="UTC"))  # the 02-05 order is ON the cutoff: excluded
    row = s.loc["x"]
    assert row["x"] == 2                    # two repeat days (01-15, 01-29); the two 01-01 orders are one day
    assert row["t_x"] == pytest.approx(4.0)  # 28 days
    assert row["T"] == pytest.approx(5.0)    # 35 days
    assert row["zbar"] == pytest.approx(15.0)


def test_btyd_baseline_aligns_one_fit_per_cutoff_with_the_frame():
    orders = _orders(seed=2, n_accounts=150)
    c1, c2 = pd.Timestamp("2024-10-01", tz="UTC"), pd.Timestamp("2025-01-01", tz="UTC")
    frame = pd.DataFrame({
        "entity_id": pd.Series(["a3", "nobody", "a7", "a3"], dtype="str"),
        "cutoff_ts": pd.Series([c2, c1, c1, c1]).astype("datetime64[us, UTC]"),
    }).set_axis([10, 11, 12, 13])
    out = btyd_baseline(orders, frame, 365)
    assert list(out.index) == [10, 11, 12, 13]
    assert out.loc[11] == 0.0  # no orders: no forecast
    assert out.loc[10] == pytest.approx(btyd_clv(orders, c2, 365).loc["a3"])
    assert out.loc[13] == pytest.approx(btyd_clv(orders, c1, 365).loc["a3"])
    assert out.loc[10] != out.loc[13]  # each cutoff has its own fit and history


def _spine(ids, cutoffs) -> pd.DataFrame:
    return pd.DataFrame({
        "entity_id": pd.array([i for _ in cutoffs for i in ids], dtype="str"),
        "cutoff_ts": pd.Series([c for c in cutoffs for _ in ids]).astype("datetime64[us, UTC]"),
    })


def _btyd_frame(orders: pd.DataFrame, spine: pd.DataFrame) -> pd.DataFrame:
    from features._context import Query, spine_arrays

    index, codes, t = spine_arrays(spine)
    q = Query(entities=index, codes=codes, t=t, entity_ids=spine["entity_id"], windows_days=(30, 90, 365))
    cols = btyd_features(orders, q, (30, 90, 365))
    return pd.DataFrame(cols.values, index=spine.index)


def test_btyd_features_ignore_everything_at_or_after_the_cutoff():
    orders = _orders(seed=4)
    c1, c2 = pd.Timestamp("2024-09-01", tz="UTC"), pd.Timestamp("2025-01-01", tz="UTC")
    ids = sorted(orders["account_id"].unique()) + ["nobody"]
    spine = _spine(ids, [c1, c2])
    before = _btyd_frame(orders, spine)
    # Change, delete and add orders dated at or after the later cutoff: amounts, margins, statuses, new accounts.
    rng = np.random.default_rng(0)
    late = orders["ordered_at"] >= c2
    tampered = orders.copy()
    tampered.loc[late, "gross_margin"] = rng.uniform(-50, 5000, late.sum())
    tampered.loc[late, "status"] = rng.choice(["completed", "refunded"], late.sum())
    tampered = tampered.drop(tampered.index[late.to_numpy() & (rng.uniform(size=len(tampered)) < 0.3)])
    extra = pd.DataFrame({"order_id": ["n1", "n2", "n3"], "account_id": ["a1", "new", "new"],
                          "ordered_at": pd.Series([c2, c2 + pd.Timedelta(days=3), c2 + pd.Timedelta(days=40)])
                          .astype("datetime64[us, UTC]"), "amount": 9.0, "gross_margin": 900.0, "status": "completed"})
    tampered = pd.concat([tampered, extra.astype({"account_id": "str"})], ignore_index=True)
    after = _btyd_frame(tampered, spine)
    pd.testing.assert_frame_equal(after, before, check_exact=True)
    # The fits ran: every account with a purchase before its cutoff has finite quantities, the others NaN.
    at_c2 = spine["cutoff_ts"] == c2
    buyers = before[at_c2 & (spine["entity_id"] != "nobody")]
    assert buyers["btyd__p_alive"].notna().mean() > 0.95
    assert before.loc[spine["entity_id"] == "nobody"].isna().all().all()
    assert buyers["btyd__p_alive"].dropna().between(0, 1).all()
    # Each cutoff has its own fit on its own history: the earlier cutoff's values differ.
    assert not np.allclose(before.loc[~at_c2, "btyd__p_alive"].fillna(-1), before.loc[at_c2, "btyd__p_alive"].fillna(-1))


def test_btyd_features_are_the_baseline_forecast():
    orders = _orders(seed=5, n_accounts=200)
    cutoff = pd.Timestamp("2025-01-01", tz="UTC")
    clv = btyd_clv(orders, cutoff, 365)
    spine = _spine(list(clv.index), [cutoff])
    fs = _btyd_frame(orders, spine)
    np.testing.assert_allclose(fs["btyd__expected_margin_365d"].to_numpy(), clv.to_numpy(), rtol=1e-12)
    # More expected purchases over a longer horizon; the margin is purchases x margin per purchase.
    assert (fs["btyd__expected_purchases_365d"] >= fs["btyd__expected_purchases_90d"]).all()
    np.testing.assert_allclose(fs["btyd__expected_margin_90d"],
                               fs["btyd__expected_purchases_90d"] * fs["btyd__expected_order_margin"], rtol=1e-12)


def test_btyd_features_are_nan_with_a_logged_reason_when_the_fit_fails(caplog):
    orders = _orders(seed=6, n_accounts=40)
    one_each = orders.drop_duplicates("account_id").assign(status="completed")  # nobody bought twice: no BG/NBD
    cutoff = pd.Timestamp("2025-06-01", tz="UTC")
    spine = _spine(sorted(one_each["account_id"]), [cutoff])
    with caplog.at_level("WARNING", logger="crmscore.features"):
        fs = _btyd_frame(one_each, spine)
    assert fs.isna().all().all() and len(fs) == 40
    assert any("BG/NBD features at cutoff 2025-06-01" in r.getMessage() and "repeat buyer" in r.getMessage()
               for r in caplog.records)


def test_p_alive_is_one_without_repeat_purchases_and_falls_with_silence():
    fit = BGNBDFit(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0)
    p = fit.p_alive([0, 3, 3], [0.0, 38.0, 5.0], [39.0, 39.0, 39.0])
    assert p[0] == 1.0 and 1.0 > p[1] > p[2] > 0.0


def test_btyd_features_need_enough_customers_to_fit(caplog):
    from features.btyd import MIN_FIT_CUSTOMERS

    orders = _orders(seed=7, n_accounts=MIN_FIT_CUSTOMERS - 1)
    cutoff = pd.Timestamp("2025-01-01", tz="UTC")
    with caplog.at_level("WARNING", logger="crmscore.features"):
        fs = _btyd_frame(orders, _spine(sorted(orders["account_id"].unique()), [cutoff]))
    assert fs.isna().all().all()
    assert any(f"the fit needs at least {MIN_FIT_CUSTOMERS}" in r.getMessage() for r in caplog.records)


def test_expected_purchases_take_the_nbd_limit_when_nobody_drops_out():
    # A fit at the no-dropout edge (Online Retail, 2010-05-07): eq. 10 cancels to nonsense; the NBD limit is the answer,
    # and it is where eq. 10 tends while it can still be evaluated (a / (a + b) = 1e-6, above the switch, below).
    x, t_x, T = np.array([0.0, 2.0, 5.0]), np.array([0.0, 20.0, 30.0]), np.array([39.0, 39.0, 39.0])
    nbd = (0.8 + x) / (9.0 + T) * 26.0
    edge = BGNBDFit(r=0.8, alpha=9.0, a=6.46e-17, b=9.6e10, log_likelihood=0.0)
    np.testing.assert_allclose(edge.expected_transactions(26.0, x, t_x, T), nbd, rtol=1e-12)
    near = BGNBDFit(r=0.8, alpha=9.0, a=1e-4, b=1e2, log_likelihood=0.0)
    np.testing.assert_allclose(near.expected_transactions(26.0, x, t_x, T), nbd, rtol=1e-4)
