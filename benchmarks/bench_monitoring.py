"""Monitoring benchmark (issue 12, "what it must show"): false alarms, power, the detection curve, data-quality
defects, the estimated performance against the realized one, concept drift, and the cost at 1M accounts.

Every scenario runs the pure monitoring code (``models.monitoring``) on the seeded synthetic scoring world of the
unit tests (``tests/unit/_monitoring_world.py``: 50 features, calibrated churn probabilities from a known logistic
model, the thresholds proposed for ``configs/default.yaml``), with many more replicates than the tests, and prints
markdown tables for docs/benchmarks.md. Rates come with a 95% Wilson interval. The cost scenario uses the width and
dtypes of the real churn feature catalog (``features.build.build_features`` on a random extract: 119 columns, 5 of
them categorical, missing values as the feature code produces them), resampled to 1M rows.

Run: ``python -m benchmarks.run monitoring``. Environment: ``CRMSCORE_BENCH_MONITOR_SCALE`` multiplies every
replicate count (default 1; 0.1 for a smoke run), ``CRMSCORE_BENCH_MONITOR_ROWS`` sets the cost scenario's rows
(default 1,000,000), ``CRMSCORE_BENCH_MONITOR_SVG`` a path to draw the detection curve to (SVG, optional),
``CRMSCORE_BENCH_MONITOR_PARTS`` a comma-separated subset of the scenarios (false_alarms, power, curve, defects,
estimates, concept, cost, check_run; default all).
"""
from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from models.monitoring import (
    count_episodes,
    detection_curve,
    estimated_performance,
    estimator_reliable,
    feature_drift,
    grade_estimate,
    model_status,
    realized_performance,
    score_health,
    wilson_interval,
)
from tests.unit import _monitoring_world as world

T = world.THRESHOLDS
LEVEL = T.level
FLAGGED = ("warn", "alert")
#: churn probability's coefficients after a concept drift: logins now raise churn (a product change made heavy
#: users the unhappy ones); the features themselves do not move.
CONCEPT_COEF = {**world.COEF, "eng__logins_30d": +0.9}


def _scale(n: int) -> int:
    return max(2, int(round(n * float(os.environ.get("CRMSCORE_BENCH_MONITOR_SCALE", "1")))))


def _ids(n: int) -> pd.Index:
    return pd.Index([f"a{i}" for i in range(n)], name="entity_id")


def _rate(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n, LEVEL)
    return f"{k}/{n} = {k / n:.1%} [{lo:.1%}, {hi:.1%}]"


def _rate_fine(k: int, n: int) -> str:
    lo, hi = wilson_interval(k, n, LEVEL)
    return f"{k}/{n:,} = {k / n:.3%} [{lo:.3%}, {hi:.3%}]"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def _run(reference, frame: pd.DataFrame, *, elapsed_days: float = 0.0, p: np.ndarray | None = None):
    """Drift, score health and status of one scoring run of the world's (calibrated) model."""
    p = world.churn_probability(frame, elapsed_days=elapsed_days) if p is None else p
    drift = feature_drift(reference, frame, elapsed_days=elapsed_days, thresholds=T)
    health = score_health(reference, pd.Series(p, index=_ids(len(p))), bands=world.bands(p))
    return drift, health, model_status(drift, health, thresholds=T)


def _timed(label: str, f: Callable[[], str]) -> None:
    start = time.perf_counter()
    text = f()
    print(f"\n### {label} ({time.perf_counter() - start:.0f} s)\n\n{text}", flush=True)


def false_alarms(reference) -> str:
    """Stationary replicates (the base aged 90 days) at two run sizes, then 30-night sequences."""
    rows = []
    for n, replicates in ((2_000, _scale(200)), (20_000, _scale(200))):
        rng = np.random.default_rng(100 + n)
        alerts = warns = flags = tests = 0
        codes: dict[str, int] = {}
        for _ in range(replicates):
            drift, _, (status, reasons) = _run(reference, world.features(rng, n, elapsed_days=90), elapsed_days=90)
            alerts += status == "alert"
            warns += status == "warn"
            flags += int(drift["status"].isin(FLAGGED).sum())
            tests += len(drift)
            for r in reasons:
                codes[r.code] = codes.get(r.code, 0) + 1
        rows.append((f"{n:,}", replicates, _rate(alerts, replicates), _rate(warns, replicates),
                     _rate_fine(flags, tests), ", ".join(f"{k} x{v}" for k, v in sorted(codes.items())) or "none"))
    text = _table(("rows per run", "replicates", "run-level alert rate", "run-level warn rate",
                   "per-feature warn-or-alert rate (features x replicates)", "reasons seen"), rows)
    seq_rows = []
    for seed in range(_scale(5)):
        rng = np.random.default_rng(200 + seed)
        statuses = [_run(reference, world.features(rng, 20_000, elapsed_days=night), elapsed_days=night)[2][0]
                    for night in range(1, 31)]  # the base ages one day a night
        seq_rows.append((seed, count_episodes(statuses), count_episodes(statuses, level="warn"),
                         statuses.count("ok")))
    return text + "\n\n30 stationary nightly runs of 20,000 accounts (the base ages one day a night):\n\n" + _table(
        ("sequence seed", "alert episodes", "warn episodes", "ok runs of 30"), seq_rows)


