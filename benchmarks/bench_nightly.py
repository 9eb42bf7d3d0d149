"""The nightly run as a user runs it: `crmscore score` end to end on a large CRM, wall time and peak memory per phase.

Run: `python -m benchmarks.run nightly [--accounts N --leads M] [--backends sqlite,postgresql] [--workdir DIR]`.

1. Champions: `crmscore generate` a training world (``--train-accounts`` / ``--train-leads``, default 20k / 20k) and
   `crmscore train` on it (all four tasks, production budget of configs/default.yaml, as benchmarks/budget.py).
2. The scored CRM: `crmscore generate` a world of ``--accounts`` / ``--leads`` (default 1M / 200k, the issue's size;
   another seed, the generator's default mix) into SQLite and, with ``--backends ...,postgresql``, into a database
   of its own on ``--pg`` (default postgresql+psycopg://postgres@127.0.0.1:5432, database crmscore_nightly).
3. `crmscore score` on a fresh copy of it (SQLite) or after dropping the score tables (PostgreSQL), each run a
   subprocess: its wall time and peak RSS (the kernel's for that child), and the ``phase ...`` lines the flow itself
   logs (``pipelines.timing.phase``: read, validate, privacy view, features, each model's scoring with reasons,
   value at risk, write-back), printed as one table per backend.

Each command runs in its own process, so the generator's memory never counts against the scoring run. With
``--workdir DIR`` the trained champions and the generated CRMs are kept and reused by the next run of the same
sizes (before/after comparisons score the very same world with the very same models).
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

AS_OF = "2026-10-01"
TRAIN_SEED = 7
SCORE_SEED = 8
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
PG_DATABASE = "crmscore_nightly"


@dataclass(frozen=True)
class Run:
    wall_s: float
    cpu_s: float
    peak_mib: float
    output: str


def _args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks.run nightly")
    p.add_argument("--accounts", type=int, default=1_000_000)
    p.add_argument("--leads", type=int, default=200_000)
    p.add_argument("--train-accounts", type=int, default=20_000)
    p.add_argument("--train-leads", type=int, default=20_000)
    p.add_argument("--backends", default="sqlite,postgresql")
    p.add_argument("--pg", default=PG_SERVER, help="PostgreSQL server URL without a database")
    p.add_argument("--workdir", type=Path, default=None, help="keep champions and CRMs here and reuse them")
    p.add_argument("--tile", type=int, default=1,
                   help="generate a world of accounts/TILE and leads/TILE and copy it TILE times with remapped ids "
                        "(benchmarks/tile.py): a 1M world without the generator's hours (SQLite)")
    known, _ = p.parse_known_args(argv)  # benchmarks.run passes the benchmark names too
    return known


def _cli(*args: str, workdir: Path) -> Run:
    """One `crmscore` command in a child process: wall time, the child's own peak RSS (wait4), its output."""
    log = workdir / "last_command.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]),
                                                        os.environ.get("PYTHONPATH", "")])}
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pipelines.cli", *args], stdout=out, stderr=subprocess.STDOUT,
                                env=env)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    text = log.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"crmscore {' '.join(args)} failed ({proc.returncode}):\n{text[-3000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, text)


def _pg_database(server: str, name: str) -> str | None:
    """A database of this benchmark's own on the server (created if absent), or None when the server is away."""
    import sqlalchemy as sa

    eng = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as c:
            if not c.execute(sa.text("select 1 from pg_database where datname = :n"), {"n": name}).first():
                c.exec_driver_sql(f'create database "{name}"')
    except sa.exc.OperationalError as exc:
        print(f"postgresql: SKIPPED ({str(exc.orig).splitlines()[0]})")
        return None
    finally:
        eng.dispose()
    return f"{server}/{name}"


def _drop_score_tables(url: str) -> None:
    import sqlalchemy as sa

    from crm.writeback import HISTORY_TABLE, SCORES_TABLE, VALUE_AT_RISK_TABLE

    eng = sa.create_engine(url)
    with eng.begin() as c:
        for t in (SCORES_TABLE, HISTORY_TABLE, VALUE_AT_RISK_TABLE):
            c.exec_driver_sql(f'drop table if exists "{t}"')
    eng.dispose()


