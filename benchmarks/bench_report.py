"""HTML report benchmark: page size and build time of `crmscore report` at the demo world and at 1M scored accounts.

Demo world: `crmscore demo` (5,000 accounts + 5,000 leads, four trained models, registry, validation runs) in a
temporary folder, then the report built twice from the stored state (the second build must be byte-identical).
``CRMSCORE_BENCH_REPORT_WORKDIR`` reuses a workdir a demo already filled (its crm.db) instead.

1M: synthetic churn + CLV score rows for ``CRMSCORE_BENCH_REPORT_ROWS`` accounts (default 1,000,000; seeded; reasons
JSON and sentences of the written shape) written with ``write_scores`` into SQLite, beside an accounts table; no
registry (the auditor part of a model is the same size at any number of accounts); with
``CRMSCORE_BENCH_REPORT_PG_URL`` (e.g. ``postgresql+psycopg://postgres@127.0.0.1:5432/h2_report``, an existing, empty
database the benchmark may fill) the same state is also written to PostgreSQL and its report timed. Writing the
synthetic state is not part of the build time: only ``build_report`` is timed (wall and CPU seconds of this process,
with the 1-minute load average before and after, as the machine is shared). Targets: page < 3 MB in both, build < 30 s
at 1M on 2 cores.

Run: ``python -m benchmarks.run report``.
"""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SIZE_LIMIT = 3_000_000
TIME_LIMIT_1M = 30.0


def _time_report(config: Path, crm: str) -> tuple[float, float, str, int, bool, str]:
    """Wall and CPU seconds of one build, the load average around it, page bytes, identical rebuild, references."""
    from pipelines.config import load_settings
    from pipelines.report import build_report, external_references

    settings = load_settings(config, crm=crm, env={})
    load_before = os.getloadavg()[0]
    start, cpu = time.perf_counter(), time.process_time()
    html = build_report(settings)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    load = f"{load_before:.1f}-{os.getloadavg()[0]:.1f}"
    same = build_report(settings) == html
    refs = external_references(html)
    return seconds, cpu, load, len(html.encode("utf-8")), same, f"{len(refs)} external references"


def _demo(root: Path) -> tuple[Path, str]:
    given = os.environ.get("CRMSCORE_BENCH_REPORT_WORKDIR")
    if given:
        wd = Path(given).resolve()
        cfg = root / "demo.yaml"
        cfg.write_text(f"workdir: {wd}\n")
        return cfg, f"sqlite:///{wd / 'crm.db'}"
    cfg = root / "demo.yaml"
    cfg.write_text(f"workdir: {root / 'wd'}\n")
    env = {**os.environ, "PREFECT_HOME": str(root / "prefect")}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "pipelines.cli", "demo", "--config", str(cfg)], check=True, env=env,
                   stdout=subprocess.DEVNULL)
    print(f"demo world built in {time.perf_counter() - start:.0f} s", flush=True)
    return cfg, f"sqlite:///{root / 'wd' / 'crm.db'}"


def _accounts(n: int, rng: np.random.Generator) -> pd.DataFrame:
    ids = pd.Series(np.char.add("acc_", np.arange(n).astype(str)), dtype="str")
    return pd.DataFrame({
        "account_id": ids,
        "created_at": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 600, n), unit="D"),
        "segment": pd.Series(np.array(["smb", "mid_market", "enterprise", "consumer"])[rng.integers(0, 4, n)]),
        "industry": pd.Series(np.array(["retail", "software", "health", "finance"])[rng.integers(0, 4, n)]),
        "country": pd.Series(np.array(["GB", "DE", "FR", "US"])[rng.integers(0, 4, n)]),
        "acquisition_channel": pd.Series(np.array(["web", "partner", "sales"])[rng.integers(0, 3, n)]),
        "acquisition_cost": rng.gamma(2.0, 50.0, n),
        "consent_profiling": True,
        "deleted_at": pd.Series(pd.NaT, index=range(n), dtype="datetime64[us, UTC]"),
    })


