"""The lot-sizing MIP of `formulations.lot_sizing` as arrays handed straight to HiGHS.

Same variables, rows, bounds and objective as `build_lot_sizing` (see that module for the
model), built with numpy in one pass and passed to `highspy` as one sparse matrix. Why a
second builder: for 500 SKUs x 26 periods the strong model has ~130,000 columns and
~150,000 rows; Pyomo takes ~4 s to build it and appsi ~7 s to hand it to HiGHS (measured
here at load 4 on 2 cores), this builder ~0.5 s for both. And the primal heuristics of
`optimizer.plan_search` re-solve the same model many times with order slots opened and
closed, which here is a change of column bounds on one HiGHS instance instead of a Pyomo
update.

Differences from the Pyomo model that change no solution: fixed stock (periods an order
cannot reach) enters as constants, not fixed columns; hard floors are column lower bounds
instead of rows. Elastic limits (`limit_penalty`) as in the Pyomo model: one column per
budget row (over_budget, money / money_scale) and per warehouse row (over_space, volume).
`slots` restricts the model to some order slots (the others get no columns at all): every
plan of the restricted model is a plan of the full one, so a heuristic may search it; its
optimum is no bound.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from formulations.lot_sizing import (LotSizingData, base_net_stock, controllable,
                                     order_caps, requirements, truck_minimum)

_INF = math.inf


@dataclass
class PlanMatrix:
    """min c.z + offset s.t. row_lo <= A z <= row_up, lb <= z <= ub, z integer where
    `integer`; money divided by `money_scale` as in the Pyomo model.

    Column index maps, -1 where the variable does not exist: x, y, n (packs), s (stock on
    hand; -1 also where stock is data), b (backlog), e (shortfall), all (n SKUs, T); v
    (truck groups, T) by arrival period; w: column of each facility-location split, with
    w_sku, w_order, w_need (0-based order and requirement periods). budget_row and
    warehouse_row: (T,) row of each period's limit, -1 where none."""

    c: np.ndarray
    offset: float
    A: sp.csr_matrix
    row_lo: np.ndarray
    row_up: np.ndarray
    lb: np.ndarray
    ub: np.ndarray
    integer: np.ndarray
    x: np.ndarray
    y: np.ndarray
    n: np.ndarray
    s: np.ndarray
    b: np.ndarray
    e: np.ndarray
    v: np.ndarray
    w: np.ndarray
    w_sku: np.ndarray
    w_order: np.ndarray
    w_need: np.ndarray
    budget_row: np.ndarray
    warehouse_row: np.ndarray
    over_budget: np.ndarray | None = None  # (T,) column of each elastic budget row, -1: none
    over_space: np.ndarray | None = None  # (T,) likewise for the warehouse

    @property
    def num_col(self) -> int:
        return self.c.size

    @property
    def num_row(self) -> int:
        return self.row_lo.size


class _Cols:
    def __init__(self):
        self.c, self.lb, self.ub, self.int = [], [], [], []
        self.count = 0

    def add(self, cost, lb, ub, integer) -> np.ndarray:
        cost = np.asarray(cost, float)
        k = cost.size
        self.c.append(cost)
        self.lb.append(np.broadcast_to(np.asarray(lb, float), (k,)))
        self.ub.append(np.broadcast_to(np.asarray(ub, float), (k,)))
        self.int.append(np.full(k, bool(integer)))
        idx = np.arange(self.count, self.count + k)
        self.count += k
        return idx


class _Rows:
    def __init__(self):
        self.r, self.col, self.val, self.lo, self.up = [], [], [], [], []
        self.count = 0

    def add(self, lo, up) -> np.ndarray:
        lo = np.atleast_1d(np.asarray(lo, float))
        k = lo.size
        self.lo.append(lo)
        self.up.append(np.broadcast_to(np.asarray(up, float), (k,)))
        idx = np.arange(self.count, self.count + k)
        self.count += k
        return idx

    def put(self, rows, cols, vals) -> None:
        rows, cols = np.broadcast_arrays(np.asarray(rows), np.asarray(cols))
        vals = np.broadcast_to(np.asarray(vals, float), rows.shape)
        self.r.append(rows.ravel()), self.col.append(cols.ravel()), self.val.append(vals.ravel())


