"""Benchmark of the quality gate: validate_extract on an extract with a 1M-row activities table.

The other tables are proportionate (per 1M activities: 20k accounts, 20k leads, 100k orders, 10k tickets, one
subscription per account). Scale with `CRMSCORE_BENCH_ACTIVITIES=<rows>` (default 1,000,000). Prints the time to
build the extract, import GX, the first (cold) validation, a warm one, a warm one with 10% of activities broken,
and the GX suites and the fingerprint alone (the rest is the pandas checks).
"""
from __future__ import annotations

import os
import time

import numpy as np


def main(n_activities: int | None = None) -> None:
    n = int(n_activities or os.environ.get("CRMSCORE_BENCH_ACTIVITIES", 1_000_000))
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("DO_NOT_TRACK", "true")
    from data_contracts.fingerprint import compute_fingerprint
    from data_contracts.testing import BUILD_NOW, build_valid_extract
    from data_contracts.validate import validate_extract

    scale = n / 1_000_000
    t0 = time.perf_counter()
    tables = build_valid_extract(seed=1, n_accounts=max(50, int(20_000 * scale)), n_leads=max(50, int(20_000 * scale)),
                                 n_orders=max(50, int(100_000 * scale)), n_activities=n,
                                 n_tickets=max(50, int(10_000 * scale)))
    rows = {t: len(f) for t, f in tables.items()}
    print(f"rows: {rows} (total {sum(rows.values()):,})")
    print(f"build extract: {time.perf_counter() - t0:.1f} s")

    t0 = time.perf_counter()
    import great_expectations  # noqa: F401

    print(f"import great_expectations: {time.perf_counter() - t0:.1f} s")
    for label in ("validate (cold: GX context + suites)", "validate (warm)"):
        t0 = time.perf_counter()
        report = validate_extract(tables, now=BUILD_NOW)
        print(f"{label}: {time.perf_counter() - t0:.1f} s, ok={report.ok}, failed={sorted(report.failed_rules)}")

    broken = dict(tables)
    acts = tables["activities"].copy()
    bad = np.random.default_rng(2).random(len(acts)) < 0.10
    acts.loc[bad, "type"] = "tweet"
    broken["activities"] = acts
    t0 = time.perf_counter()
    report = validate_extract(broken, now=BUILD_NOW)
    r = report.result("activities.type_valid")
    print(f"validate (warm, 10% bad activity types): {time.perf_counter() - t0:.1f} s, "
          f"{r.rule}: {r.unexpected_count:,} offending, e.g. {', '.join(r.sample_ids)}")

    from data_contracts.gx_suite import run_suite

    t0 = time.perf_counter()
    for name, frame in tables.items():
        run_suite(None, name, frame, set(frame.columns), BUILD_NOW)
    print(f"of which GX suites alone (warm, all tables): {time.perf_counter() - t0:.1f} s")
    t0 = time.perf_counter()
    fp = compute_fingerprint(tables)
    print(f"of which fingerprint alone: {time.perf_counter() - t0:.1f} s ({fp.short})")


if __name__ == "__main__":
    main()
