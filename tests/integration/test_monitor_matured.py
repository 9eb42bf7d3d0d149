"""Property tests of the monitoring flow's task (``monitor_missing``) on real SQLite: whatever the run dates, the
horizon and the extract's as-of, a run is backtested exactly when its whole label window has closed (and a run
after the extract's as-of is never looked at), every row says which extract it was computed from, and a second
pass over the stored rows computes nothing."""
from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crm.monitor_store import read_monitor_runs, write_monitoring
from crm.writeback import write_scores
from models.monitoring.records import run_rows
from pipelines.config import load_settings
from pipelines.flows import monitor_missing
from pipelines.monitor import rows_of
from tests.integration.test_writeback_kill import make_scores

EXTRACT_AS_OF = pd.Timestamp("2026-10-01", tz="UTC")
AT = pd.Timestamp("2026-10-02T03:00:00", tz="UTC")


class NoReferences:
    """A registry whose versions predate monitoring: every check and backtest runs without a reference."""

    def load_reference(self, task: str, version: int):
        return None


def no_extract():
    """The current extract: the scored ids are none of its accounts, so every matured run has no matured rows
    (what is under test is which runs are backtested, not their figures)."""
    accounts = pd.DataFrame({"account_id": pd.Series([], dtype="str")})
    return {"accounts": accounts}, {"accounts": accounts}


def recorded_until(last: pd.Timestamp):
    """The same extract whose activity log ends at ``last`` (an export older than the as-of it is monitored at)."""
    def extract():
        tables, raw = no_extract()
        activities = pd.DataFrame({"occurred_at": pd.Series([last - pd.Timedelta(days=3), last],
                                                             dtype="datetime64[us, UTC]")})
        return tables, {**raw, "activities": activities}
    return extract


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(-60, 500), min_size=1, max_size=5, unique=True), st.integers(1, 400),
       st.integers(-30, 30), st.one_of(st.none(), st.integers(-5, 300)))
def test_only_runs_whose_window_closed_are_backtested_once(days_before, horizon, shift, stale):
    extract_as_of = EXTRACT_AS_OF + pd.Timedelta(days=shift)
    # stale: the extract's event logs end this many days before its as-of (None: no event log to tell)
    last = None if stale is None else extract_as_of - pd.Timedelta(days=stale)
    extract = no_extract if last is None else recorded_until(last)
    recorded = [] if last is None else [e for e in (last - pd.Timedelta(days=3), last) if e < extract_as_of]
    closed_by = min(extract_as_of, max(recorded) + pd.Timedelta(days=1)) if recorded else extract_as_of  # grace 1 day
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'crm.db'}"
        cfg = load_settings(crm=url, overrides={"workdir": folder, "horizons": {"churn": horizon}})
        runs = {}
        for i, d in enumerate(sorted(days_before, reverse=True)):  # scored in date order, as nights are
            as_of = EXTRACT_AS_OF - pd.Timedelta(days=d)
            run_id = f"run-{i}"
            write_scores(url, make_scores(5, seed=i), scoring_run_id=run_id, as_of=as_of, scored_at=as_of,
                         models=["churn"])
            runs[run_id] = as_of
        checked = [run_rows(scoring_run_id=r, model="churn", stage="scoring", model_version="1", as_of=t,
                            evaluated_as_of=t, status="insufficient", reasons=(), n=5, blocked=False,
                            accepted_by=None, accepted_at=None, monitored_at=t, figures=()) for r, t in runs.items()]
        write_monitoring(url, *rows_of(checked))  # the score flow checked each run: only backtests are missing

        new, metrics = monitor_missing.fn(cfg, extract, NoReferences(), as_of=extract_as_of, monitored_at=AT)
        expected = {r for r, t in runs.items() if t + pd.Timedelta(days=horizon) <= closed_by}
        assert set(new["scoring_run_id"]) == expected and set(new["stage"]) <= {"realized"}
        for r in new.itertuples():
            assert r.as_of + pd.Timedelta(days=horizon) <= r.evaluated_as_of == extract_as_of  # closed windows only
        write_monitoring(url, new, metrics)
        stored = read_monitor_runs(url)
        again, _ = monitor_missing.fn(cfg, extract, NoReferences(), as_of=extract_as_of, monitored_at=AT)
        assert len(again) == 0  # stored once: a second pass computes nothing
        pd.testing.assert_frame_equal(read_monitor_runs(url), stored)
