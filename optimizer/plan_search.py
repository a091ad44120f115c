"""LP bound, LP-guided plan and full MIP of the purchase plan on one HiGHS instance.

The pipeline of `optimizer.plan.solve_plan_data` (direct=True) on the arrays of
`optimizer.plan_matrix` instead of a Pyomo model. Steps, all within one time limit:

1. LP bound. The LP relaxation is solved first without the period budget and warehouse rows
   (their dense rows slow the simplex most), then the rows are put back and the dual simplex
   goes on from that basis: 500 SKUs x 26 periods, strong model, ~5.5 s + ~2 s against
   ~19 s from scratch (load 4, 2 cores). With several truck groups the first LP falls apart
   by group, and its basis is put together from the groups' LPs (`optimizer.plan_groups.
   lp_from_groups`: 500 x 26, 6.1 s in all against 9.3 s). Its value is `lp_bound`, a valid
   lower bound.
2a. LP-guided plan by truck group (`optimizer.plan_groups`): the same neighbourhood cut into
   one MIP per truck group, each under its share of the budget and warehouse, in two
   processes; the MIPs of ~50 SKUs reach tight gaps in seconds where the whole neighbourhood
   is slow (500 x 26: 0.8-1.0% above the LP bound in ~40 s, against 1.4-2.8% at 60 s for 2b
   alone, whose first good plan depends on when HiGHS's sub-MIP heuristic finds it).
2b. LP-guided plan on the whole model (relaxation-induced neighbourhood): the MIP with every
   order slot the LP leaves closed (y_LP <= 1e-6) fixed shut, plus the slots of the
   incumbent if there is one; widened by one period either side when that neighbourhood is
   infeasible.
3. Full MIP from the best plan (MIP start), in the time left; bound = max(LP, MIP bound).

Each stage is skipped once the best plan is within `gap` of the bound. Stages 2b and 3 share
one HiGHS instance whose integer domains stay in place: they differ only in column bounds of
the order indicators y.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from formulations.lot_sizing import LotSizingData
from optimizer.plan import widen_slots
from optimizer.plan_matrix import (PlanMatrix, build_plan_matrix, orders_of, plan_columns,
                                   set_limits, to_highs)

_OPEN = 1e-6  # an LP y above this opens the order slot
# HiGHS options of the MIP stages (`options` adds to them). A small cut pool (HiGHS's default
# soft limit is 10,000 rows) ends the root cut loop of the LP-guided MIP sooner and its
# sub-MIP heuristic then finds the first plan earlier. Benchmark instances 500 x 26, seeds
# 1/2/3, 60 s, load 2-3: gap 0.97/0.89/1.80% (first plan at 24/27/34 s) against
# 1.19/1.24/2.10% with the default.
MIP_OPTIONS: dict = {"mip_pool_soft_limit": 300}


@dataclass
class SearchResult:
    """Outcome of `matrix_plan`. x: order quantities (n, T) meeting every rule, or None;
    objective: its cost (money, NaN without x); lp_bound: LP relaxation with every row
    (money; NaN when not solved); bound: max(lp_bound, MIP bound) (money, NaN if neither);
    termination: "optimal" (gap reached), "time_limit", "infeasible" (the LP has no
    solution) or "error"; seconds per stage; history: (seconds since the start, objective)
    of every improving plan; lp_y: LP order indicators (n, T) or None; heuristic_objective:
    the LP-guided plan's cost (None if none)."""

    x: np.ndarray | None
    objective: float
    lp_bound: float
    bound: float
    termination: str
    build_seconds: float = 0.0
    lp_seconds: float = 0.0
    heuristic_seconds: float = 0.0
    mip_seconds: float = 0.0
    heuristic_objective: float | None = None
    lp_y: np.ndarray | None = field(default=None, repr=False)
    history: list = field(default_factory=list)
    message: str = ""


