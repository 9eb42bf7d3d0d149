"""Read speed of a 1M-row activities table through the extract reader, from SQLite, CSV, Parquet and PostgreSQL.

Run: `python -m benchmarks.run read` (ROWS=... to change the size; PG_URL=... for another PostgreSQL).
"""
from __future__ import annotations

import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from crm.extract import read_tables, write_extract

TYPES = np.array(["email_sent", "email_open", "email_click", "web_visit", "login", "feature_use", "meeting"])


def activities(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    is_lead = rng.random(n) < 0.3
    ids = pd.Series([f"a{i}" for i in rng.integers(0, n // 10, n)], dtype="str")
    return pd.DataFrame({
        "activity_id": pd.Series([f"e{i}" for i in range(n)], dtype="str"),
        "account_id": ids.where(~is_lead),
        "lead_id": ids.str.replace("a", "l").where(is_lead),
        "occurred_at": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 63_000_000, n), unit="s"),
        "type": TYPES[rng.integers(0, len(TYPES), n)],
        "channel": np.where(rng.random(n) < 0.5, "web", None),
        "email": [f"pii{i}@example.com" for i in range(n)],  # a PII column the reader must skip
    })


def main() -> None:
    n = int(os.environ.get("ROWS", 1_000_000))
    df = activities(n)
    pg = os.environ.get("PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    with tempfile.TemporaryDirectory() as tmp:
        targets = {
            "sqlite": f"sqlite:///{Path(tmp) / 'crm.db'}",
            "csv": str(Path(tmp) / "csv"),
            "parquet": str(Path(tmp) / "pq"),
            "postgresql": pg,
        }
        for kind, loc in targets.items():
            try:
                t0 = time.perf_counter()
                write_extract(loc, {"activities": df}, folder_format="csv" if kind == "csv" else "parquet")
                wrote = time.perf_counter() - t0
            except Exception as exc:  # PostgreSQL absent: say so loudly, go on
                print(f"{kind:>10}: SKIPPED ({type(exc).__name__}: {str(exc).splitlines()[0]})")
                continue
            t0 = time.perf_counter()
            out = read_tables(loc, tables=["activities"])["activities"]
            read = time.perf_counter() - t0
            assert len(out) == n and "email" not in out.columns
            print(f"{kind:>10}: read {n:,} activity rows in {read:5.1f} s ({n / read:,.0f} rows/s); write {wrote:5.1f} s")
            if kind == "postgresql":
                import sqlalchemy as sa

                eng = sa.create_engine(pg)
                with eng.begin() as c:
                    c.execute(sa.text("drop table if exists activities"))
                eng.dispose()
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
