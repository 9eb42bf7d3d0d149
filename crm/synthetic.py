"""A seeded synthetic CRM with known truth: the world every crmscore model can be checked against.

The simulation is a weekly, vectorised (numpy over entities, a Python loop only over weeks) model of a
subscription business with add-on purchases and a B2B lead funnel. Week ``w`` (an integer, possibly negative)
covers ``[as_of + 7w days, as_of + 7(w+1) days)``, so ``as_of`` is always a week boundary: the CRM holds
weeks ``w < 0``, the truth looks at weeks ``w >= 0``.

Latent drivers and what makes them observable
---------------------------------------------
Accounts
    engagement ``z(w) = clip(a + b * tenure_years) + u(w)`` where ``a`` is the account's level, ``b`` its trend
    (negative = disengaging) and ``u`` a weekly AR(1) wobble. ``z`` drives logins, feature use, email opens and
    clicks, unsubscribes, plan up/downgrades and add-on order rates (all observed), and the churn hazard.
    frustration ``F(w)``: a decaying sum of bad support experiences (low CSAT, tickets open more than 10 days),
    which enter at the week after they happen. Tickets, their close times and CSAT are observed.
    weekly churn hazard ``h = sigmoid(c0 + segment - 1.25 z + 0.8 F + exp(-tenure/26w))``.
    orders: rate ``r0 * exp(0.5 z + g * tenure_years)`` (``g`` = the customer's own drift), amounts lognormal
    around a per-customer mean, a per-customer margin rate and refund rate.
Leads
    interest ``q(w) = q0 - cool * age_weeks + u(w)`` drives web visits, pricing-page visits, webinars,
    downloads, form submits, email opens and clicks (and meetings/calls once SQL), with a burst in a lead's first
    weeks that makes ``q0`` visible early; a rule on a points score of these events marks MQL (a marking only,
    not a cause); ``q`` with source, job level and company size (all observed) drives the SQL, won and lost
    hazards; stale open leads get disqualified. A won lead becomes an account (created at ``won_at``).
Both
    about 4 % of accounts and leads do not consent to profiling and 1.5 % are deleted, independently of behaviour.

The AR(1) wobbles are kept small and the event rates high enough that a model on point-in-time behavioural
features can reach about 95 % of the truth's AUC (measured with a LightGBM prototype: docs/benchmarks.md).

Truth
-----
``true_value`` is exact given the simulation's hazards: the covariate paths after ``as_of`` (``u``, future
tickets) are averaged over ``_MC_PATHS`` simulated futures (fixed seed) and, on each path, the outcome
probability is integrated in closed form (Rao-Blackwellised: ``sum_w S_w h_w f_w`` with the fraction ``f_w`` of
week ``w`` inside the horizon, events being uniform within their week). ``realized`` is what the main
simulation's own future did. The two use independent random streams. With ``_MC_PATHS = 24`` the Monte-Carlo
error of ``true_value`` is small next to the outcome noise (about 0.006 for churn, 4 % of the value for clv).

A ticket open at ``as_of`` already has a close time and CSAT in the main simulation (they make ``realized``);
the truth re-draws them on each path from the duration law truncated at the ticket's age, so it knows no more
about them than the CRM shows.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from crm.errors import CrmError
from data_contracts.schema import table_schema

WEEK_S = 7 * 86400.0
DAY_S = 86400.0
DEFAULT_HORIZONS: Mapping[str, int] = MappingProxyType(
    {"churn_days": 90, "clv_days": 365, "lead_mql_days": 60, "lead_sql_days": 90})
_MC_PATHS = 24
_TICKET_BUFFER_WEEKS = 12  # > max ticket effect delay (60 d + 1 week) in weeks

SEGMENTS = np.array(["consumer", "smb", "mid_market", "enterprise"])
INDUSTRIES = np.array(["software", "retail", "manufacturing", "finance", "healthcare", "education",
                       "media", "logistics", "hospitality", "public_sector"])
COUNTRIES = np.array(["US", "GB", "DE", "FR", "NL", "CA", "AU", "ES", "IT", "SE", "IN", "BR"])
COUNTRY_P = np.array([.30, .14, .10, .07, .05, .06, .05, .05, .05, .03, .06, .04])
CHANNELS = np.array(["organic", "paid_search", "paid_social", "referral", "partner", "outbound", "event"])
LEAD_SOURCES = np.array(["web", "paid_search", "paid_social", "referral", "partner", "outbound", "event"])
JOB_LEVELS = np.array(["c_level", "vp", "director", "manager", "individual"])
PLANS = np.array(["basic", "plus", "pro", "business", "enterprise"])
PRIORITIES = np.array(["low", "normal", "high", "urgent"])
ORDER_STATUS = np.array(["completed", "refunded", "cancelled"])
ACTIVITY_TYPES = np.array(["email_sent", "email_open", "email_click", "web_visit", "pricing_page_visit", "login",
                           "feature_use", "webinar", "form_submit", "content_download", "meeting", "call",
                           "unsubscribe"])
_ACT = {name: i for i, name in enumerate(ACTIVITY_TYPES)}
_ACT_CHANNEL = np.array(["email", "email", "email", "web", "web", "app", "app", "event", "web", "web",
                         "sales", "sales", "email"])

# --- account parameters (index = segment) ---------------------------------------------------------------------
_SEG_P = np.array([.40, .35, .18, .07])
_SEG_ENG = np.array([-0.10, 0.0, 0.10, 0.20])
_SEG_CHURN = np.array([0.60, 0.20, -0.30, -0.75])
_SEG_LOGIN = np.array([0.5, 0.6, 0.75, 1.0])
_SEG_TICKET = np.array([0.03, 0.05, 0.08, 0.12])
_SEG_ORDER = np.array([0.22, 0.18, 0.15, 0.12])
_SEG_AMOUNT = np.log(np.array([40.0, 250.0, 1200.0, 5000.0]))
_SEG_CAC = np.array([20.0, 300.0, 2500.0, 12000.0])
_SEG_SEATS = np.log(np.array([1.0, 3.0, 15.0, 60.0]))
_SEG_CHANNEL_P = np.array([[.35, .20, .25, .12, .02, .01, .05],
                           [.25, .25, .10, .15, .10, .05, .10],
                           [.15, .15, .05, .15, .15, .20, .15],
                           [.10, .05, .00, .15, .20, .30, .20]])
_CHANNEL_CAC = np.array([0.3, 1.2, 1.0, 0.6, 1.1, 1.6, 1.4])
_CHANNEL_ENG = np.array([0.05, 0.0, -0.15, 0.15, 0.05, -0.05, 0.0])
_PLAN_MRR = np.array([12.0, 39.0, 99.0, 299.0, 990.0])
_SEG_PLAN_P = np.array([[.7, .3, 0, 0, 0], [0, .5, .5, 0, 0], [0, 0, .6, .4, 0], [0, 0, 0, .5, .5]])
_CHURN_C0 = -5.3
_Z_RHO, _Z_SIGMA = 0.9, 0.10
_F_DECAY = 0.88
_AMOUNT_SD = 0.6
_P_CANCEL = 0.03
# tickets
_PRIO_P = np.array([.30, .45, .20, .05])
_PRIO_LOGH = np.array([3.6, 3.2, 2.6, 1.8])  # log hours to close
_CSAT_EFFECT = np.array([0.0, 1.2, 0.8, 0.2, 0.0, -0.1])  # by csat value 1..5 (index 0 unused)
_CSAT_MISSING_EFFECT = 0.15
_OVERDUE_S, _OVERDUE_EFFECT = 10 * DAY_S, 0.6
_MAX_TICKET_S = 60 * DAY_S
# --- lead parameters ------------------------------------------------------------------------------------------
_SOURCE_P = np.array([.30, .18, .12, .10, .08, .12, .10])
_SOURCE_Q = np.array([0.0, 0.0, -0.3, 0.4, 0.3, -0.4, 0.2])
_SOURCE_SQL = np.array([0.0, 0.1, -0.3, 0.6, 0.4, -0.5, 0.2])  # sales' preference by source
_SOURCE_TO_CHANNEL = np.array([0, 1, 2, 3, 4, 5, 6])  # lead source -> acquisition channel index
_LEVEL_P = np.array([.08, .12, .20, .30, .30])
_LEVEL_EFF = np.array([0.5, 0.4, 0.2, 0.0, -0.4])
_Q_RHO, _Q_SIGMA = 0.9, 0.13
_MQL_POINTS = {"web_visit": 1, "pricing_page_visit": 4, "webinar": 6, "content_download": 3, "form_submit": 6,
               "email_click": 2}
_MQL_THRESHOLD = 30

_FIRST = np.array(["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory",
                   "niaj", "olivia", "peggy", "rupert", "sybil", "trent", "victor", "walter", "yara"])
_LAST = np.array(["kim", "miller", "novak", "schmidt", "dubois", "rossi", "garcia", "smith", "jones", "tanaka",
                  "silva", "larsen", "okafor", "patel", "nguyen", "murphy"])
_NOTES = np.array(["asked about pricing for more seats", "prefers contact by email", "call back next quarter",
                   "met at the spring webinar", "complained about onboarding", "wants an invoice in EUR",
                   "referred by a colleague", "evaluating a competitor"])


class SyntheticWorldError(CrmError, ValueError):
    """Invalid parameters for the synthetic CRM generator."""


@dataclass(frozen=True)
class World:
    """A synthetic CRM extract and its truth.

    tables : the CRM as seen at ``as_of`` (contract columns in canonical dtypes, plus PII/free-text columns on
        accounts and leads): nothing dated at or after ``as_of``.
    truth : one row per (task, entity_id) scorable at ``as_of``; columns task, entity_type, entity_id,
        true_value, realized.
    """

    tables: dict[str, pd.DataFrame]
    truth: pd.DataFrame


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _week_fraction(horizon_s: float, w: int) -> float:
    """Fraction of week ``w`` (w >= 0) inside ``[0, horizon_s)``."""
    return float(np.clip(horizon_s / WEEK_S - w, 0.0, 1.0))


class _Events:
    """Collects event chunks (entity index, time in seconds, type code) without per-event Python work."""

    def __init__(self) -> None:
        self.ent: list[np.ndarray] = []
        self.t: list[np.ndarray] = []
        self.kind: list[np.ndarray] = []

    def add(self, ent: np.ndarray, t: np.ndarray, kind: str) -> None:
        if ent.size:
            self.ent.append(ent.astype(np.int64, copy=False))
            self.t.append(t)
            self.kind.append(np.full(ent.size, _ACT[kind], dtype=np.int8))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if not self.ent:
            return np.empty(0, np.int64), np.empty(0), np.empty(0, np.int8)
        return np.concatenate(self.ent), np.concatenate(self.t), np.concatenate(self.kind)


def _poisson_times(rng: np.random.Generator, rate: np.ndarray, lo: np.ndarray, hi: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Poisson(rate per week) events per entity in ``[lo, hi)``: (row position into the inputs, time)."""
    span = hi - lo
    cnt = rng.poisson(np.maximum(rate, 0.0) * span / WEEK_S)
    pos = np.repeat(np.arange(rate.size), cnt)
    return pos, lo[pos] + rng.random(pos.size) * span[pos]