def _run(h, time_limit) -> float:
    """Run `h` with HiGHS's own time limit and, because HiGHS checks that limit only between
    some phases, a watchdog that cancels it 1.5 x limit + 10 s in; returns the wall time."""
    from optimizer.highs import watchdog_delay

    t0 = time.perf_counter()
    timer = None
    if time_limit is not None:
        h.setOptionValue("time_limit", max(float(time_limit), 0.01))
        timer = threading.Timer(watchdog_delay(time_limit), h.cancelSolve)
        timer.daemon = True
        timer.start()
    else:
        h.setOptionValue("time_limit", math.inf)
    try:
        h.run()
    finally:
        if timer is not None:
            timer.cancel()
    return time.perf_counter() - t0


def _has_solution(h) -> bool:
    return h.getInfo().primal_solution_status == 2  # kSolutionStatusFeasible


def _lp(h) -> str:
    import highspy

    st = h.getModelStatus()
    if st == highspy.HighsModelStatus.kOptimal:
        return "optimal"
    if st == highspy.HighsModelStatus.kInfeasible:
        return "infeasible"
    if st == highspy.HighsModelStatus.kTimeLimit:
        return "time_limit"
    return "error"


def _set_open(h, pm: PlanMatrix, is_open: np.ndarray | None) -> None:
    """Order indicator bounds: [0, 1] where `is_open` (all when None), fixed 0 elsewhere."""
    has = pm.y >= 0
    cols = pm.y[has].astype(np.int32)
    up = np.ones(cols.size) if is_open is None else is_open[has].astype(float)
    h.changeColsBounds(cols.size, cols, np.zeros(cols.size), up)


def _has_limits(h, pm: PlanMatrix) -> bool:
    """Whether the budget and warehouse rows of `pm` hold their limits in `h`."""
    from optimizer.plan_matrix import limit_rows

    lim = limit_rows(pm)
    if not lim.size:
        return True
    up = np.asarray(h.getLp().row_upper_)[lim]
    return bool(np.array_equal(up, pm.row_up[lim]))


def _give_start(h, pm: PlanMatrix, data: LotSizingData, x: np.ndarray) -> None:
    import highspy

    sol = highspy.HighsSolution()
    sol.col_value = plan_columns(pm, data, x)
    sol.value_valid = True
    h.setSolution(sol)


