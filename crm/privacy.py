"""Privacy at the edge: erased records and records that objected to profiling.

- ``exclude_deleted``: an account or lead with ``deleted_at`` set requested erasure; it and every row that refers to
  it are removed right after reading, so nothing downstream (validation aside) ever sees them.
- ``profiling_view``: accounts and leads with ``consent_profiling`` false objected to profiling (GDPR art. 21, CCPA
  opt-out); the training and scoring flows drop them and their rows before building anything. The feature spines exclude
  them again (defence in depth).
"""
from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

_ACCOUNT_CHILDREN = ("subscriptions", "orders", "tickets")


def exclude_deleted(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Drop deleted accounts and leads and every row referring to them."""
    return _drop(tables, lambda df: df["deleted_at"].notna() if "deleted_at" in df.columns else pd.Series(False, index=df.index))


def profiling_view(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Drop accounts and leads that objected to profiling, and every row referring to them."""
    return _drop(tables, lambda df: ~df["consent_profiling"].fillna(False).astype(bool))


def usable_view(tables: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """``profiling_view(exclude_deleted(tables))`` in one pass: what models may see, with one copy of each table
    instead of two (the same rows in the same order: a record is gone if it was erased or objected)."""
    def excluded(df: pd.DataFrame) -> pd.Series:
        objected = ~df["consent_profiling"].fillna(False).astype(bool)
        return objected | df["deleted_at"].notna() if "deleted_at" in df.columns else objected

    return _drop(tables, excluded)


def _drop(tables: Mapping[str, pd.DataFrame], excluded) -> dict[str, pd.DataFrame]:
    out = dict(tables)
    gone_accounts = pd.Index([], dtype="str")
    gone_leads = pd.Index([], dtype="str")
    if "accounts" in out:
        acc = out["accounts"]
        mask = excluded(acc)
        gone_accounts = pd.Index(acc.loc[mask, "account_id"])
        out["accounts"] = acc.loc[~mask].reset_index(drop=True)
    if "leads" in out:
        leads = out["leads"]
        mask = excluded(leads)
        gone_leads = pd.Index(leads.loc[mask, "lead_id"])
        out["leads"] = leads.loc[~mask].reset_index(drop=True)
    for name in _ACCOUNT_CHILDREN:
        if name in out and len(gone_accounts):
            df = out[name]
            out[name] = df.loc[~df["account_id"].isin(gone_accounts)].reset_index(drop=True)
    if "activities" in out and (len(gone_accounts) or len(gone_leads)):
        act = out["activities"]
        keep = ~(act["account_id"].isin(gone_accounts) | act["lead_id"].isin(gone_leads))
        out["activities"] = act.loc[keep].reset_index(drop=True)
    return out
