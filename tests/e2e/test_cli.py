"""End to end through the CLI, as a user runs it: real subprocesses, a real SQLite CRM, MLflow, Prefect and GX.

One small synthetic world is generated, validated, trained on and scored once per session (tests/e2e/conftest.py);
the tests here check what landed in the CRM and what the flow commands print. The read-side commands run
in-process on the same world (test_cli_read.py): what needs a real process stays here.
"""
from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import numpy as np
import pandas as pd

from crm.writeback import read_history, read_scores
from tests.e2e.cli import AS_OF, cli_env, fast_config, run

PII_MARKERS = ("@example.", "PII")


def test_train_registers_a_champion_per_task(world):
    text = world["train"].stdout
    for task in ("churn", "clv", "lead_mql", "lead_sql"):
        assert task in text
    assert "champion" in text
    assert "mlflow ui --backend-store-uri" in text
    # progress comes from the flows' `crmscore` logger, shown by the CLI's handler, once per line
    assert text.count("- churn: building the training set and training\n") == 1
    assert "- Validating it against the data contracts" in text


def test_every_eligible_record_scored_once_and_no_ineligible_one(world):
    scores = read_scores(world["crm"])
    truth = pd.read_parquet(world["truth"])  # the generator's list of exactly the eligible records per task
    for task, part in truth.groupby("task"):
        mine = scores[scores["model"] == task]
        if mine.empty:
            continue  # a task without a champion is reported, not scored
        assert not mine["entity_id"].duplicated().any(), task
        assert set(mine["entity_id"]) == set(part["entity_id"]), task
    conn = sqlite3.connect(world["crm"].removeprefix("sqlite:///"))
    barred = pd.read_sql("select account_id as id from accounts where consent_profiling = 0 or deleted_at is not null "
                         "union select lead_id from leads where consent_profiling = 0 or deleted_at is not null", conn)
    conn.close()
    assert len(barred) > 0  # the world has non-consenting and deleted records ...
    assert not set(barred["id"]) & set(scores["entity_id"])  # ... and none is ever scored


def test_rows_carry_reasons_versions_and_run(world):
    scores = read_scores(world["crm"])
    assert set(scores["model"]) >= {"churn", "clv", "lead_mql"}
    assert scores["scoring_run_id"].nunique() == 1
    assert (scores["reason_text"].str.len() > 10).all()
    parsed = scores["reasons"].map(json.loads)
    assert (parsed.map(len) >= 1).all()
    assert {"feature", "label", "value", "contribution"} <= set(parsed.iloc[0][0])
    assert scores["score_percentile"].between(1, 100).all()
    assert set(scores.loc[scores["model"] == "churn", "band"]) <= {"high", "medium", "low"}
    assert set(scores.loc[scores["model"] == "lead_mql", "band"]) <= {"A", "B", "C", "D"}


def test_scores_rank_the_simulated_future(world):
    from models.evaluate import compare_with_truth

    cmp = compare_with_truth(read_scores(world["crm"]), pd.read_parquet(world["truth"])).set_index("task")
    print("\n" + cmp.to_string())
    # a small world and a fast config: the full-size figures (README) are the acceptance numbers
    assert cmp.loc["churn", "model"] > 0.65 and cmp.loc["lead_mql", "model"] > 0.55
    assert cmp.loc["clv", "model"] > 0.3


def test_no_pii_anywhere_written(world):
    scores = read_scores(world["crm"])
    blob = scores.to_csv()
    assert not any(m in blob for m in PII_MARKERS)
    for path in (world["root"] / "wd").rglob("*"):
        if path.is_file() and path.suffix in {".json", ".md", ".txt", ".csv", ".yaml", ".html", ".log"}:
            text = path.read_text(errors="ignore")
            assert "@example." not in text, path
    for step in ("generate", "validate", "train", "score"):
        assert "@example." not in world[step].stdout + world[step].stderr


