"""The task registry: one spec per task, consistent with the contract's write-back bands."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.errors import UnknownTaskError
from models.tasks import TASKS, BandScheme, get_task, score_percentiles


def test_registry_holds_the_four_contract_tasks():
    assert set(TASKS) == {"churn", "clv", "lead_mql", "lead_sql"}
    assert {n: (t.entity, t.population, t.label, t.horizon_key) for n, t in TASKS.items()} == {
        "churn": ("account", "active_customers", "churn", "churn_days"),
        "clv": ("account", "active_customers", "clv_margin", "clv_days"),
        "lead_mql": ("lead", "open_leads", "reaches_sql", "lead_mql_days"),
        "lead_sql": ("lead", "sql_leads", "won", "lead_sql_days"),
    }


@pytest.mark.parametrize("name", sorted(TASKS))
def test_spec_is_frozen_and_consistent(name):
    spec = TASKS[name]
    assert spec.name == name
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.name = "x"  # type: ignore[misc]
    if spec.kind == "binary":
        assert spec.objective == "binary" and spec.primary_metric == "roc_auc"
    else:
        assert spec.objective == "tweedie" and spec.primary_metric == "normalized_gini"


@pytest.mark.parametrize("name,labels", [("churn", {"high", "medium", "low"}), ("clv", {"top", "middle", "low"}),
                                         ("lead_mql", {"A", "B", "C", "D"}), ("lead_sql", {"A", "B", "C", "D"})])
def test_bands_cover_all_percentiles_with_contract_labels(name, labels):
    bands = TASKS[name].bands.assign(np.arange(1, 101))
    assert set(bands) == labels
    assert bands[-1] == TASKS[name].bands.labels[0]  # percentile 100 gets the top band
    assert bands[0] == TASKS[name].bands.labels[-1]


def test_churn_band_sizes():
    bands = TASKS["churn"].bands.assign(np.arange(1, 101))
    assert (bands == "high").sum() == 10 and (bands == "medium").sum() == 20 and (bands == "low").sum() == 70


def test_band_scheme_validates_cut_points():
    with pytest.raises(ValueError, match="descending"):
        BandScheme(("a", "b", "c"), (50, 80))


def test_unknown_task_lists_known_ones():
    with pytest.raises(UnknownTaskError, match=r"Unknown task 'upsell'. Known tasks: \['churn', 'clv'"):
        get_task("upsell")


def test_score_percentiles_top_is_100_ties_share_and_bands_follow():
    scores = np.arange(200, dtype=float)  # 200 distinct scores: 2 per percentile
    pct = score_percentiles(scores)
    assert pct.min() == 1 and pct.max() == 100
    assert (pct == 100).sum() == 2
    tied = score_percentiles(np.array([0.1, 0.5, 0.5, 0.9]))
    assert tied.tolist() == [25, 75, 75, 100]
    assert (TASKS["churn"].bands.assign(pct) == "high").sum() == 20  # top 10 % of 200
