"""The self-contained HTML report (``crmscore report``) and the per-record page (``crmscore explain ID --html``).

What is stored is read, never changed: the score tables of the CRM, the MLflow registry (opened read-only: a
missing store is not created), the validation runs under ``<workdir>/validation/`` and the scoring-run records under
``<workdir>/runs/``; monitoring results come in as a plain argument (:class:`MonitoringRun`). The page is one file:
no network, no CDN, every image an inline ``data:`` URI (deterministic matplotlib SVG, drawn by the same code as the
MLflow artifacts, :mod:`models.plots`), one small inline script (table sort and filter) and one style block, both
pinned by sha256 hashes in a Content-Security-Policy ``<meta>`` tag. Jinja2 autoescapes every value; data reaches
the script only through ``|tojson``. The same stored state gives a byte-identical page: nothing reads the clock.

Its size is bounded by ``report.list_rows`` (rows per list) and the number of models, not by the number of records.
"""
from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from crm.errors import NoScoresError
from crm.extract import redact
from crm.writeback import read_history, read_scores, read_scoring_runs, read_value_at_risk
from models.metrics import metric_label, metric_order
from models.tasks import TASKS, get_task
from pipelines.config import Settings
from pipelines.lists import explain_record, rank_scores, record_contributions, segments_of

#: What the page names for a CSV export of a list (the page itself holds only the top rows).
EXPORT_HINT = "crmscore list {list_name} --format csv --top 100000 --out {list_name}.csv"
NO_MONITORING = "no monitoring run yet"


# ---------------------------------------------------------------------------------------------------------------
# Monitoring results: read from crm_monitor_runs / crm_monitor_metrics (or given as an argument)


@dataclass(frozen=True)
class MonitoringRun:
    """One monitoring run of one model version: its status, feature drift and realized vs estimated metrics.

    ``feature_psi`` maps a feature's readable label (or column) to its PSI; ``realized`` and ``estimated`` map a
    metric name (``roc_auc``...) to its value on that run (None when it cannot be known yet).
    """

    model: str
    model_version: str
    as_of: str
    status: str
    feature_psi: Mapping[str, float] = field(default_factory=dict)
    realized: Mapping[str, float | None] = field(default_factory=dict)
    estimated: Mapping[str, float | None] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, d: Mapping[str, Any]) -> MonitoringRun:
        return cls(model=str(d["model"]), model_version=str(d.get("model_version", "")), as_of=str(d["as_of"])[:10],
                   status=str(d.get("status", "")), feature_psi=dict(d.get("feature_psi") or {}),
                   realized=dict(d.get("realized") or {}), estimated=dict(d.get("estimated") or {}))


def monitoring_runs(records: Iterable[Mapping[str, Any] | MonitoringRun] | pd.DataFrame | None) -> list[MonitoringRun]:
    """Monitoring runs from dicts, :class:`MonitoringRun` objects or a frame of one row per run (None: none)."""
    if records is None:
        return []
    if isinstance(records, pd.DataFrame):
        records = records.to_dict(orient="records")
    return [r if isinstance(r, MonitoringRun) else MonitoringRun.from_mapping(r) for r in records]


def stored_monitoring(location: str) -> list[MonitoringRun]:
    """Every stored monitoring run of every task, one :class:`MonitoringRun` per (scoring run, model), read-only.

    Its status is the matured (realized) stage's when the run has matured, else its scoring check's; feature PSI
    and the estimate come from the scoring check, realized metrics from the backtest.
    """
    from crm.monitor_store import monitor_series

    def by_run(frame: pd.DataFrame) -> dict[str, dict]:
        if frame.empty:
            return {}
        drop = ["model_version", "as_of"]
        return {str(k): {m: (None if pd.isna(v) else v) for m, v in row.items() if m not in drop}
                for k, row in frame.drop(columns="scoring_run_id").set_index(frame["scoring_run_id"]).iterrows()}

    out: list[MonitoringRun] = []
    for name in TASKS:
        series = monitor_series(location, name)
        runs = series["runs"]
        if runs.empty:
            continue
        feats = series["features"]
        realized, estimated = by_run(series["realized"]), by_run(series["estimated"])
        for run_id, stages in runs.groupby("scoring_run_id", sort=False):
            stages = stages.set_index("stage")
            status = stages["status"].get("realized", stages["status"].iloc[0])
            mine = feats.loc[feats["scoring_run_id"] == run_id] if len(feats) else feats
            psi = {str(r.get("label") or r["feature"]): float(r["psi"]) for _, r in mine.iterrows()
                   if "psi" in r and pd.notna(r["psi"])}
            out.append(MonitoringRun(
                model=name, model_version=str(stages["model_version"].iloc[0]),
                as_of=str(stages["as_of"].iloc[0])[:10], status=str(status), feature_psi=psi,
                realized={k: v for k, v in realized.get(str(run_id), {}).items() if isinstance(v, (int, float))},
                estimated={k: v for k, v in estimated.get(str(run_id), {}).items() if isinstance(v, (int, float))}))
    return sorted(out, key=lambda r: (r.model, r.as_of))


# ---------------------------------------------------------------------------------------------------------------
# Formatting for people


def _num(x: Any, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)) or pd.isna(x):
        return "n/a"
    return f"{float(x):,.{digits}f}"


