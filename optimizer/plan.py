"""Multi-period purchase plan: lot sizing with shared trucks, MOQ, budgets and space,
warm-started from the (R, Z) policy.

`plan(instance, horizon, period_days)` turns an `Instance` into a `LotSizingData`
(`build_plan_data`), builds the MIP of `formulations.lot_sizing`, hands HiGHS a repaired
(R, Z) plan as MIP start, and returns a `PlanResult` with the orders, the stock per period and
the use of every period's limits. Choices made here (the formulation's own are in its module):

- Periods are `period_days` long; lead time in periods = ceil(lead_time_days / period_days).
- Forecast: a DataFrame (sku, period, demand) for periods 1..horizon. SKUs it does not name get
  the flat rate annual_demand x period_days / days_per_year; named SKUs get 0 in periods the
  frame leaves out.
- Safety floors: the "full" single-item policy's safety stock, clipped at 0.
- on_hand: the argument, else the SKU master's optional `on_hand` column, else (and for SKUs
  whose cell is empty) the policy's reorder point R, i.e. the SKU starts the horizon just at
  the point where the policy would reorder (a neutral, policy-consistent start; give the real
  stock when you have it).
- open_orders: DataFrame (sku, period, quantity) of deliveries already on the way, by arrival
  period.
- Holding per unit and period: (holding_cost + capital_rate x unit_cost) x period_days /
  days_per_year.
- Budget: `period_budget` (one value per period, NaN = fall back) else
  `scenario.budget.period_limit` per order period; warehouse: `scenario.warehouse.
  capacity` on end-of-period stock volume; trucks: `scenario.vehicles.spec_for(supplier)`,
  load per unit = weight or volume as the spec measures. A truck carries one supplier's orders
  that arrive in the same period (one delivery), so trucks are counted per (supplier, arrival
  period).
- Backlog only when asked (`allow_backlog=True`) and only for SKUs with a shortage cost; by
  default the plan keeps every SKU at or above its floor (the shortage cost already sized the
  floor through the policy).

MIP start: the (R, Z) rule simulated over the forecast (all SKUs at once, a loop over periods):
order the smallest number of lots Z that lifts the projected inventory position above R
whenever it falls to R or below, raised where needed so stock meets the floor on arrival,
rounded up to MOQ and packs and trimmed to the open requirement. Then the budget is repaired
backwards: a period over budget moves its largest orders one period earlier (stock stays above
the floors, only holding grows). Every model variable gets a value (trucks, stock, packs and
the facility-location split included) and HiGHS receives it with warmstart=True. If the repaired
start still breaks a limit, `start_objective` is None (HiGHS then ignores it).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyomo.environ as pyo

from formulations.lot_sizing import (LotSizingData, base_net_stock, build_lot_sizing,
                                     controllable, order_caps, requirements, round_up)
from optimizer.highs import solve_model
from optimizer.instance import Instance

STATUSES = ("optimal", "feasible", "time_limit", "infeasible", "error")
_TOL = 1e-6


@dataclass
class PlanResult:
    """Outcome of `plan`. Money in currency units (not scaled); quantities in units.

    status: optimal (gap within the requested one) | feasible (a plan, solver stopped
    otherwise) | time_limit (stopped at the limit; tables hold the incumbent if any) |
    infeasible (message says which limit in which period) | error.
    objective: cost of the returned plan (ordering + holding + trucks + shortfall), NaN when
    none; bound: the solver's best bound; lp_bound: LP relaxation of the model solved;
    gap: (objective - bound) / objective; start_objective: cost of the (R, Z) MIP start (None
    when the repaired start breaks a limit); heuristic_objective: cost of the LP-guided plan;
    solve_seconds: wall time from the build to the result (build, LP, heuristic, MIP seconds
    apart in build_seconds, lp_seconds, heuristic_seconds, mip_seconds).
    orders: sku, supplier, order_period, arrival_period, quantity, trucks (the supplier's trucks
    of that delivery attributed to each order by its share of the load, so they sum to the
    delivery's trucks). stock: sku, period, stock (net: negative = backlog), floor (0 before the
    first lead time). periods: period, spend (in the order period), space (volume at period
    end), trucks (arriving in the period). deliveries: supplier, period, load, capacity, trucks.
    """

    status: str
    objective: float
    bound: float
    lp_bound: float
    gap: float
    start_objective: float | None
    solve_seconds: float
    orders: pd.DataFrame
    stock: pd.DataFrame
    periods: pd.DataFrame
    message: str = ""
    deliveries: pd.DataFrame = field(default_factory=pd.DataFrame)
    lp_seconds: float = 0.0
    build_seconds: float = 0.0
    heuristic_objective: float | None = None  # cost of the LP-guided plan, None if none
    heuristic_seconds: float = 0.0
    mip_seconds: float = 0.0  # full-model MIP (0 when the LP bound already proves the gap)
    data: LotSizingData | None = field(default=None, repr=False)


# ----------------------------------------------------------------------------- data

def lead_periods(lead_time_days, period_days) -> np.ndarray:
    return np.ceil(np.asarray(lead_time_days, dtype=float) / float(period_days) - 1e-9).astype(int)


def _by_sku(values, skus, name) -> np.ndarray:
    if isinstance(values, dict):
        values = pd.Series(values)
    if isinstance(values, pd.Series):
        unknown = set(values.index) - set(skus)
        if unknown:
            raise ValueError(f"{name}: unknown SKU(s) {sorted(unknown)[:5]}")
        return values.reindex(skus).fillna(0.0).to_numpy(dtype=float)
    return np.array(np.broadcast_to(np.asarray(values, dtype=float), (len(skus),)))


def _grid(frame: pd.DataFrame, skus, T, value, name) -> np.ndarray:
    """(n, T) array from a long frame (sku, period, value)."""
    pos = {s: i for i, s in enumerate(skus)}
    out = np.zeros((len(skus), T))
    if frame is None or len(frame) == 0:
        return out
    missing = {"sku", "period", value} - set(frame.columns)
    if missing:
        raise ValueError(f"{name} needs columns sku, period, {value}")
    idx = frame["sku"].map(pos)
    if idx.isna().any():
        raise ValueError(f"{name}: unknown SKU(s) {sorted(frame['sku'][idx.isna()].unique())[:5]}")
    per = frame["period"].astype(int).to_numpy()
    if (per < 1).any() or (per > T).any():
        raise ValueError(f"{name}: periods must lie in 1..{T}")
    np.add.at(out, (idx.to_numpy(dtype=int), per - 1), frame[value].to_numpy(dtype=float))
    return out


def build_plan_data(instance: Instance, horizon: int, period_days: float, forecast=None,
                    on_hand=None, open_orders=None, allow_backlog: bool = False, policy=None,
                    period_budget=None) -> tuple[LotSizingData, object]:
    """The `LotSizingData` of `instance` over `horizon` periods (see module docstring) and the
    single-item policy it used (floors, default on hand, MIP start)."""
    from optimizer.policy import single_item_policy

    T = int(horizon)
    if T < 1 or period_days <= 0:
        raise ValueError("horizon must be >= 1 and period_days > 0")
    sc = instance.scenario
    skus = [str(s) for s in instance.sku]
    pol = policy if policy is not None else single_item_policy(instance, "full")
    flat = instance.annual_demand * period_days / sc.days_per_year
    demand = np.repeat(flat[:, None], T, axis=1)
    if forecast is not None and len(forecast):
        given = _grid(forecast, skus, T, "demand", "forecast")
        named = np.isin(skus, forecast["sku"].astype(str).unique())
        demand[named] = given[named]
    if on_hand is not None:
        oh = _by_sku(on_hand, skus, "on_hand")
    else:
        oh = np.asarray(pol.reorder_point, float)
        if instance.on_hand is not None:  # the SKU master's column; empty cells keep R
            oh = np.where(np.isfinite(instance.on_hand), instance.on_hand, oh)
    arrivals = _grid(open_orders, skus, T, "quantity", "open_orders")
    units, _ = instance.vehicle_arrays()
    load = np.zeros(instance.n)
    cap, cost = {}, {}
    if sc.vehicles is not None:
        for sup in pd.unique(instance.supplier):
            spec = sc.vehicles.spec_for(str(sup))
            if spec is None or spec.capacity <= 0:
                continue
            mask = instance.supplier == sup
            load[mask] = (instance.unit_weight if spec.measure == "weight"
                          else instance.unit_volume)[mask]
            cap[str(sup)], cost[str(sup)] = float(spec.capacity), float(spec.cost)
    budget = sc.budget.period_limit if sc.budget is not None else None
    if period_budget is not None:
        given = np.asarray(period_budget, dtype=float)
        if given.shape != (T,):
            raise ValueError(f"period_budget must have one value per period (1..{T})")
        fallback = np.inf if budget is None else float(budget)
        budget = np.where(np.isnan(given), fallback, given)
    data = LotSizingData(
        sku=np.array(skus, dtype=object), supplier=np.array([str(s) for s in instance.supplier],
                                                             dtype=object),
        demand=demand, lead=lead_periods(instance.lead_time_days, period_days), on_hand=oh,
        floor=np.clip(np.nan_to_num(pol.safety_stock, nan=0.0), 0.0, None),
        unit_cost=instance.unit_cost,
        ordering_cost=instance.ordering_cost,
        holding_cost=(instance.holding_cost + sc.capital_rate * instance.unit_cost)
        * period_days / sc.days_per_year,
        arrivals=arrivals, moq=instance.moq, multiple=instance.order_multiple,
        shortage_cost=instance.shortage_cost if allow_backlog else np.nan,
        unit_volume=instance.unit_volume, load=load, budget=budget,
        warehouse=sc.warehouse.capacity if sc.warehouse is not None else None,
        truck_capacity=cap, truck_cost=cost, period_days=float(period_days))
    return data, pol


# ----------------------------------------------------------------------------- evaluation

def evaluate(data: LotSizingData, x: np.ndarray) -> dict:
    """Everything a plan of order quantities x (n, T; column = order period) implies:
    net stock, backlog, shortfall, trucks per (group, arrival), spend, space, its cost and the
    list of broken rules."""
    n, T = data.n, data.T
    x = np.asarray(x, dtype=float)
    L = data.lead
    t = np.arange(1, T + 1)
    arrive = np.zeros((n, T))
    src = t[None, :] - L[:, None]  # order period of each arrival
    ok = src >= 1
    arrive[ok] = x[np.nonzero(ok)[0], src[ok] - 1]
    net = base_net_stock(data) + np.cumsum(arrive, axis=1)
    ctrl = controllable(data)
    on = np.maximum(net, 0.0)
    back = np.maximum(-net, 0.0)
    short = np.where(ctrl & data.backlog[:, None], np.maximum(data.floor[:, None] - net, 0.0), 0.0)
    tidx, tcap, tcost, groups = data.trucks()
    K = len(groups)
    load = np.zeros((max(K, 1), T))
    if K:
        use = tidx >= 0
        np.add.at(load, (np.repeat(tidx[use], T), np.tile(np.arange(T), use.sum())),
                  (arrive[use] * data.load[use, None]).ravel())
    trucks = np.ceil(load[:K] / tcap[:, None] - 1e-7) if K else np.zeros((0, T))
    trucks = np.maximum(trucks, 0.0)
    spend = data.unit_cost @ x
    space = data.unit_volume @ on
    placed = x > _TOL
    cost = (data.ordering_cost @ placed.sum(axis=1) + (data.holding_cost[:, None] * on).sum()
            + (tcost[:, None] * trucks).sum() + np.nansum(
                np.where(data.backlog[:, None], data.shortage_cost[:, None], 0.0) * short))
    v = []
    if (x < -_TOL).any():
        v.append("negative order quantity")
    late = placed & (t[None, :] + L[:, None] > T)
    if late.any():
        v.append(f"{late.sum()} order(s) arrive after the horizon")
    moq = data.moq_eff
    small = placed & (x < moq[:, None] * (1 - 1e-7) - _TOL)
    for i, j in zip(*np.nonzero(small)):
        v.append(f"MOQ: {data.sku[i]} period {j + 1} orders {x[i, j]:g} < {moq[i]:g}")
    mult = data.multiple
    for i, j in zip(*np.nonzero(placed & (mult[:, None] > 0))):
        q = x[i, j] / mult[i]
        if abs(q - round(q)) > 1e-6:
            v.append(f"pack: {data.sku[i]} period {j + 1} orders {x[i, j]:g}, not a multiple "
                     f"of {mult[i]:g}")
    hard = ctrl & ~data.backlog[:, None]
    low = hard & (net < data.floor[:, None] - 1e-6 * np.maximum(1.0, data.floor[:, None]))
    for i, j in zip(*np.nonzero(low)):
        v.append(f"floor: {data.sku[i]} period {j + 1} stock {net[i, j]:.6g} < floor "
                 f"{data.floor[i]:.6g}")
    for j in np.flatnonzero(spend > data.budget * (1 + 1e-7) + _TOL):
        v.append(f"budget: period {j + 1} spends {spend[j]:.6g} > {data.budget[j]:.6g}")
    wh = data.space_limit
    for j in np.flatnonzero(space > wh * (1 + 1e-7) + _TOL):
        v.append(f"warehouse: period {j + 1} stock volume {space[j]:.6g} > {wh[j]:.6g}")
    return dict(net=net, on=on, back=back, short=short, arrive=arrive, load=load[:K],
                trucks=trucks, groups=groups, tcap=tcap, spend=spend, space=space, cost=float(cost),
                violations=v)


def limit_excess(data: LotSizingData, ev: dict) -> tuple[float, float]:
    """Total excess of a plan over the period budgets (money) and over the warehouse (volume),
    summed over the periods, from its `evaluate` dict; (0, 0) when it meets both."""
    W = data.space_limit
    return (float(np.maximum(ev["spend"] - data.budget, 0.0).sum()),
            float(np.where(np.isfinite(W), np.maximum(ev["space"] - W, 0.0), 0.0).sum()))


# ----------------------------------------------------------------------------- MIP start

def rz_start(data: LotSizingData, order_quantity, reorder_point) -> np.ndarray:
    """Order quantities (n, T) of the (R, Z) rule over the forecast, repaired to the floors,
    MOQ/packs and the per-period budget where possible (see module docstring)."""
    n, T = data.n, data.T
    Z = np.maximum(np.nan_to_num(np.asarray(order_quantity, float), nan=0.0), 1e-9)
    R = np.nan_to_num(np.asarray(reorder_point, float), nan=0.0)
    L = data.lead
    base = base_net_stock(data)
    caps = order_caps(data, budget_cap=False)
    moq = data.moq_eff
    x = np.zeros((n, T))
    ip = data.on_hand + data.arrivals.sum(axis=1)  # inventory position: all open orders count
    placed = np.zeros(n)
    rows = np.arange(n)
    for t in range(1, T + 1):
        ip = ip - data.demand[:, t - 1]
        valid = t + L <= T
        lots = np.where(ip <= R, np.floor((R - ip) / Z) + 1.0, 0.0)
        q = lots * Z
        arr = np.minimum(t + L, T)
        need = np.where(data.backlog, 0.0, data.floor - (base[rows, arr - 1] + placed))
        q = np.maximum(q, need)
        q = np.where(q > _TOL, round_up(np.maximum(q, moq), data.multiple), 0.0)
        q = np.where(valid, np.minimum(q, caps[:, t - 1]), 0.0)
        x[:, t - 1] = q
        placed += q
        ip += q
    return repair_forward(data, repair_budget(data, x, caps), caps)


def _net_stock(data: LotSizingData, x: np.ndarray) -> np.ndarray:
    """Net stock (n, T) at the end of each period under order quantities x."""
    n, T = data.n, data.T
    src = np.arange(1, T + 1)[None, :] - data.lead[:, None]
    ok = src >= 1
    arrive = np.zeros((n, T))
    arrive[ok] = x[np.nonzero(ok)[0], src[ok] - 1]
    return base_net_stock(data) + np.cumsum(arrive, axis=1)


def repair_forward(data: LotSizingData, x: np.ndarray, caps=None, passes: int = 4
                   ) -> np.ndarray:
    """Forward passes for what moving orders earlier cannot fix (period 1 over budget, stock
    over the warehouse): in each period, largest first, postpone by one period the orders whose
    SKU stays at its floor without them in their arrival period; a postponed order joins the
    SKU's order of the next period (skipped if that would pass the model's order cap). A
    warehouse postponement adds spend to a later order period, so the passes repeat until no
    order moves. Orders of SKUs that may back-order are not postponed (no floor to protect)."""
    x = x.copy()
    caps = order_caps(data, budget_cap=False) if caps is None else caps
    n, T = data.n, data.T
    L = data.lead
    c, vol = data.unit_cost, data.unit_volume
    hard = ~data.backlog
    rows = np.arange(n)
    for _ in range(passes):
        moved = False
        for t in range(1, T):
            for kind in ("warehouse", "budget"):
                net = _net_stock(data, x)
                if kind == "budget":
                    excess = c @ x[:, t - 1] - data.budget[t - 1]
                    o = np.full(n, t)  # order period of the candidates
                    weight = c
                else:
                    if data.warehouse is None:
                        continue
                    excess = vol @ np.maximum(net[:, t - 1], 0.0) - data.space_limit[t - 1]
                    o = t - L  # the orders arriving in period t
                    weight = vol
                if excess <= _TOL:
                    continue
                ok = (o >= 1) & (o + 1 + L <= T) & hard
                oi = np.clip(o, 1, T - 1) - 1
                q = np.where(ok, x[rows, oi], 0.0)
                a = np.clip(oi + L, 0, T - 1)  # arrival column
                ok &= (q > 0) & (net[rows, a] - q >= data.floor - 1e-9)
                ok &= x[rows, oi + 1] + q <= caps[rows, oi + 1] + 1e-9
                idx = np.flatnonzero(ok)
                if not idx.size:
                    continue
                val = weight[idx] * q[idx]
                order = np.argsort(-val)
                k = int(np.searchsorted(np.cumsum(val[order]), excess - _TOL)) + 1
                move = idx[order[:k]]
                x[move, oi[move] + 1] += x[move, oi[move]]
                x[move, oi[move]] = 0.0
                moved = True
        if not moved:
            break
    return x


def repair_budget(data: LotSizingData, x: np.ndarray, caps=None) -> np.ndarray:
    """Backward pass: a period over budget moves its largest orders one period earlier."""
    x = x.copy()
    caps = order_caps(data, budget_cap=False) if caps is None else caps
    c = data.unit_cost
    for t in range(data.T, 1, -1):
        excess = c @ x[:, t - 1] - data.budget[t - 1]
        if excess <= _TOL:
            continue
        idx = np.flatnonzero(x[:, t - 1] > 0)
        val = c[idx] * x[idx, t - 1]
        order = np.argsort(-val)
        k = int(np.searchsorted(np.cumsum(val[order]), excess - _TOL)) + 1
        move = idx[order[:k]]
        x[move, t - 2] = np.minimum(x[move, t - 2] + x[move, t - 1], caps[move, t - 2])
        x[move, t - 1] = 0.0
    return x


def set_start(model: pyo.ConcreteModel, data: LotSizingData, x: np.ndarray) -> None:
    """Give every variable of `model` the value the plan x implies (appsi's warm start needs
    them all)."""
    ev = evaluate(data, x)
    L = data.lead
    for (i, t), var in model.x.items():
        var.set_value(float(x[i, t - 1]), skip_validation=True)
    for (i, t), var in model.y.items():
        var.set_value(1.0 if x[i, t - 1] > _TOL else 0.0, skip_validation=True)
    for (i, t), var in model.n.items():
        var.set_value(float(round(x[i, t - 1] / data.multiple[i])), skip_validation=True)
    for (i, t), var in model.s.items():
        if not var.fixed:
            var.set_value(float(ev["on"][i, t - 1]), skip_validation=True)
    for (i, t), var in model.b.items():
        if not var.fixed:
            var.set_value(float(ev["back"][i, t - 1]), skip_validation=True)
    for (i, t), var in model.e.items():
        var.set_value(float(ev["short"][i, t - 1]), skip_validation=True)
    for (k, t), var in model.v.items():
        var.set_value(float(ev["trucks"][k, t - 1]), skip_validation=True)
    if len(model.W):
        cum, _ = requirements(data)
        Xc = np.cumsum(ev["arrive"], axis=1)
        Xprev = Xc - ev["arrive"]
        Nprev = cum - np.diff(cum, axis=1, prepend=0.0)
        for (i, t, tau), var in model.w.items():
            a = t + L[i] - 1
            val = min(Xc[i, a], cum[i, tau - 1]) - max(Xprev[i, a], Nprev[i, tau - 1])
            var.set_value(max(float(val), 0.0), skip_validation=True)


# ----------------------------------------------------------------------------- diagnosis

def diagnose(data: LotSizingData) -> str:
    """A reason the data admit no plan ("" when none of these necessary conditions fails):
    a SKU that cannot order in time, cumulative budget below the minimum spend, or stock that
    cannot be avoided exceeding the warehouse."""
    n, T = data.n, data.T
    cum, dn = requirements(data)
    hard = ~data.backlog
    M = order_caps(data)
    L = data.lead
    moq = data.moq_eff
    # a SKU whose first requirement comes before any period it can afford to order in
    for i in np.flatnonzero(hard & (cum[:, -1] > _TOL)):
        first_need = int(np.argmax(cum[i] > _TOL)) + 1  # period
        can = np.flatnonzero(M[i] > 0) + 1
        if not can.size or can[0] + L[i] > first_need:
            why = ("its minimum order costs more than the budget of every period it could order in"
                   if not can.size or np.isfinite(data.budget).any() else "")
            return (f"infeasible: {data.sku[i]} needs {cum[i, first_need - 1]:.6g} units by period "
                    f"{first_need} (floor {data.floor[i]:.6g}) but no order can arrive by then"
                    + (f" ({why})" if why else ""))
    # cumulative budget vs minimum cumulative spend of orders placed in 1..t
    if np.isfinite(data.budget).any():
        spend_min = np.zeros(T)
        for t in range(1, T + 1):
            arr = np.minimum(t + L, T)
            ok = hard & (T - L >= 1)
            need = np.where(ok, cum[np.arange(n), arr - 1], 0.0)
            need = np.where(need > _TOL, round_up(np.maximum(need, moq), data.multiple), 0.0)
            spend_min[t - 1] = data.unit_cost @ need
        avail = np.cumsum(data.budget)
        over = np.flatnonzero(spend_min > avail * (1 + 1e-9) + _TOL)
        if over.size:
            t = int(over[0]) + 1
            return (f"infeasible: budget in period {t}: orders placed in periods 1..{t} must spend "
                    f"at least {spend_min[t - 1]:,.2f} to keep every SKU at its floor until they "
                    f"arrive, but the budgets of periods 1..{t} total {avail[t - 1]:,.2f} "
                    f"(short by {spend_min[t - 1] - avail[t - 1]:,.2f}; period {t} budget "
                    f"{data.budget[t - 1]:,.2f})")
    if data.warehouse is not None:
        base = base_net_stock(data)
        ctrl = controllable(data)
        least = np.where(ctrl, np.where(hard[:, None], data.floor[:, None], 0.0),
                         np.maximum(base, 0.0))
        vol = data.unit_volume @ least
        wh = data.space_limit
        over = np.flatnonzero(vol > wh * (1 + 1e-9) + _TOL)
        if over.size:
            t = int(over[0]) + 1
            return (f"infeasible: warehouse in period {t}: floors and stock already on hand or "
                    f"in transit take {vol[t - 1]:,.3f} vs capacity {wh[t - 1]:,.3f} "
                    f"(over by {vol[t - 1] - wh[t - 1]:,.3f})")
    return ""


# ----------------------------------------------------------------------------- solving

def _relax(model: pyo.ConcreteModel) -> list:
    """Make every integer variable of `model` continuous in place (binaries in [0, 1]);
    returns what `_restore` needs. In place, not on a clone: cloning a 100k-variable model
    costs seconds."""
    saved = []
    for var in model.component_data_objects(pyo.Var, descend_into=True):
        if var.is_integer():
            saved.append((var, var.domain))
            var.domain = pyo.UnitInterval if var.is_binary() else pyo.NonNegativeReals
    return saved


def _restore(saved: list) -> None:
    for var, domain in saved:
        var.domain = domain


def lp_relaxation(model: pyo.ConcreteModel, solver: str = "appsi_highs",
                  values: bool = False, without: tuple = (), time_limit=None):
    """(value, seconds) of the LP relaxation of `model` (money / scale as in the model; NaN
    when the LP is infeasible); with `values=True` also {index: LP value} of `model.y` and
    the termination (optimal | infeasible | time_limit | ...).
    `without` names constraint families left out (e.g. ("budget", "warehouse")): a
    relaxation of the relaxation, so still a valid lower bound. The model's integer domains
    and constraints are restored afterwards; its variable values are the LP's. An LP stopped
    by `time_limit` (seconds) counts as unsolved (NaN, no values)."""
    t0 = time.perf_counter()
    saved = _relax(model)
    dropped = [getattr(model, name) for name in without
               if hasattr(model, name) and getattr(model, name).active]
    for con in dropped:
        con.deactivate()
    try:
        out = solve_model(model, solver=solver, time_limit=time_limit)
    finally:
        _restore(saved)
        for con in dropped:
            con.activate()
    val = out.objective if out.termination == "optimal" else math.nan
    if values:
        ys = {k: (v.value or 0.0) for k, v in model.y.items()} if math.isfinite(val) else {}
        return val, time.perf_counter() - t0, ys, out.termination
    return val, time.perf_counter() - t0


def _orders(model: pyo.ConcreteModel, data: LotSizingData) -> np.ndarray:
    """Order quantities (n, T) held by the model's variables, packs rounded to whole packs;
    slots the solver left closed (y < 0.5: a y within its integrality tolerance of 0 lets
    HiGHS keep a crumb of x that no truck carries) and noise below 1e-7 x MOQ dropped."""
    x = np.zeros((data.n, data.T))
    for (i, t), var in model.x.items():
        if (model.y[i, t].value or 0.0) < 0.5:
            continue
        val = var.value or 0.0
        if data.multiple[i] > 0:
            val = round(model.n[i, t].value or 0.0) * data.multiple[i]
        x[i, t - 1] = val if val > 1e-7 * max(1.0, data.moq_eff[i]) else 0.0
    return x


def widen_slots(is_open: np.ndarray) -> np.ndarray:
    """(n, T) order slots widened by one period either side: a slot opens where it, the
    period before or the period after was open (the next neighbourhood of the LP-guided
    MIPs when the last one was infeasible)."""
    w = is_open.copy()
    w[:, 1:] |= is_open[:, :-1]
    w[:, :-1] |= is_open[:, 1:]
    return w


def lp_guided_plan(model: pyo.ConcreteModel, data: LotSizingData, y_lp: dict, *, time_limit,
                   gap: float, solver: str = "appsi_highs", widen: int = 2,
                   first_widen: int = 0) -> tuple[np.ndarray | None, float]:
    """Primal heuristic (relaxation-induced neighbourhood): solve the MIP restricted to the
    order slots the LP relaxation opens (y_LP > 1e-6; the others fixed to 0). With the strong
    formulation the LP opens few slots beyond the optimal ones, so the restricted MIP is a
    small fraction of the full one and HiGHS solves it far faster than it improves a start on
    the full model. When MOQs, packs and trucks make that neighbourhood infeasible under
    binding limits, the open slots are widened by one period either side (up to `widen`
    times; `first_widen` widenings before the first try, for an LP solved without the
    coupling limits) and the MIP retried. Returns (order quantities or None, seconds); the
    model's y are unfixed again afterwards."""
    t0 = time.perf_counter()
    n, T = data.n, data.T
    is_open = np.zeros((n, T), dtype=bool)
    for (i, t), v in y_lp.items():
        is_open[i, t - 1] = v > 1e-6
    for k in range(widen + 1):
        if k < first_widen:
            is_open = widen_slots(is_open)
            continue
        left = None if time_limit is None else time_limit - (time.perf_counter() - t0)
        if left is not None and left <= 0.5:
            break
        fixed = [var for (i, t), var in model.y.items() if not is_open[i, t - 1]
                 and not var.fixed]
        for var in fixed:
            var.fix(0)
        try:
            out = solve_model(model, solver=solver, time_limit=left, mip_gap=gap)
        finally:
            for var in fixed:
                var.unfix()
        if out.solution != "none":
            return _orders(model, data), time.perf_counter() - t0
        if out.termination != "infeasible":
            break  # out of time: a wider neighbourhood would not do better
        is_open = widen_slots(is_open)  # also one period later and one earlier
    return None, time.perf_counter() - t0


