"""Lead scores against the truth over a grid of seeds x world shapes: how close lead_mql gets to the true probabilities.

Each cell generates a world with ``crm.synthetic.generate_world`` (a seed and a shape: fewer leads, a shorter history,
another base rate, a weaker signal), trains the task through the production path
(``models.dataset.build_training_data`` + ``models.train.train_task`` with the packaged configuration, or a named
variant of it), scores the open leads at ``as_of`` (``build_scoring_features`` + the predictor) and compares the
scores with the generator's truth on the same rows:

- ``auc``: ROC AUC of the scores against the realized outcome, and ``truth_auc`` of the true probabilities;
- ``eauc``: the *expected* AUC under the truth: every row counts as a positive with weight p and as a negative with
  weight 1 - p (p = the true probability). It ranks the same way as the realized AUC does on average, without the
  outcome noise of a few hundred leads (at 3,000 leads about 400 are open at as_of and the realized AUC moves by
  +-0.04 between outcome draws; a ratio of two such numbers cannot tell 0.93 from 0.95). ``ratio`` = eauc(model) /
  eauc(truth) is the figure the grid is judged on; ``ratio_realized`` is the noisy one beside it.

Shapes (``SHAPES``): ``base`` 3,000 leads over 900 days, 60-day horizon; ``small`` 1,500 leads; ``short`` 450 days
of history; ``rare`` a 30-day horizon (lower base rate); ``weak`` half of the leads' activity rows dropped at random
(a CRM that tracks less of the engagement: the same truth, a weaker observable signal). Accounts are few (300): the
lead tasks do not read them. ``accounts`` (3,000 accounts, churn and clv) checks changes to shared training code.

Variants (``VARIANTS``): named changes of the packaged configuration (cutoff layout, LightGBM search), each a function
of the production option objects; ``production`` is the packaged configuration itself.

Run: ``python -m benchmarks.run leads``; env ``BENCH_LEADS_SEEDS`` (default 1,2,3,4,5), ``BENCH_LEADS_SHAPES``
(default base,small,short,rare,weak), ``BENCH_LEADS_VARIANTS`` (default production), ``BENCH_LEADS_TASKS``
(default lead_mql; churn/clv run on the ``accounts`` shape); ``BENCH_LEADS_TIMING=leads,events,cutoffs`` times only
the decayed counts on random activities instead.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

AS_OF = pd.Timestamp("2026-10-01", tz="UTC")


@dataclass(frozen=True)
class Shape:
    """A world shape: generator arguments and the share of the leads' activity rows the CRM keeps."""

    n_accounts: int
    n_leads: int
    history_days: int
    mql_days: int
    activity_keep: float = 1.0


SHAPES: dict[str, Shape] = {
    "base": Shape(300, 3000, 900, 60),
    "small": Shape(300, 1500, 900, 60),
    "short": Shape(300, 3000, 450, 60),
    "rare": Shape(300, 3000, 900, 30),
    "weak": Shape(300, 3000, 900, 60, activity_keep=0.5),
    "accounts": Shape(3000, 300, 900, 60),
}


@dataclass(frozen=True)
class Options:
    """What a variant may change: the cutoff layout, the feature options and the LightGBM budget/search."""

    cutoffs: object  # models.dataset.CutoffOptions
    features: object  # models.dataset.FeatureOptions
    params: object  # models.train.LightGBMParams
    settings: object  # models.train.EvaluationSettings
    # Feature families left out of training and scoring (ablation): column-name prefixes, e.g. "funnel__".
    drop_prefixes: tuple[str, ...] = ()


def production_options(config_file: str | None = None) -> Options:
    """The option objects production trains with (``configs/default.yaml`` through ``pipelines.model_config``)."""
    from pipelines.config import load_settings
    from pipelines.model_config import cutoff_options, evaluation_settings, feature_options, lightgbm_params

    s = load_settings(config_file, env={})
    return Options(cutoff_options(s), feature_options(s), lightgbm_params(s), evaluation_settings(s))


def _cutoffs(count: int, step: int) -> Callable[[Options], Options]:
    """Lead tasks read ``lead_count``, account tasks ``count``: both are set."""
    return lambda o: replace(o, cutoffs=replace(o.cutoffs, count=count, lead_count=count, step_days=step))


def _decay(*half_lives: int) -> Callable[[Options], Options]:
    return lambda o: replace(o, features=replace(o.features, lead_decay_half_lives_days=tuple(half_lives)))


