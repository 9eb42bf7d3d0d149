"""One entry point for features: the same call builds training sets (many cutoffs) and scoring sets (one).

Which families are built:

| entity  | family (prefix)       | table         | when the table is absent        |
| ------- | --------------------- | ------------- | ------------------------------- |
| account | engagement (`eng__`)  | activities    | required by the contract        |
| account | purchase (`buy__`)    | orders        | required by the contract        |
| account | BG/NBD (`btyd__`)     | orders        | required by the contract        |
| account | support (`sup__`)     | tickets       | optional: no `sup__` columns    |
| account | subscription (`sub__`)| subscriptions | optional: no `sub__` columns    |
| account | firmographic (`firm__`)| accounts     | required                        |
| lead    | engagement (`eng__`)  | activities    | required by the contract        |
| lead    | decayed engagement (`eng__*_decay{h}d`) | activities | none when no half-life is given |
| lead    | firmographic (`firm__`)| leads        | required for leads              |
| lead    | funnel (`funnel__`)   | leads         | required for leads              |

The set of columns depends only on `entity`, `windows_days`, `lead_decay_half_lives_days` and which tables are
present, never on the data.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from features._context import Columns, Query, spine_arrays
from features._events import require_table
from features.btyd import BTYDModel, btyd_features
from features.catalog import FeatureInfo, FeatureSet
from features.engagement import decayed_engagement_features, engagement_features
from features.errors import InvalidInputError, UnknownOptionError
from features.firmographic import account_firmographics, lead_firmographics
from features.funnel import funnel_features
from features.purchase import purchase_features
from features.spine import build_spine
from features.subscription import subscription_features
from features.support import support_features

ENTITIES: tuple[str, ...] = ("account", "lead")


def build_features(
    tables: dict[str, pd.DataFrame],
    spine: pd.DataFrame,
    entity: str,
    *,
    windows_days: Sequence[int] = (30, 90, 365),
    forward_days: Sequence[int] = (),
    lead_decay_half_lives_days: Sequence[int] = (),
    btyd_fits: Mapping[pd.Timestamp, BTYDModel | None] | None = None,
) -> FeatureSet:
    """Point-in-time features of every spine row.

    Parameters
    ----------
    tables : the extract (canonical frames, see docs/architecture.md); not modified.
    spine : entity_id, cutoff_ts rows (e.g. from `features.spine.build_spine`); not modified. Any number of
        cutoffs; entity ids may repeat across cutoffs.
    entity : "account" or "lead".
    windows_days : look-back windows (days) of the windowed counts and sums.
    forward_days : horizons (days) the BG/NBD features forecast over, besides the windows (accounts only).
    lead_decay_half_lives_days : half-lives (days) of the leads' exponentially decayed activity counts
        (`features.engagement.decayed_engagement_features`); empty = none.
    btyd_fits : for a bucket of the population (``tables`` holding only some entities, each with all its rows): the
        BG/NBD fit of every cutoff of the spine, from ``features.btyd.feature_fit`` on the whole population; every
        other family depends only on each entity's own rows. None = fit here (``tables`` is the whole population).

    Returns
    -------
    FeatureSet whose frame has entity_id, cutoff_ts, then the feature columns, one row per spine row in spine
    order with the spine's index; and whose catalog describes every feature column.

    Time semantics: a feature of row (e, T) reads only rows dated strictly before T (event time < T); a state
    "at T" (open ticket, active subscription) means started before T and not ended before T.
    """
    if entity not in ENTITIES:
        raise UnknownOptionError(f"entity={entity!r} is not known; possible values are {list(ENTITIES)}.")
    windows = tuple(sorted({int(w) for w in windows_days}))
    if not windows or windows[0] <= 0:
        raise InvalidInputError(f"windows_days={tuple(windows_days)!r}; expected one or more positive day counts.")
    half_lives = tuple(sorted({int(h) for h in lead_decay_half_lives_days}))
    if half_lives and half_lives[0] <= 0:
        raise InvalidInputError(f"lead_decay_half_lives_days={tuple(lead_decay_half_lives_days)!r}; expected positive "
                                "day counts (or none).")
    index, codes, t = spine_arrays(spine)
    q = Query(entities=index, codes=codes, t=t, entity_ids=spine["entity_id"], windows_days=windows)

    families: list[Columns] = []
    activities = require_table(tables, "activities", "engagement features")
    if entity == "account":
        families.append(engagement_features(activities, "account_id", q))
        orders = require_table(tables, "orders", "purchase features")
        families.append(purchase_features(orders, q))
        families.append(btyd_features(orders, q, btyd_horizons(windows, forward_days), btyd_fits))
        if tables.get("tickets") is not None:
            families.append(support_features(tables["tickets"], q))
        if tables.get("subscriptions") is not None:
            families.append(subscription_features(tables["subscriptions"], q))
        families.append(account_firmographics(require_table(tables, "accounts", "firmographic features"), q))
    else:
        leads = require_table(tables, "leads", "lead features")
        families.append(engagement_features(activities, "lead_id", q))
        families.append(decayed_engagement_features(activities, "lead_id", q, half_lives))
        families.append(lead_firmographics(leads, q))
        families.append(funnel_features(leads, q))

    data: dict[str, object] = {
        "entity_id": spine["entity_id"].astype("str").array.copy(),
        "cutoff_ts": spine["cutoff_ts"].array.as_unit("us").tz_convert("UTC")
        if getattr(spine["cutoff_ts"].dtype, "tz", None) is not None
        else spine["cutoff_ts"].array.as_unit("us").tz_localize("UTC"),
    }
    catalog: dict[str, FeatureInfo] = {}
    for fam in families:
        for col, values in fam.values.items():
            data[col] = values
        catalog.update(fam.catalog)
    frame = pd.DataFrame(data, index=spine.index.copy())
    return FeatureSet(frame=frame, catalog=catalog)


def btyd_horizons(windows_days: Sequence[int], forward_days: Sequence[int]) -> list[int]:
    """The horizons (days) the ``btyd__`` family forecasts over: the feature windows and ``forward_days``."""
    return sorted({int(w) for w in windows_days} | {int(d) for d in forward_days})


def features_as_of(
    tables: dict[str, pd.DataFrame],
    entity: str,
    as_of: pd.Timestamp | str,
    *,
    populations: Sequence[str],
    churn_lookback_days: int,
    windows_days: Sequence[int],
    forward_days: Sequence[int] = (),
    lead_decay_half_lives_days: Sequence[int],
) -> FeatureSet:
    """Features of every record of `populations` at `as_of`: the `crmscore features` command in one pure call.

    `populations` are spine populations of `entity` (the caller knows which ones its tasks score: accounts the
    active customers, leads the open and the SQL leads); a record in several appears once, in the first one.
    Same code path as training, with a one-cutoff spine.
    """
    if entity not in ENTITIES:
        raise UnknownOptionError(f"entity={entity!r} is not known; possible values are {list(ENTITIES)}.")
    if not populations:
        raise InvalidInputError(f"no population given for entity {entity!r}.")
    spines = [build_spine(tables, pop, [as_of], churn_lookback_days=churn_lookback_days) for pop in populations]
    spine = pd.concat(spines, ignore_index=True) if len(spines) > 1 else spines[0]
    spine = spine.drop_duplicates("entity_id", ignore_index=True)
    return build_features(tables, spine, entity, windows_days=windows_days, forward_days=forward_days,
                          lead_decay_half_lives_days=lead_decay_half_lives_days)


def feature_columns(catalog: dict[str, FeatureInfo], kind: str | None = None) -> list[str]:
    """Feature columns of a catalog, optionally only one kind ("numeric" or "categorical")."""
    return [c for c, info in catalog.items() if kind is None or info.kind == kind]


__all__ = ["ENTITIES", "btyd_horizons", "build_features", "feature_columns", "features_as_of"]
