"""The quality gate on real GX: one valid extract, one injected defect per case, caught by ITS OWN named rule.

Each case copies the valid base extract, breaks one thing, and asserts the exact set of failed rule names, so a
rule that fires on someone else's defect (or a defect no rule sees) fails the test.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from data_contracts.errors import ContractError, ContractViolation, ValidationParameterError
from data_contracts.fingerprint import compute_fingerprint
from data_contracts.testing import BUILD_NOW, build_valid_extract
from data_contracts.validate import validate_extract

Tables = dict[str, pd.DataFrame]
DAY = pd.Timedelta(days=1)


@pytest.fixture(scope="module")
def base() -> Tables:
    return build_valid_extract(seed=11)


def _copy(tables: Tables) -> Tables:
    return {t: f.copy() for t, f in tables.items()}


def _first(frame: pd.DataFrame, mask: pd.Series) -> int:
    """Index label of the first row matching `mask` (the builder guarantees there is one)."""
    return int(np.flatnonzero(mask.to_numpy())[0])


# --- one defect each: (id, mutate(tables) -> previous fingerprint or None, expected failed rules, first id) ---

def duplicate_pk(t: Tables) -> None:
    t["orders"].loc[1, "order_id"] = t["orders"].loc[0, "order_id"]


def null_fk(t: Tables) -> None:
    t["orders"].loc[3, "account_id"] = np.nan


def unknown_account(t: Tables) -> None:
    t["tickets"].loc[2, "account_id"] = "A_NOBODY"


def margin_above_amount(t: Tables) -> None:
    o = t["orders"]
    o.loc[4, "gross_margin"] = o.loc[4, "amount"] + 10.0


def negative_amount(t: Tables) -> None:
    o = t["orders"]
    o.loc[5, "amount"] = -1.0
    o.loc[5, "gross_margin"] = -2.0  # keep margin <= amount: only the range rule may fire


def csat_out_of_range(t: Tables) -> None:
    t["tickets"]["csat"] = t["tickets"]["csat"].astype("Int64")
    t["tickets"].loc[6, "csat"] = 7


def subscription_ends_before_start(t: Tables) -> None:
    s = t["subscriptions"]
    s.loc[7, "ended_at"] = s.loc[7, "started_at"] - DAY


def ticket_closed_before_opened(t: Tables) -> None:
    k = t["tickets"]
    k.loc[8, "closed_at"] = k.loc[8, "opened_at"] - DAY


def won_and_lost(t: Tables) -> None:
    leads = t["leads"]
    i = _first(leads, leads["won_at"].notna())
    leads.loc[i, "lost_at"] = leads.loc[i, "won_at"]


def won_before_sql(t: Tables) -> None:
    leads = t["leads"]
    i = _first(leads, leads["won_at"].notna())
    leads.loc[i, "won_at"] = leads.loc[i, "sql_at"] - pd.Timedelta(seconds=1)
    # keep the lead created before: only the won >= sql ordering is broken
    leads.loc[i, "created_at"] = min(leads.loc[i, "created_at"], leads.loc[i, "won_at"])


def sql_before_created(t: Tables) -> None:
    leads = t["leads"]
    i = _first(leads, leads["sql_at"].notna())
    leads.loc[i, "created_at"] = leads.loc[i, "sql_at"] + DAY


def activity_with_both_ids(t: Tables) -> None:
    a = t["activities"]
    i = _first(a, a["account_id"].notna())
    a.loc[i, "lead_id"] = t["leads"].loc[0, "lead_id"]


def activity_with_neither_id(t: Tables) -> None:
    a = t["activities"]
    i = _first(a, a["account_id"].notna())
    a.loc[i, "account_id"] = np.nan


def activity_unknown_lead(t: Tables) -> None:
    a = t["activities"]
    i = _first(a, a["lead_id"].notna())
    a.loc[i, "lead_id"] = "L_NOBODY"


def unknown_activity_type(t: Tables) -> None:
    t["activities"].loc[9, "type"] = "tweet"


def unknown_order_status(t: Tables) -> None:
    t["orders"].loc[9, "status"] = "pending"


def unknown_ticket_priority(t: Tables) -> None:
    t["tickets"].loc[9, "priority"] = "critical"


def company_size_zero(t: Tables) -> None:
    t["leads"].loc[0, "company_size"] = 0


def required_column_missing(t: Tables) -> None:
    t["orders"] = t["orders"].drop(columns=["gross_margin"])


def required_table_missing(t: Tables) -> None:
    del t["accounts"]


def wrong_dtype(t: Tables) -> None:
    t["orders"]["amount"] = t["orders"]["amount"].astype(str)


def activity_in_future(t: Tables) -> None:
    t["activities"].loc[10, "occurred_at"] = BUILD_NOW + DAY


def account_created_in_future(t: Tables) -> None:
    t["accounts"].loc[10, "created_at"] = BUILD_NOW + pd.Timedelta(hours=1)


def naive_timestamps(t: Tables) -> None:
    t["orders"]["ordered_at"] = t["orders"]["ordered_at"].dt.tz_localize(None)


def primary_key_column_missing(t: Tables) -> None:
    t["accounts"] = t["accounts"].drop(columns=["account_id"])  # references into it are skipped, not failed


def leads_table_missing_but_referenced(t: Tables) -> None:
    del t["leads"]  # optional, but activities still point at leads


def lowercase_country(t: Tables) -> None:  # a warning: reported, does not stop the run
    t["accounts"].loc[11, "country"] = "us"


DEFECTS: list[tuple[Callable[[Tables], None], set[str]]] = [
    (duplicate_pk, {"orders.order_id_unique"}),
    (null_fk, {"orders.account_id_not_null"}),
    (unknown_account, {"tickets.account_id_references_accounts"}),
    (margin_above_amount, {"orders.gross_margin_le_amount"}),
    (negative_amount, {"orders.amount_non_negative"}),
    (csat_out_of_range, {"tickets.csat_between_1_and_5"}),
    (subscription_ends_before_start, {"subscriptions.ended_at_ge_started_at"}),
    (ticket_closed_before_opened, {"tickets.closed_at_ge_opened_at"}),
    (won_and_lost, {"leads.won_and_lost_not_both"}),
    (won_before_sql, {"leads.won_at_ge_sql_at"}),
    (sql_before_created, {"leads.sql_at_ge_created_at"}),
    (activity_with_both_ids, {"activities.exactly_one_of_account_or_lead"}),
    (activity_with_neither_id, {"activities.exactly_one_of_account_or_lead"}),
    (activity_unknown_lead, {"activities.lead_id_references_leads"}),
    (unknown_activity_type, {"activities.type_valid"}),
    (unknown_order_status, {"orders.status_valid"}),
    (unknown_ticket_priority, {"tickets.priority_valid"}),
    (company_size_zero, {"leads.company_size_positive"}),
    (required_column_missing, {"orders.columns_present"}),
    (required_table_missing, {"accounts.table_present"}),
    (wrong_dtype, {"orders.column_types"}),
    (naive_timestamps, {"orders.column_types"}),
    (primary_key_column_missing, {"accounts.columns_present"}),
    (leads_table_missing_but_referenced, {"activities.lead_id_references_leads"}),
    (activity_in_future, {"activities.occurred_at_not_in_future"}),
    (account_created_in_future, {"accounts.created_at_not_in_future"}),
    (lowercase_country, {"accounts.country_iso_alpha2"}),
]


def test_base_extract_is_valid(base: Tables) -> None:
    report = validate_extract(base, now=BUILD_NOW)
    assert report.failed_rules == frozenset()
    assert report.ok
    assert report.fingerprint.row_counts["orders"] == len(base["orders"])


@pytest.mark.parametrize(("inject", "expected"), DEFECTS, ids=[d[0].__name__ for d in DEFECTS])
def test_each_defect_is_caught_by_its_own_rule(base: Tables, inject, expected: set[str]) -> None:
    tables = _copy(base)
    inject(tables)
    report = validate_extract(tables, now=BUILD_NOW)
    assert set(report.failed_rules) == expected
    severities = {report.result(r).severity for r in expected}
    assert report.ok == (severities == {"warning"})


def test_emptied_table_against_previous_is_its_own_error(base: Tables) -> None:
    previous = compute_fingerprint(base)
    tables = _copy(base)
    tables["orders"] = tables["orders"].iloc[0:0]
    report = validate_extract(tables, now=BUILD_NOW, previous=previous)
    assert set(report.failed_rules) == {"orders.volume_not_emptied"}
    assert not report.ok
    assert report.result("orders.volume_no_collapse").status == "skipped"


def test_collapsed_table_is_a_warning_at_the_configured_share(base: Tables) -> None:
    previous = compute_fingerprint(base)
    tables = _copy(base)
    keep = int(len(base["activities"]) * 0.4)
    tables["activities"] = tables["activities"].iloc[:keep]
    report = validate_extract(tables, now=BUILD_NOW, previous=previous, max_volume_drop=0.5)
    assert set(report.failed_rules) == {"activities.volume_no_collapse"}
    assert report.ok  # a warning
    assert report.result("activities.volume_no_collapse").unexpected_count == len(base["activities"]) - keep
    # the same drop is allowed by a more tolerant share
    assert validate_extract(tables, now=BUILD_NOW, previous=previous, max_volume_drop=0.7).failed_rules == frozenset()


def test_sample_ids_name_the_offending_rows(base: Tables) -> None:
    tables = _copy(base)
    bad = [2, 5, 8, 13, 21, 34, 55]
    tables["orders"].loc[bad, "gross_margin"] = tables["orders"].loc[bad, "amount"] + 1.0
    r = validate_extract(tables, now=BUILD_NOW).result("orders.gross_margin_le_amount")
    assert r.unexpected_count == len(bad)
    assert len(r.sample_ids) == 5
    assert set(r.sample_ids) <= set(tables["orders"].loc[bad, "order_id"])


def test_messy_but_valid_extract_passes(base: Tables) -> None:
    tables = _copy(base)
    rng = np.random.default_rng(3)
    tables["accounts"]["email"] = "someone@example.com"  # extra columns (PII) are ignored
    tables["accounts"]["full_name"] = "Jane Doe"
    tables["activities"]["notes"] = "free text"
    tables["accounts"].loc[0:40, ["industry", "country", "acquisition_channel"]] = np.nan
    tables["accounts"].loc[0:40, "acquisition_cost"] = np.nan
    tables["tickets"].loc[:, "csat"] = pd.NA
    tables["tickets"].loc[0:30, "closed_at"] = pd.NaT  # open tickets
    tables["subscriptions"].loc[:, "ended_at"] = pd.NaT  # all active
    tables["orders"] = tables["orders"].sample(frac=1.0, random_state=rng.integers(1 << 31)).reset_index(drop=True)
    tables["orders"] = tables["orders"][list(reversed(tables["orders"].columns))]  # column order does not matter
    del tables["tickets"]  # optional tables may be absent
    report = validate_extract(tables, now=BUILD_NOW)
    assert report.failed_rules == frozenset()
    assert report.result("tickets.ticket_id_unique").status == "skipped"


def test_rows_after_an_earlier_as_of_are_not_an_error(base: Tables) -> None:
    as_of = BUILD_NOW - pd.Timedelta(days=365)
    assert (base["activities"]["occurred_at"] > as_of).any()
    report = validate_extract(base, now=BUILD_NOW, as_of=as_of)
    assert report.ok and report.failed_rules == frozenset()
    assert report.to_dict()["as_of"] == as_of.isoformat()


def test_freshness_follows_the_extraction_time_given(base: Tables) -> None:
    earlier_now = BUILD_NOW - pd.Timedelta(days=30)  # as if extracted a month ago: later rows are impossible
    report = validate_extract(base, now=earlier_now)
    assert "activities.occurred_at_not_in_future" in report.failed_rules
    assert not report.ok


def test_as_of_after_now_is_refused(base: Tables) -> None:
    with pytest.raises(ValidationParameterError, match="as_of=.* is after the extraction time now="):
        validate_extract(base, now=BUILD_NOW, as_of=BUILD_NOW + DAY)
    with pytest.raises(ValidationParameterError, match="max_volume_drop=1.5 must be a share between 0 and 1"):
        validate_extract(base, now=BUILD_NOW, max_volume_drop=1.5)


def test_raise_for_errors_lists_each_failed_rule_on_one_line(base: Tables) -> None:
    tables = _copy(base)
    margin_above_amount(tables)
    unknown_activity_type(tables)
    lowercase_country(tables)  # a warning: not listed
    report = validate_extract(tables, now=BUILD_NOW)
    with pytest.raises(ContractViolation, match=r"broke 2 contract rule\(s\)") as exc_info:
        report.raise_for_errors()
    assert isinstance(exc_info.value, ContractError)
    lines = str(exc_info.value).splitlines()[1:]
    # one line per failed error rule, in contract order (orders before activities)
    assert [ln.split()[0] for ln in lines] == ["orders.gross_margin_le_amount", "activities.type_valid"]
    assert "e.g. " + tables["orders"].loc[4, "order_id"] in lines[0]
    assert set(exc_info.value.failed_rules) == {"orders.gross_margin_le_amount", "activities.type_valid"}
    validate_extract(base, now=BUILD_NOW).raise_for_errors()  # a valid extract raises nothing


def test_samples_name_row_positions_when_the_primary_key_is_missing(base: Tables) -> None:
    tables = _copy(base)
    tables["accounts"] = tables["accounts"].drop(columns=["account_id"])
    tables["accounts"].loc[3, "segment"] = np.nan
    report = validate_extract(tables, now=BUILD_NOW)
    assert report.failed_rules == {"accounts.columns_present", "accounts.segment_not_null"}
    assert report.result("accounts.segment_not_null").sample_ids == ("row 3",)
    assert report.result("accounts.columns_present").column == "account_id"


def test_empty_tables_are_valid_without_history() -> None:
    """orders and activities are required but may be empty; an empty optional table is fine too."""
    tables = build_valid_extract(seed=4, n_accounts=30, n_leads=30, n_orders=0, n_activities=0, n_tickets=0)
    report = validate_extract(tables, now=BUILD_NOW)
    assert report.failed_rules == frozenset() and report.fingerprint.row_counts["orders"] == 0
