"""The monitoring tables beside the scores: write once, all or nothing, and read back as tidy frames.

Contract: ``data_contracts/crm_monitor_runs.yaml`` (one status per (scoring_run_id, model, stage)) and
``crm_monitor_metrics.yaml`` (one figure per (scoring_run_id, model, stage, section, subject, metric)). Aggregates
only: no record id, no PII. ``stage`` is ``scoring`` (the run's drift and score health at its as_of) or ``realized``
(its backtest once the label horizon has closed).

Write semantics: a run key (scoring_run_id, model, stage) already stored is never rewritten, nor are its metrics;
new keys are inserted with their metrics in one transaction (SQLite ``BEGIN IMMEDIATE``, PostgreSQL the write-back's
advisory lock), so running monitoring twice writes identical rows, a kill leaves no partial rows, and a new champion
never resets the realized history of the old one. The score flow inserts its ``scoring`` rows in the same
transaction as the scores (``crm.writeback.write_scores(monitoring=...)``). A folder CRM keeps the two tables as
Parquet files under ``<folder>/scores/`` (temp file, fsync, ``os.replace``, under the write-back's lock file; the
runs file is replaced last, so a kill between the renames leaves metrics whose run is not yet stored: they are
written again, identically, by the next run and deduplicated on read).

Time: every timestamp is tz-aware UTC given by the caller; nothing here reads the clock.
"""
from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import sqlalchemy as sa

from crm.errors import WriteBackError
from crm.writeback import (
    DEFAULT_LOCK_TIMEOUT_S,
    _SCORES_DIR,
    _bind_rows,
    _conform,
    _folder_lock,
    _fsync_dir,
    _insert_rows,
    _is_url,
    _lock_sql,
    _normalise,
    _read_table,
    _safe,
    _sql_table,
    _write_engine,
    _write_parquet_tmp,
)
from data_contracts.schema import output_schema

RUNS_TABLE = "crm_monitor_runs"
METRICS_TABLE = "crm_monitor_metrics"
_RUNS = output_schema(RUNS_TABLE)
_METRICS = output_schema(METRICS_TABLE)
RUN_COLUMNS: tuple[str, ...] = _RUNS.column_names
METRIC_COLUMNS: tuple[str, ...] = _METRICS.column_names
#: The key of a monitored run; every metric row belongs to one.
RUN_KEY: tuple[str, ...] = _RUNS.primary_key
MONITOR_STAGES = ("scoring", "realized")
#: Stages reported to ``on_stage`` during a SQL write, in order (inside the transaction).
STAGES = ("locked", "runs_inserted", "metrics_inserted", "committing")


@dataclass(frozen=True)
class MonitorRows:
    """Run and metric rows, validated and in the contracts' canonical dtypes (see :func:`prepare`)."""

    runs: pd.DataFrame
    metrics: pd.DataFrame


@dataclass(frozen=True)
class MonitorWriteResult:
    runs_written: int
    metrics_written: int
    runs_already_stored: int


def prepare(runs: pd.DataFrame, metrics: pd.DataFrame) -> MonitorRows:
    """Check the caller's rows against the contracts (columns, keys, stages, every metric tied to a run)."""
    for frame, schema, what in ((runs, _RUNS, "runs"), (metrics, _METRICS, "metrics")):
        missing = [c for c in schema.column_names if c not in frame.columns]
        if missing:
            raise WriteBackError(f"monitoring {what} lack column(s) {missing}; expected {list(schema.column_names)}.")
    r = _conform(runs, _RUNS, {}, errors="raise")
    m = _conform(metrics, _METRICS, {}, errors="raise")
    for frame, schema, what in ((r, _RUNS, "runs"), (m, _METRICS, "metrics")):
        required = [c.name for c in schema.columns if c.required]
        bad = [c for c in required if frame[c].isna().any()]
        if bad:
            raise WriteBackError(f"monitoring {what} have missing values in required column(s) {bad}.")
        key = list(schema.primary_key)
        if frame.duplicated(key).any():
            first = frame.loc[frame.duplicated(key), key].iloc[0].tolist()
            raise WriteBackError(f"monitoring {what} repeat the key ({', '.join(key)}) {first}; one row per key.")
    wrong = sorted(set(r["stage"]) - set(MONITOR_STAGES))
    if wrong:
        raise WriteBackError(f"monitoring runs have unknown stage(s) {wrong}. Possible values are: "
                             f"{list(MONITOR_STAGES)}.")
    orphans = m.merge(r[list(RUN_KEY)], on=list(RUN_KEY), how="left", indicator=True)["_merge"] == "left_only"
    if orphans.any():
        raise WriteBackError(f"{int(orphans.sum())} monitoring metric row(s) belong to no run of this write; "
                             "write each run with its metrics.")
    return MonitorRows(r, m)