def _phase_table(run: Run, label: str) -> None:
    from pipelines.timing import parse_phase_line

    costs = [c for c in map(parse_phase_line, run.output.splitlines()) if c is not None]
    print(f"\n{label}: `crmscore score` {run.wall_s:.1f} s wall, peak RSS {run.peak_mib:,.0f} MiB (whole process)")
    # CPU seconds say what a phase costs when other jobs share the cores (wall time then stretches, CPU time less)
    print("| phase | wall s | CPU s | CPU % | peak RSS MiB | RSS at start MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for c in costs:
        print(f"| {c.name} | {c.wall_s:.1f} | {c.wall_s * c.cpu_pct / 100:.1f} | {c.cpu_pct:.0f} | {c.peak_mib:,.0f} | "
              f"{c.start_mib:,.0f} |")
    rest = run.wall_s - sum(c.wall_s for c in costs)
    print(f"| outside the phases (imports, Prefect, settings, registry, run record) | {rest:.1f} | | | | |")
    print(f"| **total** | **{run.wall_s:.1f}** | **{run.cpu_s:.1f}** | | **{run.peak_mib:,.0f}** | |")


def _generated(accounts: int, leads: int, root: Path, common: tuple[str, ...]) -> Path:
    """The generator's world of that size in SQLite (made once per workdir)."""
    size = f"{accounts}_{leads}"
    source = root / f"crm_{size}.db"
    if not source.exists():
        r = _cli("generate", "--crm", f"sqlite:///{source}.tmp", *common, "--accounts", str(accounts),
                 "--leads", str(leads), "--seed", str(SCORE_SEED), "--as-of", AS_OF,
                 "--truth", str(root / f"truth_{size}.parquet"), workdir=root)
        Path(f"{source}.tmp").replace(source)
        print(f"scored world {accounts:,} accounts / {leads:,} leads generated into SQLite in "
              f"{r.wall_s:.1f} s, peak RSS {r.peak_mib:,.0f} MiB ({source.stat().st_size / 2**30:.2f} GiB)")
        print("\n".join(line for line in r.output.splitlines() if "│" in line))
    return source


def _sqlite_world(a: argparse.Namespace, root: Path, common: tuple[str, ...]) -> Path:
    """The scored SQLite CRM: generated, or with ``--tile K`` a generated world of 1/K the size tiled K times."""
    if a.tile <= 1:
        return _generated(a.accounts, a.leads, root, common)
    from benchmarks.tile import check_free_disk, tile_sqlite

    base = _generated(a.accounts // a.tile, a.leads // a.tile, root, common)
    target = root / f"crm_{a.accounts}_{a.leads}_tiled{a.tile}.db"
    if not target.exists():
        # the copy, the scored copy of it and the database's temporary sort space
        check_free_disk(root, 3 * a.tile * base.stat().st_size)
        tmp = Path(f"{target}.tmp")
        tmp.unlink(missing_ok=True)
        t0 = time.perf_counter()
        counts = tile_sqlite(base, tmp, a.tile)
        tmp.replace(target)
        print(f"scored world TILED: the generated {a.accounts // a.tile:,} accounts / {a.leads // a.tile:,} leads "
              f"copied {a.tile} times with remapped ids in {time.perf_counter() - t0:.1f} s "
              f"({target.stat().st_size / 2**30:.2f} GiB): " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    return target


def main(argv: list[str] | None = None) -> None:
    a = _args(sys.argv[1:] if argv is None else argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = (a.workdir or Path(tmp)).resolve()
        root.mkdir(parents=True, exist_ok=True)
        _bench(a, root)


def _bench(a: argparse.Namespace, root: Path) -> None:
    wd = root / "wd"
    cfg = root / "bench.yaml"
    cfg.write_text(f"workdir: {wd}\n")
    common = ("--config", str(cfg))
    trained = wd / f"trained_{a.train_accounts}_{a.train_leads}"
    if not trained.exists():
        train_crm = f"sqlite:///{root / 'train.db'}"
        r = _cli("generate", "--crm", train_crm, *common, "--accounts", str(a.train_accounts), "--leads",
                 str(a.train_leads), "--seed", str(TRAIN_SEED), "--as-of", AS_OF, "--truth", str(root / "train_truth.parquet"),
                 workdir=root)
        print(f"training world {a.train_accounts:,} accounts / {a.train_leads:,} leads generated in {r.wall_s:.1f} s")
        r = _cli("train", "--crm", train_crm, *common, "--as-of", AS_OF, workdir=root)
        print(f"`crmscore train`: {r.wall_s:.1f} s, peak RSS {r.peak_mib:,.0f} MiB")
        print("\n".join(line for line in r.output.splitlines() if "│" in line))
        trained.touch()
    size = f"{a.accounts}_{a.leads}"
    backends = [b.strip() for b in a.backends.split(",") if b.strip()]
    for backend in backends:
        if backend == "sqlite":
            source = _sqlite_world(a, root, common)
            crm_db = root / "scored.db"
            shutil.copyfile(source, crm_db)  # every run starts from the same CRM (no history of earlier runs)
            url = f"sqlite:///{crm_db}"
        elif backend == "postgresql":
            url = _pg_database(a.pg, f"{PG_DATABASE}_{size}")
            if url is None:
                continue
            marker = root / f"pg_{size}.done"
            if not marker.exists():
                r = _cli("generate", "--crm", url, *common, "--accounts", str(a.accounts), "--leads", str(a.leads),
                         "--seed", str(SCORE_SEED), "--as-of", AS_OF, "--truth", str(root / f"truth_{size}.parquet"),
                         workdir=root)
                print(f"scored world generated into PostgreSQL in {r.wall_s:.1f} s")
                marker.touch()
            _drop_score_tables(url)
            if a.tile > 1:
                raise SystemExit("--tile is built for SQLite only; run the PostgreSQL backend without it")
        else:
            raise SystemExit(f"unknown backend {backend!r}; possible values are sqlite, postgresql")
        r = _cli("score", "--crm", url, *common, "--as-of", AS_OF, workdir=root)
        _phase_table(r, f"{backend}, {a.accounts:,} accounts / {a.leads:,} leads")
        print("\n".join(line for line in r.output.splitlines() if line.startswith("Scoring run")))


if __name__ == "__main__":
    main()
