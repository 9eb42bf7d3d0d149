"""The pandas side of the gate on tiny frames: dtypes, references, two-column rules, volume, history, rendering."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from data_contracts import checks
from data_contracts.errors import ContractError
from data_contracts.fingerprint import Fingerprint
from data_contracts.history import load_last_fingerprint, save_run
from data_contracts.render import render_failures_table
from data_contracts.rules import table_rules
from data_contracts.schema import table_schema
from data_contracts.validate import RuleResult, ValidationReport

UTC = "UTC"


def _rule(name: str):
    table = name.split(".")[0]
    return next(r for r in table_rules(table) if r.name == name)


def _ts(*values: str | None) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True)).dt.as_unit("us")


@pytest.mark.parametrize(("table", "column", "values", "problem"), [
    ("orders", "order_id", pd.Series(["a", None], dtype="str"), None),
    ("orders", "order_id", pd.Series(["a", None], dtype=object), None),  # object of text is fine
    ("orders", "order_id", pd.Series([1, 2]), "order_id: int64 (expected str)"),
    ("orders", "ordered_at", _ts("2026-01-01", None), None),
    ("orders", "ordered_at", pd.Series(pd.to_datetime(["2026-01-01"])), "expected datetime64[us, UTC]"),
    ("orders", "amount", pd.Series([1.5, np.nan]), None),
    ("orders", "amount", pd.Series(["1.5"], dtype="str"), "amount: str (expected float64)"),
    ("tickets", "csat", pd.array([1, None], dtype="Int64"), None),
    ("tickets", "csat", pd.Series([1.0, np.nan]), None),  # nullable ints read back as float
    ("tickets", "csat", pd.Series([1.5]), "fractional values"),
    ("accounts", "consent_profiling", pd.Series([True, False]), None),
    ("accounts", "consent_profiling", pd.Series([1, 0]), "expected bool"),
])
def test_dtype_problem_follows_the_canonical_dtypes(table, column, values, problem) -> None:
    got = checks.dtype_problem(pd.Series(values), table_schema(table).column(column))
    assert got == problem if problem is None else problem in got


def test_references_ignore_nulls_and_report_unknown_ids() -> None:
    accounts = pd.DataFrame({"account_id": pd.Series(["A1", "A2"], dtype="str")})
    orders = pd.DataFrame({"order_id": pd.Series(["O1", "O2", "O3", "O4"], dtype="str"),
                           "account_id": pd.Series(["A1", None, "A9", "A9"], dtype="str")})
    out = checks.check_references(_rule("orders.account_id_references_accounts"), orders,
                                  {"accounts": accounts, "orders": orders},
                                  {"accounts": {"account_id"}, "orders": {"order_id", "account_id"}})
    assert (out.status, out.unexpected_count, out.sample_ids) == ("failed", 2, ("O3", "O4"))


def test_references_to_an_absent_optional_table_fail_only_for_set_values() -> None:
    acts = pd.DataFrame({"activity_id": pd.Series(["E1", "E2"], dtype="str"),
                         "lead_id": pd.Series([None, "L1"], dtype="str")})
    out = checks.check_references(_rule("activities.lead_id_references_leads"), acts, {"activities": acts}, {})
    assert (out.status, out.sample_ids) == ("failed", ("E2",))
    # the required accounts table absent: reported once by accounts.table_present, so skipped here
    acts["account_id"] = pd.Series(["A1", None], dtype="str")
    out = checks.check_references(_rule("activities.account_id_references_accounts"), acts, {"activities": acts}, {})
    assert out.status == "skipped" and "accounts.table_present" in out.detail


def test_exactly_one_of_and_not_both() -> None:
    acts = pd.DataFrame({"activity_id": pd.Series(["E1", "E2", "E3", "E4"], dtype="str"),
                         "account_id": pd.Series(["A1", None, "A1", None], dtype="str"),
                         "lead_id": pd.Series([None, "L1", "L1", None], dtype="str")})
    out = checks.check_exactly_one_of(_rule("activities.exactly_one_of_account_or_lead"), acts)
    assert (out.unexpected_count, out.sample_ids) == (2, ("E3", "E4"))  # both; neither
    leads = pd.DataFrame({"lead_id": pd.Series(["L1", "L2", "L3"], dtype="str"),
                          "won_at": _ts("2026-01-01", None, "2026-01-02"),
                          "lost_at": _ts(None, "2026-01-01", "2026-01-03")})
    out = checks.check_not_both(_rule("leads.won_and_lost_not_both"), leads)
    assert (out.unexpected_count, out.sample_ids) == (1, ("L3",))


@pytest.mark.parametrize(("rows", "previous", "emptied", "collapse"), [
    (100, None, "skipped", "skipped"),   # no history
    (0, 100, "failed", "skipped"),       # emptied: one rule, not two
    (0, 0, "passed", "skipped"),         # was empty, still empty
    (49, 100, "passed", "failed"),       # dropped 51% > 50%
    (50, 100, "passed", "passed"),       # dropped exactly 50%: allowed
    (300, 100, "passed", "passed"),      # growth is fine
])
def test_volume_rules(rows: int, previous: int | None, emptied: str, collapse: str) -> None:
    assert checks.check_volume_not_emptied(_rule("orders.volume_not_emptied"), rows, previous).status == emptied
    out = checks.check_volume_no_collapse(_rule("orders.volume_no_collapse"), rows, previous, 0.5)
    assert out.status == collapse


def _report(ok: bool, now: str, rows: int = 10) -> ValidationReport:
    fp = Fingerprint(row_counts={"orders": rows}, table_hashes={"orders": f"h{rows}"}, hash=f"{rows:012d}".ljust(64, "f"))
    result = RuleResult(rule="orders.gross_margin_le_amount", table="orders", column="gross_margin",
                        severity="error", status="passed" if ok else "failed", unexpected_count=0 if ok else 2,
                        sample_ids=() if ok else ("O1", "O2"), description="margin <= amount")
    warn = RuleResult(rule="accounts.country_iso_alpha2", table="accounts", column="country", severity="warning",
                      status="failed", unexpected_count=1, sample_ids=("A1",), description="iso")
    return ValidationReport(results=(result, warn), fingerprint=fp, now=pd.Timestamp(now, tz=UTC), as_of=None,
                            max_volume_drop=0.5, previous_hash=None, validated_at=pd.Timestamp(now, tz=UTC),
                            duration_s=0.1)


def test_history_keeps_one_json_per_run_and_returns_the_last_passing_fingerprint(tmp_path) -> None:
    assert load_last_fingerprint(tmp_path) is None
    p1 = save_run(_report(True, "2026-10-01", rows=10), tmp_path)
    p2 = save_run(_report(True, "2026-10-02", rows=20), tmp_path)
    p3 = save_run(_report(False, "2026-10-03", rows=1), tmp_path)  # a failed extract is not a baseline
    assert p1.parent == tmp_path / "validation"
    assert p2.name == f"20261002T000000000000Z_{20:012d}.json"
    assert sorted(p.name for p in (tmp_path / "validation").iterdir()) == sorted(p.name for p in (p1, p2, p3))
    assert load_last_fingerprint(tmp_path).row_counts == {"orders": 20}
    saved = json.loads(p3.read_text())
    assert saved["ok"] is False and saved["results"][0]["sample_ids"] == ["O1", "O2"]
    (tmp_path / "validation" / "29990101T000000000000Z_broken.json").write_text("{not json")
    with pytest.raises(ContractError, match="is not a saved validation run"):
        load_last_fingerprint(tmp_path)


def test_report_json_and_failures_table() -> None:
    report = _report(False, "2026-10-03")
    data = json.loads(report.to_json())
    assert data["ok"] is False and data["summary"]["failed_errors"] == 1 and data["summary"]["failed_warnings"] == 1
    assert data["results"][0] == {"rule": "orders.gross_margin_le_amount", "table": "orders",
                                  "column": "gross_margin", "severity": "error", "status": "failed",
                                  "passed": False, "unexpected_count": 2, "sample_ids": ["O1", "O2"],
                                  "description": "margin <= amount", "detail": ""}
    table = render_failures_table(report)
    assert table.row_count == 2
    console = Console(width=200, record=True)
    console.print(table)
    text = console.export_text()
    assert "orders.gross_margin_le_amount" in text and "O1, O2" in text
    assert text.index("orders.gross_margin_le_amount") < text.index("accounts.country_iso_alpha2")  # errors first