def lot_sizing_lp_bounds(data: LotSizingData, solver: str = "appsi_highs") -> dict:
    """LP relaxation bounds (money) of the strong and the plain big-M model of `data`."""
    out = {}
    for name, strong in (("strong", True), ("plain", False)):
        m = build_lot_sizing(data, strong=strong)
        val, sec = lp_relaxation(m, solver)
        out[name] = val * data.money_scale
        out[f"{name}_seconds"] = sec
    return out


def plan_lp_bounds(instance: Instance, horizon: int, period_days: float, **kwargs) -> dict:
    """Strong and plain LP bounds of the plan model of `instance` (same arguments as
    `build_plan_data`): {"strong", "plain", "strong_seconds", "plain_seconds"}."""
    data, _ = build_plan_data(instance, horizon, period_days, **kwargs)
    return lot_sizing_lp_bounds(data)


def _empty_result(status, data, message, start_obj=None, lp=math.nan, seconds=0.0):
    return PlanResult(status=status, objective=math.nan, bound=math.nan, lp_bound=lp,
                      gap=math.nan, start_objective=start_obj, solve_seconds=seconds,
                      orders=pd.DataFrame(columns=["sku", "supplier", "order_period",
                                                   "arrival_period", "quantity", "trucks"]),
                      stock=pd.DataFrame(columns=["sku", "period", "stock", "floor"]),
                      periods=pd.DataFrame(columns=["period", "spend", "space", "trucks"]),
                      message=message, data=data)


