"""The quality gate: validate a raw CRM extract against every contract rule, before any model or write-back.

`validate_extract` runs the GX suites compiled from the contract YAML (per-table rules) and the pandas checks
beside them (structure, references between tables, volume against history), and returns one `ValidationReport`
with a result per rule, in the order the contracts list them.
"""
from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pandas as pd

from data_contracts import checks
from data_contracts.checks import CheckOutcome
from data_contracts.errors import ContractViolation, ValidationParameterError
from data_contracts.fingerprint import Fingerprint, compute_fingerprint
from data_contracts.rules import Rule, table_rules
from data_contracts.schema import INPUT_TABLES, table_schema
from data_contracts.vectorised import evaluate_table

Status = Literal["passed", "failed", "skipped"]
Engine = Literal["vectorised", "gx"]
#: Rows per table that GX validates to render the Data Docs when the vectorised engine computed the results.
DOCS_SAMPLE_ROWS = 10_000


@dataclass(frozen=True)
class RuleResult:
    """The outcome of one rule on one extract.

    `status` is "skipped" when the rule could not be evaluated because what it reads is absent or mistyped (the
    structure rules report that once), or because there is no history to compare with. A skipped rule is not a
    failure. `sample_ids` are up to 5 offending primary-key ids.
    """

    rule: str
    table: str
    column: str | None
    severity: Literal["error", "warning"]
    status: Status
    unexpected_count: int
    sample_ids: tuple[str, ...]
    description: str
    detail: str = ""

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    @property
    def failed(self) -> bool:
        return self.status == "failed"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "table": self.table, "column": self.column, "severity": self.severity,
                "status": self.status, "passed": self.passed, "unexpected_count": self.unexpected_count,
                "sample_ids": list(self.sample_ids), "description": self.description, "detail": self.detail}


def _iso(ts: pd.Timestamp | None) -> str | None:
    return None if ts is None else ts.isoformat()


@dataclass(frozen=True)
class ValidationReport:
    """Every rule's result on one extract, its fingerprint, and the times it was validated against.

    `now` is the extraction time the freshness rules used; `as_of` the prediction date of the run (informational:
    rows after an earlier as_of are legitimate, a backtest simply ignores them).
    """

    results: tuple[RuleResult, ...]
    fingerprint: Fingerprint
    now: pd.Timestamp
    as_of: pd.Timestamp | None
    max_volume_drop: float
    previous_hash: str | None
    validated_at: pd.Timestamp
    duration_s: float
    data_docs_index: Path | None = None

    @property
    def failures(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if r.failed)

    @property
    def errors(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.failures if r.severity == "error")

    @property
    def warnings(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.failures if r.severity == "warning")

    @property
    def failed_rules(self) -> frozenset[str]:
        return frozenset(r.rule for r in self.failures)

    @property
    def ok(self) -> bool:
        """True when no error-severity rule failed (warnings do not stop a run)."""
        return not self.errors

    def result(self, rule: str) -> RuleResult:
        for r in self.results:
            if r.rule == rule:
                return r
        raise KeyError(f"no rule named {rule!r} in this report")

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok, "now": _iso(self.now), "as_of": _iso(self.as_of),
            "validated_at": _iso(self.validated_at), "duration_s": round(self.duration_s, 3),
            "max_volume_drop": self.max_volume_drop, "previous_hash": self.previous_hash,
            "fingerprint": self.fingerprint.to_dict(),
            "summary": {"rules": len(self.results), "failed_errors": len(self.errors),
                        "failed_warnings": len(self.warnings),
                        "skipped": sum(r.status == "skipped" for r in self.results)},
            "data_docs_index": str(self.data_docs_index) if self.data_docs_index else None,
            "results": [r.to_dict() for r in self.results],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def raise_for_errors(self) -> None:
        """Raise ContractViolation listing each failed error-severity rule on one line; do nothing if ok."""
        if self.ok:
            return
        lines = []
        for r in self.errors:
            where = f"{r.table}.{r.column}" if r.column else r.table
            ids = f" e.g. {', '.join(r.sample_ids)}" if r.sample_ids else ""
            detail = f" ({r.detail})" if r.detail else ""
            lines.append(f"  {r.rule} [{where}]: {r.unexpected_count} offending{ids}{detail} - {r.description}")
        raise ContractViolation(
            f"the extract (fingerprint {self.fingerprint.short}) broke {len(lines)} contract rule(s) of severity "
            f"error:\n" + "\n".join(lines), failed_rules=tuple(r.rule for r in self.errors))


