"""Engagement features (`eng__`): what an account or lead did, from the activities table, strictly before T."""
from __future__ import annotations

import numpy as np
import pandas as pd

from features._context import Columns, Query, window_phrase
from features._events import (
    US_PER_DAY,
    EventIndex,
    days_between,
    entity_codes,
    last_before,
    require_columns,
    to_us,
)

#: Activity types of the contract, with a plural label (counts) and a singular one (recency).
ACTIVITY_TYPES: dict[str, tuple[str, str]] = {
    "email_sent": ("Emails sent to them", "email sent to them"),
    "email_open": ("Email opens", "email open"),
    "email_click": ("Email clicks", "email click"),
    "web_visit": ("Website visits", "website visit"),
    "pricing_page_visit": ("Pricing page visits", "pricing page visit"),
    "login": ("Logins", "login"),
    "feature_use": ("Feature uses", "feature use"),
    "webinar": ("Webinars attended", "webinar"),
    "form_submit": ("Forms submitted", "form submitted"),
    "content_download": ("Content downloads", "content download"),
    "meeting": ("Meetings", "meeting"),
    "call": ("Calls", "call"),
    "unsubscribe": ("Unsubscribes", "unsubscribe"),
}
#: Types that are the entity's own doing: email_sent is ours, so it does not make an entity "active".
_OWN_TYPES = tuple(t for t in ACTIVITY_TYPES if t != "email_sent")
TREND_RECENT_DAYS = 30
TREND_PRIOR_DAYS = 90


def _trend(recent: np.ndarray, prior: np.ndarray) -> np.ndarray:
    """Activity in the last 30 days over the monthly average of the 90 days before, smoothed by +1.

    1 = steady, < 1 = slowing down, > 1 = picking up; +1 keeps it finite for entities new to the activity.
    """
    return (recent + 1.0) / (prior * (TREND_RECENT_DAYS / TREND_PRIOR_DAYS) + 1.0)


def engagement_features(activities: pd.DataFrame, key: str, q: Query) -> Columns:
    """Engagement columns for every spine row.

    Parameters
    ----------
    activities : contract activities frame; rows of other entities (or with an unknown type) are ignored.
    key : "account_id" or "lead_id": whose activities these are.
    q : the spine as arrays.

    Returns
    -------
    Columns prefixed `eng__`: per activity type, counts over each window, days since the last one and a
    30-vs-90-day trend; all-activity counts, active days and trend; email open and click rates; unsubscribed flag.
    Only activities with occurred_at < cutoff are used.
    """
    require_columns(activities, "activities", (key, "occurred_at", "type"), "engagement features")
    cols = Columns("eng")
    n = len(q.entities)
    g = entity_codes(activities[key], q.entities)
    ts = to_us(activities["occurred_at"], what="activities.occurred_at")
    type_code = np.asarray(pd.Categorical(activities["type"], categories=list(ACTIVITY_TYPES)).codes, dtype=np.int64)
    k = len(ACTIVITY_TYPES)
    valid = (g >= 0) & (type_code >= 0)
    # One sort for all types: the group of an event is (entity, type).
    by_type = EventIndex.build(np.where(valid, g * k + type_code, -1), ts, n * k)
    own = valid & (type_code != 0)
    own_idx = EventIndex.build(np.where(own, g, -1), ts, n)

    t = q.t
    windows = q.windows_days
    counts: dict[tuple[str, int], np.ndarray] = {}
    for j, (name, (plural, singular)) in enumerate(ACTIVITY_TYPES.items()):
        grp = q.codes * k + j
        at_t = by_type.position(grp, t)
        for w in windows:
            c = at_t - by_type.position(grp, t - w * US_PER_DAY)
            counts[(name, w)] = c
            cols.num(f"{name}_{w}d", c, f"{plural} {window_phrase(w)}", "count")
        cols.num(f"days_since_{name}", days_between(t, last_before(by_type, grp, at_t)),
                 f"Days since last {singular}", "days")
        recent = at_t - by_type.position(grp, t - TREND_RECENT_DAYS * US_PER_DAY)
        prior = by_type.position(grp, t - TREND_RECENT_DAYS * US_PER_DAY) - by_type.position(
            grp, t - (TREND_RECENT_DAYS + TREND_PRIOR_DAYS) * US_PER_DAY)
        cols.num(f"{name}_trend", _trend(recent, prior),
                 f"{plural}: last 30 days vs the 90 days before (ratio)", "ratio")
        if name == "unsubscribe":
            cols.num("unsubscribed", (at_t > by_type.start(grp)).astype(np.int8),
                     "Has unsubscribed from emails", "flag")

    # All of the entity's own activity (everything except emails we sent).
    at_t = own_idx.position(q.codes, t)
    first_of_day = _first_of_day(own_idx)
    day_cum = np.concatenate([[0], np.cumsum(first_of_day)])
    for w in windows:
        lo = own_idx.position(q.codes, t - w * US_PER_DAY)
        cols.num(f"activities_{w}d", at_t - lo, f"Activities of any kind {window_phrase(w)}", "count")
        # Days with activity in [lo, at_t): day runs starting inside, plus the run already under way at lo.
        starts = day_cum[at_t] - day_cum[lo]
        if len(first_of_day):
            carried = (lo < at_t) & ~first_of_day[np.minimum(lo, len(first_of_day) - 1)]
        else:
            carried = np.zeros(len(lo), dtype=bool)
        cols.num(f"active_days_{w}d", starts + carried.astype(np.int64), f"Days with any activity {window_phrase(w)}",
                 "days")
    cols.num("days_since_activity", days_between(t, last_before(own_idx, q.codes, at_t)),
             "Days since last activity of any kind", "days")
    recent = at_t - own_idx.position(q.codes, t - TREND_RECENT_DAYS * US_PER_DAY)
    prior = own_idx.position(q.codes, t - TREND_RECENT_DAYS * US_PER_DAY) - own_idx.position(
        q.codes, t - (TREND_RECENT_DAYS + TREND_PRIOR_DAYS) * US_PER_DAY)
    cols.num("activity_trend", _trend(recent, prior),
             "Activity of any kind: last 30 days vs the 90 days before (ratio)", "ratio")

    for w in windows:
        sent = counts[("email_sent", w)]
        with np.errstate(divide="ignore", invalid="ignore"):
            opens = np.where(sent > 0, np.minimum(counts[("email_open", w)] / sent, 1.0), np.nan)
            clicks = np.where(sent > 0, np.minimum(counts[("email_click", w)] / sent, 1.0), np.nan)
        cols.num(f"email_open_rate_{w}d", opens, f"Email open rate {window_phrase(w)}", "share")
        cols.num(f"email_click_rate_{w}d", clicks, f"Email click rate {window_phrase(w)}", "share")
    return cols


def _first_of_day(idx: EventIndex) -> np.ndarray:
    """True where an event is the first of its entity's UTC calendar day (events sorted by entity, time)."""
    day = np.floor_divide(idx.ts, US_PER_DAY)
    first = np.ones(len(day), dtype=bool)
    if len(day) > 1:
        first[1:] = (day[1:] != day[:-1]) | (idx.groups[1:] != idx.groups[:-1])
    return first


__all__ = ["ACTIVITY_TYPES", "engagement_features"]
