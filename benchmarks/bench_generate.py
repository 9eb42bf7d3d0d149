"""Benchmark: generate a synthetic CRM world, then write it as a SQLite extract and as a Parquet folder.

Scale: ``CRMSCORE_BENCH_ACCOUNTS`` / ``CRMSCORE_BENCH_LEADS`` (default 100,000 each, the target: generation
under 2 minutes on 2 cores); ``CRMSCORE_BENCH_WRITE=0`` skips the writes.
Run: ``PYTHONPATH=. python -m benchmarks.run generate``.
"""
from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd


def main(n_accounts: int | None = None, n_leads: int | None = None, write: bool | None = None) -> dict[str, float]:
    from crm.synthetic import generate_world, write_world

    n_accounts = int(n_accounts or os.environ.get("CRMSCORE_BENCH_ACCOUNTS", 100_000))
    n_leads = int(n_leads or os.environ.get("CRMSCORE_BENCH_LEADS", n_accounts))
    write = (os.environ.get("CRMSCORE_BENCH_WRITE", "1") != "0") if write is None else write
    as_of = pd.Timestamp("2026-06-01", tz="UTC")
    figures: dict[str, float] = {}

    start = time.perf_counter()
    world = generate_world(n_accounts, n_leads, seed=1, as_of=as_of)
    figures["generate_s"] = time.perf_counter() - start
    print(f"generate_world({n_accounts:,} accounts, {n_leads:,} leads): {figures['generate_s']:.1f} s", flush=True)
    for name, df in world.tables.items():
        print(f"  {name:<14} {len(df):>12,} rows", flush=True)
    print(f"  truth          {len(world.truth):>12,} rows", flush=True)
    figures["rows_total"] = float(sum(len(df) for df in world.tables.values()))
    figures["peak_rss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    print(f"  peak RSS after generation: {figures['peak_rss_gib']:.2f} GiB", flush=True)

    if write:
        with tempfile.TemporaryDirectory(prefix="crmscore-bench-") as tmp:
            for label, location in (("sqlite", f"sqlite:///{tmp}/crm.db"), ("parquet_folder", f"{tmp}/crm")):
                start = time.perf_counter()
                write_world(world, location, Path(tmp) / "truth.parquet")
                figures[f"write_{label}_s"] = time.perf_counter() - start
                print(f"write_world -> {label}: {figures[f'write_{label}_s']:.1f} s", flush=True)
    return figures


if __name__ == "__main__":
    main()