def _pct(x: Any, digits: int = 1) -> str:
    return "n/a" if x is None or pd.isna(x) else f"{100 * float(x):.{digits}f}%"


def _metric(x: Any) -> str:
    if x is None or pd.isna(x):
        return "n/a"
    x = float(x)
    return f"{x:,.0f}" if abs(x) >= 1000 else f"{x:.3f}"


def _date(ts: Any) -> str:
    return "n/a" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%d")


def _stamp(ts: Any) -> str:
    return "n/a" if ts is None or pd.isna(ts) else pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M UTC")


def _sort_value(x: Any) -> str:
    """The value a table column sorts by (numbers as numbers, text as text)."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return repr(float(x)) if isinstance(x, (int, float, np.number)) and not isinstance(x, bool) else str(x)


def _value(v: Any) -> str:
    """A feature value for people: missing as in the reasons, numbers with at most 4 significant digits."""
    if v is None or (not isinstance(v, str) and pd.isna(v)):
        return "none recorded"
    if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
        x = float(v)
        if x == int(x):
            return f"{int(x):,}"
        return f"{x:,.2f}" if abs(x) >= 100 else f"{x:.4g}"
    return str(v)


def _score_text(task: str, score: float) -> str:
    return _num(score, 2) if get_task(task).kind == "regression" else _pct(score)


def _distinct(values: pd.Series) -> set[str]:
    """The distinct values of a column (vectorised: iterating a million-row text column in Python costs seconds)."""
    return {str(v) for v in pd.unique(values.dropna().to_numpy())}


def _data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def _svg_image(fig: Any, alt: str) -> dict[str, str]:
    from models.plots import svg_text

    text = svg_text(fig)
    return {"src": _data_uri("image/svg+xml", text.encode("utf-8")), "alt": alt}


def _png_image(data: bytes, alt: str) -> dict[str, str]:
    return {"src": _data_uri("image/png", data), "alt": alt}


# ---------------------------------------------------------------------------------------------------------------
# The page's parts (plain data the template lays out)


@dataclass(frozen=True)
class Table:
    """A table for the page: ``columns`` are (header, numeric?), ``rows`` lists of (text, sort value) cells."""

    id: str
    caption: str
    columns: list[tuple[str, bool]]
    rows: list[list[tuple[str, str]]]
    note: str = ""
    sortable: bool = True


def _table(id_: str, caption: str, header: Sequence[str], rows: Iterable[Sequence[Any]], *,
           numeric: Sequence[bool] | None = None, note: str = "", sortable: bool = True) -> Table:
    """Cells are given as text, or as (text, sort value) pairs."""
    out = []
    for row in rows:
        out.append([c if isinstance(c, tuple) else (str(c), str(c)) for c in row])
    numeric = list(numeric) if numeric is not None else [False] * len(header)
    return Table(id=id_, caption=caption, columns=list(zip(header, numeric, strict=True)), rows=out, note=note,
                 sortable=sortable)


@dataclass(frozen=True)
class Tile:
    label: str
    value: str
    note: str = ""
    status: str = ""  # "ok", "warn", "bad" or "" (no judgement)


@dataclass(frozen=True)
class ModelSection:
    """The auditor's part of one model version that produced current scores."""

    task: str
    version: str
    title: str
    provenance: Table | None
    intended_use: list[str]
    limits: list[str]
    metrics: Table | None
    images: list[dict[str, str]]
    importance_words: str
    slices: Table | None
    history: Table | None
    monitoring: Table | None
    monitoring_images: list[dict[str, str]]
    notes: list[str]


@dataclass(frozen=True)
class ReportData:
    title: str
    subtitle: str
    tiles: list[Tile]
    lists: list[Table]
    segment_tables: list[Table]
    segment_images: list[dict[str, str]]
    factors: list[str]
    models: list[ModelSection]
    contract: Table | None
    contract_summary: str
    export_hints: list[str]
    script_data: dict[str, Any]


# ---------------------------------------------------------------------------------------------------------------
# Reading the stored state


#: The score columns read for every record (tiles, bands by segment, ranking); the reasons, JSON and sentence, are read
#: for the listed rows only (:meth:`StoredScores.reasons`): the page's cost follows the lists, not the records.
_NARROW = ("entity_type", "entity_id", "model", "score", "band", "model_version")
_REASONS = ("entity_id", "reason_text", "reasons")


@dataclass(frozen=True)
class StoredScores:
    """The scores the page shows, narrow (:data:`_NARROW`), their value at risk (entity_id, clv, value_at_risk) and
    their scoring runs (scoring_run_id, as_of, scored_at); ``run_ids`` is None for the current scores
    (``crm_scores``), else the runs of ``crm_scores_history`` they come from."""

    location: str
    rows: pd.DataFrame
    var: pd.DataFrame
    runs: pd.DataFrame
    run_ids: tuple[str, ...] | None

    def reasons(self, model: str, entity_ids: Iterable[str]) -> pd.DataFrame:
        """entity_id, reason_text and reasons (JSON) of these records' scores by ``model`` (a few hundred rows, found
        through the tables' keys: crm_scores' primary key, crm_scores_history's entity_id index)."""
        ids = list(entity_ids)
        if self.run_ids is None:
            return read_scores(self.location, model=model, entity_type=get_task(model).entity, columns=_REASONS,
                               entity_ids=ids)
        return read_history(self.location, model=model, columns=_REASONS, entity_ids=ids,
                            scoring_run_ids=self.run_ids)


