"""Multi-period purchase plan: the lot-sizing MIP against exact references.

References written here, independent of the model: a Wagner-Whitin O(T^2) dynamic programme
(single SKU, uncapacitated), a DP over integer stock levels (single SKU, budget per period as an
order capacity, MOQ), and brute-force enumeration of small integer grids (2-3 SKUs sharing
trucks, MOQ, packs, budget, space). Every plan is re-checked with `check_plan`.
"""

import itertools
import json
import math

import numpy as np
import pandas as pd
import pytest

from builders import make_instance
from formulations.lot_sizing import LotSizingData, build_lot_sizing
from optimizer.instance import Budget, Scenario, VehicleSpec, Vehicles, Warehouse
from optimizer.plan import (check_plan, lot_sizing_lp_bounds, plan, plan_to_json, rz_start,
                            solve_plan_data)

EXACT = 1e-9


def _solve(data, **kw):
    kw.setdefault("gap", EXACT)
    kw.setdefault("lp_bound", False)
    res = solve_plan_data(data, **kw)
    if res.status != "infeasible":
        assert check_plan(data, res) == []
    return res


# --------------------------------------------------------------------------- Wagner-Whitin

def wagner_whitin(d, L, s0, floor, K, h):
    """Minimum ordering + holding cost, single SKU, no limits. Orders arrive L periods after
    they are placed; stock must stay >= floor from period L + 1 on; stock before is data."""
    T = len(d)
    base = s0 + np.cumsum(d * -1.0)  # net stock without plan orders
    const = h * sum(max(base[t], 0.0) for t in range(L))
    # cumulative requirement (never decreasing) orders must have delivered by period tau
    req = np.zeros(T + 1)
    for tau in range(1, T + 1):
        need = max(floor - base[tau - 1], 0.0) if tau > L else 0.0
        req[tau] = max(req[tau - 1], need)
    F = np.full(T + 1, math.inf)
    F[L] = 0.0  # F[c]: best cost of periods L+1..c having delivered exactly req[c]
    for c in range(L, T):
        if not math.isfinite(F[c]):
            continue
        if req[c + 1] == req[c]:  # period c+1 without a delivery
            F[c + 1] = min(F[c + 1], F[c] + h * (base[c] + req[c]))
        for b in range(c + 1, T + 1):  # a delivery in c+1 covering through b
            hold = sum(h * (base[tau - 1] + req[b]) for tau in range(c + 1, b + 1))
            F[b] = min(F[b], F[c] + K + hold)
    return F[T] + const


def _single(d, L, s0, floor, K, h, **kw):
    T = len(d)
    return LotSizingData(sku=["A"], supplier=["S"], demand=[d], lead=[L], on_hand=[s0],
                         floor=[floor], unit_cost=[1.0], ordering_cost=[K], holding_cost=[h],
                         **kw)


@pytest.mark.parametrize("seed", range(8))
def test_uncapacitated_single_sku_equals_wagner_whitin(seed):
    rng = np.random.default_rng(seed)
    T = int(rng.integers(5, 10))
    d = rng.integers(0, 30, T).astype(float)
    L = int(rng.integers(0, 3))
    s0 = float(rng.integers(0, 40))
    floor = float(rng.choice([0.0, 5.0, 12.0]))
    K, h = float(rng.uniform(20, 120)), float(rng.uniform(0.5, 3.0))
    ref = wagner_whitin(d, L, s0, floor, K, h)
    for strong in (True, False):
        res = _solve(_single(d, L, s0, floor, K, h), strong=strong)
        assert res.status == "optimal"
        assert res.objective == pytest.approx(ref, rel=1e-7, abs=1e-6)


# --------------------------------------------------------------------------- capacity DP

def capacity_dp(d, L, s0, floor, K, h, cap, moq):
    """Single SKU, integer orders in {0} U [moq, cap_t] per order period (cap from the budget),
    DP over integer end-of-period stock levels."""
    T = len(d)
    base = s0 + np.cumsum(-np.asarray(d, float))
    const = h * sum(max(base[t], 0.0) for t in range(L))
    top = int(s0 + sum(d) + floor + max(cap) + 1)
    start = int(base[L - 1]) if L > 0 else int(s0)
    best = {start: 0.0}  # net stock at end of period L -> cost
    for a in range(L + 1, T + 1):  # arrival period; its order was placed in a - L
        qmax = int(cap[a - L - 1])
        nxt = {}
        for s, c in best.items():
            for q in [0] + list(range(max(int(moq), 1), qmax + 1)):
                s2 = s + q - int(d[a - 1])
                if s2 < floor or s2 > top:
                    continue
                c2 = c + (K if q else 0.0) + h * s2
                if c2 < nxt.get(s2, math.inf):
                    nxt[s2] = c2
        best = nxt
    return (min(best.values()) + const) if best else math.inf


