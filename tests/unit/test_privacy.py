"""The one-pass privacy view drops exactly what the two passes (erased, then objected) drop, in the same order."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pandas.testing as pdt

from crm.privacy import exclude_deleted, profiling_view, usable_view
from data_contracts.testing import build_valid_extract


def test_usable_view_equals_erasure_then_objection() -> None:
    tables = build_valid_extract(seed=21)
    acc, leads = tables["accounts"], tables["leads"]
    # an account both erased and objecting, and a lead whose consent is unknown (null: treated as objected)
    acc.loc[0, "deleted_at"] = acc.loc[0, "created_at"]
    acc.loc[0, "consent_profiling"] = False
    leads["consent_profiling"] = leads["consent_profiling"].astype("boolean")
    leads.loc[1, "consent_profiling"] = pd.NA
    two_passes = profiling_view(exclude_deleted(tables))
    one_pass = usable_view(tables)
    assert one_pass.keys() == two_passes.keys()
    for name in two_passes:
        pdt.assert_frame_equal(one_pass[name], two_passes[name])
    gone = set(tables["accounts"]["account_id"]) - set(one_pass["accounts"]["account_id"])
    assert acc.loc[0, "account_id"] in gone and len(gone) > 1  # erased ones and objecting ones
    assert not one_pass["orders"]["account_id"].isin(gone).any()
    assert leads.loc[1, "lead_id"] not in set(one_pass["leads"]["lead_id"])
    assert np.all(one_pass["accounts"]["deleted_at"].isna())