def _both(*changes: Callable[[Options], Options]) -> Callable[[Options], Options]:
    def apply(o: Options) -> Options:
        for change in changes:
            o = change(o)
        return o
    return apply


def _search(*points: tuple[int, int, float, float], keep: bool = False) -> Callable[[Options], Options]:
    """The search replaced by ``points`` (``keep``: ``points`` first, then the packaged points)."""
    def apply(o: Options) -> Options:
        from models.train import SearchConfig

        added = tuple(SearchConfig(*p) for p in points)
        return replace(o, params=replace(o.params, search=added + (o.params.search if keep else ())))
    return apply


def _params(**changes: object) -> Callable[[Options], Options]:
    return lambda o: replace(o, params=replace(o.params, **changes))


def _drop(*prefixes: str) -> Callable[[Options], Options]:
    return lambda o: replace(o, drop_prefixes=o.drop_prefixes + prefixes)


#: Named changes of the production options (levers measured over the grid). Keep the list short: each one is a grid.
VARIANTS: dict[str, Callable[[Options], Options]] = {
    "production": lambda o: o,
    # The lead defaults before issue 11: 12 cutoffs for leads, no decayed counts.
    "before": lambda o: replace(o, cutoffs=replace(o.cutoffs, lead_count=12),
                                features=replace(o.features, lead_decay_half_lives_days=())),
    "cut24x30": _cutoffs(24, 30),
    "cut26x14": _cutoffs(26, 14),
    "cut52x14": _cutoffs(52, 14),
    "cut104x7": _cutoffs(104, 7),
    "search_small_data": _search((7, 50, 0.05, 0.8), (7, 100, 0.05, 0.8), (15, 100, 0.05, 0.8), (3, 50, 0.1, 0.8)),
    "es50": lambda o: replace(o, params=replace(o.params, early_stopping_rounds=50)),
    "decay7_30": _decay(7, 30),
    "decay7_30_90": _decay(7, 30, 90),
    # Strongly regularised candidates beside the packaged ones, at the same TreeSHAP bound (max_total_leaves):
    # 400 trees of 7 or 3 leaves cost no more than 200 of 15.
    "regularised": _both(_search((7, 100, 0.05, 0.8), (3, 100, 0.05, 0.8), keep=True), _params(max_trees=400)),
    "trees400": _params(max_trees=400),
    "trees200": _params(max_trees=200),
    # The search before the one-SE rule (issue 11, item 4): the four packaged points, 200 trees, the best wins.
    "former_search": _both(_search((15, 50, 0.1, 0.8), (15, 100, 0.05, 0.8), (7, 20, 0.1, 1.0), (7, 50, 0.15, 0.7)),
                           _params(max_trees=200, selection_standard_errors=0.0)),
    "se1": _params(selection_standard_errors=1.0),
    "se05": _params(selection_standard_errors=0.5),
    # Ablation: one lead feature family out ("nodecay" = decay7_30 off is the decayed counts' row).
    "no_funnel": _drop("funnel__"),
    "no_firm": _drop("firm__"),
    "no_eng_windows": lambda o: replace(o, drop_prefixes=o.drop_prefixes + ("eng__window",)),
    "nodecay": _decay(),
}


def variant_options(name: str, base: Options) -> Options:
    """The options of variant ``name``; ``a+b`` applies variant a, then b."""
    opts = base
    for part in name.split("+"):
        opts = VARIANTS[part](opts)
    return opts


def make_world(shape: Shape, seed: int):
    """(tables models may see, truth) of a seeded world of ``shape`` (activity thinning seeded by ``seed`` too)."""
    from crm.privacy import exclude_deleted, profiling_view
    from crm.synthetic import DEFAULT_HORIZONS, generate_world

    horizons = {**DEFAULT_HORIZONS, "lead_mql_days": shape.mql_days}
    world = generate_world(shape.n_accounts, shape.n_leads, seed, AS_OF, history_days=shape.history_days,
                           horizons=horizons)
    tables = dict(world.tables)
    if shape.activity_keep < 1.0:
        acts = tables["activities"]
        rng = np.random.default_rng([seed, 7919])
        lead_row = acts["lead_id"].notna().to_numpy()
        keep = ~lead_row | (rng.random(len(acts)) < shape.activity_keep)
        tables["activities"] = acts.loc[keep].reset_index(drop=True)
    return profiling_view(exclude_deleted(tables)), world.truth