def _scores_at(location: str, as_of: pd.Timestamp | None) -> StoredScores:
    """The scores the page shows and their value at risk: the current ones, or those of the latest scoring date on or
    before ``as_of`` (from ``crm_scores_history``)."""
    if as_of is None:
        runs = read_scoring_runs(location)
        if runs.empty:
            raise NoScoresError(f"no scores were written to {redact(location)} yet; run `crmscore train`, then "
                                "`crmscore score`, then `crmscore report`")
        return StoredScores(location, read_scores(location, columns=_NARROW),
                            read_value_at_risk(location, columns=("entity_id", "clv", "value_at_risk")), runs, None)
    from models.bands import value_at_risk_rows

    runs = read_scoring_runs(location, history=True)
    dates = runs["as_of"][runs["as_of"] <= as_of] if not runs.empty else runs["as_of"]
    if dates.empty:
        first = f" (the first scores are as of {_date(runs['as_of'].min())})" if not runs.empty else ""
        raise NoScoresError(f"no scores as of {_date(as_of)} or earlier in {redact(location)}{first}; give a later "
                            "--as-of, or leave it out for the current scores")
    runs = runs[runs["as_of"] == dates.max()].reset_index(drop=True)
    run_ids = tuple(sorted(_distinct(runs["scoring_run_id"])))
    scores = read_history(location, columns=_NARROW, scoring_run_ids=run_ids)
    var = pd.DataFrame(columns=["entity_id", "clv", "value_at_risk"])
    models = _distinct(scores["model"])
    for spec in TASKS.values():
        if spec.value_at_risk_with and {spec.name, spec.value_at_risk_with} <= models:
            var = value_at_risk_rows(scores[scores["model"] == spec.name],
                                     scores[scores["model"] == spec.value_at_risk_with])
    return StoredScores(location, scores, var, runs, run_ids)


def _latest_json(folder: Path, pattern: str, accept=lambda d: True) -> dict[str, Any] | None:
    if not folder.is_dir():
        return None
    for path in sorted(folder.glob(pattern), reverse=True):
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if accept(doc):
            return doc
    return None


def _scoring_run(settings: Settings, run_ids: Sequence[str]) -> dict[str, Any] | None:
    for run_id in run_ids:
        path = settings.workdir / "runs" / f"{run_id}.json"
        if path.is_file():
            return json.loads(path.read_text())
    return None


def _validation_run(settings: Settings, fingerprint_hash: str | None) -> dict[str, Any] | None:
    """The latest saved validation run of the extract with this fingerprint (any latest one if it is unknown)."""
    folder = settings.validation_dir
    if fingerprint_hash:
        return _latest_json(folder, "*.json", lambda d: d.get("fingerprint", {}).get("hash") == fingerprint_hash)
    return _latest_json(folder, "*.json")


def _registry(settings: Settings):
    from models.registry import Registry

    return Registry.open_existing(settings.tracking_uri, settings.artifact_root, settings.mlflow.experiment)


# ---------------------------------------------------------------------------------------------------------------
# Marketer part


def _tiles(stored: StoredScores, by_model: Mapping[str, pd.DataFrame], validation: dict | None,
           monitoring: Sequence[MonitoringRun]) -> list[Tile]:
    scores, var = stored.rows, stored.var
    tiles = []
    for entity, word in (("account", "Customers scored"), ("lead", "Leads scored")):
        n = scores.loc[scores["entity_type"] == entity, "entity_id"].nunique()
        if n:
            tiles.append(Tile(word, _num(n)))
    for spec in TASKS.values():
        if spec.value_at_risk_with and spec.name in by_model:
            p = by_model[spec.name]["score"]
            label = "Expected churners" if spec.name == "churn" else f"Expected {spec.name} events"
            tiles.append(Tile(label, _num(p.sum()), f"sum of P({spec.name}) over "
                              f"{len(p):,} {spec.entity}s, next {spec.horizon_days} days"))
    if not var.empty:
        tiles.append(Tile("Total value at risk", _num(var["value_at_risk"].sum()), "sum of P(churn) x CLV"))
    for spec in TASKS.values():
        if spec.kind == "regression" and spec.name in by_model:
            tiles.append(Tile("Customer equity", _num(by_model[spec.name]["score"].sum()),
                              f"sum of predicted {spec.name.upper()} ({spec.outcome})"))
    runs = stored.runs
    tiles.append(Tile("Last refresh", _stamp(runs["scored_at"].max()), f"scores as of {_date(runs['as_of'].max())}"))
    if validation is None:
        tiles.append(Tile("Data quality", "not recorded", "no saved validation run of the scored extract", "warn"))
    else:
        s = validation.get("summary", {})
        ok = validation.get("ok")
        warn = int(s.get("failed_warnings", 0))
        status = "bad" if not ok else ("warn" if warn else "ok")
        tiles.append(Tile("Data quality", "passed" if ok else "FAILED", f"{s.get('rules', '?')} rules, "
                          f"{s.get('failed_errors', 0)} error(s), {warn} warning(s)", status))
    if not monitoring:
        tiles.append(Tile("Model health", NO_MONITORING, "", ""))
    else:
        latest = {}
        for run in monitoring:
            if run.model not in latest or run.as_of >= latest[run.model].as_of:
                latest[run.model] = run
        worst = sorted({r.status for r in latest.values()})
        status = "ok" if worst == ["ok"] else ("bad" if any(s in ("alert", "bad", "failed") for s in worst) else "warn")
        tiles.append(Tile("Model health", ", ".join(f"{m}: {r.status}" for m, r in sorted(latest.items())),
                          f"latest monitoring runs ({max(r.as_of for r in latest.values())})", status))
    return tiles