def power(reference) -> str:
    replicates = _scale(100)
    rng = np.random.default_rng(300)
    hits = first = 0
    for _ in range(replicates):
        drift = feature_drift(reference, world.features(rng, 20_000, logins_shift_sd=0.3), elapsed_days=0,
                              thresholds=T)
        row = drift.set_index("feature").loc["eng__logins_30d"]
        hits += row["status"] in FLAGGED and row["reason"] == "shift"
        first += row["status"] in FLAGGED and row["rank"] == 1
    rest = np.array(world.CHANNEL_P[:-1]) / sum(world.CHANNEL_P[:-1]) * 0.4
    mix_hits = mix_clean = 0
    mix_n = _scale(100)
    for _ in range(mix_n):
        drift = feature_drift(reference, world.features(rng, 5_000, channel_p=(*rest, 0.6)), elapsed_days=0,
                              thresholds=T).set_index("feature")
        row = drift.loc["firm__acquisition_channel"]
        mix_hits += row["status"] in FLAGGED and row["reason"] == "category_mix"
        mix_clean += not drift.drop(index="firm__acquisition_channel")["status"].isin(FLAGGED).any()
    return _table(("scenario", "flagged with the right reason", "ranked first / other features silent"), [
        ("0.3 SD shift in logins (the most important feature), 20,000 accounts", _rate(hits, replicates),
         "ranked first: " + _rate(first, replicates)),
        ("60% of new leads from one channel (8% in the reference), 5,000 leads", _rate(mix_hits, mix_n),
         "others silent: " + _rate(mix_clean, mix_n)),
    ])


def curve(svg: str | None) -> str:
    shifts = (0.0, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5)
    sizes = {1_000: _scale(100), 10_000: _scale(50), 100_000: _scale(20)}
    parts = [detection_curve(shifts, [n], replicates=r, null_features=19, thresholds=T, seed=400 + i)
             for i, (n, r) in enumerate(sizes.items())]
    table = pd.concat(parts, ignore_index=True)
    rate = table.set_index(["shift_sd", "n_rows"])
    rows = [(f"{s:g}", *(f"{rate.loc[(s, n), 'detection_rate']:.0%} [{rate.loc[(s, n), 'low']:.0%}, "
                         f"{rate.loc[(s, n), 'high']:.0%}]" for n in sizes)) for s in shifts]
    if svg:
        _draw(table, svg)
    return _table(("shift (SD)", *(f"{n:,} rows ({r} replicates)" for n, r in sizes.items())), rows)


