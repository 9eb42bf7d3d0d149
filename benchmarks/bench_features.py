"""Feature, label and spine speed on random canonical frames.

`python -m benchmarks.run features` runs the default scales (100k accounts / 5M activities / 500k orders for one
cutoff, and 12 cutoffs over 100k accounts). Any scale:

    python -m benchmarks.bench_features --accounts 1000000 --activities 50000000 --orders 5000000 --cutoffs 1

Figures: wall time of each step (and the features' CPU time, which a shared machine's load does not inflate
as much), and the process's peak resident memory (VmHWM) while generating the data and, after resetting the
mark, while building the spine and the features (the data in memory included).
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import time

import numpy as np
import pandas as pd

from features.build import build_features
from features.engagement import ACTIVITY_TYPES
from features.labels import make_labels
from features.spine import build_spine

AS_OF = pd.Timestamp("2026-01-01", tz="UTC")
HISTORY_DAYS = 3 * 365
US_PER_DAY = 86_400_000_000


def _peak_gib() -> float:
    """Peak resident memory of this process since start (or since the last `_reset_peak`), GiB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux


def _reset_peak() -> bool:
    """Reset the peak-RSS mark (Linux: writing 5 to /proc/self/clear_refs), so a step's own peak can be read."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _ids(prefix: str, n: int) -> pd.Series:
    return pd.Series(np.arange(n)).astype("str").radd(prefix).astype("str")


def _times(rng: np.random.Generator, n: int, start_days: float, end_days: float) -> pd.Series:
    """n random UTC times between AS_OF - start_days and AS_OF - end_days."""
    base = AS_OF.as_unit("us").asm8.view("i8")
    us = base - rng.uniform(end_days, start_days, n) * US_PER_DAY
    return pd.Series(np.asarray(us, dtype="int64").astype("datetime64[us]")).dt.tz_localize("UTC")


def random_extract(n_accounts: int, n_activities: int, n_orders: int, *, seed: int = 7,
                   subscriptions: bool = True, tickets: bool = True) -> dict[str, pd.DataFrame]:
    """A random extract in canonical dtypes (docs/architecture.md). Skewed activity: some accounts are busy."""
    rng = np.random.default_rng(seed)
    acc_ids = _ids("A", n_accounts)
    tables: dict[str, pd.DataFrame] = {
        "accounts": pd.DataFrame({
            "account_id": acc_ids,
            "created_at": _times(rng, n_accounts, HISTORY_DAYS + 400, 30),
            "segment": pd.Series(rng.choice(["consumer", "smb", "mid_market", "enterprise"], n_accounts), dtype="str"),
            "industry": pd.Series(rng.choice(["retail", "software", "finance", None], n_accounts), dtype="str"),
            "country": pd.Series(rng.choice(["DE", "FR", "US", "GB"], n_accounts), dtype="str"),
            "acquisition_channel": pd.Series(rng.choice(["organic", "paid_search", "referral"], n_accounts), dtype="str"),
            "acquisition_cost": rng.gamma(2.0, 50.0, n_accounts),
            "consent_profiling": rng.random(n_accounts) > 0.03,
            "deleted_at": pd.Series(pd.NaT, index=range(n_accounts), dtype="datetime64[us, UTC]"),
        }),
    }
    weight = rng.pareto(1.5, n_accounts) + 1.0
    weight /= weight.sum()
    owner = rng.choice(n_accounts, n_activities, p=weight)
    tables["activities"] = pd.DataFrame({
        "activity_id": _ids("X", n_activities),
        "account_id": acc_ids.to_numpy()[owner],
        "lead_id": pd.Series(pd.NA, index=range(n_activities), dtype="str"),
        "occurred_at": _times(rng, n_activities, HISTORY_DAYS, 0),
        "type": pd.Series(pd.Categorical.from_codes(rng.integers(0, len(ACTIVITY_TYPES), n_activities),
                                                    categories=list(ACTIVITY_TYPES))).astype("str"),
        "channel": pd.Series(pd.NA, index=range(n_activities), dtype="str"),
    })
    tables["activities"]["account_id"] = tables["activities"]["account_id"].astype("str")
    buyer = rng.choice(n_accounts, n_orders, p=weight)
    amount = rng.gamma(2.0, 60.0, n_orders)
    tables["orders"] = pd.DataFrame({
        "order_id": _ids("O", n_orders),
        "account_id": pd.Series(acc_ids.to_numpy()[buyer], dtype="str"),
        "ordered_at": _times(rng, n_orders, HISTORY_DAYS, 0),
        "amount": amount,
        "gross_margin": amount * rng.uniform(-0.1, 0.6, n_orders),
        "status": pd.Series(rng.choice(["completed", "refunded", "cancelled"], n_orders, p=[0.9, 0.06, 0.04]),
                            dtype="str"),
    })
    if subscriptions:
        n_sub = int(n_accounts * 1.3)
        holder = np.concatenate([np.arange(n_accounts), rng.integers(0, n_accounts, n_sub - n_accounts)])
        started = _times(rng, n_sub, HISTORY_DAYS, 0)
        length = rng.exponential(500, n_sub)
        ended = started + pd.to_timedelta(length, unit="D")
        ended = ended.where((ended < AS_OF) & (rng.random(n_sub) < 0.6))
        tables["subscriptions"] = pd.DataFrame({
            "subscription_id": _ids("S", n_sub),
            "account_id": pd.Series(acc_ids.to_numpy()[holder], dtype="str"),
            "plan": pd.Series(rng.choice(["basic", "pro", "enterprise"], n_sub), dtype="str"),
            "started_at": started, "ended_at": ended.astype("datetime64[us, UTC]"),
            "mrr": rng.gamma(2.0, 40.0, n_sub),
        })
    if tickets:
        n_t = n_accounts // 2
        opened = _times(rng, n_t, HISTORY_DAYS, 0)
        closed = (opened + pd.to_timedelta(rng.exponential(4, n_t), unit="D"))
        closed = closed.where((closed < AS_OF) & (rng.random(n_t) < 0.95))
        tables["tickets"] = pd.DataFrame({
            "ticket_id": _ids("K", n_t),
            "account_id": pd.Series(acc_ids.to_numpy()[rng.integers(0, n_accounts, n_t)], dtype="str"),
            "opened_at": opened, "closed_at": closed.astype("datetime64[us, UTC]"),
            "priority": pd.Series(rng.choice(["low", "normal", "high", "urgent"], n_t), dtype="str"),
            "csat": pd.array(np.where(rng.random(n_t) < 0.4, rng.integers(1, 6, n_t), -1), dtype="Int64"),
        })
        tables["tickets"]["csat"] = tables["tickets"]["csat"].mask(tables["tickets"]["csat"] < 0)
    return tables


def measure(n_accounts: int, n_activities: int, n_orders: int, n_cutoffs: int, *, labels: bool = True) -> dict:
    """Generate, then time spine, features (and labels) for `n_cutoffs` monthly cutoffs ending 90 days before AS_OF."""
    t0 = time.perf_counter()
    tables = random_extract(n_accounts, n_activities, n_orders)
    gen_s = time.perf_counter() - t0
    gen_peak = _peak_gib()
    cutoffs = [AS_OF - pd.Timedelta(days=90 + 30 * k) for k in range(n_cutoffs)]
    _reset_peak()
    t0 = time.perf_counter()
    spine = build_spine(tables, "active_customers", cutoffs)
    spine_s = time.perf_counter() - t0
    t0, c0 = time.perf_counter(), time.process_time()
    fs = build_features(tables, spine, "account")
    feat_s, feat_cpu = time.perf_counter() - t0, time.process_time() - c0
    feat_peak = _peak_gib()
    label_s = float("nan")
    if labels:
        t0 = time.perf_counter()
        make_labels(tables, spine, "churn", 90)
        make_labels(tables, spine, "clv_margin", 365)
        label_s = time.perf_counter() - t0
    return {"accounts": n_accounts, "activities": n_activities, "orders": n_orders, "cutoffs": n_cutoffs,
            "spine_rows": len(spine), "features": len(fs.catalog), "generate_s": gen_s, "spine_s": spine_s,
            "features_s": feat_s, "features_cpu_s": feat_cpu, "labels_s": label_s, "peak_gib_after_generate": gen_peak,
            "peak_gib_after_features": feat_peak}


def report(r: dict) -> None:
    print(f"accounts={r['accounts']:,} activities={r['activities']:,} orders={r['orders']:,} cutoffs={r['cutoffs']} "
          f"-> spine rows={r['spine_rows']:,}, features={r['features']}")
    print(f"  generate {r['generate_s']:.1f} s | spine {r['spine_s']:.1f} s | features {r['features_s']:.1f} s "
          f"(CPU {r['features_cpu_s']:.1f} s) | churn+clv labels {r['labels_s']:.1f} s")
    print(f"  peak RSS: {r['peak_gib_after_generate']:.2f} GiB while generating the data; "
          f"{r['peak_gib_after_features']:.2f} GiB while building spine + features (data included)", flush=True)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--accounts", type=int, default=None)
    p.add_argument("--activities", type=int, default=None)
    p.add_argument("--orders", type=int, default=None)
    p.add_argument("--cutoffs", type=int, default=1)
    args = p.parse_args(argv if argv is not None else [])
    if args.accounts is not None:
        report(measure(args.accounts, args.activities or 50 * args.accounts, args.orders or 5 * args.accounts,
                       args.cutoffs))
        return
    # Default: the two measured cases (each in a fresh process would isolate peaks; here the second adds to the first).
    scale = int(os.environ.get("CRMSCORE_BENCH_ACCOUNTS", "100000"))
    report(measure(scale, 50 * scale, 5 * scale, 1))
    report(measure(scale, 50 * scale, 5 * scale, 12))


if __name__ == "__main__":
    main(sys.argv[1:])
