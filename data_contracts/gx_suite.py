"""Compilation of a table's contract rules into a GX Core 1.24 ExpectationSuite, and running it on a DataFrame.

Built from the YAML at run time (`rules.table_rules`), never written out by hand: each rule of a GX kind becomes
one expectation whose `meta["rule"]` is the rule name, so results map back to rules one to one. The extraction
time is a suite parameter (`$PARAMETER: now`), given at run time, so a compiled suite does not depend on the clock.
GX is imported inside the functions: importing this package must stay cheap (crm/ reads schema.py).
"""
from __future__ import annotations

import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from data_contracts.rules import Rule, table_rules
from data_contracts.schema import table_schema

if TYPE_CHECKING:  # pragma: no cover
    import great_expectations as gx

#: How many offending rows GX returns per expectation; enough to give 5 distinct ids for duplicates.
PARTIAL_UNEXPECTED_COUNT = 20
SAMPLE_SIZE = 5
NULL_ID = "<null>"


def _expectation(rule: Rule) -> Any:
    import great_expectations.expectations as gxe

    meta = {"rule": rule.name, "severity": rule.severity, "description": rule.description}
    col, p = rule.column, rule.params
    if rule.kind == "not_null":
        return gxe.ExpectColumnValuesToNotBeNull(column=col, meta=meta)
    if rule.kind == "unique":
        return gxe.ExpectColumnValuesToBeUnique(column=col, meta=meta)
    if rule.kind == "in_set":
        return gxe.ExpectColumnValuesToBeInSet(column=col, value_set=list(p["values"]), meta=meta)
    if rule.kind == "regex":
        return gxe.ExpectColumnValuesToMatchRegex(column=col, regex=p["pattern"], meta=meta)
    if rule.kind == "range":
        return gxe.ExpectColumnValuesToBeBetween(column=col, min_value=p.get("min"), max_value=p.get("max"), meta=meta)
    if rule.kind == "not_after_now":
        return gxe.ExpectColumnValuesToBeBetween(column=col, max_value={"$PARAMETER": "now"}, meta=meta)
    if rule.kind == "column_order":
        # Only rows where both times/values are set are compared: a null end means "still open".
        return gxe.ExpectColumnPairValuesAToBeGreaterThanB(
            column_A=p["greater"], column_B=p["lesser"], or_equal=True, ignore_row_if="either_value_is_missing",
            meta=meta)
    raise ValueError(f"rule {rule.name!r} of kind {rule.kind!r} is not a GX rule")


def compile_suite(table: str, *, columns: set[str] | None = None) -> "gx.ExpectationSuite":
    """Compile the GX-expressible rules of one table's contract into an ExpectationSuite.

    Parameters
    ----------
    table
        An input table name (accounts, leads, subscriptions, orders, activities, tickets).
    columns
        If given, only rules whose columns are all in this set are compiled (the validator passes the columns
        that are present with the right dtype; the others are reported as skipped). None compiles every rule.

    Returns
    -------
    gx.ExpectationSuite
        Named `crmscore.<table>`, one expectation per rule, `meta["rule"]` = the rule name. The suite parameter
        `now` (a tz-aware UTC pd.Timestamp) must be given at run time as `expectation_parameters={"now": now}`.
    """
    import great_expectations as gx

    rules = [r for r in table_rules(table) if r.runs_in_gx and (columns is None or set(r.columns) <= columns)]
    return gx.ExpectationSuite(
        name=f"crmscore.{table}", expectations=[_expectation(r) for r in rules],
        meta={"contract": table, "contract_version": table_schema(table).version})


@dataclass(frozen=True)
class GxOutcome:
    """What GX found for one rule: the number of offending rows and up to 5 offending primary-key ids."""

    rule: str
    success: bool
    unexpected_count: int
    sample_ids: tuple[str, ...]
    detail: str = ""


def _id_text(value: Any) -> str:
    return NULL_ID if value is None or (not isinstance(value, str) and pd.isna(value)) else str(value)


def _outcome(res: Any, pk_values: np.ndarray | None) -> GxOutcome:
    """Map one GX result back to its rule. `pk_values` are the primary-key ids by row position (None if the key
    column is not usable: rows are then named by position)."""
    rule = res.expectation_config.meta["rule"]
    if res.exception_info and res.exception_info.get("raised_exception"):
        msg = str(res.exception_info.get("exception_message", "")).splitlines()[0][:300]
        return GxOutcome(rule, False, 0, (), f"GX could not evaluate the rule: {msg}")
    r = res.result or {}
    count = int(r.get("unexpected_count") or 0)
    ids: list[str] = []
    for pos in r.get("partial_unexpected_index_list") or []:
        t = _id_text(pk_values[int(pos)]) if pk_values is not None else f"row {pos}"
        if t not in ids:
            ids.append(t)
        if len(ids) == SAMPLE_SIZE:
            break
    return GxOutcome(rule, bool(res.success), count, tuple(ids))