def _draw_durations(rng: np.random.Generator, prio: np.ndarray) -> np.ndarray:
    """Seconds from opening to closing a ticket of these priorities (7 % get stuck: 8x longer)."""
    n = prio.size
    hours = np.exp(_PRIO_LOGH[prio] + rng.normal(0.0, 0.9, n)) * np.where(rng.random(n) < 0.07, 8.0, 1.0)
    return np.clip(hours * 3600.0, 600.0, _MAX_TICKET_S)


def _ticket_outcomes(rng: np.random.Generator, t_open: np.ndarray, prio: np.ndarray, dur: np.ndarray,
                     effects_from: float = -np.inf):
    """CSAT (nan = not answered) and the frustration effects (ticket position, time, value) at or after
    ``effects_from``: the close (by CSAT) and, for a ticket open longer than 10 days, the overdue mark."""
    n = t_open.size
    raw = 4.5 - 0.5 * np.log1p(dur / DAY_S) - 0.2 * (prio == 3) + rng.normal(0.0, 0.8, n)
    answered = rng.random(n) < 0.6
    csat = np.where(answered, np.clip(np.rint(raw), 1, 5), np.nan)
    close_eff = np.where(answered, _CSAT_EFFECT[np.nan_to_num(csat).astype(np.int64)], _CSAT_MISSING_EFFECT)
    overdue = np.flatnonzero((dur > _OVERDUE_S) & (t_open + _OVERDUE_S >= effects_from))
    eff_t = np.concatenate([t_open + dur, t_open[overdue] + _OVERDUE_S])
    eff_v = np.concatenate([close_eff, np.full(overdue.size, _OVERDUE_EFFECT)])
    eff_pos = np.concatenate([np.arange(n), overdue])
    keep = eff_t >= effects_from
    return csat, eff_pos[keep], eff_t[keep], eff_v[keep]


def _draw_tickets(rng: np.random.Generator, t_open: np.ndarray):
    """Priority, time to close (s), CSAT, and the frustration effects of tickets opened at ``t_open``."""
    prio = rng.choice(4, t_open.size, p=_PRIO_P)
    dur = _draw_durations(rng, prio)
    csat, eff_pos, eff_t, eff_v = _ticket_outcomes(rng, t_open, prio, dur)
    return prio, dur, csat, eff_pos, eff_t, eff_v


