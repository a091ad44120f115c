"""Multi-period purchase plan as a lot-sizing MIP (Pyomo builder only: no solving, no I/O).

Time line. Periods t = 1..T. An order x[i,t] placed in period t arrives at the start of
period t + L_i (L_i = lead time in whole periods, L_i = 0 allowed) and serves that period's
demand. End-of-period stock follows

    s[i,t] - b[i,t] = s[i,t-1] - b[i,t-1] + a[i,t] + x[i,t-L_i] - d[i,t],   s[i,0] = on hand,

with a[i,t] the open orders arriving in t and b the backlog. Orders that could only arrive after
the horizon are not modelled (they cost money and serve nothing in the horizon).

Periods the plan cannot influence. For t <= L_i nothing ordered now can arrive, so the stock
is data: s and b are fixed to the positive / negative part of on hand + arrivals - demand and
no floor applies there. From period L_i + 1 on the floor applies, which is why the model is
feasible by design when no coupling limit binds: an order placed in period 1 can always clear
an early backlog and lift stock to the floor. Infeasibility can only come from the period
budget, the warehouse or MOQ/packs combined with them.

Floors and backlog. SKUs without a shortage cost keep stock >= floor[i] (hard) in every period
t > L_i. SKUs with a shortage cost p_i (NaN means none) may back-order: on hand s >= 0, backlog
b >= 0, and a shortfall e[i,t] >= floor[i] - (s - b) priced at p_i per unit and period, so a
unit below the floor costs p_i per period and a back-ordered unit does too (it is below the
floor by at least itself).

Coupling limits. Per-period purchase budget sum_i c_i x[i,t] <= B_t (spend in the order
period); warehouse sum_i vol_i s[i,t] <= W_t on end-of-period stock (one W or one per
period); trucks per supplier k and arrival period t:
sum_{i of k} load_i x[i,t-L_i] <= cap_k v[k,t], v integer, each truck costs its price (one
delivery). MOQ: x >= moq y; packs: x = m n with n integer.

Big-M. x[i,t] <= M[i,t] y[i,t] with M the net requirement still open from the arrival period
to the horizon (demand plus floor minus stock and open orders, via the running maximum of the
cumulative requirement), raised to the MOQ and rounded up to the pack, then capped by what the
period budget can pay. Ordering more than that never helps: the surplus only adds holding,
spend, space and trucks, so every optimal plan survives the cap. Periods whose cap is zero or
below the MOQ get no order variables at all.

Strong formulation (strong=True): the facility-location extended formulation of the
uncapacitated core, for every SKU with hard floors. With N(t) the cumulative net requirement
(running maximum, so it never decreases) and dn[i,tau] = N(tau) - N(tau-1) >= 0, variables
w[i,t,tau] >= 0 give the part of order t that covers the net requirement of period
tau >= t + L_i:

    sum_t w[i,t,tau] = dn[i,tau]            (`m.fl_cover`, every requirement is covered)
    w[i,t,tau] <= dn[i,tau] y[i,t]          (`m.fl_link`)
    x[i,t] >= sum_tau w[i,t,tau]            (`m.fl_amount`, >= leaves room for MOQ/pack surplus)

These are valid for every feasible plan (allocate arrivals first-in first-out to the
requirements) and, with the stock balance, make the LP relaxation of each SKU's uncapacitated
problem integral (Krarup-Bilde): the LP can no longer buy a period's demand with a tiny fraction
of y. We chose it over (l,S) inequalities because the family is polynomial and needs no
separation loop; its price is O(T^2) variables per SKU. (A window, linking an order only to
the requirements of the next W periods and leaving the rest unlinked, was measured and
dropped: with W = 8 the LP bound fell most of the way to the plain model's.) SKUs that may
back-order keep the plain big-M rows (their requirement need not be covered in time).

A cheap valid inequality is added in both variants: an order fills at least
max(1, ceil(moq load / cap)) trucks of its supplier in its arrival period (`m.truck_min`; an
open slot with nothing ordered never pays, so no optimal plan is cut off). For SKUs without
an MOQ it is v >= y: on the 500 x 26 benchmark it lifts the strong LP bound by about 700 of
1.93 million, a third of what HiGHS's root cuts add in minutes.

Objective (money divided by `money_scale`, thousands by default, for HiGHS's scaling):
ordering + holding + trucks + shortfall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr.numeric_expr import LinearExpression

_EPS = 1e-9


def _vec(v, n, name, dtype=float):
    a = np.array(np.broadcast_to(np.asarray(v, dtype=dtype), (n,)))
    if a.shape != (n,):
        raise ValueError(f"{name} must have one entry per SKU")
    return a


@dataclass(frozen=True, eq=False)
class LotSizingData:
    """Arrays of one lot-sizing instance. n SKUs, T periods; column j is period j + 1.

    Units: quantities in units, money in currency (not scaled), holding per unit and period,
    `load` per unit in the unit of the supplier's truck capacity (kg or m3; 0 = no truck).
    `shortage_cost` NaN means no backlog (hard floor). `budget` per order period (inf = none).
    """

    sku: np.ndarray
    supplier: np.ndarray
    demand: np.ndarray  # (n, T)
    lead: np.ndarray  # (n,) whole periods
    on_hand: np.ndarray
    floor: np.ndarray
    unit_cost: np.ndarray
    ordering_cost: np.ndarray
    holding_cost: np.ndarray  # per unit per period
    arrivals: np.ndarray | None = None  # (n, T) open orders by arrival period
    moq: np.ndarray | float = 0.0
    multiple: np.ndarray | float = 0.0  # 0 = any quantity
    shortage_cost: np.ndarray | float = np.nan
    unit_volume: np.ndarray | float = 0.0
    load: np.ndarray | float = 0.0
    budget: np.ndarray | float | None = None  # (T,) purchase spend limit per period
    warehouse: float | np.ndarray | None = None  # volume limit on end-of-period stock ((T,) ok)
    truck_capacity: dict = field(default_factory=dict)  # supplier -> capacity per truck
    truck_cost: dict = field(default_factory=dict)  # supplier -> cost per truck
    period_days: float = 7.0
    money_scale: float = 1000.0

    def __post_init__(self):
        d = np.atleast_2d(np.asarray(self.demand, dtype=float))
        n, T = d.shape
        put = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        put("demand", d)
        put("sku", _vec(self.sku, n, "sku", object))
        put("supplier", _vec(self.supplier, n, "supplier", object))
        put("lead", _vec(self.lead, n, "lead", float).round().astype(int))
        for name in ("on_hand", "floor", "unit_cost", "ordering_cost", "holding_cost", "moq",
                     "multiple", "shortage_cost", "unit_volume", "load"):
            put(name, _vec(getattr(self, name), n, name))
        put("floor", np.maximum(self.floor, 0.0))
        put("multiple", np.nan_to_num(self.multiple, nan=0.0))
        put("moq", np.nan_to_num(self.moq, nan=0.0))
        arr = np.zeros((n, T)) if self.arrivals is None else np.asarray(self.arrivals, float)
        if arr.shape != (n, T):
            raise ValueError("arrivals must be (n SKUs, T periods)")
        put("arrivals", arr)
        b = self.budget
        b = np.full(T, np.inf) if b is None else np.array(np.broadcast_to(
            np.asarray(b, dtype=float), (T,)))
        put("budget", np.where(np.isfinite(b), b, np.inf))
        if (self.lead < 0).any() or (d < 0).any():
            raise ValueError("lead times and demand must be >= 0")

    @property
    def n(self) -> int:
        return self.demand.shape[0]

    @property
    def T(self) -> int:
        return self.demand.shape[1]

    @property
    def space_limit(self) -> np.ndarray:
        """Warehouse volume limit per period, (T,) (inf = none)."""
        if self.warehouse is None:
            return np.full(self.T, np.inf)
        w = np.array(np.broadcast_to(np.asarray(self.warehouse, dtype=float), (self.T,)))
        return np.where(np.isnan(w), np.inf, w)

    @property
    def backlog(self) -> np.ndarray:
        """SKUs allowed to back-order (a shortage cost is given)."""
        return np.isfinite(self.shortage_cost)

    @property
    def moq_eff(self) -> np.ndarray:
        """Smallest order: the MOQ rounded up to the pack, at least one pack."""
        m = self.multiple
        q = np.where(m > 0, np.ceil(self.moq / np.where(m > 0, m, 1) - _EPS) * m, self.moq)
        return np.where(m > 0, np.maximum(q, m), q)

    def trucks(self) -> tuple[np.ndarray, np.ndarray, list]:
        """Per SKU: index of its truck group (-1 = no trucks), truck capacity, cost; groups."""
        groups = sorted(k for k in self.truck_capacity if self.truck_capacity[k] > 0)
        pos = {k: j for j, k in enumerate(groups)}
        idx = np.array([pos.get(s, -1) if l > 0 else -1 for s, l in zip(self.supplier, self.load)],
                       dtype=int)
        cap = np.array([self.truck_capacity[k] for k in groups], dtype=float)
        cost = np.array([self.truck_cost.get(k, 0.0) for k in groups], dtype=float)
        return idx, cap, cost, groups


def round_up(q, multiple):
    """Round quantities up to whole packs (multiple 0 = unchanged)."""
    m = np.asarray(multiple, dtype=float)
    safe = np.where(m > 0, m, 1.0)
    return np.where(m > 0, np.ceil(np.asarray(q) / safe - 1e-9) * safe, q)


def round_down(q, multiple):
    m = np.asarray(multiple, dtype=float)
    safe = np.where(m > 0, m, 1.0)
    return np.where(m > 0, np.floor(np.asarray(q) / safe + 1e-9) * safe, q)


def base_net_stock(data: LotSizingData) -> np.ndarray:
    """Net stock (on hand - backlog) at the end of each period if nothing more is ordered."""
    return data.on_hand[:, None] + np.cumsum(data.arrivals - data.demand, axis=1)


def controllable(data: LotSizingData) -> np.ndarray:
    """(n, T) mask of periods an order can still reach (t > L_i)."""
    return np.arange(1, data.T + 1)[None, :] > data.lead[:, None]


def requirements(data: LotSizingData) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative net requirement N (running maximum, (n, T)) that orders must have delivered
    by the end of each period, and its per-period increments dn."""
    need = np.where(controllable(data), np.maximum(data.floor[:, None] - base_net_stock(data), 0.0),
                    0.0)
    cum = np.maximum.accumulate(need, axis=1)
    dn = np.diff(cum, axis=1, prepend=0.0)
    return cum, dn


