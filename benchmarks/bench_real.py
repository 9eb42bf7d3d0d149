"""Benchmark: the project's own modelling code on real public datasets (``../shared/datasets`` from the repository
root, see its README).

Not part of ``make test``. Two kinds of evidence:

- **Cross-sectional classification** (IBM Telco churn, UCI bank marketing without ``duration``, X Education
  leads without the sales-side columns): these tables have no timestamps, so there is no out-of-time split;
  :func:`models.train.cross_validate` runs ``train_task``'s recipe (fixed vocabulary, the configured LightGBM
  budget and search with early stopping, calibration, logistic baseline) in 5 stratified folds.
- **CLV on CDNOW** through the import path (``crm.transactions``) and the project's training path
  (``models.dataset.build_training_data`` + ``models.train.train_task``): LightGBM Tweedie against the
  BG/NBD + Gamma-Gamma baseline on the held-out (last) cutoff.

The LightGBM budget/search and the evaluation settings are those of ``configs/default.yaml`` (``model`` and
``evaluation`` blocks), as ``crmscore train`` uses them.

Run: ``PYTHONPATH=. python -m benchmarks.run real`` (all datasets). Select with
``CRMSCORE_BENCH_REAL=telco,bank,leads,cdnow`` (comma-separated); ``CRMSCORE_BENCH_REAL_FOLDS`` (default 5),
``CRMSCORE_BENCH_REAL_SEED`` (default 0), ``CRMSCORE_BENCH_REAL_DATA`` (default ``../shared/datasets`` from the
repository root).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"  # ../shared/datasets from the repo root
DATASETS = ("telco", "bank", "leads", "cdnow")

# Reference figures from ../shared/datasets/README.md (5-fold stratified CV, seed 0, sklearn 1.9.1;
# "computed here, not published" unless said otherwise).
REFERENCE = {
    "telco": "LogReg 0.8453 ± 0.0139, HistGB 0.8341 ± 0.0105 (informal public ~0.84)",
    "bank": "LogReg 0.7914 ± 0.0056, HistGB 0.8037 ± 0.0071 (published Moro et al. 2014: 0.80)",
    "leads": "LogReg 0.8645 ± 0.0063, HistGB 0.8727 ± 0.0041",
}


@dataclass(frozen=True)
class Info:
    """A FeatureInfo-shaped catalog entry (label, family, kind, unit)."""

    label: str
    family: str
    kind: str
    unit: str


def _catalog(frame: pd.DataFrame, family: str) -> dict[str, Info]:
    """Numeric dtype -> numeric; anything else (pandas 3 ``str``) -> categorical."""
    out = {}
    for col in frame.columns:
        numeric = pd.api.types.is_numeric_dtype(frame[col]) and not pd.api.types.is_bool_dtype(frame[col])
        out[col] = Info(label=col, family=family, kind="numeric" if numeric else "categorical",
                        unit="number" if numeric else "category")
    return out


def load_telco(root: Path = DATA) -> tuple[pd.DataFrame, pd.Series]:
    """IBM Telco: 7,043 customers, 19 features; ``TotalCharges`` coerced (11 blanks -> NaN), ``customerID`` dropped."""
    df = pd.read_csv(root / "telco_churn" / "Telco-Customer-Churn.csv")
    df["TotalCharges"] = pd.to_numeric(df["TotalCharges"], errors="coerce")
    y = (df.pop("Churn") == "Yes").astype(int).rename("churn")
    return df.drop(columns=["customerID"]), y


def load_bank(root: Path = DATA) -> tuple[pd.DataFrame, pd.Series]:
    """UCI bank-additional-full: 41,188 calls, 19 features; ``duration`` dropped (known only after the call)."""
    df = pd.read_csv(root / "bank_marketing" / "bank-additional-full.csv", sep=";")
    y = (df.pop("y") == "yes").astype(int).rename("converted")
    return df.drop(columns=["duration"]), y


LEADS_DROP = ("Prospect ID", "Lead Number", "Tags", "Lead Quality", "Lead Profile", "Asymmetrique Activity Index",
              "Asymmetrique Profile Index", "Asymmetrique Activity Score", "Asymmetrique Profile Score",
              "Last Activity", "Last Notable Activity")


def load_leads(root: Path = DATA) -> tuple[pd.DataFrame, pd.Series]:
    """X Education: 9,240 leads, 25 features; ids and sales-side/post-contact columns dropped, ``Select`` -> NaN."""
    df = pd.read_csv(root / "lead_scoring_xeducation" / "Leads.csv")
    y = df.pop("Converted").astype(int).rename("converted")
    df = df.drop(columns=list(LEADS_DROP))
    text = [c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])]
    df[text] = df[text].where(df[text] != "Select")
    return df, y


LOADERS = {"telco": (load_telco, "churn", "subscription"), "bank": (load_bank, "lead_sql", "funnel"),
           "leads": (load_leads, "lead_mql", "funnel")}


def cross_sectional(name: str, *, folds: int = 5, seed: int = 0, root: Path = DATA) -> pd.DataFrame:
    """Per-fold metrics of LightGBM and the logistic baseline on one dataset (see :func:`models.train.cross_validate`)."""
    from models.tasks import TASKS
    from models.train import cross_validate

    from benchmarks.budget import production

    loader, task, family = LOADERS[name]
    frame, y = loader(root)
    params, settings = production()
    res = cross_validate(TASKS[task], frame, y, _catalog(frame, family), params, folds=folds, seed=seed,
                         settings=settings)
    return res.assign(dataset=name, n_rows=len(frame), n_features=frame.shape[1], base_rate=float(y.mean()))


def cdnow_training_data(*, as_of: str = "1998-07-01", horizon_days: int = 182, step_days: int = 30,
                        count: int = 12, lookback_days: int = 365, root: Path = DATA):
    """CDNOW master log -> extract (revenue CLV: margin_rate 1.0) -> the clv task's multi-cutoff TrainingData."""
    from crm.transactions import read_transactions_file, transactions_to_extract
    from dataclasses import replace

    from models.dataset import CutoffOptions, build_training_data
    from models.tasks import TASKS
    from pipelines.config import load_settings
    from pipelines.model_config import feature_options

    raw = read_transactions_file(root / "cdnow" / "CDNOW_master.txt")
    tables = transactions_to_extract(raw, customer_col="customer_id", date_col="date", amount_col="dollar_value",
                                     margin_rate=1.0)
    data = build_training_data(tables, TASKS["clv"], as_of=pd.Timestamp(as_of, tz="UTC"), horizon_days=horizon_days,
                               cutoffs=CutoffOptions(count=count, step_days=step_days, min_history_days=90,
                                                     lead_count=count),
                               options=replace(feature_options(load_settings(env={})),
                                               churn_lookback_days=lookback_days))
    return tables, data


