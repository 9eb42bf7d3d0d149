"""The whole pipeline on a synthetic world: training time, quality against the truth, the model budget, scoring speed.

Run: `python -m benchmarks.run pipeline` (env: BENCH_ACCOUNTS, BENCH_LEADS, BENCH_SCORE_ROWS, BENCH_SEED).

1. Generate a world (default 10k accounts, 10k leads) into SQLite.
2. `train_flow` for all four tasks (validation, features, search, calibration, MLflow, gate): wall time.
3. `score_flow`: wall time; the written scores against the simulation's realized future, beside the true
   probabilities (`models.evaluate.compare_with_truth`).
4. The default budget against an unconstrained LightGBM on the same churn training set (held-out AUC).
5. Scoring throughput with reasons (pred_contrib, calibration mapping, top-k, sentences, JSON) and the SQLite
   write-back, on BENCH_SCORE_ROWS rows resampled from the scoring features; extrapolated to 1M accounts.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

AS_OF = "2026-10-01"


def main() -> None:
    from pipelines.runtime import configure_environment

    n_acc = int(os.environ.get("BENCH_ACCOUNTS", 10_000))
    n_leads = int(os.environ.get("BENCH_LEADS", 10_000))
    seed = int(os.environ.get("BENCH_SEED", 7))
    score_rows = int(os.environ.get("BENCH_SCORE_ROWS", 100_000))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        configure_environment(root / "wd")
        cfg = root / "bench.yaml"
        cfg.write_text(f"workdir: {root / 'wd'}\n")
        crm = f"sqlite:///{root / 'wd' / 'crm.db'}"
        _run(root, cfg, crm, n_acc, n_leads, seed, score_rows)


def _run(root: Path, cfg: Path, crm: str, n_acc: int, n_leads: int, seed: int, score_rows: int) -> None:
    from crm.synthetic import generate_world, write_world
    from crm.writeback import read_scores
    from models.evaluate import compare_with_truth
    from pipelines.flows import score_flow, train_flow

    t0 = time.perf_counter()
    world = generate_world(n_acc, n_leads, seed, pd.Timestamp(AS_OF, tz="UTC"))
    write_world(world, crm, root / "truth.parquet")
    print(f"generate + write {n_acc:,} accounts / {n_leads:,} leads: {time.perf_counter() - t0:.1f} s "
          f"({sum(len(t) for t in world.tables.values()):,} rows)")

    t0 = time.perf_counter()
    summary = train_flow(config_file=str(cfg), crm=crm, as_of=AS_OF)
    train_s = time.perf_counter() - t0
    print(f"train_flow, all four tasks: {train_s:.1f} s")
    for o in summary.outcomes:
        best = {k: round(v.get("roc_auc", v.get("normalized_gini", float("nan"))), 3) for k, v in o.baseline_metrics.items()}
        key = "roc_auc" if "roc_auc" in o.metrics else "normalized_gini"
        print(f"  {o.task:9s} {o.status:10s} held-out {key} {o.metrics.get(key, float('nan')):.3f} "
              f"ece {o.metrics.get('ece', float('nan')):.3f} baselines {best}")

    t0 = time.perf_counter()
    s = score_flow(config_file=str(cfg), crm=crm, as_of=AS_OF)
    print(f"score_flow: {time.perf_counter() - t0:.1f} s for {sum(s.rows.values()):,} scores")
    cmp = compare_with_truth(read_scores(crm), world.truth)
    print("written scores vs the simulated future (ratio = model / truth):")
    print(cmp.to_string(index=False, float_format=lambda v: f"{v:.3f}"))

    _budget(crm, cfg)
    _throughput(crm, cfg, score_rows)


def _budget(crm: str, cfg: Path) -> None:
    """Held-out churn AUC of the default budget against an unconstrained model on the same data."""
    from crm.extract import read_extract
    from crm.privacy import profiling_view
    from models.dataset import CutoffOptions, FeatureOptions, build_training_data
    from models.tasks import TASKS
    from models.train import LightGBMParams, SearchConfig, train_task

    tables = profiling_view(read_extract(crm).tables)
    data = build_training_data(tables, TASKS["churn"], as_of=pd.Timestamp(AS_OF, tz="UTC"), horizon_days=90,
                               cutoffs=CutoffOptions(), options=FeatureOptions())
    for name, params in (("default budget 200 trees/15 leaves/depth 6", LightGBMParams()),
                         ("unconstrained 2000 trees/63 leaves/no depth limit",
                          LightGBMParams(max_trees=2000, max_leaves=63, max_depth=-1, search=(
                              SearchConfig(63, 20, 0.05, 0.8), SearchConfig(31, 20, 0.03, 0.8),
                              SearchConfig(63, 50, 0.02, 0.7))))):
        t0 = time.perf_counter()
        m = train_task(TASKS["churn"], data, params, seed=42)
        print(f"churn {name}: held-out AUC {m.metrics['roc_auc']:.4f}, trees {m.booster.num_trees()}, "
              f"train {time.perf_counter() - t0:.1f} s")


def _throughput(crm: str, cfg: Path, rows: int) -> None:
    """Scores with reasons and the SQLite write-back for `rows` churn + clv rows; per-1M extrapolation."""
    from crm.extract import read_extract
    from crm.privacy import profiling_view
    from crm.writeback import write_scores
    from models.dataset import FeatureOptions, build_scoring_features
    from models.registry import Registry
    from models.scoring import ScoringOptions, score_task
    from models.tasks import TASKS
    from pipelines.config import load_settings

    settings = load_settings(cfg, env={})
    reg = Registry(settings.tracking_uri, settings.artifact_root)
    tables = profiling_view(read_extract(crm).tables)
    frames, spent = [], {"pred_contrib": 0.0, "score_task": 0.0}
    for name in ("churn", "clv"):
        fs = build_scoring_features(tables, TASKS[name], as_of=pd.Timestamp(AS_OF, tz="UTC"), options=FeatureOptions())
        model, version = reg.load_champion(name, list(fs.catalog))
        rng = np.random.default_rng(0)
        big = fs.frame.iloc[rng.integers(0, len(fs.frame), rows)].reset_index(drop=True)
        big["entity_id"] = [f"x{i}" for i in range(rows)]
        t0 = time.perf_counter()
        model.contributions(big, num_threads=0)
        spent["pred_contrib"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        frames.append(score_task(model, TASKS[name], type(fs)(frame=big, catalog=fs.catalog), model_version=version,
                                 options=ScoringOptions()))
        spent["score_task"] += time.perf_counter() - t0
    scores = pd.concat(frames, ignore_index=True)
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'scores.db'}"
        t0 = time.perf_counter()
        write_scores(url, scores, scoring_run_id="bench", as_of=pd.Timestamp(AS_OF, tz="UTC"),
                     scored_at=pd.Timestamp(AS_OF, tz="UTC"))
        write_s = time.perf_counter() - t0
    extra = spent["score_task"] - spent["pred_contrib"]
    per_m = (spent["score_task"] + write_s) * 1_000_000 / rows
    print(f"scoring {rows:,} accounts for churn + clv: pred_contrib {spent['pred_contrib']:.1f} s, whole scoring with "
          f"reasons {spent['score_task']:.1f} s (reasons add {100 * extra / spent['pred_contrib']:.0f}%), "
          f"SQLite write-back of {len(scores):,} rows {write_s:.1f} s")
    print(f"extrapolated to 1M accounts: {per_m / 60:.1f} min (features for 1M accounts: see the Features section)")
