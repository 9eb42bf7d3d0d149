"""Rich tables shared by the CLI and the demo, and the progress lines of the flows' ``crmscore`` logger."""
from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator

from rich.console import Console
from rich.markup import escape

# In a terminal rich sizes itself; piped into a file or CI log it would wrap at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 160)


def print_training(summary) -> None:
    from rich.table import Table

    from models.tasks import TASKS

    t = Table(title=f"Training as of {summary.as_of[:10]} (extract {summary.fingerprint})")
    for col in ("task", "result", "version", "held-out", "baseline", "why"):
        t.add_column(col, overflow="fold")
    for o in summary.outcomes:
        metric = TASKS[o.task].primary_metric
        scored = [(name, m[metric]) for name, m in o.baseline_metrics.items() if m.get(metric) == m.get(metric)]
        best = max(scored, key=lambda kv: kv[1], default=None)  # the strongest baseline is the one to beat
        base_txt = f"{best[0]} {best[1]:.3f}" if best else ""
        held = f"{metric} {o.metrics[metric]:.3f}" if metric in o.metrics else ""
        colour = {"champion": "green", "challenger": "yellow", "skipped": "dim"}[o.status]
        t.add_row(o.task, f"[{colour}]{o.status}[/{colour}]", str(o.version or ""), held, base_txt, o.message)
    console.print(t)


def print_list(frame, kind: str) -> None:
    from rich.table import Table

    t = Table(title=f"{kind} ({len(frame)} rows)")
    show = [c for c in ("rank", "entity_id", "segment", "score", "band", "clv", "value_at_risk", "reason_text")
            if c in frame.columns]
    for c in show:
        t.add_column(c, overflow="fold", max_width=70 if c == "reason_text" else None)
    for _, r in frame.iterrows():
        t.add_row(*[f"{r[c]:,.3f}" if isinstance(r[c], float) else str(r[c]) for c in show])
    console.print(t)


def print_counts(tables, title: str) -> None:
    from rich.table import Table

    t = Table(title=title)
    t.add_column("table")
    t.add_column("rows", justify="right")
    for name, df in tables.items():
        t.add_row(name, f"{len(df):,}")
    console.print(t)


class ConsoleLogHandler(logging.Handler):
    """Shows each log record as one dimmed ``- message`` line on a rich console."""

    def __init__(self, target: Console, level: int = logging.INFO):
        super().__init__(level)
        self.target = target

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.target.print(f"[dim]-[/dim] {escape(record.getMessage())}", highlight=False)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def progress_shown(target: Console, logger_name: str = "crmscore") -> Iterator[None]:
    """For the duration: the ``crmscore`` logger's INFO messages print on ``target`` (and nowhere else, not on a
    handler a library gave the root logger); afterwards the logger is exactly as it was."""
    logger = logging.getLogger(logger_name)
    handler = ConsoleLogHandler(target)
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def print_monitor(summary) -> None:
    """One row per champion: its status, the top reasons, flagged features and the latest matured run."""
    from rich.table import Table

    colours = {"ok": "green", "warn": "yellow", "alert": "bold red", "insufficient": "dim"}
    t = Table(title=f"Monitoring as of {summary.as_of[:10]} ({summary.runs_stored} run check(s) stored now)")
    for col in ("model", "version", "status", "last run", "flagged features", "latest matured run", "reasons"):
        t.add_column(col, overflow="fold", max_width=60 if col == "reasons" else None)
    for name, m in summary.models.items():
        flagged = [f["feature"] for f in m["features"] if f["status"] in ("warn", "alert")]
        last = m["realized"][-1] if m["realized"] else None
        primary = "roc_auc" if last and "roc_auc" in last else "gini"
        realized = (f"{last['as_of'][:10]} v{last['model_version']} {primary} "
                    f"{last[primary]:.3f} ({last['status']})" if last and last[primary] is not None else "none yet")
        colour = colours[m["status"]]
        t.add_row(name, str(m["champion_version"] or ""), f"[{colour}]{m['status']}[/{colour}]",
                  (m["as_of"] or "never checked")[:10], ", ".join(flagged[:5]) or "none", realized,
                  escape("; ".join(r["detail"] for r in m["reasons"][:3]) or "none"))
    console.print(t)
    _print_episodes(summary.models)
    _print_quality(summary.models)
    _print_slices(summary.models)


def _num(v, fmt: str = ".3f") -> str:
    return "" if v is None else format(v, fmt)


def _print_episodes(models: dict) -> None:
    """Alert episodes: consecutive alerting nights grouped, with the first and last run and the reason."""
    from rich.table import Table

    t = Table(title="Alert episodes (consecutive alerting nights)")
    for col in ("model", "first run", "last run", "nights", "versions", "reason"):
        t.add_column(col, overflow="fold", max_width=70 if col == "reason" else None)
    for name, m in models.items():
        for e in m["episodes"]:
            last = e["last_as_of"][:10] + (" (ongoing)" if e["ongoing"] else "")
            versions = ", ".join(f"v{v}" for v in e["model_versions"])
            t.add_row(name, e["first_as_of"][:10], last, str(e["runs"]), versions,
                      escape(e["reason"] or ", ".join(e["codes"])))
    console.print(t if t.row_count else "Alert episodes: none")


def _print_quality(models: dict, last_runs: int = 5) -> None:
    """Data quality per extract table over the latest nightly runs (the tables are the same for every model)."""
    from rich.table import Table

    trend = next((m["quality"] for m in models.values() if m["quality"]), {})
    if not trend:
        console.print("Data quality: no nightly run recorded it yet (the score flow does)")
        return
    t = Table(title=f"Data quality per table, latest {last_runs} nightly runs (null rate % / defects)")
    dates = sorted({e["as_of"] for runs in trend.values() for e in runs})[-last_runs:]
    t.add_column("table")
    for d in dates:
        t.add_column(d[:10], justify="right")
    t.add_column("worst column")
    for table, runs in trend.items():
        by_date = {e["as_of"]: e for e in runs}
        cells = [f"{100 * e['null_rate']:.1f} / {int(e['defects'] or 0)}" if (e := by_date.get(d)) and
                 e.get("null_rate") is not None else "" for d in dates]
        latest = runs[-1]
        worst = (f"{latest.get('max_null_column')} {100 * latest['max_null_rate']:.1f}%"
                 if latest.get("max_null_rate") is not None else "")
        t.add_row(table, *cells, escape(worst))
    console.print(t)


def _print_slices(models: dict) -> None:
    """The realized metrics per slice of each model's latest matured run, each with its interval."""
    from rich.table import Table

    t = Table(title=escape("Realized performance per slice, latest matured run (value [interval])"))
    for col in ("model", "run as of", "slice", "n", "primary", "calibration"):
        t.add_column(col, overflow="fold")
    for name, m in models.items():
        last = m["realized"][-1] if m["realized"] else None
        for s in (last or {}).get("slices", []):
            primary, second = ("roc_auc", "ece") if "roc_auc" in s else ("normalized_gini", "mae")
            t.add_row(name, last["as_of"][:10], escape(s["slice"]), _num(s.get("n"), ",.0f"),
                      f"{primary} {_num(s.get(primary))} [{_num(s.get(primary + '_low'))}, "
                      f"{_num(s.get(primary + '_high'))}]",
                      f"{second} {_num(s.get(second))} [{_num(s.get(second + '_low'))}, "
                      f"{_num(s.get(second + '_high'))}]")
    console.print(t if t.row_count else "Realized performance per slice: no matured run with slices yet")
