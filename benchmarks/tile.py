"""A large CRM made affordable: a generated world copied k times into one database, with every id remapped.

The generator makes 100k accounts in about 15 minutes, so a 1M-account world by the generator is out of reach for
a benchmark. :func:`tile_sqlite` builds one from a smaller generated world instead: tile 0 is the world as it was
generated, tile i > 0 is the same rows with ``~<i>`` appended to every key column (each table's primary key and every
column named like one: ``account_id`` in leads, orders, ...), all inside the database with ``INSERT ... SELECT``.
Every reference therefore stays inside its own tile and the contract rules hold as in the generated world. What a
tiled world is not: k independent customers bases. Tile i's entities have the same events, at the same times, as
tile 0's, so the features, scores and reasons repeat k times; the row counts, the key cardinalities and the work of
reading, validating, building features, scoring and writing back are those of a world k times larger.
"""
from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from data_contracts.schema import INPUT_TABLES, table_schema

#: Appended to every key of tile i > 0 (``acc_17`` -> ``acc_17~3``); no contract pattern applies to ids.
SUFFIX = "~{i}"


def key_columns() -> frozenset[str]:
    """The id columns to remap: every input table's primary key (a column of that name is a key wherever it is)."""
    return frozenset(table_schema(t).primary_key for t in INPUT_TABLES)


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def check_free_disk(folder: Path, need_bytes: int) -> None:
    """Refuse to start a build that would fill the disk (with a 2 GiB margin for everyone else)."""
    free = shutil.disk_usage(folder).free
    if free < need_bytes + 2 * 2**30:
        raise SystemExit(f"not enough free disk in {folder}: {free / 2**30:.1f} GiB free, the tiled world needs about "
                         f"{need_bytes / 2**30:.1f} GiB (+2 GiB margin); free some space or use fewer tiles")


def tile_sqlite(base: Path, target: Path, tiles: int) -> dict[str, int]:
    """Write ``tiles`` copies of the SQLite CRM at ``base`` into a new SQLite file ``target``; return its row counts.

    Every table of ``base`` is copied with its columns (extra ones such as the generator's PII included, as a real CRM
    has them); the input tables get their key columns suffixed per tile. Indexes of ``base`` are re-created after the
    rows are in. ``target`` must not exist.
    """
    if tiles < 1:
        raise ValueError(f"tiles={tiles}: at least 1")
    if target.exists():
        raise FileExistsError(f"{target} exists; the tiled world is built into a new file")
    keys = key_columns()
    con = sqlite3.connect(f"file:{target}", uri=True)
    try:
        # A throw-away build: no journal, no fsync (the file is renamed into place only when complete).
        con.execute("PRAGMA journal_mode=OFF")
        con.execute("PRAGMA synchronous=OFF")
        con.execute("ATTACH DATABASE ? AS base", (f"file:{base}?mode=ro",))
        objects = con.execute("SELECT type, name, tbl_name, sql FROM base.sqlite_master "
                              "WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%'").fetchall()
        counts: dict[str, int] = {}
        for kind, name, _, ddl in objects:
            if kind != "table":
                continue
            con.execute(ddl)
            cols = [r[1] for r in con.execute(f"PRAGMA base.table_info({_q(name)})")]
            remap = name in INPUT_TABLES
            for i in range(tiles):
                exprs = [f"{_q(c)} || '{SUFFIX.format(i=i)}'" if remap and i > 0 and c in keys else _q(c)
                         for c in cols]
                con.execute(f"INSERT INTO main.{_q(name)} ({', '.join(map(_q, cols))}) "
                            f"SELECT {', '.join(exprs)} FROM base.{_q(name)}")
            counts[name] = con.execute(f"SELECT count(*) FROM main.{_q(name)}").fetchone()[0]
        for kind, _, _, ddl in objects:
            if kind == "index":
                con.execute(ddl)
        con.commit()
    finally:
        con.close()
    return counts
