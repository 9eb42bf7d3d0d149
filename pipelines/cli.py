"""The ``crmscore`` command line.

Every command takes ``--crm URL_OR_FOLDER`` and ``--config FILE``; errors are one red line and a non-zero exit, never a
traceback (set CRMSCORE_DEBUG=1 to see one). Heavy libraries are imported inside commands so that ``--help`` is instant.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import click
import typer
from rich.console import Console

from pipelines.config import ConfigError, Settings, load_settings
from pipelines.runtime import configure_environment

app = typer.Typer(
    name="crmscore",
    help="Predictive CRM pipeline: churn risk, MQL/SQL lead scores and customer lifetime value, "
    "written back into the CRM with plain-language reasons.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)

CrmOpt = Annotated[Optional[str], typer.Option(
    "--crm", help="The CRM: a SQLAlchemy URL (sqlite:///crm.db, postgresql+psycopg://user@host/db) or a folder of "
    "<table>.csv/.parquet files. Default: CRMSCORE_CRM_URL, else <workdir>/crm.db.")]
ConfigOpt = Annotated[Optional[Path], typer.Option(
    "--config", help="A YAML file overlaying configs/default.yaml (partial is fine).", dir_okay=False)]
AsOfOpt = Annotated[Optional[str], typer.Option(
    "--as-of", help="The as-of date T (ISO date or timestamp, UTC). Default: now.")]


def _settings(config: Path | None, crm: str | None) -> Settings:
    settings = load_settings(config, crm=crm)
    configure_environment(settings.workdir)
    return settings


def _timestamp(text: str | None, *, option: str = "--as-of"):
    import pandas as pd

    if text is None:
        return None
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise click.BadParameter(f"{text!r} is not a date; use ISO form such as 2026-10-01", param_hint=option) from exc
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@app.command()
def generate(
    crm: CrmOpt = None,
    config: ConfigOpt = None,
    accounts: Annotated[int, typer.Option(help="Number of customer accounts.", min=1)] = 5000,
    leads: Annotated[int, typer.Option(help="Number of leads.", min=0)] = 5000,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same CRM.")] = 7,
    as_of: AsOfOpt = "2026-10-01",
    truth: Annotated[Optional[Path], typer.Option(
        help="Where to write the simulation's truth (Parquet/CSV). Kept outside the CRM.")] = None,
    folder_format: Annotated[str, typer.Option(help="For a folder CRM: parquet or csv.")] = "parquet",
) -> None:
    """Generate a synthetic CRM world (accounts, subscriptions, orders, activities, tickets, leads) with known truth."""
    settings = _settings(config, crm)
    as_of_ts = _timestamp(as_of)
    from crm.synthetic import generate_world, write_world

    truth_path = truth or settings.workdir / "truth.parquet"
    with console.status(f"Simulating {accounts:,} accounts and {leads:,} leads..."):
        world = generate_world(accounts, leads, seed, as_of_ts, horizons=settings.horizons.model_dump())
    with console.status(f"Writing the CRM to {_show(settings.crm_url)}..."):
        write_world(world, settings.crm_url, truth_path, folder_format=folder_format)
    _print_counts(world.tables, f"Generated CRM at {_show(settings.crm_url)} (as of {as_of_ts.date()})")
    console.print(f"Truth for {len(world.truth):,} scorable records: {truth_path}")


@app.command("import-transactions")
def import_transactions(
    file: Annotated[Path, typer.Argument(help="A purchase log: CSV/TXT/Parquet, one row per order line.", exists=True)],
    customer_col: Annotated[str, typer.Option(help="Column holding the customer id.")],
    date_col: Annotated[str, typer.Option(help="Column holding the order date.")],
    amount_col: Annotated[str, typer.Option(help="Column holding the line amount.")],
    margin_col: Annotated[Optional[str], typer.Option(help="Column holding the line's gross margin.")] = None,
    order_col: Annotated[Optional[str], typer.Option(help="Column holding the order/invoice id.")] = None,
    margin_rate: Annotated[float, typer.Option(help="Margin as a share of amount when there is no margin column.")] = 1.0,
    crm: CrmOpt = None,
    config: ConfigOpt = None,
    folder_format: Annotated[str, typer.Option(help="For a folder CRM: parquet or csv.")] = "parquet",
) -> None:
    """Turn a plain transaction log into a CRM extract (accounts + orders) that the pipeline can train and score on."""
    settings = _settings(config, crm)
    from crm.extract import write_extract
    from crm.transactions import read_transactions_file, transactions_to_extract

    with console.status(f"Reading {file}..."):
        raw = read_transactions_file(file)
        tables = transactions_to_extract(raw, customer_col=customer_col, date_col=date_col, amount_col=amount_col,
                                         margin_col=margin_col, order_col=order_col, margin_rate=margin_rate)
    write_extract(settings.crm_url, tables, folder_format=folder_format)
    _print_counts(tables, f"Imported {file.name} into {_show(settings.crm_url)}")


def _show(location: str) -> str:
    from crm.extract import redact

    return redact(location)


def _print_counts(tables, title: str) -> None:
    from rich.table import Table

    t = Table(title=title)
    t.add_column("table")
    t.add_column("rows", justify="right")
    for name, df in tables.items():
        t.add_row(name, f"{len(df):,}")
    console.print(t)


def _user_errors() -> tuple[type[BaseException], ...]:
    from crm.errors import CrmError

    return (CrmError, ConfigError)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``crmscore`` console script."""
    try:
        result = app(args=argv, prog_name="crmscore", standalone_mode=False)
        return int(result or 0)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show(file=sys.stderr)
        return exc.exit_code
    except click.exceptions.Abort:
        err_console.print("[red]aborted[/red]")
        return 130
    except Exception as exc:
        if os.environ.get("CRMSCORE_DEBUG") == "1":
            raise
        known = isinstance(exc, _user_errors())
        prefix = "error" if known else f"unexpected error ({type(exc).__name__})"
        err_console.print(f"[bold red]{prefix}:[/bold red] {exc}", markup=True, highlight=False, soft_wrap=True)
        if not known:
            err_console.print("run again with CRMSCORE_DEBUG=1 for the traceback, and please report it")
        return 1


if __name__ == "__main__":
    sys.exit(main())
