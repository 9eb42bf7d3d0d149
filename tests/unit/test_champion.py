"""The champion gate as pure rules: margins, direction, minimum quality, calibration, collapsed slices."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from models.champion import decide, find_collapsed_slices, promote_if_better
from models.metrics import METRICS
from tests.defaults import gate_config

GATE = dict(primary_metric="roc_auc", min_improvement=0.002, max_ece=0.05, min_primary=0.6, slice_collapse=False,
            min_ece_n=0, max_total_error=0.10)


def test_first_model_is_promoted_when_it_passes_quality():
    d = decide({"roc_auc": 0.71, "ece": 0.02}, None, **GATE)
    assert d.promote and d.alias == "champion"
    assert d.reasons[0] == "no champion yet: AUC 0.710 is the first model"


def test_candidate_within_margin_of_champion_stays_challenger():
    d = decide({"roc_auc": 0.781, "ece": 0.02}, {"roc_auc": 0.790}, **GATE)
    assert not d.promote and d.alias == "challenger"
    assert "AUC 0.781 does not beat champion 0.790 + margin 0.002" in d.reasons


@pytest.mark.parametrize(
    ("candidate", "champion", "promote"),
    [
        (0.7920, 0.790, False),  # exactly champion + margin: not strictly better
        (0.7921, 0.790, True),
        (0.7910, 0.790, False),  # better, but by less than the margin
    ],
)
def test_margin_boundary(candidate, champion, promote):
    assert decide({"roc_auc": candidate}, {"roc_auc": champion}, **GATE).promote is promote


def test_lower_is_better_metric_needs_a_drop_by_the_margin():
    gate = dict(GATE, primary_metric="mae", min_improvement=1.0, min_primary=None)
    assert decide({"mae": 48.9}, {"mae": 50.0}, **gate).promote
    d = decide({"mae": 49.5}, {"mae": 50.0}, **gate)
    assert not d.promote
    assert "MAE 49.500 does not beat champion 50.000 - margin 1" in d.reasons


def test_better_than_champion_but_badly_calibrated_is_not_promoted():
    d = decide({"roc_auc": 0.85, "ece": 0.09}, {"roc_auc": 0.80}, **GATE)
    assert not d.promote
    assert "calibration ECE 0.090 exceeds the maximum 0.05" in d.reasons
    assert any(r.startswith("AUC 0.850 beats champion 0.800") for r in d.reasons)


def test_ece_check_applies_only_to_tasks_reporting_ece():
    gate = dict(GATE, primary_metric="spearman", min_primary=0.1)
    d = decide({"spearman": 0.4, "mae": 12.0}, None, **gate)
    assert d.promote and not any("ECE" in r for r in d.reasons)


CLV_GATE = dict(GATE, primary_metric="normalized_gini", min_primary=None)


@pytest.mark.parametrize(("ratio", "promote"), [(1.0, True), (0.91, True), (1.0999, True), (1.101, False),
                                                (0.89, False), (1.4, False), (math.nan, False)])
def test_clv_total_must_be_within_the_tolerance_of_the_realized_total(ratio, promote):
    d = decide({"normalized_gini": 0.6, "total_ratio": ratio}, None, **CLV_GATE)
    assert d.promote is promote
    total = [r for r in d.reasons if "realized total" in r]
    assert len(total) == 1
    assert ("outside the accepted 10%" in total[0]) is not promote


def test_total_check_names_the_direction_and_beats_a_better_ranking():
    # A better ranking than the champion does not make up for a total 40% too high: customer equity would be wrong.
    d = decide({"normalized_gini": 0.7, "total_ratio": 1.4}, {"normalized_gini": 0.5}, **CLV_GATE)
    assert not d.promote
    assert "predicted total is 40.0% above the realized total on the held-out data, outside the accepted 10%" in d.reasons
    assert "7.0% below" in decide({"normalized_gini": 0.7, "total_ratio": 0.93}, None, **CLV_GATE).reasons[-1]


def test_a_total_too_noisy_to_judge_is_reported_not_judged():
    # A 1.2 ratio fails when the realized total is known to 3% (two standard errors within the 10% tolerance) ...
    judged = decide({"normalized_gini": 0.6, "total_ratio": 1.2, "total_rel_se": 0.03, "n": 20000}, None, **CLV_GATE)
    assert not judged.promote and "outside the accepted 10%" in judged.reasons[-1]
    # ... and is reported, not judged, when two standard errors (16%) exceed the tolerance: noise at that size.
    noisy = decide({"normalized_gini": 0.6, "total_ratio": 1.2, "total_rel_se": 0.08, "n": 500}, None, **CLV_GATE)
    assert noisy.promote
    assert "total not judged: the realized total of the 500 held-out rows has a relative standard error of 8.0%" \
        in noisy.reasons[-1]


def test_total_rel_se_is_the_standard_error_of_the_realized_sum():
    from models.evaluate import regression_metrics

    rng = np.random.default_rng(3)
    y = rng.gamma(0.5, 200.0, size=400)
    m = regression_metrics(y, y * 1.1)
    assert m["total_rel_se"] == pytest.approx(np.std(y, ddof=1) * np.sqrt(len(y)) / y.sum())
    # by simulation: the spread of the realized totals of independent draws of the same size
    totals = rng.gamma(0.5, 200.0, size=(4000, 400)).sum(axis=1)
    assert m["total_rel_se"] == pytest.approx(totals.std() / totals.mean(), rel=0.15)


def test_total_check_is_off_when_disabled_and_for_tasks_without_a_total():
    assert decide({"normalized_gini": 0.6, "total_ratio": 1.4}, None, **dict(CLV_GATE, max_total_error=None)).promote
    d = decide({"roc_auc": 0.8, "ece": 0.01}, None, **GATE)
    assert d.promote and not any("total" in r for r in d.reasons)


def test_packaged_gate_judges_the_total_at_ten_percent():
    assert gate_config("normalized_gini").max_total_error == pytest.approx(0.10)
    book = AliasBook()
    d = promote_if_better(book, "clv", 1, {"normalized_gini": 0.6, "total_ratio": 1.2}, None,
                          gate_config("normalized_gini", min_primary=None))
    assert not d.promote and book.aliases == {("clv", "challenger"): 1}
    assert "20.0% above" in book.tags[("clv", 1)]["gate_reasons"]


def test_first_model_below_minimum_quality_is_not_promoted():
    d = decide({"roc_auc": 0.52, "ece": 0.01}, None, **GATE)
    assert not d.promote
    assert "AUC 0.520 is below the minimum quality (at least 0.6)" in d.reasons


def test_collapsed_slice_blocks_promotion_and_is_named():
    d = decide({"roc_auc": 0.9, "ece": 0.01}, {"roc_auc": 0.8}, **dict(GATE, slice_collapse=True),
               collapsed_slices=["firm__region=south (AUC 0.480, n=120)"])
    assert not d.promote
    assert d.reasons[-1] == "collapsed slice(s), no better than chance: firm__region=south (AUC 0.480, n=120)"


@pytest.mark.parametrize("spec", [s for s in METRICS.values() if s.higher_is_better is not None], ids=lambda s: s.name)
def test_the_gate_takes_each_metrics_direction_from_its_spec(spec):
    step = 1.0 if spec.higher_is_better else -1.0
    gate = dict(GATE, primary_metric=spec.name, min_improvement=0.0, min_primary=None, max_ece=None)
    assert decide({spec.name: 10.0 + step}, {spec.name: 10.0}, **gate).promote
    assert not decide({spec.name: 10.0 - step}, {spec.name: 10.0}, **gate).promote
    assert decide({spec.name: 10.0}, None, **gate).reasons[0].startswith(f"no champion yet: {spec.label} ")


def test_a_metric_without_direction_cannot_be_the_primary_one():
    with pytest.raises(ValueError, match=r"Metric 'total_ratio' describes the data.*compared on \[.*'roc_auc'"):
        decide({"total_ratio": 1.0}, None, **dict(GATE, primary_metric="total_ratio"))
    with pytest.raises(ValueError, match=r"Metric 'auc' is not a known metric"):
        decide({"auc": 0.7}, None, **dict(GATE, primary_metric="auc"))


def test_missing_or_nan_primary_metric_is_an_error_not_a_silent_decision():
    with pytest.raises(ValueError, match=r"Candidate metrics have no usable 'roc_auc'.*available: \['pr_auc'\]"):
        decide({"pr_auc": 0.4}, None, **GATE)
    with pytest.raises(ValueError, match=r"score the champion on the candidate's held-out frame"):
        decide({"roc_auc": 0.8}, {"roc_auc": math.nan}, **GATE)
    with pytest.raises(ValueError, match=r"min_improvement must be >= 0"):
        decide({"roc_auc": 0.8}, None, **dict(GATE, min_improvement=-0.1))


SLICES = pd.DataFrame(
    [
        # slice_column, slice_value, n, metric, value
        ("firm__region", "north", 300, "roc_auc", 0.74),
        ("firm__region", "south", 120, "roc_auc", 0.48),  # collapsed
        ("firm__region", "west", 20, "roc_auc", 0.30),  # too small to judge
        ("firm__size", "small", 200, "roc_auc", 0.50),  # exactly chance: collapsed
        ("firm__size", "large", 200, "roc_auc", math.nan),  # single-class slice: not judged
        ("firm__size", "small", 200, "pr_auc", 0.05),  # another metric: ignored
        ("firm__size", "small", 200, "lift_top_decile", 0.9),  # lift below 1: worse than a random order
    ],
    columns=["slice_column", "slice_value", "n", "metric", "value"],
)


def test_find_collapsed_slices():
    assert find_collapsed_slices(SLICES, metric="roc_auc", min_n=50) == [
        "firm__region=south (AUC 0.480, n=120)",
        "firm__size=small (AUC 0.500, n=200)",
    ]
    assert find_collapsed_slices(SLICES, metric="roc_auc", min_n=10) == [
        "firm__region=south (AUC 0.480, n=120)",
        "firm__region=west (AUC 0.300, n=20)",
        "firm__size=small (AUC 0.500, n=200)",
    ]
    assert find_collapsed_slices(SLICES, metric="lift_top_decile", min_n=50) == [
        "firm__size=small (top-decile lift 0.900, n=200)"]
    assert find_collapsed_slices(SLICES, metric="pr_auc", min_n=50) == []  # its chance level depends on the data


class AliasBook:
    """A real in-memory alias store with the two methods the gate uses (the MLflow one is tested in integration)."""

    def __init__(self) -> None:
        self.aliases: dict[tuple[str, str], int] = {}
        self.tags: dict[tuple[str, int], dict[str, str]] = {}

    def set_alias(self, task: str, version: int, alias: str) -> None:
        self.aliases[(task, alias)] = version

    def tag_version(self, task: str, version: int, tags) -> None:
        self.tags.setdefault((task, version), {}).update(tags)


def test_promote_if_better_moves_aliases_and_records_reasons():
    book = AliasBook()
    cfg = gate_config("roc_auc", min_improvement=0.002, max_ece=0.05, min_primary=0.6, min_slice_n=50)
    assert promote_if_better(book, "churn", 1, {"roc_auc": 0.75, "ece": 0.02}, None, cfg).promote
    d = promote_if_better(book, "churn", 2, {"roc_auc": 0.80, "ece": 0.02}, {"roc_auc": 0.76}, cfg,
                          slice_metrics=SLICES)
    assert not d.promote  # better, but two slices collapsed
    assert book.aliases == {("churn", "champion"): 1, ("churn", "challenger"): 2}
    assert book.tags[("churn", 2)]["gate_decision"] == "challenger"
    assert "firm__region=south" in book.tags[("churn", 2)]["gate_reasons"]
    assert promote_if_better(book, "churn", 3, {"roc_auc": 0.80, "ece": 0.02}, {"roc_auc": 0.76}, cfg).promote
    assert book.aliases[("churn", "champion")] == 3


def test_importing_the_models_registry_modules_does_no_work(tmp_path):
    """No mlflow/matplotlib/shap import, no tracking URI, no folder at import time (they load on first use)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[2])

    code = (
        "import sys, os; before = set(os.listdir('.'));"
        "import models.registry, models.champion, models.card, models.plots;"
        "heavy = sorted(m for m in ('mlflow', 'matplotlib', 'shap') if m in sys.modules);"
        "print(heavy, os.environ.get('MLFLOW_TRACKING_URI'), sorted(set(os.listdir('.')) - before))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=tmp_path, env={**os.environ, "PYTHONPATH": root})
    assert out.stdout.strip() == "[] None []"
