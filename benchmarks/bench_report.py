"""HTML report benchmark: page size and build time of `crmscore report` at the demo world and at 1M scored accounts.

Demo world: `crmscore demo` (5,000 accounts + 5,000 leads, four trained models, registry, validation runs) in a
temporary folder, then the report built twice from the stored state (the second build must be byte-identical).
``CRMSCORE_BENCH_REPORT_WORKDIR`` reuses a workdir a demo already filled (its crm.db) instead.

1M: synthetic churn + CLV score rows for ``CRMSCORE_BENCH_REPORT_ROWS`` accounts (default 1,000,000; seeded; reasons
JSON and sentences of the written shape) written with ``write_scores`` into SQLite, beside an accounts table; no
registry (the auditor part of a model is the same size at any number of accounts). Targets: page < 3 MB in both,
build < 30 s at 1M on 2 cores.

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


def _time_report(config: Path, crm: str) -> tuple[float, int, bool, str]:
    from pipelines.config import load_settings
    from pipelines.report import build_report, external_references

    settings = load_settings(config, crm=crm, env={})
    start = time.perf_counter()
    html = build_report(settings)
    seconds = time.perf_counter() - start
    same = build_report(settings) == html
    refs = external_references(html)
    return seconds, len(html.encode("utf-8")), same, f"{len(refs)} external references"


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


def _million(root: Path, n: int) -> tuple[Path, str]:
    from crm.extract import write_extract
    from crm.writeback import write_scores
    from models.bands import value_at_risk_rows
    from models.tasks import TASKS

    rng = np.random.default_rng(7)
    crm = f"sqlite:///{root / 'big' / 'crm.db'}"
    (root / "big").mkdir()
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
    print(f"1M state ({n:,} accounts, {2 * n:,} score rows) written in {time.perf_counter() - start:.0f} s", flush=True)
    cfg = root / "big.yaml"
    cfg.write_text(f"workdir: {root / 'big' / 'wd'}\n")
    return cfg, crm


def main() -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    n = int(os.environ.get("CRMSCORE_BENCH_REPORT_ROWS", "1000000"))
    with tempfile.TemporaryDirectory(prefix="crmscore-bench-report-") as tmp:
        root = Path(tmp)
        rows = []
        for name, (cfg, crm) in (("demo world", _demo(root)), (f"{n:,} accounts", _million(root, n))):
            seconds, size, same, refs = _time_report(cfg, crm)
            rows.append((name, size, seconds, same, refs))
        print("| state | page size | build time | byte-identical rebuild | self-contained |")
        print("| --- | --- | --- | --- | --- |")
        for name, size, seconds, same, refs in rows:
            print(f"| {name} | {size / 1e6:.2f} MB | {seconds:.1f} s | {'yes' if same else 'NO'} | {refs} |")
        big = rows[-1]
        ok = all(r[1] < SIZE_LIMIT for r in rows) and big[2] < TIME_LIMIT_1M and all(r[3] for r in rows)
        print(f"targets (page < 3 MB, build < {TIME_LIMIT_1M:.0f} s at 1M, identical rebuild): "
              f"{'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