def _list_table(ranked: pd.DataFrame, task: str, total: int) -> Table:
    spec = get_task(task)
    has_var = "value_at_risk" in ranked.columns
    header = ["rank", spec.entity_spec.id_column, spec.entity_spec.segment_column,
              "CLV" if spec.kind == "regression" else f"P({task})", "band"]
    numeric = [True, False, False, True, False]
    if has_var:
        header += ["CLV", "value at risk"]
        numeric += [True, True]
    header += ["reasons"]
    numeric += [False]
    rows = []
    for r in ranked.itertuples(index=False):
        row = [(str(r.rank), _sort_value(r.rank)), str(r.entity_id), "" if pd.isna(r.segment) else str(r.segment),
               (_score_text(task, r.score), _sort_value(r.score)), str(r.band)]
        if has_var:
            row += [(_num(r.clv), _sort_value(r.clv)), (_num(r.value_at_risk), _sort_value(r.value_at_risk))]
        row.append("" if pd.isna(r.reason_text) else str(r.reason_text))
        rows.append(row)
    ranked_by = "value at risk" if has_var else "score"
    return _table(f"list-{spec.list_name}", f"{spec.list_name}: {spec.list_title}", header, rows, numeric=numeric,
                  note=f"Top {len(ranked):,} of {total:,}, ranked by {ranked_by}. Full list: "
                       f"{EXPORT_HINT.format(list_name=spec.list_name)}")


_BAND_ORDER = ("high", "medium", "low", "A", "B", "C", "D", "top", "middle")


def _segment_parts(by_model: Mapping[str, pd.DataFrame],
                   groups: Mapping[str, pd.DataFrame]) -> tuple[list[Table], list[dict]]:
    """Bands by segment (account segment, lead source) per model: counts table and a stacked share chart."""
    from models.plots import stacked_share_figure

    tables, images = [], []
    for spec in TASKS.values():
        if spec.name not in by_model:
            continue
        frame = by_model[spec.name][["entity_id", "band"]].merge(groups[spec.entity], on="entity_id", how="left")
        frame["segment"] = frame["segment"].fillna("(none)").astype(str)
        counts = pd.crosstab(frame["segment"], frame["band"])
        counts = counts[sorted(counts.columns, key=lambda b: (_BAND_ORDER.index(b) if b in _BAND_ORDER else 99, b))]
        col = spec.entity_spec.segment_column
        header = [col, *[str(c) for c in counts.columns], "total"]
        body = [[str(seg), *[(_num(v), _sort_value(v)) for v in counts.loc[seg]],
                 (_num(counts.loc[seg].sum()), _sort_value(counts.loc[seg].sum()))] for seg in counts.index]
        what = "CLV tiers" if spec.kind == "regression" else f"{spec.name} bands"
        tables.append(_table(f"segments-{spec.name}", f"{what} by {col} ({spec.name})", header, body,
                             numeric=[False, *[True] * (len(header) - 1)]))
        images.append(_svg_image(stacked_share_figure(counts, title=f"{what} by {col}"),
                                 f"{what} by {col}: share of each band per {col}"))
    return tables, images


def _factor_sentence(task: str, labels: Sequence[str], source: str) -> str:
    spec = get_task(task)
    if not labels:
        return f"{task}: no factor recorded."
    names = ", ".join(labels[:-1]) + (f" and {labels[-1]}" if len(labels) > 1 else labels[0])
    return f"{spec.reason_outcome.capitalize()} ({task}) is moved most by {names} ({source})."


def _reason_labels(rows: pd.DataFrame, k: int = 3) -> list[str]:
    counts: dict[str, int] = {}
    for text in rows["reasons"].dropna():
        for reason in json.loads(text):
            counts[reason["label"]] = counts.get(reason["label"], 0) + 1
    return [label for label, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]]


# ---------------------------------------------------------------------------------------------------------------
# Auditor part


def _known_limits(card: str | None) -> list[str]:
    if not card or "## Known limits" not in card:
        return []
    part = card.split("## Known limits", 1)[1]
    return [line[2:].strip() for line in part.splitlines() if line.startswith("- ")]


