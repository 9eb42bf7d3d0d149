"""The task registry: one spec per task, consistent with the contract's write-back bands."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.errors import UnknownTaskError
from models.tasks import TASKS, get_task


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
    from models.bands import TASK_SCHEME, assign_bands

    pct = np.arange(1, 101)
    scores = pct / 1000.0  # low probabilities: churn bands then follow the percentile rules alone
    bands = assign_bands(scores, pct, TASK_SCHEME[name])
    assert set(bands) == labels
    assert bands.iloc[-1] == {"churn": "high", "clv": "top"}.get(name, "A")  # percentile 100 gets the top band


def test_unknown_task_lists_known_ones():
    with pytest.raises(UnknownTaskError, match=r"Unknown task 'upsell'. Known tasks: \['churn', 'clv'"):
        get_task("upsell")


