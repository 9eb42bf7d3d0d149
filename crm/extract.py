"""Reading and writing CRM extracts (shared/crm_data_model.md).

An extract lives either in a SQL database reached by a SQLAlchemy URL (``sqlite:///path/crm.db``,
``postgresql+psycopg://user@host/db``) or in a folder of ``<table>.csv`` / ``<table>.parquet`` files.

Only the columns named by the data contracts are ever read (the allow-list comes from
``data_contracts/*.yaml``): PII and free-text columns that an extract may carry are never loaded into memory.
Every frame comes back in the canonical dtypes of docs/architecture.md: ids and labels ``str``, timestamps
``datetime64[us, UTC]``, numbers ``float64``, integers ``Int64``, booleans ``bool`` (``boolean`` if nulls).
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa

from crm.arrow_read import open_arrow_reader
from crm.connection import existing_folder, is_sql_url, read_connection, redact
from crm.errors import ColumnTypeError, CrmNotFoundError, ExtractNotFoundError, MissingColumnsError, MissingTableError
from crm.privacy import exclude_deleted
from data_contracts.schema import INPUT_TABLES, ColumnSpec, TableSchema, input_schemas

_TRUE = {"true", "t", "1", "yes", "y"}
_FALSE = {"false", "f", "0", "no", "n"}
FOLDER_FORMATS = ("parquet", "csv")


@dataclass(frozen=True)
class Extract:
    """A CRM extract in memory: contract columns only, canonical dtypes, deleted records removed."""

    tables: Mapping[str, pd.DataFrame]
    location: str  # redacted: never holds a password
    missing_optional: tuple[str, ...] = field(default=())

    def has(self, table: str) -> bool:
        return table in self.tables

    def __getitem__(self, table: str) -> pd.DataFrame:
        try:
            return self.tables[table]
        except KeyError:
            raise MissingTableError(
                f"the extract at {self.location} has no {table!r} table; it is optional in the contract, "
                f"but this step needs it") from None

    def row_counts(self) -> dict[str, int]:
        return {t: len(df) for t, df in self.tables.items()}


def read_extract(location: str, *, tables: Iterable[str] | None = None) -> Extract:
    """Read an extract for training or scoring: strict types, deleted records and their rows removed.

    Parameters
    ----------
    location : a SQLAlchemy URL or a folder path.
    tables : restrict to these input tables (default: all the contract names).

    Raises
    ------
    ExtractNotFoundError, MissingTableError, MissingColumnsError, ColumnTypeError
    """
    raw = read_tables(location, tables=tables, strict=True)
    wanted = tuple(tables) if tables is not None else INPUT_TABLES
    missing = tuple(t for t in wanted if t not in raw)
    return Extract(tables=exclude_deleted(raw), location=redact(location), missing_optional=missing)


def read_tables(location: str, *, tables: Iterable[str] | None = None, strict: bool = True,
                arrow: bool = True, columns: Mapping[str, Iterable[str]] | None = None) -> dict[str, pd.DataFrame]:
    """Read the contract tables as they are (deleted rows included), typed, rows in primary-key order.

    ``columns`` limits a table to some of its contract columns (``{"accounts": ["account_id", "segment"]}``: a
    million-account report needs two), read as they would be in the whole table; a table not named is read whole.

    With ``strict=False`` (used by validation) a missing required column is left out of the frame instead of raising,
    so that the quality gate can report it as a failed rule; a missing required table is still left out of the dict.
    A SQL CRM is read into Arrow through ADBC (``crm.arrow_read``) unless ``arrow=False`` or the driver cannot serve
    it; both ways give the same frames (tests/integration/test_arrow_read.py).
    """
    schemas = input_schemas()
    wanted = list(tables) if tables is not None else list(INPUT_TABLES)
    unknown = [t for t in wanted if t not in schemas]
    if unknown:
        raise MissingTableError(f"unknown table(s) {unknown}; the contract's tables are {list(INPUT_TABLES)}")
    reader = _SqlReader(location, arrow=arrow) if is_sql_url(location) else _FolderReader(location)
    out: dict[str, pd.DataFrame] = {}
    try:
        for name in wanted:
            schema = schemas[name]
            present = reader.columns(name)
            if present is None:
                if schema.required and strict:
                    raise MissingTableError(
                        f"the extract at {redact(location)} has no {name!r} table, which the contract requires "
                        f"(it may be empty); add it with columns {list(schema.column_names)}")
                continue
            only = set((columns or {}).get(name) or schema.column_names)
            cols = [c for c in schema.column_names if c in present and c in only]
            missing_required = [c.name for c in schema.columns if c.required and c.name not in present
                                and c.name in only]
            if missing_required and strict:
                raise MissingColumnsError(
                    f"table {name!r} at {redact(location)} lacks required column(s) {missing_required}; found "
                    f"{sorted(present)[:20]}; rename or add them as shared/crm_data_model.md names them")
            frame = conform(reader.read(name, cols), schema, fill_missing=True, only=only)
            pk = schema.primary_key
            if pk in frame.columns and not frame[pk].is_monotonic_increasing:
                # SQL tables have no row order: primary-key order makes every source read back identically (a table
                # already in that order, as most are stored, is kept: one comparison pass instead of a sort and copy)
                frame = frame.sort_values(pk, kind="stable", ignore_index=True)
            out[name] = frame
    finally:
        reader.close()
    return out


def conform(frame: pd.DataFrame, schema: TableSchema, *, fill_missing: bool = True,
            only: Collection[str] | None = None) -> pd.DataFrame:
    """Cast a frame to the canonical dtypes of its contract; contract columns only (those in ``only``, if given), in
    contract order.

    A nullable column absent from the frame is added as all-null when ``fill_missing``; a required one stays absent
    (read_tables decides whether that is an error).
    """
    data: dict[str, pd.Series] = {}
    for spec in schema.columns:
        if only is not None and spec.name not in only:
            continue
        if spec.name in frame.columns:
            data[spec.name] = _cast(frame[spec.name], spec, schema.name)
        elif fill_missing and not spec.required:
            data[spec.name] = _cast(pd.Series([None] * len(frame), index=frame.index, dtype=object), spec, schema.name)
    return pd.DataFrame(data, index=pd.RangeIndex(len(frame)))


def _cast(s: pd.Series, spec: ColumnSpec, table: str) -> pd.Series:
    s = s.reset_index(drop=True)
    where = f"{table}.{spec.name}"
    t = spec.logical_type
    try:
        if t == "string":
            if isinstance(s.dtype, pd.StringDtype) and s.dtype == "str":
                return s  # already the canonical dtype (the Arrow read): no copy
            if pd.api.types.is_float_dtype(s) and s.dropna().mod(1).eq(0).all():
                s = s.astype("Int64")  # integer ids that came back as float because of nulls
            out = s.astype("str")
            return out.where(s.notna(), np.nan).astype("str")
        if t == "timestamp":
            if isinstance(s.dtype, pd.DatetimeTZDtype):
                out = s.dt.tz_convert("UTC")
            elif pd.api.types.is_datetime64_dtype(s):
                out = s.dt.tz_localize("UTC")
            else:
                out = _plain_utc_text(s)
                if out is None:
                    text = s.where(s.notna(), None).astype(object)
                    out = pd.to_datetime(text, utc=True, format="ISO8601")
            return out.astype("datetime64[us, UTC]")
        if t == "number":
            return pd.to_numeric(s, errors="raise").astype("float64")
        if t == "integer":
            num = pd.to_numeric(s, errors="raise")
            if (num.dropna() % 1 != 0).any():
                raise ValueError("non-integer values")
            return num.astype("Int64")
        if t == "boolean":
            if pd.api.types.is_bool_dtype(s):
                return s.astype("bool") if not s.isna().any() else s.astype("boolean")
            lowered = s.map(lambda v: v if v is None or (isinstance(v, float) and np.isnan(v)) else str(v).strip().lower())
            bad = lowered.notna() & ~lowered.isin(_TRUE | _FALSE | {"1.0", "0.0"})
            if bad.any():
                raise ValueError(f"values {sorted(set(s[bad].astype(str)))[:5]} are not booleans")
            out = lowered.map(lambda v: None if v is None or v != v else v in _TRUE or v == "1.0").astype("boolean")
            return out.astype("bool") if not out.isna().any() else out
    except (ValueError, TypeError) as exc:
        sample = s.dropna().astype(str).head(3).tolist()
        raise ColumnTypeError(
            f"column {where} should hold {t} values but could not be read as such ({exc}); sample values {sample}; "
            f"fix the extract (timestamps as ISO 8601 text, numbers without currency symbols)") from exc
    raise ColumnTypeError(f"column {where}: unknown logical type {t!r} in the contract")


#: The form write_extract gives timestamps in SQLite and CSV (UTC, whole seconds, no offset).
_PLAIN_TS = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$"


def _plain_utc_text(s: pd.Series) -> pd.Series | None:
    """Text timestamps all of the plain form ``YYYY-MM-DDThh:mm:ss`` parsed by Arrow in one pass (as UTC), or None.

    pandas' ISO 8601 parser reads each string in Python-level code; Arrow's cast is C++ and gives the same instants
    for this form. Anything else (offsets, fractions, dates only, an invalid date) returns None: the caller parses
    with pandas exactly as before, and raises what it raised before.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if not isinstance(s.dtype, pd.StringDtype) or len(s) == 0:
        return None
    arr = pa.array(s.array)  # no copy for Arrow-backed strings
    if pc.all(pc.match_substring_regex(arr, _PLAIN_TS)).as_py() is False:  # None: every value is null
        return None
    try:
        ts = pc.cast(arr, pa.timestamp("us"))
    except pa.ArrowInvalid:  # e.g. month 13: pandas says what is wrong
        return None
    return pd.Series(ts.to_numpy(zero_copy_only=False), index=s.index).dt.tz_localize("UTC")