def solve_plan_data(data: LotSizingData, *, time_limit=None, gap: float = 1e-2,
                    strong: bool = True, start: np.ndarray | None = None,
                    lp_bound: bool = True, heuristic: bool = True,
                    lp_coupling: bool = True, solver: str = "appsi_highs",
                    decompose: bool = False, decompose_share: float = 0.6,
                    direct: bool = True, price: bool | None = None,
                    groups: bool = True) -> PlanResult:
    """Build, warm-start and solve the lot-sizing MIP of `data`.

    price=True takes the pricing route of `optimizer.plan_price.priced_plan` instead
    (large instances: 2,000 SKUs x 52 periods, where neither the full model nor the group
    MIPs give a plan in minutes): Lagrangian bound by column generation over single-item
    shortest paths (its value is both `bound` and `lp_bound`: the LP bound of the master,
    not that of this model), a plan chosen one column per SKU and repaired to the limits,
    then an integer master; `time_limit` (default `PRICE_TIME_LIMIT` s) covers all of it.
    price=None chooses it when n x T >= `PRICE_ABOVE` (and neither `decompose` nor
    direct=False asks for another route).

    direct=True (the default with HiGHS and without `decompose`) runs the same steps on the
    model built as arrays and handed to HiGHS through highspy (`optimizer.plan_search`;
    500 SKUs x 26 periods: 0.3 s instead of ~11 s of Pyomo build and load, and the LP
    solved without the budget and warehouse rows first, then with them from that basis);
    direct=False builds the Pyomo model of `formulations.lot_sizing` (any Pyomo solver).
    groups=False leaves out the direct pipeline's LP-guided MIPs by truck group
    (`optimizer.plan_groups`), which run before the LP-guided MIP of the whole model.

    decompose=True replaces the LP and LP-guided stages by the supplier decomposition
    (`optimizer.plan_decompose.decomposed_plan`, at most `decompose_share` of the time): the
    LP bound by parts (the LP without budget and warehouse rows, solved per truck group) and
    a plan meeting every limit built and improved group by group; the full MIP is then only
    built and run (from the best plan) when that plan is not within `gap` of the bound.

    Steps: diagnosis of the limits; the model; the LP relaxation (its value is `lp_bound`, a
    valid lower bound); with `heuristic` the LP-guided restricted MIP (`lp_guided_plan`, at
    most half the remaining time) whose plan, if cheaper, replaces `start` as the MIP start;
    if the best plan is already within `gap` of the LP bound the full MIP is skipped (the LP
    bound proves the gap), else HiGHS solves the full model from that start in the remaining
    time. `time_limit` (seconds) covers all of it from the build on. bound = max(solver bound,
    LP bound); gap = (objective - bound) / objective.

    lp_coupling=False leaves the period budget and warehouse rows out of that LP: its value
    is then the LP bound of the model without them (still valid, a little weaker) and its y
    guide the heuristic. Those dense rows slow the simplex several-fold (500 SKUs x 26
    periods: 7.5 s without, 31 s with them on two cores), but measured there the
    neighbourhood of the LP without them, even widened, was too hard to search in 230 s while
    that of the full LP gave a plan within 1.1% in about 50 s; so the default keeps them.
    """
    reason = diagnose(data)
    if reason:
        return _empty_result("infeasible", data, reason)
    t0 = time.perf_counter()

    def remaining():
        return None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.1)

    start_obj = None
    notes = []
    if start is not None:
        ev = evaluate(data, start)
        if not ev["violations"]:
            start_obj = ev["cost"]
        else:
            notes.append(f"MIP start breaks {len(ev['violations'])} rule(s), first: "
                         f"{ev['violations'][0]}")
    scale = data.money_scale
    if price is None:
        price = direct and not decompose and data.n * data.T >= PRICE_ABOVE
    if price:
        return _solve_priced(data, t0, notes, start_obj, time_limit=time_limit, gap=gap,
                             start=start)
    if direct and not decompose and solver in ("appsi_highs", "highs"):
        return _solve_direct(data, t0, notes, start_obj, time_limit=time_limit, gap=gap,
                             strong=strong, start=start if start_obj is not None else None,
                             lp_bound=lp_bound, heuristic=heuristic, lp_coupling=lp_coupling,
                             groups=groups)
    dec = None
    if decompose:
        from optimizer.plan_decompose import decomposed_plan

        dec = decomposed_plan(data, strong=strong, gap=gap, solver=solver, start=start,
                              time_limit=None if time_limit is None
                              else decompose_share * time_limit)
        notes.append(f"supplier decomposition: {dec.message} in {dec.seconds:.1f} s")
        best = (start, start_obj) if start_obj is not None else (None, None)
        if dec.x is not None and (best[1] is None or dec.objective < best[1]):
            best = (dec.x, dec.objective)
        if (best[1] is not None and math.isfinite(dec.bound)
                and best[1] - dec.bound <= gap * abs(best[1])):
            res = result_from_orders(data, best[0])
            res.bound = res.lp_bound = dec.bound
            res.gap = (res.objective - res.bound) / abs(res.objective)
            res.status = "optimal"
            res.start_objective = start_obj
            res.heuristic_objective = dec.objective if dec.x is not None else None
            res.lp_seconds = dec.lp_seconds
            res.heuristic_seconds = dec.seconds - dec.lp_seconds
            res.solve_seconds = time.perf_counter() - t0
            notes.insert(0, f"optimal: cost {res.objective:,.2f}, bound {res.bound:,.2f} (LP "
                            f"bound by supplier parts, without the budget and warehouse rows), "
                            f"gap {100 * res.gap:.2f}%")
            notes.append("the LP bound proves the gap; full MIP not needed")
            res.message = "; ".join(notes)
            return res
    t_build = time.perf_counter()
    model = build_lot_sizing(data, strong=strong)
    build_seconds = time.perf_counter() - t_build
    lp_val, lp_sec, y_lp = math.nan, 0.0, {}
    if dec is not None:
        lp_val, lp_sec = dec.bound / scale, dec.lp_seconds
    elif lp_bound or heuristic:
        lp_val, lp_sec, y_lp, lp_term = lp_relaxation(
            model, solver, values=True, without=() if lp_coupling else ("budget", "warehouse"),
            time_limit=None if time_limit is None else remaining() / 2)
        if lp_term == "time_limit":
            notes.append("LP relaxation not solved within half the time left: no LP bound")
        elif lp_term == "infeasible":
            msg = ("infeasible: the LP relaxation has no solution: budget, warehouse and floors "
                   "together leave no plan (try relaxing one)")
            return _empty_result("infeasible", data, msg, start_obj, math.nan,
                                 time.perf_counter() - t0)
    lp_money = lp_val * scale
    best_x, best_obj = (start, start_obj) if start_obj is not None else (None, None)
    heur_obj, heur_sec = None, 0.0
    if dec is not None:
        heur_sec = dec.seconds - dec.lp_seconds
        if dec.x is not None:
            heur_obj = dec.objective
            if best_obj is None or heur_obj < best_obj:
                best_x, best_obj = dec.x, heur_obj
    elif heuristic and y_lp:
        budget = remaining()
        share = 0.5 if best_x is not None else 0.8  # without a start the full MIP rarely finds one
        hx, heur_sec = lp_guided_plan(model, data, y_lp, solver=solver, gap=gap / 2,
                                      time_limit=None if budget is None else budget * share,
                                      widen=2 if lp_coupling else 3,
                                      first_widen=0 if lp_coupling else 1)
        if hx is not None:
            ev = evaluate(data, hx)
            if not ev["violations"]:
                heur_obj = ev["cost"]
                if best_obj is None or heur_obj < best_obj:
                    best_x, best_obj = hx, heur_obj
    proven_by_lp = (best_obj is not None and math.isfinite(lp_money)
                    and best_obj - lp_money <= gap * abs(best_obj))
    if proven_by_lp:
        res = result_from_orders(data, best_x)
        bound, status, solver_seconds = lp_money, "optimal", 0.0
        notes.append("the LP bound proves the gap; full MIP not needed")
    else:
        if best_x is not None:
            set_start(model, data, best_x)
        out = solve_model(model, solver=solver, time_limit=remaining(), mip_gap=gap,
                          warmstart=best_x is not None)
        solver_seconds = out.seconds
        if out.solution == "none":
            if out.termination == "infeasible":
                msg = ("infeasible: no single period limit explains it; budget, warehouse, MOQ "
                       "and packs together leave no plan (try relaxing one)")
                return _empty_result("infeasible", data, msg, start_obj, lp_money,
                                     time.perf_counter() - t0)
            status = "time_limit" if out.termination == "time_limit" else "error"
            res = _empty_result(status, data, f"no plan found ({out.message})", start_obj,
                                lp_money, time.perf_counter() - t0)
            res.bound = float(np.nanmax([out.bound * scale, lp_money])) if math.isfinite(
                out.bound) or math.isfinite(lp_money) else math.nan
            res.build_seconds, res.lp_seconds = build_seconds, lp_sec
            res.heuristic_seconds, res.mip_seconds = heur_sec, out.seconds
            return res
        x = _orders(model, data)
        res = result_from_orders(data, x)
        if best_obj is not None and best_obj < res.objective - 1e-9 * abs(best_obj):
            res = result_from_orders(data, best_x)  # the solver lost the start: keep it
        bound = np.nanmax([out.bound * scale, lp_money]) if math.isfinite(
            out.bound) or math.isfinite(lp_money) else math.nan
        status = {"optimal": "optimal", "time_limit": "time_limit"}.get(out.termination,
                                                                          "feasible")
        solver_obj = out.objective * scale
        if abs(solver_obj - res.objective) > 1e-6 * max(1.0, abs(res.objective)):
            notes.append(f"solver incumbent {solver_obj:,.2f}; the returned plan costs "
                         f"{res.objective:,.2f}")
    res.bound = float(bound)
    res.lp_bound = lp_money
    res.gap = (res.objective - res.bound) / abs(res.objective) if res.objective else 0.0
    if status == "time_limit" and res.gap <= gap + 1e-12:
        status = "optimal"  # the bound proves the requested gap after all
    res.status = status
    res.start_objective = start_obj
    res.heuristic_objective = heur_obj
    res.solve_seconds = time.perf_counter() - t0
    res.mip_seconds = solver_seconds
    res.heuristic_seconds = heur_sec
    res.lp_seconds = lp_sec
    res.build_seconds = build_seconds
    notes.insert(0, f"{res.status}: cost {res.objective:,.2f}, bound {res.bound:,.2f}, gap "
                    f"{100 * res.gap:.2f}%, LP bound {lp_money:,.2f}, start "
                    + (f"{start_obj:,.2f}" if start_obj is not None else "none")
                    + (f", LP-guided plan {heur_obj:,.2f}" if heur_obj is not None else ""))
    if (not lp_coupling and (lp_bound or heuristic)) or dec is not None:
        notes.append("LP bound of the model without the period budget and warehouse rows")
    res.message = "; ".join(notes)
    return res


