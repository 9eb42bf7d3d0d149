"""The task registry: one spec per task, consistent with the contract's write-back bands."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from models.errors import ModelConfigError, UnknownTaskError
from models.tasks import (
    TASKS,
    check_registry,
    get_task,
    horizon_days,
    populations_of,
    task_for_list,
    tasks_named,
)
from tests.defaults import band_thresholds


def test_registry_holds_the_four_contract_tasks():
    assert set(TASKS) == {"churn", "clv", "lead_mql", "lead_sql"}
    assert {n: (t.entity, t.population, t.label, t.horizon_days) for n, t in TASKS.items()} == {
        "churn": ("account", "active_customers", "churn", 90),
        "clv": ("account", "active_customers", "clv_margin", 365),
        "lead_mql": ("lead", "open_leads", "reaches_sql", 60),
        "lead_sql": ("lead", "sql_leads", "won", 90),
    }
    check_registry(TASKS)


def test_derived_views_follow_the_registry(monkeypatch):
    assert [s.list_name for s in TASKS.values()] == ["at-risk", "clv", "top-leads", "sql-leads"]
    assert task_for_list("top-leads").name == "lead_mql"
    assert populations_of("lead") == ["open_leads", "sql_leads"]
    assert [s.name for s in tasks_named("clv, churn")] == ["clv", "churn"]
    extra = dataclasses.replace(TASKS["churn"], name="churn_30d", horizon_days=30, list_name="at-risk-30d",
                                value_at_risk_with=None)
    monkeypatch.setitem(TASKS, "churn_30d", extra)  # a new task is one entry: every view sees it
    assert task_for_list("at-risk-30d") is extra
    assert [s.name for s in tasks_named(None)][-1] == "churn_30d"
    assert horizon_days(extra, {}) == 30 and horizon_days(extra, {"churn_30d": 14}) == 14
    check_registry(TASKS)


def test_registry_rules_name_every_problem(monkeypatch):
    with pytest.raises(ModelConfigError, match=r"population 'prospects' is not one of .*band_scheme 'rfm'"):
        dataclasses.replace(TASKS["churn"], population="prospects", band_scheme="rfm")
    with pytest.raises(ModelConfigError, match=r"baselines \['btyd'\] are not known for a binary task"):
        dataclasses.replace(TASKS["churn"], baselines=("btyd",))
    with pytest.raises(ModelConfigError, match=r"label 'churned' is not one of \['churn', 'clv_margin'"):
        dataclasses.replace(TASKS["churn"], label="churned")
    clash = dataclasses.replace(TASKS["lead_mql"], name="lead_mql_2")
    monkeypatch.setitem(TASKS, "lead_mql_2", clash)
    with pytest.raises(ModelConfigError, match=r"list name 'top-leads' is used by 'lead_mql' and 'lead_mql_2'"):
        check_registry(TASKS)


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
    from models.bands import assign_bands

    pct = np.arange(1, 101)
    scores = pct / 1000.0  # low probabilities: churn bands then follow the percentile rules alone
    bands = assign_bands(scores, pct, TASKS[name].band_scheme, band_thresholds(TASKS[name].band_scheme))
    assert set(bands) == labels
    assert bands.iloc[-1] == {"churn": "high", "clv": "top"}.get(name, "A")  # percentile 100 gets the top band


def test_unknown_task_lists_known_ones():
    with pytest.raises(UnknownTaskError, match=r"Unknown task 'upsell'. Known tasks: \['churn', 'clv'"):
        get_task("upsell")