def _metrics_table(task: str, record) -> tuple[Table | None, list[str]]:
    spec = get_task(task)
    doc = record.documents.get("metrics") or {}
    held = dict(doc.get("held_out") or {})
    baselines = dict(doc.get("baselines") or {})
    notes = []
    stored = record.documents.get("intervals") or {}
    intervals = stored.get("estimates") or {}
    if not intervals:
        notes.append("Intervals: this version was registered before intervals were stored; point values only.")
    names = [m for m in metric_order(held) if not m.startswith("valid_") and m not in ("slice_collapse_count",)]

    def cell(who: str, m: str, value: Any) -> tuple[str, str]:
        est = intervals.get(who, {}).get(m) or {}
        text = _metric(value)
        if est.get("low") is not None and est.get("high") is not None:
            text += f" [{_metric(est['low'])}, {_metric(est['high'])}]"
        return text, _sort_value(value)

    rows = [[metric_label(m) + (" (primary)" if m == spec.primary_metric else ""), cell("model", m, held.get(m)),
             *[cell(b, m, baselines[b].get(m)) for b in baselines]] for m in names]
    level = f"{stored['level']:.0%}" if "level" in stored else "no"
    return _table(f"metrics-{task}", f"Held-out metrics of {task} v{record.version} against the baselines "
                  f"({level} intervals in brackets)", ["metric", "model", *baselines], rows,
                  numeric=[False, *[True] * (1 + len(baselines))], sortable=False), notes


def _provenance(task: str, record, aliases: Sequence[str], validation: dict | None) -> Table:
    docs = record.documents
    cut = docs.get("cutoffs") or {}
    train = cut.get("train_cutoffs") or cut.get("train") or []
    test = cut.get("test_cutoffs") or cut.get("test") or []
    window = (f"cutoffs {_date(min(train))} to {_date(max(test))} ({len(train)} training, {len(test)} held out); "
              f"label horizon {cut.get('horizon_days', '?')} days") if train and test else "not recorded"
    fp = docs.get("extract_fingerprint") or {}
    counts = ", ".join(f"{k} {v:,}" for k, v in sorted((fp.get("row_counts") or {}).items()))
    cr = docs.get("contract_result") or {}
    contract = (f"{'passed' if cr.get('ok') else 'FAILED'}: {cr.get('rules', '?')} rules, failed warnings: "
                f"{', '.join(cr.get('failed_warnings') or []) or 'none'} (validated {cr.get('validated_at', '?')})"
                if cr else "not recorded")
    code = record.run_tags.get("crmscore.code_version") or "not recorded (registered before code versions were)"
    rows = [["registered model", f"crmscore-{task}"], ["version", str(record.version)],
            ["aliases now", ", ".join(aliases) or "none"],
            ["MLflow run", f"{record.run_id} ({record.run_name}), started {_stamp(record.run_start)}"],
            ["training window", window],
            ["training extract fingerprint", f"{fp.get('hash', 'not recorded')} ({counts})"],
            ["training contract result", contract], ["code version", code]]
    if validation is not None:
        vfp = validation.get("fingerprint", {})
        rows.append(["scored extract fingerprint", f"{vfp.get('hash', '?')} (validated {validation.get('now', '?')})"])
    return _table(f"provenance-{task}", f"Provenance of {task} v{record.version}", ["field", "value"], rows,
                  sortable=False)


def _history_table(task: str, registry) -> Table:
    rows = []
    for v in registry.history(task):
        rows.append([(str(v.version), _sort_value(v.version)), _stamp(v.created_ts), ", ".join(v.aliases) or "-",
                     v.tags.get("gate_decision", "-"), v.tags.get("gate_reasons", "")])
    return _table(f"versions-{task}", f"Versions of crmscore-{task} and the champion-gate decisions",
                  ["version", "registered", "aliases now", "gate decision", "gate reasons"], rows,
                  numeric=[True, False, False, False, False])


def _slices_table(task: str, slices: pd.DataFrame | None) -> Table | None:
    if slices is None or slices.empty:
        return None
    wide = slices.pivot_table(index=["slice_column", "slice_value", "n"], columns="metric", values="value",
                              aggfunc="first").reset_index()
    mcols = metric_order(c for c in wide.columns if c not in ("slice_column", "slice_value", "n"))
    rows = [[str(r["slice_column"]).removeprefix("firm__"), str(r["slice_value"]), (_num(r["n"]), _sort_value(r["n"])),
             *[(_metric(r[m]), _sort_value(r[m])) for m in mcols]] for _, r in wide.iterrows()]
    return _table(f"slices-{task}", f"Held-out metrics by slice ({task}), with sample sizes",
                  ["slice", "value", "n", *[metric_label(m) for m in mcols]], rows,
                  numeric=[False, False, True, *[True] * len(mcols)])


def _monitoring_part(task: str, runs: Sequence[MonitoringRun]) -> tuple[Table | None, list[dict]]:
    from models.plots import trend_figure

    runs = sorted((r for r in runs if r.model == task), key=lambda r: r.as_of)
    if not runs:
        return None, []
    metrics = sorted({*[m for r in runs for m in r.realized], *[m for r in runs for m in r.estimated]})
    rows = []
    for r in runs:
        top = sorted(r.feature_psi.items(), key=lambda kv: -kv[1])[:3]
        rows.append([r.as_of, r.model_version, r.status, "; ".join(f"{k} {v:.3f}" for k, v in top) or "-",
                     *[f"{_metric(r.realized.get(m))} / {_metric(r.estimated.get(m))}" for m in metrics]])
    table = _table(f"monitoring-{task}", f"Monitoring history of {task}",
                   ["as of", "version", "status", "largest feature PSI",
                    *[f"{metric_label(m)} realized / estimated" for m in metrics]], rows)
    images = []
    for m in metrics[:2]:
        series = {"realized": [r.realized.get(m) for r in runs], "estimated": [r.estimated.get(m) for r in runs]}
        images.append(_svg_image(trend_figure([r.as_of for r in runs], series, title=f"{task}: {metric_label(m)}",
                                              ylabel=metric_label(m)), f"{task} {metric_label(m)} over time"))
    return table, images


