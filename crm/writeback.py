"""Write scores back into the CRM, atomically, and read them again.

Contract (``shared/crm_data_model.md``, "What the pipeline writes back"):

- ``crm_scores``: the current score of every scored record, one row per (entity_type, entity_id,
  model); replaced as a whole by each scoring run.
- ``crm_scores_history``: every row ever written there, append-only for audit. Re-running the same
  as-of date replaces that date's rows (one run per as_of), so retries never duplicate.

Both tables hold exactly the contract's columns (:data:`SCORE_COLUMNS`). Value at risk (churn
probability x CLV) is not a contract model and the contract fixes the columns of ``crm_scores``, so it
goes to its own table ``crm_value_at_risk`` (:data:`VALUE_AT_RISK_COLUMNS`, one row per account,
replaced as a whole in the same transaction; its history is derivable from the churn and clv rows of
``crm_scores_history``).

The three tables are declared as ODCS output contracts (``data_contracts/crm_scores.yaml``,
``crm_scores_history.yaml``, ``crm_value_at_risk.yaml``, read with ``data_contracts.schema.output_schema``):
the SQL tables (types, primary keys, nullability, indexes), the column tuples and the read-back dtypes
are built from them. The model names a run may write are the caller's (``write_scores(models=...)``):
crm/ does not know the task registry.

Where:

- ``location`` containing ``"://"`` is a SQLAlchemy URL (``sqlite:///path/crm.db``,
  ``postgresql+psycopg://...``): one transaction does delete-same-as_of history, append history,
  replace ``crm_scores`` (and ``crm_value_at_risk``). Any failure, or the process being killed, leaves
  the previous tables exactly as they were (the transaction never commits). Two runs never
  interleave: PostgreSQL takes a transaction-scoped advisory lock (polled with
  ``pg_try_advisory_xact_lock`` until ``lock_timeout_s``); SQLite starts with ``BEGIN IMMEDIATE`` and a
  busy timeout of ``lock_timeout_s``. The second run waits, then raises
  :class:`crm.errors.ScoringInProgressError`.
- otherwise ``location`` is an extract folder: files go to ``<location>/scores/``
  (``crm_scores.parquet``, ``crm_scores_history.parquet``, ``crm_value_at_risk.parquet``), each written to
  a temp file in the same folder, fsynced and ``os.replace``d, under an ``fcntl`` lock file
  ``scores/.writeback.lock`` (released by the kernel if the process dies). History is replaced before
  ``crm_scores``, so a kill between the two renames leaves the previous current scores and an
  already-complete history; re-running the same as_of repairs it.

Time: ``as_of`` and ``scored_at`` are tz-aware UTC timestamps given by the caller; nothing here reads
the clock except to measure its own duration. SQLite stores them as ISO 8601 text with ``+00:00``;
PostgreSQL as ``timestamptz``; Parquet as ``timestamp[us, UTC]``. Readers return ``datetime64[us, UTC]``.
"""
from __future__ import annotations

import contextlib
import fcntl
import math
import os
import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crm.connection import existing_folder, read_connection
from crm.errors import ScoringInProgressError, WriteBackError
from data_contracts.errors import ContractDefinitionError
from data_contracts.schema import OutputTableSchema, output_schema

SCORES_TABLE = "crm_scores"
HISTORY_TABLE = "crm_scores_history"
VALUE_AT_RISK_TABLE = "crm_value_at_risk"

_SCORES = output_schema(SCORES_TABLE)
_HISTORY = output_schema(HISTORY_TABLE)
_VALUE_AT_RISK = output_schema(VALUE_AT_RISK_TABLE)

#: Columns of crm_scores and crm_scores_history, in contract order.
SCORE_COLUMNS: tuple[str, ...] = _SCORES.column_names
#: What the caller provides per row; write_scores adds the run columns (scoring_run_id, as_of, scored_at).
INPUT_COLUMNS: tuple[str, ...] = _SCORES.input_columns
#: Columns of crm_value_at_risk (one row per scored account).
VALUE_AT_RISK_COLUMNS: tuple[str, ...] = _VALUE_AT_RISK.column_names
VALUE_AT_RISK_INPUT: tuple[str, ...] = _VALUE_AT_RISK.input_columns