@pytest.mark.parametrize("seed", range(6))
def test_single_sku_budget_capacity_equals_stock_dp(seed):
    rng = np.random.default_rng(100 + seed)
    T = 7
    d = rng.integers(0, 9, T).astype(float)
    L = int(rng.integers(0, 2))
    s0 = float(rng.integers(4, 10))
    floor = float(rng.integers(0, 4))
    K, h = float(rng.uniform(10, 40)), float(rng.uniform(0.5, 2.0))
    unit_cost = 2.0
    budget = rng.integers(12, 24, T).astype(float)  # caps orders at 6..11 units
    moq = float(rng.choice([0.0, 3.0, 5.0]))
    cap = np.floor(budget / unit_cost)
    ref = capacity_dp(d, L, s0, floor, K, h, cap, moq)
    data = LotSizingData(sku=["A"], supplier=["S"], demand=[d], lead=[L], on_hand=[s0],
                         floor=[floor], unit_cost=[unit_cost], ordering_cost=[K],
                         holding_cost=[h], moq=[moq], multiple=[1.0], budget=budget)
    for strong in (True, False):
        res = _solve(data, strong=strong)
        if math.isinf(ref):
            assert res.status == "infeasible"
        else:
            assert res.status == "optimal"
            assert res.objective == pytest.approx(ref, rel=1e-7, abs=1e-6)


# --------------------------------------------------------------------------- brute force

def brute_force(data: LotSizingData, grid: list[np.ndarray]):
    """Enumerate every plan with order quantities of SKU i in grid[i] (lead time 0); price it
    with the rules written out here (ordering, holding, ceil(load / cap) trucks per supplier
    and period, budget, warehouse, floors, MOQ)."""
    n, T = data.n, data.T
    suppliers = sorted(set(data.supplier))
    per_sku = []
    for i in range(n):
        seqs = []
        for q in itertools.product(grid[i], repeat=T):
            q = np.array(q, float)
            if ((q > 0) & (q < data.moq[i])).any():
                continue
            stock = data.on_hand[i] + np.cumsum(q - data.demand[i])
            if (stock < data.floor[i] - 1e-9).any():
                continue
            cost = data.ordering_cost[i] * (q > 0).sum() + data.holding_cost[i] * stock.sum()
            seqs.append((q, stock, cost))
        per_sku.append(seqs)
    # every combination of the head SKUs' sequences in a loop; the last (up to) two SKUs'
    # sequence pairs at once as arrays (same rules, checked per combination)
    h = max(n - 2, 0)
    tail = per_sku[h:]
    grids = np.meshgrid(*[np.arange(len(t)) for t in tail], indexing="ij")
    picks = [g.ravel() for g in grids]
    tq = np.stack([np.array([c[0] for c in t]).reshape(-1, T)[p] for t, p in zip(tail, picks)],
                  axis=1)  # (M, n_tail, T)
    ts = np.stack([np.array([c[1] for c in t]).reshape(-1, T)[p] for t, p in zip(tail, picks)],
                  axis=1)
    tc = sum(np.array([c[2] for c in t])[p] for t, p in zip(tail, picks))
    best = math.inf
    for combo in itertools.product(*per_sku[:h]):
        q = np.concatenate([np.array([c[0] for c in combo]).reshape(-1, T)[None].repeat(
            len(tc), axis=0), tq], axis=1)  # (M, n, T)
        stock = np.concatenate([np.array([c[1] for c in combo]).reshape(-1, T)[None].repeat(
            len(tc), axis=0), ts], axis=1)
        ok = np.all(np.einsum("i,mit->mt", data.unit_cost, q) <= data.budget + 1e-9, axis=1)
        if data.warehouse is not None:
            ok &= np.all(np.einsum("i,mit->mt", data.unit_volume, stock)
                         <= data.warehouse + 1e-9, axis=1)
        cost = sum(c[2] for c in combo) + tc
        for k in suppliers:
            w = np.where(data.supplier == k, data.load, 0.0)
            load = np.einsum("i,mit->mt", w, q)
            cost = cost + data.truck_cost[k] * np.ceil(load / data.truck_capacity[k] - 1e-9).sum(
                axis=1)
        if ok.any():
            best = min(best, float(cost[ok].min()))
    return best


def _multi(n, seed, T=3):
    rng = np.random.default_rng(seed)
    return dict(
        sku=[f"S{i}" for i in range(n)], supplier=(["A", "A", "B"])[:n],
        demand=rng.integers(0, 8, (n, T)).astype(float), lead=[0] * n,
        on_hand=rng.integers(0, 6, n).astype(float), floor=rng.choice([0.0, 2.0], n),
        unit_cost=rng.uniform(1, 4, n).round(1), ordering_cost=rng.uniform(5, 30, n).round(1),
        holding_cost=rng.uniform(0.5, 2.5, n).round(2), moq=rng.choice([0.0, 4.0, 6.0], n),
        multiple=[2.0] * n, unit_volume=rng.uniform(0.5, 1.5, n).round(2),
        load=rng.uniform(1, 3, n).round(1), truck_capacity={"A": 12.0, "B": 10.0},
        truck_cost={"A": float(rng.uniform(10, 40)), "B": float(rng.uniform(10, 40))})


