"""Benchmark: candidate CLV recipes on real purchase logs, in-process, judged at the as-of date like the CLI harness.

Per log of :mod:`benchmarks.transaction_logs` and as-of date: the extract ``import-transactions`` would write
(``crm.transactions``), the training set of the production path (``models.dataset.build_training_data``, packaged
configuration with the harness's horizon), and the accounts scored at the as-of date
(``build_scoring_features``), judged against what they bought in the horizon (``bench_cdnow.realized``) beside
BG/NBD + Gamma-Gamma fitted on the orders before the as-of date. Candidates:

- ``anchor_validation``: ``models.train.train_task`` with the packaged settings but
  ``evaluation.total_anchor_bias: validation`` and the scoring-time total of ``Predictor.predict`` (BG/NBD's total
  times its bias on the validation cutoff: the default before 2026-12-02);
- ``anchor_none``: the same booster, the population total = BG/NBD's total (bias 1: the packaged default);
- ``anchor_seasonal``: the same booster, BG/NBD's total times its bias at the training cutoff nearest the as-of date
  minus 365 days (the same season), when one lies within half a cutoff step of it; else the validation cutoff's;
- ``fixed_scale``: the same booster, the scale fitted on the validation cutoff (no anchor);
- ``boost``: Tweedie with ``init_score`` = log of BG/NBD x Gamma-Gamma's expected margin over the horizon (the
  link space of the objective), the trees learning corrections with early stopping on the validation cutoff; at
  scoring raw = offset + trees; total scale on the validation cutoff (``boost``) or 1 (``boost_raw``: the offset's
  own level, trees corrected on the fit cutoffs) or BG/NBD's total (``boost_anchor``);
- ``power_<p>``: ``anchor_validation`` with another Tweedie variance power.

Run: ``PYTHONPATH=. python -m benchmarks.run clv_candidates``. Env: ``CRMSCORE_BENCH_LOGS`` (default
``cdnow,online_retail``), ``CRMSCORE_BENCH_CANDIDATES`` (default all), ``CRMSCORE_BENCH_CHURN`` (0 skips churn), ``CRMSCORE_BENCH_REAL_DATA``.

Churn (no completed order in the 90 days after the as-of date): ROC AUC of recency, of BG/NBD's expected purchases
and P(no purchase in 90 days), and of the churn model trained without and with the ``btyd__p_no_purchase_*``
columns.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from benchmarks.bench_cdnow import CHURN_DAYS, DATA, MAX_HORIZON_DAYS, btyd_reference, realized, training_overrides
from benchmarks.transaction_logs import LOGS, log_file, source_files

CANDIDATES = ("anchor_validation", "anchor_none", "anchor_seasonal", "fixed_scale", "boost", "boost_raw", "boost_anchor", "power_1.5")
EPS = 1e-3


def _extract(log, root: Path, work: Path) -> dict[str, pd.DataFrame]:
    from crm.transactions import read_transactions_file, transactions_to_extract

    raw = read_transactions_file(log_file(log, root, work))
    return transactions_to_extract(raw, customer_col=log.customer_col, date_col=log.date_col,
                                   amount_col=log.amount_col, order_col=log.order_col)


def _settings(horizon: int, extra: dict):
    from pipelines.config import load_settings

    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as fh:
        import yaml

        yaml.safe_dump({"horizons": {"clv": horizon, "churn": CHURN_DAYS}, **extra}, fh)
    try:
        return load_settings(fh.name, env={})
    finally:
        os.unlink(fh.name)


def _boost(spec, data, params, settings, seed, offset_col, X_score_frame):
    """Tweedie boosted from log(offset): search with early stopping on the validation cutoff, as train_task does."""
    from models.encoding import ID_COLUMNS, categorical_columns, fit_vocabulary, prepare_matrix
    from models.evaluate import task_metrics
    from models.train import _estimator, split_cutoffs

    frame = data.frame
    features = [c for c in frame.columns if c not in ID_COLUMNS]
    y = data.label.astype(float).to_numpy()
    fit_c, valid_c, test_c = split_cutoffs(frame["cutoff_ts"])
    fit_m, valid_m = frame["cutoff_ts"].isin(fit_c).to_numpy(), frame["cutoff_ts"].isin(valid_c).to_numpy()
    off = np.log(np.maximum(np.nan_to_num(frame[offset_col].to_numpy(dtype=float, na_value=np.nan)), EPS))
    cat_cols = categorical_columns(data.catalog, features)
    vocab = fit_vocabulary(frame.loc[fit_m], cat_cols, min_count=params.min_category_count,
                           max_categories=params.max_categories)
    X = prepare_matrix(frame, features, vocab)
    yc = np.clip(y, 0, None)
    best = None
    for cfg in params.search:
        est = _estimator(spec, params, cfg, seed)
        est.fit(X[fit_m], yc[fit_m], init_score=off[fit_m], eval_X=(X[valid_m],), eval_y=(yc[valid_m],),
                eval_init_score=[off[valid_m]], callbacks=[lgb.early_stopping(params.early_stopping_rounds,
                                                                               verbose=False)])
        b = est.booster_
        n = int(b.best_iteration or b.current_iteration())
        raw_v = off[valid_m] + b.predict(X[valid_m], raw_score=True, num_iteration=n)
        score = task_metrics("regression", y[valid_m], np.exp(raw_v))["normalized_gini"]
        if best is None or score > best[0]:
            best = (score, n, b, raw_v)
    score, n, b, raw_v = best
    scale = float(y[valid_m].sum() / np.exp(raw_v).sum())
    Xs = prepare_matrix(X_score_frame, features, vocab)
    off_s = np.log(np.maximum(np.nan_to_num(X_score_frame[offset_col].to_numpy(dtype=float, na_value=np.nan)), EPS))
    raw_s = off_s + b.predict(Xs, raw_score=True, num_iteration=n)
    return np.exp(raw_s), scale, n


def _churn(tables, ts, settings, seed, ref) -> list[dict]:
    """Churn AUC at the as-of date: the model without / with the BG/NBD P(no purchase) columns, and references."""
    from models.dataset import build_scoring_features, build_training_data
    from models.tasks import TASKS
    from models.train import TrainingData, train_task
    from pipelines import model_config

    from benchmarks.bench_cdnow import _auc

    spec = TASKS["churn"]
    opts = model_config.feature_options(settings)
    data = build_training_data(tables, spec, as_of=ts, horizon_days=CHURN_DAYS,
                               cutoffs=model_config.cutoff_options(settings), options=opts)
    fs = build_scoring_features(tables, spec, as_of=ts, options=opts)
    accounts = pd.Index(fs.frame["entity_id"].astype(str))
    _, n90 = realized(tables["orders"], accounts, ts, CHURN_DAYS)
    y = (n90 == 0).astype(float).to_numpy()
    r = ref.reindex(accounts)
    out = [{"candidate": "churn_recency", "auc": _auc(y, r["days_since_order"].to_numpy())},
           {"candidate": "churn_bgnbd_expected_90d", "auc": _auc(y, -r["expected_90d"].fillna(0).to_numpy())}]
    p0 = f"btyd__p_no_purchase_{CHURN_DAYS}d"
    if p0 in fs.frame.columns:
        out.append({"candidate": "churn_bgnbd_p_no_purchase", "auc": _auc(y, fs.frame[p0].fillna(1).to_numpy())})
    new = [c for c in data.frame.columns if c.startswith("btyd__p_no_purchase_")]
    for name, drop in (("churn_without_p_no_purchase", new), ("churn_production", [])):
        if name == "churn_without_p_no_purchase" and not new:
            continue
        d = TrainingData(frame=data.frame.drop(columns=drop), label=data.label, catalog=data.catalog,
                         horizon_days=data.horizon_days)
        m = train_task(spec, d, model_config.lightgbm_params(settings), seed=seed,
                       settings=model_config.evaluation_settings(settings))
        out.append({"candidate": name, "auc": _auc(y, m.predictor.predict(fs.frame.drop(columns=drop))),
                    "info": f"held-out {m.report.metrics['roc_auc']:.4f}, {m.report.best_iteration} trees"})
    return out


def bias_per_cutoff(data, column: str) -> str:
    """BG/NBD's bias (realized total / its forecast total) at each training cutoff, oldest first."""
    frame = data.frame.assign(_y=data.label.to_numpy(dtype=float))
    g = frame.groupby("cutoff_ts").agg(y=("_y", "sum"), f=(column, "sum"))
    return ", ".join(f"{c.date()} {r.y / r.f:.2f}" for c, r in g.iterrows())