def _model_section(task: str, version: str, registry, settings: Settings, validation: dict | None,
                   monitoring: Sequence[MonitoringRun]) -> tuple[ModelSection, list[str]]:
    """The auditor's part of one version, and the labels of its most influential features."""
    from models.plots import calibration_figure, importance_figure, lift_figure

    spec = get_task(task)
    what = (f"whether the {spec.entity} {spec.outcome}" if spec.kind == "binary" else f"the {spec.entity}'s "
            f"{spec.outcome}")
    intended = [f"Predicts, for each {spec.entity}, {what} ({spec.horizon_days}-day horizon).",
                f"Scores: {spec.population_spec.eligibility}.",
                f"Use: the {spec.list_name} list ({spec.list_title}); ranking and prioritising contacts, "
                "not automated decisions with legal effect on a person."]
    mon_table, mon_images = _monitoring_part(task, monitoring)
    record = None
    if registry is not None:
        from models.errors import ModelError

        try:
            record = registry.version_record(task, int(version))
        except (ModelError, ValueError) as exc:
            record = None
            why = str(exc)
        except Exception as exc:  # MLflow's own "not found"
            why = f"version {version} is not in the registry ({type(exc).__name__})"
    else:
        why = f"no MLflow registry at {redact(settings.tracking_uri)}"
    title = f"{task} v{version}: {spec.outcome}"
    if record is None:
        return ModelSection(task, version, title, None, intended, [], None, [], "", None, None, mon_table, mon_images,
                            [f"Provenance, metrics and plots unavailable: {why}."]), []
    aliases = [a for v in registry.history(task) if v.version == record.version for a in v.aliases]
    metrics, notes = _metrics_table(task, record)
    images = []
    ho = record.held_out
    if ho is not None and len(ho):
        if spec.kind == "binary":
            images.append(_svg_image(calibration_figure(ho["y"], ho["score"]), f"Calibration curve of {task} "
                                     f"v{version}: observed rate against mean predicted probability"))
        images.append(_svg_image(lift_figure(ho["y"], ho["score"]), f"Lift chart of {task} v{version} by decile"))
    else:
        for name in ("calibration", "lift"):
            if name in record.plots:
                images.append(_png_image(record.plots[name], f"{name} of {task} v{version} (stored at training)"))
    importance = record.documents.get("importance") or []
    labels = [d["label"] for d in importance]
    if importance:
        top = importance[:10]
        images.append(_svg_image(importance_figure([d["label"] for d in top], [d["mean_abs_shap"] for d in top],
                                                   title="Global SHAP importance (held-out rows)"),
                                 f"Global SHAP importance of {task} v{version}"))
        words = _factor_sentence(task, labels[:3], "mean absolute SHAP on the held-out rows")
    else:
        if "shap_summary" in record.plots:
            images.append(_png_image(record.plots["shap_summary"], f"SHAP summary of {task} v{version}"))
        words = ""
    section = ModelSection(
        task=task, version=str(version), title=title, provenance=_provenance(task, record, aliases, validation),
        intended_use=intended, limits=_known_limits(record.texts.get("model_card.md")), metrics=metrics,
        images=images, importance_words=words, slices=_slices_table(task, record.slices),
        history=_history_table(task, registry), monitoring=mon_table, monitoring_images=mon_images, notes=notes)
    return section, labels[:3]


def _contract_table(validation: dict | None) -> tuple[Table | None, str]:
    if validation is None:
        return None, "No saved validation run matches the scored extract."
    rows = []
    for r in validation.get("results", []):
        where = f"{r['table']}.{r['column']}" if r.get("column") else r["table"]
        rows.append([r["rule"], where, r["severity"], r["status"], (_num(r["unexpected_count"]),
                     _sort_value(r["unexpected_count"])), ", ".join(r.get("sample_ids") or []), r.get("description", "")])
    s = validation.get("summary", {})
    summary = (f"Extract {validation.get('fingerprint', {}).get('hash', '?')[:12]} validated {validation.get('now')}: "
               f"{'passed' if validation.get('ok') else 'FAILED'}, {s.get('rules', len(rows))} rules, "
               f"{s.get('failed_errors', 0)} failed error(s), {s.get('failed_warnings', 0)} failed warning(s), "
               f"{s.get('skipped', 0)} skipped.")
    return _table("contract", "Data-contract results of the scored extract (every rule)",
                  ["rule", "where", "severity", "status", "count", "sample ids", "description"], rows,
                  numeric=[False, False, False, False, True, False, False]), summary


# ---------------------------------------------------------------------------------------------------------------
# The whole page


