"""`crmscore demo`: the whole path on the embedded default, narrated."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from pipelines.config import Settings
from pipelines.render import print_counts, print_list, print_training


def run_demo(settings: Settings, config: Path | None, console: Console) -> None:
    """Generate, validate, train, score and list on ``console``; the flows' progress lines show where the caller gives
    the ``crmscore`` logger a handler (the CLI does, see pipelines.render.progress_shown)."""
    from crm.errors import NoScoresError
    from crm.extract import redact
    from crm.synthetic import generate_world, write_world
    from crm.writeback import read_scores
    from models.evaluate import compare_with_truth
    from models.tasks import TASKS
    from pipelines.config import generator_horizons
    from pipelines.flows import score_flow, train_flow
    from pipelines.lists import ranked_list

    d = settings.demo
    as_of = pd.Timestamp(d.as_of, tz="UTC")
    cfg = str(config) if config else None
    crm = settings.crm_url
    truth_path = settings.workdir / "truth.parquet"

    console.rule(f"1. A synthetic CRM: {d.accounts:,} accounts, {d.leads:,} leads, as of {as_of.date()}")
    with console.status("Simulating two years of a business and its future..."):
        world = generate_world(d.accounts, d.leads, d.seed, as_of, horizons=generator_horizons(settings))
        write_world(world, crm, truth_path)
    print_counts(world.tables, "CRM tables")
    console.print(f"Written to {redact(crm)}; PII columns included, as in a real extract; truth kept apart: {truth_path}")

    console.rule("2. Validate, then train, evaluate out of time and register each model")
    summary = train_flow(config_file=cfg, as_of=d.as_of)
    print_training(summary)

    console.rule("3. Score every eligible record with the champions and write back")
    s = score_flow(config_file=cfg, as_of=d.as_of)
    console.print(f"Scoring run {s.scoring_run_id}: " + ", ".join(f"{k} {v:,}" for k, v in s.rows.items()),
                  highlight=False)
    for name, why in s.skipped.items():
        console.print(f"[yellow]{name} not scored:[/yellow] {why}")
    if s.report:
        console.print(f"HTML report for marketers and auditors: {s.report}", highlight=False)

    console.rule("4. How the written scores rank the simulated future")
    cmp = compare_with_truth(read_scores(crm), world.truth)
    t = Table(title="written scores vs the simulation's true probabilities, on the realized future")
    for c in ("task", "n", "metric", "model", "truth", "ratio", "ece"):
        t.add_column(c, justify="right" if c not in ("task", "metric") else "left")
    for _, r in cmp.iterrows():
        t.add_row(r["task"], f"{r['n']:,}", r["metric"], f"{r['model']:.3f}", f"{r['truth']:.3f}",
                  f"{r['ratio']:.3f}", "" if pd.isna(r["ece"]) else f"{r['ece']:.3f}")
    console.print(t)

    console.rule("5. Lists for marketers")
    for spec in TASKS.values():
        title = f"{spec.list_name}: {spec.list_title}"
        try:
            print_list(ranked_list(crm, spec.name, top=5), title)
        except NoScoresError as exc:  # a task without a champion was reported as not scored above
            console.print(f"[yellow]{title}:[/yellow] {exc}")

    console.rule("Where to look")
    console.print(f"Scores:      {redact(crm)} tables crm_scores, crm_scores_history, crm_value_at_risk")
    console.print(f"Lists:       crmscore list at-risk --top 50 --format csv --out at_risk.csv")
    console.print(f"Auditing:    crmscore explain <account_id or lead_id> --plot waterfall.png")
    console.print(f"Validation:  {settings.validation_dir}/ (JSON per run, data_docs/*/index.html)")
    console.print(f"MLflow:      mlflow ui --backend-store-uri {settings.tracking_uri}")
