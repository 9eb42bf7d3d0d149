"""The ``crmscore`` command line.

Every command takes ``--crm URL_OR_FOLDER`` and ``--config FILE``; errors are one red line and a non-zero exit, never a
traceback (set CRMSCORE_DEBUG=1 to see one). Heavy libraries are imported inside commands so that ``--help`` is instant.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape

from pipelines.config import ConfigError, Settings, load_settings
from pipelines.render import console, print_counts, print_list, print_training, progress_shown
from pipelines.runtime import configure_environment, quiet_great_expectations

app = typer.Typer(
    name="crmscore",
    help="Predictive CRM pipeline: churn risk, MQL/SQL lead scores and customer lifetime value, "
    "written back into the CRM with plain-language reasons.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 160)

CrmOpt = Annotated[Optional[str], typer.Option(
    "--crm", help="The CRM: a SQLAlchemy URL (sqlite:///crm.db, postgresql+psycopg://user@host/db) or a folder of "
    "<table>.csv/.parquet files. Default: CRMSCORE_CRM_URL, else <workdir>/crm.db.")]
ConfigOpt = Annotated[Optional[Path], typer.Option(
    "--config", help="A YAML file overlaying configs/default.yaml (partial is fine).", dir_okay=False)]
AsOfOpt = Annotated[Optional[str], typer.Option(
    "--as-of", help="The as-of date T (ISO date or timestamp, UTC). Default: now.")]


def _settings(config: Path | None, crm: str | None, *, flows: bool = False) -> Settings:
    """The settings of one command; ``flows`` for the commands that run Prefect flows (they need a Prefect home)."""
    settings = load_settings(config, crm=crm)
    configure_environment(settings.workdir, prefect_home=flows)
    return settings


def _timestamp(text: str | None, *, option: str = "--as-of"):
    import pandas as pd

    if text is None:
        return None
    try:
        ts = pd.Timestamp(text)
    except (ValueError, TypeError) as exc:
        raise typer.BadParameter(f"{text!r} is not a date; use ISO form such as 2026-10-01", param_hint=option) from exc
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
) -> None:
    """Generate a synthetic CRM world (accounts, subscriptions, orders, activities, tickets, leads) with known truth."""
    as_of_ts = _timestamp(as_of)
    settings = _settings(config, crm)
    from crm.synthetic import generate_world, write_world
    from pipelines.config import generator_horizons

    truth_path = truth or settings.workdir / "truth.parquet"
    with console.status(f"Simulating {accounts:,} accounts and {leads:,} leads..."):
        world = generate_world(accounts, leads, seed, as_of_ts, horizons=generator_horizons(settings))
    with console.status(f"Writing the CRM to {_show(settings.crm_url)}..."):
        write_world(world, settings.crm_url, truth_path)
    print_counts(world.tables, f"Generated CRM at {_show(settings.crm_url)} (as of {as_of_ts.date()})")
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
    print_counts(tables, f"Imported {file.name} into {_show(settings.crm_url)}")


@app.command()
def validate(crm: CrmOpt = None, config: ConfigOpt = None, as_of: AsOfOpt = None) -> None:
    """Check the extract against every data contract; exit 1 if an error-severity rule fails.

    Writes the full result (JSON) and Great Expectations Data Docs (HTML) under <workdir>/validation/.
    """
    as_of_ts = _timestamp(as_of)
    settings = _settings(config, crm)
    import pandas as pd

    from crm.extract import read_tables
    from data_contracts.gate import run_quality_gate
    from data_contracts.render import render_failures_table

    now = pd.Timestamp.now(tz="UTC").floor("s")
    as_of_ts = as_of_ts or now
    with console.status(f"Reading {_show(settings.crm_url)}..."):
        raw = read_tables(settings.crm_url, strict=False)
    quiet_great_expectations()
    with console.status("Validating against the data contracts..."):
        report, path = run_quality_gate(raw, settings.workdir, now=now, as_of=as_of_ts,
                                        max_volume_drop=settings.validation.max_volume_drop,
                                        data_docs=settings.validation.data_docs)
    if report.failures:
        console.print(render_failures_table(report))
    verdict = "[bold green]passed[/bold green]" if report.ok else "[bold red]FAILED[/bold red]"
    console.print(f"Validation {verdict}: {len(report.results)} rules, {len(report.errors)} error(s), "
                  f"{len(report.warnings)} warning(s); extract fingerprint {report.fingerprint.short}")
    console.print(f"Result: {path}")
    if report.data_docs_index:
        console.print(f"Data Docs: {report.data_docs_index}")
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def features(
    entity: Annotated[str, typer.Option(help="account or lead.")],
    out: Annotated[Path, typer.Option(help="Parquet file to write.", dir_okay=False)],
    crm: CrmOpt = None,
    config: ConfigOpt = None,
    as_of: AsOfOpt = None,
) -> None:
    """Write the scoring-time feature matrix (one row per eligible entity) so anyone can see what a model sees."""
    from models.tasks import ENTITIES, populations_of

    if entity not in ENTITIES:
        raise typer.BadParameter(f"{entity!r}; possible values are {', '.join(ENTITIES)}", param_hint="--entity")
    as_of_ts = _timestamp(as_of)
    settings = _settings(config, crm)
    import dataclasses
    import json

    import pandas as pd

    as_of_ts = as_of_ts or pd.Timestamp.now(tz="UTC").floor("s")
    from crm.extract import read_extract
    from crm.privacy import profiling_view
    from features.build import features_as_of
    from pipelines.model_config import feature_options

    options = feature_options(settings)
    with console.status("Reading the extract and building features..."):
        tables = profiling_view(read_extract(settings.crm_url).tables)
        fs = features_as_of(tables, entity, as_of_ts, populations=populations_of(entity),
                            churn_lookback_days=settings.eligibility.churn_lookback_days,
                            windows_days=settings.features.windows_days,
                            forward_days=options.forward_days,
                            lead_decay_half_lives_days=options.lead_decay_half_lives_days)
    out.parent.mkdir(parents=True, exist_ok=True)
    fs.frame.to_parquet(out, index=False)
    labels = out.with_suffix(".labels.json")
    labels.write_text(json.dumps({c: dataclasses.asdict(i) for c, i in fs.catalog.items()}, indent=1))
    console.print(f"{len(fs.frame):,} {entity}s x {len(fs.catalog)} features as of {as_of_ts.date()} -> {out} "
                  f"(readable labels: {labels})")


@app.command()
def train(
    crm: CrmOpt = None,
    config: ConfigOpt = None,
    as_of: AsOfOpt = None,
    models: Annotated[Optional[str], typer.Option(help="Comma-separated tasks of the registry (default all; "
                                                       "`crmscore tasks` lists them).")] = None,
) -> None:
    """Validate, build point-in-time training sets, train and evaluate LightGBM per task, register in MLflow.

    A new version becomes the `champion` only if it beats the current champion on the same held-out data.
    """
    _timestamp(as_of)
    settings = _settings(config, crm, flows=True)
    from pipelines.flows import train_flow

    with progress_shown(console):
        summary = train_flow(config_file=str(config) if config else None, crm=crm, as_of=as_of, models=models)
    print_training(summary)
    console.print(f"MLflow: [bold]mlflow ui --backend-store-uri {settings.tracking_uri}[/bold]")


@app.command()
def score(crm: CrmOpt = None, config: ConfigOpt = None, as_of: AsOfOpt = None,
          models: Annotated[Optional[str], typer.Option(help="Comma-separated tasks (default all).")] = None,
          accept_drift: Annotated[bool, typer.Option(
              "--accept-drift", help="Write the scores even if an integrity check blocks them (NaN or identical "
              "scores, a catastrophic score shift); who and when is recorded in crm_monitor_runs.")] = False) -> None:
    """Score every eligible record with each task's champion, check the scores against the model's reference, and
    write scores, bands and reasons back to the CRM (an integrity failure blocks the write-back)."""
    _timestamp(as_of)
    _settings(config, crm, flows=True)
    from pipelines.flows import score_flow

    with progress_shown(console):
        s = score_flow(config_file=str(config) if config else None, crm=crm, as_of=as_of, models=models,
                       accept_drift=accept_drift)
    rows = ", ".join(f"{k} {v:,} (v{s.versions[k]}, {s.monitoring.get(k, 'unchecked')})" for k, v in s.rows.items())
    console.print(f"Scoring run {s.scoring_run_id} as of {s.as_of[:10]}: {rows} -> {s.written_to}")
    for name, why in s.skipped.items():
        console.print(f"[yellow]{name} not scored:[/yellow] {why}")
    if s.report:
        console.print(f"Report: {s.report}", highlight=False)


@app.command()
def monitor(
    crm: CrmOpt = None,
    config: ConfigOpt = None,
    as_of: AsOfOpt = None,
    format: Annotated[str, typer.Option("--format", help="table or json.")] = "table",
    out: Annotated[Optional[Path], typer.Option(help="Write the JSON to this file instead of the terminal.",
                                                dir_okay=False)] = None,
) -> None:
    """Check every scoring run not monitored yet (drift, score health) and backtest every run whose horizon has
    closed (realized performance), store the results in crm_monitor_runs/crm_monitor_metrics, and show the health
    of each champion. Exit 0 when no champion is in alert, 3 when one is."""
    if format not in ("table", "json"):
        raise typer.BadParameter(f"{format!r}; possible values are table, json", param_hint="--format")
    _timestamp(as_of)
    from crm.connection import existing_folder, is_sql_url, read_connection

    url = load_settings(config, crm=crm).crm_url
    if is_sql_url(url):  # a missing CRM is refused before any working folder or flow is started
        with read_connection(url):
            pass
    else:
        existing_folder(url)
    _settings(config, crm, flows=True)
    import json

    from pipelines.flows import monitor_flow
    from pipelines.render import print_monitor

    with progress_shown(console if format == "table" and out is None else err_console):
        summary = monitor_flow(config_file=str(config) if config else None, crm=crm, as_of=as_of)
    doc = {"as_of": summary.as_of, "runs_stored": summary.runs_stored, "models": summary.models}
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1))
        console.print(f"Health of {len(summary.models)} model(s) -> {out}")
    elif format == "json":
        sys.stdout.write(json.dumps(doc, indent=1) + "\n")
    else:
        print_monitor(summary)
    raise typer.Exit(3 if any(m["status"] == "alert" for m in summary.models.values()) else 0)


@app.command()
def tasks(config: ConfigOpt = None) -> None:
    """The registered prediction tasks: who each scores, what it predicts, over which horizon, and its list."""
    settings = load_settings(config)
    from rich.table import Table

    from models.tasks import TASKS
    from pipelines.config import task_horizons

    horizons = task_horizons(settings)
    t = Table(title="crmscore tasks (models/tasks.py)")
    for c in ("task", "scores", "predicts", "horizon", "band scheme", "list"):
        t.add_column(c, overflow="fold")
    for spec in TASKS.values():
        t.add_row(spec.name, spec.population_spec.eligibility.split(" (")[0], f"{spec.outcome} ({spec.kind})",
                  f"{horizons[spec.name]} days", spec.band_scheme, spec.list_name)
    console.print(t)


@app.command("list")
def list_(
    kind: Annotated[str, typer.Argument(help="Which list: the list name of a task (`crmscore tasks` lists them: "
                                             "at-risk, clv, top-leads, sql-leads).")],
    crm: CrmOpt = None,
    config: ConfigOpt = None,
    top: Annotated[int, typer.Option(help="How many rows.", min=1)] = 20,
    segment: Annotated[Optional[str], typer.Option(help="Only this account segment (at-risk, clv) or lead source.")] = None,
    format: Annotated[str, typer.Option("--format", help="table, csv or json.")] = "table",
    out: Annotated[Optional[Path], typer.Option(help="Write to this file instead of the terminal.")] = None,
) -> None:
    """Ranked lists for campaigns, read from crm_scores, with each record's reasons.

    at-risk is ranked by value at risk (churn probability x CLV) when both are scored, else by churn probability.
    """
    from models.errors import UnknownTaskError
    from models.tasks import task_for_list

    try:
        spec = task_for_list(kind)
    except UnknownTaskError as exc:
        raise typer.BadParameter(str(exc).removeprefix("unknown list "), param_hint="KIND") from None
    if format not in ("table", "csv", "json"):
        raise typer.BadParameter(f"{format!r}; possible values are table, csv, json", param_hint="--format")
    settings = _settings(config, crm)
    from pipelines.lists import ranked_list

    frame = ranked_list(settings.crm_url, spec.name, top=top, segment=segment)
    if format == "table" and out is None:
        print_list(frame, kind)
        return
    text = frame.to_csv(index=False) if format == "csv" else frame.to_json(orient="records", indent=1, date_format="iso")
    if out:
        out.write_text(text)
        console.print(f"{len(frame)} rows -> {out}")
    else:
        sys.stdout.write(text)


@app.command()
def explain(
    entity_id: Annotated[str, typer.Argument(help="An account_id or lead_id.")],
    crm: CrmOpt = None,
    config: ConfigOpt = None,
    plot: Annotated[Optional[Path], typer.Option(help="Write a SHAP waterfall (PNG) of the latest score per model; "
                                                      "a {model} placeholder in the name gives one file per model.")] = None,
    html: Annotated[Optional[Path], typer.Option("--html", help="Write a self-contained HTML page of this record: "
                                                 "every score, reasons, feature values, SHAP waterfall and what would "
                                                 "move the score most.", dir_okay=False)] = None,
) -> None:
    """Which record it is (account segment or lead source), then every score it has had: when, by which model
    version, with which reasons and feature values."""
    if html is not None:
        _html_target(html, "--html")
    settings = _settings(config, crm)
    from pipelines.lists import explain_record

    if html is not None:
        from pipelines.report import record_page, write_page

        write_page(record_page(settings, entity_id), html)
        console.print(f"Record page -> {html}")
        return
    record = explain_record(settings.crm_url, entity_id)
    history = record.history
    import json

    console.print(f"[bold]{escape(record.title)}[/bold]: {len(history)} score(s) written", highlight=False)
    for _, r in history.iterrows():
        console.print(f"[bold]{r['as_of']:%Y-%m-%d}[/bold]  {r['model']} v{r['model_version']}  "
                      f"score {r['score']:.4f}  percentile {r['score_percentile']}  band {r['band']}  "
                      f"(run {r['scoring_run_id'][:8]}, written {r['scored_at']:%Y-%m-%d %H:%M} UTC)", highlight=False)
        console.print(f"   {r['reason_text']}", highlight=False)
        for reason in json.loads(r["reasons"]):
            console.print(f"     {reason['label']}: {reason['value']}  (contribution {reason['contribution']:+.4f})",
                          highlight=False)
    if plot:
        from pipelines.lists import waterfall_for

        for path in waterfall_for(settings, history, plot):
            console.print(f"SHAP waterfall: {path}")


def _html_target(path: Path, option: str) -> Path:
    """An .html file to write: its folder must exist (nothing else is created) and it must not be a folder."""
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder; give the path of an .html file to write", param_hint=option)
    if not path.parent.is_dir():
        raise typer.BadParameter(f"{path}: the folder {path.parent} does not exist; create it or choose another path",
                                 param_hint=option)
    return path


@app.command()
def report(
    crm: CrmOpt = None,
    config: ConfigOpt = None,
    as_of: Annotated[Optional[str], typer.Option(
        "--as-of", help="Show the scores of the latest scoring date on or before this date (from crm_scores_history). "
        "Default: the current scores.")] = None,
    out: Annotated[Optional[Path], typer.Option(help="The HTML file to write. Default: crmscore-report.html in the "
                                                     "current folder.", dir_okay=False)] = None,
) -> None:
    """One self-contained HTML page of what is stored: KPI tiles, the ranked lists with reasons, bands by segment,
    and per champion model its provenance, held-out metrics, plots, slices, gate decisions and data-contract results.

    Reads only (the CRM, the MLflow registry, validation runs); writes nothing but --out. The page loads nothing from
    the network. `crmscore list` exports any list as CSV.
    """
    as_of_ts = _timestamp(as_of)
    target = _html_target(out or Path("crmscore-report.html"), "--out")
    settings = _settings(config, crm)
    from pipelines.report import build_report, write_page

    with console.status("Reading the scores, the registry and the validation runs..."):
        html = build_report(settings, as_of=as_of_ts)
    write_page(html, target)
    console.print(f"Report ({len(html.encode()) / 1e6:.2f} MB) -> {target}")


@app.command()
def schedule(
    crm: CrmOpt = None,
    config: ConfigOpt = None,
    cron: Annotated[Optional[str], typer.Option(help="Cron expression (default from config: nightly at 02:00).")] = None,
    serve: Annotated[bool, typer.Option("--serve", help="Stay running and execute the scheduled runs.")] = False,
) -> None:
    """Create the nightly scoring deployment (Prefect) on a cron schedule, with retries on the I/O tasks."""
    settings = _settings(config, crm, flows=True)
    from pipelines.schedule import create_deployment, serve_deployment

    params = {"config_file": str(config.resolve()) if config else None, "crm": crm}
    cron_expr = cron or settings.schedule.cron
    if serve:
        console.print(f"Serving {settings.schedule.deployment!r} on '{cron_expr}' ({settings.schedule.timezone}); "
                      "Ctrl-C to stop")
        serve_deployment(settings, params, cron_expr)
        return
    dep = create_deployment(settings, params, cron_expr)
    console.print(f"Deployment [bold]{dep.name}[/bold] of flow crmscore-score scheduled '{cron_expr}' "
                  f"({settings.schedule.timezone}), id {dep.id}")
    console.print("Runs execute while `crmscore schedule --serve` runs (with a Prefect server: "
                  f"PREFECT_HOME={os.environ.get('PREFECT_HOME')} prefect server start).")


@app.command()
def demo(config: ConfigOpt = None) -> None:
    """The whole path on the embedded default: generate a CRM, validate, train, score, write back, show the lists."""
    settings = _settings(config, None, flows=True)
    from pipelines.demo import run_demo

    with progress_shown(console):
        run_demo(settings, config, console)



def _show(location: str) -> str:
    from crm.extract import redact

    return redact(location)


def _user_errors() -> tuple[type[BaseException], ...]:
    from crm.errors import CrmError
    from data_contracts.errors import ContractError
    from features.errors import FeatureError
    from models.errors import ModelError
    from pipelines.errors import PipelineError

    return (CrmError, ConfigError, ContractError, FeatureError, ModelError, PipelineError)


def _one_line(text: str) -> str:
    """A message that a library made multi-line (a YAML parser's context, a driver's detail) as one line."""
    return " ".join(part.strip() for part in text.splitlines() if part.strip())


def _usage_line(exc: typer.TyperException) -> str:
    """A usage error (bad option, bad value, unknown command) as one line that says where the help is."""
    ctx = getattr(exc, "ctx", None)
    where = f" (see `{ctx.command_path} --help`)" if ctx is not None else " (see `crmscore --help`)"
    return exc.format_message().rstrip(".") + where


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``crmscore`` console script: runs one command and returns its exit status.

    Typer 0.29 raises its own exception family (``typer.TyperException``; it no longer uses click's), so that is what is
    caught here: a usage error is one line and exit 2, an error of the project's typed families one line and exit 1.
    """
    try:
        result = app(args=argv, prog_name="crmscore", standalone_mode=False)
        return int(result or 0)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        err_console.print("[red]aborted[/red]")
        return 130
    except typer.TyperException as exc:
        if exc.format_message():  # empty for `crmscore` without arguments: the help was shown
            err_console.print(f"[bold red]error:[/bold red] {escape(_usage_line(exc))}", highlight=False,
                              soft_wrap=True)
        return exc.exit_code
    except Exception as exc:
        if os.environ.get("CRMSCORE_DEBUG") == "1":
            raise
        known = isinstance(exc, _user_errors())
        prefix = "error" if known else f"unexpected error ({type(exc).__name__})"
        err_console.print(f"[bold red]{prefix}:[/bold red] {escape(_one_line(str(exc)))}", highlight=False,
                          soft_wrap=True)
        if not known:
            err_console.print("run again with CRMSCORE_DEBUG=1 for the traceback, and please report it")
        return 1


if __name__ == "__main__":
    sys.exit(main())
