"""Kill and concurrency tests of crm.writeback: a real child process writing, SIGKILLed or holding the lock.

The child runs `write_scores` with an `on_stage` hook that touches a marker file at a chosen stage and then
sleeps (so the parent knows the transaction is open at that point), or touches it and carries on (so the
parent kills it in the middle of the bulk insert).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from crm.errors import ScoringInProgressError
from crm.writeback import read_history, read_scores, write_scores

ROOT = Path(__file__).resolve().parents[2]
T1 = pd.Timestamp("2026-03-01", tz="UTC")
T2 = pd.Timestamp("2026-03-02", tz="UTC")
AT = pd.Timestamp("2026-03-02T03:00:00", tz="UTC")
MODELS = ("churn",)  # the only model these rows carry

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path
    import numpy as np, pandas as pd
    from crm.writeback import write_scores

    a = json.loads(sys.argv[1])
    n = a["n"]
    rng = np.random.default_rng(a["seed"])
    scores = pd.DataFrame({
        "entity_type": "account", "entity_id": [f"A{i:07d}" for i in range(n)], "model": "churn",
        "score": rng.random(n), "score_percentile": rng.integers(1, 101, n), "band": "low",
        "reasons": "[]", "reason_text": "No single factor stands out", "model_version": a["version"],
    })

    def hook(stage):
        if stage == a["stage"]:
            Path(a["marker"]).write_text(stage)
            time.sleep(a["sleep"])

    write_scores(a["location"], scores, models=("churn",), scoring_run_id=a["run_id"], as_of=pd.Timestamp(a["as_of"]),
                 scored_at=pd.Timestamp(a["as_of"]) + pd.Timedelta(hours=3), on_stage=hook,
                 lock_timeout_s=a.get("lock_timeout_s", 60))
    Path(a["marker"] + ".done").write_text("ok")
    """
)


def make_scores(n: int, seed: int) -> pd.DataFrame:
    import numpy as np

    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "entity_type": "account",
            "entity_id": [f"A{i:07d}" for i in range(n)],
            "model": "churn",
            "score": rng.random(n),
            "score_percentile": rng.integers(1, 101, n),
            "band": "high",
            "reasons": "[]",
            "reason_text": "No single factor stands out",
            "model_version": "1",
        }
    )


