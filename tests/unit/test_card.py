"""Model card Markdown: every section present, numbers from the model's own record, readable tables."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score

from models.card import decile_table, render_model_card


@dataclass(frozen=True)
class Spec:
    name: str
    entity: str
    primary_metric: str
    bands: tuple[float, ...] = (0.2, 0.5)


@dataclass
class FittedRecord:
    """The TrainingReport attributes the card reads, filled from a real fitted model on seeded rows."""

    task: str
    feature_names: tuple[str, ...]
    params: dict
    best_iteration: int
    train_cutoffs: list
    valid_cutoffs: list
    test_cutoffs: list
    metrics: dict
    baseline_metrics: dict
    slice_metrics: pd.DataFrame
    evaluation_frame: pd.DataFrame
    catalog: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def churn_record() -> FittedRecord:
    rng = np.random.default_rng(11)
    n = 600
    x = rng.normal(size=(n, 2))
    region = rng.choice(["north", "south|east"], n)  # a pipe in a value must not break the table
    y = (rng.random(n) < 1 / (1 + np.exp(-1.5 * x[:, 0]))).astype(int)
    train, test = slice(0, 400), slice(400, n)
    p = LogisticRegression().fit(x[train], y[train]).predict_proba(x[test])[:, 1]
    yt = y[test]
    ev = pd.DataFrame({"y": yt, "score": p, "firm__region": region[test]})
    slices = pd.DataFrame([
        {"slice_column": "firm__region", "slice_value": v, "n": len(g), "metric": m,
         "value": roc_auc_score(g.y, g.score) if m == "roc_auc" else brier_score_loss(g.y, g.score)}
        for v, g in ev.groupby("firm__region") for m in ("roc_auc", "brier")
    ])
    return FittedRecord(
        task="churn", feature_names=("eng__a", "eng__b"), params={"num_leaves": 7}, best_iteration=42,
        train_cutoffs=[pd.Timestamp("2025-03-01", tz="UTC"), pd.Timestamp("2025-01-01", tz="UTC")],
        valid_cutoffs=[pd.Timestamp("2025-06-01", tz="UTC")], test_cutoffs=[pd.Timestamp("2025-09-01", tz="UTC")],
        metrics={"roc_auc": roc_auc_score(yt, p), "brier": brier_score_loss(yt, p), "ece": 0.031},
        baseline_metrics={"prior_rate": {"roc_auc": 0.5, "brier": float(np.var(yt))}},
        slice_metrics=slices, evaluation_frame=ev,
    )


def render(record, spec, **kw):
    args = dict(
        version=3,
        data_window=(pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2025-12-31", tz="UTC")),
        eligibility_text="Active customers with a paid subscription at the cutoff.",
        extract_fingerprint={"accounts_rows": 600, "sha256": "f" * 100},
        top_drivers=[("Logins in the last 30 days", 0.41), ("Support tickets in the last 90 days", 0.12)],
        known_limits=["Trained on synthetic data.", "No seasonality beyond one year."],
        max_total_error=0.10,
    )
    args.update(kw)
    return render_model_card(record, spec, **args)


def test_binary_card_has_every_section_with_the_models_numbers(churn_record):
    md = render(churn_record, Spec("churn", "account", "roc_auc"))
    assert md.startswith("# Model card: crmscore-churn v3\n")
    headings = [line for line in md.splitlines() if line.startswith("## ")]
    assert headings == ["## Task", "## Data window and cutoffs", "## Eligibility",
                        "## Metrics vs baselines (held-out test cutoffs)", "## Calibration", "## Slices",
                        "## Top global drivers", "## Extract fingerprint", "## Known limits"]
    auc = churn_record.metrics["roc_auc"]
    assert f"| AUC **primary** | {auc:.3f} | 0.500 |" in md
    assert "| Brier score (lower is better) |" in md
    assert "| train | 2 | 2025-01-01 | 2025-03-01 |" in md  # sorted, first and last
    assert "| test (held out) | 1 | 2025-09-01 | 2025-09-01 |" in md
    assert "Expected calibration error 0.031" in md
    assert "| firm__region | south\\|east |" in md  # pipe escaped
    assert "| 1 | Logins in the last 30 days | 0.410 |" in md
    assert "- No seasonality beyond one year." in md
    assert "f" * 77 + "..." in md and "f" * 78 not in md  # long fingerprint values shortened
    assert "boosting rounds (best iteration): 42" in md
    # Slice metrics are pivoted: one row per slice, one column per metric.
    slice_header = next(line for line in md.splitlines() if line.startswith("| slice |"))
    assert slice_header == "| slice | value | n | AUC | Brier score |"


def test_clv_card_describes_realized_value_not_probabilities(churn_record):
    rng = np.random.default_rng(5)
    pred = rng.gamma(2, 40, 300)
    record = FittedRecord(
        task="clv", feature_names=("buy__x",), params={}, best_iteration=10,
        train_cutoffs=[pd.Timestamp("2025-01-01", tz="UTC")], valid_cutoffs=[], test_cutoffs=[],
        metrics={"spearman": 0.41, "mae": 31.5, "total_ratio": 0.97},
        baseline_metrics={}, slice_metrics=pd.DataFrame(columns=["slice_column", "slice_value", "n", "metric", "value"]),
        evaluation_frame=pd.DataFrame({"y": pred * rng.lognormal(0, 0.3, 300), "score": pred}),
    )
    md = render(record, Spec("clv", "account", "spearman"), version=None, known_limits=[])
    assert md.startswith("# Model card: crmscore-clv (unregistered)\n")
    assert "predicted total / realized total = 0.970" in md
    assert "must be within 10% of the realized total (`gate.max_total_error`): passed." in md
    off = render(dataclasses.replace(record, metrics={**record.metrics, "total_ratio": 1.4}),
                 Spec("clv", "account", "spearman"), version=None, known_limits=[])
    assert "failed, so this model cannot become champion" in off
    assert "Gate on the total" not in render(record, Spec("clv", "account", "spearman"), version=None, known_limits=[],
                                             max_total_error=None)
    assert "ECE" not in md
    assert "| validation | 0 | n/a | n/a |" in md
    assert "No slice metrics were computed." in md
    assert "- None recorded." in md


def test_decile_table_by_hand():
    # 10 rows, predictions descending 1.0..0.1: decile 1 is the single highest prediction.
    p = np.linspace(1.0, 0.1, 10)
    y = np.array([1, 1, 0, 1, 0, 0, 0, 0, 0, 1])
    t = decile_table(y, p)
    assert t["decile"].tolist() == list(range(1, 11))
    assert t["n"].tolist() == [1] * 10
    assert t["mean_true"].tolist() == y.tolist()
    assert t["lift"].iloc[0] == pytest.approx(1 / 0.4)
    assert t["capture"].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="differ in length: 2 vs 1"):
        decile_table([1, 0], [0.3])


def _metric_rows(md: str) -> list[str]:
    """The first cell of each row of the card's metrics table."""
    lines = md.split("## Metrics vs baselines (held-out test cutoffs)\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    return [line.split(" | ")[0].removeprefix("| ") for line in lines[2:]]


def test_card_labels_every_metric_from_the_vocabulary_in_its_order(churn_record):
    from dataclasses import replace

    from models.metrics import METRICS, metric_spec

    names = [*METRICS, "valid_roc_auc"]
    record = replace(churn_record, metrics={m: 0.5 for m in reversed(names)})
    md = render(record, Spec("churn", "account", "roc_auc"))
    expected = []
    for m in names:
        spec = metric_spec(m)
        expected.append(spec.label + (" (lower is better)" if spec.higher_is_better is False else "")
                        + (" **primary**" if m == "roc_auc" else ""))
    assert _metric_rows(md) == expected
    assert "| AUC (validation cutoff) | 0.500 |" in md