def _solve_direct(data, t0, notes, start_obj, **kw) -> PlanResult:
    """`solve_plan_data` through `optimizer.plan_search.matrix_plan` (direct=True)."""
    from optimizer.plan_search import matrix_plan

    out = matrix_plan(data, **kw)
    seconds = time.perf_counter() - t0
    if out.x is None:
        if out.termination == "infeasible":
            msg = ("infeasible: the LP relaxation has no solution: budget, warehouse and "
                   "floors together leave no plan (try relaxing one)"
                   if out.mip_seconds == 0 else
                   "infeasible: no single period limit explains it; budget, warehouse, MOQ "
                   "and packs together leave no plan (try relaxing one)")
            res = _empty_result("infeasible", data, msg, start_obj, out.lp_bound, seconds)
        else:
            status = "time_limit" if out.termination == "time_limit" else "error"
            res = _empty_result(status, data, f"no plan found ({out.message})", start_obj,
                                out.lp_bound, seconds)
            res.bound = out.bound
    else:
        res = result_from_orders(data, out.x)
        res.bound = out.bound
        res.gap = ((res.objective - res.bound) / abs(res.objective) if res.objective
                   else 0.0)
        status = out.termination
        if status in ("time_limit", "error") and res.gap <= kw["gap"] + 1e-12:
            status = "optimal"  # the bound proves the requested gap after all
        res.status = status
    res.lp_bound = out.lp_bound
    res.start_objective = start_obj
    res.heuristic_objective = out.heuristic_objective
    res.solve_seconds = seconds
    res.build_seconds, res.lp_seconds = out.build_seconds, out.lp_seconds
    res.heuristic_seconds, res.mip_seconds = out.heuristic_seconds, out.mip_seconds
    if out.x is not None:
        notes.insert(0, f"{res.status}: cost {res.objective:,.2f}, bound {res.bound:,.2f}, "
                        f"gap {100 * res.gap:.2f}%, LP bound {out.lp_bound:,.2f}, start "
                        + (f"{start_obj:,.2f}" if start_obj is not None else "none")
                        + (f", LP-guided plan {out.heuristic_objective:,.2f}"
                           if out.heuristic_objective is not None else ""))
        notes.append(out.message)
        if not kw["lp_coupling"] and (kw["lp_bound"] or kw["heuristic"]):
            notes.append("LP bound of the model without the period budget and warehouse rows")
        res.message = "; ".join(n for n in notes if n)
    return res


