"""One solve path for Pyomo models: HiGHS through Pyomo's appsi interface (persistent,
takes a MIP start), or any Pyomo `SolverFactory` name, returning a `SolverOutcome`.

Two status axes, as in Pyomo's contrib.solver: why the solver stopped (`termination`) and
what we hold (`solution`: none | feasible | optimal). Infeasible and time-limited solves are
returned, never raised. HiGHS's reported run time is cumulative on a persistent instance, so
the wall time is measured here.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import pyomo.environ as pyo


class SolverUnavailable(RuntimeError):
    """The requested solver cannot be run here; install it or pick --solver appsi_highs."""


@dataclass
class SolverOutcome:
    termination: str  # optimal | infeasible | time_limit | unbounded | error
    solution: str  # none | feasible | optimal
    objective: float  # incumbent objective, nan when none
    bound: float  # best bound reported by the solver, nan when unknown
    seconds: float
    duals: dict = field(default_factory=dict)  # constraint data -> dual (LPs only)
    message: str = ""


def watchdog_delay(time_limit: float) -> float:
    """Seconds after which a solve with `time_limit` is cancelled from outside: HiGHS
    checks its own limit between phases, and a large MIP was seen to stay in root cut
    separation for minutes past it. Half the limit again plus 10 s leaves HiGHS every
    chance to stop by itself first."""
    return 1.5 * float(time_limit) + 10.0


def _appsi(time_limit, mip_gap, warmstart):
    from pyomo.contrib.appsi.solvers import Highs

    opt = Highs()
    if not opt.available():
        raise SolverUnavailable("HiGHS (highspy) is not available: pip install highspy")
    opt.config.stream_solver = False
    opt.config.load_solution = False
    if time_limit is not None:
        opt.config.time_limit = max(float(time_limit), 0.01)
    if mip_gap is not None:
        opt.config.mip_gap = float(mip_gap)
    opt.config.warmstart = bool(warmstart)
    return opt


def _interrupted_incumbent(opt):
    """(objective, bound, found) of a HiGHS MIP stopped by `cancelSolve`: appsi reports the
    interrupt as an unknown outcome and drops the incumbent, but HiGHS keeps it (primal
    solution status 2 = feasible) and its dual bound."""
    highs = getattr(opt, "_solver_model", None)
    if highs is None:
        return None, None, False
    info = highs.getInfo()
    sol = highs.getSolution()
    opt._sol = sol  # what appsi's load_vars reads
    bound = info.mip_dual_bound if info.mip_node_count >= 0 else None
    if int(info.primal_solution_status) == 2 and sol.value_valid:
        return float(info.objective_function_value), bound, True
    return None, bound, False


def solve_model(model: pyo.ConcreteModel, *, solver: str = "appsi_highs", time_limit=None,
                mip_gap=None, warmstart: bool = False, want_duals: bool = False,
                persistent=None) -> SolverOutcome:
    """Solve `model`; load the incumbent into its variables when there is one.

    `warmstart=True` hands the current variable values to HiGHS as a MIP start (every
    variable must hold a value: appsi fills unset ones with 0 and HiGHS rejects a partial
    start). Pass a `persistent` appsi solver to reuse one across re-solves.
    """
    start = time.perf_counter()
    if solver in ("appsi_highs", "highs"):
        opt = persistent or _appsi(time_limit, mip_gap, warmstart)
        if persistent is not None:
            if time_limit is not None:
                opt.config.time_limit = max(float(time_limit), 0.01)
            opt.config.warmstart = bool(warmstart)
        from pyomo.contrib.appsi.base import TerminationCondition as TC

        fired = []
        timer = None
        if time_limit is not None:
            import threading

            def cancel():
                highs = getattr(opt, "_solver_model", None)
                if highs is not None:
                    fired.append(True)
                    highs.cancelSolve()  # HiGHS runs without the GIL: this lands at once

            timer = threading.Timer(watchdog_delay(time_limit), cancel)
            timer.daemon = True
            timer.start()
        try:
            res = opt.solve(model)
        finally:
            if timer is not None:
                timer.cancel()
        seconds = time.perf_counter() - start
        tc = res.termination_condition
        term = {TC.optimal: "optimal", TC.infeasible: "infeasible",
                TC.maxTimeLimit: "time_limit", TC.unbounded: "unbounded",
                TC.infeasibleOrUnbounded: "infeasible"}.get(tc, "error")
        note = str(tc)
        obj = res.best_feasible_objective
        bound = res.best_objective_bound
        if fired and term == "error":
            term = "time_limit"
            obj, bound, kept = _interrupted_incumbent(opt)
            note = (f"HiGHS cancelled {watchdog_delay(time_limit):.0f} s in, well past its "
                    f"{time_limit:g} s limit; " + ("its incumbent and bound are kept" if kept
                                                    else "it held no incumbent"))
        has = obj is not None and math.isfinite(obj)
        if has:
            opt.load_vars() if fired else res.solution_loader.load_vars()
        duals = {}
        if want_duals and term == "optimal":
            duals = res.solution_loader.get_duals()
        return SolverOutcome(
            termination=term,
            solution="optimal" if term == "optimal" else ("feasible" if has else "none"),
            objective=float(obj) if has else math.nan,
            bound=float(bound) if bound is not None and math.isfinite(bound) else math.nan,
            seconds=seconds, duals=duals, message=note)
    # any other Pyomo solver by name (no MIP start, no persistence)
    opt = pyo.SolverFactory(solver)
    if opt is None or not opt.available(exception_flag=False):
        raise SolverUnavailable(f"solver {solver!r} is not available to Pyomo; "
                                "use --solver appsi_highs")
    if want_duals and not hasattr(model, "dual"):
        model.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
    res = opt.solve(model, load_solutions=False)
    seconds = time.perf_counter() - start
    tc = str(res.solver.termination_condition)
    term = "optimal" if tc == "optimal" else ("infeasible" if "infeasible" in tc else
                                               ("time_limit" if "Time" in tc else "error"))
    has = len(res.solution) > 0
    if has:
        model.solutions.load_from(res)
    obj = pyo.value(next(model.component_data_objects(pyo.Objective, active=True))) if has else math.nan
    duals = dict(model.dual.items()) if want_duals and has and hasattr(model, "dual") else {}
    return SolverOutcome(term, "optimal" if term == "optimal" else ("feasible" if has else "none"),
                         obj, obj if term == "optimal" else math.nan, seconds, duals, tc)
