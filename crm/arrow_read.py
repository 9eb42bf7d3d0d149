"""Reading SQL tables into Arrow with the ADBC drivers (SQLite, PostgreSQL): no Python object per row or value.

``pandas.read_sql_query`` builds a Python object for every value of every row before pandas sees a column; on the
activities table of a large CRM that is most of the run's reading time. The ADBC drivers hand back Arrow columns
(PostgreSQL through its binary COPY protocol, SQLite column by column in C). The resulting frame holds the same values
in the same containers that ``read_sql_query`` gives (text as ``str``, integers as int64, or float64 with NaN when
a column has nulls, reals as float64), so ``crm.extract.conform`` sets the contract types once, exactly as before.

Rules kept from ``crm.connection``: a SQLite file is opened read-only (the same ``mode=ro``/``mode=rw`` URI that
``read_connection`` builds, after it checked that the file exists), a PostgreSQL session is read-only. SQLite
stores any type in any column: the driver infers each column's type from the values of its first batch, so the
batch is made larger than any table (every value is seen; an integer column with a real becomes double, with text
becomes string). When the driver refuses a table anyway, or the ADBC packages are not installed, or the URL is one
ADBC cannot open, :func:`open_arrow_reader` / :meth:`ArrowSqlReader.read` return None and the caller reads that
table the old way (same result, slower).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence

import pandas as pd

from crm.connection import read_only_url, redact

log = logging.getLogger("crmscore.extract")

#: Rows per batch of the SQLite driver: one batch per table, so that type inference sees every value.
_SQLITE_BATCH_ROWS = 1 << 30


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class ArrowSqlReader:
    """One read-only ADBC connection; :meth:`read` gives a table's columns as a DataFrame (or None: read it another way)."""

    def __init__(self, connection, dialect: str, location: str):
        self._conn = connection
        self.dialect = dialect
        self._location = location

    def read(self, table: str, cols: Sequence[str]) -> pd.DataFrame | None:
        query = f"SELECT {', '.join(map(_quoted, cols))} FROM {_quoted(table)}"
        try:
            with self._conn.cursor() as cur:
                if self.dialect == "sqlite":
                    cur.adbc_statement.set_options(**{"adbc.sqlite.query.batch_rows": str(_SQLITE_BATCH_ROWS)})
                cur.execute(query)
                arrow = cur.fetch_arrow_table()
        except Exception as exc:  # the driver's refusal (e.g. a type it cannot infer): the caller falls back
            log.info(f"table {table!r} at {self._location}: the Arrow reader refused it "
                     f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); reading it row by row")
            return None
        # Arrow's buffers are released column by column as pandas takes them: the table is not held twice at the peak
        return arrow.to_pandas(self_destruct=True, split_blocks=True)

    def close(self) -> None:
        self._conn.close()


def open_arrow_reader(location: str) -> ArrowSqlReader | None:
    """A read-only ADBC connection to the SQL CRM at ``location``, or None when ADBC cannot serve it.

    Call it after ``crm.connection.read_connection`` succeeded on the same location (that is where a missing file or
    an unreachable server becomes ``CrmNotFoundError``, and where SQLite rolls back a journal a killed writer left).
    """
    url = read_only_url(location)
    backend = url.get_backend_name()
    try:
        if backend == "sqlite":
            import adbc_driver_sqlite.dbapi as driver

            mode = url.query.get("mode")
            if mode not in ("ro", "rw"):  # in-memory, or a URI the user wrote: read it the old way
                return None
            uri = f"{url.database}?mode={mode}"
            conn = driver.connect(uri, autocommit=True)
        elif backend == "postgresql":
            import adbc_driver_postgresql.dbapi as driver

            libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
            conn = driver.connect(libpq, autocommit=True)
            with conn.cursor() as cur:
                cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        else:
            return None
    except ImportError:
        log.info("the ADBC drivers are not installed (pip install -c constraints.txt -e .): reading row by row")
        return None
    except Exception as exc:  # a URL that SQLAlchemy's driver opens but libpq/ADBC does not: the old way still works
        log.info(f"the Arrow reader cannot open {redact(location)} ({type(exc).__name__}); reading row by row")
        return None
    return ArrowSqlReader(conn, backend, redact(location))