ENTITY_TYPES = ("account", "lead")

DEFAULT_LOCK_TIMEOUT_S = 60.0
_POLL_S = 0.1

#: Stages reported to ``on_stage`` during a SQL write, in order (all inside the transaction).
STAGES = ("locked", "history_deleted", "history_inserted", "scores_deleted", "scores_inserted", "committing")
#: Stages reported during a folder write, in order ("history_replaced": history renamed, crm_scores not yet).
FOLDER_STAGES = ("locked", "files_written", "history_replaced", "replaced")

_SCORES_DIR = "scores"
_LOCK_FILE = ".writeback.lock"


@dataclass(frozen=True)
class WriteResult:
    """What one write-back did.

    ``history_rows_replaced``: rows of earlier runs with the same as_of that were deleted from history.
    """

    location: str
    kind: str  # "sql" or "folder"
    scoring_run_id: str
    as_of: pd.Timestamp
    rows_written: int
    history_rows_replaced: int
    value_at_risk_rows: int
    seconds: float


# ---------------------------------------------------------------------------------------------
# Validation and shaping (pure)
# ---------------------------------------------------------------------------------------------
def _utc(ts: pd.Timestamp | str, name: str) -> pd.Timestamp:
    t = pd.Timestamp(ts)
    if t.tzinfo is None:
        raise WriteBackError(f"{name}={t!s} has no time zone; pass a tz-aware UTC timestamp (e.g. pd.Timestamp(..., tz='UTC')).")
    return t.tz_convert("UTC").as_unit("us")


def _allowed_models(models: Collection[str]) -> tuple[str, ...]:
    """The caller's model names, checked: a non-empty collection of non-empty strings."""
    if isinstance(models, str) or not isinstance(models, Collection):
        raise WriteBackError(
            f"models must be a collection of model names (e.g. tuple(models.tasks.TASKS)); got {models!r}.")
    names = tuple(models)
    if not names or not all(isinstance(m, str) and m for m in names):
        raise WriteBackError(
            f"models must name at least one model, each a non-empty string (e.g. tuple(models.tasks.TASKS)); "
            f"got {names!r}.")
    return names


def _as_dtype(s: pd.Series, logical_type: str, errors: str = "raise") -> pd.Series:
    """One column in the canonical dtype of its contract type (docs/architecture.md).

    ``errors="coerce"`` turns unreadable numbers into missing values (the caller then reports them).
    """
    if logical_type == "string":
        return s.astype("str")
    if logical_type == "number":
        return pd.to_numeric(s, errors=errors).astype("float64")
    if logical_type == "integer":
        return pd.to_numeric(s, errors=errors).astype("Int64")
    if logical_type == "timestamp":
        return _parse_ts(s)
    raise ContractDefinitionError(
        f"output contract type {logical_type!r} has no write-back dtype; "
        "expected string, number, integer or timestamp.")


def _conform(frame: pd.DataFrame, schema: OutputTableSchema, run: Mapping[str, object], errors: str) -> pd.DataFrame:
    """The table's rows: the caller's input columns in canonical dtypes, the run columns set from ``run``."""
    frame = frame.reset_index(drop=True)
    out: dict[str, pd.Series] = {}
    for c in schema.columns:
        if c.name in schema.run_columns:
            dtype = "datetime64[us, UTC]" if c.logical_type == "timestamp" else "str"
            out[c.name] = pd.Series(run[c.name], index=frame.index, dtype=dtype)
        else:
            out[c.name] = _as_dtype(frame[c.name], c.logical_type, errors)
    return pd.DataFrame(out, index=frame.index)


def _require_columns(frame: pd.DataFrame, schema: OutputTableSchema, what: str, hint: str = "") -> None:
    missing = [c for c in schema.input_columns if c not in frame.columns]
    if missing:
        raise WriteBackError(f"{what} is missing column(s) {missing}; expected {list(schema.input_columns)}{hint}.")