def expected_auc(score: np.ndarray, p: np.ndarray) -> float:
    """AUC of ``score`` when each row is a positive with weight ``p`` and a negative with weight ``1 - p``."""
    from sklearn.metrics import roc_auc_score

    score, p = np.asarray(score, float), np.clip(np.asarray(p, float), 0.0, 1.0)
    y = np.r_[np.ones(len(p)), np.zeros(len(p))]
    return float(roc_auc_score(y, np.r_[score, score], sample_weight=np.r_[p, 1.0 - p]))


def run_task(task: str, tables, truth: pd.DataFrame, shape: Shape, opts: Options, seed: int) -> dict[str, float]:
    """Train ``task`` as production does on ``tables`` and compare its scores at as_of with the truth."""
    from sklearn.metrics import roc_auc_score

    from models.dataset import build_scoring_features, build_training_data
    from models.evaluate import normalized_gini
    from models.tasks import TASKS
    from models.train import train_task

    spec = TASKS[task]
    horizon = shape.mql_days if task == "lead_mql" else spec.horizon_days
    t0 = time.perf_counter()
    data = build_training_data(tables, spec, as_of=AS_OF, horizon_days=horizon, cutoffs=opts.cutoffs,
                               options=opts.features)
    fs = build_scoring_features(tables, spec, as_of=AS_OF, options=opts.features)
    if opts.drop_prefixes:
        data, fs = _without(data, opts.drop_prefixes), _without(fs, opts.drop_prefixes)
    model = train_task(spec, data, opts.params, seed=seed, settings=opts.settings)
    scores = pd.DataFrame({"entity_id": fs.frame["entity_id"].to_numpy(), "score": model.predictor.predict(fs.frame)})
    both = truth.loc[truth["task"] == task].merge(scores, on="entity_id", how="inner")
    y, s, p = both["realized"].to_numpy(float), both["score"].to_numpy(float), both["true_value"].to_numpy(float)
    out = {"rows": float(len(data.frame)), "cutoffs": float(data.frame["cutoff_ts"].nunique()), "n": float(len(both)),
           "base_rate": float(p.mean()), "trees": float(model.report.best_iteration),
           "leaves": float(model.report.params["num_leaves"]), "seconds": time.perf_counter() - t0}
    if spec.kind == "regression":
        out.update(model_q=normalized_gini(y, s), truth_q=normalized_gini(y, p))
        out["ratio"] = out["model_q"] / out["truth_q"]
        out["ratio_realized"] = out["ratio"]
        return out
    out.update(auc=float(roc_auc_score(y, s)), truth_auc=float(roc_auc_score(y, p)),
               model_q=expected_auc(s, p), truth_q=expected_auc(p, p))
    out["ratio"] = out["model_q"] / out["truth_q"]
    out["ratio_realized"] = out["auc"] / out["truth_auc"]
    return out


def _dropped(column: str, prefixes: tuple[str, ...]) -> bool:
    """Whether an ablation drops ``column``: "eng__window" stands for the windowed (not decayed) eng__ columns."""
    if "eng__window" in prefixes and column.startswith("eng__") and "_decay" not in column:
        return True
    return any(column.startswith(p) for p in prefixes if p != "eng__window")


def _without(obj, prefixes: tuple[str, ...]):
    """A TrainingData or FeatureSet without the columns an ablation drops (frame and catalog alike)."""
    keep = [c for c in obj.frame.columns if not _dropped(c, prefixes)]
    return replace(obj, frame=obj.frame[keep], catalog={c: i for c, i in obj.catalog.items() if c in keep})


