"""Vectorised point-in-time primitives shared by spines, labels and feature families.

Every time is int64 microseconds since the Unix epoch (UTC). Events are sorted once per (group, time) and every
question "how many / how much of this group's events fall in [a, b)" becomes two binary searches per query row,
done for all query rows at once (a vectorised bisection), never a Python loop over entities.

Point-in-time rule, in one place: `EventIndex.position(groups, t)` is the first event of the group with time >= t,
so the events strictly before t are [group start, position) and a window [a, b) is [position(a), position(b)).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from features.errors import InvalidInputError, MissingInputError

US_PER_DAY = 86_400_000_000
#: Missing time (NaT) as int64.
NAT = np.iinfo(np.int64).min
#: "Never" for open-ended intervals (a subscription without ended_at, a ticket without closed_at).
NEVER = np.iinfo(np.int64).max


def to_us(values: pd.Series, *, what: str = "timestamp column") -> np.ndarray:
    """Timestamps as int64 microseconds since the epoch (UTC), NaT as `NAT`. Naive values are read as UTC.

    Returns a new array; the input is not modified.
    """
    s = values if isinstance(values, pd.Series) else pd.Series(values)
    if not pd.api.types.is_datetime64_any_dtype(s.dtype):
        raise InvalidInputError(
            f"{what} has dtype {s.dtype}; expected datetime64[us, UTC] (parse timestamps before building features)."
        )
    return np.asarray(s.array.as_unit("us").asi8, dtype=np.int64).copy()


def ts_to_us(ts: pd.Timestamp | str, *, what: str = "timestamp") -> int:
    """One timestamp as int64 microseconds (UTC). Naive values are read as UTC; NaT is refused."""
    t = pd.Timestamp(ts)
    if pd.isna(t):
        raise InvalidInputError(f"{what} is missing (NaT); expected a UTC timestamp.")
    if t.tzinfo is None:
        t = t.tz_localize("UTC")
    return int(t.tz_convert("UTC").as_unit("us").asm8.view("i8"))


def us_to_ts(values: np.ndarray) -> pd.DatetimeIndex:
    return pd.DatetimeIndex(np.asarray(values, dtype="datetime64[us]")).tz_localize("UTC")


def require_columns(frame: pd.DataFrame, table: str, columns: tuple[str, ...], needed_for: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MissingInputError(
            f"table {table!r} lacks column(s) {missing} needed for {needed_for}; it has {list(frame.columns)}."
        )


def require_table(tables: dict[str, pd.DataFrame], table: str, needed_for: str) -> pd.DataFrame:
    if table not in tables or tables[table] is None:
        raise MissingInputError(
            f"table {table!r} is needed for {needed_for} but the extract holds only {sorted(tables)}."
        )
    return tables[table]


def entity_codes(ids: pd.Series, entity_index: pd.Index) -> np.ndarray:
    """Position of each id in `entity_index` (int64), -1 for ids not there (and for missing ids).

    Factorizes the (long) id column first and looks up only its distinct values: hashing tens of millions of
    strings once is much cheaper than an index lookup per row.
    """
    codes, uniques = pd.factorize(ids, use_na_sentinel=True)
    if len(uniques) == 0:
        return np.full(len(codes), -1, dtype=np.int64)
    lookup = np.asarray(entity_index.get_indexer(uniques), dtype=np.int64)
    return np.where(codes >= 0, lookup[np.maximum(codes, 0)], -1)


def segmented_cumsum(values: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Inclusive running sum restarting at each group (groups sorted, contiguous); a 2-D ``values`` column by column.

    Restarting per group (rather than one global running sum) makes every group's sums depend on that group's
    own events only, bit for bit: adding an event to another entity cannot change a float by rounding.
    """
    if len(values) == 0:
        return np.zeros(np.shape(values), dtype=np.float64)
    if np.ndim(values) == 2:
        return pd.DataFrame(values, dtype=np.float64).groupby(groups, sort=False).cumsum().to_numpy()
    return pd.Series(values, dtype=np.float64).groupby(groups, sort=False).cumsum().to_numpy()


