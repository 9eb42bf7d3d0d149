"""The read-side commands (list, explain, features) on the session's trained world, run in-process.

They only read the CRM, so ``pipelines.cli.main`` in this process checks the same behaviour as a subprocess would,
without re-importing the stack per command; tests/e2e/test_cli.py keeps what needs a real process.
"""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pandas as pd
import pytest

from crm.extract import read_tables
from crm.writeback import read_scores
from models.tasks import TASKS
from tests.e2e.cli import AS_OF

COMMANDS = ("generate", "import-transactions", "validate", "features", "train", "score", "monitor", "list", "explain",
            "report", "schedule", "demo")


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def crm_unchanged(world):
    """The read-side commands leave the CRM file byte-for-byte as it was."""
    db = Path(world["crm"].removeprefix("sqlite:///"))
    before = _sha(db)
    yield
    assert _sha(db) == before


def test_list_and_export(world, crmscore, crm_unchanged):
    res = crmscore("list", "at-risk", *world["common"], "--top", "5", "--format", "csv")
    assert res.code == 0, res.err
    frame = pd.read_csv(io.StringIO(res.out))
    assert len(frame) == 5 and list(frame["rank"]) == [1, 2, 3, 4, 5]
    assert frame["value_at_risk"].is_monotonic_decreasing
    assert frame["reason_text"].notna().all()
    res = crmscore("list", "top-leads", *world["common"], "--top", "3", "--format", "json")
    rows = json.loads(res.out)
    assert res.code == 0 and len(rows) == 3 and rows[0]["score"] >= rows[-1]["score"]
    res = crmscore("list", "at-risk", *world["common"], "--segment", "enterprise", "--format", "csv")
    assert res.code == 0 and set(pd.read_csv(io.StringIO(res.out))["segment"]) <= {"enterprise"}


def test_list_as_a_table_and_to_a_file(world, crmscore, tmp_path):
    res = crmscore("list", "clv", *world["common"], "--top", "4")
    assert res.code == 0 and "clv (4 rows)" in res.out
    out = tmp_path / "leads.json"
    res = crmscore("list", "top-leads", *world["common"], "--top", "2", "--format", "json", "--out", out)
    assert res.code == 0 and f"2 rows -> {out}" in res.out
    assert len(json.loads(out.read_text())) == 2


def test_list_unknown_segment_is_one_line(world, crmscore):
    res = crmscore("list", "at-risk", *world["common"], "--segment", "enterprize")
    assert res.code == 1 and res.out == ""
    assert "--segment 'enterprize' is no account segment" in res.err and "possible values are" in res.err
    assert "enterprise" in res.err and len(res.err.strip().splitlines()) == 1


def test_explain_a_record_with_waterfall(world, crmscore, crm_unchanged):
    scores = read_scores(world["crm"])
    acc = scores.loc[scores["model"] == "churn", "entity_id"].iloc[0]
    segment = read_tables(world["crm"], tables=["accounts"])["accounts"].set_index("account_id").loc[acc, "segment"]
    png = world["root"] / "wf_{model}.png"
    res = crmscore("explain", acc, *world["common"], "--plot", png)
    assert res.code == 0, res.err
    assert res.out.splitlines()[0].startswith(f"account {acc} (segment {segment}): ")  # which record, before scores
    assert "churn v" in res.out and "clv v" in res.out
    assert (world["root"] / "wf_churn.png").stat().st_size > 10_000


def test_explain_says_which_lead_it_explains(world, crmscore, crm_unchanged):
    scores = read_scores(world["crm"])
    lead = scores.loc[scores["model"] == "lead_mql", "entity_id"].iloc[0]
    source = read_tables(world["crm"], tables=["leads"])["leads"].set_index("lead_id").loc[lead, "source"]
    res = crmscore("explain", lead, *world["common"])
    assert res.code == 0, res.err
    assert res.out.splitlines()[0].startswith(f"lead {lead} (source {source}): ")
    assert "lead_mql v" in res.out and "@example." not in res.out


def test_explain_unknown_or_unscored_id_is_one_line(world, crmscore, crm_unchanged):
    res = crmscore("explain", "acc_does_not_exist", *world["common"])
    assert res.code == 1 and "unexpected" not in res.err
    assert "no account or lead with id 'acc_does_not_exist'" in res.err and len(res.err.strip().splitlines()) == 1
    accounts = read_tables(world["crm"], tables=["accounts"])["accounts"]
    unscored = sorted(set(accounts["account_id"]) - set(read_scores(world["crm"])["entity_id"]))[0]
    res = crmscore("explain", unscored, *world["common"])
    assert res.code == 1 and f"account {unscored!r} has no score" in res.err


def test_features_command_writes_inspectable_matrix(world, crmscore, tmp_path, crm_unchanged):
    out = tmp_path / "acc.parquet"
    res = crmscore("features", *world["common"], "--entity", "account", "--as-of", AS_OF, "--out", out)
    assert res.code == 0, res.err
    frame = pd.read_parquet(out)
    labels = json.loads(out.with_suffix(".labels.json").read_text())
    assert len(frame) == (read_scores(world["crm"])["model"] == "churn").sum()
    assert set(frame.columns) - {"entity_id", "cutoff_ts"} == set(labels)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc.labels.json", "acc.parquet"]  # and nothing else


def test_usage_errors_are_one_line_with_exit_2(world, crmscore):
    res = crmscore("list", "nonsense", *world["common"])
    assert res.code == 2 and "possible values are" in res.err and len(res.err.strip().splitlines()) == 1
    res = crmscore("train", *world["common"], "--as-of", "not-a-date")
    assert res.code == 2 and "is not a date" in res.err and len(res.err.strip().splitlines()) == 1


@pytest.mark.parametrize("cmd", COMMANDS)
def test_help_on_every_command(crmscore, cmd):
    res = crmscore(cmd, "--help")
    assert res.code == 0 and "Usage" in res.out, res.err


@pytest.mark.parametrize("task", list(TASKS))
def test_every_registered_task_is_trained_scored_listed_and_explained(world, crmscore, task):
    """One test per registry entry: a task that was skipped, not promoted, not scored or not listable fails here."""
    spec = TASKS[task]
    row = next(line for line in world["train"].stdout.splitlines() if line.startswith(f"│ {task} "))
    assert "│ champion │" in row, row
    scores = read_scores(world["crm"], model=task)
    assert len(scores) > 0 and (scores["entity_type"] == spec.entity).all()
    assert scores["reason_text"].str.contains(spec.reason_outcome, regex=False).any()
    res = crmscore("list", spec.list_name, *world["common"], "--top", "3", "--format", "json")
    assert res.code == 0, res.err
    listed = json.loads(res.out)
    assert len(listed) == 3 and {r["model"] for r in listed} == {task}
    res = crmscore("explain", listed[0]["entity_id"], *world["common"])
    assert res.code == 0, res.err
    assert res.out.startswith(f"{spec.entity} {listed[0]['entity_id']} ({spec.entity_spec.segment_column} ")
    assert f"  {task} v" in res.out