def seasonal_bias(data, column: str, as_of: pd.Timestamp, step_days: int) -> tuple[float, pd.Timestamp]:
    """BG/NBD's bias at the training cutoff a year before ``as_of`` (within step/2), else at the validation cutoff."""
    frame = data.frame.assign(_y=data.label.to_numpy(dtype=float))
    g = frame.groupby("cutoff_ts").agg(y=("_y", "sum"), f=(column, "sum"))
    cuts = pd.DatetimeIndex(g.index)
    gap = np.abs((cuts - (as_of - pd.Timedelta(days=365))).days)
    i = int(np.argmin(gap)) if gap.min() <= step_days / 2 else len(cuts) - 2
    return float(g["y"].iloc[i] / g["f"].iloc[i]), cuts[i]


def run(log, as_of: str, root: Path, work: Path, candidates, churn: bool = True) -> list[dict]:
    from models.dataset import build_scoring_features, build_training_data
    from models.evaluate import regression_metrics
    from models.tasks import TASKS
    from models.train import train_task
    from pipelines import model_config

    tables = _extract(log, root, work)
    orders = tables["orders"]
    ts = pd.Timestamp(as_of, tz="UTC")
    end = orders["ordered_at"].max().floor("D") + pd.Timedelta(days=1)
    horizon = int(min(MAX_HORIZON_DAYS, (end - ts).days))
    extra = training_overrides(ts, horizon, orders["ordered_at"].min().floor("D"))
    settings = _settings(horizon, extra)
    spec = TASKS["clv"]
    params = model_config.lightgbm_params(settings)
    ev = model_config.evaluation_settings(settings)
    opts = model_config.feature_options(settings)
    t0 = time.process_time()
    data = build_training_data(tables, spec, as_of=ts, horizon_days=horizon,
                               cutoffs=model_config.cutoff_options(settings), options=opts)
    fs = build_scoring_features(tables, spec, as_of=ts, options=opts)
    accounts = pd.Index(fs.frame["entity_id"].astype(str))
    y, _ = realized(orders, accounts, ts, horizon)
    ref = btyd_reference(orders, accounts, ts, horizon)
    col = ev.total_anchor_column.format(horizon_days=horizon)
    rows = [{"candidate": "bgnbd_gg", **regression_metrics(y.to_numpy(), ref["clv"].fillna(0).to_numpy())}]
    print(f"   {log.name} {as_of} realized / BG/NBD total per training cutoff: {bias_per_cutoff(data, col)}; "
          f"at the as-of date {y.sum() / np.nansum(fs.frame[col].to_numpy(dtype=float, na_value=np.nan)):.3f}",
          flush=True)
    seed = settings.training.seed
    model = None
    for cand in candidates:
        c0 = time.process_time()
        if cand in ("anchor_validation", "anchor_none", "anchor_seasonal", "fixed_scale"):
            if model is None:
                model = train_task(spec, data, params, seed=seed, settings=replace(ev, total_anchor_bias="validation"))
            p = model.predictor
            raw = p.predict_raw(fs.frame)
            if cand == "anchor_validation":
                pred = p.predict(fs.frame)
            elif cand == "anchor_seasonal":
                bias, used = seasonal_bias(data, col, ts, settings.training.cutoff_step_days)
                anchor = np.nansum(fs.frame[col].to_numpy(dtype=float, na_value=np.nan))
                pred = np.exp(raw) * bias * anchor / np.exp(raw).sum()
            elif cand == "anchor_none":
                anchor = np.nansum(fs.frame[col].to_numpy(dtype=float, na_value=np.nan))
                pred = np.exp(raw) * anchor / np.exp(raw).sum()
            else:
                pred = p.calibrator.transform(raw)
            info = f"{model.report.best_iteration} trees"
            if cand == "anchor_seasonal":
                info += f", bias {bias:.3f} from the cutoff {used.date()}"
        elif cand.startswith("power_"):
            m = train_task(spec, data, replace(params, tweedie_variance_power=float(cand[6:])), seed=seed,
                           settings=replace(ev, total_anchor_bias="validation"))
            pred = m.predictor.predict(fs.frame)
            info = f"{m.report.best_iteration} trees"
        elif cand in ("boost", "boost_raw", "boost_anchor"):
            pred, scale, n = _boost(spec, data, params, ev, seed, col, fs.frame)
            if cand == "boost":
                pred = pred * scale
            elif cand == "boost_anchor":
                pred = pred * np.nansum(fs.frame[col].to_numpy(dtype=float, na_value=np.nan)) / pred.sum()
            info = f"{n} trees, validation scale {scale:.3f}"
        else:
            raise SystemExit(f"unknown candidate {cand!r}; known: {CANDIDATES}")
        rows.append({"candidate": cand, **regression_metrics(y.to_numpy(), pred), "info": info,
                     "cpu_s": time.process_time() - c0})
    if churn:
        rows += _churn(tables, ts, settings, seed, ref)
    for r in rows:
        r.update(log=log.name, as_of=as_of, horizon=horizon, n=len(accounts), realized_total=float(y.sum()))
    print(f"   (training set + features {time.process_time() - t0:.0f} CPU s)", flush=True)
    return rows