def _redraw_open_tickets(rng: np.random.Generator, t_open: np.ndarray, prio: np.ndarray):
    """For tickets still open at as_of (t_open < 0): a close time drawn given they lasted until as_of, and the
    effects that follow from it from as_of on. The truth must not know the close time and CSAT the main
    simulation drew for them, as no model can."""
    dur = np.full(t_open.size, _MAX_TICKET_S)
    todo = np.arange(t_open.size)
    for _ in range(60):  # rejection sampling from the duration law truncated at the ticket's age
        if not todo.size:
            break
        d = _draw_durations(rng, prio[todo])
        ok = t_open[todo] + d >= 0.0
        dur[todo[ok]] = d[ok]
        todo = todo[~ok]
    _, eff_pos, eff_t, eff_v = _ticket_outcomes(rng, t_open, prio, dur, effects_from=0.0)
    return eff_pos, eff_t, eff_v


def _add_effects(buf: np.ndarray, owner: np.ndarray, eff_t: np.ndarray, eff_v: np.ndarray) -> None:
    """An effect at time t enters frustration at the start of the week after t."""
    slot = (np.floor(eff_t / WEEK_S).astype(np.int64) + 1) % buf.shape[0]
    np.add.at(buf, (slot, owner), eff_v)


# ----------------------------------------------------------------------------------------------------------------
# accounts
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class _AcctParams:
    created: np.ndarray
    seg: np.ndarray
    a: np.ndarray
    b: np.ndarray
    r0: np.ndarray
    g: np.ndarray
    amount_mu: np.ndarray
    margin_rate: np.ndarray
    p_refund: np.ndarray

    def take(self, idx: np.ndarray) -> "_AcctParams":
        return _AcctParams(**{k: v[idx] for k, v in self.__dict__.items()})


def _engagement(p: _AcctParams, u: np.ndarray, week_start: float) -> np.ndarray:
    tenure_y = np.maximum(week_start - p.created, 0.0) / (365.25 * DAY_S)
    return np.clip(p.a + p.b * tenure_y, -3.0, 2.5) + u


def _churn_hazard(p: _AcctParams, z: np.ndarray, f: np.ndarray, week_start: float) -> np.ndarray:
    tenure_w = np.maximum(week_start - p.created, 0.0) / WEEK_S
    return _sigmoid(_CHURN_C0 + _SEG_CHURN[p.seg] - 1.25 * z + 0.8 * f + 1.0 * np.exp(-tenure_w / 26.0))


def _order_rate(p: _AcctParams, z: np.ndarray, week_start: float) -> np.ndarray:
    tenure_y = np.maximum(week_start - p.created, 0.0) / (365.25 * DAY_S)
    return _SEG_ORDER[p.seg] * p.r0 * np.exp(np.clip(0.5 * z + p.g * tenure_y, -4.0, 2.0))


def _expected_completed_margin(p: _AcctParams) -> np.ndarray:
    return np.exp(p.amount_mu + _AMOUNT_SD ** 2 / 2) * p.margin_rate * (1.0 - p.p_refund - _P_CANCEL)


def _account_truth(rng: np.random.Generator, p: _AcctParams, u: np.ndarray, f: np.ndarray,
                   open_tickets: tuple[np.ndarray, np.ndarray, np.ndarray], churn_s: float, clv_s: float
                   ) -> tuple[np.ndarray, np.ndarray]:
    """P(churn within churn_s) and E[completed margin within clv_s] for accounts alive at as_of.

    Averages ``_MC_PATHS`` futures of (u, tickets, frustration); on each path survival and expected orders are
    integrated exactly over weeks.
    """
    n = u.size
    k = _MC_PATHS
    rep = np.tile(np.arange(n), k)
    pp = p.take(rep)
    u = u[rep].copy()
    f = f[rep].copy()
    # pending frustration comes only from tickets open at as_of, re-drawn on every path given what is known
    buf = np.zeros((_TICKET_BUFFER_WEEKS, n * k))
    t_owner, t_open, t_prio = open_tickets
    if t_owner.size:
        reps = np.repeat(np.arange(k), t_owner.size)
        eff_pos, eff_t, eff_v = _redraw_open_tickets(rng, np.tile(t_open, k), np.tile(t_prio, k))
        _add_effects(buf, (np.tile(t_owner, k) + reps * n)[eff_pos], eff_t, eff_v)
    surv = np.ones(n * k)
    p_churn = np.zeros(n * k)
    e_margin = np.zeros(n * k)
    unit_margin = _expected_completed_margin(pp)
    weeks = int(np.ceil(max(churn_s, clv_s) / WEEK_S))
    for w in range(weeks):
        ws = w * WEEK_S
        z = _engagement(pp, u, ws)
        h = _churn_hazard(pp, z, f, ws)
        fc, fv = _week_fraction(churn_s, w), _week_fraction(clv_s, w)
        p_churn += surv * h * fc
        # orders stop at churn, which is uniform within its week: expected exposure in [0, fv) is fv - h fv^2/2
        e_margin += surv * (fv - h * fv * fv / 2.0) * _order_rate(pp, z, ws) * unit_margin
        surv *= 1.0 - h
        # covariate path as if alive (survival is integrated above)
        rate_t = _SEG_TICKET[pp.seg] * np.exp(0.2 * z)
        pos, t_open = _poisson_times(rng, rate_t, np.full(n * k, ws), np.full(n * k, ws + WEEK_S))
        if pos.size:
            _, _, _, eff_pos, eff_t, eff_v = _draw_tickets(rng, t_open)
            _add_effects(buf, pos[eff_pos], eff_t, eff_v)
        u = _Z_RHO * u + _Z_SIGMA * rng.standard_normal(n * k)
        slot = (w + 1) % buf.shape[0]
        f = _F_DECAY * f + buf[slot]
        buf[slot] = 0.0
    return p_churn.reshape(k, n).mean(axis=0), e_margin.reshape(k, n).mean(axis=0)


