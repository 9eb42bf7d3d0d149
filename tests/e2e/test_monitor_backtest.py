"""The realized backtest of ``crmscore monitor`` against the truth of the synthetic world, through the CLI.

The session world is generated to AS_OF, so its future beyond an earlier date is known. A scoring run at EARLY (a
year before AS_OF, every task's horizon closed by AS_OF) reads the extract as it was at EARLY through the real score
flow; ``crmscore monitor --as-of AS_OF`` then backtests it on the full extract. The realized metrics it stores must
equal, to 1e-12, those computed here from the generator's event tables (subscriptions, orders, leads) by a small
independent implementation of each label and metric. The printed health of the same run shows the episodes, the
data-quality trend and the slices (table and JSON).
"""
from __future__ import annotations

import json
import math
import sqlite3
from types import SimpleNamespace

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from pipelines.render import print_monitor
from tests.e2e.cli import AS_OF, run
from tests.e2e.test_monitor import LENIENT, crm_copy, overlay

EARLY = (pd.Timestamp(AS_OF, tz="UTC") - pd.Timedelta(days=365)).strftime("%Y-%m-%d")
HORIZON_DAYS = {"churn": 90, "clv": 365, "lead_mql": 60, "lead_sql": 90}  # the registry's defaults (models/tasks.py)


def read(db: str, sql: str) -> pd.DataFrame:
    with sqlite3.connect(db) as conn:
        return pd.read_sql(sql, conn)


def ts(s: pd.Series) -> pd.Series:
    return pd.to_datetime(s, utc=True, format="ISO8601")


def usable(frame: pd.DataFrame, id_col: str) -> set[str]:
    """Ids neither deleted nor objecting to profiling in the current extract (the only ones ever scored on)."""
    keep = frame["deleted_at"].isna() & frame["consent_profiling"].fillna(0).astype(bool)
    return set(frame.loc[keep, id_col].astype(str))


def churned(subs: pd.DataFrame, t0: pd.Timestamp, days: int) -> int:
    """1 when some instant of [t0, t0 + days) is covered by no subscription of the account (intervals swept)."""
    end, cur = t0 + pd.Timedelta(days=days), t0
    for start, stop in sorted(zip(subs["started_at"], subs["ended_at"]), key=lambda s: s[0]):
        stop = end if pd.isna(stop) else stop  # still running at the extract's as-of
        if stop <= cur:
            continue
        if start > cur:
            return 1
        cur = stop
        if cur >= end:
            return 0
    return int(cur < end)


def truth(db: str, task: str, ids: pd.Series, t0: pd.Timestamp) -> pd.Series:
    """The realized outcome of each scored id over the task's window after t0, from the event tables."""
    end = t0 + pd.Timedelta(days=HORIZON_DAYS[task])
    if task == "churn":
        subs = read(db, "select account_id, started_at, ended_at from subscriptions")
        subs["started_at"], subs["ended_at"] = ts(subs["started_at"]), ts(subs["ended_at"])
        by = dict(list(subs.groupby("account_id")))
        return pd.Series([churned(by.get(i, subs.iloc[:0]), t0, HORIZON_DAYS[task]) for i in ids], dtype=float)
    if task == "clv":
        orders = read(db, "select account_id, ordered_at, gross_margin, status from orders")
        at = ts(orders["ordered_at"])
        inside = orders.loc[(orders["status"] == "completed") & (at >= t0) & (at < end)]
        return ids.map(inside.groupby("account_id")["gross_margin"].sum()).fillna(0.0).astype(float).reset_index(
            drop=True)
    leads = read(db, "select lead_id, sql_at, won_at from leads").set_index("lead_id")
    when = ts(leads["sql_at" if task == "lead_mql" else "won_at"])
    return ids.map(((when >= t0) & (when < end)).astype(float)).reset_index(drop=True)


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Mann-Whitney: the share of (positive, negative) pairs ordered right, ties counting half."""
    ranks = rankdata(p)
    n_pos = y.sum()
    return float((ranks[y == 1].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * (len(y) - n_pos)))


def ece(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Equal-mass bins of the sorted scores (the documented definition of models.evaluate)."""
    order = np.argsort(p, kind="stable")
    return float(sum(len(b) / len(y) * abs(y[b].mean() - p[b].mean()) for b in np.array_split(order, bins)))


