"""The quality rules are read from the ODCS YAML: every data-model rule is there, named, and compiles to GX."""
from __future__ import annotations

import pytest

from data_contracts.errors import ContractDefinitionError
from data_contracts.rules import GX_KINDS, _make_rule, all_rules, table_rules
from data_contracts.schema import INPUT_TABLES, input_schemas, load_contract, table_schema

#: Rules the CRM data model (shared/crm_data_model.md) demands, by name and severity.
DATA_MODEL_RULES = {
    "accounts.table_present": "error", "orders.table_present": "error", "activities.table_present": "error",
    "accounts.account_id_unique": "error", "accounts.consent_profiling_not_null": "error",
    "accounts.acquisition_cost_non_negative": "error", "accounts.country_iso_alpha2": "warning",
    "subscriptions.account_id_references_accounts": "error", "subscriptions.ended_at_ge_started_at": "error",
    "subscriptions.mrr_non_negative": "error",
    "orders.amount_non_negative": "error", "orders.gross_margin_le_amount": "error", "orders.status_valid": "error",
    "activities.exactly_one_of_account_or_lead": "error", "activities.type_valid": "error",
    "activities.lead_id_references_leads": "error",
    "tickets.closed_at_ge_opened_at": "error", "tickets.priority_valid": "error",
    "tickets.csat_between_1_and_5": "error",
    "leads.company_size_positive": "error", "leads.sql_at_ge_created_at": "error", "leads.won_at_ge_sql_at": "error",
    "leads.won_and_lost_not_both": "error",
}


def test_every_data_model_rule_is_declared_with_its_severity() -> None:
    declared = {r.name: r.severity for r in all_rules()}
    assert {n: declared.get(n) for n in DATA_MODEL_RULES} == DATA_MODEL_RULES


def test_rule_names_are_unique_and_prefixed_by_their_table() -> None:
    rules = all_rules()
    assert len({r.name for r in rules}) == len(rules)
    assert all(r.name.startswith(f"{r.table}.") and r.description for r in rules)


@pytest.mark.parametrize("table", INPUT_TABLES)
def test_every_table_checks_structure_nullability_keys_freshness_and_volume(table: str) -> None:
    schema = table_schema(table)
    rules = table_rules(table)
    kinds = {r.kind for r in rules}
    assert {"columns_present", "column_types", "volume_not_emptied", "volume_no_collapse"} <= kinds
    assert ("table_present" in kinds) == schema.required
    not_null = {r.column for r in rules if r.kind == "not_null"}
    assert not_null == {c.name for c in schema.columns if c.required}
    assert {r.column for r in rules if r.kind == "unique"} == {schema.primary_key}
    # every event time except a scheduled subscription end is an error when after `now`
    fresh = {r.column: r.severity for r in rules if r.kind == "not_after_now"}
    assert set(fresh) == {c.name for c in schema.columns if c.logical_type == "timestamp"}
    assert {c for c, s in fresh.items() if s == "warning"} == ({"ended_at"} if table == "subscriptions" else set())


@pytest.mark.parametrize("table", INPUT_TABLES)
def test_references_rules_match_the_odcs_relationships(table: str) -> None:
    for col in table_schema(table).columns:
        refs = [r for r in table_rules(table) if r.kind == "references" and r.column == col.name]
        if col.references:
            assert [f"{r.params['table']}.{r.params['column']}" for r in refs] == [col.references]


@pytest.mark.parametrize("table", INPUT_TABLES)
def test_compile_suite_has_one_expectation_per_gx_rule_named_in_meta(table: str) -> None:
    from data_contracts.gx_suite import compile_suite

    suite = compile_suite(table)
    assert suite.name == f"crmscore.{table}"
    names = [e.meta["rule"] for e in suite.expectations]
    assert names == [r.name for r in table_rules(table) if r.kind in GX_KINDS]
    # only rules on the given columns are compiled
    pk = table_schema(table).primary_key
    assert {e.meta["rule"] for e in compile_suite(table, columns={pk}).expectations} == {
        f"{table}.{pk}_not_null", f"{table}.{pk}_unique"}


def test_custom_expressions_compile_to_the_expected_expectations() -> None:
    from data_contracts.gx_suite import compile_suite

    by_rule = {e.meta["rule"]: e for e in compile_suite("orders").expectations}
    margin = by_rule["orders.gross_margin_le_amount"]
    assert (type(margin).__name__, margin.column_A, margin.column_B, margin.or_equal) == (
        "ExpectColumnPairValuesAToBeGreaterThanB", "amount", "gross_margin", True)
    fresh = by_rule["orders.ordered_at_not_in_future"]
    assert fresh.max_value == {"$PARAMETER": "now"}
    status = by_rule["orders.status_valid"]
    assert sorted(status.value_set) == ["cancelled", "completed", "refunded"]
    csat = {e.meta["rule"]: e for e in compile_suite("tickets").expectations}["tickets.csat_between_1_and_5"]
    assert (csat.min_value, csat.max_value) == (1, 5)


def test_schema_interface_still_works() -> None:
    schemas = input_schemas()
    assert list(schemas) == list(INPUT_TABLES)
    assert schemas["orders"].column("account_id").references == "accounts.account_id"
    assert schemas["accounts"].required and not schemas["tickets"].required
    assert load_contract("orders")["apiVersion"] == "v3.1.0"


@pytest.mark.parametrize(("entry", "message"), [
    ({"name": "orders.x", "type": "custom", "engine": "crmscore", "implementation": "amount ~ 3",
      "severity": "error", "description": "d"}, "cannot read custom expression 'amount ~ 3'"),
    ({"name": "orders.x", "type": "custom", "engine": "crmscore", "implementation": "nope >= 0",
      "severity": "error", "description": "d"}, r"reads columns \['nope'\] that table 'orders' does not declare"),
    ({"name": "x", "type": "library", "metric": "nullValues", "mustBe": 0, "severity": "error",
      "description": "d"}, "expected 'orders.<rule>'"),
    ({"name": "orders.x", "type": "library", "metric": "nullValues", "mustBe": 0, "severity": "fatal",
      "description": "d"}, "severity must be 'error' or 'warning', got 'fatal'"),
    ({"name": "orders.x", "type": "library", "metric": "rowCount", "mustBe": 0, "severity": "error",
      "description": "d"}, "unsupported library metric 'rowCount'"),
    ({"name": "orders.x", "type": "custom", "engine": "sql", "implementation": "amount >= 0",
      "severity": "error", "description": "d"}, "custom rules need `engine: crmscore`"),
])
def test_unreadable_rules_are_refused_with_a_clear_message(entry: dict, message: str) -> None:
    with pytest.raises(ContractDefinitionError, match=message):
        _make_rule("orders", "amount", entry)


def test_importing_the_package_does_no_heavy_work() -> None:
    """crm/ imports data_contracts.schema: that must not pull in Great Expectations (seconds of import)."""
    import subprocess
    import sys

    code = ("import sys, data_contracts, data_contracts.schema, data_contracts.validate, data_contracts.history, "
            "data_contracts.fingerprint; print('great_expectations' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
