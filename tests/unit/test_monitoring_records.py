"""Monitoring results as rows of the output contracts, and the status of a matured run alone."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from models.monitoring import Reason, RealizedPerformance
from models.monitoring.policy import realized_status
from models.monitoring.records import METRIC_COLUMNS, RUN_COLUMNS, run_rows
from tests.unit._monitoring_world import THRESHOLDS

T = pd.Timestamp("2026-06-01", tz="UTC")


def test_figures_become_numbers_or_texts_and_non_finite_numbers_null():
    reasons = (Reason("warn", "feature_drift", "f", 0.07, "F: PSI 0.070 (shift)"),)
    runs, metrics = run_rows(
        scoring_run_id="r", model="churn", stage="scoring", model_version=3, as_of=T, evaluated_as_of=T,
        status="warn", reasons=reasons, n=10, blocked=False, accepted_by=None, accepted_at=None, monitored_at=T,
        figures=[("feature", "f", "psi", np.float64(0.07)), ("feature", "f", "status", "warn"),
                 ("score", "score", "rank_stability", None), ("score", "score", "psi", float("inf")),
                 ("grade", "grade", "reliable", True)])
    assert list(runs.columns) == list(RUN_COLUMNS) and list(metrics.columns) == list(METRIC_COLUMNS)
    assert runs.loc[0, "model_version"] == "3" and runs.loc[0, "blocked"] == 0
    assert json.loads(runs.loc[0, "reasons"])[0]["code"] == "feature_drift"
    got = metrics.set_index(["section", "metric"])
    assert got.loc[("feature", "psi"), "value"] == 0.07 and got.loc[("feature", "status"), "text"] == "warn"
    assert np.isnan(got.loc[("feature", "status"), "value"]) and pd.isna(got.loc[("score", "rank_stability"), "text"])
    assert np.isnan(got.loc[("score", "rank_stability"), "value"]) and np.isnan(got.loc[("score", "psi"), "value"])
    assert got.loc[("grade", "reliable"), "value"] == 1.0


def test_a_matured_run_under_min_rows_is_insufficient_and_a_calibration_miss_alerts():
    few = RealizedPerformance("binary", {"n": 10.0}, {}, (), {})
    assert realized_status(few, thresholds=THRESHOLDS) == ("insufficient", ())
    missed = RealizedPerformance("binary", {"n": 5000.0, "oe_ratio": 2.0, "oe_p_value": 1e-12}, {}, (), {})
    status, reasons = realized_status(missed, thresholds=THRESHOLDS)
    assert status == "alert" and [r.code for r in reasons] == ["calibration"]
    fine = RealizedPerformance("binary", {"n": 5000.0, "oe_ratio": 1.02, "oe_p_value": 0.4}, {}, (), {})
    assert realized_status(fine, thresholds=THRESHOLDS) == ("ok", ())


def test_quality_figures_count_null_cells_and_failed_rules_per_table():
    from models.monitoring.records import quality_figures

    accounts = pd.DataFrame({"account_id": ["a", "b", "c", "d"], "mrr": [1.0, None, None, 4.0],
                             "segment": ["smb", None, "mid", "mid"]})
    results = [{"table": "accounts", "status": "failed", "unexpected_count": 2},
               {"table": "accounts", "status": "failed", "unexpected_count": 1},
               {"table": "accounts", "status": "passed", "unexpected_count": 0},
               {"table": "orders", "status": "failed", "unexpected_count": 7}]  # a table absent from the extract
    got = {(table, metric): v for _, table, metric, v in quality_figures({"accounts": accounts}, results)}
    assert got == {("accounts", "rules_failed"): 2, ("accounts", "defects"): 3, ("accounts", "rows"): 4,
                   ("accounts", "null_rate"): 3 / 12,  # 3 null cells of 4 rows x 3 columns
                   ("accounts", "max_null_rate"): 0.5, ("accounts", "max_null_column"): "mrr",
                   ("orders", "rules_failed"): 1, ("orders", "defects"): 7}