# the pricing route: chosen by `solve_plan_data(price=None)` from this many SKU-periods on
# (2,000 x 52 = 104,000; the array pipeline handles 500 x 26 = 13,000 within 1% in ~25 s),
# and its time limit when none is given
PRICE_ABOVE = 50_000
PRICE_TIME_LIMIT = 300.0


def _solve_priced(data, t0, notes, start_obj, *, time_limit, gap, start) -> PlanResult:
    """`solve_plan_data` through `optimizer.plan_price.priced_plan` (price=True)."""
    from optimizer.plan_price import priced_plan

    limit = PRICE_TIME_LIMIT if time_limit is None else float(time_limit)
    out = priced_plan(data, time_limit=max(limit - (time.perf_counter() - t0), 0.5), gap=gap,
                      start=start)
    seconds = time.perf_counter() - t0
    if out.x is None:
        res = _empty_result("time_limit" if seconds >= 0.95 * limit else "error", data,
                            f"no plan found ({out.message})", start_obj, out.bound, seconds)
        res.bound = out.bound
        return res
    res = result_from_orders(data, out.x)
    res.bound = res.lp_bound = out.bound
    res.gap = out.gap
    res.status = ("optimal" if out.gap <= gap + 1e-12 else
                  "time_limit" if seconds >= 0.95 * limit else "feasible")
    res.start_objective = start_obj
    res.heuristic_objective = out.history[0][1] if out.history else None
    res.solve_seconds = seconds
    res.lp_seconds = out.bound_seconds
    res.heuristic_seconds = seconds - out.bound_seconds
    notes.insert(0, f"{res.status}: cost {res.objective:,.2f}, bound {res.bound:,.2f} "
                    f"(Lagrangian: budgets and warehouse priced, MOQ, packs and whole trucks "
                    f"relaxed), gap {100 * res.gap:.2f}%, start "
                    + (f"{start_obj:,.2f}" if start_obj is not None else "none"))
    notes.append(out.message)
    res.message = "; ".join(n for n in notes if n)
    return res