def _simulate_accounts(rng: np.random.Generator, mc_rng: np.random.Generator, p: _AcctParams, w_min: int,
                       w_end: int, churn_s: float, clv_s: float) -> dict:
    n = p.created.size
    u = rng.normal(0.0, _Z_SIGMA / np.sqrt(1 - _Z_RHO ** 2), n)
    f = np.zeros(n)
    buf = np.zeros((_TICKET_BUFFER_WEEKS, n))
    churn_t = np.full(n, np.nan)
    unsub = np.zeros(n, dtype=bool)
    plan = (np.argmax(rng.random((n, 1)) < np.cumsum(_SEG_PLAN_P[p.seg], axis=1), axis=1)).astype(np.int64)
    seats = np.exp(_SEG_SEATS[p.seg] + np.where(p.seg > 0, rng.normal(0.0, 0.5, n), 0.0))
    acts = _Events()
    sub_acc, sub_t, sub_plan = [np.arange(n)], [p.created.copy()], [plan.copy()]
    tk_acc, tk_t, tk_prio, tk_dur, tk_csat = [], [], [], [], []
    od_acc, od_t = [], []
    truth = None
    for w in range(w_min, w_end):
        ws, we = w * WEEK_S, (w + 1) * WEEK_S
        if w == 0:
            elig = np.flatnonzero((p.created < 0) & np.isnan(churn_t))
            pos_in_elig = np.full(n, -1)
            pos_in_elig[elig] = np.arange(elig.size)
            t_acc, t_open, t_prio = (np.concatenate(x) if x else np.empty(0) for x in (tk_acc, tk_t, tk_prio))
            still_open = (t_open + (np.concatenate(tk_dur) if tk_dur else np.empty(0)) >= 0)
            still_open &= pos_in_elig[t_acc.astype(np.int64)] >= 0
            open_tk = (pos_in_elig[t_acc[still_open].astype(np.int64)], t_open[still_open],
                       t_prio[still_open].astype(np.int64))
            pc, em = _account_truth(mc_rng, p.take(elig), u[elig], f[elig], open_tk, churn_s, clv_s)
            truth = (elig, pc, em)
        idx = np.flatnonzero((p.created < we) & np.isnan(churn_t))
        if idx.size:
            pi = p.take(idx)
            lo = np.maximum(pi.created, ws)
            hi = np.full(idx.size, we)
            z = _engagement(pi, u[idx], ws)
            h = _churn_hazard(pi, z, f[idx], ws) * (hi - lo) / WEEK_S
            churns = rng.random(idx.size) < h
            ct = lo + rng.random(idx.size) * (hi - lo)
            churn_t[idx[churns]] = ct[churns]
            hi = np.where(churns, ct, hi)
            # tickets (needed before and after as_of: they drive frustration)
            pos, t_open = _poisson_times(rng, _SEG_TICKET[pi.seg] * np.exp(0.2 * z), lo, hi)
            if pos.size:
                prio, dur, csat, eff_pos, eff_t, eff_v = _draw_tickets(rng, t_open)
                _add_effects(buf, idx[pos[eff_pos]], eff_t, eff_v)
                if w < 0:
                    tk_acc.append(idx[pos]); tk_t.append(t_open); tk_prio.append(prio)
                    tk_dur.append(dur); tk_csat.append(csat)
            # orders (after as_of too: realized CLV)
            pos, t_ord = _poisson_times(rng, _order_rate(pi, z, ws), lo, hi)
            od_acc.append(idx[pos]); od_t.append(t_ord)
            if w < 0:
                # engagement
                pos, t = _poisson_times(rng, _SEG_LOGIN[pi.seg] * np.exp(z), lo, hi)
                acts.add(idx[pos], t, "login")
                pos, t = _poisson_times(rng, 0.4 * _SEG_LOGIN[pi.seg] * np.exp(1.2 * z - 0.3), lo, hi)
                acts.add(idx[pos], t, "feature_use")
                mail = ~unsub[idx]
                pos, t = _poisson_times(rng, np.where(mail, 0.2, 0.0), lo, hi)
                acts.add(idx[pos], t, "email_sent")
                opened = rng.random(pos.size) < _sigmoid(-0.8 + 0.8 * z[pos])
                t_o = t[opened] + rng.exponential(6 * 3600.0, int(opened.sum()))
                acts.add(idx[pos[opened]], t_o, "email_open")
                clicked = rng.random(t_o.size) < 0.25
                acts.add(idx[pos[opened][clicked]], t_o[clicked] + rng.exponential(600.0, int(clicked.sum())),
                         "email_click")
                un = mail & (rng.random(idx.size) < _sigmoid(-6.5 - 1.0 * z) * (hi - lo) / WEEK_S)
                acts.add(idx[un], lo[un] + rng.random(int(un.sum())) * (hi - lo)[un], "unsubscribe")
                unsub[idx[un]] = True
                # plan changes: end + start at the same instant
                cur = plan[idx]
                expo = (hi - lo) / WEEK_S
                up = (cur < 4) & (rng.random(idx.size) < _sigmoid(-6.0 + 0.9 * z) * expo)
                down = ~up & (cur > 0) & (rng.random(idx.size) < _sigmoid(-6.0 - 0.9 * z) * expo)
                chg = up | down
                if chg.any():
                    new = cur + up.astype(np.int64) - down.astype(np.int64)
                    plan[idx[chg]] = new[chg]
                    sub_acc.append(idx[chg]); sub_plan.append(new[chg])
                    sub_t.append(lo[chg] + rng.random(int(chg.sum())) * (hi - lo)[chg])
        u = _Z_RHO * u + _Z_SIGMA * rng.standard_normal(n)
        slot = (w + 1) % buf.shape[0]
        f = _F_DECAY * f + buf[slot]
        buf[slot] = 0.0
    cat = lambda xs, dt=np.float64: np.concatenate(xs) if xs else np.empty(0, dt)  # noqa: E731
    return dict(churn_t=churn_t, seats=seats, acts=acts, truth=truth,
                subs=(cat(sub_acc, np.int64), cat(sub_t), cat(sub_plan, np.int64)),
                tickets=(cat(tk_acc, np.int64), cat(tk_t), cat(tk_prio, np.int64), cat(tk_dur), cat(tk_csat)),
                orders=(cat(od_acc, np.int64), cat(od_t)))


# ----------------------------------------------------------------------------------------------------------------
# leads
# ----------------------------------------------------------------------------------------------------------------

@dataclass
class _LeadParams:
    created: np.ndarray
    q0: np.ndarray
    cool: np.ndarray
    lvl: np.ndarray
    size_eff: np.ndarray
    source: np.ndarray

    def take(self, idx: np.ndarray) -> "_LeadParams":
        return _LeadParams(**{k: v[idx] for k, v in self.__dict__.items()})


def _interest(p: _LeadParams, u: np.ndarray, week_start: float) -> np.ndarray:
    age_w = np.maximum(week_start - p.created, 0.0) / WEEK_S
    return p.q0 - p.cool * age_w + u