def time_decayed_counts(n_leads: int = 100_000, n_events: int = 5_000_000, n_cutoffs: int = 24,
                        half_lives: tuple[int, ...] = (7, 30), seed: int = 0) -> float:
    """Seconds to build the decayed counts for every lead at every cutoff (random canonical activities, 2 years)."""
    from features._context import Query, spine_arrays
    from features.engagement import ACTIVITY_TYPES, decayed_engagement_features

    rng = np.random.default_rng(seed)
    ids = np.array([f"l{i}" for i in range(n_leads)], dtype=object)
    types = np.array(list(ACTIVITY_TYPES), dtype=object)
    acts = pd.DataFrame({"lead_id": pd.array(ids[rng.integers(0, n_leads, n_events)], dtype="str"),
                         "occurred_at": (AS_OF - pd.to_timedelta(rng.integers(0, 730 * 86400, n_events), unit="s")
                                         ).astype("datetime64[us, UTC]"),
                         "type": pd.array(types[rng.integers(0, len(types), n_events)], dtype="str")})
    cuts = [AS_OF - pd.Timedelta(days=30 * k) for k in range(n_cutoffs)]
    spine = pd.DataFrame({"entity_id": pd.array(np.tile(ids, n_cutoffs), dtype="str"),
                          "cutoff_ts": pd.Series(np.repeat(cuts, n_leads)).astype("datetime64[us, UTC]")})
    index, codes, t = spine_arrays(spine)
    q = Query(entities=index, codes=codes, t=t, entity_ids=spine["entity_id"], windows_days=(30,))
    t0 = time.perf_counter()
    decayed_engagement_features(acts, "lead_id", q, half_lives)
    took = time.perf_counter() - t0
    print(f"decayed counts (half-lives {half_lives}) for {n_leads:,} leads x {n_cutoffs} cutoffs, {n_events:,} "
          f"activities: {took:.1f} s")
    return took


def _env_list(name: str, default: str) -> list[str]:
    return [v.strip() for v in os.environ.get(name, default).split(",") if v.strip()]


def run_grid(variants: list[str], shapes: list[str], seeds: list[int], tasks: list[str],
             base: Options | None = None) -> pd.DataFrame:
    """One row per (variant, task, shape, seed); each world is generated once and shared by the variants."""
    base = base or production_options()
    rows = []
    for shape_name in shapes:
        shape = SHAPES[shape_name]
        shape_tasks = [t for t in tasks if (t in ("churn", "clv")) == (shape_name == "accounts")]
        for seed in seeds:
            tables, truth = make_world(shape, seed)
            for task in shape_tasks:
                for v in variants:
                    r = run_task(task, tables, truth, shape, variant_options(v, base), seed)
                    rows.append({"variant": v, "task": task, "shape": shape_name, "seed": seed, **r})
                    print(f"  {v:18s} {task:8s} {shape_name:8s} seed {seed}: ratio {r['ratio']:.3f} "
                          f"(realized {r['ratio_realized']:.3f}, n {r['n']:.0f}, rows {r['rows']:.0f}, "
                          f"{r['cutoffs']:.0f} cutoffs, {r['trees']:.0f} trees x {r['leaves']:.0f}, "
                          f"{r['seconds']:.1f} s)", flush=True)
    return pd.DataFrame(rows)


def summarize(grid: pd.DataFrame) -> pd.DataFrame:
    """Per (variant, task): mean and worst ratio over every cell, the mean per shape, and the realized mean."""
    per_shape = grid.pivot_table(index=["variant", "task"], columns="shape", values="ratio", aggfunc="mean")
    agg = grid.groupby(["variant", "task"]).agg(mean=("ratio", "mean"), worst=("ratio", "min"),
                                                sd=("ratio", "std"), realized_mean=("ratio_realized", "mean"),
                                                seconds=("seconds", "mean"))
    return agg.join(per_shape.add_prefix("mean_")).round(3)


def main() -> pd.DataFrame:
    if os.environ.get("BENCH_LEADS_TIMING"):  # "leads,events,cutoffs": the cost of the decayed counts alone
        n_leads, n_events, n_cutoffs = (int(v) for v in os.environ["BENCH_LEADS_TIMING"].split(","))
        time_decayed_counts(n_leads, n_events, n_cutoffs)
        return pd.DataFrame()
    seeds = [int(s) for s in _env_list("BENCH_LEADS_SEEDS", "1,2,3,4,5")]
    shapes = _env_list("BENCH_LEADS_SHAPES", "base,small,short,rare,weak")
    variants = _env_list("BENCH_LEADS_VARIANTS", "production")
    tasks = _env_list("BENCH_LEADS_TASKS", "lead_mql")
    if any(t in ("churn", "clv") for t in tasks) and "accounts" not in shapes:
        shapes.append("accounts")
    print(f"lead scores vs truth: variants {variants}, tasks {tasks}, shapes {shapes}, seeds {seeds}")
    grid = run_grid(variants, shapes, seeds, tasks)
    table = summarize(grid)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(table.to_string())
    out = os.environ.get("BENCH_LEADS_OUT")
    if out:
        grid.to_csv(out, index=False)
    return table


if __name__ == "__main__":
    main()