def _prepare_scores(scores: pd.DataFrame, run: Mapping[str, object], models: tuple[str, ...]) -> pd.DataFrame:
    """Validate the caller's frame and return it with the contract columns, canonical dtypes.

    ``run`` holds the values of the run columns (scoring_run_id, as_of, scored_at).
    """
    _require_columns(scores, _SCORES, "scores", f" ({', '.join(_SCORES.run_columns[:-1])} and "
                                                f"{_SCORES.run_columns[-1]} are added by write_scores)")
    df = _conform(scores, _SCORES, run, errors="coerce")
    raw = scores.reset_index(drop=True)
    for c in _SCORES.columns:
        if not c.required or c.name in _SCORES.run_columns:
            continue
        if c.logical_type == "number":
            bad = int((~np.isfinite(df[c.name].to_numpy())).sum())
        else:
            bad = int(raw[c.name].isna().sum())
        if bad:
            raise WriteBackError(
                f"scores.{c.name} has {bad} missing (or non-finite) value(s); every scored row needs one.")
    for col, allowed in (("entity_type", ENTITY_TYPES), ("model", models)):
        wrong = sorted(set(df[col].unique()) - set(allowed))
        if wrong:
            raise WriteBackError(f"scores.{col} has unknown value(s) {wrong[:5]}. Possible values are: {list(allowed)}.")
    pct = df["score_percentile"]
    if ((pct < 1) | (pct > 100)).any():
        raise WriteBackError("scores.score_percentile must be within 1..100 (see models.bands.percentiles).")
    key = list(_SCORES.primary_key)
    dup = df.duplicated(key)
    if dup.any():
        first = df.loc[dup, key].iloc[0].tolist()
        raise WriteBackError(
            f"scores has {int(dup.sum())} duplicate ({', '.join(key)}) key(s), e.g. {first}; "
            f"{SCORES_TABLE} holds one row per key."
        )
    return df


def _prepare_value_at_risk(var: pd.DataFrame | None, run: Mapping[str, object]) -> pd.DataFrame:
    if var is None:
        var = pd.DataFrame({c: [] for c in VALUE_AT_RISK_INPUT})
    _require_columns(var, _VALUE_AT_RISK, "value_at_risk")
    df = _conform(var, _VALUE_AT_RISK, run, errors="raise")
    key = list(_VALUE_AT_RISK.primary_key)
    if df[key].isna().any().any() or df.duplicated(key).any():
        raise WriteBackError(f"value_at_risk needs one row per ({', '.join(key)}), none missing.")
    return df


# ---------------------------------------------------------------------------------------------
# SQL
# ---------------------------------------------------------------------------------------------
def _is_url(location: str | os.PathLike) -> bool:
    return "://" in str(location)


def _ts_type() -> sa.types.TypeEngine:
    # SQLite has no timestamp type: keep ISO 8601 text (the contract's SQLite convention) and bind strings ourselves.
    return sa.DateTime(timezone=True).with_variant(sa.Text(), "sqlite")


def _sql_type(logical_type: str) -> sa.types.TypeEngine:
    if logical_type == "string":
        return sa.Text()
    if logical_type == "number":
        return sa.Float(53)
    if logical_type == "integer":
        return sa.Integer()
    if logical_type == "timestamp":
        return _ts_type()
    raise ContractDefinitionError(
        f"output contract type {logical_type!r} has no SQL type; expected string, number, integer or timestamp.")


def _sql_table(md: sa.MetaData, schema: OutputTableSchema) -> sa.Table:
    """The table of an output contract: its columns, nullability, primary key and single-column indexes."""
    columns = [sa.Column(c.name, _sql_type(c.logical_type), nullable=not c.required) for c in schema.columns]
    key = [sa.PrimaryKeyConstraint(*schema.primary_key)] if schema.primary_key else []
    indexes = [sa.Index(f"ix_{schema.name}_{c}", c) for c in schema.indexes]
    return sa.Table(schema.name, md, *columns, *key, *indexes)


def _metadata() -> tuple[sa.MetaData, sa.Table, sa.Table, sa.Table]:
    # One bound row set is inserted into both score tables: their contracts must declare the same columns.
    if _HISTORY.columns != _SCORES.columns:
        raise ContractDefinitionError(
            f"contracts {HISTORY_TABLE} and {SCORES_TABLE} declare different columns "
            f"({list(_HISTORY.column_names)} vs {list(_SCORES.column_names)}); "
            f"history holds the rows of {SCORES_TABLE}.")
    md = sa.MetaData()
    return md, _sql_table(md, _SCORES), _sql_table(md, _HISTORY), _sql_table(md, _VALUE_AT_RISK)