@pytest.mark.parametrize("n,seed", [(2, 0), (2, 1), (2, 2), (2, 3), (3, 4), (3, 5)])
def test_multi_sku_shared_trucks_equals_brute_force(n, seed):
    kw = _multi(n, seed, T=3 if n == 2 else 2)  # three SKUs over two periods keep it small
    loose = LotSizingData(**kw)
    top = [float(loose.demand[i].sum() + loose.floor[i] + 8) for i in range(n)]
    grid = [np.arange(0, t + 1, 2.0) for t in top]
    # a budget and a warehouse that cut into the unconstrained plan
    spend = float(np.max(loose.unit_cost @ np.vstack([loose.demand.sum(axis=1)] * 3).T) * 0.6)
    space = float(loose.unit_volume @ (loose.floor + loose.demand.max(axis=1)) * 1.2)
    for budget, warehouse in ((None, None), (spend, space)):
        data = LotSizingData(**kw, budget=budget, warehouse=warehouse)
        ref = brute_force(data, grid)
        for strong in (True, False):
            res = _solve(data, strong=strong)
            if math.isinf(ref):
                assert res.status == "infeasible"
            else:
                assert res.status == "optimal", res.message
                assert res.objective == pytest.approx(ref, rel=1e-7, abs=1e-6)


# --------------------------------------------------------------------------- LP bounds

def test_strong_lp_bound_at_least_plain_and_below_optimum():
    rng = np.random.default_rng(7)
    stricter = 0
    for _ in range(5):
        n, T = 4, 10
        data = LotSizingData(
            sku=[f"S{i}" for i in range(n)], supplier=["A"] * n,
            demand=rng.integers(5, 40, (n, T)).astype(float), lead=rng.integers(0, 3, n),
            on_hand=rng.integers(0, 30, n).astype(float), floor=rng.integers(0, 10, n),
            unit_cost=rng.uniform(1, 10, n), ordering_cost=rng.uniform(50, 300, n),
            holding_cost=rng.uniform(0.2, 2, n), moq=rng.choice([0.0, 20.0], n),
            unit_volume=rng.uniform(0.1, 1, n), load=rng.uniform(1, 3, n),
            truck_capacity={"A": 150.0}, truck_cost={"A": 60.0}, budget=1500.0)
        lp = lot_sizing_lp_bounds(data)
        if not math.isfinite(lp["plain"]):  # a draw whose budget admits no plan
            assert _solve(data).status == "infeasible"
            continue
        res = _solve(data)
        assert lp["strong"] >= lp["plain"] - 1e-6
        assert lp["strong"] <= res.objective + 1e-6
        stricter += lp["strong"] > lp["plain"] * 1.01
    assert stricter >= 3


# --------------------------------------------------------------------------- diagnosis

def test_infeasible_budget_reports_the_period():
    # by period 5 the SKU needs 80 + 5 - 15 = 70 units ordered in periods 1..4: 4 x 15 = 60
    d = np.array([10.0, 10, 10, 10, 40, 40])
    data = _single(d, 1, 15.0, 5.0, 50.0, 1.0, budget=15.0)
    res = _solve(data)
    assert res.status == "infeasible"
    assert "budget in period 4" in res.message and "short by" in res.message
    assert check_plan(data, res) == []


def test_infeasible_warehouse_reports_the_period():
    data = LotSizingData(sku=["A", "B"], supplier=["S", "S"], demand=np.full((2, 4), 5.0),
                         lead=[0, 2], on_hand=[10.0, 40.0], floor=[20.0, 0.0],
                         unit_cost=[1.0, 1.0], ordering_cost=[10.0, 10.0],
                         holding_cost=[1.0, 1.0], unit_volume=[1.0, 1.0], warehouse=50.0)
    res = _solve(data)
    assert res.status == "infeasible"
    assert "warehouse in period 1" in res.message


def test_backlog_lets_a_short_budget_plan():
    d = np.array([10.0, 10, 10, 10, 40, 40])
    data = _single(d, 1, 15.0, 5.0, 50.0, 1.0, budget=15.0, shortage_cost=[20.0])
    res = _solve(data)
    assert res.status == "optimal"
    assert (res.stock["stock"] < 0).any()
    assert res.periods["spend"].max() <= 15.0 + 1e-6


