"""Engagement features (`eng__`): what an account or lead did, from the activities table, strictly before T."""
from __future__ import annotations

import numpy as np
import pandas as pd

from features._context import Columns, Query, window_phrase
from features._events import (
    NAT,
    US_PER_DAY,
    EventIndex,
    days_between,
    entity_codes,
    require_columns,
    segmented_cumsum,
    sum_upto,
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
#: Kinds whose decayed counts are built beside the decayed total: the classic high-intent signals of lead scoring
#: (a pricing page visit, a form submitted) and the most frequent one (website visits).
DECAYED_TYPES: tuple[str, ...] = ("pricing_page_visit", "form_submit", "web_visit")
#: A decayed count ignores events older than this many half-lives (their weight is below 2**-40).
DECAY_HORIZON_HALF_LIVES = 40


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
    g = entity_codes(activities[key], q.entities)
    type_code = _type_codes(activities["type"])
    idx = EventIndex.build(np.where(type_code >= 0, g, -1), to_us(activities["occurred_at"],
                                                                   what="activities.occurred_at"), len(q.entities))
    kind = idx.take(type_code).astype(np.int8)
    c, t = q.codes, q.t
    start = idx.start(c)
    # One sort serves every type: positions of each window edge are computed once, and a running count per
    # type turns them into that type's counts.
    edges = sorted({0, TREND_RECENT_DAYS, TREND_RECENT_DAYS + TREND_PRIOR_DAYS, *q.windows_days})
    pos = {d: idx.position(c, t - d * US_PER_DAY) for d in edges}
    at_t = pos[0]

    def in_window(running: np.ndarray, days: int, upto: int = 0) -> np.ndarray:
        return (running[pos[upto]] - running[pos[days]]).astype(np.int64)

    def last_time(flag: np.ndarray, running: np.ndarray) -> np.ndarray:
        """Time of the entity's last flagged event before the cutoff (NAT if none).

        running[at_t] flagged events precede the cutoff, so the last of them is flagged event number
        running[at_t] - 1; it is the entity's own when the entity has any flagged event before the cutoff.
        """
        where = np.flatnonzero(flag)
        k = running[at_t].astype(np.int64) - 1
        ok = running[at_t] > running[start]
        if len(where) == 0:
            return np.full(len(c), NAT, dtype=np.int64)
        return np.where(ok, idx.ts[where[np.maximum(k, 0)]], NAT)

    counts: dict[tuple[str, int], np.ndarray] = {}
    for j, (name, (plural, singular)) in enumerate(ACTIVITY_TYPES.items()):
        flag = kind == j
        running = _running_count(flag)
        for w in q.windows_days:
            counts[(name, w)] = in_window(running, w)
            cols.num(f"{name}_{w}d", counts[(name, w)], f"{plural} {window_phrase(w)}", "count")
        cols.num(f"days_since_{name}", days_between(t, last_time(flag, running)), f"Days since last {singular}",
                 "days")
        cols.num(f"{name}_trend", _trend(in_window(running, TREND_RECENT_DAYS),
                                         in_window(running, TREND_RECENT_DAYS + TREND_PRIOR_DAYS, TREND_RECENT_DAYS)),
                 f"{plural}: last 30 days vs the 90 days before (ratio)", "ratio")
        if name == "unsubscribe":
            cols.num("unsubscribed", ((running[at_t] - running[start]) > 0).astype(np.int8),
                     "Has unsubscribed from emails", "flag")

    # All of the entity's own activity (everything except emails we sent).
    own = kind != 0
    running = _running_count(own)
    first_day = _first_own_of_day(idx, own)
    day_running = _running_count(first_day)
    # To see whether a window starts in the middle of an active day: the first own event at or after its start.
    n_ev = len(own)
    own_at = np.append(np.flatnonzero(own), n_ev)
    for w in q.windows_days:
        lo = pos[w]
        cols.num(f"activities_{w}d", in_window(running, w), f"Activities of any kind {window_phrase(w)}", "count")
        first_in = own_at[running[lo]]  # the first own event at or after lo (n_ev if none)
        carried = (first_in < at_t) & ~np.append(first_day, False)[first_in]
        cols.num(f"active_days_{w}d", in_window(day_running, w) + carried.astype(np.int64),
                 f"Days with any activity {window_phrase(w)}", "days")
    cols.num("days_since_activity", days_between(t, last_time(own, running)), "Days since last activity of any kind",
             "days")
    cols.num("activity_trend", _trend(in_window(running, TREND_RECENT_DAYS),
                                      in_window(running, TREND_RECENT_DAYS + TREND_PRIOR_DAYS, TREND_RECENT_DAYS)),
             "Activity of any kind: last 30 days vs the 90 days before (ratio)", "ratio")

    for w in q.windows_days:
        sent = counts[("email_sent", w)]
        with np.errstate(divide="ignore", invalid="ignore"):
            opens = np.where(sent > 0, np.minimum(counts[("email_open", w)] / sent, 1.0), np.nan)
            clicks = np.where(sent > 0, np.minimum(counts[("email_click", w)] / sent, 1.0), np.nan)
        cols.num(f"email_open_rate_{w}d", opens, f"Email open rate {window_phrase(w)}", "share")
        cols.num(f"email_click_rate_{w}d", clicks, f"Email click rate {window_phrase(w)}", "share")
    return cols


def decayed_engagement_features(activities: pd.DataFrame, key: str, q: Query,
                                half_lives_days: tuple[int, ...]) -> Columns:
    """Exponentially decayed activity counts per spine row: how lead scoring systems age engagement points.

    For a half-life h, an event d days before the cutoff counts 2 ** (-d / h): a visit yesterday counts about 1, one
    h days ago 1/2, one 4h days ago 1/16. Built for the entity's own activity of any kind (everything except emails
    we sent) and for each kind of :data:`DECAYED_TYPES`, at every half-life. Only activities with occurred_at < cutoff
    are used; events older than :data:`DECAY_HORIZON_HALF_LIVES` half-lives are ignored (weight < 1e-12).

    Returns
    -------
    Columns prefixed `eng__`: `activities_decay{h}d` and `{kind}_decay{h}d` (unit count); none when
    ``half_lives_days`` is empty.
    """
    cols = Columns("eng")
    if not half_lives_days:
        return cols
    require_columns(activities, "activities", (key, "occurred_at", "type"), "engagement features")
    g = entity_codes(activities[key], q.entities)
    type_code = _type_codes(activities["type"])
    idx = EventIndex.build(np.where(type_code >= 0, g, -1), to_us(activities["occurred_at"],
                                                                   what="activities.occurred_at"), len(q.entities))
    kind = idx.take(type_code)
    names = list(ACTIVITY_TYPES)
    flags = {"activities": kind != names.index("email_sent"),
             **{name: kind == names.index(name) for name in DECAYED_TYPES}}
    flag_matrix = np.column_stack(list(flags.values())).astype(np.float64) if len(kind) else np.zeros((0, len(flags)))
    c, t = q.codes, q.t
    start, at_t = idx.start(c), idx.position(c, t)
    for h in sorted({int(v) for v in half_lives_days}):
        rate = np.log(2.0) / (h * US_PER_DAY)  # per microsecond
        out = {name: np.zeros(len(c)) for name in flags}
        # One pass per distinct cutoff: the weights of every event relative to that cutoff, zero outside
        # [cutoff - horizon, cutoff); a running sum restarting at each entity turns them into per-row sums that depend
        # on the entity's own events only, bit for bit (so a bucket of the extract gives the same values).
        for cut in np.unique(t):
            rows = np.flatnonzero(t == cut)
            age = cut - idx.ts
            w = np.where((age > 0) & (age <= DECAY_HORIZON_HALF_LIVES * h * US_PER_DAY), np.exp(-rate * age), 0.0)
            cum = segmented_cumsum(w[:, None] * flag_matrix, idx.groups)
            for j, name in enumerate(flags):
                out[name][rows] = sum_upto(cum[:, j] if len(cum) else cum, start[rows], at_t[rows])
        label = f"exponentially decayed, half-life {h} days"
        cols.num(f"activities_decay{h}d", out["activities"], f"Activities of any kind, {label}", "count")
        for name in DECAYED_TYPES:
            cols.num(f"{name}_decay{h}d", out[name], f"{ACTIVITY_TYPES[name][0]}, {label}", "count")
    return cols


def _type_codes(types: pd.Series) -> np.ndarray:
    """Position of each activity's type in ACTIVITY_TYPES, -1 for a type outside the contract.

    One vectorised comparison per known type is cheaper than hashing every row's text.
    """
    code = np.full(len(types), -1, dtype=np.int64)
    for j, name in enumerate(ACTIVITY_TYPES):
        code[(types == name).to_numpy(dtype=bool, na_value=False)] = j
    return code


def _running_count(flag: np.ndarray) -> np.ndarray:
    """running[p] = number of flagged events at positions < p (length n + 1)."""
    out = np.zeros(len(flag) + 1, dtype=np.int32 if len(flag) < 2**31 else np.int64)
    np.cumsum(flag, out=out[1:])
    return out


def _first_own_of_day(idx: EventIndex, own: np.ndarray) -> np.ndarray:
    """True at each own event that is the entity's first own event of its UTC calendar day."""
    out = np.zeros(len(own), dtype=bool)
    at = np.flatnonzero(own)
    if len(at):
        day = np.floor_divide(idx.ts[at], US_PER_DAY)
        grp = idx.groups[at]
        first = np.ones(len(at), dtype=bool)
        first[1:] = (day[1:] != day[:-1]) | (grp[1:] != grp[:-1])
        out[at[first]] = True
    return out


__all__ = ["ACTIVITY_TYPES", "DECAYED_TYPES", "decayed_engagement_features", "engagement_features"]