def _utc(ts: pd.Timestamp | str, name: str) -> pd.Timestamp:
    try:
        out = pd.Timestamp(ts)
    except (ValueError, TypeError) as exc:
        raise ValidationParameterError(f"{name}={ts!r} is not a timestamp") from exc
    if out is pd.NaT:
        raise ValidationParameterError(f"{name} must be a timestamp, got NaT")
    # Naive times are UTC by the contract; aware ones are converted.
    return out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")


def _structure(rules: tuple[Rule, ...], frame: pd.DataFrame | None, table: str
               ) -> tuple[dict[str, CheckOutcome], set[str], dict[str, str]]:
    """Outcomes of the structure rules, the usable columns (present with the right dtype), and why others are not."""
    schema = table_schema(table)
    out: dict[str, CheckOutcome] = {}
    unusable: dict[str, str] = {}
    if frame is None:
        for r in rules:
            if r.kind == "table_present":
                out[r.name] = CheckOutcome("failed", 1, (), f"required table {table} is absent from the extract")
        return out, set(), unusable
    missing_req = [c.name for c in schema.columns if c.required and c.name not in frame.columns]
    missing_opt = [c.name for c in schema.columns if not c.required and c.name not in frame.columns]
    for c in missing_req + missing_opt:
        unusable[c] = f"column {c} is missing (see {table}.columns_present)"
    bad_types = {}
    for c in schema.columns:
        if c.name in frame.columns:
            problem = checks.dtype_problem(frame[c.name], c)
            if problem:
                bad_types[c.name] = problem
                unusable[c.name] = f"column {c.name} has the wrong dtype (see {table}.column_types)"
    for r in rules:
        if r.kind == "table_present":
            out[r.name] = checks.PASSED
        elif r.kind == "columns_present":
            out[r.name] = (CheckOutcome("failed", len(missing_req), (), "missing: " + ", ".join(missing_req),
                                        column=", ".join(missing_req)) if missing_req else checks.PASSED)
        elif r.kind == "optional_columns_present":
            out[r.name] = (CheckOutcome("failed", len(missing_opt), (), "missing: " + ", ".join(missing_opt),
                                        column=", ".join(missing_opt)) if missing_opt else checks.PASSED)
        elif r.kind == "column_types":
            out[r.name] = (CheckOutcome("failed", len(bad_types), (), "; ".join(bad_types.values()),
                                        column=", ".join(bad_types)) if bad_types else checks.PASSED)
    usable = {c.name for c in schema.columns if c.name in frame.columns and c.name not in bad_types}
    return out, usable, unusable