def order_caps(data: LotSizingData, budget_cap: bool = True) -> np.ndarray:
    """Big-M per (SKU, order period), (n, T); 0 where no order can be placed."""
    n, T = data.n, data.T
    cum, _ = requirements(data)
    total = cum[:, -1]
    t = np.arange(1, T + 1)[None, :]
    arr = t + data.lead[:, None]  # arrival period
    valid = arr <= T
    prev = np.take_along_axis(np.concatenate([np.zeros((n, 1)), cum], axis=1),
                              np.clip(arr - 1, 0, T), axis=1)
    rem = np.where(data.backlog[:, None], total[:, None], total[:, None] - prev)
    rem = np.where(valid, np.maximum(rem, 0.0), 0.0)
    moq = data.moq_eff[:, None]
    M = np.where(rem > 1e-9, round_up(np.maximum(rem, moq), data.multiple[:, None]), 0.0)
    if budget_cap:
        with np.errstate(divide="ignore", invalid="ignore"):
            cap = np.where(data.unit_cost[:, None] > 0,
                           data.budget[None, :] / data.unit_cost[:, None], np.inf)
        cap = round_down(np.where(np.isfinite(cap), cap, 1e300), data.multiple[:, None])
        M = np.minimum(M, cap)
        M = np.where(M + 1e-9 < np.maximum(moq, 1e-9), 0.0, M)
    return M