def _write_engine(url: str, lock_timeout_s: float) -> sa.Engine:
    u = sa.make_url(url)
    if u.get_backend_name() == "sqlite":
        # The busy timeout is how long BEGIN IMMEDIATE waits for another writer before "database is locked".
        eng = sa.create_engine(u, connect_args={"timeout": lock_timeout_s}, poolclass=sa.pool.NullPool)

        @sa.event.listens_for(eng, "connect")
        def _no_driver_tx(dbapi_conn, _rec):  # pysqlite's own BEGIN would be deferred; we issue ours
            dbapi_conn.isolation_level = None

        @sa.event.listens_for(eng, "begin")
        def _begin_immediate(conn):
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        return eng
    return sa.create_engine(u, poolclass=sa.pool.NullPool)


def _bind_rows(df: pd.DataFrame, columns: tuple[str, ...], dialect: str) -> list[tuple]:
    """Rows as tuples of plain Python values (None for missing), in ``columns`` order."""
    cols: list[list] = []
    for c in columns:
        s = df[c]
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            # Convert each distinct timestamp once (as_of and scored_at are constant within a run).
            codes, uniq = pd.factorize(s)
            conv = [v.isoformat() if dialect == "sqlite" else v.to_pydatetime() for v in uniq] + [None]
            vals = [conv[k] for k in codes.tolist()]  # code -1 (missing) picks the trailing None
        elif str(s.dtype) == "Int64":
            vals = [None if v is pd.NA else int(v) for v in s.to_numpy(dtype=object)]
        elif s.dtype == np.float64:
            vals = [None if math.isnan(v) else v for v in s.tolist()]
        else:
            vals = [None if (v is None or (isinstance(v, float) and math.isnan(v))) else v for v in s.tolist()]
        cols.append(vals)
    return list(zip(*cols))


def _insert_rows(conn: sa.Connection, table: sa.Table, columns: tuple[str, ...], rows: list[tuple]) -> None:
    """Bulk insert inside the caller's transaction.

    PostgreSQL: ``COPY ... FROM STDIN`` on the same psycopg connection (several times faster than
    executemany). SQLite: the driver's executemany on a prepared statement. Others: SQLAlchemy executemany.
    """
    if not rows:
        return
    dialect = conn.dialect.name
    if dialect == "postgresql" and conn.dialect.driver == "psycopg":
        import psycopg  # the driver of this dialect, so it is installed

        statement = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
        cur = conn.connection.driver_connection.cursor()
        try:
            with cur.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
        except psycopg.IntegrityError as exc:  # bypassed SQLAlchemy: wrap like it would
            raise sa.exc.IntegrityError(statement, None, exc) from exc
        except psycopg.Error as exc:
            raise sa.exc.OperationalError(statement, None, exc) from exc
        finally:
            cur.close()
    elif dialect == "sqlite":
        conn.exec_driver_sql(
            f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", rows
        )
    else:
        conn.execute(sa.insert(table), [dict(zip(columns, r)) for r in rows])


def _lock_sql(conn: sa.Connection, dialect: str, lock_timeout_s: float, location: str) -> None:
    """Serialise write-backs. SQLite: already held (BEGIN IMMEDIATE). PostgreSQL: advisory xact lock, polled."""
    if dialect == "sqlite":
        return
    if dialect == "postgresql":
        deadline = time.monotonic() + lock_timeout_s
        stmt = sa.text("select pg_try_advisory_xact_lock(hashtext(current_schema() || '.crm_scores'))")
        while not conn.execute(stmt).scalar():
            if time.monotonic() >= deadline:
                raise ScoringInProgressError(
                    f"Another scoring run is writing scores to {_safe(location)} (its lock is held); waited "
                    f"{lock_timeout_s:g} s. Let it finish, or raise the write-back lock timeout."
                )
            time.sleep(_POLL_S)
        return
    # Other databases: a table lock is the portable choice where supported.
    conn.execute(sa.text(f"LOCK TABLE {SCORES_TABLE} IN EXCLUSIVE MODE"))


