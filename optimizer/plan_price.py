"""Purchase plans for large instances by pricing: per-SKU plans priced against the period
budgets and the warehouse, chosen one per SKU, repaired to the limits.

Route (`priced_plan`), all within one time limit counted from the call:

1. Bound and prices (`optimizer.plan_lagrange.column_generation`): the Lagrangian bound by
   column generation over single-item shortest paths; a valid lower bound at any iteration
   (never a heuristic value). Its master LP holds per SKU the priced paths raised to MOQ and
   packs, and the (R, Z) start's own plan. Then, at the best prices, SKUs with an MOQ (or
   back-orders) get their own LP relaxation (`sku_lp_values`: strong model of the SKU with
   its MOQ row): where it exceeds the SKU's shortest path the difference is added (each
   term of the Lagrangian function may be any lower bound of that SKU's priced problem).
   2,000 x 52: +77,194 (0.5%) from 1,033 SKU LPs in 25 s.
2. A first plan: the master LP restricted to the columns that keep MOQ and packs; each SKU
   takes its column of largest weight (at most one fractional SKU per priced row, so few
   differ from the LP), then `repair_spend` moves spend earlier where a period is over its
   budget (the cheapest moves first: part of an order into the SKU's order of the period
   before, or a whole order one period earlier, merged with the one there) and
   `optimizer.plan.repair_forward` postpones orders where the warehouse overflows.
3. Only when that plan breaks a limit: the integer master, one column per SKU under the
   exact budget and warehouse rows (a column's spend and space are its SKU's own, so every
   choice meets both), in a forked child killed at the deadline (`optimizer.highs.
   run_highs`). Measured at 2,000 x 52 from the repaired plan it ended optimal in 10 s and
   gave no cheaper plan (its costs see trucks per unit of load), so it is not run otherwise.
4. Supplier by supplier (`_improve_by_groups`): the truck group's MIP on the array model
   (`optimizer.plan_matrix`, strong) with whole trucks and MOQ, its order slots those of the
   plan (widened by a period either side while small), the budget and warehouse the other
   groups leave, from its part of the plan; rounds until one finds nothing better, the
   plan is within `gap` of the bound or time is up.

Costs in the master count each truck at its cost per unit of load; every plan is then
priced exactly (whole trucks per supplier and arrival period) with `optimizer.plan.
evaluate` on the whole instance, and the cheapest plan that meets every rule is returned.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from formulations.lot_sizing import LotSizingData, round_down

_TOL = 1e-6


@dataclass
class PricedPlan:
    """Outcome of `priced_plan`. x: order quantities (n, T) meeting every rule, or None;
    objective: its cost (money; NaN without x); bound: the Lagrangian bound (money, a valid
    lower bound; NaN if not computed); gap: (objective - bound) / objective (inf without x);
    seconds: wall time of the call, bound_seconds of step 1; history: (seconds, objective,
    source) of every better plan; message: what happened."""

    x: np.ndarray | None
    objective: float
    bound: float
    gap: float
    seconds: float
    bound_seconds: float = 0.0
    history: list = field(default_factory=list)
    message: str = ""


def repair_spend(data: LotSizingData, x: np.ndarray) -> np.ndarray:
    """Backward pass over the order periods: where a period spends more than its budget,
    move spend one period earlier, cheapest first per currency unit moved. Moves: a part of
    an order into the SKU's order of the period before (the order left keeps its MOQ;
    costs one period of holding), or a whole order one period earlier (merged with an order
    there, which saves its ordering cost). Stock only rises (floors stay met); a move that
    would overflow the warehouse in the arrival period is skipped. Orders of SKUs that may
    back-order are not moved."""
    x = np.array(x, dtype=float)
    n, T = x.shape
    c, h, K = data.unit_cost, data.holding_cost, data.ordering_cost
    vol, L = data.unit_volume, data.lead
    moq, mult = data.moq_eff, data.multiple
    B, W = data.budget, data.space_limit
    hard = ~data.backlog
    from optimizer.plan import evaluate

    space = evaluate(data, x)["space"]
    for t in range(T - 1, 0, -1):
        excess = c @ x[:, t] - B[t]
        if excess <= _TOL * max(1.0, B[t]):
            continue
        q = x[:, t]
        prev = x[:, t - 1] > 0
        cand = hard & (q > 0)
        # whole order one period earlier (merged where the SKU orders there too)
        idx_a = np.flatnonzero(cand)
        val_a = c[idx_a] * q[idx_a]
        cost_a = h[idx_a] * q[idx_a] - np.where(prev[idx_a], K[idx_a], 0.0)
        # part of the order, into the SKU's order of the period before
        part = round_down(np.maximum(q - moq, 0.0), mult)
        idx_b = np.flatnonzero(cand & prev & (part > 0))
        val_b = c[idx_b] * part[idx_b]
        cost_b = h[idx_b] * part[idx_b]
        sku = np.concatenate([idx_a, idx_b])
        kind = np.concatenate([np.zeros(idx_a.size, bool), np.ones(idx_b.size, bool)])
        val = np.concatenate([val_a, val_b])
        ratio = np.concatenate([cost_a, cost_b]) / np.maximum(val, 1e-12)
        done = np.zeros(n, dtype=bool)
        for j in np.argsort(ratio, kind="stable"):
            if excess <= _TOL * max(1.0, B[t]):
                break
            i = sku[j]
            if done[i]:
                continue
            if kind[j]:  # just enough of the part, in whole packs
                need = excess / c[i]
                d = min(part[i], float(np.ceil(need / mult[i] - 1e-9) * mult[i])
                        if mult[i] > 0 else need)
            else:
                d = q[i]
            a = t - 1 + L[i]  # arrival period of the earlier order: stock up by d there
            if a < T and vol[i] * d > W[a] - space[a] + _TOL:
                continue
            if a < T:
                space[a] += vol[i] * d
            x[i, t - 1] += d
            x[i, t] -= d
            if x[i, t] <= _TOL:
                x[i, t] = 0.0
            excess -= c[i] * d
            done[i] = True
    return x


def _eligible(data: LotSizingData, sku: np.ndarray, plans: np.ndarray) -> np.ndarray:
    """Columns whose plans keep MOQ and packs."""
    moq, mult = data.moq_eff[sku], data.multiple[sku]
    placed = plans > _TOL
    small = placed & (plans < moq[:, None] * (1 - 1e-9) - _TOL)
    safe = np.where(mult > 0, mult, 1.0)[:, None]
    q = plans / safe
    off = placed & (mult[:, None] > 0) & (np.abs(q - np.round(q)) > 1e-6)
    return ~(small | off).any(axis=1)


# the group MIPs of step 4 search the slots of the plan widened by one period either side
# while the group's model stays below this many columns, else the plan's slots alone
# (2,000 x 52: ~100,000 columns widened, where HiGHS ends no root in 10 s; ~40,000 not)
GROUP_COLUMNS = 40_000


def _hard_limit(seconds: float) -> float:
    """The time limit to give `run_highs` so that its child is killed within `seconds`
    (`optimizer.highs.kill_delay`: limit + 2 s + 5%)."""
    return max((seconds - 2.5) / 1.05, 0.2)


def _improve_by_groups(data, x, out, offer, left, notes, gap) -> None:
    """Step 4 of `priced_plan`: each truck group's MIP (`optimizer.plan_matrix`, strong)
    with its order slots restricted to those of the current plan `x` (widened by one period
    either side when small enough, see `GROUP_COLUMNS`) and the budget and warehouse left
    by the other groups, from its part of the plan, in rounds over the groups until one
    finds nothing better, the best plan is within `gap` of `out.bound` or the time is up.
    While `x` breaks a limit the group MIPs price the excess (elastic rows, 10 per currency
    unit over a budget, 10 x the median value of a volume unit over the warehouse, raised
    tenfold after a round without progress) and a move is kept when it lowers cost + priced
    excess. Every plan kept is offered."""
    import highspy

    from optimizer.highs import run_highs
    from optimizer.plan import evaluate, limit_excess, widen_slots
    from optimizer.plan_decompose import subset, truck_groups
    from optimizer.plan_matrix import build_plan_matrix, orders_of, plan_columns, to_highs

    parts = truck_groups(data)
    vol = data.unit_volume
    per_vol = data.unit_cost[vol > 0] / vol[vol > 0]
    penalty = [10.0, 10.0 * float(np.median(per_vol)) if per_vol.size else 10.0]
    B, W = data.budget, data.space_limit

    def score(ev):
        ob, ow = limit_excess(data, ev)
        return ev["cost"] + penalty[0] * ob + penalty[1] * ow

    ev = evaluate(data, x)
    for rnd in range(6):
        before = score(ev)
        broken = sum(limit_excess(data, ev)) > 0
        for pos, idx in enumerate(parts):
            if left() <= 3.0 or (out.x is not None
                                 and out.objective - out.bound <= gap * abs(out.objective)):
                return
            own = evaluate(subset(data, idx), x[idx])
            sd = subset(data, idx, budget=B - (ev["spend"] - own["spend"]),
                        warehouse=W - (ev["space"] - own["space"]))
            elastic = tuple(penalty) if broken else None
            slots = x[idx] > _TOL
            pm = build_plan_matrix(sd, strong=True, slots=widen_slots(slots),
                                   limit_penalty=elastic)
            if pm.num_col > GROUP_COLUMNS:
                pm = build_plan_matrix(sd, strong=True, slots=slots, limit_penalty=elastic)
            h = to_highs(pm)
            sol = highspy.HighsSolution()
            sol.col_value = plan_columns(pm, sd, x[idx])
            sol.value_valid = True
            h.setSolution(sol)
            h.setOptionValue("mip_rel_gap", gap / 10)
            run = run_highs(h, _hard_limit(left() / (len(parts) - pos)))
            if run.x is None:
                continue
            xn = x.copy()
            xn[idx] = orders_of(pm, sd, np.asarray(run.x))
            evn = evaluate(data, xn)
            if score(evn) < score(ev) - 1e-9 * abs(score(ev)):
                x, ev = xn, evn
                offer(x, f"group MIPs, round {rnd + 1}")
        notes.append(f"group MIPs round {rnd + 1}: {before:,.2f} -> {score(ev):,.2f}"
                     + (" (with priced excess)" if broken else ""))
        if score(ev) >= before - 1e-9 * abs(before):
            if sum(limit_excess(data, ev)) > 0 and penalty[0] < 1e4:
                penalty = [10.0 * penalty[0], 10.0 * penalty[1]]
                continue
            return


def priced_plan(data: LotSizingData, *, time_limit: float = 300.0, gap: float = 1e-2,
                start: np.ndarray | None = None, bound_share: float = 0.2,
                lp_share: float = 0.25) -> PricedPlan:
    """Bound, first plan and improvements of `data` (see the module docstring) within
    `time_limit` seconds: up to `bound_share` of it for the column generation and
    `lp_share` for the per-SKU LPs of step 1. `start`: a plan (n, T)
    whose per-SKU plans join the columns (e.g. the (R, Z) start; it need not meet the
    limits). Returns a `PricedPlan`; its x, if any, meets every rule of `data`."""
    import highspy

    from optimizer.highs import run_highs
    from optimizer.plan import evaluate, repair_forward
    from optimizer.plan_lagrange import SingleItemPaths, column_generation, sku_lp_values

    t0 = time.perf_counter()
    out = PricedPlan(None, math.nan, math.nan, math.inf, 0.0)
    notes = []

    def left() -> float:
        return time_limit - (time.perf_counter() - t0)

    def offer(x, source) -> None:
        ev = evaluate(data, x)
        if ev["violations"]:
            notes.append(f"{source}: plan breaks {len(ev['violations'])} rule(s), first: "
                         f"{ev['violations'][0]}")
            return
        if out.x is None or ev["cost"] < out.objective - 1e-9 * abs(ev["cost"]):
            out.x, out.objective = x, ev["cost"]
            out.history.append((time.perf_counter() - t0, ev["cost"], source))

    cb = column_generation(data, time_limit=bound_share * time_limit,
                           extra=[start] if start is not None else None)
    notes.append(f"Lagrangian bound {cb.bound:,.2f} ({cb.iterations} pricing rounds, master "
                 f"LP {cb.master:,.2f}, {cb.sku.size} columns) in "
                 f"{time.perf_counter() - t0:.1f} s")
    # the SKUs whose MOQ, packs or back-orders the shortest paths leave out: their own LP
    # at the same prices, largest MOQ per period of demand first
    per_sku = SingleItemPaths(data).priced(cb.price_budget, cb.price_space)[0]
    some = np.flatnonzero((data.moq_eff > 0) | data.backlog)
    weight = data.moq_eff[some] / np.maximum(data.demand[some].mean(axis=1), 1e-9)
    some = some[np.argsort(-weight, kind="stable")]
    lp = sku_lp_values(data, some, cb.price_budget, cb.price_space,
                       deadline=t0 + (bound_share + lp_share) * time_limit)
    lift = float(np.maximum(lp - per_sku[some], 0.0).sum())
    out.bound, out.bound_seconds = cb.bound + lift, time.perf_counter() - t0
    notes.append(f"per-SKU LPs with MOQ rows ({int(np.isfinite(lp).sum())} of {some.size} "
                 f"SKUs) lift it by {lift:,.2f} to {out.bound:,.2f} in "
                 f"{out.bound_seconds:.1f} s")
    m = cb.master_lp
    h, k = m.h, m.n_slack
    ok = _eligible(data, cb.sku, cb.plans)
    # -- 2. first plan: the master LP on the columns that keep MOQ and packs, rounded
    bad = (np.flatnonzero(~ok) + k).astype(np.int32)
    h.changeColsBounds(bad.size, bad, np.zeros(bad.size), np.zeros(bad.size))
    h.setOptionValue("time_limit", h.getRunTime() + max(left() - 3.0, 0.1))  # clock adds up
    h.run()
    z = np.asarray(h.getSolution().col_value)[k:]
    pick = np.full(data.n, -1)
    order = np.argsort(np.where(ok, z, -1.0), kind="stable")
    pick[cb.sku[order]] = order  # the last write is the largest weight
    x = np.zeros((data.n, data.T))
    x[cb.sku[pick]] = cb.plans[pick]
    x = repair_spend(data, x)
    if evaluate(data, x)["violations"]:
        x = repair_forward(data, x)
    offer(x, "rounded master LP")
    first = x
    # -- 3. no plan yet: the integer master (one column per SKU, every limit exact)
    if out.x is None and left() > 2.0:
        ncol = h.getNumCol()
        h.changeColsBounds(k, np.arange(k, dtype=np.int32), np.zeros(k), np.zeros(k))
        cols = np.arange(k, ncol, dtype=np.int32)
        h.changeColsIntegrality(cols.size, cols,
                                np.full(cols.size, highspy.HighsVarType.kInteger))
        h.setOptionValue("mip_rel_gap", gap / 4)
        run = run_highs(h, _hard_limit(left()))
        notes.append(f"integer master: {run.termination} in {run.seconds:.1f} s")
        if run.x is not None:
            sel = np.asarray(run.x)[k:] > 0.5
            xi = np.zeros((data.n, data.T))
            xi[cb.sku[sel]] = cb.plans[sel]
            offer(xi, "integer master")
    # -- 4. supplier by supplier: whole trucks and MOQ in the array model, order slots near
    # the plan's own, the other suppliers' use of the limits fixed
    # (from the repaired plan, limits priced, when no plan meets them yet)
    base = out.x if out.x is not None else first
    if left() > 3.0:
        _improve_by_groups(data, base, out, offer, left, notes, gap)
    out.seconds = time.perf_counter() - t0
    if out.x is not None:
        out.gap = (out.objective - out.bound) / abs(out.objective) if out.objective else 0.0
    out.message = "; ".join(notes)
    return out
