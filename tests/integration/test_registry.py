"""MLflow registry on a real SQLite tracking store under tmp_path: log -> register -> load, the champion gate,
signature refusal, and no artifact outside tmp_path.

The model here is a small real LightGBM model: a ``models.predictor.Predictor`` and a
``models.train.TrainingReport`` (params, best_iteration, cutoffs, metrics, baselines, slices,
evaluation_frame), trained on seeded synthetic rows.
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from models.calibration import SigmoidCalibrator
from models.card import render_model_card
from models.champion import promote_if_better
from models.encoding import CategoricalVocabulary, prepare_matrix
from models.errors import ArtifactFormatError, ModelSignatureMismatch, NoChampionError
from models.plots import calibration_curve_plot, lift_chart
from models.predictor import Predictor
from models.registry import CANDIDATE_TAG, Registry, registered_model_name
from models.train import TrainingReport
from tests.defaults import gate_config

REGIONS = ("north", "south", "west")
FEATURES = ("eng__logins_30d", "sup__tickets_90d", "buy__noise", "firm__region")


@dataclass(frozen=True)
class FeatureInfo:
    label: str
    family: str
    kind: str
    unit: str | None


CATALOG = {
    "eng__logins_30d": FeatureInfo("Logins in the last 30 days", "eng", "numeric", "count"),
    "sup__tickets_90d": FeatureInfo("Support tickets in the last 90 days", "sup", "numeric", "count"),
    "buy__noise": FeatureInfo("Noise", "buy", "numeric", None),
    "firm__region": FeatureInfo("Region", "firm", "categorical", None),
}


@dataclass(frozen=True)
class Spec:
    name: str = "churn"
    entity: str = "account"
    primary_metric: str = "roc_auc"
    horizon_key: str = "churn_days"
    bands: tuple[float, ...] = (0.2, 0.5)


def make_rows(n: int, seed: int, cutoffs: list[pd.Timestamp]) -> tuple[pd.DataFrame, np.ndarray]:
    """Seeded rows whose churn depends on logins (down), tickets (up) and region; buy__noise is pure noise."""
    rng = np.random.default_rng(seed)
    logins = rng.poisson(8, n).astype(float)
    tickets = rng.poisson(2, n).astype(float)
    region = rng.choice(REGIONS, n)
    logit = -0.35 * logins + 0.8 * tickets + np.where(region == "south", 0.8, 0.0) + 0.9
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame({
        "eng__logins_30d": logins,
        "sup__tickets_90d": tickets,
        "buy__noise": rng.normal(size=n),
        "firm__region": pd.Series(region, dtype="str"),
    })
    X["cutoff_ts"] = [cutoffs[i % len(cutoffs)] for i in range(n)]
    return X, y


class TinyTrainedModel:
    """A real (tiny) LightGBM binary model: a ``Predictor`` and the ``TrainingReport`` the registry logs."""

    def __init__(self, X: pd.DataFrame, y: np.ndarray, X_test: pd.DataFrame, y_test: np.ndarray, *,
                 rounds: int, num_leaves: int, shuffle_labels: bool = False, seed: int = 0,
                 train_cutoffs=(), valid_cutoffs=(), test_cutoffs=()) -> None:
        vocab = CategoricalVocabulary(categories={"firm__region": REGIONS})
        lgb_params = {"objective": "binary", "num_leaves": num_leaves, "learning_rate": 0.1, "seed": seed,
                      "verbose": -1, "num_threads": 1, "min_data_in_leaf": 5}
        if shuffle_labels:
            y = np.random.default_rng(seed).permutation(y)
        booster = lgb.train(lgb_params, lgb.Dataset(prepare_matrix(X, FEATURES, vocab), label=y),
                            num_boost_round=rounds)
        self.predictor = Predictor(task="churn", feature_names=FEATURES, catalog=dict(CATALOG), vocab=vocab,
                                   booster=booster, calibrator=SigmoidCalibrator(), total_anchor=None)
        p = self.predictor.predict(X_test)
        prior = np.full(len(y_test), float(np.mean(y)))
        recency = 1 / (1 + X_test["eng__logins_30d"].to_numpy())
        evaluation = pd.DataFrame({"y": y_test, "score": p, "firm__region": X_test["firm__region"].to_numpy()})
        rows = []
        for value, part in evaluation.groupby("firm__region"):
            rows.append({"slice_column": "firm__region", "slice_value": value, "n": len(part),
                         "metric": "roc_auc", "value": roc_auc_score(part["y"], part["score"])})
        self.report = TrainingReport(
            task="churn", feature_names=FEATURES, params=lgb_params, best_iteration=rounds,
            train_cutoffs=tuple(train_cutoffs), valid_cutoffs=tuple(valid_cutoffs), test_cutoffs=tuple(test_cutoffs),
            metrics=binary_metrics(y_test, p),
            baseline_metrics={"prior_rate": binary_metrics(y_test, prior),
                              "low_logins_rule": binary_metrics(y_test, recency)},
            slice_metrics=pd.DataFrame(rows), slice_collapses=pd.DataFrame(), evaluation_frame=evaluation,
            search_results=[], calibration_oof_ece={}, seed=seed)


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Held-out metrics computed with scikit-learn (an oracle independent of the code under test)."""
    order = np.argsort(-p, kind="stable")
    top = order[: max(1, len(p) // 10)]
    bins = np.minimum((p * 10).astype(int), 9)
    ece = sum(abs(y[bins == b].mean() - p[bins == b].mean()) * (bins == b).mean() for b in np.unique(bins))
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "log_loss": float(log_loss(y, np.clip(p, 1e-6, 1 - 1e-6))),
        "brier": float(brier_score_loss(y, p)),
        "ece": float(ece),
        "lift_top_decile": float(y[top].mean() / y.mean()),
        "capture_top_decile": float(y[top].sum() / y.sum()),
    }


TRAIN_CUTOFFS = [pd.Timestamp("2025-01-01", tz="UTC"), pd.Timestamp("2025-04-01", tz="UTC")]
TEST_CUTOFFS = [pd.Timestamp("2025-10-01", tz="UTC")]


@pytest.fixture(scope="module")
def data() -> dict[str, object]:
    X, y = make_rows(1500, seed=1, cutoffs=TRAIN_CUTOFFS)
    X_test, y_test = make_rows(800, seed=2, cutoffs=TEST_CUTOFFS)
    return {"X": X, "y": y, "X_test": X_test, "y_test": y_test}


def train(data: dict, *, n: int | None = None, rounds: int = 60, num_leaves: int = 7,
          shuffle_labels: bool = False, seed: int = 0) -> TinyTrainedModel:
    X, y = data["X"], data["y"]
    if n is not None:
        X, y = X.iloc[:n], y[:n]
    return TinyTrainedModel(X, y, data["X_test"], data["y_test"], rounds=rounds, num_leaves=num_leaves,
                            shuffle_labels=shuffle_labels, seed=seed, train_cutoffs=TRAIN_CUTOFFS,
                            valid_cutoffs=[pd.Timestamp("2025-07-01", tz="UTC")], test_cutoffs=TEST_CUTOFFS)


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty current folder inside tmp_path: anything MLflow writes 'by default' would land here."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield cwd
    leaked = sorted(p.name for p in cwd.iterdir())
    assert leaked == [], f"files written into the current folder: {leaked}"


@pytest.fixture(scope="module")
def empty_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tracking DB with MLflow's tables already created (the migrations take seconds), copied per test."""
    root = tmp_path_factory.mktemp("template")
    Registry(f"sqlite:///{root / 'mlflow.db'}", root / "artifacts", experiment="template")
    return root / "mlflow.db"


@pytest.fixture
def registry(tmp_path: Path, workdir: Path, empty_store: Path) -> Registry:
    (tmp_path / "store").mkdir()
    shutil.copyfile(empty_store, tmp_path / "store" / "mlflow.db")
    return Registry(f"sqlite:///{tmp_path / 'store' / 'mlflow.db'}", tmp_path / "store" / "mlartifacts",
                    experiment="crmscore-test")


def log(registry: Registry, model: TinyTrainedModel, tmp_path: Path, tag: str,
        example: pd.DataFrame | None = None, candidate_id: str | None = None, reference=None):
    plots_dir = tmp_path / f"plots-{tag}"
    ev = model.report.evaluation_frame
    plots = {"calibration": calibration_curve_plot(ev["y"], ev["score"], plots_dir / "calibration.png"),
             "lift": lift_chart(ev["y"], ev["score"], plots_dir / "lift.png")}
    card = render_model_card(model.report, Spec(), version=None,
                             data_window=(pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2025-12-31", tz="UTC")),
                             eligibility_text="Active customers with a subscription at the cutoff.",
                             extract_fingerprint={"accounts_rows": 1500}, top_drivers=[("Logins", 0.4)],
                             known_limits=["Synthetic data."],
                             max_total_error=gate_config("roc_auc").max_total_error)
    return registry.log_training_run(
        model.predictor, model.report, Spec(),
        extract_fingerprint={"accounts_rows": 1500, "sha256": "ab" * 32},
        contract_result={"success": True, "failed": []},
        cutoffs={"train": TRAIN_CUTOFFS, "test": TEST_CUTOFFS, "horizon_days": 90},
        feature_labels={k: v.label for k, v in CATALOG.items()},
        plots=plots, card_md=card, run_name=f"churn-{tag}",
        input_example=example, candidate_id=candidate_id, reference=reference,
    )


def test_log_register_load_round_trip_predicts_identically(registry, data, tmp_path, capsys):
    model = train(data)
    info = log(registry, model, tmp_path, "a", example=data["X_test"])
    with capsys.disabled():
        print(f"\nlog_training_run took {info.seconds:.2f} s")
    assert info.version == 1 and info.registered_model == registered_model_name("churn")
    assert info.seconds < 20

    registry.set_alias("churn", info.version, "challenger")
    loaded, version = registry.load_model("churn", alias="challenger")
    assert version == 1
    X_test = data["X_test"]
    np.testing.assert_array_equal(loaded.predict(X_test), model.predictor.predict(X_test))
    np.testing.assert_array_equal(loaded.contributions(X_test), model.predictor.contributions(X_test))

    # The pyfunc path (what `mlflow models serve` would use) gives the same scores from string categoricals.
    with registry._scoped() as mlflow:
        pyfunc = mlflow.pyfunc.load_model("models:/crmscore-churn@challenger")
        np.testing.assert_allclose(pyfunc.predict(X_test[list(FEATURES)]), model.predictor.predict(X_test))

    client = registry._client
    run = client.get_run(info.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.metrics["roc_auc"] == pytest.approx(model.report.metrics["roc_auc"])
    assert run.data.metrics["baseline.prior_rate.roc_auc"] == pytest.approx(0.5)
    assert "slice.firm__region.south.roc_auc" in run.data.metrics
    assert run.data.params["best_iteration"] == "60"
    assert run.data.params["train_first_cutoff"] == "2025-01-01T00:00:00+00:00"
    names = {a.path for a in client.list_artifacts(info.run_id)}
    assert {"task_spec.json", "features.json", "cutoffs.json", "extract_fingerprint.json",
            "contract_result.json", "model_card.md", "plots"} <= names
    assert {Path(a.path).name for a in client.list_artifacts(info.run_id, "plots")} == {"calibration.png", "lift.png"}
    features = json.loads(Path(client.download_artifacts(info.run_id, "features.json", str(tmp_path))).read_text())
    assert features[0] == {"name": "eng__logins_30d", "label": "Logins in the last 30 days", "family": "eng",
                           "kind": "numeric", "unit": "count"}
    spec = json.loads(Path(client.download_artifacts(info.run_id, "task_spec.json", str(tmp_path))).read_text())
    assert spec == {"name": "churn", "entity": "account", "primary_metric": "roc_auc",
                    "horizon_key": "churn_days", "bands": [0.2, 0.5]}
    # Artifacts live under the configured root, not in mlflow's default ./mlruns; the model is LightGBM's
    # text and JSON (plus the pyfunc's source), with no pickle that a refactor of project classes could break.
    stored = [p for p in (tmp_path / "store" / "mlartifacts" / "crmscore-test").rglob("*") if p.is_file()]
    predictor_files = sorted(p.name for p in stored if p.parent.name == "predictor")
    assert predictor_files == ["booster.txt", "predictor.json"]
    assert [p.name for p in stored if p.suffix == ".pkl"] == []


def test_gate_keeps_worse_model_as_challenger_and_promotes_better(registry, data, tmp_path):
    gate = gate_config("roc_auc", min_improvement=0.002, max_ece=0.15, min_primary=0.6)
    X_test, y_test = data["X_test"], data["y_test"]

    weak = train(data, n=150, rounds=4, num_leaves=3)
    v1 = log(registry, weak, tmp_path, "weak").version
    first = promote_if_better(registry, "churn", v1, weak.report.metrics, None, gate, slice_metrics=weak.report.slice_metrics)
    assert first.promote and registry.champion("churn").version == v1

    def champion_on(candidate: TinyTrainedModel) -> dict[str, float]:
        # Score the current champion on the candidate's held-out rows: same data, comparable numbers.
        champ_model, _ = registry.load_champion("churn", candidate.predictor.feature_names)
        return binary_metrics(y_test, champ_model.predict(X_test))

    shuffled = train(data, shuffle_labels=True, seed=3)
    v2 = log(registry, shuffled, tmp_path, "shuffled").version
    decision = promote_if_better(registry, "churn", v2, shuffled.report.metrics, champion_on(shuffled), gate)
    assert not decision.promote
    assert any("does not beat champion" in r for r in decision.reasons), decision.reasons
    assert registry.champion("churn").version == v1

    strong = train(data)
    assert strong.report.metrics["roc_auc"] > weak.report.metrics["roc_auc"] + 0.002  # the premise of this test
    v3 = log(registry, strong, tmp_path, "strong").version
    decision = promote_if_better(registry, "churn", v3, strong.report.metrics, champion_on(strong), gate,
                                 slice_metrics=strong.report.slice_metrics)
    assert decision.promote, decision.reasons

    champ = registry.champion("churn")
    assert champ.version == v3
    assert champ.metrics["roc_auc"] == pytest.approx(strong.report.metrics["roc_auc"])
    history = {v.version: v for v in registry.history("churn")}
    assert [v.version for v in registry.history("churn")] == [3, 2, 1]
    assert history[v3].aliases == ("champion",)
    assert history[v2].aliases == ("challenger",)
    assert history[v1].aliases == ()
    assert history[v2].tags["gate_decision"] == "challenger"
    assert "does not beat champion" in history[v2].tags["gate_reasons"]
    loaded, version = registry.load_champion("churn", list(FEATURES))
    assert version == v3
    np.testing.assert_array_equal(loaded.predict(X_test), strong.predictor.predict(X_test))


def test_load_champion_refuses_other_features_and_missing_champion(registry, data, tmp_path):
    with pytest.raises(NoChampionError, match=r"No model of task 'churn'.*crmscore train --task churn"):
        registry.load_champion("churn", list(FEATURES))
    assert registry.champion("churn") is None
    assert registry.history("churn") == []

    info = log(registry, train(data, rounds=10), tmp_path, "x")
    registry.set_alias("churn", info.version, "champion")
    expected = ["eng__logins_30d", "buy__noise", "firm__region", "eng__logins_7d"]  # sup__tickets_90d dropped
    with pytest.raises(ModelSignatureMismatch,
                       match=r"missing \['sup__tickets_90d'\].*unexpected \['eng__logins_7d'\].*retrain"):
        registry.load_champion("churn", expected)
    # Same features in another order are the same signature (the model selects columns by name).
    model, version = registry.load_champion("churn", list(reversed(FEATURES)))
    assert version == info.version and model.feature_names == FEATURES


def test_registry_leaves_mlflow_globals_untouched(registry, data, tmp_path):
    import mlflow
    from mlflow.tracking._tracking_service import utils as tracking_utils

    before = (tracking_utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI"))
    log(registry, train(data, rounds=5), tmp_path, "g")
    registry.set_alias("churn", 1, "champion")
    registry.load_model("churn")
    assert (tracking_utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")) == before
    assert mlflow.active_run() is None
    # A second Registry object on the same store sees the same experiment and champion.
    again = Registry(registry.tracking_uri, tmp_path / "store" / "mlartifacts", experiment="crmscore-test")
    assert again.experiment_id == registry.experiment_id
    assert again.champion("churn").version == 1


@pytest.mark.slow
def test_parallel_processes_log_into_a_store_created_beforehand(registry, tmp_path):
    """The store is created once (the ``registry`` fixture); then three processes log and register at once."""
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    script = (
        "import sys; from pathlib import Path; import test_registry as T;"
        "X, y = T.make_rows(600, 1, T.TRAIN_CUTOFFS); Xt, yt = T.make_rows(300, 2, T.TEST_CUTOFFS);"
        "data = dict(X=X, y=y, X_test=Xt, y_test=yt);"
        "reg = T.Registry(sys.argv[1], sys.argv[2], experiment='crmscore-test');"
        "info = T.log(reg, T.train(data, rounds=5, seed=int(sys.argv[3])), Path(sys.argv[4]), sys.argv[3]);"
        "print(info.version)"
    )
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{Path(__file__).parent}"}
    procs = [
        subprocess.Popen([sys.executable, "-c", script, registry.tracking_uri, str(registry.artifact_root), str(i),
                          str(tmp_path)], env=env, cwd=os.getcwd(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
        for i in range(3)
    ]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [err[-2000:] for _, err in outs]
    assert sorted(int(out.split()[-1]) for out, _ in outs) == [1, 2, 3]
    assert [v.version for v in registry.history("churn")] == [3, 2, 1]


def test_a_retry_after_the_version_was_created_registers_no_second_version(registry, data, tmp_path, monkeypatch):
    model = train(data, rounds=10)
    real_set_terminated = registry._client.set_terminated
    failures = []

    def fail_once_when_finishing(run_id, status=None, *args, **kwargs):
        # The version exists by now; a transient store error hits the last step of the call.
        if status == "FINISHED" and not failures:
            failures.append(run_id)
            raise ConnectionError("transient store error")
        return real_set_terminated(run_id, status, *args, **kwargs)

    monkeypatch.setattr(registry._client, "set_terminated", fail_once_when_finishing)
    with pytest.raises(ConnectionError):
        log(registry, model, tmp_path, "try1", candidate_id="cand-1")
    assert [v.version for v in registry.history("churn")] == [1]  # the failure came after version creation

    again = log(registry, model, tmp_path, "try2", candidate_id="cand-1")
    assert again.version == 1 and again.run_id == failures[0]
    history = registry.history("churn")
    assert [v.version for v in history] == [1] and history[0].tags[CANDIDATE_TAG] == "cand-1"
    assert registry._client.get_run(again.run_id).info.status == "FINISHED"
    # Another candidate is another version.
    assert log(registry, model, tmp_path, "other", candidate_id="cand-2").version == 2


def test_a_version_of_another_artifact_format_is_refused_in_one_line(registry, data, tmp_path, monkeypatch):
    import models.predictor

    info = log(registry, train(data, rounds=5), tmp_path, "f")
    registry.set_alias("churn", info.version, "champion")
    monkeypatch.setattr(models.predictor, "FORMAT_VERSION", models.predictor.FORMAT_VERSION + 1)
    written, now = models.predictor.FORMAT_VERSION - 1, models.predictor.FORMAT_VERSION
    with pytest.raises(ArtifactFormatError, match=rf"models:/crmscore-churn/1 has format version {written} .*reads "
                                                  rf"format version {now}\. Retrain with `crmscore train`") as exc:
        registry.load_champion("churn", list(FEATURES))
    assert "\n" not in str(exc.value)


def _reference(model: TinyTrainedModel, X_test: pd.DataFrame) -> dict:
    from features.catalog import FeatureInfo as Info
    from models.monitoring import build_reference

    ev = model.report.evaluation_frame
    catalog = {c: Info(i.label, i.family, i.kind, i.unit or "count") for c, i in CATALOG.items()}
    return build_reference(X_test, catalog, ev["score"], None, {"eng__logins_30d": 0.4}, held_out_scores=ev["score"],
                           held_out_labels=ev["y"], model_version="candidate", kind="binary", seed=0, n_boot=5,
                           level=0.95, as_of="2025-12-01T00:00:00+00:00").to_dict()


def test_the_monitoring_reference_is_logged_with_the_version_and_once_on_a_retry(registry, data, tmp_path,
                                                                                 monkeypatch):
    model = train(data, rounds=10)
    reference = _reference(model, data["X_test"])
    first = log(registry, model, tmp_path, "plain", candidate_id="c-0")
    assert registry.load_reference("churn", first.version) is None  # registered without one (an older version)

    real_log_artifact = registry._client.log_artifact
    calls = []

    def fail_on_the_reference(run_id, local_path, artifact_path=None):
        if artifact_path == "monitoring" and not calls:
            calls.append(run_id)
            raise ConnectionError("transient store error")
        return real_log_artifact(run_id, local_path, artifact_path)

    monkeypatch.setattr(registry._client, "log_artifact", fail_on_the_reference)
    with pytest.raises(ConnectionError):
        log(registry, model, tmp_path, "r1", candidate_id="c-1", reference=reference)
    again = log(registry, model, tmp_path, "r2", candidate_id="c-1", reference=reference)
    assert again.version == 2 and [v.version for v in registry.history("churn")] == [2, 1]
    loaded = registry.load_reference("churn", 2)
    assert loaded.model_version == "2" and loaded.as_of == "2025-12-01T00:00:00+00:00"
    assert loaded.to_dict() == {**reference, "model_version": "2"}
    listed = [a.path for a in registry._client.list_artifacts(again.run_id, "monitoring")]
    assert listed == ["monitoring/reference.json"]
    with pytest.raises(NoChampionError, match="version 9 of 'crmscore-churn' is not in"):
        registry.load_reference("churn", 9)