# --------------------------------------------------------------------------- plan() end to end

def _scenario(period_limit=None, warehouse=None):
    return Scenario(budget=Budget(period_limit=period_limit) if period_limit else None,
                    warehouse=Warehouse(capacity=warehouse) if warehouse else None,
                    vehicles=Vehicles(default=VehicleSpec(capacity=2000.0, cost=150.0),
                                      by_supplier={"S2": VehicleSpec(capacity=3.0, measure="volume",
                                                                     cost=90.0)}))


def _instance(scenario):
    return make_instance([5200, 2600, 900, 12000], [120, 80, 40, 200], [2.0, 4.0, 1.0, 0.5],
                         unit_cost=[10, 20, 5, 2], demand_sd=[900, 500, 200, 2500],
                         lead_time_days=[10, 20, 3, 35], moq=[0, 100, 50, 500],
                         order_multiple=[0, 10, 0, 50], unit_volume=[0.01, 0.02, 0.005, 0.002],
                         unit_weight=[2.0, 5.0, 1.0, 0.4], cycle_service=0.95,
                         supplier=["S1", "S1", "S2", "S2"], scenario=scenario)


def test_plan_end_to_end_with_limits_and_json():
    inst = _instance(_scenario(period_limit=9000.0, warehouse=60.0))
    res = plan(inst, 13, 7.0)
    assert res.status == "optimal"
    assert res.gap <= 1e-2 + 1e-9
    assert res.lp_bound <= res.bound + 1e-6 <= res.objective + 1e-3
    assert check_plan(res.data, res) == []
    assert res.start_objective is None or res.start_objective >= res.objective - 1e-6
    assert (res.periods["spend"] <= 9000.0 + 1e-6).all()
    assert (res.periods["space"] <= 60.0 + 1e-6).all()
    assert (res.orders["arrival_period"] - res.orders["order_period"]).isin([1, 2, 3, 5]).all()
    doc = plan_to_json(res)
    json.dumps(doc)
    assert set(doc) >= {"status", "objective", "bound", "lp_bound", "gap", "start_objective",
                        "orders", "stock", "periods"}
    assert set(doc["orders"][0]) == {"sku", "supplier", "order_period", "arrival_period",
                                     "quantity", "trucks"}
    assert set(doc["stock"][0]) == {"sku", "period", "stock", "floor"}
    assert set(doc["periods"][0]) == {"period", "spend", "space", "trucks"}


def test_start_cold_and_warm_agree_and_start_is_feasible():
    inst = _instance(_scenario())
    warm = plan(inst, 10, 7.0, gap=EXACT, lp_bound=False)
    cold = plan(inst, 10, 7.0, gap=EXACT, lp_bound=False, use_start=False, strong=False)
    assert warm.status == cold.status == "optimal"
    assert warm.objective == pytest.approx(cold.objective, rel=1e-6)
    assert warm.start_objective is not None and warm.start_objective >= warm.objective - 1e-6
    for r in (warm, cold):
        assert check_plan(r.data, r) == []


def test_forecast_on_hand_and_open_orders_are_used():
    inst = _instance(_scenario())
    fc = pd.DataFrame({"sku": ["SKU1"] * 6, "period": range(1, 7), "demand": [0, 0, 0, 0, 0, 500]})
    oo = pd.DataFrame({"sku": ["SKU2"], "period": [2], "quantity": [400.0]})
    res = plan(inst, 6, 7.0, forecast=fc, on_hand={"SKU1": 0.0, "SKU2": 10.0},
               open_orders=oo, gap=EXACT)
    data = res.data
    assert data.demand[0].tolist() == [0, 0, 0, 0, 0, 500]
    assert data.on_hand[0] == 0.0 and data.on_hand[1] == 10.0 and data.on_hand[2] == 0.0
    assert data.arrivals[1, 1] == 400.0
    assert check_plan(data, res) == []
    # SKU1 orders exactly what period 6 needs above the floor, in one delivery
    o = res.orders[res.orders["sku"] == "SKU1"]
    assert len(o) == 1 and o["quantity"].iloc[0] == pytest.approx(500 + data.floor[0])
    with pytest.raises(ValueError):
        plan(inst, 6, 7.0, forecast=pd.DataFrame({"sku": ["nope"], "period": [1], "demand": [1.0]}))


def test_rz_start_meets_floors_and_packs():
    inst = _instance(_scenario())
    from optimizer.plan import build_plan_data, evaluate

    data, pol = build_plan_data(inst, 26, 7.0)
    x = rz_start(data, pol.order_quantity, pol.reorder_point)
    assert evaluate(data, x)["violations"] == []
    m = build_lot_sizing(data)
    assert {c.name for c in m.component_objects()} >= {
        "balance", "floor", "moq", "setup", "budget", "warehouse", "trucks", "fl_cover"}