def _keys(frame: pd.DataFrame) -> set[tuple[str, ...]]:
    return set(frame[list(RUN_KEY)].astype("str").itertuples(index=False, name=None))


def _new_only(rows: MonitorRows, stored: Iterable[tuple[str, ...]]) -> MonitorRows:
    stored = set(stored)
    keep_r = [k not in stored for k in rows.runs[list(RUN_KEY)].itertuples(index=False, name=None)]
    keep_m = [k not in stored for k in rows.metrics[list(RUN_KEY)].itertuples(index=False, name=None)]
    return MonitorRows(rows.runs.loc[keep_r].reset_index(drop=True), rows.metrics.loc[keep_m].reset_index(drop=True))


def tables(md: sa.MetaData) -> tuple[sa.Table, sa.Table]:
    """The SQL tables of the two contracts on ``md``."""
    return _sql_table(md, _RUNS), _sql_table(md, _METRICS)


def insert_in_transaction(conn: sa.Connection, rows: MonitorRows, runs_t: sa.Table, metrics_t: sa.Table,
                          stage: Callable[[str], None]) -> MonitorWriteResult:
    """Insert the runs not stored yet, with their metrics, inside the caller's locked transaction (tables exist)."""
    dialect = conn.dialect.name
    ids = sorted(set(rows.runs["scoring_run_id"]))
    stored: set[tuple[str, ...]] = set()
    for i in range(0, len(ids), 500):
        q = sa.select(*(runs_t.c[k] for k in RUN_KEY)).where(runs_t.c.scoring_run_id.in_(ids[i:i + 500]))
        stored |= {tuple(str(v) for v in row) for row in conn.execute(q)}
    new = _new_only(rows, stored)
    _insert_rows(conn, runs_t, RUN_COLUMNS, _bind_rows(new.runs, RUN_COLUMNS, dialect))
    stage("runs_inserted")
    _insert_rows(conn, metrics_t, METRIC_COLUMNS, _bind_rows(new.metrics, METRIC_COLUMNS, dialect))
    stage("metrics_inserted")
    return MonitorWriteResult(len(new.runs), len(new.metrics), len(rows.runs) - len(new.runs))


def _write_sql(url: str, rows: MonitorRows, lock_timeout_s: float,
               stage: Callable[[str], None]) -> MonitorWriteResult:
    md = sa.MetaData()
    runs_t, metrics_t = tables(md)
    eng = _write_engine(url, lock_timeout_s)
    try:
        with eng.begin() as conn:
            _lock_sql(conn, eng.dialect.name, lock_timeout_s, url)
            md.create_all(conn, checkfirst=True)
            stage("locked")
            result = insert_in_transaction(conn, rows, runs_t, metrics_t, stage)
            stage("committing")
    except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
        raise WriteBackError(f"Monitoring write to {_safe(url)} failed and was rolled back (nothing stored): "
                             f"{str(exc.orig).splitlines()[0]}") from exc
    finally:
        eng.dispose()
    return result


def _write_folder(location: Path, rows: MonitorRows, lock_timeout_s: float) -> MonitorWriteResult:
    if not location.is_dir():
        raise WriteBackError(f"Extract folder {location} does not exist; monitoring is stored beside its scores.")
    folder = location / _SCORES_DIR
    folder.mkdir(exist_ok=True)
    with _folder_lock(folder, lock_timeout_s):
        old_runs = _read_folder(location, _RUNS)
        old_metrics = _read_folder(location, _METRICS)
        new = _new_only(rows, _keys(old_runs))
        tmps: list[Path] = []
        try:
            metrics = pd.concat([old_metrics, new.metrics], ignore_index=True).drop_duplicates(
                list(_METRICS.primary_key), keep="first")
            tmps.append(tmp_m := _write_parquet_tmp(metrics, folder, METRICS_TABLE))
            tmps.append(tmp_r := _write_parquet_tmp(pd.concat([old_runs, new.runs], ignore_index=True), folder,
                                                    RUNS_TABLE))
            os.replace(tmp_m, folder / f"{METRICS_TABLE}.parquet")
            os.replace(tmp_r, folder / f"{RUNS_TABLE}.parquet")
            _fsync_dir(folder)
        finally:
            for t in tmps:
                t.unlink(missing_ok=True)
    return MonitorWriteResult(len(new.runs), len(new.metrics), len(rows.runs) - len(new.runs))