def cdnow_clv(*, seed: int = 0, root: Path = DATA, **kwargs) -> dict[str, object]:
    """Train the clv task on CDNOW; held-out metrics of LightGBM and its baselines (BG/NBD + Gamma-Gamma included).

    Trained twice on the same training set: with the configured settings (``purge_label_overlap: false``: the
    fit/validation cutoffs' 182-day label windows overlap the held-out cutoff's window, and the same customers
    are in every cutoff) and with ``purge_label_overlap=True`` (only cutoffs whose label window closes by the
    held-out cutoff are used: no training label was observed after it, as for the BTYD baseline).
    """
    from dataclasses import replace

    from benchmarks.budget import production
    from models.tasks import TASKS
    from models.train import train_task

    t0 = time.perf_counter()
    tables, data = cdnow_training_data(root=root, **kwargs)
    t_build = time.perf_counter() - t0
    params, settings = production()
    cut = data.frame["cutoff_ts"]
    out: dict[str, object] = {
        "orders": len(tables["orders"]), "accounts": len(tables["accounts"]),
        "rows": len(data.frame), "features": len(data.catalog),
        "cutoffs": sorted(pd.Series(cut.unique()).dt.strftime("%Y-%m-%d")),
        "rows_per_cutoff": cut.value_counts().sort_index().tolist(), "build_s": t_build, "runs": {},
    }
    for label, purge in (("config (no purge)", False), ("purge_label_overlap", True)):
        t0 = time.perf_counter()
        model = train_task(TASKS["clv"], data, params, seed=seed, settings=replace(settings, purge_label_overlap=purge))
        out["runs"][label] = {
            "comparison": model.report.comparison(), "train_s": time.perf_counter() - t0,
            "fit_cutoffs": [str(c.date()) for c in model.report.train_cutoffs],
            "valid_cutoff": str(model.report.valid_cutoffs[0].date()), "test_cutoff": str(model.report.test_cutoffs[0].date()),
            "best_iteration": model.report.best_iteration, "max_trees": model.report.params["max_trees"],
        }
    return out