def gather_report(settings: Settings, *, as_of: pd.Timestamp | None = None,
                  monitoring: Iterable[Mapping[str, Any] | MonitoringRun] | pd.DataFrame | None = None) -> ReportData:
    """Everything the page shows, read from the stored state (read-only). Raises NoScoresError without scores.

    ``monitoring`` replaces the stored monitoring runs (None: read them from the CRM's monitoring tables)."""
    location = settings.crm_url
    runs = stored_monitoring(location) if monitoring is None else monitoring_runs(monitoring)
    stored = _scores_at(location, as_of)
    scores = stored.rows
    by_model = {str(m): rows for m, rows in scores.groupby("model", sort=True)}
    groups = {e: segments_of(location, e) for e in sorted(_distinct(scores["entity_type"]))}
    run_ids = sorted(_distinct(stored.runs["scoring_run_id"]))
    run_doc = _scoring_run(settings, run_ids)
    validation = _validation_run(settings, (run_doc or {}).get("extract_fingerprint", {}).get("hash"))
    lists = []
    for spec in TASKS.values():
        if spec.name not in by_model:
            continue
        rows = by_model[spec.name]
        ranked = rank_scores(rows, groups[spec.entity], stored.var if spec.value_at_risk_with else None, spec.name,
                             top=settings.report.list_rows)
        ranked = ranked.merge(stored.reasons(spec.name, ranked["entity_id"]), on="entity_id", how="left")
        lists.append(_list_table(ranked, spec.name, len(rows)))
    seg_tables, seg_images = _segment_parts(by_model, groups)
    registry = _registry(settings)
    models, factors = [], []
    for spec in TASKS.values():
        rows = by_model.get(spec.name, scores.iloc[:0])
        versions = sorted(_distinct(rows["model_version"]), key=int)
        for version in versions:
            section, labels = _model_section(spec.name, version, registry, settings, validation, runs)
            models.append(section)
            if not labels:
                mine = rows[rows["model_version"] == version]
                top = mine.sort_values(["score", "entity_id"], ascending=[False, True]).head(settings.report.list_rows)
                labels = _reason_labels(stored.reasons(spec.name, top["entity_id"]))
                factors.append(_factor_sentence(spec.name, labels, "the reasons most often given in its top list"))
            else:
                factors.append(_factor_sentence(spec.name, labels, "mean absolute SHAP on held-out rows"))
    contract, contract_summary = _contract_table(validation)
    as_of_text = _date(stored.runs["as_of"].max())
    champions = {spec.name: sorted(_distinct(by_model[spec.name]["model_version"])) for spec in TASKS.values()
                 if spec.name in by_model}
    return ReportData(
        title=f"crmscore report: scores as of {as_of_text}",
        subtitle=f"CRM {redact(location)}; scoring run(s) {', '.join(run_ids)}",
        tiles=_tiles(stored, by_model, validation, runs), lists=lists, segment_tables=seg_tables,
        segment_images=seg_images, factors=factors, models=models, contract=contract,
        contract_summary=contract_summary,
        export_hints=[EXPORT_HINT.format(list_name=spec.list_name) for spec in TASKS.values()
                      if spec.name in by_model],
        script_data={"page": "report", "as_of": as_of_text, "models": champions,
                     "segments": sorted(set().union(*(_distinct(g["segment"]) for g in groups.values())))[:50]})


# ---------------------------------------------------------------------------------------------------------------
# Rendering


def _environment():
    from jinja2 import Environment, PackageLoader, StrictUndefined

    return Environment(loader=PackageLoader("pipelines", "templates"), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)


def _csp_hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


def render_page(template: str, script_data: Mapping[str, Any], **context: Any) -> str:
    """Render ``template`` with the shared style and script, pinned by their sha256 in the page's CSP."""
    env = _environment()
    style = env.get_template("style.css.j2").render()
    script = env.get_template("script.js.j2").render(data=dict(script_data))
    csp = ("default-src 'none'; img-src data:; style-src " + _csp_hash(style) + "; script-src " + _csp_hash(script)
           + "; base-uri 'none'; form-action 'none'")
    return env.get_template(template).render(style=style, script=script, csp=csp, **context)


def render_report(data: ReportData) -> str:
    """The report page as HTML text."""
    return render_page("report.html.j2", data.script_data, d=data)


def build_report(settings: Settings, *, as_of: pd.Timestamp | None = None,
                 monitoring: Iterable[Mapping[str, Any] | MonitoringRun] | pd.DataFrame | None = None) -> str:
    """The report of the stored state as HTML text (read-only)."""
    return render_report(gather_report(settings, as_of=as_of, monitoring=monitoring))


def write_page(html: str, out: Path) -> Path:
    """Write the page at ``out`` all-or-nothing (a temporary file beside it, then renamed)."""
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out


_URL_ATTRIBUTES = ("src", "href", "action", "formaction", "srcset", "poster", "data", "background", "xlink:href",
                   "manifest", "ping", "cite", "longdesc", "codebase")


