"""models.dataset: lead tasks lay out their own number of cutoffs and get the decayed counts; account tasks do not."""
from __future__ import annotations

import pandas as pd
import pytest

from crm.privacy import profiling_view
from crm.synthetic import generate_world
from models.dataset import build_training_data
from models.tasks import TASKS
from tests.defaults import cutoff_options, feature_options

AS_OF = pd.Timestamp("2026-10-01", tz="UTC")


@pytest.fixture(scope="module")
def tables():
    return profiling_view(generate_world(150, 400, seed=5, as_of=AS_OF, history_days=400).tables)


def test_lead_tasks_use_lead_count_and_account_tasks_count(tables):
    cuts = cutoff_options(count=3, lead_count=5, step_days=30, min_history_days=30)
    opts = feature_options(lead_decay_half_lives_days=(7,))
    lead = build_training_data(tables, TASKS["lead_mql"], as_of=AS_OF, horizon_days=60, cutoffs=cuts, options=opts)
    churn = build_training_data(tables, TASKS["churn"], as_of=AS_OF, horizon_days=90, cutoffs=cuts, options=opts)
    assert lead.frame["cutoff_ts"].nunique() == 5
    assert churn.frame["cutoff_ts"].nunique() == 3
    decayed = [c for c in lead.frame.columns if "decay" in c]
    assert decayed == ["eng__activities_decay7d", "eng__pricing_page_visit_decay7d", "eng__form_submit_decay7d",
                       "eng__web_visit_decay7d"]
    assert (lead.frame["eng__activities_decay7d"] > 0).any()
    assert not any("decay" in c for c in churn.frame.columns)  # accounts: the half-lives are a lead option

