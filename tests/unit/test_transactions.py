"""Purchase log -> contract extract: grouping into orders, refunds, margins, typed errors, real files."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from crm.errors import CrmError, MissingColumnsError
from crm.transactions import (TransactionsError, UnparseableAmountError, UnparseableDateError,
                              read_transactions_file, transactions_to_extract)
from data_contracts.schema import table_schema

CDNOW = Path("cdnow/CDNOW_master.txt")  # relative to the shared datasets folder (fixture shared_datasets)
RETAIL = Path("online_retail/online_retail.parquet")
DTYPE = {"string": "str", "timestamp": "datetime64[us, UTC]", "number": "float64", "integer": "Int64",
         "boolean": "bool"}


def _log() -> pd.DataFrame:
    return pd.DataFrame({
        "cust": ["c1", "c1", "c1", "c2", "c2", None],
        "when": ["2024-01-05 10:00", "2024-01-05 15:30",  # same day: one order of 30
                 "2024-02-01 09:00",                     # c1's second order
                 "2024-01-03 08:00",                     # c2 buys first...
                 "2024-01-20 12:00",                     # ...and returns: negative order
                 "2024-01-04 00:00"],                    # anonymous sale: dropped
        "value": ["10", "20", "5.5", "40", "-15", "99"],
    })


def _assert_contract(tables: dict[str, pd.DataFrame]) -> None:
    assert set(tables) == {"accounts", "orders", "activities"}
    for name, df in tables.items():
        schema = table_schema(name)
        assert tuple(df.columns) == schema.column_names
        for col in schema.columns:
            assert str(df[col.name].dtype) == DTYPE[col.logical_type], (name, col.name)
            if col.required:
                assert df[col.name].notna().all(), (name, col.name)


def test_lines_grouped_per_customer_and_day_with_refunds():
    ex = transactions_to_extract(_log(), customer_col="cust", date_col="when", amount_col="value", margin_rate=0.4)
    _assert_contract(ex)
    o = ex["orders"]
    assert o[["account_id", "amount", "status"]].to_dict("records") == [
        {"account_id": "c2", "amount": 40.0, "status": "completed"},   # 2024-01-03
        {"account_id": "c1", "amount": 30.0, "status": "completed"},   # 2024-01-05, two lines
        {"account_id": "c2", "amount": 15.0, "status": "refunded"},    # 2024-01-20, negative -> abs
        {"account_id": "c1", "amount": 5.5, "status": "completed"},    # 2024-02-01
    ]
    np.testing.assert_allclose(o["gross_margin"], [16.0, 12.0, 6.0, 2.2])
    assert (o["gross_margin"] <= o["amount"]).all()
    assert o["order_id"].is_unique
    assert o.loc[1, "ordered_at"] == pd.Timestamp("2024-01-05 10:00", tz="UTC")  # the order's first line
    a = ex["accounts"].set_index("account_id")
    assert list(a.index) == ["c1", "c2"]
    assert a.loc["c1", "created_at"] == pd.Timestamp("2024-01-05 10:00", tz="UTC")
    assert a.loc["c2", "created_at"] == pd.Timestamp("2024-01-03 08:00", tz="UTC")
    assert (a["segment"] == "consumer").all() and a["consent_profiling"].all() and a["deleted_at"].isna().all()
    assert len(ex["activities"]) == 0


def test_order_column_margin_column_and_segment_column():
    df = pd.DataFrame({
        "customer": [1.0, 1.0, 2.0, 2.0, np.nan],   # float ids with a gap, as in UCI Online Retail
        "invoice": ["A1", "A1", "A2", "A1", "A9"],  # A1 is used by two customers: ids must stay unique
        "ts": pd.to_datetime(["2024-03-01 10:00", "2024-03-01 11:00", "2024-03-02 00:00", "2024-03-03 00:00",
                              "2024-03-04 00:00"]),
        "amt": [10.0, 5.0, 8.0, 4.0, 1.0],
        "gm": [3.0, 1.0, -2.0, 1.0, 0.0],            # a loss-making order is allowed
        "tier": ["smb", "smb", "enterprise", "enterprise", "smb"],
    })
    ex = transactions_to_extract(df, customer_col="customer", date_col="ts", amount_col="amt", margin_col="gm",
                                 order_col="invoice", segment_col="tier")
    _assert_contract(ex)
    o = ex["orders"].set_index("order_id")
    assert sorted(o.index) == ["1-A1", "2-A1", "A2"]
    assert o.loc["1-A1", ["amount", "gross_margin"]].tolist() == [15.0, 4.0]
    assert o.loc["A2", "gross_margin"] == -2.0
    assert ex["accounts"].set_index("account_id")["segment"].to_dict() == {"1": "smb", "2": "enterprise"}


def test_yyyymmdd_dates_and_explicit_format():
    df = pd.DataFrame({"c": ["007", "007"], "d": ["19970101", "19970315"], "v": ["1.5", "2"]})
    ex = transactions_to_extract(df, customer_col="c", date_col="d", amount_col="v")
    assert ex["accounts"]["account_id"].tolist() == ["007"]  # leading zeros kept
    assert ex["orders"]["ordered_at"].tolist() == [pd.Timestamp("1997-01-01", tz="UTC"),
                                                   pd.Timestamp("1997-03-15", tz="UTC")]
    assert ex["orders"]["gross_margin"].tolist() == [1.5, 2.0]  # margin_rate defaults to 1
    df2 = pd.DataFrame({"c": ["a"], "d": ["15/03/1997"], "v": [1.0]})
    ex2 = transactions_to_extract(df2, customer_col="c", date_col="d", amount_col="v", date_format="%d/%m/%Y")
    assert ex2["orders"]["ordered_at"].iloc[0] == pd.Timestamp("1997-03-15", tz="UTC")


def test_mixed_date_formats_are_parsed_per_value():
    df = pd.DataFrame({"c": ["a", "a"], "d": ["2024-03-01 10:00", "2024-03-02"], "v": [1.0, 2.0]})
    ex = transactions_to_extract(df, customer_col="c", date_col="d", amount_col="v")
    assert ex["orders"]["ordered_at"].tolist() == [pd.Timestamp("2024-03-01 10:00", tz="UTC"),
                                                   pd.Timestamp("2024-03-02", tz="UTC")]


def test_missing_column_is_named():
    with pytest.raises(MissingColumnsError, match=r"no column\(s\) \['amount'\].*available columns: \['cust'"):
        transactions_to_extract(_log(), customer_col="cust", date_col="when", amount_col="amount")
    with pytest.raises(CrmError, match=r"\['order_no'\]"):
        transactions_to_extract(_log(), customer_col="cust", date_col="when", amount_col="value", order_col="order_no")


def test_unparseable_date_and_amount_are_named():
    bad = _log()
    bad.loc[2, "when"] = "next tuesday"
    with pytest.raises(UnparseableDateError, match=r"column 'when' has 1 values that are not dates.*next tuesday"):
        transactions_to_extract(bad, customer_col="cust", date_col="when", amount_col="value")
    df = pd.DataFrame({"c": ["a"], "d": ["1997-13-45"], "v": [1.0]})
    with pytest.raises(UnparseableDateError, match=r"format '%Y-%m-%d'.*1997-13-45"):
        transactions_to_extract(df, customer_col="c", date_col="d", amount_col="v", date_format="%Y-%m-%d")
    bad = _log()
    bad.loc[0, "value"] = "$10"
    with pytest.raises(UnparseableAmountError, match=r"column 'value'.*\$10"):
        transactions_to_extract(bad, customer_col="cust", date_col="when", amount_col="value")


def test_margin_rules():
    with pytest.raises(TransactionsError, match="margin_rate=1.5"):
        transactions_to_extract(_log(), customer_col="cust", date_col="when", amount_col="value", margin_rate=1.5)
    df = pd.DataFrame({"c": ["a"], "d": ["2024-01-01"], "v": [10.0], "m": [12.0]})
    with pytest.raises(TransactionsError, match="gross margin above their amount"):
        transactions_to_extract(df, customer_col="c", date_col="d", amount_col="v", margin_col="m")


@pytest.mark.parametrize("name,sep", [("log.csv", ","), ("log.txt", "\t"), ("log.tsv", "\t"), ("semi.csv", ";")])
def test_read_text_files_with_sniffed_separator(tmp_path, name, sep):
    path = tmp_path / name
    path.write_text(sep.join(["cust", "when", "value"]) + "\n" + sep.join(["007", "20240101", "3.5"]) + "\n")
    df = read_transactions_file(path)
    assert df.to_dict("records") == [{"cust": "007", "when": "20240101", "value": "3.5"}]


def test_read_whitespace_gzip_and_parquet(tmp_path):
    (tmp_path / "ws.txt").write_text(" id  date  amount\n 00001 19970101   11.77\n 00002 19970112 12.00\n")
    assert read_transactions_file(tmp_path / "ws.txt")["id"].tolist() == ["00001", "00002"]
    with gzip.open(tmp_path / "log.csv.gz", "wt") as fh:
        fh.write("a,b\n1,2\n")
    assert read_transactions_file(tmp_path / "log.csv.gz").to_dict("records") == [{"a": "1", "b": "2"}]
    pd.DataFrame({"a": [1.5]}).to_parquet(tmp_path / "log.parquet")
    assert read_transactions_file(tmp_path / "log.parquet")["a"].tolist() == [1.5]
    with pytest.raises(TransactionsError, match="unsupported suffix"):
        (tmp_path / "log.xlsx").write_text("x")
        read_transactions_file(tmp_path / "log.xlsx")
    with pytest.raises(TransactionsError, match="does not exist"):
        read_transactions_file(tmp_path / "nope.csv")


def test_extract_round_trips_through_the_reader(tmp_path):
    from crm.extract import read_extract, write_extract

    ex = transactions_to_extract(_log(), customer_col="cust", date_col="when", amount_col="value")
    write_extract(str(tmp_path / "crm"), ex)
    back = read_extract(str(tmp_path / "crm"))
    from data_contracts.schema import table_schema

    for name in ex:  # the reader returns rows in primary-key order
        pk = table_schema(name).primary_key
        pd.testing.assert_frame_equal(back[name], ex[name].sort_values(pk, ignore_index=True), check_dtype=False)


def test_real_cdnow_log(shared_datasets):
    raw = read_transactions_file(shared_datasets / CDNOW)
    ex = transactions_to_extract(raw, customer_col="customer_id", date_col="date", amount_col="dollar_value",
                                 margin_rate=0.3)
    _assert_contract(ex)
    assert len(ex["accounts"]) == 23_570
    o = ex["orders"]
    assert o["order_id"].is_unique
    assert o["amount"].sum() == pytest.approx(pd.to_numeric(raw["dollar_value"]).sum())
    assert set(o["status"]) == {"completed"}  # CDNOW has no returns
    assert o["ordered_at"].min() == pd.Timestamp("1997-01-01", tz="UTC")
    assert o["ordered_at"].max() < pd.Timestamp("1998-07-01", tz="UTC")


def test_real_online_retail_log(shared_datasets):
    raw = read_transactions_file(shared_datasets / RETAIL)
    raw["line_amount"] = raw["Quantity"] * raw["UnitPrice"]
    ex = transactions_to_extract(raw, customer_col="CustomerID", date_col="InvoiceDate", amount_col="line_amount",
                                 order_col="InvoiceNo", margin_rate=0.25)
    _assert_contract(ex)
    known = raw[raw["CustomerID"].notna()]
    assert len(ex["accounts"]) == known["CustomerID"].nunique() == 4372
    assert not ex["accounts"]["account_id"].str.contains(".", regex=False).any()
    o = ex["orders"]
    signed = np.where(o["status"] == "refunded", -o["amount"], o["amount"])
    assert signed.sum() == pytest.approx(known["line_amount"].sum(), rel=1e-9)
    refunded = o[o["status"] == "refunded"]
    assert len(refunded) > 1000 and refunded["order_id"].str.startswith("C").mean() > 0.99  # "C" = cancellation invoice
    assert (o["gross_margin"] <= o["amount"]).all()