def _lead_hazards(p: _LeadParams, q: np.ndarray, is_sql: np.ndarray, sql_t: np.ndarray, week_start: float
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Weekly (advance, lost) hazards: advance = becomes SQL for open leads, won for SQL leads."""
    age_w = np.maximum(week_start - p.created, 0.0) / WEEK_S
    in_sql_w = np.where(is_sql, np.maximum(week_start - np.nan_to_num(sql_t), 0.0) / WEEK_S, 0.0)
    lvl = _LEVEL_EFF[p.lvl]
    adv = np.where(is_sql,
                   _sigmoid(-2.9 + 0.6 * q + 1.6 * lvl + 2.0 * p.size_eff + 1.2 * _SOURCE_SQL[p.source]
                            - 0.04 * in_sql_w),
                   _sigmoid(-4.0 + 1.0 * q + 1.7 * lvl + 1.8 * p.size_eff + 1.2 * _SOURCE_SQL[p.source]))
    lost = np.where(is_sql,
                    _sigmoid(-3.6 - 0.5 * q + 0.06 * in_sql_w),
                    _sigmoid(-6.0 - 0.4 * q + 0.15 * age_w))
    return adv, lost


def _lead_truth(rng: np.random.Generator, p: _LeadParams, u: np.ndarray, is_sql: np.ndarray, sql_t: np.ndarray,
                mql_s: float, sql_s: float) -> np.ndarray:
    """P(advance within the horizon): reach SQL (open leads, mql_s) or be won (SQL leads, sql_s)."""
    n, k = u.size, _MC_PATHS
    rep = np.tile(np.arange(n), k)
    pp, u, is_sql_r, sql_t_r = p.take(rep), u[rep].copy(), is_sql[rep], sql_t[rep]
    horizon = np.where(is_sql_r, sql_s, mql_s)
    surv, prob = np.ones(n * k), np.zeros(n * k)
    for w in range(int(np.ceil(max(mql_s, sql_s) / WEEK_S))):
        ws = w * WEEK_S
        adv, lost = _lead_hazards(pp, _interest(pp, u, ws), is_sql_r, sql_t_r, ws)
        prob += surv * adv * np.clip(horizon / WEEK_S - w, 0.0, 1.0)
        surv *= 1.0 - adv - lost
        u = _Q_RHO * u + _Q_SIGMA * rng.standard_normal(n * k)
    return prob.reshape(k, n).mean(axis=0)


def _simulate_leads(rng: np.random.Generator, mc_rng: np.random.Generator, p: _LeadParams, w_min: int, w_end: int,
                    mql_s: float, sql_s: float) -> dict:
    n = p.created.size
    u = rng.normal(0.0, _Q_SIGMA / np.sqrt(1 - _Q_RHO ** 2), n)
    status = np.zeros(n, dtype=np.int8)  # 0 open, 1 sql, 2 won, 3 lost
    sql_t, won_t, lost_t, mql_t = (np.full(n, np.nan) for _ in range(4))
    score = np.zeros(n)
    unsub = np.zeros(n, dtype=bool)
    acts = _Events()
    truth = None
    for w in range(w_min, w_end):
        ws, we = w * WEEK_S, (w + 1) * WEEK_S
        if w == 0:
            elig = np.flatnonzero((p.created < 0) & (status <= 1))
            pr = _lead_truth(mc_rng, p.take(elig), u[elig], status[elig] == 1, sql_t[elig], mql_s, sql_s)
            truth = (elig, status[elig] == 1, pr)
        idx = np.flatnonzero((p.created < we) & (status <= 1))
        if idx.size:
            pi = p.take(idx)
            lo = np.maximum(pi.created, ws)
            hi = np.full(idx.size, we)
            is_sql = status[idx] == 1
            q = _interest(pi, u[idx], ws)
            adv, lost = _lead_hazards(pi, q, is_sql, sql_t[idx], ws)
            expo = (hi - lo) / WEEK_S
            r = rng.random(idx.size)
            t_ev = lo + rng.random(idx.size) * (hi - lo)
            do_adv = r < adv * expo
            do_lost = ~do_adv & (r < (adv + lost) * expo)
            new_sql = do_adv & ~is_sql
            won = do_adv & is_sql
            sql_t[idx[new_sql]] = t_ev[new_sql]
            won_t[idx[won]] = t_ev[won]
            lost_t[idx[do_lost]] = t_ev[do_lost]
            st = status[idx]
            st[new_sql], st[won], st[do_lost] = 1, 2, 3
            status[idx] = st
            if w < 0:
                hi = np.where(won | do_lost, t_ev, hi)
                # a new lead's first weeks are busy (it just filled a form, is comparing offers): the burst makes
                # its interest visible early
                age_w = np.maximum(ws - pi.created, 0.0) / WEEK_S
                eq = np.exp(q) * (1.0 + 2.0 * np.exp(-age_w / 1.5))
                pts = np.zeros(idx.size)
                last = np.full(idx.size, -np.inf)
                for kind, rate in (("web_visit", 1.6 * eq), ("pricing_page_visit", 0.4 * np.exp(0.3 * q) * eq),
                                   ("webinar", 0.04 * eq), ("content_download", 0.12 * eq),
                                   ("form_submit", 0.06 * eq)):
                    pos, t = _poisson_times(rng, rate, lo, hi)
                    acts.add(idx[pos], t, kind)
                    np.add.at(pts, pos, _MQL_POINTS[kind])
                    np.maximum.at(last, pos, t)
                mail = ~unsub[idx]
                pos, t = _poisson_times(rng, np.where(mail, 0.4, 0.0), lo, hi)
                acts.add(idx[pos], t, "email_sent")
                opened = rng.random(pos.size) < _sigmoid(-1.0 + 0.8 * q[pos])
                t_o = t[opened] + rng.exponential(6 * 3600.0, int(opened.sum()))
                acts.add(idx[pos[opened]], t_o, "email_open")
                clicked = rng.random(t_o.size) < 0.3
                t_c = t_o[clicked] + rng.exponential(600.0, int(clicked.sum()))
                acts.add(idx[pos[opened][clicked]], t_c, "email_click")
                np.add.at(pts, pos[opened][clicked], _MQL_POINTS["email_click"])
                np.maximum.at(last, pos[opened][clicked], t_c)
                un = mail & (rng.random(idx.size) < _sigmoid(-6.0 - q) * expo)
                acts.add(idx[un], lo[un] + rng.random(int(un.sum())) * (hi - lo)[un], "unsubscribe")
                unsub[idx[un]] = True
                for kind, rate in (("meeting", 1.0 * np.exp(q)), ("call", 1.0 * np.exp(q))):
                    pos, t = _poisson_times(rng, np.where(is_sql, rate, 0.0), lo, hi)
                    acts.add(idx[pos], t, kind)
                # MQL rule: points of engagement while open; marked at the last scoring event of the crossing week
                was_open = ~is_sql
                before = score[idx]
                score[idx] = before + np.where(was_open, pts, 0.0)
                cross = was_open & (before < _MQL_THRESHOLD) & (score[idx] >= _MQL_THRESHOLD) & np.isfinite(last)
                mql_t[idx[cross]] = last[cross]
        u = _Q_RHO * u + _Q_SIGMA * rng.standard_normal(n)
    return dict(status=status, sql_t=sql_t, won_t=won_t, lost_t=lost_t, mql_t=mql_t, acts=acts, truth=truth)


# ----------------------------------------------------------------------------------------------------------------
# frames
# ----------------------------------------------------------------------------------------------------------------

class _Clock:
    def __init__(self, as_of: pd.Timestamp) -> None:
        self.as_of_us = int(as_of.value) // 1000  # .value is always nanoseconds

    def ts(self, sec: np.ndarray) -> pd.Series:
        """Seconds relative to as_of (nan = missing) -> datetime64[us, UTC], floored to whole seconds."""
        sec = np.asarray(sec, dtype=np.float64)
        ok = np.isfinite(sec)
        us = np.zeros(sec.size, dtype=np.int64)
        us[ok] = self.as_of_us + np.floor(sec[ok]).astype(np.int64) * 1_000_000
        arr = us.view("datetime64[us]").copy()
        arr[~ok] = np.datetime64("NaT")
        return pd.Series(pd.DatetimeIndex(arr).tz_localize("UTC"))


_STR_DTYPE = pd.StringDtype("pyarrow", na_value=np.nan)  # what dtype "str" is in pandas 3


def _arrow_str(arr: pa.Array | pa.ChunkedArray) -> pd.Series:
    return pd.Series(arr.to_pandas(types_mapper={pa.string(): _STR_DTYPE, pa.large_string(): _STR_DTYPE}.get))


def _ids(prefix: str, num: np.ndarray) -> pd.Series:
    """prefix + number, as `str` (via Arrow: millions of ids in well under a second)."""
    digits = pc.cast(pa.array(np.asarray(num, dtype=np.int64)), pa.string())
    return _arrow_str(pc.binary_join_element_wise(prefix, digits, ""))


def _take_str(values: np.ndarray | pd.Series, codes: np.ndarray) -> pd.Series:
    """values[codes] as `str`; code < 0 = missing."""
    codes = np.asarray(codes, dtype=np.int64)
    vals = pa.array(values) if isinstance(values, pd.Series) else pa.array(np.asarray(values), type=pa.string())
    vals = vals.cast(pa.string()) if vals.type != pa.string() else vals
    return _arrow_str(pc.take(vals, pa.array(np.maximum(codes, 0), mask=codes < 0)))


def _pii(rng: np.random.Generator, n: int, number: np.ndarray) -> dict[str, pd.Series]:
    first = pd.Series(_FIRST[rng.integers(0, _FIRST.size, n)], dtype="str")
    last = pd.Series(_LAST[rng.integers(0, _LAST.size, n)], dtype="str")
    num = pd.Series(np.asarray(number, dtype=np.int64)).astype("str")
    email = first + "." + last.str.slice(0, 1) + num + "@example.com"
    full_name = first.str.capitalize() + " " + last.str.capitalize()
    phone = "+44 7700 9" + pd.Series(rng.integers(0, 100000, n)).astype("str").str.zfill(5)
    notes = full_name + " " + pd.Series(_NOTES[rng.integers(0, _NOTES.size, n)], dtype="str")
    return {"email": email, "full_name": full_name, "phone": phone, "notes": notes}


def _frame(table: str, cols: dict[str, object]) -> pd.DataFrame:
    """Contract columns in contract order, canonical dtypes; extra (PII) columns after them."""
    schema = table_schema(table)
    out = {}
    for c in schema.columns:
        v = cols[c.name]
        v = v.reset_index(drop=True) if isinstance(v, pd.Series) else pd.Series(v)
        if c.logical_type == "string":
            v = v.astype("str")
        elif c.logical_type == "number":
            v = v.astype("float64")
        elif c.logical_type == "integer":
            v = v.astype("Int64")
        elif c.logical_type == "boolean":
            v = v.astype("bool")
        elif c.logical_type == "timestamp" and v.dtype != "datetime64[us, UTC]":
            raise SyntheticWorldError(f"internal: {table}.{c.name} has dtype {v.dtype}")
        out[c.name] = v
    for k, v in cols.items():
        if k not in out:
            out[k] = v.reset_index(drop=True) if isinstance(v, pd.Series) else pd.Series(v)
    return pd.DataFrame(out)


def _activity_frame(clock: _Clock, acc: tuple, lead: tuple, acc_ids: pd.Series, lead_ids: pd.Series
                    ) -> pd.DataFrame:
    a_ent, a_t, a_k = acc
    l_ent, l_t, l_k = lead
    ka, kl = a_t < 0, l_t < 0
    a_ent, a_t, a_k, l_ent, l_t, l_k = a_ent[ka], a_t[ka], a_k[ka], l_ent[kl], l_t[kl], l_k[kl]
    t = np.concatenate([a_t, l_t])
    kind = np.concatenate([a_k, l_k])
    order = np.argsort(t, kind="stable")  # ids in time order, as a CRM would number them
    na, nl = a_t.size, l_t.size
    acc_pos = np.concatenate([a_ent, np.full(nl, -1)])[order]
    lead_pos = np.concatenate([np.full(na, -1), l_ent])[order]
    kind = kind[order]
    return _frame("activities", {
        "activity_id": _ids("act_", np.arange(1, order.size + 1)),
        "account_id": _take_str(acc_ids, acc_pos), "lead_id": _take_str(lead_ids, lead_pos),
        "occurred_at": clock.ts(t[order]),
        "type": _take_str(ACTIVITY_TYPES, kind), "channel": _take_str(_ACT_CHANNEL, kind),
    })


def _validate(n_accounts: int, n_leads: int, as_of: object, history_days: int, horizons: Mapping[str, int]
              ) -> tuple[pd.Timestamp, dict[str, int]]:
    if int(n_accounts) < 1 or int(n_leads) < 0:
        raise SyntheticWorldError(f"n_accounts={n_accounts}, n_leads={n_leads}: need n_accounts >= 1, n_leads >= 0")
    missing = set(DEFAULT_HORIZONS) - set(horizons)
    if missing:
        raise SyntheticWorldError(f"horizons lacks {sorted(missing)}; expected keys {sorted(DEFAULT_HORIZONS)}")
    hz = {k: int(horizons[k]) for k in DEFAULT_HORIZONS}
    if min(hz.values()) < 1:
        raise SyntheticWorldError(f"horizons must be >= 1 day, got {hz}")
    if int(history_days) < 28:
        raise SyntheticWorldError(f"history_days={history_days}: need at least 28 days of history")
    ts = pd.Timestamp(as_of)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.floor("s"), hz


def generate_world(n_accounts: int, n_leads: int, seed: int, as_of: pd.Timestamp, *, history_days: int = 900,
                   horizons: Mapping[str, int] = DEFAULT_HORIZONS) -> World:
    """Simulate a CRM up to ``as_of`` and its future up to the longest horizon, with the exact truth.

    Parameters
    ----------
    n_accounts : accounts created in ``[as_of - history_days, as_of)`` (including those that came from won leads).
    n_leads : leads created in ``[as_of - history_days, as_of)``.
    seed : everything is a function of (arguments, seed).
    as_of : the extract's "as of" (UTC; a naive timestamp is read as UTC; floored to whole seconds).
    history_days : length of the simulated past.
    horizons : churn_days, clv_days, lead_mql_days, lead_sql_days (the contract's defaults).

    Returns
    -------
    World with ``tables`` (accounts, leads, subscriptions, orders, activities, tickets; only rows dated before
    ``as_of``; transitions at or after it are NULL) and ``truth`` (one row per eligible (task, entity)).
    """
    as_of, hz = _validate(n_accounts, n_leads, as_of, history_days, horizons)
    clock = _Clock(as_of)
    ss = np.random.SeedSequence(int(seed))
    r_static, r_lead, r_lead_mc, r_acc, r_acc_mc, r_pii = (np.random.default_rng(s) for s in ss.spawn(6))
    history_s = history_days * DAY_S
    w_min = -int(np.ceil(history_s / WEEK_S))
    w_end = int(np.ceil(max(hz.values()) * DAY_S / WEEK_S)) + 1

    # ---- leads ---------------------------------------------------------------------------------------------------
    nl = int(n_leads)
    l_created = -history_s * r_static.random(nl)
    l_source = r_static.choice(7, nl, p=_SOURCE_P)
    l_level = r_static.choice(5, nl, p=_LEVEL_P)
    l_size = np.maximum(np.rint(np.exp(r_static.normal(3.5, 1.5, nl))), 1).astype(np.int64)
    l_size_eff = np.clip(0.15 * (np.log(l_size) - 3.5), -0.4, 0.4)
    lp = _LeadParams(created=l_created, q0=r_static.normal(-0.3, 0.5, nl) + _SOURCE_Q[l_source],
                     cool=0.04 * np.exp(r_static.normal(0.0, 0.3, nl)), lvl=l_level, size_eff=l_size_eff,
                     source=l_source)
    leads_sim = _simulate_leads(r_lead, r_lead_mc, lp, w_min, w_end, hz["lead_mql_days"] * DAY_S,
                                hz["lead_sql_days"] * DAY_S)
    l_industry = r_static.choice(INDUSTRIES.size, nl)
    l_country = r_static.choice(COUNTRIES.size, nl, p=COUNTRY_P)

    # ---- accounts: won leads become accounts at won_at; the rest arrive uniformly -----------------------------
    won_before = np.flatnonzero(leads_sim["won_t"] < 0)
    won_before = won_before[np.argsort(leads_sim["won_t"][won_before], kind="stable")][:int(n_accounts)]
    nw = won_before.size
    na = int(n_accounts)
    created = np.concatenate([leads_sim["won_t"][won_before], -history_s * r_static.random(na - nw)])
    size_w = l_size[won_before]
    seg = np.concatenate([np.select([size_w < 50, size_w < 1000], [1, 2], 3), r_static.choice(4, na - nw, p=_SEG_P)])
    channel = np.concatenate([
        _SOURCE_TO_CHANNEL[l_source[won_before]],
        (r_static.random((na - nw, 1)) < np.cumsum(_SEG_CHANNEL_P[seg[nw:]], axis=1)).argmax(axis=1)])
    industry = np.concatenate([l_industry[won_before], r_static.choice(INDUSTRIES.size, na - nw)])
    country = np.concatenate([l_country[won_before], r_static.choice(COUNTRIES.size, na - nw, p=COUNTRY_P)])
    # number accounts in creation order, as a CRM would
    order = np.argsort(created, kind="stable")
    created, seg, channel = created[order], seg[order], channel[order]
    industry, country = industry[order], country[order]
    from_lead = np.concatenate([won_before, np.full(na - nw, -1)])[order]
    ap = _AcctParams(
        created=created, seg=seg,
        a=r_static.normal(0.0, 0.65, na) + _SEG_ENG[seg] + _CHANNEL_ENG[channel],
        b=r_static.normal(-0.15, 0.55, na),
        r0=np.exp(r_static.normal(-0.1, 0.45, na)), g=r_static.normal(0.0, 0.2, na),
        amount_mu=_SEG_AMOUNT[seg] + r_static.normal(0.0, 0.3, na),
        margin_rate=r_static.beta(6.0, 8.0, na), p_refund=r_static.beta(1.0, 25.0, na))
    acc_sim = _simulate_accounts(r_acc, r_acc_mc, ap, w_min, w_end, hz["churn_days"] * DAY_S, hz["clv_days"] * DAY_S)

    acc_ids = _ids("acc_", np.arange(1, na + 1))
    lead_ids = _ids("lead_", np.arange(1, nl + 1))
    acc_consent = r_static.random(na) >= 0.04
    acc_deleted = r_static.random(na) < 0.015
    acc_deleted_t = np.where(acc_deleted, created * (1 - r_static.random(na)), np.nan)  # in (created, 0)
    lead_consent = r_static.random(nl) >= 0.04
    lead_deleted = r_static.random(nl) < 0.015
    lead_deleted_t = np.where(lead_deleted, l_created * (1 - r_static.random(nl)), np.nan)
    cac = _SEG_CAC[seg] * _CHANNEL_CAC[channel] * np.exp(r_static.normal(0.0, 0.4, na))
    cac = np.where(r_static.random(na) < 0.05, np.nan, np.round(cac, 2))
    ind_missing = r_static.random(na) < 0.05

    accounts = _frame("accounts", {
        "account_id": acc_ids, "created_at": clock.ts(created), "segment": pd.Series(SEGMENTS[seg], dtype="str"),
        "industry": _take_str(INDUSTRIES, np.where(ind_missing, -1, industry)),
        "country": pd.Series(COUNTRIES[country], dtype="str"),
        "acquisition_channel": pd.Series(CHANNELS[channel], dtype="str"), "acquisition_cost": cac,
        "consent_profiling": acc_consent, "deleted_at": clock.ts(acc_deleted_t),
        **_pii(r_pii, na, np.arange(1, na + 1))})

    # leads as seen at as_of
    ls = leads_sim
    lead_acc = np.full(nl, -1)
    lead_acc[from_lead[from_lead >= 0]] = np.flatnonzero(from_lead >= 0)
    past = lambda x: np.where(x < 0, x, np.nan)  # noqa: E731
    size_missing = r_static.random(nl) < 0.08
    leads = _frame("leads", {
        "lead_id": lead_ids, "created_at": clock.ts(l_created), "source": _take_str(LEAD_SOURCES, l_source),
        "industry": _take_str(INDUSTRIES, np.where(r_static.random(nl) < 0.1, -1, l_industry)),
        "company_size": pd.array(np.where(size_missing, 0, l_size), dtype="Int64").copy(),
        "job_level": _take_str(JOB_LEVELS, np.where(r_static.random(nl) < 0.05, -1, l_level)),
        "country": pd.Series(COUNTRIES[l_country], dtype="str"),
        "mql_at": clock.ts(past(ls["mql_t"])), "sql_at": clock.ts(past(ls["sql_t"])),
        "won_at": clock.ts(past(ls["won_t"])), "lost_at": clock.ts(past(ls["lost_t"])),
        "account_id": _take_str(acc_ids, lead_acc),
        "consent_profiling": lead_consent, "deleted_at": clock.ts(lead_deleted_t),
        **_pii(r_pii, nl, 100_000_000 + np.arange(1, nl + 1))})
    leads.loc[size_missing, "company_size"] = pd.NA

    # subscriptions: one row per plan period; a change ends one and starts the next at the same instant
    s_acc, s_t, s_plan = acc_sim["subs"]
    o = np.lexsort((s_t, s_acc))
    s_acc, s_t, s_plan = s_acc[o], s_t[o], s_plan[o]
    same_next = np.r_[s_acc[1:] == s_acc[:-1], False]
    s_end = np.where(same_next, np.r_[s_t[1:], np.nan], acc_sim["churn_t"][s_acc])
    keep = s_t < 0
    s_acc, s_t, s_plan, s_end = s_acc[keep], s_t[keep], s_plan[keep], s_end[keep]
    mrr = np.round(_PLAN_MRR[s_plan] * acc_sim["seats"][s_acc], 2)
    subscriptions = _frame("subscriptions", {
        "subscription_id": _ids("sub_", np.arange(1, s_acc.size + 1)), "account_id": _take_str(acc_ids, s_acc),
        "plan": _take_str(PLANS, s_plan), "started_at": clock.ts(s_t), "ended_at": clock.ts(past(s_end)),
        "mrr": mrr})

    # orders: amounts, margins and statuses from the per-customer rates
    o_acc, o_t = acc_sim["orders"]
    o = np.lexsort((o_t, o_acc)) if o_t.size else np.empty(0, np.int64)
    o_acc, o_t = o_acc[o], o_t[o]
    r_ord = np.random.default_rng(ss.spawn(1)[0])
    amount = np.round(np.exp(ap.amount_mu[o_acc] + r_ord.normal(0.0, _AMOUNT_SD, o_acc.size)), 2)
    margin = np.round(amount * ap.margin_rate[o_acc], 2)
    u_st = r_ord.random(o_acc.size)
    status = np.where(u_st < ap.p_refund[o_acc], 1, np.where(u_st < ap.p_refund[o_acc] + _P_CANCEL, 2, 0))
    clv_s = hz["clv_days"] * DAY_S
    fut = (o_t >= 0) & (o_t < clv_s) & (status == 0)
    realized_margin = np.bincount(o_acc[fut], weights=margin[fut], minlength=na)
    pastm = o_t < 0
    t_order = np.argsort(o_t[pastm], kind="stable")
    orders = _frame("orders", {
        "order_id": _ids("ord_", np.arange(1, int(pastm.sum()) + 1)),
        "account_id": _take_str(acc_ids, o_acc[pastm][t_order]), "ordered_at": clock.ts(o_t[pastm][t_order]),
        "amount": amount[pastm][t_order], "gross_margin": margin[pastm][t_order],
        "status": _take_str(ORDER_STATUS, status[pastm][t_order])})

    # tickets (only those opened before as_of were kept); close/CSAT after as_of are not known yet
    k_acc, k_t, k_prio, k_dur, k_csat = acc_sim["tickets"]
    k_close = k_t + k_dur
    open_at_asof = k_close >= 0
    tickets = _frame("tickets", {
        "ticket_id": _ids("tkt_", np.arange(1, k_acc.size + 1)), "account_id": _take_str(acc_ids, k_acc),
        "opened_at": clock.ts(k_t), "closed_at": clock.ts(np.where(open_at_asof, np.nan, k_close)),
        "priority": _take_str(PRIORITIES, k_prio),
        "csat": pd.array(np.where(open_at_asof | np.isnan(k_csat), 0, np.nan_to_num(k_csat)).astype(np.int64),
                         dtype="Int64")})
    tickets.loc[open_at_asof | np.isnan(k_csat), "csat"] = pd.NA

    activities = _activity_frame(clock, acc_sim["acts"].arrays(), ls["acts"].arrays(), acc_ids, lead_ids)

    # ---- truth -----------------------------------------------------------------------------------------------------
    elig, p_churn, e_margin = acc_sim["truth"]
    ok = acc_consent[elig] & ~acc_deleted[elig]
    elig, p_churn, e_margin = elig[ok], p_churn[ok], e_margin[ok]
    ct = acc_sim["churn_t"][elig]
    churned = (ct >= 0) & (ct < hz["churn_days"] * DAY_S)
    l_elig, l_is_sql, l_prob = ls["truth"]
    ok = lead_consent[l_elig] & ~lead_deleted[l_elig]
    l_elig, l_is_sql, l_prob = l_elig[ok], l_is_sql[ok], l_prob[ok]
    reached_sql = (ls["sql_t"][l_elig] >= 0) & (ls["sql_t"][l_elig] < hz["lead_mql_days"] * DAY_S)
    won = (ls["won_t"][l_elig] >= 0) & (ls["won_t"][l_elig] < hz["lead_sql_days"] * DAY_S)
    a_id, l_id = acc_ids.to_numpy(), lead_ids.to_numpy()
    parts = [
        ("churn", "account", a_id[elig], p_churn, churned.astype(float)),
        ("clv", "account", a_id[elig], e_margin, realized_margin[elig]),
        ("lead_mql", "lead", l_id[l_elig[~l_is_sql]], l_prob[~l_is_sql], reached_sql[~l_is_sql].astype(float)),
        ("lead_sql", "lead", l_id[l_elig[l_is_sql]], l_prob[l_is_sql], won[l_is_sql].astype(float)),
    ]
    truth = pd.DataFrame({
        "task": pd.Series(np.concatenate([np.full(len(p[2]), p[0]) for p in parts]), dtype="str"),
        "entity_type": pd.Series(np.concatenate([np.full(len(p[2]), p[1]) for p in parts]), dtype="str"),
        "entity_id": pd.Series(np.concatenate([p[2] for p in parts]), dtype="str"),
        "true_value": np.concatenate([p[3] for p in parts]).astype("float64"),
        "realized": np.concatenate([p[4] for p in parts]).astype("float64"),
    })
    tables = {"accounts": accounts, "leads": leads, "subscriptions": subscriptions, "orders": orders,
              "activities": activities, "tickets": tickets}
    return World(tables=tables, truth=truth)


def write_world(world: World, crm_location: str, truth_path: str | Path) -> None:
    """Write the CRM tables as an extract (SQL URL or folder) and the truth as Parquet (or CSV by suffix)."""
    from crm.extract import write_extract

    write_extract(crm_location, world.tables)
    path = Path(truth_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffixes = "".join(path.suffixes).lower()
    if suffixes.endswith(".csv") or suffixes.endswith(".csv.gz"):
        world.truth.to_csv(path, index=False)
    elif suffixes.endswith(".parquet"):
        world.truth.to_parquet(path, index=False)
    else:
        raise SyntheticWorldError(f"truth_path {str(path)!r}: expected a .parquet, .csv or .csv.gz suffix")