def _summary(res: pd.DataFrame, metrics: tuple[str, ...] = ("roc_auc", "pr_auc", "ece", "lift_top_decile")) -> pd.DataFrame:
    g = res.groupby("model", sort=False)
    rows = {}
    for m in metrics:
        rows[m] = g[m].mean().map("{:.4f}".format) + " ± " + g[m].std(ddof=1).map("{:.4f}".format)
    return pd.DataFrame(rows)


def main() -> None:
    chosen = [s.strip() for s in os.environ.get("CRMSCORE_BENCH_REAL", ",".join(DATASETS)).split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(DATASETS))
    if unknown:
        raise SystemExit(f"CRMSCORE_BENCH_REAL: unknown dataset(s) {unknown}; known: {list(DATASETS)}")
    folds = int(os.environ.get("CRMSCORE_BENCH_REAL_FOLDS", "5"))
    seed = int(os.environ.get("CRMSCORE_BENCH_REAL_SEED", "0"))
    root = Path(os.environ.get("CRMSCORE_BENCH_REAL_DATA", str(DATA)))
    if not root.is_dir():
        # `make bench` runs every benchmark; on a machine without the datasets this one says so and steps aside.
        print(f"skipped: dataset folder {root} not found (set CRMSCORE_BENCH_REAL_DATA)")
        return
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        for name in chosen:
            t0 = time.perf_counter()
            if name in LOADERS:
                res = cross_sectional(name, folds=folds, seed=seed, root=root)
                r0 = res.iloc[0]
                print(f"-- {name}: {r0['n_rows']} rows, {r0['n_features']} features, base rate {r0['base_rate']:.4f}, "
                      f"{folds}-fold stratified CV (seed {seed}), task {LOADERS[name][1]!r} recipe")
                print(_summary(res).to_string())
                model = res[res["model"] == "lightgbm"]
                print(f"   per-fold LightGBM AUC: {', '.join(f'{v:.4f}' for v in model['roc_auc'])}; best_iteration "
                      f"{model['best_iteration'].tolist()}; leaves {model['num_leaves'].tolist()}; lr "
                      f"{model['learning_rate'].tolist()}; calibration {model['calibration'].tolist()}")
                print(f"   reference (README): {REFERENCE[name]}")
            else:
                out = cdnow_clv(seed=seed, root=root)
                print(f"-- cdnow: {out['orders']} orders (customer-days), {out['accounts']} accounts; "
                      f"{out['rows']} rows x {out['features']} features over cutoffs {out['cutoffs']}")
                print(f"   rows per cutoff {out['rows_per_cutoff']}; build {out['build_s']:.1f} s")
                cols = ["n", "mean_actual", "spearman", "normalized_gini", "mae", "total_ratio", "capture_top_decile"]
                for label, run in out["runs"].items():
                    print(f"   [{label}] fit cutoffs {run['fit_cutoffs'][0]}..{run['fit_cutoffs'][-1]} "
                          f"({len(run['fit_cutoffs'])}), valid {run['valid_cutoff']}, held-out {run['test_cutoff']} "
                          f"(horizon 182 d); best_iteration {run['best_iteration']} of {run['max_trees']}; "
                          f"train {run['train_s']:.1f} s")
                    comp = run["comparison"]
                    print(comp[[c for c in cols if c in comp.columns]].to_string(float_format=lambda v: f"{v:.4f}"))
            print(f"   ({name}: {time.perf_counter() - t0:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
