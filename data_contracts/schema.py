"""The table and column schema of a CRM extract, read from the ODCS contract files beside this module.

The contract YAML is the single source of truth: the extract reader takes its allow-list of columns and
their types from here, so a column that is not in a contract (free text, PII) is never read.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Literal

import yaml

LogicalType = Literal["string", "timestamp", "number", "integer", "boolean"]
CONTRACT_DIR = Path(__file__).resolve().parent
#: Input tables in dependency order (referenced tables first).
INPUT_TABLES: tuple[str, ...] = ("accounts", "leads", "subscriptions", "orders", "activities", "tickets")


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


def load_contract(table: str) -> dict:
    """The raw ODCS document of one table's contract."""
    path = CONTRACT_DIR / f"{table}.yaml"
    with path.open() as fh:
        return yaml.safe_load(fh)


@cache
def table_schema(table: str) -> TableSchema:
    doc = load_contract(table)
    obj = doc["schema"][0]
    custom = {p["property"]: p["value"] for p in doc.get("customProperties", [])}
    cols = []
    for p in obj["properties"]:
        rel = p.get("relationships") or []
        cols.append(ColumnSpec(
            name=p["name"], logical_type=p["logicalType"], required=bool(p.get("required", False)),
            unique=bool(p.get("unique", False)), references=rel[0]["to"] if rel else None,
        ))
    return TableSchema(name=obj["name"], required=bool(custom.get("tableRequired", False)),
                       columns=tuple(cols), version=str(doc["version"]))


def input_schemas() -> dict[str, TableSchema]:
    return {t: table_schema(t) for t in INPUT_TABLES}