def _safe(location: str) -> str:
    """The location without a password, for messages."""
    if _is_url(location):
        with contextlib.suppress(Exception):
            return sa.make_url(location).render_as_string(hide_password=True)
    return str(location)


def _write_sql(
    url: str,
    df: pd.DataFrame,
    var: pd.DataFrame,
    as_of: pd.Timestamp,
    lock_timeout_s: float,
    on_stage: Callable[[str], None] | None,
    monitoring: Any = None,
) -> tuple[int, int]:
    stage = on_stage or (lambda _s: None)
    md, scores_t, history_t, var_t = _metadata()
    if monitoring is not None:
        from crm import monitor_store

        runs_t, metrics_t = monitor_store.tables(md)
    eng = _write_engine(url, lock_timeout_s)
    dialect = eng.dialect.name
    # Bind values before taking the lock: the lock is held only for the database work.
    rows = _bind_rows(df, SCORE_COLUMNS, dialect)
    var_rows = _bind_rows(var, VALUE_AT_RISK_COLUMNS, dialect)
    try:
        with eng.begin() as conn:
            _lock_sql(conn, dialect, lock_timeout_s, url)
            # Created inside the locked transaction, so two first runs cannot race on DDL.
            md.create_all(conn, checkfirst=True)
            stage("locked")
            as_of_bind = as_of.isoformat() if dialect == "sqlite" else as_of.to_pydatetime()
            replaced = conn.execute(sa.delete(history_t).where(history_t.c.as_of == as_of_bind)).rowcount
            stage("history_deleted")
            _insert_rows(conn, history_t, SCORE_COLUMNS, rows)
            stage("history_inserted")
            conn.execute(sa.delete(scores_t))
            conn.execute(sa.delete(var_t))
            stage("scores_deleted")
            _insert_rows(conn, scores_t, SCORE_COLUMNS, rows)
            _insert_rows(conn, var_t, VALUE_AT_RISK_COLUMNS, var_rows)
            stage("scores_inserted")
            if monitoring is not None:
                monitor_store.insert_in_transaction(conn, monitoring, runs_t, metrics_t, stage)
            stage("committing")
    except sa.exc.IntegrityError as exc:
        raise WriteBackError(
            f"Write-back to {_safe(url)} violated a constraint and was rolled back (previous scores kept): "
            f"{str(exc.orig).splitlines()[0]}"
        ) from exc
    except sa.exc.OperationalError as exc:
        if dialect == "sqlite" and "database is locked" in str(exc):
            raise ScoringInProgressError(
                f"Another scoring run is writing scores to {_safe(url)} (the database is locked); waited "
                f"{lock_timeout_s:g} s. Let it finish, or raise the write-back lock timeout."
            ) from exc
        raise WriteBackError(
            f"Write-back to {_safe(url)} failed and was rolled back (previous scores kept): "
            f"{str(exc.orig).splitlines()[0]}"
        ) from exc
    finally:
        eng.dispose()
    return int(replaced or 0), len(var)