def result_from_orders(data: LotSizingData, x: np.ndarray) -> PlanResult:
    """Tables and cost of the plan x (status "feasible", solver fields NaN)."""
    ev = evaluate(data, x)
    n, T = data.n, data.T
    L = data.lead
    ii, jj = np.nonzero(x > 0)
    arr = jj + 1 + L[ii]
    tidx = data.trucks()[0]
    share = np.zeros(ii.size)
    k = tidx[ii]
    has = k >= 0
    if has.any():
        tot = ev["load"][k[has], arr[has] - 1]
        share[has] = np.where(tot > 0, data.load[ii[has]] * x[ii[has], jj[has]] / np.where(
            tot > 0, tot, 1.0), 0.0) * ev["trucks"][k[has], arr[has] - 1]
    orders = pd.DataFrame({"sku": data.sku[ii], "supplier": data.supplier[ii],
                           "order_period": jj + 1, "arrival_period": arr,
                           "quantity": x[ii, jj], "trucks": share})
    ctrl = controllable(data)
    stock = pd.DataFrame({"sku": np.repeat(data.sku, T), "period": np.tile(np.arange(1, T + 1), n),
                          "stock": ev["net"].ravel(),
                          "floor": np.where(ctrl, data.floor[:, None], 0.0).ravel()})
    periods = pd.DataFrame({"period": np.arange(1, T + 1), "spend": ev["spend"],
                            "space": ev["space"], "trucks": ev["trucks"].sum(axis=0)
                            if len(ev["groups"]) else np.zeros(T)})
    groups = ev["groups"]
    kk, tt = np.nonzero(ev["load"] > 0) if groups else (np.array([], int), np.array([], int))
    deliveries = pd.DataFrame({"supplier": np.array(groups, dtype=object)[kk] if groups else [],
                               "period": tt + 1, "load": ev["load"][kk, tt] if groups else [],
                               "capacity": ev["tcap"][kk] if groups else [],
                               "trucks": ev["trucks"][kk, tt] if groups else []})
    return PlanResult(status="feasible", objective=ev["cost"], bound=math.nan, lp_bound=math.nan,
                      gap=math.nan, start_objective=None, solve_seconds=0.0, orders=orders,
                      stock=stock, periods=periods, deliveries=deliveries, data=data,
                      message="; ".join(ev["violations"]))