def main() -> None:
    root = Path(os.environ.get("CRMSCORE_BENCH_REAL_DATA", str(DATA)))
    names = [n.strip() for n in os.environ.get("CRMSCORE_BENCH_LOGS", ",".join(LOGS)).split(",") if n.strip()]
    churn = os.environ.get("CRMSCORE_BENCH_CHURN", "1") != "0"
    cands = [c.strip() for c in os.environ.get("CRMSCORE_BENCH_CANDIDATES", ",".join(CANDIDATES)).split(",")
             if c.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            log = LOGS[name]
            if not all(p.is_file() for p in source_files(log, root)):
                print(f"skipped {name}: {source_files(log, root)} not all found (set CRMSCORE_BENCH_REAL_DATA)")
                continue
            dates = os.environ.get(f"CRMSCORE_BENCH_{name.upper()}_DATES")
            for d in (dates.split(",") if dates else log.dates):
                for r in run(log, d.strip(), root, Path(tmp), cands, churn):
                    if "auc" in r:
                        print(f"{r['log']} {r['as_of']} {r['candidate']:28s} auc {r['auc']:.4f} {r.get('info', '')}")
                        continue
                    print(f"{r['log']} {r['as_of']} h{r['horizon']} {r['candidate']:14s} spearman {r['spearman']:.4f} "
                          f"gini {r['normalized_gini']:.4f} mae {r['mae']:.2f} total {r['total_ratio']:.3f} "
                          f"{r.get('info', '')}", flush=True)


if __name__ == "__main__":
    main()