class _SqlReader:
    def __init__(self, url: str, *, arrow: bool):
        self._open = contextlib.ExitStack()
        self.conn = self._open.enter_context(read_connection(url))  # read-only; never creates a SQLite file
        self.inspector = sa.inspect(self.conn)
        self._names = set(self.inspector.get_table_names())
        self._arrow = open_arrow_reader(url) if arrow else None  # after read_connection: its checks come first
        if self._arrow is not None:
            self._open.callback(self._arrow.close)

    def columns(self, table: str) -> set[str] | None:
        if table not in self._names:
            return None
        return {c["name"] for c in self.inspector.get_columns(table)}

    def read(self, table: str, cols: list[str]) -> pd.DataFrame:
        frame = self._arrow.read(table, cols) if self._arrow is not None else None
        if frame is not None:
            return frame
        query = sa.select(*[sa.column(c) for c in cols]).select_from(sa.table(table))
        return pd.read_sql_query(query, self.conn)

    def close(self) -> None:
        self._open.close()


class _FolderReader:
    def __init__(self, folder: str | os.PathLike):
        self.folder = existing_folder(folder)

    def _file(self, table: str) -> Path | None:
        found = [p for p in (self.folder / f"{table}.parquet", self.folder / f"{table}.csv", self.folder / f"{table}.csv.gz")
                 if p.exists()]
        if len(found) > 1:
            raise ExtractNotFoundError(
                f"folder {self.folder} holds {[p.name for p in found]} for table {table!r}; keep exactly one")
        return found[0] if found else None

    def columns(self, table: str) -> set[str] | None:
        path = self._file(table)
        if path is None:
            return None
        if path.suffix == ".parquet":
            import pyarrow.parquet as pq

            return set(pq.read_schema(path).names)
        return set(pd.read_csv(path, nrows=0).columns)

    def read(self, table: str, cols: list[str]) -> pd.DataFrame:
        path = self._file(table)
        assert path is not None  # columns() was checked first
        if path.suffix == ".parquet":
            return pd.read_parquet(path, columns=cols)
        wanted = set(cols)
        # usecols keeps PII columns out of memory; every column as text, cast by the contract afterwards.
        return pd.read_csv(path, usecols=lambda c: c in wanted, dtype=str, keep_default_na=True)[cols]

    def close(self) -> None:
        pass