def plan(instance: Instance, horizon: int, period_days: float, forecast=None, on_hand=None,
         open_orders=None, time_limit=None, gap: float = 1e-2, strong: bool = True,
         use_start: bool = True, *, allow_backlog: bool = False, lp_bound: bool = True,
         heuristic: bool = True, lp_coupling: bool = True, solver: str = "appsi_highs",
         period_budget=None, decompose: bool = False, price: bool | None = None
         ) -> PlanResult:
    """Multi-period purchase plan of `instance` over `horizon` periods of `period_days` days.

    forecast: DataFrame (sku, period, demand) or None for the flat annual rate; on_hand: per
    SKU (array, dict or Series by sku) or None for the policy's reorder point; open_orders:
    DataFrame (sku, period, quantity) by arrival period. time_limit in seconds; gap: relative
    MIP gap to stop at; strong: facility-location formulation; use_start: warm-start from the
    repaired (R, Z) plan; allow_backlog: SKUs with a shortage cost may fall below their floor
    at that cost per unit and period; lp_bound: also solve the LP relaxation (lp_bound field);
    period_budget: purchase budget per order period, (horizon,) array, NaN = the scenario's
    `[budget] period_limit`; heuristic: run the LP-guided restricted MIP first;
    decompose: the supplier decomposition instead of the LP and LP-guided stages; price:
    the pricing route for large instances (None: chosen by size; see `solve_plan_data`).
    """
    data, pol = build_plan_data(instance, horizon, period_days, forecast=forecast,
                                on_hand=on_hand, open_orders=open_orders,
                                allow_backlog=allow_backlog, period_budget=period_budget)
    start = rz_start(data, pol.order_quantity, pol.reorder_point) if use_start else None
    return solve_plan_data(data, time_limit=time_limit, gap=gap, strong=strong, start=start,
                           lp_bound=lp_bound, heuristic=heuristic, lp_coupling=lp_coupling,
                           solver=solver, decompose=decompose, price=price)


