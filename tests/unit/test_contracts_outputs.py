"""The written-back tables are declared by output contracts, kept apart from the extract's input contracts, and
crm/writeback.py builds its SQL tables from them."""
from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from data_contracts.errors import ContractDefinitionError
from data_contracts.schema import (
    CONTRACT_DIR,
    INPUT_TABLES,
    OUTPUT_TABLES,
    input_schemas,
    load_contract,
    output_schema,
    output_schemas,
    table_schema,
)

#: The SQLAlchemy type each contract type must become (timestamps: timestamptz, ISO 8601 text on SQLite).
SQL_TYPE = {"string": sa.Text, "number": sa.Float, "integer": sa.Integer, "timestamp": sa.DateTime}


def test_every_contract_file_is_an_input_or_an_output_table() -> None:
    files = {p.stem for p in CONTRACT_DIR.glob("*.yaml")}
    assert files == set(INPUT_TABLES) | set(OUTPUT_TABLES)
    assert not set(INPUT_TABLES) & set(OUTPUT_TABLES)


@pytest.mark.parametrize("table", OUTPUT_TABLES)
def test_output_contracts_are_odcs_and_marked_output(table: str) -> None:
    doc = load_contract(table)
    assert (doc["apiVersion"], doc["kind"], doc["name"], doc["schema"][0]["name"]) == (
        "v3.1.0", "DataContract", table, table)
    assert {"property": "tableRole", "value": "output"} in doc["customProperties"]
    assert all(p.get("description") for p in doc["schema"][0]["properties"])


@pytest.mark.parametrize("table", OUTPUT_TABLES)
def test_an_output_contract_is_never_read_as_an_input_table(table: str) -> None:
    with pytest.raises(ContractDefinitionError, match=f"'{table}' is an output table contract, not an input table"):
        table_schema(table)
    assert table not in input_schemas()


def test_output_schema_refuses_an_input_or_unknown_table() -> None:
    with pytest.raises(ContractDefinitionError, match=r"'accounts' is not an output table; the output tables are"):
        output_schema("accounts")
    with pytest.raises(ContractDefinitionError, match="'crm_scorez' is not an output table"):
        output_schema("crm_scorez")


def test_output_schemas_hold_keys_indexes_and_run_columns() -> None:
    scores, history, var, runs, metrics = (output_schemas()[t] for t in OUTPUT_TABLES)
    assert runs.primary_key == ("scoring_run_id", "model", "stage")
    assert metrics.primary_key == (*runs.primary_key, "section", "subject", "metric")
    assert runs.run_columns == metrics.run_columns == ()
    assert scores.primary_key == ("entity_type", "entity_id", "model")
    assert history.primary_key == () and set(history.indexes) >= {"entity_id", "scoring_run_id", "as_of"}
    assert var.primary_key == ("entity_type", "entity_id")
    for s in (scores, history, var):
        assert s.run_columns == ("scoring_run_id", "as_of", "scored_at")
        assert s.input_columns + s.run_columns == s.column_names  # run columns come last
    # one bound row set goes into both score tables
    assert history.columns == scores.columns
    assert {c.name for c in scores.columns if not c.required} == {"reasons", "reason_text"}


def test_sqlalchemy_tables_are_the_contracts() -> None:
    import crm.writeback as wb

    from crm import monitor_store

    md, *tables = wb._metadata()
    tables += monitor_store.tables(md)
    assert [t.name for t in tables] == list(OUTPUT_TABLES)
    for table in tables:
        schema = output_schema(table.name)
        assert [c.name for c in table.columns] == list(schema.column_names)
        assert [c.name for c in table.primary_key.columns] == list(schema.primary_key)
        assert {tuple(c.name for c in ix.columns) for ix in table.indexes} == {(c,) for c in schema.indexes}
        for col in table.columns:
            spec = schema.column(col.name)
            assert isinstance(col.type, SQL_TYPE[spec.logical_type]), col.name
            assert col.nullable is (not spec.required), col.name
            if spec.logical_type == "number":
                assert col.type.compile(dialect=postgresql.dialect()) == "FLOAT(53)"
            if spec.logical_type == "timestamp":
                assert col.type.compile(dialect=postgresql.dialect()) == "TIMESTAMP WITH TIME ZONE"
                assert col.type.compile(dialect=sqlite.dialect()) == "TEXT"


def test_column_tuples_of_crm_and_models_come_from_the_contracts() -> None:
    import crm.writeback as wb
    from models.bands import SCORE_ROW_COLUMNS

    assert wb.SCORE_COLUMNS == output_schema("crm_scores").column_names
    assert wb.INPUT_COLUMNS == SCORE_ROW_COLUMNS == output_schema("crm_scores").input_columns
    assert wb.VALUE_AT_RISK_COLUMNS == output_schema("crm_value_at_risk").column_names
    assert wb.VALUE_AT_RISK_INPUT == ("entity_type", "entity_id", "churn_probability", "clv", "value_at_risk")