def external_references(html: str) -> list[str]:
    """Every reference of the page (and of the SVG images inside it) to something outside it: URL attributes that
    are not ``data:`` or a ``#fragment``, CSS ``url(...)``/``@import`` that are not ``data:``, ``<link>``, ``<base>``,
    ``<iframe>``, ``<object>``, ``<embed>`` elements, and ``<script src>``. Empty for a self-contained page."""
    from html.parser import HTMLParser

    found: list[str] = []

    class _Refs(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in ("link", "base", "iframe", "object", "embed", "frame", "portal"):
                found.append(f"<{tag}>")
            for name, value in attrs:
                value = (value or "").strip()
                if name in _URL_ATTRIBUTES and value and not value.startswith(("data:", "#")):
                    found.append(f"<{tag} {name}={value[:80]}>")
                if name in _URL_ATTRIBUTES and value.startswith("data:image/svg+xml;base64,"):
                    svg = base64.b64decode(value.split(",", 1)[1]).decode("utf-8")
                    found.extend(f"(in an SVG image) {r}" for r in external_references(svg))
                if name == "style":
                    found.extend(_css_refs(value))

        def handle_data(self, data):
            if self.lasttag == "style":
                found.extend(_css_refs(data))

    parser = _Refs()
    parser.feed(html)
    parser.close()
    return found


def _css_refs(css: str) -> list[str]:
    import re

    out = [f"url({u[:80]})" for u in re.findall(r"url\(\s*['\"]?([^'\")]*)", css) if not u.startswith(("data:", "#"))]
    return out + (["@import"] if "@import" in css else [])


# ---------------------------------------------------------------------------------------------------------------
# The per-record page


def _what_moves(rc) -> str:
    """One sentence: the factor whose contribution is largest, and where the score would be without it."""
    contrib = np.asarray(rc.contributions, dtype=float)
    feats = contrib[:-1]
    if not len(feats):
        return "No factor moves this score."
    i = int(np.argmax(np.abs(feats)))
    raw = float(contrib.sum())
    spec = get_task(rc.row["model"])
    now = float(rc.predictor.calibrate_raw(np.array([raw]))[0])
    without = float(rc.predictor.calibrate_raw(np.array([raw - feats[i]]))[0])
    direction = "raises" if feats[i] > 0 else "lowers"
    value_text = _value(rc.values.iloc[i])
    fmt = (lambda x: _num(x, 2)) if spec.kind == "regression" else _pct
    return (f"What would move this {spec.name} score most: {rc.labels[i]} (now {value_text}) {direction} "
            f"{spec.reason_outcome} more than any other factor; with that factor at the model's average effect "
            f"(contribution 0 instead of {feats[i]:+.3f} on the model's raw scale) the score would be about "
            f"{fmt(without)} instead of {fmt(now)}.")


def record_page(settings: Settings, entity_id: str) -> str:
    """The per-record page: every score the record has had, with reasons, feature values, a waterfall and what
    would move it most (read-only). Raises RecordNotFoundError for an unknown or never-scored id."""
    from models.plots import svg_text, waterfall_figure

    record = explain_record(settings.crm_url, entity_id)
    hist = record.history
    rows = []
    for r in hist.itertuples(index=False):
        reasons = json.loads(r.reasons) if isinstance(r.reasons, str) else []
        detail = "; ".join(f"{x['label']}: {_value(x['value'])} ({x['contribution']:+.4f})" for x in reasons)
        rows.append([_date(r.as_of), str(r.model), str(r.model_version),
                     (_score_text(r.model, r.score), _sort_value(r.score)), str(r.band),
                     (str(r.score_percentile), _sort_value(r.score_percentile)), str(r.scoring_run_id),
                     _stamp(r.scored_at), "" if pd.isna(r.reason_text) else str(r.reason_text), detail])
    history = _table("history", f"Every score written for {record.title}",
                     ["as of", "model", "version", "score", "band", "percentile", "scoring run", "written",
                      "reasons", "contributions (score scale)"], rows,
                     numeric=[False, False, True, True, False, True, False, False, False, False])
    registry = _registry(settings)
    parts, notes = [], []
    if registry is None:
        notes.append(f"No MLflow registry at {redact(settings.tracking_uri)}: feature values and the waterfall need "
                     "the model version that made the score.")
    else:
        for rc in record_contributions(settings, hist, registry):
            with waterfall_figure(rc.contributions, rc.values, rc.labels, title=rc.title) as fig:
                image = {"src": _data_uri("image/svg+xml", svg_text(fig).encode("utf-8")),
                         "alt": f"SHAP waterfall of {rc.title}"}
            contrib = np.asarray(rc.contributions, dtype=float)[:-1]
            order = np.argsort(-np.abs(contrib), kind="stable")
            feats = _table(f"features-{rc.row['model']}", f"Feature values seen by {rc.title}, by size of effect",
                           ["feature", "value", "contribution (raw scale)"],
                           [[rc.labels[i], _value(rc.values.iloc[i]),
                             (f"{contrib[i]:+.4f}", _sort_value(contrib[i]))] for i in order],
                           numeric=[False, False, True])
            parts.append({"title": rc.title, "image": image, "features": feats, "sentence": _what_moves(rc)})
        if not parts:
            notes.append("The model versions of these scores are not in the registry, or the record is no longer in "
                         "the extract: feature values and the waterfall cannot be recomputed.")
    return render_page("record.html.j2", {"page": "record", "entity_id": entity_id,
                                          "models": sorted(_distinct(hist["model"]))},
                       title=f"crmscore: {record.title}", record=record, history=history, parts=parts, notes=notes)