# ----------------------------------------------------------------------------- checks, JSON

def check_plan(data: LotSizingData, result: PlanResult) -> list[str]:
    """Re-check a result against the data: balances (the stock table equals the stock the
    orders imply), floors, budget, warehouse, trucks covering every delivery's load, MOQ,
    packs, orders inside the horizon, and the reported cost. Returns the violations."""
    if result.status == "infeasible" or len(result.orders) == 0 and math.isnan(result.objective):
        return []
    n, T = data.n, data.T
    pos = {s: i for i, s in enumerate(data.sku)}
    x = np.zeros((n, T))
    v = []
    o = result.orders
    for s, t, a, q in zip(o["sku"], o["order_period"], o["arrival_period"], o["quantity"]):
        i = pos[s]
        if a != t + data.lead[i]:
            v.append(f"arrival: {s} ordered in {t} arrives in {a}, lead time {data.lead[i]}")
        if not 1 <= t <= T:
            v.append(f"order period {t} outside 1..{T}")
            continue
        x[i, t - 1] += q
    ev = evaluate(data, x)
    v += ev["violations"]
    st = result.stock
    got = np.full((n, T), np.nan)
    got[[pos[s] for s in st["sku"]], st["period"].to_numpy(int) - 1] = st["stock"].to_numpy(float)
    bad = ~np.isclose(got, ev["net"], rtol=1e-6, atol=1e-5)
    for i, j in zip(*np.nonzero(bad)):
        v.append(f"balance: {data.sku[i]} period {j + 1} reports {got[i, j]:.6g}, orders imply "
                 f"{ev['net'][i, j]:.6g}")
    d = result.deliveries
    if len(ev["groups"]):
        have = np.zeros_like(ev["load"])
        gpos = {g: k for k, g in enumerate(ev["groups"])}
        for s, t, k in zip(d.get("supplier", []), d.get("period", []), d.get("trucks", [])):
            have[gpos[s], int(t) - 1] += k
        short = ev["load"] > have * ev["tcap"][:, None] * (1 + 1e-7) + 1e-6
        for k, j in zip(*np.nonzero(short)):
            v.append(f"trucks: {ev['groups'][k]} period {j + 1} load {ev['load'][k, j]:.6g} > "
                     f"{have[k, j]:g} trucks x {ev['tcap'][k]:g}")
        if abs(result.orders["trucks"].sum() - have.sum()) > 1e-6 * max(1.0, have.sum()):
            v.append("trucks attributed to orders do not sum to the deliveries' trucks")
    if np.isfinite(result.objective) and abs(result.objective - ev["cost"]) > 1e-6 * max(
            1.0, abs(ev["cost"])):
        v.append(f"cost: reported {result.objective:.6g}, plan costs {ev['cost']:.6g}")
    return v


def plan_to_json(result: PlanResult) -> dict:
    """JSON-ready dict: status, objective, bound, lp_bound, gap, start_objective, message,
    orders, stock, periods (lists of records; NaN becomes None)."""
    def num(v):
        return None if v is None or (isinstance(v, float) and not math.isfinite(v)) else float(v)

    def recs(df, cols, ints):
        out = []
        for row in df[cols].itertuples(index=False):
            out.append({c: (int(v) if c in ints else (str(v) if c in ("sku", "supplier")
                                                       else num(float(v))))
                        for c, v in zip(cols, row)})
        return out

    return {
        "status": result.status, "objective": num(result.objective), "bound": num(result.bound),
        "lp_bound": num(result.lp_bound), "gap": num(result.gap),
        "start_objective": num(result.start_objective), "message": result.message,
        "orders": recs(result.orders, ["sku", "supplier", "order_period", "arrival_period",
                                       "quantity", "trucks"], {"order_period", "arrival_period"}),
        "stock": recs(result.stock, ["sku", "period", "stock", "floor"], {"period"}),
        "periods": recs(result.periods, ["period", "spend", "space", "trucks"], {"period"}),
    }