def write_extract(location: str, tables: Mapping[str, pd.DataFrame], *, folder_format: str = "parquet") -> None:
    """Write tables as an extract (used by the synthetic generator and transaction import).

    Existing tables of the same names are replaced. All columns given are written (the generator includes PII columns on
    purpose, as a real extract would). SQLite and CSV get timestamps as ISO 8601 text in UTC; PostgreSQL gets
    ``timestamptz``; Parquet gets UTC timestamp columns. A SQL write happens in one transaction.
    """
    if is_sql_url(location):
        url = sa.make_url(location)
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)  # a writer creates what it needs
        engine = sa.create_engine(location)
        text_ts = engine.dialect.name == "sqlite"
        try:
            try:
                conn = engine.connect()
            except sa.exc.OperationalError as exc:  # unreachable server or a SQLite file in a missing folder
                raise CrmNotFoundError(
                    f"cannot write the CRM at {redact(location)}: {str(exc.orig).strip().splitlines()[0]}; check the "
                    "URL (--crm or CRMSCORE_CRM_URL), that the database is running and that the folder exists") from exc
            with conn, conn.begin():
                for name, df in tables.items():
                    out = _timestamps_as_text(df) if text_ts else df
                    out.to_sql(name, conn, if_exists="replace", index=False, chunksize=50_000)
        finally:
            engine.dispose()
        return
    if folder_format not in FOLDER_FORMATS:
        raise ValueError(f"folder_format={folder_format!r}; possible values are {FOLDER_FORMATS}")
    folder = Path(location)
    folder.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        for stale in (folder / f"{name}.parquet", folder / f"{name}.csv"):
            stale.unlink(missing_ok=True)
        if folder_format == "parquet":
            df.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            _timestamps_as_text(df).to_csv(folder / f"{name}.csv", index=False)


def _timestamps_as_text(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if isinstance(out[col].dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(out[col]):
            ts = out[col]
            if isinstance(ts.dtype, pd.DatetimeTZDtype):
                ts = ts.dt.tz_convert("UTC")
            out[col] = ts.dt.strftime("%Y-%m-%dT%H:%M:%S").where(ts.notna(), None)
    return out