# ---------------------------------------------------------------------------------------------
# Folder
# ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def _folder_lock(folder: Path, lock_timeout_s: float) -> Iterator[None]:
    path = folder / _LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + lock_timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ScoringInProgressError(
                        f"Another scoring run is writing scores to {folder} (lock file {path} is held); waited "
                        f"{lock_timeout_s:g} s. Let it finish, or raise the write-back lock timeout."
                    ) from None
                time.sleep(_POLL_S)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def _write_parquet_tmp(df: pd.DataFrame, folder: Path, name: str) -> Path:
    tmp = folder / f".{name}.tmp-{os.getpid()}"
    df.to_parquet(tmp, index=False)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_folder(
    location: Path,
    df: pd.DataFrame,
    var: pd.DataFrame,
    as_of: pd.Timestamp,
    lock_timeout_s: float,
    on_stage: Callable[[str], None] | None,
) -> tuple[int, int]:
    stage = on_stage or (lambda _s: None)
    if not location.is_dir():
        raise WriteBackError(f"Extract folder {location} does not exist; write-back needs the folder the extract was read from.")
    folder = location / _SCORES_DIR
    folder.mkdir(exist_ok=True)
    with _folder_lock(folder, lock_timeout_s):
        stage("locked")
        for stale in folder.glob(".*.tmp-*"):  # left by a killed run; we hold the lock, so none is live
            stale.unlink(missing_ok=True)
        hist_path = folder / f"{HISTORY_TABLE}.parquet"
        replaced = 0
        if hist_path.exists():
            old = _normalise(pd.read_parquet(hist_path), _HISTORY)
            same = old["as_of"] == as_of
            replaced = int(same.sum())
            hist = pd.concat([old.loc[~same], df], ignore_index=True) if len(old) else df
        else:
            hist = df
        tmps: list[Path] = []
        try:
            tmps.append(tmp_hist := _write_parquet_tmp(hist, folder, HISTORY_TABLE))
            tmps.append(tmp_var := _write_parquet_tmp(var, folder, VALUE_AT_RISK_TABLE))
            tmps.append(tmp_scores := _write_parquet_tmp(df, folder, SCORES_TABLE))
            stage("files_written")
            # History first: a kill between the renames leaves the previous current scores (never a mix).
            os.replace(tmp_hist, hist_path)
            stage("history_replaced")
            os.replace(tmp_var, folder / f"{VALUE_AT_RISK_TABLE}.parquet")
            os.replace(tmp_scores, folder / f"{SCORES_TABLE}.parquet")
            _fsync_dir(folder)
        finally:
            for t in tmps:
                t.unlink(missing_ok=True)  # no-op after a successful rename
        stage("replaced")
    return replaced, len(var)


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------
def write_scores(
    location: str | os.PathLike,
    scores: pd.DataFrame,
    *,
    scoring_run_id: str,
    as_of: pd.Timestamp,
    scored_at: pd.Timestamp,
    models: Collection[str],
    value_at_risk: pd.DataFrame | None = None,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
    allow_empty: bool = False,
    on_stage: Callable[[str], None] | None = None,
    monitoring: tuple[pd.DataFrame, pd.DataFrame] | None = None,
) -> WriteResult:
    """Replace the current scores and append them to history, atomically.

    Parameters
    ----------
    location : SQLAlchemy URL of the CRM database, or the path of a folder extract.
    scores : one row per (entity_type, entity_id, model) of this run, with :data:`INPUT_COLUMNS`
        (``reasons`` JSON text, ``reason_text`` a sentence; both may be missing).
    scoring_run_id : the id shared by all rows of this run.
    as_of : T, the cutoff the scores were computed at (tz-aware UTC). History rows of any earlier
        run with the same as_of are replaced by this run's rows.
    scored_at : when the run wrote them (tz-aware UTC; read once from the clock by the caller).
    models : the model names a row's ``model`` may take (the caller's task registry, e.g.
        ``tuple(models.tasks.TASKS)``); a row of any other model is refused.
    value_at_risk : optional rows (entity_type, entity_id, churn_probability, clv, value_at_risk) for
        ``crm_value_at_risk``; that table is replaced as a whole too (emptied when None).
    lock_timeout_s : how long to wait for another write-back to finish before raising
        :class:`ScoringInProgressError`.
    allow_empty : an empty ``scores`` would empty ``crm_scores``; refused unless True (an upstream
        failure that yields no rows must not wipe the CRM's scores).
    on_stage : called with each stage name of :data:`STAGES` (folder: :data:`FOLDER_STAGES`) inside the transaction (progress
        reporting; tests use it to fail or kill at a chosen point).
    monitoring : optional (runs, metrics) rows of ``crm_monitor_runs`` / ``crm_monitor_metrics``
        (``crm.monitor_store``): inserted in the same transaction as the scores (SQL), or right after them (folder).

    Returns
    -------
    WriteResult

    Raises
    ------
    WriteBackError : invalid scores, a constraint violation (rolled back), an unreachable location.
    ScoringInProgressError : another run held the lock for longer than ``lock_timeout_s``.
    """
    start = time.perf_counter()
    allowed = _allowed_models(models)
    if len(scores) == 0 and not allow_empty:
        raise WriteBackError(
            f"scores is empty: writing it would empty crm_scores at {_safe(str(location))}. "
            "Nothing was written; pass allow_empty=True if that is intended."
        )
    as_of_u = _utc(as_of, "as_of")
    scored_u = _utc(scored_at, "scored_at")
    if not isinstance(scoring_run_id, str) or not scoring_run_id:
        raise WriteBackError(f"scoring_run_id must be a non-empty string; got {scoring_run_id!r}.")
    run = {"scoring_run_id": scoring_run_id, "as_of": as_of_u, "scored_at": scored_u}
    df = _prepare_scores(scores, run, allowed)
    var = _prepare_value_at_risk(value_at_risk, run)
    rows = None
    if monitoring is not None:
        from crm import monitor_store

        rows = monitor_store.prepare(*monitoring)
    if _is_url(location):
        replaced, n_var = _write_sql(str(location), df, var, as_of_u, lock_timeout_s, on_stage, rows)
        kind = "sql"
    else:
        replaced, n_var = _write_folder(Path(location), df, var, as_of_u, lock_timeout_s, on_stage)
        kind = "folder"
        if rows is not None:
            monitor_store.write_monitoring(location, rows.runs, rows.metrics, lock_timeout_s=lock_timeout_s)
    return WriteResult(
        location=_safe(str(location)),
        kind=kind,
        scoring_run_id=scoring_run_id,
        as_of=as_of_u,
        rows_written=len(df),
        history_rows_replaced=replaced,
        value_at_risk_rows=n_var,
        seconds=time.perf_counter() - start,
    )