def _read_folder(location: Path, schema) -> pd.DataFrame:
    path = location / _SCORES_DIR / f"{schema.name}.parquet"
    if not path.exists():
        return _normalise(pd.DataFrame({c: [] for c in schema.column_names}), schema)
    return _normalise(pd.read_parquet(path), schema)


def write_monitoring(location: str | os.PathLike, runs: pd.DataFrame, metrics: pd.DataFrame, *,
                     lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
                     on_stage: Callable[[str], None] | None = None) -> MonitorWriteResult:
    """Store the monitored runs not stored yet, with their metrics, atomically.

    Parameters
    ----------
    location : SQLAlchemy URL of the CRM database, or the path of a folder extract.
    runs : rows with :data:`RUN_COLUMNS`; metrics : rows with :data:`METRIC_COLUMNS`, each of a run in ``runs``.
    lock_timeout_s : how long to wait for a write-back or another monitoring write.
    on_stage : called with each name of :data:`STAGES` inside the SQL transaction (tests kill there).

    Returns
    -------
    MonitorWriteResult : what was inserted; runs already stored are counted, not rewritten.
    """
    rows = prepare(runs, metrics)
    stage = on_stage or (lambda _s: None)
    if _is_url(location):
        return _write_sql(str(location), rows, lock_timeout_s, stage)
    return _write_folder(Path(location), rows, lock_timeout_s)


def read_monitor_runs(location: str | os.PathLike, *, model: str | None = None) -> pd.DataFrame:
    """``crm_monitor_runs`` (optionally one model), sorted by (model, as_of, stage); empty when nothing is stored."""
    df = _read_table(location, _RUNS, {"model": model})
    return df.sort_values(["model", "as_of", "stage", "scoring_run_id"], ignore_index=True)


def read_monitor_metrics(location: str | os.PathLike, *, model: str | None = None,
                         section: str | None = None) -> pd.DataFrame:
    """``crm_monitor_metrics`` (optionally one model / section), sorted by run then figure; deduplicated on its key."""
    df = _read_table(location, _METRICS, {"model": model, "section": section})
    df = df.drop_duplicates(list(_METRICS.primary_key), keep="first")
    return df.sort_values(["model", "as_of", "stage", "section", "subject", "metric"], ignore_index=True)


def monitor_series(location: str | os.PathLike, model: str) -> dict[str, pd.DataFrame]:
    """Tidy time series of one model for the report, one read of each table.

    Returns
    -------
    ``runs``: one row per (run, stage) with status, reasons, blocked, accepted_by; ``features``: one row per (run,
    feature) with label, psi, psi_excess, p_adjusted, status, reason, rank; ``score``: one row per run with the score
    health figures as columns; ``realized``: one row per matured run with the realized metrics and coverage as
    columns; ``estimated``: one row per run with the estimate (value, low, high per figure) and its grade once
    matured. Every frame carries scoring_run_id, model_version and as_of, sorted by as_of.
    """
    runs = read_monitor_runs(location, model=model)
    metrics = read_monitor_metrics(location, model=model)
    ids = ["scoring_run_id", "model_version", "as_of"]

    def wide(section: str | tuple[str, ...], index: list[str]) -> pd.DataFrame:
        part = metrics.loc[metrics["section"].isin([section] if isinstance(section, str) else section)]
        if part.empty:
            return pd.DataFrame(columns=index)
        values = part.assign(v=part["value"].astype(object).where(part["value"].notna(), part["text"]))
        out = values.pivot_table(index=index, columns="metric", values="v", aggfunc="first").reset_index()
        out.columns.name = None
        return out.sort_values(["as_of", *index[3:]], ignore_index=True)

    return {
        "runs": runs,
        "features": wide("feature", [*ids, "subject"]).rename(columns={"subject": "feature"}),
        "score": wide("score", ids),
        "realized": wide(("realized", "coverage"), ids),
        "estimated": wide(("estimated", "grade"), ids),
    }
