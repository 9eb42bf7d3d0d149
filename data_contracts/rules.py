"""Quality rules read from the ODCS contract YAML: one `Rule` per `quality` entry, parsed at run time.

The contract files are the only place rules are written; this module turns each `quality` entry into a small
frozen `Rule` (what to check, on which columns, with which severity) that the GX compiler (`gx_suite.py`) and
the pandas checks (`checks.py`) execute. The custom expression vocabulary is documented in README.md.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Literal

from data_contracts.errors import ContractDefinitionError
from data_contracts.schema import INPUT_TABLES, load_contract, table_schema

Severity = Literal["error", "warning"]
#: Rule kinds. "gx" kinds compile to GX expectations; the others are checked in pandas (frame metadata,
#: references between tables, history), and reported in the same result format.
Kind = Literal[
    "not_null", "unique", "in_set", "regex", "range", "column_order", "not_after_now",  # GX
    "table_present", "columns_present", "optional_columns_present", "column_types",  # structure (pandas)
    "references", "exactly_one_of", "not_both", "volume_not_emptied", "volume_no_collapse",  # pandas
]
GX_KINDS: frozenset[str] = frozenset({"not_null", "unique", "in_set", "regex", "range", "column_order", "not_after_now"})
STRUCTURE_KINDS: frozenset[str] = frozenset({"table_present", "columns_present", "optional_columns_present",
                                             "column_types"})

_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_NUMBER = r"-?\d+(?:\.\d+)?"
_RE_CMP = re.compile(rf"^\s*({_IDENT})\s*(>=|<=)\s*({_NUMBER}|{_IDENT})\s*$")
_RE_BETWEEN = re.compile(rf"^\s*({_IDENT})\s+between\s+({_NUMBER})\s+and\s+({_NUMBER})\s*$")
_RE_CALL = re.compile(rf"^\s*({_IDENT})\(\s*(.*?)\s*\)\s*$")
_CALLS_NO_ARGS = {"table_present", "columns_present", "optional_columns_present", "column_types",
                  "volume_not_emptied", "volume_no_collapse"}


@dataclass(frozen=True)
class Rule:
    """One quality rule of one table.

    `columns` are the columns the rule reads (it is skipped, not failed, when one of them is missing or has the
    wrong dtype: the structure rules report that once). `params` hold the kind's arguments.
    """

    name: str
    table: str
    kind: Kind
    severity: Severity
    description: str
    column: str | None = None
    columns: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def runs_in_gx(self) -> bool:
        return self.kind in GX_KINDS


def _number(text: str) -> float | int:
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


def _parse_custom(table: str, column: str | None, expr: str, name: str) -> tuple[Kind, tuple[str, ...], dict]:
    """Parse one custom expression into (kind, columns read, params). See README.md for the vocabulary."""
    if m := _RE_BETWEEN.match(expr):
        col, lo, hi = m.group(1), _number(m.group(2)), _number(m.group(3))
        return "range", (col,), {"min": lo, "max": hi}
    if m := _RE_CMP.match(expr):
        col, op, rhs = m.groups()
        if rhs == "now":
            if op != "<=":
                raise ContractDefinitionError(f"rule {name!r}: only '<col> <= now' is supported, got {expr!r}")
            return "not_after_now", (col,), {}
        if re.fullmatch(_NUMBER, rhs):
            bound = _number(rhs)
            return "range", (col,), ({"min": bound} if op == ">=" else {"max": bound})
        # Column against column: the row-ordering rule, checked where both values are set.
        greater, lesser = (col, rhs) if op == ">=" else (rhs, col)
        return "column_order", (col, rhs), {"greater": greater, "lesser": lesser}
    if m := _RE_CALL.match(expr):
        fn, raw_args = m.group(1), m.group(2)
        args = [a.strip() for a in raw_args.split(",") if a.strip()]
        if fn in _CALLS_NO_ARGS:
            if args:
                raise ContractDefinitionError(f"rule {name!r}: {fn}() takes no arguments, got {expr!r}")
            return fn, (), {}  # type: ignore[return-value]
        if fn in ("exactly_one_of", "not_both"):
            if len(args) != 2 or not all(re.fullmatch(_IDENT, a) for a in args):
                raise ContractDefinitionError(f"rule {name!r}: {fn}(col_a, col_b) takes two column names, got {expr!r}")
            return fn, tuple(args), {}  # type: ignore[return-value]
        if fn == "references":
            if column is None or len(args) != 1 or not re.fullmatch(rf"{_IDENT}\.{_IDENT}", args[0]):
                raise ContractDefinitionError(
                    f"rule {name!r}: references(table.column) is a property-level rule with one target, got {expr!r}")
            ref_table, ref_column = args[0].split(".")
            if ref_table not in INPUT_TABLES:
                raise ContractDefinitionError(f"rule {name!r}: unknown table {ref_table!r}; known: {INPUT_TABLES}")
            return "references", (column,), {"table": ref_table, "column": ref_column}
    raise ContractDefinitionError(
        f"rule {name!r} of table {table!r}: cannot read custom expression {expr!r}; expected one of "
        "'<col> >= <number|col|now>', '<col> <= <number|col|now>', '<col> between <a> and <b>', "
        "exactly_one_of(a, b), not_both(a, b), references(table.column), table_present(), columns_present(), "
        "optional_columns_present(), column_types(), volume_not_emptied(), volume_no_collapse()")


def _parse_library(column: str | None, entry: dict, name: str) -> tuple[Kind, tuple[str, ...], dict]:
    metric = entry.get("metric") or entry.get("rule")  # ODCS v3.0 called it `rule`
    if column is None:
        raise ContractDefinitionError(f"rule {name!r}: library metric {metric!r} must sit on a property")
    if entry.get("mustBe", 0) != 0:
        raise ContractDefinitionError(f"rule {name!r}: only `mustBe: 0` is supported for library metrics")
    args = entry.get("arguments") or {}
    if metric == "nullValues":
        return "not_null", (column,), {}
    if metric == "duplicateValues":
        return "unique", (column,), {}
    if metric == "invalidValues" and "validValues" in args:
        return "in_set", (column,), {"values": list(args["validValues"])}
    if metric == "invalidValues" and "pattern" in args:
        return "regex", (column,), {"pattern": str(args["pattern"])}
    raise ContractDefinitionError(
        f"rule {name!r}: unsupported library metric {metric!r} with arguments {sorted(args)}; supported: "
        "nullValues, duplicateValues, invalidValues with validValues or pattern (all with mustBe: 0)")


def _make_rule(table: str, column: str | None, entry: dict) -> Rule:
    name = entry.get("name")
    if not name or not str(name).startswith(f"{table}."):
        raise ContractDefinitionError(f"a quality rule of table {table!r} has name {name!r}; expected '{table}.<rule>'")
    severity = entry.get("severity")
    if severity not in ("error", "warning"):
        raise ContractDefinitionError(f"rule {name!r}: severity must be 'error' or 'warning', got {severity!r}")
    if not entry.get("description"):
        raise ContractDefinitionError(f"rule {name!r} has no description")
    rtype = entry.get("type")
    if rtype == "library":
        kind, cols, params = _parse_library(column, entry, name)
    elif rtype == "custom":
        if entry.get("engine") != "crmscore":
            raise ContractDefinitionError(f"rule {name!r}: custom rules need `engine: crmscore`")
        kind, cols, params = _parse_custom(table, column, str(entry.get("implementation", "")), name)
    else:
        raise ContractDefinitionError(f"rule {name!r}: type must be 'library' or 'custom', got {rtype!r}")
    known = set(table_schema(table).column_names)
    unknown = [c for c in cols if c not in known]
    if unknown:
        raise ContractDefinitionError(f"rule {name!r} reads columns {unknown} that table {table!r} does not declare")
    return Rule(name=str(name), table=table, kind=kind, severity=severity, description=str(entry["description"]),
                column=column if column is not None else (cols[0] if len(cols) == 1 else None),
                columns=cols, params=params)


@cache
def table_rules(table: str) -> tuple[Rule, ...]:
    """Every quality rule of one table's contract, schema-level first, then property by property.

    Raises
    ------
    ContractDefinitionError
        If an entry cannot be read, or two rules share a name.
    """
    obj = load_contract(table)["schema"][0]
    rules = [_make_rule(table, None, e) for e in obj.get("quality") or []]
    for prop in obj["properties"]:
        rules.extend(_make_rule(table, prop["name"], e) for e in prop.get("quality") or [])
    names = [r.name for r in rules]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ContractDefinitionError(f"table {table!r} has duplicate rule names: {dupes}")
    return tuple(rules)


def all_rules() -> tuple[Rule, ...]:
    """The rules of every input table, in dependency order of the tables."""
    return tuple(r for t in INPUT_TABLES for r in table_rules(t))