def _parse_ts(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.DatetimeTZDtype):
        return s.dt.tz_convert("UTC").astype("datetime64[us, UTC]")
    return pd.to_datetime(s, utc=True, format="ISO8601").astype("datetime64[us, UTC]")


def _normalise(df: pd.DataFrame, schema: OutputTableSchema, columns: tuple[str, ...] | None = None) -> pd.DataFrame:
    """The contract columns (or the given ones, in contract order) in canonical dtypes: text `str`, numbers float64,
    integers Int64, timestamps datetime64[us, UTC] (a column the stored table lacks is all missing)."""
    out = pd.DataFrame(index=range(len(df)))
    df = df.reset_index(drop=True)
    for c in schema.columns:
        if columns is not None and c.name not in columns:
            continue
        s = df[c.name] if c.name in df.columns else pd.Series([None] * len(df))
        out[c.name] = _as_dtype(s, c.logical_type)
    return out


def _selected(schema: OutputTableSchema, columns: Collection[str] | None) -> tuple[str, ...]:
    if columns is None:
        return schema.column_names
    unknown = sorted(set(columns) - set(schema.column_names))
    if unknown:
        raise WriteBackError(f"{schema.name} has no column(s) {unknown}; its columns are {list(schema.column_names)}")
    return tuple(c for c in schema.column_names if c in columns)


def _read_table(location: str | os.PathLike, schema: OutputTableSchema, where: dict[str, str | None], *,
                columns: Collection[str] | None = None, isin: Mapping[str, Collection[str] | None] | None = None,
                distinct: bool = False) -> pd.DataFrame:
    """Rows of an output table: ``where`` equalities, ``isin`` memberships (None: no condition), only ``columns``
    (None: all), ``distinct`` rows only. A whole SQL table without conditions is read into Arrow (ADBC) when it can."""
    where = {k: v for k, v in where.items() if v is not None}
    isin = {k: sorted(set(v)) for k, v in (isin or {}).items() if v is not None}
    table, columns = schema.name, _selected(schema, columns)
    empty = _normalise(pd.DataFrame({c: [] for c in columns}), schema, columns)
    if _is_url(location):
        with read_connection(str(location)) as conn:  # read-only: a mistyped SQLite path raises, never creates a file
            if not sa.inspect(conn).has_table(table):
                return empty
            raw = None if (where or isin or distinct) else _read_arrow(str(location), table, columns)
            if raw is None:
                t = sa.table(table, *(sa.column(c) for c in schema.column_names))
                q = sa.select(*(t.c[c] for c in columns))
                for k, v in where.items():
                    q = q.where(t.c[k] == v)
                for k, v in isin.items():
                    q = q.where(t.c[k].in_(v))
                raw = pd.read_sql(q.distinct() if distinct else q, conn)
    else:
        path = existing_folder(location) / _SCORES_DIR / f"{table}.parquet"
        if not path.exists():
            return empty
        stored, needed = _parquet_columns(path), {*columns, *where, *isin}
        raw = pd.read_parquet(path, columns=[c for c in schema.column_names if c in needed and c in stored])
        for k, v in where.items():
            raw = raw.loc[raw[k] == v]
        for k, v in isin.items():
            raw = raw.loc[raw[k].isin(v)]
        raw = raw[[c for c in columns if c in raw.columns]]
        if distinct:
            raw = raw.drop_duplicates()
    return _normalise(raw, schema, columns)