def matrix_plan(data: LotSizingData, *, strong: bool = True, gap: float = 1e-2,
                time_limit=None, start: np.ndarray | None = None, lp_bound: bool = True,
                heuristic: bool = True, lp_coupling: bool = True, widen: int = 2,
                heuristic_share: float = 0.6, options: dict | None = None,
                groups: bool = True, group_share: float = 0.95,
                workers: int = 2) -> SearchResult:
    """LP bound, LP-guided plan and full MIP of `data` (see the module docstring).

    `start`: a plan (n, T) to start from; used only if it meets every rule. `lp_bound` /
    `heuristic`: run the LP (needed by the heuristics) / the LP-guided MIPs. `groups`: stage
    2a and the LP from the groups' bases (strong model with more than one truck group; the
    group MIPs are built strong), with `group_share` of the time
    left after the LP and `workers` processes. Stage 2b gets at most `heuristic_share` of
    the time left then (all of it without a feasible plan) and up to `widen` widenings.
    lp_coupling=False: the LP bound is that of the model without the budget and warehouse
    rows (its y then guide the heuristics). Returns a `SearchResult`;
    the x it holds always meets every rule (checked with `optimizer.plan.evaluate`)."""
    from optimizer.plan import evaluate, repair_forward
    from optimizer.plan_decompose import truck_groups
    from optimizer.plan_groups import group_plan, lp_from_groups

    t0 = time.perf_counter()
    scale = data.money_scale

    def left():
        return None if time_limit is None else max(time_limit - (time.perf_counter() - t0), 0.1)

    pm = build_plan_matrix(data, strong=strong)
    build_sec = time.perf_counter() - t0
    out = SearchResult(None, math.nan, math.nan, math.nan, "error", build_seconds=build_sec)
    notes = []

    def offer(x, source) -> bool:
        """Keep plan x if it meets every rule and beats the incumbent."""
        ev = evaluate(data, x)
        if ev["violations"]:
            notes.append(f"{source} plan dropped: {ev['violations'][0]}")
            return False
        if source.startswith("LP-guided") and (out.heuristic_objective is None
                                                or ev["cost"] < out.heuristic_objective):
            out.heuristic_objective = ev["cost"]
        if out.x is None or ev["cost"] < out.objective - 1e-9 * abs(ev["cost"]):
            out.x, out.objective = x, ev["cost"]
            out.history.append((time.perf_counter() - t0, ev["cost"]))
            return True
        return False

    def done() -> bool:
        return (out.x is not None and math.isfinite(out.bound)
                and out.objective - out.bound <= gap * abs(out.objective))

    def finished(why: str) -> SearchResult:
        out.termination = "optimal"
        out.message = "; ".join(notes + [why])
        return out

    if start is not None:
        offer(np.asarray(start, dtype=float), "start")
    # -- 1. LP bound
    y_lp = None
    if lp_bound or heuristic:
        t1 = time.perf_counter()
        h = None
        if strong and lp_coupling and groups and len(truck_groups(data)) > 1:
            lim = left()
            h = lp_from_groups(data, pm, None if lim is None else lim / 2)
            if h is not None and _lp(h) != "optimal":
                h = None  # the whole LP below says why (infeasible, out of time)
        if h is None:
            h = to_highs(pm, relax=True, without_limits=True)
            lim = left()
            _run(h, None if lim is None else lim / 2)
        term = _lp(h)
        if term == "optimal" and lp_coupling and not _has_limits(h, pm):
            set_limits(h, pm)
            lim = left()
            _run(h, None if lim is None else lim / 2)
            term = _lp(h)
        out.lp_seconds = time.perf_counter() - t1
        if term == "infeasible":
            out.termination = "infeasible"
            out.message = "the LP relaxation has no solution"
            return out
        if term == "optimal":
            out.lp_bound = out.bound = h.getInfo().objective_function_value * scale
            z = np.array(h.getSolution().col_value)
            has = pm.y >= 0
            y_lp = np.where(has, z[np.where(has, pm.y, 0)], 0.0)
            out.lp_y = y_lp
            has = pm.x >= 0
            x_lp = np.where(has, z[np.where(has, pm.x, 0)], 0.0)
        else:
            notes.append("LP relaxation not solved within half the time left: no LP bound")
        del h
    if done():
        return finished("the LP bound proves the gap")
    # -- 2a. LP-guided plan by truck group
    if heuristic and groups and strong and y_lp is not None and len(truck_groups(data)) > 1:
        t1 = time.perf_counter()
        budget = left()
        gp = group_plan(data, x_lp, y_lp, gap=gap, workers=workers, bound=out.bound,
                        deadline=None if budget is None else t1 + group_share * budget)
        notes.append(f"LP-guided MIPs by truck group: {gp.message}")
        if gp.x is not None and not offer(gp.x, "LP-guided by truck group"):
            # a group that overran its share of a limit: postponing orders may mend it
            offer(repair_forward(data, gp.x), "LP-guided by truck group, repaired")
        out.heuristic_seconds += time.perf_counter() - t1
    if done():
        return finished("the LP bound proves the gap; full MIP not needed")
    # the whole model is built only now: not at all when the groups' plan is within the gap,
    # and after the group streams' fork, which then copies less
    mip = to_highs(pm)
    for k, v in (MIP_OPTIONS | (options or {})).items():
        mip.setOptionValue(k, v)
    stage = {"name": "MIP"}

    def on_improving(event):
        # every plan HiGHS finds is checked on the instance (its own objective carries
        # slack: spare trucks or open slots without an order), kept if best, and ends the
        # run once within `gap` of our bound, which HiGHS does not know
        x = orders_of(pm, data, np.asarray(event.data_out.mip_solution, dtype=float))
        offer(x, stage["name"])
        if done():
            stage["stop"] = True

    def on_interrupt(event):
        # set both ways: HiGHS keeps the flag between runs of the same instance; the
        # deadline is the caller's wall clock, which HiGHS's own limit may overrun
        late = time_limit is not None and time.perf_counter() > t0 + time_limit
        event.data_in.user_interrupt = bool(stage.get("stop") or late)

    mip.cbMipImprovingSolution += on_improving
    mip.cbMipInterrupt += on_interrupt
    # -- 2b. LP-guided plan on the whole model
    if heuristic and y_lp is not None:
        t1 = time.perf_counter()
        is_open = (y_lp > _OPEN) & (pm.y >= 0)
        if out.x is not None:
            is_open |= (out.x > 0) & (pm.y >= 0)
        stage["name"] = "LP-guided"
        share = heuristic_share if out.x is not None else 1.0
        budget = None if left() is None else left() * share
        mip.setOptionValue("mip_rel_gap", gap / 2)
        for k in range(widen + 1):
            rest = None if budget is None else budget - (time.perf_counter() - t1)
            if rest is not None and rest <= 0.5:
                break
            _set_open(mip, pm, is_open)
            if out.x is not None:
                _give_start(mip, pm, data, out.x)
            sec = _run(mip, rest)
            notes.append(f"LP-guided MIP ({int(is_open.sum())} slots open): "
                         f"{mip.getModelStatus().name} in {sec:.1f} s")
            if _has_solution(mip):
                offer(orders_of(pm, data, np.array(mip.getSolution().col_value)), "LP-guided")
                break
            if mip.getModelStatus().name != "kInfeasible":
                break  # out of time: a wider neighbourhood would not do better
            is_open = widen_slots(is_open) & (pm.y >= 0)
        out.heuristic_seconds += time.perf_counter() - t1
        _set_open(mip, pm, None)
    if done():
        return finished("the LP bound proves the gap; full MIP not needed")
    # -- 3. full MIP from the best plan
    t1 = time.perf_counter()
    stage["name"] = "MIP"
    mip.setOptionValue("mip_rel_gap", gap)
    if out.x is not None:
        _give_start(mip, pm, data, out.x)
    if time_limit is not None:
        # in a forked child killed shortly after the limit (`optimizer.highs.run_highs`):
        # on the full model HiGHS was seen to run 96 s on a 40 s limit, deaf to its own limit,
        # to cancelSolve and to the interrupt callback in some phase of its root node
        from optimizer.highs import run_highs

        hr = run_highs(mip, left())
        if hr.x is not None:
            offer(orders_of(pm, data, np.asarray(hr.x, dtype=float)), "MIP")
        mb, status = hr.bound, hr.termination
        notes.append(hr.message)
    else:
        _run(mip, None)
        if _has_solution(mip):
            offer(orders_of(pm, data, np.array(mip.getSolution().col_value)), "MIP")
        mb = mip.getInfo().mip_dual_bound
        status = {"kOptimal": "optimal", "kInfeasible": "infeasible"}.get(
            mip.getModelStatus().name, "error")
    out.mip_seconds = time.perf_counter() - t1
    if math.isfinite(mb):
        out.bound = float(np.nanmax([mb * scale, out.bound]))
    if status == "infeasible" and out.x is None:
        out.termination = "infeasible"
    elif done() or status == "optimal":
        out.termination = "optimal"
    elif time_limit is not None:
        out.termination = "time_limit"
    else:
        out.termination = "error"
    notes.append(f"full MIP: {status} in {out.mip_seconds:.1f} s")
    out.message = "; ".join(notes)
    return out