def build_plan_matrix(data: LotSizingData, strong: bool = True,
                      limit_penalty: tuple[float, float] | None = None,
                      slots: np.ndarray | None = None) -> PlanMatrix:
    """The lot-sizing MIP of `data` (strong: with the facility-location layer) as arrays;
    see `PlanMatrix`. limit_penalty=(per currency unit over a period budget, per volume unit
    over the warehouse): those rows elastic at that price (and no budget cap on an order);
    slots (n, T) bool: the order slots to model (None: all)."""
    n, T = data.n, data.T
    L = data.lead
    scale = float(data.money_scale)
    elastic = limit_penalty is not None
    M = order_caps(data, budget_cap=not elastic)
    if slots is not None:
        M = np.where(slots, M, 0.0)
    ctrl = controllable(data)
    base = base_net_stock(data)
    moq = data.moq_eff
    mult = data.multiple
    back = data.backlog
    tidx, tcap, tcost, groups = data.trucks()
    K = len(groups)
    _, dn = requirements(data)
    cols, rows = _Cols(), _Rows()

    def grid(mask, idx):
        g = np.full((n, T), -1, dtype=np.int64)
        g[mask] = idx
        return g

    has = M > 0
    oi, ot = np.nonzero(has)  # row-major: SKU, then period, as the Pyomo set
    x = grid(has, cols.add(np.zeros(oi.size), 0.0, M[oi, ot], False))
    y = grid(has, cols.add(data.ordering_cost[oi] / scale, 0.0, 1.0, True))
    pk = has & (mult[:, None] > 0)
    pi, pt = np.nonzero(pk)
    npk = grid(pk, cols.add(np.zeros(pi.size), 0.0,
                            np.round(M[pi, pt] / np.where(mult[pi] > 0, mult[pi], 1.0)), True))
    si, st = np.nonzero(ctrl)
    hard_floor = np.where(back, 0.0, data.floor)
    s = grid(ctrl, cols.add(data.holding_cost[si] / scale, hard_floor[si], _INF, False))
    bk = ctrl & back[:, None]
    bi, bt = np.nonzero(bk)
    b = grid(bk, cols.add(np.zeros(bi.size), 0.0, _INF, False))
    e = grid(bk, cols.add(np.nan_to_num(data.shortage_cost)[bi] / scale, 0.0, _INF, False))
    fixed_on = np.where(ctrl, 0.0, np.maximum(base, 0.0))
    fixed_back = np.where(ctrl, 0.0, np.maximum(-base, 0.0))
    offset = float((data.holding_cost[:, None] * fixed_on).sum() / scale)

    # -- stock balance in every period an order can reach:
    # s[t] - b[t] - s[t-1] + b[t-1] - x[t-L] = a[t] - d[t] (stock that is data on the right)
    bal = grid(ctrl, rows.add(np.zeros(si.size), 0.0))
    r = bal[si, st]
    rhs = data.arrivals[si, st] - data.demand[si, st]
    rows.put(r, s[si, st], 1.0)
    wb = b[si, st] >= 0
    rows.put(r[wb], b[si, st][wb], -1.0)
    first = st == 0
    rhs[first] += data.on_hand[si[first]]
    prev = ~first
    pi_, pt_ = si[prev], st[prev] - 1
    rp = r[prev]
    free_prev = s[pi_, pt_] >= 0
    rows.put(rp[free_prev], s[pi_, pt_][free_prev], -1.0)
    bprev = b[pi_, pt_] >= 0
    rows.put(rp[bprev], b[pi_, pt_][bprev], 1.0)
    const_prev = ~free_prev  # stock that is data in t-1 moves to the right-hand side
    rhs[np.flatnonzero(prev)[const_prev]] += (fixed_on[pi_, pt_] - fixed_back[pi_, pt_])[const_prev]
    src = st - L[si]
    xo = np.full(si.size, -1)
    okk = src >= 0
    xo[okk] = x[si[okk], src[okk]]
    rows.put(r[xo >= 0], xo[xo >= 0], -1.0)
    lo = np.concatenate(rows.lo)
    lo[r] = rhs
    rows.lo = [lo]
    rows.up = [lo.copy()]

    # -- floor with priced shortfall for SKUs that may back-order: s - b + e >= floor
    fr = rows.add(data.floor[bi], _INF)
    rows.put(fr, s[bi, bt], 1.0), rows.put(fr, b[bi, bt], -1.0), rows.put(fr, e[bi, bt], 1.0)

    # -- MOQ: x - moq y >= 0; big-M: x - M y <= 0; packs: x - m n = 0
    mq = moq[oi] > 0
    rr = rows.add(np.zeros(mq.sum()), _INF)
    rows.put(rr, x[oi, ot][mq], 1.0), rows.put(rr, y[oi, ot][mq], -moq[oi][mq])
    rr = rows.add(np.full(oi.size, -_INF), 0.0)
    rows.put(rr, x[oi, ot], 1.0), rows.put(rr, y[oi, ot], -M[oi, ot])
    rr = rows.add(np.zeros(pi.size), 0.0)
    rows.put(rr, x[pi, pt], 1.0), rows.put(rr, npk[pi, pt], -mult[pi])

    # -- purchase budget per order period (money scaled)
    budget_row = np.full(T, -1)
    for t in range(T):
        on = np.flatnonzero(has[:, t])
        if np.isfinite(data.budget[t]) and on.size:
            rr = rows.add(-_INF, data.budget[t] / scale)
            rows.put(np.full(on.size, rr[0]), x[on, t], data.unit_cost[on] / scale)
            budget_row[t] = rr[0]
    over_budget = np.full(T, -1)
    if elastic:
        on = np.flatnonzero(budget_row >= 0)
        over_budget[on] = cols.add(np.full(on.size, float(limit_penalty[0])), 0.0, _INF, False)
        rows.put(budget_row[on], over_budget[on], -1.0)

    # -- warehouse space on end-of-period stock
    warehouse_row = np.full(T, -1)
    space = data.space_limit
    vol = data.unit_volume
    for t in range(T):
        idx = np.flatnonzero(vol > 0)
        free = idx[ctrl[idx, t]]
        if not free.size or not np.isfinite(space[t]):
            continue
        const = float(vol[idx] @ fixed_on[idx, t])
        rr = rows.add(-_INF, space[t] - const)
        rows.put(np.full(free.size, rr[0]), s[free, t], vol[free])
        warehouse_row[t] = rr[0]
    over_space = np.full(T, -1)
    if elastic:
        on = np.flatnonzero(warehouse_row >= 0)
        over_space[on] = cols.add(np.full(on.size, float(limit_penalty[1]) / scale), 0.0, _INF,
                                  False)
        rows.put(warehouse_row[on], over_space[on], -1.0)

    # -- trucks per group and arrival period: sum load x - cap v <= 0
    v = np.full((K, T), -1)
    tk = has & (tidx[:, None] >= 0)
    ki, kt = np.nonzero(tk)
    karr = kt + L[ki]
    kk = tidx[ki]
    if ki.size:
        key = kk * T + karr
        keys = np.unique(key)  # sorted by (group, arrival) as the Pyomo set
        gk, ga = keys // T, keys % T
        tot = np.zeros(K * T)
        np.add.at(tot, key, data.load[ki] * M[ki, kt])
        ubv = np.ceil(tot[keys] / tcap[gk] - 1e-9)
        vc = cols.add(tcost[gk] / scale, 0.0, ubv, True)
        v[gk, ga] = vc
        rr = rows.add(np.full(keys.size, -_INF), 0.0)
        pos = np.searchsorted(keys, key)
        rows.put(rr[pos], x[ki, kt], data.load[ki])
        rows.put(rr, vc, -tcap[gk])
        # an order fills at least max(1, ceil(moq load / cap)) trucks
        need = truck_minimum(data)[ki]
        rr = rows.add(np.zeros(ki.size), _INF)
        rows.put(rr, v[kk, karr], 1.0), rows.put(rr, y[ki, kt], -need)

    # -- facility-location layer (strong): w[i,t,tau] covers the requirement of tau by order t
    w = w_sku = w_order = w_need = np.zeros(0, dtype=np.int64)
    if strong:
        ii, tt, uu = [], [], []
        for i in np.flatnonzero(~back):
            for t in np.flatnonzero(has[i]):
                taus = np.arange(t + L[i], T)
                taus = taus[dn[i, taus] > 1e-9]
                ii.append(np.full(taus.size, i)), tt.append(np.full(taus.size, t)), uu.append(taus)
        if ii:
            w_sku, w_order, w_need = (np.concatenate(a).astype(np.int64) for a in (ii, tt, uu))
            d = dn[w_sku, w_need]
            w = cols.add(np.zeros(w_sku.size), 0.0, d, False)
            rr = rows.add(np.full(w.size, -_INF), 0.0)  # link: w - dn y <= 0
            rows.put(rr, w, 1.0), rows.put(rr, y[w_sku, w_order], -d)
            ck = w_sku * T + w_need  # cover: sum_t w = dn
            ckeys = np.unique(ck)
            rr = rows.add(dn[ckeys // T, ckeys % T], dn[ckeys // T, ckeys % T])
            rows.put(rr[np.searchsorted(ckeys, ck)], w, 1.0)
            ak = w_sku * T + w_order  # amount: x - sum_tau w >= 0
            akeys = np.unique(ak)
            rr = rows.add(np.zeros(akeys.size), _INF)
            rows.put(rr, x[akeys // T, akeys % T], 1.0)
            rows.put(rr[np.searchsorted(akeys, ak)], w, -1.0)

    A = sp.csr_matrix((np.concatenate(rows.val), (np.concatenate(rows.r),
                                                   np.concatenate(rows.col))),
                      shape=(rows.count, cols.count))
    A.sum_duplicates()
    return PlanMatrix(c=np.concatenate(cols.c), offset=offset, A=A,
                      row_lo=np.concatenate(rows.lo), row_up=np.concatenate(rows.up),
                      lb=np.concatenate(cols.lb), ub=np.concatenate(cols.ub),
                      integer=np.concatenate(cols.int), x=x, y=y, n=npk, s=s, b=b, e=e, v=v,
                      w=w, w_sku=w_sku, w_order=w_order, w_need=w_need,
                      budget_row=budget_row, warehouse_row=warehouse_row,
                      over_budget=over_budget, over_space=over_space)


def _quiet_highs():
    """A `highspy.Highs` with output off. Its constructor prints HiGHS's banner to file
    descriptor 1 (once per process), which would corrupt `optimizer plan --format json` on
    stdout, so descriptor 1 points to /dev/null while it runs."""
    import os
    import sys

    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        h = highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(null)
    h.setOptionValue("output_flag", False)
    return h


def to_highs(pm: PlanMatrix, relax: bool = False, without_limits: bool = False):
    """A `highspy.Highs` holding the model (output off); `relax`: no integer columns;
    `without_limits`: the budget and warehouse rows free (-inf, inf) so they can be put back
    by `set_limits` (dual simplex then starts from the basis it has)."""
    import highspy

    h = _quiet_highs()
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = pm.num_col, pm.num_row
    lp.col_cost_, lp.col_lower_, lp.col_upper_ = pm.c, pm.lb, pm.ub
    lp.offset_ = pm.offset
    lo, up = pm.row_lo.copy(), pm.row_up.copy()
    if without_limits:
        lim = limit_rows(pm)
        lo[lim], up[lim] = -highspy.kHighsInf, highspy.kHighsInf
    lp.row_lower_, lp.row_upper_ = lo, up
    csc = pm.A.tocsc()
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = csc.indptr
    lp.a_matrix_.index_ = csc.indices
    lp.a_matrix_.value_ = csc.data
    if not relax:
        lp.integrality_ = [highspy.HighsVarType.kInteger if k else highspy.HighsVarType.kContinuous
                           for k in pm.integer]
    h.passModel(lp)
    return h


def limit_rows(pm: PlanMatrix) -> np.ndarray:
    """Rows of the period budgets and the warehouse."""
    r = np.concatenate([pm.budget_row, pm.warehouse_row])
    return r[r >= 0].astype(np.int32)


def set_limits(h, pm: PlanMatrix, on: bool = True) -> None:
    """Put the budget and warehouse rows of `pm` into `h` (on) or free them (off)."""
    import highspy

    lim = limit_rows(pm)
    if not lim.size:
        return
    if on:
        h.changeRowsBounds(lim.size, lim, pm.row_lo[lim], pm.row_up[lim])
    else:
        h.changeRowsBounds(lim.size, lim, np.full(lim.size, -highspy.kHighsInf),
                           np.full(lim.size, highspy.kHighsInf))


def plan_columns(pm: PlanMatrix, data: LotSizingData, x: np.ndarray) -> np.ndarray:
    """Value of every column implied by the plan of order quantities x (n, T): the MIP start
    of a plan (the stock, trucks, packs and facility-location split it implies)."""
    from optimizer.plan import evaluate

    ev = evaluate(data, x)
    z = np.zeros(pm.num_col)

    def put(g, vals):
        m = g >= 0
        z[g[m]] = vals[m]

    put(pm.x, x)
    put(pm.y, (x > 1e-6).astype(float))
    put(pm.n, np.round(x / np.where(data.multiple > 0, data.multiple, 1.0)[:, None]))
    put(pm.s, ev["on"])
    put(pm.b, ev["back"])
    put(pm.e, ev["short"])
    if pm.over_budget is not None:
        put(pm.over_budget, np.maximum(ev["spend"] - data.budget, 0.0) / data.money_scale)
        put(pm.over_space, np.maximum(ev["space"] - data.space_limit, 0.0))
    if pm.v.size:
        put(pm.v, ev["trucks"])
    if pm.w.size:
        cum, _ = requirements(data)
        Xc = np.cumsum(ev["arrive"], axis=1)
        Xprev = Xc - ev["arrive"]
        Nprev = cum - np.diff(cum, axis=1, prepend=0.0)
        i, t, tau = pm.w_sku, pm.w_order, pm.w_need
        a = t + data.lead[i]
        z[pm.w] = np.maximum(np.minimum(Xc[i, a], cum[i, tau]) - np.maximum(Xprev[i, a],
                                                                          Nprev[i, tau]), 0.0)
    return z


def orders_of(pm: PlanMatrix, data: LotSizingData, z: np.ndarray) -> np.ndarray:
    """Order quantities (n, T) of the column values z: closed slots (y < 0.5) and crumbs
    below 1e-7 x MOQ dropped, packs rounded to whole packs (as `optimizer.plan._orders`)."""
    x = np.zeros((data.n, data.T))
    has = pm.x >= 0
    xv = np.where(has, z[np.where(has, pm.x, 0)], 0.0)
    yv = np.where(has, z[np.where(pm.y >= 0, pm.y, 0)], 0.0)
    pk = pm.n >= 0
    xv = np.where(pk, np.round(np.where(pk, z[np.where(pk, pm.n, 0)], 0.0))
                  * data.multiple[:, None], xv)
    keep = has & (yv >= 0.5) & (xv > 1e-7 * np.maximum(1.0, data.moq_eff)[:, None])
    x[keep] = xv[keep]
    return x
