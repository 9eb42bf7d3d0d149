"""Where a CRM lives, and opening it for reading without ever creating or changing it.

A CRM location is either a SQLAlchemy URL (``sqlite:///path/crm.db``, ``postgresql+psycopg://user@host/db``) or a
folder of ``<table>.csv`` / ``<table>.parquet`` files. Readers go through :func:`read_connection` or
:func:`existing_folder`: a SQLite file is opened read-only (``mode=ro``) after checking that it exists, because
SQLite would otherwise create an empty database at a mistyped path (read-write, ``mode=rw``, only to roll back a
transaction that a killed writer left behind, as SQLite requires); a PostgreSQL session is made read-only too. A location that cannot be opened raises :class:`crm.errors.CrmNotFoundError` with one line (password redacted).
Writers (the generator, transaction import, score write-back) open their own engines and create what they need.
"""
from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import sqlalchemy as sa

from crm.errors import CrmNotFoundError

_FIRST_RUN = "check --crm (or CRMSCORE_CRM_URL), or run `crmscore generate` / `crmscore import-transactions` first"


def is_sql_url(location: str | os.PathLike) -> bool:
    return "://" in str(location)


def redact(location: str | os.PathLike) -> str:
    """The location with any password replaced by ***, safe for logs and MLflow."""
    if not is_sql_url(location):
        return str(location)
    try:
        return sa.engine.make_url(str(location)).render_as_string(hide_password=True)
    except Exception:
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", str(location))


def existing_folder(location: str | os.PathLike) -> Path:
    """The folder of a folder CRM; raises CrmNotFoundError when there is no such folder."""
    folder = Path(location)
    if not folder.is_dir():
        hint = " (for a SQLite file write sqlite:///" + str(folder) + ")" if folder.suffix in (".db", ".sqlite") else ""
        raise CrmNotFoundError(
            f"no CRM at {folder}: it is neither a SQLAlchemy URL (e.g. sqlite:///crm.db) nor an existing folder of "
            f"<table>.csv / <table>.parquet files{hint}; {_FIRST_RUN}")
    return folder


def read_only_url(location: str) -> sa.URL:
    """The URL readers open: a SQLite file as a ``mode=ro`` URI (``mode=rw`` to roll back a killed writer's journal)."""
    try:
        url = sa.make_url(location)
    except sa.exc.ArgumentError as exc:
        raise CrmNotFoundError(
            f"{redact(location)!r} is not a SQLAlchemy URL; use e.g. sqlite:///crm.db or "
            f"postgresql+psycopg://user@host/db") from exc
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or url.query.get("uri"):
        return url
    path = Path(url.database)
    if not path.is_file():
        raise CrmNotFoundError(f"no CRM at {redact(location)}: the file does not exist; {_FIRST_RUN}")
    # A journal left by a writer that was killed mid-transaction must be rolled back before anyone can read, which a
    # read-only connection may not do: then open read-write (mode=rw still never creates a file) and let SQLite
    # restore the last committed state.
    mode = "rw" if Path(f"{path}-journal").exists() else "ro"
    return url.set(database="file:" + quote(str(path.resolve())), query={**url.query, "mode": mode, "uri": "true"})


@contextlib.contextmanager
def read_connection(location: str) -> Iterator[sa.Connection]:
    """A read-only connection to the SQL CRM at ``location`` (a SQLAlchemy URL), closed and disposed afterwards.

    Raises
    ------
    CrmNotFoundError
        the SQLite file does not exist or is not a database, the URL is malformed, or the database cannot be reached.
    """
    url = read_only_url(location)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        try:
            conn = engine.connect()
            if engine.dialect.name == "sqlite":
                conn.exec_driver_sql("PRAGMA schema_version")  # fails on a file that is not a SQLite database
            elif engine.dialect.name == "postgresql":
                conn.exec_driver_sql("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        except Exception as exc:  # any driver's failure to connect: one line, never the password
            first = str(getattr(exc, "orig", None) or exc).strip().splitlines()
            raise CrmNotFoundError(
                f"cannot open the CRM at {redact(location)}: {type(exc).__name__}: {first[0] if first else ''}; "
                "check the URL (--crm or CRMSCORE_CRM_URL) and that the database is running") from exc
        with conn:
            yield conn
    finally:
        engine.dispose()