def validate_extract(tables: Mapping[str, pd.DataFrame], *, now: pd.Timestamp, as_of: pd.Timestamp | None = None,
                     previous: Fingerprint | None = None, max_volume_drop: float = 0.5,
                     data_docs_dir: Path | None = None, engine: Engine = "vectorised") -> ValidationReport:
    """Validate a raw CRM extract against every rule of the data contracts.

    Parameters
    ----------
    tables
        Raw contract frames keyed by table name, in the canonical dtypes (docs/architecture.md); deleted rows are
        still in them; absent optional tables are absent from the mapping. Extra columns are ignored. A missing
        required table or column, or a wrong dtype, is a failed rule, never an exception.
    now
        The extraction time (tz-aware UTC; naive is read as UTC): no row may be dated after it.
    as_of
        The prediction date of the run, recorded in the report. It may be earlier than `now` (a backtest): rows
        after it are not an error. It may not be later than `now`.
    previous
        The fingerprint of the last validated extract (see `history.load_last_fingerprint`), for the volume
        rules; None skips them.
    max_volume_drop
        The largest allowed relative drop of a table's row count against `previous` (0..1).
    data_docs_dir
        If given, GX Data Docs (HTML, `index.html`) are built into this folder. With the vectorised engine they show
        GX's results on the first `DOCS_SAMPLE_ROWS` rows of each table (the report holds the results on all rows).
    engine
        "vectorised" (`data_contracts.vectorised`: one numpy/Arrow pass per rule, minutes less at millions of rows)
        or "gx" (GX's pandas engine on every row). Both give the same results, counts and sample ids
        (tests/integration/test_validation_engines.py).

    Returns
    -------
    ValidationReport
        One result per contract rule, `.ok`, `.fingerprint`, `.to_json()`, `.raise_for_errors()`.

    Raises
    ------
    ValidationParameterError
        If `now`/`as_of` are not timestamps, `as_of` is after `now`, or `max_volume_drop` is outside 0..1.
    """
    started = time.perf_counter()
    now_ts = _utc(now, "now")
    as_of_ts = _utc(as_of, "as_of") if as_of is not None else None
    if as_of_ts is not None and as_of_ts > now_ts:
        raise ValidationParameterError(
            f"as_of={as_of_ts.isoformat()} is after the extraction time now={now_ts.isoformat()}: "
            "a run cannot predict from data that does not exist yet; pass an as_of <= now")
    if engine not in ("vectorised", "gx"):
        raise ValidationParameterError(f"engine={engine!r}; possible values are 'vectorised', 'gx'")
    if not 0.0 <= float(max_volume_drop) <= 1.0:
        raise ValidationParameterError(f"max_volume_drop={max_volume_drop!r} must be a share between 0 and 1")

    frames = {t: tables[t] for t in INPUT_TABLES if t in tables and tables[t] is not None}
    structure: dict[str, tuple[dict[str, CheckOutcome], set[str], dict[str, str]]] = {
        t: _structure(table_rules(t), frames.get(t), t) for t in INPUT_TABLES}
    usable = {t: s[1] for t, s in structure.items()}

    ctx = None
    results: list[RuleResult] = []
    for t in INPUT_TABLES:
        rules = table_rules(t)
        frame = frames.get(t)
        outcomes, cols, unusable = structure[t]
        schema = table_schema(t)
        if frame is not None and any(r.runs_in_gx and set(r.columns) <= cols for r in rules):
            if engine == "gx" or data_docs_dir is not None:
                from data_contracts.gx_suite import new_context, run_suite

                if ctx is None and data_docs_dir is not None:
                    ctx = new_context(data_docs_dir)
                # With the vectorised engine GX renders the docs from the first rows only (its suites, its pages)
                docs_frame = frame if engine == "gx" else frame.head(DOCS_SAMPLE_ROWS)
                gx_out = run_suite(ctx, t, docs_frame, cols, now_ts, data_docs=data_docs_dir is not None)
            if engine == "vectorised":
                gx_out = evaluate_table(t, frame, cols, now_ts)
            for name, o in gx_out.items():
                outcomes[name] = CheckOutcome("passed" if o.success else "failed", o.unexpected_count,
                                              o.sample_ids, o.detail)
        prev_rows = previous.row_counts.get(t, 0) if previous is not None else None
        rows = len(frame) if frame is not None else 0
        for r in rules:
            if r.name in outcomes:
                continue
            if r.kind in ("volume_not_emptied", "volume_no_collapse"):
                if frame is None and schema.required:
                    outcomes[r.name] = CheckOutcome("skipped", detail=f"table absent (see {t}.table_present)")
                elif r.kind == "volume_not_emptied":
                    outcomes[r.name] = checks.check_volume_not_emptied(r, rows, prev_rows)
                else:
                    outcomes[r.name] = checks.check_volume_no_collapse(r, rows, prev_rows, float(max_volume_drop))
                continue
            if frame is None:
                outcomes[r.name] = CheckOutcome("skipped", detail=f"table {t} is absent" + (
                    f" (see {t}.table_present)" if schema.required else " (optional)"))
                continue
            not_usable = [c for c in r.columns if c not in cols]
            if not_usable:
                outcomes[r.name] = CheckOutcome("skipped", detail="; ".join(unusable.get(c, c) for c in not_usable))
            elif r.kind == "references":
                outcomes[r.name] = checks.check_references(r, frame, frames, usable)
            elif r.kind == "exactly_one_of":
                outcomes[r.name] = checks.check_exactly_one_of(r, frame)
            elif r.kind == "not_both":
                outcomes[r.name] = checks.check_not_both(r, frame)
            else:  # a GX rule not compiled: cannot happen with usable columns, but never report it as passed
                outcomes[r.name] = CheckOutcome("skipped", detail="not evaluated")
        for r in rules:
            o = outcomes[r.name]
            results.append(RuleResult(
                rule=r.name, table=t, column=o.column if o.column is not None else r.column, severity=r.severity,
                status=o.status, unexpected_count=o.unexpected_count, sample_ids=o.sample_ids,  # type: ignore[arg-type]
                description=r.description, detail=o.detail))

    docs_index = None
    if data_docs_dir is not None and (Path(data_docs_dir) / "index.html").exists():
        docs_index = Path(data_docs_dir) / "index.html"
    return ValidationReport(
        results=tuple(results), fingerprint=compute_fingerprint(frames), now=now_ts, as_of=as_of_ts,
        max_volume_drop=float(max_volume_drop), previous_hash=previous.hash if previous is not None else None,
        validated_at=pd.Timestamp.now(tz="UTC"), duration_s=time.perf_counter() - started,
        data_docs_index=docs_index)