def sort_order(g: np.ndarray, t: np.ndarray, n_groups: int) -> np.ndarray:
    """Stable order by (group, time): ties keep input order, so a group's order never depends on other groups.

    Packs group and time into one int64 key and sorts it once (about 3x faster than np.lexsort on tens of
    millions of rows). When time needs more bits than remain, the key holds time at a coarser step; if that
    leaves any group out of time order (sub-step timestamps), falls back to np.lexsort. Same result either way.
    """
    if len(g) == 0:
        return np.zeros(0, dtype=np.int64)
    tmin = int(t.min())
    span = int(t.max()) - tmin
    free = 62 - max(int(n_groups), 1).bit_length()
    shift = max(span.bit_length() - free, 0)
    if free < 8:  # too many groups to pack: plain lexsort
        return np.lexsort((t, g))
    key = (g.astype(np.int64) << free) | ((t - tmin) >> shift)
    order = np.argsort(key, kind="stable")
    if shift:
        gs, ts = g[order], t[order]
        if np.any((gs[1:] == gs[:-1]) & (ts[1:] < ts[:-1])):
            return np.lexsort((t, g))
    return order


@dataclass(frozen=True)
class EventIndex:
    """Events sorted by (group, time); group g occupies [offsets[g], offsets[g + 1]).

    Attributes
    ----------
    ts : int64 microseconds, sorted within each group.
    groups : the group of each sorted event.
    offsets : int64, n_groups + 1 boundaries.
    source : for each sorted event, its row position in the input arrays (to carry values along).
    """

    ts: np.ndarray
    groups: np.ndarray
    offsets: np.ndarray
    source: np.ndarray

    @classmethod
    def build(cls, groups: np.ndarray, ts: np.ndarray, n_groups: int) -> "EventIndex":
        """Index events whose group is >= 0 and whose time is not NaT; others are dropped."""
        keep = (groups >= 0) & (ts != NAT)
        src = np.flatnonzero(keep)
        order = sort_order(groups[src], ts[src], n_groups)
        src = src[order]
        g = groups[src]
        counts = np.bincount(g, minlength=n_groups) if len(g) else np.zeros(n_groups, dtype=np.int64)
        offsets = np.zeros(n_groups + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(ts=ts[src], groups=g, offsets=offsets, source=src)

    def take(self, values: np.ndarray) -> np.ndarray:
        """Per-event values (aligned with the input rows) reordered into index order."""
        return np.asarray(values)[self.source]

    def start(self, groups: np.ndarray) -> np.ndarray:
        return self.offsets[groups]

    def end(self, groups: np.ndarray) -> np.ndarray:
        return self.offsets[groups + 1]

    def position(self, groups: np.ndarray, times: np.ndarray) -> np.ndarray:
        """For each (group, time): the index of the group's first event with ts >= time (its end if none).

        So [start(group), position) are exactly the group's events strictly before `time`.
        Times equal to NEVER give the group's end; times equal to NAT give its start.
        """
        lo = self.offsets[groups].copy()
        hi = self.offsets[groups + 1].copy()
        if len(self.ts) == 0 or len(lo) == 0:
            return lo
        longest = int((hi - lo).max())
        last = len(self.ts) - 1
        # A fixed number of halvings: ceil(log2(longest + 1)) steps close every lane.
        for _ in range(max(longest, 1).bit_length()):
            mid = (lo + hi) >> 1
            before = self.ts[np.minimum(mid, last)] < times
            open_ = lo < hi
            lo = np.where(open_ & before, mid + 1, lo)
            hi = np.where(open_ & ~before, mid, hi)
        return lo

    def count(self, groups: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Number of events in [a, b) per query."""
        return self.position(groups, b) - self.position(groups, a)


def sum_upto(cum: np.ndarray, start: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Sum over positions [start, pos) from a :func:`segmented_cumsum` (``start`` = the group's first position)."""
    if len(cum) == 0:
        return np.zeros(len(pos), dtype=np.float64)
    return np.where(pos > start, cum[np.clip(pos - 1, 0, len(cum) - 1)], 0.0)


class PrefixSum:
    """Sums of one per-event value over [i, j) position ranges of an EventIndex, per group, exactly reproducible."""

    def __init__(self, index: EventIndex, values: np.ndarray) -> None:
        v = np.asarray(index.take(values), dtype=np.float64)
        self._cum = segmented_cumsum(v, index.groups)
        self._index = index

    def upto(self, groups: np.ndarray, pos: np.ndarray) -> np.ndarray:
        """Sum of the group's values at positions [start, pos)."""
        return sum_upto(self._cum, self._index.offsets[groups], pos)

    def between(self, groups: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return self.upto(groups, j) - self.upto(groups, i)


def range_sum(index: EventIndex, values: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Sum of per-event `values` (input row order) over index positions [i, j) of each query, added up directly.

    Unlike `PrefixSum.between` (a difference of running sums, whose last bits depend on the events before i),
    the result depends only on the events inside the range: labels use it so that nothing before the cutoff
    can move a label, not even by rounding. Costs O(total events in the ranges).
    """
    lengths = np.maximum(j - i, 0)
    rows = np.repeat(np.arange(len(i)), lengths)
    offsets = np.cumsum(lengths) - lengths
    pos = np.repeat(i, lengths) + (np.arange(len(rows)) - np.repeat(offsets, lengths))
    v = np.asarray(values, dtype=np.float64)[index.source[pos]] if len(pos) else np.zeros(0)
    return np.bincount(rows, weights=v, minlength=len(i)).astype(np.float64)


def days_between(later_us: np.ndarray, earlier_us: np.ndarray) -> np.ndarray:
    """(later - earlier) in days as float64; NaN where earlier is NAT."""
    out = (later_us - earlier_us) / US_PER_DAY
    return np.where(earlier_us == NAT, np.nan, out)


def last_before(index: EventIndex, groups: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Time of the group's last event before `pos` (NAT if none)."""
    start = index.offsets[groups]
    if len(index.ts) == 0:
        return np.full(len(pos), NAT, dtype=np.int64)
    prev = index.ts[np.clip(pos - 1, 0, len(index.ts) - 1)]
    return np.where(pos > start, prev, NAT)


def first_before(index: EventIndex, groups: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Time of the group's first event if it lies before `pos` (NAT if none)."""
    start = index.offsets[groups]
    if len(index.ts) == 0:
        return np.full(len(pos), NAT, dtype=np.int64)
    first = index.ts[np.clip(start, 0, len(index.ts) - 1)]
    return np.where(pos > start, first, NAT)


@dataclass(frozen=True)
class Coverage:
    """Merged intervals [start, end) of subscriptions per account: where an account is continuously covered.

    Intervals that touch (one ends exactly when the next starts: a plan change) merge into one block.
    `end` is NEVER for a block that is still open.
    """

    index: EventIndex  # over block starts
    end: np.ndarray  # block end in index order

    @classmethod
    def build(cls, groups: np.ndarray, start_us: np.ndarray, end_us: np.ndarray, n_groups: int) -> "Coverage":
        keep = (groups >= 0) & (start_us != NAT)
        g, s = groups[keep], start_us[keep]
        e = np.where(end_us[keep] == NAT, NEVER, end_us[keep])
        order = sort_order(g, s, n_groups)
        g, s, e = g[order], s[order], e[order]
        n = len(g)
        if n:
            run_end = pd.Series(e).groupby(g, sort=False).cummax().to_numpy()
            new_group = np.ones(n, dtype=bool)
            new_group[1:] = g[1:] != g[:-1]
            gap = np.ones(n, dtype=bool)
            gap[1:] = s[1:] > run_end[:-1]
            block_first = new_group | gap
            firsts = np.flatnonzero(block_first)
            b_group, b_start = g[firsts], s[firsts]
            b_end = np.maximum.reduceat(e, firsts)
        else:
            b_group = b_start = b_end = np.zeros(0, dtype=np.int64)
        index = EventIndex.build(b_group, b_start, n_groups)
        return cls(index=index, end=index.take(b_end))

    def _block_at_or_before(self, groups: np.ndarray, t: np.ndarray, *, strict: bool) -> tuple[np.ndarray, np.ndarray]:
        """Index of the group's last block starting before t (strict) or at/before t; and whether one exists."""
        pos = self.index.position(groups, t + (0 if strict else 1))
        has = pos > self.index.offsets[groups]
        return np.maximum(pos - 1, 0), has

    def active_at(self, groups: np.ndarray, t: np.ndarray) -> np.ndarray:
        """Some subscription has started_at < t and (ended_at null or ended_at >= t).

        Only facts dated before t are used: a start before t, and "not ended before t".
        """
        if len(self.end) == 0:
            return np.zeros(len(groups), dtype=bool)
        k, has = self._block_at_or_before(groups, t, strict=True)
        return has & (self.end[k] >= t)

    def covers(self, groups: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Every instant of [a, b) lies inside some subscription's [started_at, ended_at)."""
        if len(self.end) == 0:
            return np.zeros(len(groups), dtype=bool)
        k, has = self._block_at_or_before(groups, a, strict=False)
        return has & (self.end[k] >= b)