def truck_minimum(data: LotSizingData) -> np.ndarray:
    """Trucks an order of each SKU fills at least: max(1, ceil(moq load / capacity)) for SKUs
    with trucks, 0 for the others."""
    tidx, tcap, _, _ = data.trucks()
    cap = np.where(tidx >= 0, tcap[np.maximum(tidx, 0)] if tcap.size else 1.0, 1.0)
    need = np.maximum(1.0, np.ceil(data.moq_eff * data.load / cap - 1e-9))
    return np.where(tidx >= 0, need, 0.0)


def _lin(coefs, vars_, const=0.0):
    return LinearExpression(constant=float(const), linear_coefs=[float(c) for c in coefs],
                            linear_vars=list(vars_))


def build_lot_sizing(data: LotSizingData, strong: bool = True,
                     limit_penalty: tuple[float, float] | None = None) -> pyo.ConcreteModel:
    """The lot-sizing MIP of `data` (see the module docstring). Components by meaning:
    variables x (order), y (order placed), n (packs), s (stock on hand), b (backlog),
    e (shortfall below floor), v (trucks), w (facility-location split, strong only);
    constraints balance, floor, moq, setup, packs, budget, warehouse, trucks, truck_min,
    fl_cover, fl_link, fl_amount; objective `cost` in money / money_scale.

    limit_penalty=(per currency unit over a period budget, per volume unit over the
    warehouse in a period) makes those two rows elastic: variables over_budget (money /
    money_scale) and over_space (volume) absorb any excess at that price, so the model is
    feasible whatever the limits (a penalty model for primal heuristics; its optimum is a
    plan within the limits when the price exceeds what meeting them costs). Order caps are
    then not cut by the budget."""
    n, T = data.n, data.T
    L = data.lead
    scale = float(data.money_scale)
    M = order_caps(data, budget_cap=limit_penalty is None)
    ctrl = controllable(data)
    base = base_net_stock(data)
    moq = data.moq_eff
    tidx, tcap, tcost, groups = data.trucks()
    _, dn = requirements(data)

    m = pyo.ConcreteModel(name="lot_sizing")
    orders = [(int(i), int(j) + 1) for i, j in zip(*np.nonzero(M > 0))]
    m.O = pyo.Set(initialize=orders, dimen=2, ordered=True)
    m.x = pyo.Var(m.O, domain=pyo.NonNegativeReals, bounds=lambda m, i, t: (0.0, float(M[i, t - 1])))
    m.y = pyo.Var(m.O, domain=pyo.Binary)
    packs = [(i, t) for i, t in orders if data.multiple[i] > 0]
    m.OP = pyo.Set(initialize=packs, dimen=2, ordered=True)
    m.n = pyo.Var(m.OP, domain=pyo.NonNegativeIntegers,
                  bounds=lambda m, i, t: (0, round(M[i, t - 1] / data.multiple[i])))
    cells = [(i, t) for i in range(n) for t in range(1, T + 1)]
    m.S = pyo.Set(initialize=cells, dimen=2, ordered=True)
    m.s = pyo.Var(m.S, domain=pyo.NonNegativeReals)
    bl = [(i, t) for i, t in cells if data.backlog[i] or not ctrl[i, t - 1]]
    m.B = pyo.Set(initialize=bl, dimen=2, ordered=True)
    m.b = pyo.Var(m.B, domain=pyo.NonNegativeReals)
    for i, t in cells:  # stock the plan cannot change is data
        if not ctrl[i, t - 1]:
            m.s[i, t].fix(max(base[i, t - 1], 0.0))
            m.b[i, t].fix(max(-base[i, t - 1], 0.0))
    short = [(i, t) for i, t in cells if data.backlog[i] and ctrl[i, t - 1]]
    m.E = pyo.Set(initialize=short, dimen=2, ordered=True)
    m.e = pyo.Var(m.E, domain=pyo.NonNegativeReals)
    order_set = set(orders)

    # -- stock balance in every period an order can reach
    def balance_rule(m, i, t):
        if not ctrl[i, t - 1]:
            return pyo.Constraint.Skip
        coefs, vs, const = [1.0], [m.s[i, t]], 0.0
        if (i, t) in m.B:
            coefs.append(-1.0), vs.append(m.b[i, t])
        if t > 1:
            coefs.append(-1.0), vs.append(m.s[i, t - 1])
            if (i, t - 1) in m.B:
                coefs.append(1.0), vs.append(m.b[i, t - 1])
        else:
            const -= data.on_hand[i]
        o = (i, t - L[i])
        if o in order_set:
            coefs.append(-1.0), vs.append(m.x[o])
        rhs = data.arrivals[i, t - 1] - data.demand[i, t - 1]
        return _lin(coefs, vs, const) == float(rhs)

    m.balance = pyo.Constraint(m.S, rule=balance_rule)

    # -- safety floor from period L_i + 1 on (hard, or priced shortfall when back-ordering)
    def floor_rule(m, i, t):
        if not ctrl[i, t - 1]:
            return pyo.Constraint.Skip
        if data.backlog[i]:
            return _lin([1.0, -1.0, 1.0], [m.s[i, t], m.b[i, t], m.e[i, t]]) >= float(data.floor[i])
        if data.floor[i] <= 0:
            return pyo.Constraint.Skip
        return m.s[i, t] >= float(data.floor[i])

    m.floor = pyo.Constraint(m.S, rule=floor_rule)

    # -- an order is at least the MOQ (one pack) and at most the open requirement (big-M)
    m.moq = pyo.Constraint(m.O, rule=lambda m, i, t: _lin([1.0, -moq[i]], [m.x[i, t], m.y[i, t]])
                           >= 0 if moq[i] > 0 else pyo.Constraint.Skip)
    m.setup = pyo.Constraint(m.O, rule=lambda m, i, t: _lin(
        [1.0, -M[i, t - 1]], [m.x[i, t], m.y[i, t]]) <= 0)
    m.packs = pyo.Constraint(m.OP, rule=lambda m, i, t: _lin(
        [1.0, -data.multiple[i]], [m.x[i, t], m.n[i, t]]) == 0)

    by_period = {t: [] for t in range(1, T + 1)}
    for i, t in orders:
        by_period[t].append(i)

    # -- purchase budget per order period (money scaled)
    bud = [t for t in range(1, T + 1) if np.isfinite(data.budget[t - 1]) and by_period[t]]
    elastic = limit_penalty is not None
    m.over_budget = pyo.Var(bud if elastic else [], domain=pyo.NonNegativeReals)
    m.budget = pyo.Constraint(bud, rule=lambda m, t: _lin(
        [data.unit_cost[i] / scale for i in by_period[t]] + ([-1.0] if elastic else []),
        [m.x[i, t] for i in by_period[t]] + ([m.over_budget[t]] if elastic else []))
        <= float(data.budget[t - 1] / scale))

    # -- warehouse space on end-of-period stock
    def wh_rule(m, t):
        idx = [i for i in range(n) if data.unit_volume[i] > 0]
        free = [i for i in idx if not m.s[i, t].fixed]
        if not free or not np.isfinite(space[t - 1]):
            return pyo.Constraint.Skip
        const = sum(data.unit_volume[i] * m.s[i, t].value for i in idx if m.s[i, t].fixed)
        over = [m.over_space[t]] if elastic else []
        return _lin([data.unit_volume[i] for i in free] + [-1.0] * len(over),
                    [m.s[i, t] for i in free] + over, const) <= float(space[t - 1])

    space = data.space_limit
    m.over_space = pyo.Var([t for t in range(1, T + 1) if np.isfinite(space[t - 1])]
                           if elastic else [], domain=pyo.NonNegativeReals)
    m.warehouse = pyo.Constraint(pyo.RangeSet(1, T), rule=wh_rule)

    # -- trucks per supplier group and arrival period
    loads: dict[tuple[int, int], list] = {}
    for i, t in orders:
        if tidx[i] >= 0:
            loads.setdefault((int(tidx[i]), t + int(L[i])), []).append((i, t))
    m.V = pyo.Set(initialize=sorted(loads), dimen=2, ordered=True)

    def v_bounds(m, k, t):
        ub = sum(data.load[i] * M[i, o - 1] for i, o in loads[k, t]) / tcap[k]
        return (0, math.ceil(ub - 1e-9))

    m.v = pyo.Var(m.V, domain=pyo.NonNegativeIntegers, bounds=v_bounds)
    min_trucks = truck_minimum(data)
    m.trucks = pyo.Constraint(m.V, rule=lambda m, k, t: _lin(
        [data.load[i] for i, _ in loads[k, t]] + [-tcap[k]],
        [m.x[o] for o in loads[k, t]] + [m.v[k, t]]) <= 0)
    tmin = [(i, t) for i, t in orders if tidx[i] >= 0]
    m.truck_min = pyo.Constraint(
        pyo.Set(initialize=tmin, dimen=2, ordered=True),
        rule=lambda m, i, t: _lin([1.0, -min_trucks[i]],
                                  [m.v[int(tidx[i]), t + int(L[i])], m.y[i, t]]) >= 0)

    # -- facility-location layer (strong)
    fl = []
    if strong:
        for i, t in orders:
            if data.backlog[i]:
                continue
            for tau in range(t + int(L[i]), T + 1):
                if dn[i, tau - 1] > 1e-9:
                    fl.append((i, t, tau))
    m.W = pyo.Set(initialize=fl, dimen=3, ordered=True)
    m.w = pyo.Var(m.W, domain=pyo.NonNegativeReals,
                  bounds=lambda m, i, t, tau: (0.0, float(dn[i, tau - 1])))
    cover: dict[tuple[int, int], list] = {}
    amount: dict[tuple[int, int], list] = {}
    for i, t, tau in fl:
        cover.setdefault((i, tau), []).append(t)
        amount.setdefault((i, t), []).append(tau)
    m.fl_link = pyo.Constraint(m.W, rule=lambda m, i, t, tau: _lin(
        [1.0, -dn[i, tau - 1]], [m.w[i, t, tau], m.y[i, t]]) <= 0)
    m.fl_cover = pyo.Constraint(sorted(cover), rule=lambda m, i, tau: _lin(
        [1.0] * len(cover[i, tau]), [m.w[i, t, tau] for t in cover[i, tau]])
        == float(dn[i, tau - 1]))
    m.fl_amount = pyo.Constraint(sorted(amount), rule=lambda m, i, t: _lin(
        [1.0] + [-1.0] * len(amount[i, t]), [m.x[i, t]] + [m.w[i, t, tau] for tau in amount[i, t]])
        >= 0)

    # -- objective: ordering + holding + trucks + shortfall, in money / scale
    coefs, vs = [], []
    for i, t in orders:
        coefs.append(data.ordering_cost[i] / scale), vs.append(m.y[i, t])
    const = 0.0
    for i, t in cells:
        h = data.holding_cost[i] / scale
        if m.s[i, t].fixed:
            const += h * m.s[i, t].value
        elif h != 0:
            coefs.append(h), vs.append(m.s[i, t])
    for k, t in m.V:
        coefs.append(tcost[k] / scale), vs.append(m.v[k, t])
    for i, t in short:
        coefs.append(data.shortage_cost[i] / scale), vs.append(m.e[i, t])
    for t, var in m.over_budget.items():  # elastic limits (limit_penalty)
        coefs.append(float(limit_penalty[0])), vs.append(var)
    for t, var in m.over_space.items():
        coefs.append(float(limit_penalty[1]) / scale), vs.append(var)
    m.cost = pyo.Objective(expr=_lin(coefs, vs, const), sense=pyo.minimize)
    m.truck_groups = groups  # plain attribute: truck group index -> supplier id
    return m