def normalized_gini(y: np.ndarray, pred: np.ndarray) -> float:
    def g(order: np.ndarray) -> float:
        return float(((np.cumsum(y[order]) / y.sum()) - np.arange(1, len(y) + 1) / len(y)).sum() / len(y))
    return g(np.argsort(-pred, kind="stable")) / g(np.argsort(-y, kind="stable"))


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-12)


def test_the_realized_metrics_of_a_backtested_run_equal_those_of_the_true_outcomes(world, tmp_path, capsys):
    crm = crm_copy(world, tmp_path)
    db = crm.removeprefix("sqlite:///")
    cfg = overlay(world, tmp_path, LENIENT)
    run(["score", "--config", str(cfg), "--crm", crm, "--as-of", EARLY], tmp_path)
    proc = run(["monitor", "--config", str(cfg), "--crm", crm, "--as-of", AS_OF, "--format", "json"], tmp_path,
               check=False)
    assert proc.returncode in (0, 3), proc.stderr
    doc = json.loads(proc.stdout)
    history = read(db, "select entity_id, model, score, scoring_run_id, as_of from crm_scores_history")
    early = history.loc[ts(history["as_of"]) == pd.Timestamp(EARLY, tz="UTC")]
    (run_id,) = set(early["scoring_run_id"])
    stored = read(db, "select model, section, metric, value from crm_monitor_metrics where stage = 'realized' and "
                      f"scoring_run_id = '{run_id}'")
    accounts, leads = read(db, "select * from accounts"), read(db, "select * from leads")
    t0 = pd.Timestamp(EARLY, tz="UTC")
    checked = []
    for task, rows in early.groupby("model"):
        figures = stored.loc[(stored["model"] == task) & (stored["section"] == "realized")].set_index("metric")["value"]
        keep = usable(leads if task.startswith("lead") else accounts, "lead_id" if task.startswith("lead")
                      else "account_id")
        rows = rows.loc[rows["entity_id"].isin(keep)].reset_index(drop=True)
        y = truth(db, task, rows["entity_id"], t0).to_numpy()
        p = rows["score"].to_numpy(dtype=float)
        assert figures["n"] == len(rows) > 30, task  # the world's few SQL leads: 40 at EARLY
        if task == "clv":
            assert len(np.unique(p)) == len(p)  # no ties: the Gini's order is the scores' alone
            expected = {"normalized_gini": normalized_gini(y, p), "mae": float(np.abs(y - p).mean()),
                        "realized_total": float(y.sum()), "predicted_total": float(p.sum())}
        else:
            q = np.clip(p, 1e-15, 1 - 1e-15)
            expected = {"roc_auc": auc(y, q), "brier": float(np.mean((q - y) ** 2)), "ece": ece(y, q),
                        "positive_rate": float(y.mean())}
        for metric, value in expected.items():
            assert close(figures[metric], value), (task, metric, figures[metric], value)
        realized = [r for r in doc["models"][task]["realized"] if r["scoring_run_id"] == run_id]
        assert realized and realized[0]["n"] == len(rows)
        checked.append(task)
    assert {"churn", "clv"} <= set(checked)
    # The health as people read it: the slices of the matured run with their intervals, the data quality recorded
    # by the score flow per table, the episodes (a list, empty or not); the table prints the same sections.
    churn = doc["models"]["churn"]
    slices = next(r for r in churn["realized"] if r["scoring_run_id"] == run_id)["slices"]
    assert any(s["slice"].startswith("firm__segment=") for s in slices)
    assert all(s["roc_auc_low"] <= s["roc_auc"] <= s["roc_auc_high"] for s in slices if s.get("roc_auc") is not None)
    assert {"accounts", "subscriptions", "orders"} <= set(churn["quality"])
    assert isinstance(churn["episodes"], list)
    # The table format renders the same document (in process: the CLI's table path is run by test_monitor.py).
    capsys.readouterr()
    print_monitor(SimpleNamespace(**doc))
    printed = capsys.readouterr().out
    for title in ("Alert episodes", "Data quality", "Realized performance per slice"):
        assert title in printed, printed
