"""The whole pipeline on a synthetic world: training time, quality against the truth, the model budget, scoring speed.

Run: `python -m benchmarks.run pipeline` (env: BENCH_ACCOUNTS, BENCH_LEADS, BENCH_SCORE_ACCOUNTS, BENCH_SEED).

1. Generate a world (default 10k accounts, 10k leads) into SQLite.
2. `train_flow` for all four tasks (validation, features, search, calibration, MLflow, gate): wall time.
3. `score_flow`: wall time; the written scores against the simulation's realized future, beside the true
   probabilities (`models.evaluate.compare_with_truth`).
4. The production budget against an unconstrained LightGBM on the same churn training set (held-out AUC).
5. Scoring throughput with reasons (TreeSHAP, calibration mapping, top-k, sentences, JSON) and the SQLite
   write-back, on a second world of BENCH_SCORE_ACCOUNTS (200k) distinct accounts; extrapolated to 1M accounts.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import pandas as pd

AS_OF = "2026-10-01"


def main() -> None:
    from pipelines.runtime import configure_environment

    n_acc = int(os.environ.get("BENCH_ACCOUNTS", 10_000))
    n_leads = int(os.environ.get("BENCH_LEADS", 10_000))
    seed = int(os.environ.get("BENCH_SEED", 7))
    score_accounts = int(os.environ.get("BENCH_SCORE_ACCOUNTS", 200_000))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        configure_environment(root / "wd")
        cfg = root / "bench.yaml"
        cfg.write_text(f"workdir: {root / 'wd'}\n")
        crm = f"sqlite:///{root / 'wd' / 'crm.db'}"
        _run(root, cfg, crm, n_acc, n_leads, seed, score_accounts)


def _run(root: Path, cfg: Path, crm: str, n_acc: int, n_leads: int, seed: int, score_accounts: int) -> None:
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
    _throughput(crm, cfg, score_accounts, seed)


def _budget(crm: str, cfg: Path) -> None:
    """Held-out churn AUC of the production budget against an unconstrained model on the same training set."""
    from dataclasses import replace

    from crm.extract import read_extract
    from crm.privacy import profiling_view
    from models.tasks import TASKS
    from models.train import SearchConfig, train_task
    from pipelines.config import load_settings
    from pipelines.flows import train_one
    from pipelines.model_config import evaluation_settings, lightgbm_params

    settings = load_settings(cfg, crm=crm, env={})
    tables = profiling_view(read_extract(crm).tables)
    params = lightgbm_params(settings)
    t0 = time.perf_counter()
    m, data, _ = train_one.fn(TASKS["churn"], tables, settings, pd.Timestamp(AS_OF, tz="UTC"))  # as train_flow does
    print(f"churn production budget (<= {params.max_trees} trees of <= {params.max_leaves} leaves, <= "
          f"{params.max_total_leaves} leaves in all, depth {params.max_depth}): held-out AUC "
          f"{m.report.metrics['roc_auc']:.4f}, trees {m.predictor.booster.num_trees()}, train {time.perf_counter() - t0:.1f} s")
    free = replace(params, max_trees=2000, max_leaves=63, max_depth=-1, max_total_leaves=10**9, search=(
        SearchConfig(63, 20, 0.05, 0.8), SearchConfig(31, 20, 0.03, 0.8), SearchConfig(63, 50, 0.02, 0.7)))
    t0 = time.perf_counter()
    m = train_task(TASKS["churn"], data, free, seed=settings.training.seed, settings=evaluation_settings(settings))
    print(f"churn unconstrained (<= 2000 trees of <= 63 leaves, no depth limit): held-out AUC "
          f"{m.report.metrics['roc_auc']:.4f}, trees {m.predictor.booster.num_trees()}, train {time.perf_counter() - t0:.1f} s")


def _throughput(crm: str, cfg: Path, accounts: int, seed: int) -> None:
    """Churn + clv scoring with reasons and the SQLite write-back, on a second, larger world of distinct accounts.

    The champions trained above score every eligible account of a fresh world of ``accounts`` accounts (another
    seed, generated in memory): the features, ``score_task`` (pattern TreeSHAP, calibration mapping, top-k,
    sentences, JSON, percentiles, bands), the value at risk and one ``write_scores`` transaction, each timed; the
    bare ``pred_contrib`` call is timed on 20,000 of the rows for comparison. Extrapolated linearly to 1M eligible
    accounts (conservative for the pattern TreeSHAP, whose cost per row falls as rows share decision patterns).
    """
    from crm.privacy import profiling_view
    from crm.synthetic import generate_world
    from crm.writeback import write_scores
    from models.bands import value_at_risk_rows
    from models.dataset import build_scoring_features
    from models.registry import Registry
    from models.scoring import score_task
    from models.tasks import TASKS
    from models.treeshap import PatternTreeShap
    from pipelines.config import load_settings
    from pipelines.model_config import feature_options, scoring_options

    settings = load_settings(cfg, env={})
    reg = Registry(settings.tracking_uri, settings.artifact_root)
    as_of = pd.Timestamp(AS_OF, tz="UTC")
    t0 = time.perf_counter()
    world = generate_world(accounts, 1000, seed + 1, as_of)
    tables = profiling_view(world.tables)
    del world
    print(f"scoring world: {accounts:,} accounts generated in memory in {time.perf_counter() - t0:.1f} s")
    spent = {"features": 0.0, "pred_contrib": 0.0, "pattern": 0.0, "score_task": 0.0}
    frames, n_rows = {}, 0
    opts = scoring_options(settings)
    t0 = time.perf_counter()  # churn and clv score the same population: the flow builds its features once
    fs = build_scoring_features(tables, TASKS["churn"], as_of=as_of, options=feature_options(settings))
    spent["features"] = time.perf_counter() - t0
    for name in ("churn", "clv"):
        model, version = reg.load_champion(name, list(fs.catalog))
        n_rows = len(fs.frame)
        sample = fs.frame.iloc[:20_000]
        t0 = time.perf_counter()
        model.contributions(sample, num_threads=0)
        spent["pred_contrib"] += (time.perf_counter() - t0) * n_rows / len(sample)
        t0 = time.perf_counter()
        PatternTreeShap(model.booster).contributions(model.matrix(fs.frame))
        spent["pattern"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        frames[name] = score_task(model, TASKS[name], fs, model_version=version, options=opts)
        spent["score_task"] += time.perf_counter() - t0
        print(f"  {name}: {n_rows:,} eligible accounts, booster {model.booster.num_trees()} trees "
              f"(up to {max(t['num_leaves'] for t in model.booster.dump_model()['tree_info'])} leaves)")
    scores = pd.concat(frames.values(), ignore_index=True)
    var = value_at_risk_rows(frames["churn"], frames["clv"])
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'scores.db'}"
        t0 = time.perf_counter()
        write_scores(url, scores, models=tuple(TASKS), value_at_risk=var, scoring_run_id="bench", as_of=as_of, scored_at=as_of)
        write_s = time.perf_counter() - t0
    per_m = 1_000_000 / n_rows
    after = spent["score_task"] - spent["pattern"] + write_s
    print(f"scoring {n_rows:,} accounts for churn + clv (all cores): features {spent['features']:.1f} s; bare pred_contrib "
          f"{spent['pred_contrib']:.1f} s (timed on 20,000 rows per model); pattern TreeSHAP {spent['pattern']:.1f} s; "
          f"whole score_task {spent['score_task']:.1f} s; SQLite write-back of {len(scores):,} rows + value at risk "
          f"{write_s:.1f} s")
    print(f"beyond TreeSHAP (calibration mapping, top-k, sentences, JSON, bands, write-back): {after:.1f} s = "
          f"{100 * after / spent['pred_contrib']:.0f}% of the bare pred_contrib call (target <= 20%)")
    print(f"extrapolated to 1M eligible accounts: scoring with reasons + SQLite write-back "
          f"{(spent['score_task'] + write_s) * per_m / 60:.1f} min (target 5 min); with the features "
          f"{(spent['score_task'] + write_s + spent['features']) * per_m / 60:.1f} min; with the bare pred_contrib "
          f"instead of pattern TreeSHAP {(spent['pred_contrib'] + after) * per_m / 60:.1f} min")
