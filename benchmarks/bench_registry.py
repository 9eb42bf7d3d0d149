"""Registry figures: fresh-store creation, one log_training_run (log + register), loading the champion.

Run: ``python -m benchmarks.run registry`` (or ``python -m benchmarks.bench_registry [rows] [features]``).
The model is a real LightGBM binary model on seeded random rows (a Predictor and a TrainingReport), as large
as the production budget allows (``max_trees`` trees of ``max_leaves`` leaves, ``max_depth``,
configs/default.yaml); the
store is a SQLite file and an artifact folder in a temporary directory (removed afterwards).
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class _Info:
    label: str
    family: str
    kind: str
    unit: str | None


@dataclass(frozen=True)
class _Spec:
    name: str = "churn"
    entity: str = "account"
    primary_metric: str = "roc_auc"


class _BenchModel:
    """A LightGBM model as the registry receives it: a ``Predictor`` and a ``TrainingReport``."""

    def __init__(self, n_rows: int, n_features: int) -> None:
        import lightgbm as lgb
        from sklearn.metrics import roc_auc_score

        from models.calibration import SigmoidCalibrator
        from models.encoding import CategoricalVocabulary
        from models.predictor import Predictor
        from models.train import TrainingReport

        from benchmarks.budget import production

        budget, _ = production()
        rounds = budget.max_trees
        rng = np.random.default_rng(0)
        X = pd.DataFrame(rng.normal(size=(n_rows, n_features)), columns=[f"eng__f{i}" for i in range(n_features)])
        y = (rng.random(n_rows) < 1 / (1 + np.exp(-X.iloc[:, 0] + 0.5 * X.iloc[:, 1]))).astype(int).to_numpy()
        params = {"objective": "binary", "num_leaves": budget.max_leaves, "max_depth": budget.max_depth,
                  "verbose": -1, "seed": 0}
        self.predictor = Predictor(
            task="churn", feature_names=tuple(X.columns),
            catalog={c: _Info(f"Feature {c}", "eng", "numeric", None) for c in X.columns},
            vocab=CategoricalVocabulary(), booster=lgb.train(params, lgb.Dataset(X, label=y), num_boost_round=rounds),
            calibrator=SigmoidCalibrator())
        cut = pd.Timestamp("2025-01-01", tz="UTC")
        p = self.predictor.predict(X)
        auc = float(roc_auc_score(y, p))
        self.report = TrainingReport(
            task="churn", feature_names=tuple(X.columns), params=params, best_iteration=rounds,
            train_cutoffs=(cut,), valid_cutoffs=(cut,), test_cutoffs=(cut,), metrics={"roc_auc": auc, "ece": 0.01},
            baseline_metrics={"prior_rate": {"roc_auc": 0.5}},
            slice_metrics=pd.DataFrame([{"slice_column": "all", "slice_value": "all", "n": n_rows,
                                         "metric": "roc_auc", "value": auc}]),
            slice_collapses=pd.DataFrame(), evaluation_frame=pd.DataFrame({"y_true": y, "y_pred": p}),
            search_results=[], calibration_oof_ece={}, seed=0)
        self.X = X


def main(n_rows: int = 20_000, n_features: int = 40, repeats: int = 3) -> None:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from models.card import render_model_card
    from models.plots import calibration_curve_plot, lift_chart
    from models.registry import Registry

    model = _BenchModel(n_rows, n_features)
    print(f"model: {n_rows} rows x {n_features} features, {model.report.best_iteration} trees")
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as tmp:
        root = Path(tmp)
        start = time.perf_counter()
        registry = Registry(f"sqlite:///{root / 'mlflow.db'}", root / "mlartifacts", experiment="bench")
        print(f"Registry() on a fresh SQLite store (creates tables + experiment): {time.perf_counter() - start:.2f} s")
        ev = model.report.evaluation_frame
        plots = {"calibration": calibration_curve_plot(ev.y_true, ev.y_pred, root / "p" / "cal.png"),
                 "lift": lift_chart(ev.y_true, ev.y_pred, root / "p" / "lift.png")}
        card = render_model_card(model.report, _Spec(), version=None, data_window=(None, None), eligibility_text="all",
                                 extract_fingerprint={}, top_drivers=[], known_limits=[])
        for i in range(repeats):
            info = registry.log_training_run(
                model.predictor, model.report, _Spec(), extract_fingerprint={"rows": n_rows}, contract_result={"success": True},
                cutoffs={}, feature_labels={}, plots=plots, card_md=card, run_name=f"bench-{i}",
                input_example=model.X.head(5))
            print(f"log_training_run #{i + 1} (version {info.version}): {info.seconds:.2f} s")
        registry.set_alias("churn", info.version, "champion")
        for i in range(repeats):
            start = time.perf_counter()
            registry.load_champion("churn", model.predictor.feature_names)
            print(f"load_champion #{i + 1}: {time.perf_counter() - start:.2f} s")
        start = time.perf_counter()
        registry.history("churn")
        print(f"history ({repeats} versions): {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
