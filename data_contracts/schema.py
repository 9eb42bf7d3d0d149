"""The table and column schema of a CRM extract and of the tables written back, read from the ODCS contract files
beside this module.

The contract YAML is the single source of truth: the extract reader takes its allow-list of columns and
their types from here, so a column that is not in a contract (free text, PII) is never read; the write-back
(crm/writeback.py) builds its tables and read-back dtypes from the output contracts.

Input and output contracts are kept apart by the contract's `tableRole` custom property (absent = input):
`table_schema` reads input tables only (everything that validates, reads or fingerprints an extract goes
through it and `INPUT_TABLES`), `output_schema` output tables only.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

from data_contracts.errors import ContractDefinitionError

LogicalType = Literal["string", "timestamp", "number", "integer", "boolean"]
CONTRACT_DIR = Path(__file__).resolve().parent
#: Input tables in dependency order (referenced tables first).
INPUT_TABLES: tuple[str, ...] = ("accounts", "leads", "subscriptions", "orders", "activities", "tickets")
#: Tables the pipeline writes back (crm/writeback.py); never part of an extract.
OUTPUT_TABLES: tuple[str, ...] = ("crm_scores", "crm_scores_history", "crm_value_at_risk", "crm_monitor_runs",
                                  "crm_monitor_metrics")


@dataclass(frozen=True)
class ColumnSpec:
    name: str
    logical_type: LogicalType
    required: bool
    unique: bool = False
    references: str | None = None  # "table.column"


@dataclass(frozen=True)
class TableSchema:
    name: str
    required: bool
    columns: tuple[ColumnSpec, ...]
    version: str

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def primary_key(self) -> str:
        return next(c.name for c in self.columns if c.unique)

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no contract column {name!r}")


@dataclass(frozen=True)
class OutputTableSchema:
    """The schema of a table the pipeline writes back (an output contract).

    `primary_key` is in key order (empty: no key); `indexes` are the columns with a single-column index;
    `run_columns` are set once per run by the write-back, the others (`input_columns`) come with each row.
    """

    name: str
    columns: tuple[ColumnSpec, ...]
    primary_key: tuple[str, ...]
    indexes: tuple[str, ...]
    run_columns: tuple[str, ...]
    version: str

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns)

    @property
    def input_columns(self) -> tuple[str, ...]:
        return tuple(c.name for c in self.columns if c.name not in self.run_columns)

    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no contract column {name!r}")


def load_contract(table: str) -> dict:
    """The raw ODCS document of one table's contract."""
    path = CONTRACT_DIR / f"{table}.yaml"
    with path.open() as fh:
        return yaml.safe_load(fh)


def _custom(entries: list[dict] | None) -> dict:
    return {p["property"]: p["value"] for p in entries or []}


def _role(doc: dict) -> str:
    return str(_custom(doc.get("customProperties")).get("tableRole", "input"))


def _column(p: dict) -> ColumnSpec:
    rel = p.get("relationships") or []
    return ColumnSpec(name=p["name"], logical_type=p["logicalType"], required=bool(p.get("required", False)),
                      unique=bool(p.get("unique", False)), references=rel[0]["to"] if rel else None)


@cache
def table_schema(table: str) -> TableSchema:
    """The schema of one input table (an extract table); an output contract is refused."""
    doc = load_contract(table)
    if _role(doc) != "input":
        raise ContractDefinitionError(
            f"{table!r} is an {_role(doc)} table contract, not an input table of the extract "
            f"{list(INPUT_TABLES)}; read it with data_contracts.schema.output_schema.")
    obj = doc["schema"][0]
    custom = _custom(doc.get("customProperties"))
    return TableSchema(name=obj["name"], required=bool(custom.get("tableRequired", False)),
                       columns=tuple(_column(p) for p in obj["properties"]), version=str(doc["version"]))


@cache
def output_schema(table: str) -> OutputTableSchema:
    """The schema of one table the pipeline writes back (one of `OUTPUT_TABLES`).

    Raises
    ------
    ContractDefinitionError
        If `table` is not an output table, or its contract does not say `tableRole: output`.
    """
    if table not in OUTPUT_TABLES:
        raise ContractDefinitionError(f"{table!r} is not an output table; the output tables are {list(OUTPUT_TABLES)}.")
    doc = load_contract(table)
    if _role(doc) != "output":
        raise ContractDefinitionError(f"contract {table}.yaml must declare customProperties tableRole: output.")
    obj = doc["schema"][0]
    props = obj["properties"]
    keyed = sorted((int(p.get("primaryKeyPosition", 0)), i, p["name"]) for i, p in enumerate(props)
                   if p.get("primaryKey"))
    indexes = _custom(obj.get("customProperties")).get("indexes") or []
    run = tuple(p["name"] for p in props if _custom(p.get("customProperties")).get("runColumn"))
    undeclared = sorted(set(indexes) - {p["name"] for p in props})
    if undeclared:
        raise ContractDefinitionError(f"contract {table}.yaml indexes columns {undeclared} it does not declare.")
    return OutputTableSchema(name=obj["name"], columns=tuple(_column(p) for p in props),
                             primary_key=tuple(name for _, _, name in keyed), indexes=tuple(indexes),
                             run_columns=run, version=str(doc["version"]))


def input_schemas() -> dict[str, TableSchema]:
    return {t: table_schema(t) for t in INPUT_TABLES}


def output_schemas() -> dict[str, OutputTableSchema]:
    return {t: output_schema(t) for t in OUTPUT_TABLES}