def new_context(data_docs_dir: Path | None = None) -> Any:
    """An ephemeral GX context with progress bars off, and a filesystem Data Docs site if a folder is given."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    if data_docs_dir is not None:
        Path(data_docs_dir).mkdir(parents=True, exist_ok=True)
        ctx.add_data_docs_site(site_name="crmscore", site_config={
            "class_name": "SiteBuilder",
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(data_docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        })
    return ctx


class _quiet_gx_pandas_warnings(warnings.catch_warnings):
    """GX 1.24's column-pair metrics call `Series.values` on tz-aware columns, which pandas 3.1 deprecates
    (Pandas4Warning) hundreds of times per run; the results are right, so the noise is silenced here only."""

    def __enter__(self) -> None:
        super().__enter__()
        warnings.filterwarnings("ignore", message="Series.values returning an ndarray that drops timezone")


_SHARED: dict[str, Any] = {}  # the process-wide context of runs without Data Docs, made on first use
# Prefect runs tasks in threads: one GX context is not safe to grow and run from two threads at once.
_SHARED_LOCK = threading.Lock()


def shared_context() -> Any:
    """A process-wide ephemeral context (no Data Docs) reused across validations: building suites and validation
    definitions costs more than validating a small extract, so each (table, usable columns) is compiled once."""
    if "ctx" not in _SHARED:
        _SHARED["ctx"] = new_context(None)
        _SHARED["definitions"] = {}
    return _SHARED["ctx"]


def _definition(ctx: Any, table: str, columns: set[str], cache: dict | None) -> Any:
    import great_expectations as gx

    key = (table, frozenset(columns))
    if cache is not None and key in cache:
        return cache[key]
    # In the shared context one table may be compiled for several column sets: suffix the names to keep them
    # unique. A Data Docs context validates each table once and keeps the plain names its pages are filed under.
    suffix = f".{len(cache)}" if cache is not None else ""
    suite = compile_suite(table, columns=columns)
    suite.name = f"{suite.name}{suffix}"
    suite = ctx.suites.add(suite)
    asset = ctx.data_sources.add_pandas(f"crm_{table}{suffix}").add_dataframe_asset(table)
    batch_def = asset.add_batch_definition_whole_dataframe("whole_extract")
    vd = ctx.validation_definitions.add(gx.ValidationDefinition(name=f"crmscore.{table}{suffix}", data=batch_def,
                                                                suite=suite))
    if cache is not None:
        cache[key] = vd
    return vd


def run_suite(ctx: Any | None, table: str, frame: pd.DataFrame, columns: set[str], now: pd.Timestamp,
              *, data_docs: bool = False) -> dict[str, GxOutcome]:
    """Validate one table's frame with its compiled suite; return the outcome of each compiled rule by name.

    Parameters
    ----------
    ctx
        A context from `new_context(data_docs_dir)` when Data Docs are wanted (`data_docs` true: its site is
        updated by an UpdateDataDocsAction), or None to use the shared context without Data Docs.
    frame
        The raw contract frame (canonical dtypes); extra columns are ignored.
    columns
        Columns present with the right dtype: rules on other columns are not compiled.
    now
        The extraction time (tz-aware UTC), bound to the suite parameter `now`.
    """
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction

    rules = [r for r in table_rules(table) if r.runs_in_gx and set(r.columns) <= columns]
    if not rules:
        return {}
    pk = table_schema(table).primary_key
    # GX reports offending rows by index; with a fresh RangeIndex that is the row position, mapped to ids here.
    # (Asking GX for `unexpected_index_column_names` instead made a run with 100k offending rows 3x slower.)
    frame = frame.reset_index(drop=True)
    pk_values = frame[pk].to_numpy(dtype=object) if pk in columns else None
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL_UNEXPECTED_COUNT}
    if data_docs:
        vd = _definition(ctx, table, columns, None)
        checkpoint = ctx.checkpoints.add(gx.Checkpoint(
            name=f"crmscore.{table}", validation_definitions=[vd], result_format=result_format,
            actions=[UpdateDataDocsAction(name="update_data_docs", site_names=["crmscore"])]))
        with _quiet_gx_pandas_warnings():
            run = checkpoint.run(batch_parameters={"dataframe": frame}, expectation_parameters={"now": now})
        (vres,) = run.run_results.values()
    else:
        with _SHARED_LOCK, _quiet_gx_pandas_warnings():
            shared = shared_context() if ctx is None else ctx
            vd = _definition(shared, table, columns, _SHARED["definitions"] if ctx is None else None)
            vres = vd.run(batch_parameters={"dataframe": frame}, expectation_parameters={"now": now},
                          result_format=result_format)
    return {o.rule: o for o in (_outcome(r, pk_values) for r in vres.results)}
