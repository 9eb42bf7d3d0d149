"""A new prediction task is one registry entry: it trains, scores, is written back, listed and explained.

The entry below (a 30-day churn under its own name and list) is inserted into ``models.tasks.TASKS`` and nothing
else is touched; the CLI then runs in this process (a subprocess would not see the inserted entry), on a real SQLite
CRM, MLflow store, GX and the session's Prefect API (tests/e2e/conftest.py).
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from crm.writeback import read_history, read_scores
from models.tasks import TASKS
from pipelines.cli import main

AS_OF = "2026-10-01"
NEW = dataclasses.replace(
    TASKS["churn"], name="churn_30d", horizon_days=30, reason_outcome="30-day churn risk",
    outcome="churns within 30 days", list_name="at-risk-30d", list_title="customers likely to churn within 30 days",
    value_at_risk_with=None)


@pytest.fixture(scope="module")
def new_world(tmp_path_factory, prefect_api):
    root = tmp_path_factory.mktemp("newtask")
    cfg = root / "fast.yaml"
    cfg.write_text(f"workdir: {root / 'wd'}\ntraining: {{cutoff_count: 5, cutoff_step_days: 45}}\n"
                   "model:\n  max_trees: 60\n  search: [{num_leaves: 7, min_child_samples: 30, learning_rate: 0.15, "
                   "feature_fraction: 0.9}]\n")
    crm = f"sqlite:///{root / 'wd' / 'crm.db'}"
    common = ["--config", str(cfg), "--crm", crm]
    from prefect.settings import (
        PREFECT_API_URL,
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS,
        temporary_settings,
    )

    # Prefect may have read its settings in this process before the session server started: point it there (or give
    # its temporary server time to start on a loaded machine) explicitly.
    updates = {PREFECT_API_URL: prefect_api} if prefect_api else {PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS: 180}
    with pytest.MonkeyPatch.context() as mp, temporary_settings(updates=updates):
        mp.setitem(TASKS, NEW.name, NEW)
        mp.chdir(root)
        mp.setenv("PREFECT_HOME", str(Path(tempfile.gettempdir()) / f"crmscore-test-prefect-{os.getpid()}"))
        assert main(["generate", *common, "--accounts", "1500", "--leads", "0", "--seed", "5", "--as-of", AS_OF]) == 0
        assert main(["train", *common, "--as-of", AS_OF, "--models", NEW.name]) == 0
        assert main(["score", *common, "--as-of", AS_OF, "--models", NEW.name]) == 0
        yield {"crm": crm, "common": common, "root": root}


def test_the_new_task_is_scored_and_written_back(new_world):
    scores = read_scores(new_world["crm"])
    assert set(scores["model"]) == {NEW.name}
    assert len(scores) > 100 and (scores["entity_type"] == "account").all()
    assert set(scores["band"]) <= {"high", "medium", "low"}  # the churn band scheme it names
    assert scores["reason_text"].str.contains("30-day churn risk").all()  # its own outcome words


def test_the_new_task_is_listed_and_explained(new_world, capsys):
    capsys.readouterr()
    out_file = new_world["root"] / "list.json"
    assert main(["list", "at-risk-30d", *new_world["common"], "--top", "5", "--format", "json", "--out",
                 str(out_file)]) == 0
    listed = json.loads(out_file.read_text())
    assert len(listed) == 5 and {r["model"] for r in listed} == {NEW.name}
    top = read_scores(new_world["crm"]).sort_values(["score", "entity_id"], ascending=[False, True]).head(5)
    assert [r["entity_id"] for r in listed] == top["entity_id"].tolist()
    record = listed[0]["entity_id"]
    assert main(["explain", record, *new_world["common"]]) == 0
    text = capsys.readouterr().out
    assert f"{NEW.name} v1" in text and record in text
    history = read_history(new_world["crm"], entity_id=record)
    assert history["model"].tolist() == [NEW.name] and pd.notna(history["reason_text"]).all()