def _read_arrow(location: str, table: str, columns: tuple[str, ...]) -> pd.DataFrame | None:
    """A whole table's columns through ADBC (no Python object per value), or None: read it row by row."""
    from crm.arrow_read import open_arrow_reader

    reader = open_arrow_reader(location)
    if reader is None:
        return None
    try:
        return reader.read(table, columns)
    finally:
        reader.close()


def _parquet_columns(path: Path) -> set[str]:
    """The column names stored in a Parquet file (without reading its data)."""
    import pyarrow.parquet as pq

    return set(pq.read_schema(path).names)


def _sorted(df: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    keys = [k for k in keys if k in df.columns]
    return df.sort_values(keys, ignore_index=True) if keys else df


def read_scores(location: str | os.PathLike, *, model: str | None = None, entity_type: str | None = None,
                columns: Collection[str] | None = None, entity_ids: Collection[str] | None = None) -> pd.DataFrame:
    """The current scores (``crm_scores``), optionally of one model / entity type / set of entity ids, optionally
    only some columns (a report over a million records reads the narrow ones, and the reasons of listed rows only).

    Returns the :data:`SCORE_COLUMNS` (or ``columns``) with canonical dtypes (timestamps UTC, reasons as JSON text),
    sorted by (model, entity_type, entity_id) as far as they are read; empty when nothing was written yet.
    """
    df = _read_table(location, _SCORES, {"model": model, "entity_type": entity_type}, columns=columns,
                     isin={"entity_id": entity_ids})
    return _sorted(df, ["model", "entity_type", "entity_id"])


def read_history(location: str | os.PathLike, *, entity_id: str | None = None, model: str | None = None,
                 columns: Collection[str] | None = None, entity_ids: Collection[str] | None = None,
                 scoring_run_ids: Collection[str] | None = None) -> pd.DataFrame:
    """The audit history (``crm_scores_history``), optionally for one entity id (or a set) / model / set of scoring
    runs, optionally only some columns.

    Sorted by (as_of, model, entity_type, entity_id) as far as they are read; empty when nothing was written yet.
    """
    df = _read_table(location, _HISTORY, {"entity_id": entity_id, "model": model}, columns=columns,
                     isin={"entity_id": entity_ids, "scoring_run_id": scoring_run_ids})
    return _sorted(df, ["as_of", "model", "entity_type", "entity_id"])


def read_scoring_runs(location: str | os.PathLike, *, history: bool = False) -> pd.DataFrame:
    """The scoring runs present in ``crm_scores`` (or ``crm_scores_history``): one row per distinct
    (scoring_run_id, as_of, scored_at), sorted by them; read with SELECT DISTINCT, not row by row."""
    cols = ["scoring_run_id", "as_of", "scored_at"]
    df = _read_table(location, _HISTORY if history else _SCORES, {}, columns=cols, distinct=True)
    return _sorted(df, ["as_of", "scored_at", "scoring_run_id"])


def read_value_at_risk(location: str | os.PathLike, *, columns: Collection[str] | None = None) -> pd.DataFrame:
    """The current value at risk per account (``crm_value_at_risk``), sorted by value_at_risk descending (``columns``:
    only those, which must include value_at_risk and entity_id)."""
    df = _read_table(location, _VALUE_AT_RISK, {}, columns=columns)
    return df.sort_values(["value_at_risk", "entity_id"], ascending=[False, True], ignore_index=True)
