"""The real purchase logs the CLV / non-contractual churn harness runs on, as a user would import them.

Each log is a file ``crmscore import-transactions`` reads, the columns to name, and the as-of dates judged.

- ``cdnow``: ``cdnow/CDNOW_master.txt`` as shipped (one cohort of first-time buyers of Q1 1997, to 1998-06-30).
- ``online_retail``: UCI Online Retail II, 2009-12-01 .. 2011-12-09 (``online_retail_II_2009_2010`` for the first
  year, ``online_retail`` for the second, the 2010-12-01 .. 12-09 lines they share taken once), cleaned as the
  datasets' README says: lines without a customer id, cancellations (invoices starting with "C"), and lines with
  a quantity or price that is not positive (returns, adjustments, fees) are dropped; the line amount is quantity x
  unit price; an invoice is one order. The cleaned log is written to a CSV that ``import-transactions`` reads.

Run by :mod:`benchmarks.bench_cdnow` (through the CLI) and :mod:`benchmarks.bench_clv_candidates` (in-process).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd


@dataclass(frozen=True)
class PurchaseLog:
    """One log: where it is, how ``import-transactions`` reads it, which as-of dates the harness judges."""

    name: str
    dates: tuple[str, ...]
    customer_col: str
    date_col: str
    amount_col: str
    order_col: str | None

    def import_args(self) -> list[str]:
        args = ["--customer-col", self.customer_col, "--date-col", self.date_col, "--amount-col", self.amount_col]
        return args + (["--order-col", self.order_col] if self.order_col else [])


LOGS: dict[str, PurchaseLog] = {
    "cdnow": PurchaseLog("cdnow", ("1997-10-01", "1998-01-01", "1998-03-01"), "customer_id", "date", "dollar_value",
                         None),
    "online_retail": PurchaseLog("online_retail", ("2011-03-01", "2011-06-01", "2011-09-01"), "customer_id",
                                 "invoice_date", "amount", "invoice"),
}


def clean_online_retail(root: Path) -> pd.DataFrame:
    """The two Online Retail sheets as one cleaned line log (see the module docstring); columns of ``LOGS``."""
    folder = root / "online_retail"
    first = pd.read_parquet(folder / "online_retail_II_2009_2010.parquet").rename(
        columns={"Invoice": "invoice", "InvoiceDate": "invoice_date", "Price": "price", "Customer ID": "customer_id",
                 "Quantity": "quantity"})
    second = pd.read_parquet(folder / "online_retail.parquet").rename(
        columns={"InvoiceNo": "invoice", "InvoiceDate": "invoice_date", "UnitPrice": "price",
                 "CustomerID": "customer_id", "Quantity": "quantity"})
    start_second = pd.to_datetime(second["invoice_date"]).min().floor("D")
    first = first[pd.to_datetime(first["invoice_date"]) < start_second]  # the shared days once, from the later file
    lines = pd.concat([first, second], ignore_index=True)[["invoice", "invoice_date", "quantity", "price",
                                                           "customer_id"]]
    keep = (lines["customer_id"].notna() & ~lines["invoice"].astype(str).str.startswith("C")
            & (lines["quantity"] > 0) & (lines["price"] > 0))
    lines = lines[keep].copy()
    lines["customer_id"] = lines["customer_id"].astype("int64").astype(str)
    lines["amount"] = (lines["quantity"] * lines["price"]).round(4)
    return lines[["customer_id", "invoice", "invoice_date", "amount"]].reset_index(drop=True)


def log_file(log: PurchaseLog, root: Path, work: Path) -> Path:
    """The file ``import-transactions`` reads for ``log`` (the cleaned Online Retail CSV is written under ``work``)."""
    if log.name == "cdnow":
        return root / "cdnow" / "CDNOW_master.txt"
    out = work / "online_retail_clean.csv"
    if not out.exists():
        work.mkdir(parents=True, exist_ok=True)
        clean_online_retail(root).to_csv(out, index=False)
    return out


def source_files(log: PurchaseLog, root: Path) -> list[Path]:
    """The shared files a log is built from (to skip the log when they are absent)."""
    if log.name == "cdnow":
        return [root / "cdnow" / "CDNOW_master.txt"]
    return [root / "online_retail" / "online_retail_II_2009_2010.parquet",
            root / "online_retail" / "online_retail.parquet"]