def start_child(tmp_path: Path, location: str, *, n: int, stage: str, sleep: float, run_id: str = "child",
                as_of: pd.Timestamp = T1, lock_timeout_s: float = 60) -> tuple[subprocess.Popen, Path]:
    script = tmp_path / "child_write.py"
    script.write_text(CHILD)
    marker = tmp_path / f"marker-{run_id}"
    args = {"location": location, "n": n, "seed": 11, "version": "9", "stage": stage, "sleep": sleep,
            "marker": str(marker), "run_id": run_id, "as_of": as_of.isoformat(), "lock_timeout_s": lock_timeout_s}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, str(script), json.dumps(args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    return proc, marker


def wait_for(marker: Path, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while not marker.exists():
        if proc.poll() is not None:
            raise AssertionError(f"child exited early ({proc.returncode}): {proc.stderr.read().decode()[-2000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("child never reached the stage")
        time.sleep(0.02)


def kill(proc: subprocess.Popen) -> None:
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'crm.db'}"
    return request.getfixturevalue("pg_url")


@pytest.mark.parametrize("stage", ["history_deleted", "scores_deleted", "scores_inserted"])
def test_sigkill_inside_the_transaction_leaves_previous_scores(url, tmp_path, stage):
    previous = make_scores(3000, seed=1)
    write_scores(url, previous, models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT)
    before, hist_before = read_scores(url), read_history(url)

    # same as_of: the child deletes run-1's history rows and empties crm_scores before it dies
    proc, marker = start_child(tmp_path, url, n=8000, stage=stage, sleep=120)
    wait_for(marker, proc)
    kill(proc)

    pd.testing.assert_frame_equal(read_scores(url), before)
    pd.testing.assert_frame_equal(read_history(url), hist_before)
    # The lock died with the process: a new run proceeds at once and wins.
    res = write_scores(url, make_scores(500, seed=2), models=MODELS, scoring_run_id="run-2", as_of=T1, scored_at=AT, lock_timeout_s=10)
    assert res.history_rows_replaced == 3000
    after = read_scores(url)
    assert len(after) == 500 and set(after["scoring_run_id"]) == {"run-2"}
    assert set(read_history(url)["scoring_run_id"]) == {"run-2"}


def test_sigkill_during_the_bulk_insert_leaves_previous_scores(url, tmp_path):
    write_scores(url, make_scores(2000, seed=1), models=MODELS, scoring_run_id="run-1", as_of=T2, scored_at=AT)
    before = read_scores(url)
    # Marker at the history delete, no sleep: the child is inside a 60k-row executemany (~1 s) when it dies.
    proc, marker = start_child(tmp_path, url, n=60_000, stage="history_deleted", sleep=0)
    wait_for(marker, proc)
    time.sleep(0.15)
    kill(proc)
    assert not Path(str(marker) + ".done").exists()
    pd.testing.assert_frame_equal(read_scores(url), before)
    write_scores(url, make_scores(10, seed=3), models=MODELS, scoring_run_id="run-3", as_of=T2, scored_at=AT, lock_timeout_s=10)
    assert read_scores(url)["scoring_run_id"].unique().tolist() == ["run-3"]


def test_second_run_times_out_with_a_clear_error_while_first_holds_the_lock(url, tmp_path):
    write_scores(url, make_scores(100, seed=1), models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT)
    before = read_scores(url)
    proc, marker = start_child(tmp_path, url, n=1000, stage="scores_deleted", sleep=120, as_of=T2)
    try:
        wait_for(marker, proc)
        start = time.monotonic()
        with pytest.raises(ScoringInProgressError, match="Another scoring run is writing scores to .* waited 1 s"):
            write_scores(url, make_scores(10, seed=2), models=MODELS, scoring_run_id="run-2", as_of=T2, scored_at=AT, lock_timeout_s=1)
        assert 0.9 <= time.monotonic() - start < 15
        # Readers are not blocked and see the last committed scores while the child is mid-transaction.
        pd.testing.assert_frame_equal(read_scores(url), before)
    finally:
        kill(proc)


def test_second_run_waits_for_the_first_and_never_interleaves(url, tmp_path):
    write_scores(url, make_scores(100, seed=1), models=MODELS, scoring_run_id="run-0", as_of=T1 - pd.Timedelta(days=1), scored_at=AT)
    # The child holds the lock for ~2 s after inserting everything, then commits.
    proc, marker = start_child(tmp_path, url, n=5000, stage="scores_inserted", sleep=2.0, run_id="first", as_of=T1)
    wait_for(marker, proc)
    start = time.monotonic()
    write_scores(url, make_scores(300, seed=2), models=MODELS, scoring_run_id="second", as_of=T2, scored_at=AT, lock_timeout_s=60)
    waited = time.monotonic() - start
    assert proc.wait(timeout=60) == 0, proc.stderr.read().decode()[-2000:]
    assert waited >= 1.0  # it really waited for the first run's commit
    current = read_scores(url)
    assert len(current) == 300 and set(current["scoring_run_id"]) == {"second"}  # last committed run wins, whole
    sizes = read_history(url).groupby("scoring_run_id").size().to_dict()
    assert sizes == {"run-0": 100, "first": 5000, "second": 300}


def test_folder_sigkill_and_lock(tmp_path):
    folder = tmp_path / "extract"
    folder.mkdir()
    write_scores(str(folder), make_scores(200, seed=1), models=MODELS, scoring_run_id="run-1", as_of=T1, scored_at=AT)
    before, hist_before = read_scores(str(folder)), read_history(str(folder))

    # Killed with every temp file written and fsynced, before any rename.
    proc, marker = start_child(tmp_path, str(folder), n=8000, stage="files_written", sleep=120, as_of=T1)
    wait_for(marker, proc)
    assert list((folder / "scores").glob(".*.tmp-*"))  # the half-done work exists, beside the real files
    # While it holds the lock a second run times out.
    with pytest.raises(ScoringInProgressError, match="lock file .*writeback.lock is held"):
        write_scores(str(folder), make_scores(5, seed=2), models=MODELS, scoring_run_id="run-2", as_of=T2, scored_at=AT, lock_timeout_s=0.5)
    kill(proc)
    pd.testing.assert_frame_equal(read_scores(str(folder)), before)
    pd.testing.assert_frame_equal(read_history(str(folder)), hist_before)

    # The kernel released the lock; the next run cleans the stale temp files and succeeds.
    write_scores(str(folder), make_scores(5, seed=2), models=MODELS, scoring_run_id="run-2", as_of=T2, scored_at=AT, lock_timeout_s=5)
    assert not list((folder / "scores").glob(".*.tmp-*"))
    assert read_scores(str(folder))["scoring_run_id"].unique().tolist() == ["run-2"]
    assert read_history(str(folder)).groupby("scoring_run_id").size().to_dict() == {"run-1": 200, "run-2": 5}