def _draw(table: pd.DataFrame, path: str) -> None:
    import matplotlib

    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    with matplotlib.rc_context({"svg.hashsalt": "crmscore", "svg.fonttype": "none"}):
        fig = Figure(figsize=(6, 3.6))
        FigureCanvasSVG(fig)
        ax = fig.add_subplot()
        for n, part in table.groupby("n_rows"):
            ax.plot(part["shift_sd"], part["detection_rate"], marker="o", label=f"{n:,} rows")
            ax.fill_between(part["shift_sd"], part["low"], part["high"], alpha=0.15)
        ax.axhline(0.95, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("mean shift of one N(0, 1) feature (SD), 19 stationary features beside it")
        ax.set_ylabel("runs flagged (warn or alert)")
        ax.set_ylim(-0.02, 1.02)
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(path, format="svg", metadata={"Date": None})


def _defect(frame: pd.DataFrame, defect: str, rng: np.random.Generator) -> tuple[pd.DataFrame, str]:
    broken = frame.copy()
    if defect == "nulls":  # a sync drops MRR on 20% of accounts (0% missing in the reference)
        broken.loc[rng.random(len(broken)) < 0.2, "sub__mrr"] = np.nan
        return broken, "sub__mrr"
    if defect == "x100":  # amounts arrive in cents instead of currency units
        broken["buy__revenue_90d"] = broken["buy__revenue_90d"] * 100
        return broken, "buy__revenue_90d"
    if defect == "new_category":  # a channel the model never saw, on 10% of the rows
        broken.loc[rng.random(len(broken)) < 0.1, "firm__acquisition_channel"] = "tiktok"
        return broken, "firm__acquisition_channel"
    # frozen timestamps: a migration stamps every account's created_at with the same date, so tenure is one value
    broken["firm__tenure_days"] = 12.0
    return broken, "firm__tenure_days"


def defects(reference) -> str:
    replicates = _scale(30)
    rng = np.random.default_rng(500)
    rows = []
    twin_flags = twins = 0
    for defect, label, expected in (("nulls", "nulls 0% -> 20% (MRR)", "missing_share"),
                                    ("x100", "amounts x100 (revenue 90d)", "shift"),
                                    ("new_category", "new category on 10% (channel)", "unseen_category"),
                                    ("frozen", "frozen timestamps (created_at one date: tenure)", "shift")):
        right = others = model_alert = 0
        seen: dict[str, int] = {}
        for _ in range(replicates):
            clean = world.features(rng, 5_000)
            broken, feature = _defect(clean, defect, rng)
            p = world.churn_probability(clean)  # the model scores what it is given; defects hit the features
            drift, _, (status, _) = _run(reference, broken, p=p)
            d = drift.set_index("feature")
            seen[d.loc[feature, "reason"]] = seen.get(d.loc[feature, "reason"], 0) + 1
            right += d.loc[feature, "status"] == "alert" and d.loc[feature, "reason"] == expected
            others += d.drop(index=feature)["status"].isin(FLAGGED).any()
            model_alert += status == "alert"
            twin = feature_drift(reference, clean, elapsed_days=0, thresholds=T)
            twin_flags += int(twin["status"].isin(FLAGGED).sum())
            twins += len(twin)
        rows.append((label, f"`{expected}`", _rate(right, replicates),
                     ", ".join(f"{k} x{v}" for k, v in sorted(seen.items())), _rate(others, replicates),
                     _rate(model_alert, replicates)))
    return _table(("defect (5,000 rows)", "expected reason", "feature alert with that reason", "reasons reported",
                   "runs with another feature flagged", "model status alert"), rows) + (
        f"\n\nClean twins (the same rows before the defect): features flagged {_rate_fine(twin_flags, twins)}.")


def estimates() -> str:
    replicates = _scale(200)
    rng = np.random.default_rng(600)
    close = reliable = 0
    errors = []
    for i in range(replicates):  # covariate shift: the population moves, P(churn | x) does not
        frame = world.features(rng, 10_000, logins_shift_sd=-0.7, mrr_shift_sd=0.5, elapsed_days=60)
        p = world.churn_probability(frame, elapsed_days=60)
        est = estimated_performance(p, seed=i, draws=100, level=LEVEL)
        perf = _realize(rng, p, p)
        errors.append(est.auc.value - perf.metrics["roc_auc"])
        close += abs(errors[-1]) <= T.estimate_auc_tolerance
        reliable += grade_estimate(est, perf, thresholds=T).reliable
    prior_n = _scale(100)
    reference = world.reference(np.random.default_rng(601), 5_000)
    cal_alert = unreliable = twin_alert = twin_unreliable = 0
    for i in range(prior_n):
        frame = world.features(rng, 10_000)
        p = world.churn_probability(frame)
        est = estimated_performance(p, seed=i, draws=100, level=LEVEL)
        drift, health, _ = _run(reference, frame, p=p)
        for outcome_p, is_twin in ((np.minimum(2 * p, 1.0), False), (p, True)):  # the base churn rate doubles
            perf = _realize(rng, outcome_p, p)
            grade = grade_estimate(est, perf, thresholds=T)
            status, reasons = model_status(drift, health, thresholds=T, reference=reference, realized=perf,
                                           grade=grade)
            alert = status == "alert" and reasons[0].code == "calibration"
            gone = not estimator_reliable([grade])
            if is_twin:
                twin_alert, twin_unreliable = twin_alert + alert, twin_unreliable + gone
            else:
                cal_alert, unreliable = cal_alert + alert, unreliable + gone
    e = np.abs(errors)
    return _table(("scenario", "figure", "value"), [
        ("covariate shift, 10,000 accounts", f"\\|estimated - realized AUC\\| <= {T.estimate_auc_tolerance}",
         _rate(close, replicates)),
        ("", "\\|error\\|: median / 95th percentile / max", f"{np.median(e):.4f} / {np.quantile(e, 0.95):.4f} / "
                                                            f"{e.max():.4f}"),
        ("", "estimate graded reliable", _rate(reliable, replicates)),
        ("prior shift (base churn rate doubles), 10,000 accounts", "first matured run: calibration alert",
         _rate(cal_alert, prior_n)),
        ("", "estimator marked unreliable", _rate(unreliable, prior_n)),
        ("stationary twin (same scores, outcomes as predicted)", "calibration alert", _rate(twin_alert, prior_n)),
        ("", "estimator marked unreliable", _rate(twin_unreliable, prior_n)),
    ])


def _realize(rng: np.random.Generator, p_true: np.ndarray, p_scored: np.ndarray):
    y = (rng.random(len(p_true)) < p_true).astype(np.float64)
    ids = _ids(len(p_scored)).to_numpy()
    scored = pd.DataFrame({"entity_id": ids, "score": p_scored, "band": world.bands(p_scored)})
    return realized_performance(scored, pd.DataFrame({"entity_id": ids, "y": y}), kind="binary",
                                min_slice_rows=200, ece_bins=10)


def concept() -> str:
    """The relation between features and outcome changes; the features do not."""
    replicates = _scale(50)
    rng = np.random.default_rng(700)
    reference = world.reference(np.random.default_rng(701), 10_000)
    silent = alerted = 0
    codes: dict[str, int] = {}
    for _ in range(replicates):
        frame = world.features(rng, 10_000)
        p = world.churn_probability(frame)
        z = np.full(len(frame), world.INTERCEPT)
        for col, beta in CONCEPT_COEF.items():
            loc, scale = world._LOC_SCALE[col]
            z += beta * (frame[col].to_numpy(dtype=np.float64) - loc) / scale
        drift, health, (status, _) = _run(reference, frame, p=p)
        silent += status == "ok"
        perf = _realize(rng, 1 / (1 + np.exp(-z)), p)
        status, reasons = model_status(drift, health, thresholds=T, reference=reference, realized=perf)
        alerted += status == "alert"
        for r in reasons:
            codes[r.code] = codes.get(r.code, 0) + 1
    return _table(("concept drift (logins now raise churn), 10,000 accounts", "value"), [
        ("drift and score health at scoring time: status ok", _rate(silent, replicates)),
        ("realized backtest of the first matured run: alert", _rate(alerted, replicates)),
        ("reasons of the backtest", ", ".join(f"{k} x{v}" for k, v in sorted(codes.items()))),
    ])


def _churn_catalog_frame(seed: int):
    """A real churn feature frame (names, kinds, dtypes, missing values) from the feature code on a random extract."""
    from benchmarks.bench_features import AS_OF, random_extract
    from features.build import build_features
    from features.spine import build_spine

    tables = random_extract(20_000, 400_000, 80_000, seed=seed)
    spine = build_spine(tables, "active_customers", [AS_OF - pd.Timedelta(days=90)])
    fs = build_features(tables, spine, "account")
    return fs.frame[fs.feature_columns].reset_index(drop=True), fs.catalog


def cost() -> str:
    from models.monitoring import build_reference

    n = int(os.environ.get("CRMSCORE_BENCH_MONITOR_ROWS", 1_000_000))
    base, catalog = _churn_catalog_frame(seed=0)
    rng = np.random.default_rng(800)
    train = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
    current = base.iloc[rng.integers(0, len(base), n)].reset_index(drop=True)
    p = rng.beta(2, 9, n)
    y = (rng.random(n) < p).astype(np.float64)
    bands = world.bands(p)
    importance = {c: float(v) for c, v in zip(catalog, rng.exponential(1.0, len(catalog)))}
    kinds = pd.Series([f"{i.kind}:{train[c].dtype}" for c, i in catalog.items()]).value_counts()
    t0, c0 = time.perf_counter(), time.process_time()
    reference = build_reference(train, catalog, p, bands, importance, held_out_scores=p, held_out_labels=y,
                                model_version="1", kind="binary", seed=0, n_boot=20, level=LEVEL)
    ref_wall, ref_cpu = time.perf_counter() - t0, time.process_time() - c0
    ids = pd.Index([f"A{i:08d}" for i in range(n)], dtype="str", name="entity_id")
    scores = pd.Series(rng.beta(2, 9, n), index=ids)
    keep = rng.random(n) < 0.97  # tonight 3% of last night's accounts are gone, and as many are new
    prev_ids = ids[keep].append(pd.Index([f"B{i:08d}" for i in range(int((~keep).sum()))], dtype="str"))
    # last night's scores: tonight's plus noise for the accounts in both, new draws for the others
    previous = pd.Series(np.r_[scores.to_numpy()[keep] + rng.normal(0, 0.01, int(keep.sum())),
                               rng.beta(2, 9, int((~keep).sum()))], index=prev_ids)
    steps = {}
    t0, c0 = time.perf_counter(), time.process_time()
    s = time.perf_counter()
    drift = feature_drift(reference, current, elapsed_days=30, thresholds=T)
    steps["feature_drift"] = time.perf_counter() - s
    s = time.perf_counter()
    health = score_health(reference, scores, bands=world.bands(scores.to_numpy()), previous=previous)
    steps["score_health (bands, rank stability)"] = time.perf_counter() - s
    s = time.perf_counter()
    status, _ = model_status(drift, health, thresholds=T)
    steps["model_status"] = time.perf_counter() - s
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    rows = [("frame", f"{n:,} rows x {len(catalog)} features ("
             + ", ".join(f"{k} x{v}" for k, v in kinds.items()) + f"), {int(train.isna().to_numpy().sum()):,} "
             "missing cells"),
            *((f"  {k}", f"{v:.2f} s") for k, v in steps.items()),
            ("monitoring one run (the three above)", f"{wall:.1f} s wall, {cpu:.1f} s CPU (status {status})"),
            ("build_reference at training (1M rows, 20 bootstrap draws of the held-out metrics)",
             f"{ref_wall:.1f} s wall, {ref_cpu:.1f} s CPU"),
            ("peak RSS of the benchmark process", f"{peak:.1f} GiB")]
    return _table(("cost", "value"), rows)


def check_run_cost() -> str:
    """The whole ``pipelines.monitor.check_run`` of one churn run: n accounts x the world's 50 features (aged 30
    days), scores with bands, last night's scores (97% of the accounts) and the estimate's 200 simulated draws."""
    from models.tasks import TASKS
    from pipelines.monitor import check_run

    n = int(os.environ.get("CRMSCORE_BENCH_MONITOR_ROWS", 1_000_000))
    rng = np.random.default_rng(801)
    reference = world.reference(np.random.default_rng(802), 20_000)
    frame = world.features(rng, n, elapsed_days=30)
    ids = pd.Index([f"A{i:08d}" for i in range(n)], dtype="str")
    frame.insert(0, "entity_id", ids)
    p = world.churn_probability(frame, elapsed_days=30)
    scores = pd.DataFrame({"entity_id": ids, "score": p, "band": world.bands(p).to_numpy()})
    keep = rng.random(n) < 0.97
    previous = pd.Series(np.r_[p[keep] + rng.normal(0, 0.01, int(keep.sum())), rng.beta(2, 9, int((~keep).sum()))],
                         index=ids[keep].append(pd.Index([f"B{i:08d}" for i in range(int((~keep).sum()))],
                                                         dtype="str")))
    as_of = pd.Timestamp("2026-10-01", tz="UTC")
    t0, c0 = time.perf_counter(), time.process_time()
    checked = check_run(TASKS["churn"], reference, frame, scores, previous, as_of=as_of, thresholds=T, seed=0,
                        draws=200)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return _table(("check_run, one churn run", "value"), [
        ("frame", f"{n:,} accounts x {len(world.CATALOG)} features, 200 estimate draws, rank stability"),
        ("wall / CPU", f"{wall:.1f} s wall, {cpu:.1f} s CPU (status {checked.status}; load average {load})")])


def main() -> None:
    start = time.perf_counter()
    reference = world.reference(np.random.default_rng(0), 20_000)
    print(f"thresholds: {T.to_dict()}")
    parts = {"false_alarms": ("No false alarms", lambda: false_alarms(reference)),
             "power": ("Power", lambda: power(reference)),
             "curve": ("Detection curve", lambda: curve(os.environ.get("CRMSCORE_BENCH_MONITOR_SVG"))),
             "defects": ("Data-quality defects", lambda: defects(reference)),
             "estimates": ("Estimated against realized performance", estimates),
             "concept": ("Concept drift", concept),
             "cost": ("Cost", cost),
             "check_run": ("Cost of check_run", check_run_cost)}
    chosen = os.environ.get("CRMSCORE_BENCH_MONITOR_PARTS", ",".join(parts)).split(",")
    unknown = sorted(set(chosen) - set(parts))
    if unknown:
        raise SystemExit(f"CRMSCORE_BENCH_MONITOR_PARTS names {unknown}; expected a comma-separated subset of "
                         f"{list(parts)}.")
    for name in chosen:
        _timed(*parts[name])
    print(f"\nmonitoring benchmark: {time.perf_counter() - start:.0f} s in total")


if __name__ == "__main__":
    main()
