"""`crmscore monitor` and the score flow's policy through the CLI, on copies of the session world's CRM (the same
MLflow registry): the JSON of the issue and exit 0 without an alert; an integrity block that leaves crm_scores
exactly as it was, then `--accept-drift` writing the scores and recording who, then `monitor` exiting 3."""
from __future__ import annotations

import getpass
import json
import shutil
import sqlite3
from pathlib import Path

from tests.e2e.cli import AS_OF, run

LENIENT = {"psi_warn": 50, "psi_alert": 60, "catastrophic_score_psi": 70, "mean_shift_warn": 50,
           "mean_shift_alert": 60, "min_rank_stability": 0.0001}
# every run has a most frequent score: a share above 1e-9 blocks. (A score PSI threshold does not: the world scores on
# its training date, and the drift reference is the population scored then, so the score PSI is 0.)
STRICT = {"max_identical_share": "0.000000001"}


def crm_copy(world, folder: Path, *, drop_monitoring: bool = False) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "crm.db"
    shutil.copyfile(world["root"] / "wd" / "crm.db", db)
    if drop_monitoring:
        with sqlite3.connect(db) as conn:
            conn.execute("drop table crm_monitor_metrics")
            conn.execute("drop table crm_monitor_runs")
    return f"sqlite:///{db}"


def overlay(world, folder: Path, thresholds: dict) -> Path:
    """The world's config (same workdir, hence the same registry) with some monitoring thresholds changed."""
    cfg = folder / "monitoring.yaml"
    block = "".join(f"    {k}: {v}\n" for k, v in thresholds.items())
    cfg.write_text(world["cfg"].read_text() + f"monitoring:\n  thresholds:\n{block}")
    return cfg


def table(url: str, name: str) -> list[tuple]:
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        return conn.execute(f"select * from {name} order by 1, 2, 3").fetchall()


def test_monitor_computes_what_is_missing_and_prints_the_json_of_each_champion(world, tmp_path):
    crm = crm_copy(world, tmp_path, drop_monitoring=True)  # as if the runs had been scored before monitoring
    proc = run(["monitor", "--config", str(overlay(world, tmp_path, LENIENT)), "--crm", crm, "--as-of", AS_OF,
                "--format", "json"], tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["runs_stored"] == len(doc["models"]) >= 2  # one check per scored model, none matured yet
    for name, m in doc["models"].items():
        assert m["status"] in ("ok", "warn", "insufficient"), (name, m["reasons"])
        assert {"status", "reasons", "features", "score", "realized", "estimated"} <= set(m)
        assert m["realized"] == []  # scored at the extract's as-of: no horizon has closed
        assert m["features"] and set(m["features"][0]) == {"feature", "label", "psi", "status"}
        assert m["score"]["n"] > 0
    assert doc["models"]["churn"]["estimated"]["auc"] is not None
    stored = table(crm, "crm_monitor_runs")
    assert len(stored) == doc["runs_stored"]
    # Read-only towards the extract and the scores; stores nothing twice.
    again = run(["monitor", "--config", str(overlay(world, tmp_path, LENIENT)), "--crm", crm, "--as-of", AS_OF,
                 "--format", "json"], tmp_path, check=False)
    assert again.returncode == 0 and json.loads(again.stdout)["runs_stored"] == 0
    assert table(crm, "crm_monitor_runs") == stored


def test_an_integrity_block_keeps_crm_scores_and_accept_drift_records_who(world, tmp_path):
    crm = crm_copy(world, tmp_path)
    strict = overlay(world, tmp_path, STRICT)
    before = table(crm, "crm_scores")
    runs_before = {r[0] for r in table(crm, "crm_monitor_runs")}  # the world's runs (other tests may have rescored it)
    blocked = run(["score", "--config", str(strict), "--crm", crm, "--as-of", AS_OF, "--models", "churn"], tmp_path,
                  check=False)
    assert blocked.returncode == 1
    error = [line for line in blocked.stderr.splitlines() if line.startswith("error")]
    assert len(error) == 1 and "scores not written (crm_scores unchanged" in error[0]
    assert "scores are identical" in error[0]
    assert table(crm, "crm_scores") == before
    new_runs = {r[0] for r in table(crm, "crm_monitor_runs")} - runs_before
    assert len(new_runs) == 1  # the blocked run, recorded (with blocked = 1 and nobody accepting: checked below)

    accepted = run(["score", "--config", str(strict), "--crm", crm, "--as-of", AS_OF, "--models", "churn",
                    "--accept-drift"], tmp_path, check=False)
    assert accepted.returncode == 0, accepted.stderr
    assert table(crm, "crm_scores") != before
    with sqlite3.connect(crm.removeprefix("sqlite:///")) as conn:
        rows = conn.execute("select status, blocked, accepted_by, accepted_at from crm_monitor_runs "
                            "where model = 'churn' and stage = 'scoring' order by monitored_at").fetchall()
    assert [(s, b) for s, b, _, _ in rows[-2:]] == [("alert", 1), ("alert", 1)]
    (_, _, nobody, never), (_, _, who, when) = rows[-2:]
    assert nobody is None and never is None and who == getpass.getuser() and when is not None

    proc = run(["monitor", "--config", str(world["cfg"]), "--crm", crm, "--as-of", AS_OF], tmp_path, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "alert" in proc.stdout