def test_rescoring_same_as_of_is_idempotent(world):
    before = read_scores(world["crm"])
    run(["score", *world["common"], "--as-of", AS_OF], world["root"])
    after = read_scores(world["crm"])
    key = ["model", "entity_id"]
    cols = ["score", "score_percentile", "band", "reasons", "reason_text", "model_version", "as_of"]
    pd.testing.assert_frame_equal(before.sort_values(key)[key + cols].reset_index(drop=True),
                                  after.sort_values(key)[key + cols].reset_index(drop=True))
    hist = read_history(world["crm"])
    assert hist["scoring_run_id"].nunique() == 1  # one run for that date, not two
    assert len(hist) == len(after)


def test_shap_reproduces_the_champion_raw_output(world):
    """For a sample of records, contributions + base value reproduce the raw model output to 1e-6; the pattern
    TreeSHAP that scoring uses equals LightGBM's pred_contrib on every eligible record; the written scores are
    the champion's calibrated predictions."""
    from crm.extract import read_extract
    from crm.privacy import profiling_view
    from models.dataset import build_scoring_features
    from tests.defaults import feature_options
    from models.registry import Registry
    from models.tasks import TASKS
    from models.treeshap import PatternTreeShap
    from pipelines.config import load_settings

    settings = load_settings(world["cfg"], env={})
    reg = Registry(settings.tracking_uri, settings.artifact_root)
    tables = profiling_view(read_extract(world["crm"]).tables)
    written = read_scores(world["crm"])
    for name in ("churn", "clv", "lead_mql"):
        fs = build_scoring_features(tables, TASKS[name], as_of=pd.Timestamp(AS_OF, tz="UTC"), options=feature_options())
        model, _ = reg.load_champion(name, list(fs.catalog))
        sample = fs.frame.sample(200, random_state=0)
        np.testing.assert_allclose(model.contributions(sample).sum(axis=1), model.predict_raw(sample), atol=1e-6)
        np.testing.assert_allclose(PatternTreeShap(model.booster).contributions(model.matrix(fs.frame)),
                                   model.contributions(fs.frame), rtol=0, atol=1e-12)
        mine = written[written["model"] == name].set_index("entity_id")["score"]
        expected = pd.Series(model.predict(fs.frame), index=fs.frame["entity_id"].to_numpy())
        np.testing.assert_allclose(mine.loc[expected.index].to_numpy(float), expected.to_numpy(), rtol=1e-9, atol=1e-9)


def test_errors_of_flow_commands_are_one_line_with_nonzero_exit(world, tmp_path):
    """The read-only commands' errors are checked in-process (tests/e2e/test_cli_read.py,
    tests/integration/test_cli_errors.py); these need the flows, so a real process."""
    missing = tmp_path / "missing.db"
    proc = run(["score", "--crm", f"sqlite:///{missing}", "--config", str(world["cfg"])], world["root"], check=False)
    assert proc.returncode == 1
    assert "no CRM at sqlite:///" in proc.stderr and "the file does not exist" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert not missing.exists()
    # a CRM but no model registry yet: score says to train first, in one line
    proc = run(["score", "--crm", world["crm"], "--config", str(fast_config(tmp_path)), "--as-of", AS_OF],
               world["root"], check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no champion model yet (run `crmscore train`" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_schedule_creates_the_nightly_deployment(world):
    proc = run(["schedule", *world["common"], "--cron", "0 2 * * *"], world["root"])
    assert "crmscore-score" in proc.stdout and "0 2 * * *" in proc.stdout
    # read it back from the Prefect API in another process, as a worker would
    code = ("from prefect import get_client\n"
            "with get_client(sync_client=True) as c:\n"
            "    d = c.read_deployment_by_name('crmscore-score/nightly')\n"
            "    print(d.schedules[0].schedule.cron, d.schedules[0].schedule.timezone, sorted(d.parameters))\n")
    env = cli_env()
    env.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split()[:2] == ["0", "2"] and "UTC" in out.stdout and "'crm'" in out.stdout
