"""Lagrangian bound of the purchase plan: period budgets and warehouse priced, every SKU's
plan a Wagner-Whitin shortest path.

Relaxation. Drop from the lot-sizing MIP (`formulations.lot_sizing`) the MOQ, the packs,
the budget cap on an order and the integrality of the trucks (a truck's cost spread over its
capacity: tcost_k / cap_k per unit of load, never more than the whole trucks cost), and move
the period budgets and the warehouse into the objective with prices lambda_t >= 0 (per
currency unit spent in order period t) and mu_t >= 0 (per volume unit in stock at the end of
period t). What is left falls apart into one uncapacitated single-item problem per SKU:

    min  sum_t K_i y_it + p_it x_it + hh_it s_it    (stock above its floor, orders arrive
                                                     L_i periods later)
    p_it  = lambda_t c_i + tcost_k load_i / cap_k   (unit cost of an order placed in t)
    hh_it = h_i + mu_t vol_i                        (holding in period t)

whose optimum has the zero-inventory property, so a shortest path over arrival periods
(Wagner and Whitin 1958) solves it exactly. With N_i(t) the cumulative net requirement
(`formulations.lot_sizing.requirements`) an order arriving in period a that covers the
requirements of periods a..k-1 costs

    K_i + (p_i,a-L - HH_i(a)) (C_i(k) - C_i(a)) + G_i(k) - G_i(a)

with C_i(k) = sum_{tau<k} dn_i,tau (requirement before k), HH_i(a) = sum_{s<a} hh_is and
G_i(k) = sum_{tau<k} dn_i,tau HH_i(tau): all SKUs at once, O(T^2) numpy operations on (n,)
arrays. The stock every plan carries anyway (base + N, and the stock the plan cannot reach
before the first arrival) adds a constant per SKU.

For any prices the Lagrangian function

    L(lambda, mu) = sum_i [ WW_i(lambda, mu) + const_i(mu) ] - lambda.B - mu.W

is a lower bound on the cost of every plan that meets all the rules (weak duality: the
dropped rows only enlarge the feasible set, the priced rows add a non-positive term to any
plan within the limits). Its maximum over the prices equals the LP bound of the strong
(facility-location) model without the MOQ, pack and trucks >= y rows, since the facility-
location LP describes the convex hull of each uncapacitated single-item problem (Krarup and
Bilde 1977). The prices come from column generation (Dantzig-Wolfe; `column_generation`):
a restricted master LP picks a convex combination of known plans per SKU under the budget
and warehouse rows, its duals are the next prices, the shortest paths at those prices are
the next columns. The bound reported is the best L found, proven at any iteration; the
master's value is an upper estimate of the best L. SKUs that may back-order add only their
fixed stock's holding (their other costs are >= 0), a weak but valid term.

Each term of L may be replaced by any other lower bound of the same SKU's priced problem:
`sku_lp_values` solves, per SKU, the LP relaxation of its strong model with its MOQ row
(packs continuous, back-orders allowed where the SKU may back-order), which is above the
shortest path where the MOQ binds (2,000 x 52 below: +77,194 from 1,033 SKUs, ~25 ms each).

Measured (2 cores, load 1.5-3): 500 x 26 benchmark instance, L = 1,914,981 at zero prices
(the master LP meets both limits at 1,914,999: the limits hardly bind once MOQ and packs
are relaxed) against the strong model's LP bound 1,929,056 (with MOQ rows); 2,000 x 52,
16,014,927 at zero prices in 0.5 s, 16,018,507 after 11 rounds (53 s; each master LP
3-5 s), against 14,660,912 for the plain model's LP (77 s).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from formulations.lot_sizing import (LotSizingData, base_net_stock, controllable,
                                     requirements, round_up)


class SingleItemPaths:
    """The per-SKU shortest-path problems of one instance; `solve(lambda, mu)` gives
    (value of the Lagrangian function, order quantities x (n, T), spend (T,), space (T,))."""

    def __init__(self, data: LotSizingData):
        n, T = data.n, data.T
        self.data = data
        cum, dn = requirements(data)
        hard = ~data.backlog
        self.hard = hard
        self.dn = np.where(hard[:, None], dn, 0.0)
        # C[:, k] = requirement of the periods before k (arrival-period index 0..T)
        self.C = np.concatenate([np.zeros((n, 1)), np.cumsum(self.dn, axis=1)], axis=1)
        tidx, tcap, tcost, _ = data.trucks()
        per_load = np.where(tidx >= 0, (tcost / tcap)[np.maximum(tidx, 0)] if tcap.size else 0.0,
                            0.0)
        self.truck_unit = per_load * data.load  # a truck's cost per unit of the SKU
        base = base_net_stock(data)
        ctrl = controllable(data)
        # stock every plan carries: in reachable periods base + N (>= floor >= 0), else the
        # stock on hand that no order can change; SKUs that may back-order: only the latter
        self.fixed_on = np.where(ctrl, np.where(hard[:, None], base + cum, 0.0),
                                 np.maximum(base, 0.0))
        self.lead = data.lead
        # arrival period a is reachable by an order placed in a - L >= 0
        self.a = np.arange(T)
        self.reach = self.a[None, :] >= self.lead[:, None]
        self.src = np.clip(self.a[None, :] - self.lead[:, None], 0, T - 1)
        self.B = np.where(np.isfinite(data.budget), data.budget, 0.0)
        self.W = np.where(np.isfinite(data.space_limit), data.space_limit, 0.0)
        self.has_b = np.isfinite(data.budget)
        self.has_w = np.isfinite(data.space_limit) & (data.unit_volume > 0).any()

    def solve(self, lam: np.ndarray, mu: np.ndarray):
        """(L(lambda, mu), x (n, T), spend (T,), space (T,)) at the prices."""
        per_sku, x, spend, space = self.priced(lam, mu)
        return float(per_sku.sum() - lam @ self.B - mu @ self.W), x, spend, space

    def priced(self, lam: np.ndarray, mu: np.ndarray, packs: bool = False):
        """(per-SKU minimum of cost + lambda.spend + mu.space (n,), the plans x (n, T),
        spend (T,), space (T,)). packs=True: a heuristic instead, each order priced at
        the quantity it would really be (raised to MOQ and packs, the surplus held through
        the periods it covers), so that SKUs with a large MOQ order less often; its plans
        (the requirements each order covers, before `round_to_packs`) are candidates,
        its values no bound."""
        d = self.data
        n, T = d.n, d.T
        rows = np.arange(n)
        hh = d.holding_cost[:, None] + mu[None, :] * d.unit_volume[:, None]  # (n, T)
        HH = np.concatenate([np.zeros((n, 1)), np.cumsum(hh, axis=1)], axis=1)  # (n, T+1)
        G = np.concatenate([np.zeros((n, 1)), np.cumsum(self.dn * HH[:, :T], axis=1)], axis=1)
        p = lam[self.src] * d.unit_cost[:, None] + self.truck_unit[:, None]  # by arrival
        coef = np.where(self.reach, p - HH[:, :T], np.nan)  # (n, T) by arrival period
        K = d.ordering_cost
        F = np.zeros((n, T + 1))
        arg = np.full((n, T + 1), -1)  # arrival of the order covering up to k; -1: none
        C, dn = self.C, self.dn
        moq, mult = d.moq_eff, d.multiple
        for k in range(1, T + 1):
            # orders arriving in a = 0..k-1 cover requirements a..k-1
            D = C[:, k:k + 1] - C[:, :k]
            cand = F[:, :k] + K[:, None] + coef[:, :k] * D + G[:, k:k + 1] - G[:, :k]
            if packs:
                Q = np.where(D > 1e-9, round_up(np.maximum(D, moq[:, None]), mult[:, None]), 0.0)
                cand = cand + (Q - D) * (p[:, :k] + HH[:, k:k + 1] - HH[:, :k])
            cand = np.where(self.reach[:, :k], cand, np.inf)
            j = np.argmin(cand, axis=1)
            best = cand[rows, j]
            carry = dn[:, k - 1] <= 1e-12  # nothing needed in k-1: no order required
            use_carry = carry & (F[:, k - 1] <= best)
            F[:, k] = np.where(use_carry, F[:, k - 1], best)
            arg[:, k] = np.where(use_carry, -1, j)
        # trace the paths back, all SKUs at once
        x = np.zeros((n, T))
        k = np.full(n, T)
        while True:
            live = k > 0
            if not live.any():
                break
            a = np.where(live, arg[rows, np.maximum(k, 0)], -1)
            order = live & (a >= 0)
            q = np.where(order, C[rows, np.maximum(k, 0)] - C[rows, np.maximum(a, 0)], 0.0)
            o = rows[order]
            x[o, a[order] - self.lead[order]] += q[order]
            k = np.where(order, a, np.where(live, k - 1, 0))
        x[x < 1e-12] = 0.0
        const = (hh * self.fixed_on).sum(axis=1)
        spend = d.unit_cost @ x
        arrive = np.zeros((n, T))
        ok = self.reach
        arrive[ok] = x[np.nonzero(ok)[0], self.src[ok]]
        net = base_net_stock(d) + np.cumsum(arrive, axis=1)
        space = d.unit_volume @ np.maximum(net, 0.0)
        return F[:, T] + const, x, spend, space


def sku_columns(paths: SingleItemPaths, idx: np.ndarray, x: np.ndarray):
    """Cost (m,) and per-period spend and space (m, T) of plans x (m, T) of SKUs idx (m,),
    each SKU on its own: ordering + holding + shortfall + trucks at their cost per unit of
    load."""
    d = paths.data
    T = d.T
    lead = d.lead[idx]
    a = np.arange(T)[None, :]
    src = a - lead[:, None]
    ok = src >= 0
    arrive = np.zeros_like(x)
    arrive[ok] = x[np.nonzero(ok)[0], src[ok]]
    net = base_net_stock(d)[idx] + np.cumsum(arrive, axis=1)
    on = np.maximum(net, 0.0)
    cost = (d.ordering_cost[idx] * (x > 1e-6).sum(axis=1) + d.holding_cost[idx] * on.sum(axis=1)
            + paths.truck_unit[idx] * x.sum(axis=1))
    back = d.backlog[idx]
    if back.any():  # shortfall below the floor of SKUs that may back-order, at its price
        short = np.where(controllable(d)[idx] & back[:, None],
                         np.maximum(d.floor[idx, None] - net, 0.0), 0.0)
        cost = cost + np.nan_to_num(d.shortage_cost[idx]) * short.sum(axis=1)
    return cost, d.unit_cost[idx, None] * x, d.unit_volume[idx, None] * on


def round_to_packs(data: LotSizingData, x: np.ndarray, idx=None) -> np.ndarray:
    """The plans x (m, T) of SKUs `idx` (default: all) with every order raised to the MOQ and whole packs, keeping its
    order periods: each order tops the cumulative quantity up to what x had ordered by then
    (skipped when earlier round-ups already cover it), so stock never falls below that of x
    (floors stay met)."""
    n, T = x.shape
    idx = np.arange(n) if idx is None else idx
    moq, mult = data.moq_eff[idx], data.multiple[idx]
    got = np.zeros(n)
    want = np.cumsum(x, axis=1)
    out = np.zeros_like(x)
    for t in range(T):
        short = want[:, t] - got
        q = np.where((x[:, t] > 1e-9) & (short > 1e-9),
                     round_up(np.maximum(short, moq), mult), 0.0)
        out[:, t] = q
        got += q
    return out


@dataclass
class ColumnBound:
    """Outcome of `column_generation`. bound: best Lagrangian value (money, valid lower
    bound); master: value of the last restricted master LP (money; an upper estimate of the
    best bound); price_budget, price_space (T,); columns: list of (sku index (m,), plans
    (m, T)) added; iterations; seconds; history: (seconds, bound, master) per iteration;
    x_lp: per SKU the plan of its largest weight in the last master LP (n, T)."""

    bound: float
    master: float
    price_budget: np.ndarray
    price_space: np.ndarray
    sku: np.ndarray
    plans: np.ndarray
    cost: np.ndarray
    spend: np.ndarray
    space: np.ndarray
    weight: np.ndarray
    iterations: int
    seconds: float
    history: list = field(default_factory=list)
    master_lp: object = field(default=None, repr=False)  # the `_Master` (its HiGHS instance)


class _Master:
    """Restricted master LP over per-SKU columns (Dantzig-Wolfe): choose a convex
    combination of plans per SKU with the period budgets and warehouse as rows, each with
    a slack at a penalty price (so the LP always has a solution); money / money_scale."""

    def __init__(self, paths: SingleItemPaths, penalty: tuple[float, float]):
        import highspy

        from optimizer.plan_matrix import _quiet_highs

        d = paths.data
        self.paths, self.n, self.T = paths, d.n, d.T
        self.scale = float(d.money_scale)
        self.bud = np.flatnonzero(paths.has_b)
        self.wh = np.flatnonzero(paths.has_w)
        h = _quiet_highs()
        inf = highspy.kHighsInf
        n = d.n
        lo = np.concatenate([np.ones(n), np.full(self.bud.size + self.wh.size, -inf)])
        up = np.concatenate([np.ones(n), paths.B[self.bud] / self.scale, paths.W[self.wh]])
        h.addRows(lo.size, lo, up, 0, np.zeros(0, np.int32), np.zeros(0, np.int32),
                  np.zeros(0))
        # slacks: money over a budget, volume over the warehouse
        k = self.bud.size + self.wh.size
        cost = np.concatenate([np.full(self.bud.size, penalty[0]),
                               np.full(self.wh.size, penalty[1] / self.scale)])
        rows = np.arange(n, n + k, dtype=np.int32)
        h.addCols(k, cost, np.zeros(k), np.full(k, inf), k, np.arange(k, dtype=np.int32), rows,
                  np.full(k, -1.0))
        h.setOptionValue("solver", "simplex")
        self.h = h
        self.n_slack = k
        self.sku, self.plans, self.cost, self.spend, self.space = [], [], [], [], []

    def add(self, idx: np.ndarray, x: np.ndarray) -> None:
        if not idx.size:
            return
        cost, spend, space = sku_columns(self.paths, idx, x)
        m = idx.size
        nb, nw = self.bud.size, self.wh.size
        # column j: convexity row idx[j], budget rows (spend / scale), warehouse rows (space)
        vals = np.concatenate([np.ones((m, 1)), spend[:, self.bud] / self.scale,
                               space[:, self.wh]], axis=1)
        rws = np.concatenate([idx[:, None], np.broadcast_to(self.n + np.arange(nb), (m, nb)),
                              np.broadcast_to(self.n + nb + np.arange(nw), (m, nw))], axis=1)
        keep = vals != 0
        keep[:, 0] = True
        counts = keep.sum(axis=1)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32)
        self.h.addCols(m, cost / self.scale, np.zeros(m), np.full(m, 1.0), int(counts.sum()),
                       starts, rws[keep].astype(np.int32), vals[keep])
        self.sku.append(idx), self.plans.append(x), self.cost.append(cost)
        self.spend.append(spend), self.space.append(space)

    def solve(self, time_limit: float | None = None):
        """(master value in money, lambda (T,), mu (T,), sigma (n,) convexity duals in
        money, column weights); `time_limit` seconds for the simplex (prices from an LP
        stopped early still give a valid Lagrangian bound)."""
        # HiGHS measures its limit on the instance's run clock, which adds up over runs
        self.h.setOptionValue("time_limit", self.h.getRunTime() + max(time_limit, 0.1)
                              if time_limit is not None else math.inf)
        self.h.run()
        sol = self.h.getSolution()
        dual = np.asarray(sol.row_dual)
        lam, mu = np.zeros(self.T), np.zeros(self.T)
        nb = self.bud.size
        lam[self.bud] = np.maximum(-dual[self.n:self.n + nb], 0.0)
        mu[self.wh] = np.maximum(-dual[self.n + nb:], 0.0) * self.scale
        sigma = dual[:self.n] * self.scale
        z = np.asarray(sol.col_value)[self.n_slack:]
        return self.h.getInfo().objective_function_value * self.scale, lam, mu, sigma, z


def column_generation(data: LotSizingData, *, time_limit: float | None = 60.0,
                      tol: float = 1e-4, max_iterations: int = 200,
                      extra: list | None = None) -> ColumnBound:
    """Lagrangian bound by column generation (see the module docstring): the restricted
    master LP over per-SKU plans prices the budgets and the warehouse, the single-item
    shortest paths at those prices give the Lagrangian value (a valid bound at every
    iteration) and the new columns. Stops when the master is within `tol` (relative) of the
    best bound, at `time_limit` seconds or after `max_iterations`. Every plan priced is also
    added raised to MOQ and packs (`round_to_packs`), and so are the plans in `extra` (full
    (n, T) plans, e.g. the (R, Z) start), so that the master's columns include plans that
    keep every per-SKU rule."""
    t0 = time.perf_counter()
    n, T = data.n, data.T
    paths = SingleItemPaths(data)
    vol = data.unit_volume
    per_vol = float(np.median(data.unit_cost[vol > 0] / vol[vol > 0])) if (vol > 0).any() else 1.0
    master = _Master(paths, penalty=(10.0, 10.0 * per_vol))
    rows = np.arange(n)
    lam, mu = np.zeros(T), np.zeros(T)
    best, best_lam, best_mu = -math.inf, lam, mu
    history = []
    mval = math.inf
    it = 0

    def add_plans(x):
        master.add(rows, x)
        r = round_to_packs(data, x)
        diff = np.abs(r - x).max(axis=1) > 1e-9
        master.add(rows[diff], r[diff])


    for extra_x in extra or []:
        add_plans(np.asarray(extra_x, dtype=float))
    sigma = np.full(n, -math.inf)

    def reduced(idx, x):
        cost, spend, space = sku_columns(paths, idx, x)
        return cost + spend @ lam + space @ mu - sigma[idx]

    for it in range(1, max_iterations + 1):
        per_sku, x, _, _ = paths.priced(lam, mu)
        value = float(per_sku.sum() - lam @ paths.B - mu @ paths.W)
        if value > best:
            best, best_lam, best_mu = value, lam, mu
        # candidates: the exact paths, and the paths priced with MOQ and packs, each raised
        # to MOQ and packs; a SKU's candidate joins the master if its reduced cost is < 0
        _, xp, _, _ = paths.priced(lam, mu, packs=True)
        tol_sku = 1e-7 * np.maximum(1.0, np.abs(per_sku))
        added = 0
        for cand in (x, round_to_packs(data, x), round_to_packs(data, xp)):
            new = rows if it == 1 else rows[reduced(rows, cand) < -tol_sku]
            master.add(new, cand[new])
            added += new.size
        history.append((time.perf_counter() - t0, best, mval))
        if it > 1 and (not added or mval - best <= tol * abs(mval)):
            break
        if time_limit is not None and time.perf_counter() - t0 > time_limit:
            break
        rest = None if time_limit is None else time_limit - (time.perf_counter() - t0)
        mval, lam, mu, sigma, z = master.solve(rest)
    sku = np.concatenate(master.sku)
    z = np.concatenate([z, np.zeros(sku.size - z.size)]) if it > 1 else np.zeros(sku.size)
    return ColumnBound(bound=best, master=mval, price_budget=best_lam, price_space=best_mu,
                       sku=sku, plans=np.concatenate(master.plans),
                       cost=np.concatenate(master.cost), spend=np.concatenate(master.spend),
                       space=np.concatenate(master.space), weight=z, iterations=it,
                       seconds=time.perf_counter() - t0, history=history, master_lp=master)


def sku_lp_values(data: LotSizingData, idx: np.ndarray, lam: np.ndarray, mu: np.ndarray,
                  deadline: float | None = None) -> np.ndarray:
    """Per SKU in `idx`, the LP relaxation of its own strong (facility-location) model with
    its MOQ row and packs as continuous, no limits, trucks at their cost per unit of load,
    priced like `SingleItemPaths.priced` (lambda per currency unit spent, mu per volume unit
    in stock): a lower bound on that SKU's priced cost, at least the shortest path's value
    when the MOQ binds. One small LP per SKU (~25 ms at 52 periods); SKUs not reached by
    `deadline` (perf_counter) get -inf."""
    import dataclasses

    from optimizer.plan_decompose import subset
    from optimizer.plan_matrix import build_plan_matrix, to_highs

    free = dataclasses.replace(data, budget=None, warehouse=None, truck_capacity={},
                               truck_cost={})
    paths = SingleItemPaths(data)
    scale = float(data.money_scale)
    out = np.full(idx.size, -math.inf)
    fixed = ~controllable(data) & (np.maximum(base_net_stock(data), 0.0) > 0)
    for j, i in enumerate(idx):
        if deadline is not None and time.perf_counter() > deadline:
            break
        sd = subset(free, np.array([i]))
        pm = build_plan_matrix(sd, strong=True)
        c = pm.c.copy()
        xs, ss = pm.x[0], pm.s[0]
        c[xs[xs >= 0]] += (lam[xs >= 0] * data.unit_cost[i] + paths.truck_unit[i]) / scale
        c[ss[ss >= 0]] += mu[ss >= 0] * data.unit_volume[i] / scale
        h = to_highs(pm, relax=True)
        h.changeColsCost(c.size, np.arange(c.size, dtype=np.int32), c)
        h.run()
        if h.getModelStatus().name != "kOptimal":
            continue
        const = float((mu * data.unit_volume[i] * np.where(fixed[i], np.maximum(
            base_net_stock(data)[i], 0.0), 0.0)).sum())
        out[j] = h.getInfo().objective_function_value * scale + const
    return out
