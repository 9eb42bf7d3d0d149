"""A rich table of the failed rules of a validation report, for the CLI."""
from __future__ import annotations

from rich.table import Table

from data_contracts.validate import ValidationReport


def render_failures_table(report: ValidationReport) -> Table:
    """One row per failed rule (errors first): table, rule, severity, column, offending count, sample ids."""
    title = (f"Data contract: {len(report.errors)} error(s), {len(report.warnings)} warning(s) "
             f"- extract {report.fingerprint.short}")
    table = Table(title=title, show_lines=False)
    for col, kw in (("table", {}), ("rule", {}), ("severity", {}), ("column", {}),
                    ("count", {"justify": "right"}), ("sample ids", {}), ("detail", {"overflow": "fold"})):
        table.add_column(col, **kw)
    ordered = sorted(report.failures, key=lambda r: (r.severity != "error", r.table, r.rule))
    for r in ordered:
        style = "red" if r.severity == "error" else "yellow"
        table.add_row(r.table, r.rule, f"[{style}]{r.severity}[/{style}]", r.column or "",
                      str(r.unexpected_count), ", ".join(r.sample_ids), r.detail)
    return table