def _score_rows(ids: pd.Series, model: str, score: np.ndarray, bands: np.ndarray, outcome: str) -> pd.DataFrame:
    logins = pd.Series((score * 37).astype(int) % 30).astype(str)
    tenure = pd.Series((score * 1000).astype(int) % 900).astype(str)
    reasons = ('[{"feature":"eng__logins_30d","label":"Logins in the last 30 days","value":' + logins
               + ',"contribution":0.21},{"feature":"life__tenure_days","label":"Tenure","value":' + tenure
               + ',"contribution":-0.08}]')
    text = ("Logins in the last 30 days: " + logins + f" (raises {outcome}); Tenure: " + tenure
            + f" days (lowers {outcome})")
    pct = np.clip(np.ceil(pd.Series(score).rank(pct=True, method="first").to_numpy() * 100), 1, 100).astype(int)
    return pd.DataFrame({"entity_type": "account", "entity_id": ids.to_numpy(), "model": model, "score": score,
                         "score_percentile": pct, "band": bands, "reasons": reasons.to_numpy(),
                         "reason_text": text.to_numpy(), "model_version": "1"})


def _million(root: Path, n: int, crm: str | None = None) -> tuple[Path, str]:
    """The synthetic state of ``n`` scored accounts, in a new SQLite file (or the database ``crm``)."""
    from crm.extract import write_extract
    from crm.writeback import write_scores
    from models.bands import value_at_risk_rows
    from models.tasks import TASKS

    rng = np.random.default_rng(7)
    (root / "big").mkdir(exist_ok=True)
    crm = crm or f"sqlite:///{root / 'big' / 'crm.db'}"
    start = time.perf_counter()
    accounts = _accounts(n, rng)
    write_extract(crm, {"accounts": accounts})
    churn = rng.beta(1.5, 8.0, n)
    clv = rng.gamma(1.5, 400.0, n)
    frames = [
        _score_rows(accounts["account_id"], "churn", churn,
                    np.where(churn >= 0.5, "high", np.where(churn >= 0.25, "medium", "low")), "churn risk"),
        _score_rows(accounts["account_id"], "clv", clv,
                    np.where(clv >= np.quantile(clv, 0.8), "top", np.where(clv >= np.quantile(clv, 0.4), "middle",
                                                                          "low")), "expected value"),
    ]
    as_of = pd.Timestamp("2026-10-01", tz="UTC")
    write_scores(crm, pd.concat(frames, ignore_index=True), scoring_run_id="bench-1m", as_of=as_of,
                 scored_at=as_of, models=tuple(TASKS), value_at_risk=value_at_risk_rows(frames[0], frames[1]))
    print(f"synthetic state ({n:,} accounts, {2 * n:,} score rows) written to {crm.split(':')[0]} in "
          f"{time.perf_counter() - start:.0f} s (not part of the build time)", flush=True)
    cfg = root / "big.yaml"
    cfg.write_text(f"workdir: {root / 'big' / 'wd'}\n")
    return cfg, crm


def main() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    n = int(os.environ.get("CRMSCORE_BENCH_REPORT_ROWS", "1000000"))
    with tempfile.TemporaryDirectory(prefix="crmscore-bench-report-") as tmp:
        root = Path(tmp)
        states = [("demo world", lambda: _demo(root)), (f"{n:,} accounts, SQLite", lambda: _million(root, n))]
        pg = os.environ.get("CRMSCORE_BENCH_REPORT_PG_URL")
        if pg:
            states.append((f"{n:,} accounts, PostgreSQL", lambda: _million(root, n, pg)))
        rows = []
        for name, make in states:
            cfg, crm = make()
            rows.append((name, *_time_report(cfg, crm)))
            print(f"{name}: built in {rows[-1][1]:.1f} s wall, {rows[-1][2]:.1f} s CPU", flush=True)
        print("| state | page size | build wall | build CPU | load average | byte-identical rebuild | self-contained |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for name, seconds, cpu, load, size, same, refs in rows:
            print(f"| {name} | {size / 1e6:.2f} MB | {seconds:.1f} s | {cpu:.1f} s | {load} | {'yes' if same else 'NO'} "
                  f"| {refs} |")
        big = rows[1:]
        ok = (all(r[4] < SIZE_LIMIT and r[5] for r in rows) and all(r[1] < TIME_LIMIT_1M for r in big))
        print(f"targets (page < 3 MB, build < {TIME_LIMIT_1M:.0f} s at 1M, identical rebuild): "
              f"{'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
