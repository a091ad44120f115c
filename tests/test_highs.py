"""The one solve path (`optimizer.highs.solve_model`): the watchdog past the time limit and
the hard limit (HiGHS in a forked child killed at its deadline)."""

import math
import time

import numpy as np
import pyomo.environ as pyo
import pytest

from optimizer import highs


def _hard_knapsack(n=400, m=40, seed=0):
    # a multi-dimensional 0-1 knapsack: HiGHS needs far more than a second to prove it
    rng = np.random.default_rng(seed)
    w = rng.integers(10, 100, (m, n))
    v = rng.integers(10, 100, n)
    mdl = pyo.ConcreteModel()
    mdl.x = pyo.Var(range(n), domain=pyo.Binary)
    mdl.cap = pyo.ConstraintList()
    for k in range(m):
        mdl.cap.add(sum(int(w[k, i]) * mdl.x[i] for i in range(n)) <= int(w[k].sum() // 3))
    mdl.value = pyo.Objective(expr=sum(int(v[i]) * mdl.x[i] for i in range(n)),
                              sense=pyo.maximize)
    return mdl


def test_watchdog_cancels_a_solve_running_past_its_limit(monkeypatch):
    # HiGHS was seen to overrun its own time limit in root cut separation; the watchdog
    # cancels it (in process: hard_limit=False). Here the limit is huge and the watchdog set
    # to 1 s: the solve comes back within seconds as time_limit (or, on a machine fast
    # enough, optimal before then)
    monkeypatch.setattr(highs, "watchdog_delay", lambda limit: 1.0)
    mdl = _hard_knapsack()
    out = highs.solve_model(mdl, time_limit=10_000.0, hard_limit=False)
    if out.termination == "optimal":
        assert out.seconds < 1.5
    else:
        assert out.termination == "time_limit"
        assert out.seconds < 6.0
    # the incumbent HiGHS held when cancelled comes back, loaded into the model, with its
    # bound (HiGHS finds knapsack solutions within a second)
    assert out.solution in ("feasible", "optimal")
    assert abs(pyo.value(mdl.value) - out.objective) <= 1e-6 * abs(out.objective)
    assert all(pyo.value(c.body) <= c.upper + 1e-6 for c in mdl.cap.values())
    x = np.array([mdl.x[i].value for i in range(400)])
    assert np.allclose(x, np.round(x), atol=1e-6)
    assert out.bound >= out.objective - 1e-6  # maximisation: the bound lies above


def test_watchdog_leaves_a_solve_within_its_limit_alone():
    out = highs.solve_model(_hard_knapsack(n=30, m=3), time_limit=60.0)
    assert out.termination == "optimal" and out.solution == "optimal"
    assert highs.watchdog_delay(60.0) == 100.0


# --- the hard limit: HiGHS in a forked child, killed at kill_delay(time_limit) ---------------

def _market_split(m=4, n=40, seed=3):
    # Cornuejols-Dawande market split with a planted 0-1 solution: m equality rows with
    # coefficients in [0, 99] over n binaries; about 2^n / 100^m * m^m other solutions are
    # expected (~0.1 here), so the planted one is all there is, and branch and bound needs
    # far longer than these tests allow to find it (or to prove it optimal)
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 100, (m, n))
    planted = rng.integers(0, 2, n)
    cost = rng.integers(1, 20, n)
    mdl = pyo.ConcreteModel()
    mdl.x = pyo.Var(range(n), domain=pyo.Binary)
    mdl.split = pyo.Constraint(range(m), rule=lambda b, k: sum(
        int(a[k, j]) * b.x[j] for j in range(n)) == int(a[k] @ planted))
    mdl.cost = pyo.Objective(expr=sum(int(cost[j]) * mdl.x[j] for j in range(n)))
    return mdl, planted, float(cost @ planted)


def _assert_incumbent_loaded(mdl, out, sense):
    # the loaded variables are integral, meet every row and reproduce the objective; the
    # bound lies on the right side of it
    obj = next(mdl.component_data_objects(pyo.Objective, active=True))
    assert abs(pyo.value(obj) - out.objective) <= 1e-6 * max(1.0, abs(out.objective))
    for con in mdl.component_data_objects(pyo.Constraint, active=True):
        body = pyo.value(con.body)
        assert con.lower is None or body >= pyo.value(con.lower) - 1e-6
        assert con.upper is None or body <= pyo.value(con.upper) + 1e-6
    x = np.array([v.value for v in mdl.x.values()])
    assert np.allclose(x, np.round(x), atol=1e-6)
    assert math.isfinite(out.bound)
    if sense == "min":
        assert out.bound <= out.objective + 1e-6
    else:
        assert out.bound >= out.objective - 1e-6


def test_kill_delay_leaves_highs_time_to_stop_by_itself():
    assert highs.kill_delay(120.0) == 120.0 + 2.0 + 6.0
    assert highs.kill_delay(0.0) == 2.0


def test_hard_limit_kills_a_solve_running_past_its_limit(monkeypatch):
    # the child is killed 2 s in while HiGHS's own limit is 10,000 s: the call comes back in
    # seconds (the bound is generous for a loaded 2-core machine; HiGHS alone runs minutes)
    # with the last incumbent the child streamed (HiGHS finds knapsack solutions at once)
    monkeypatch.setattr(highs, "kill_delay", lambda limit: 2.0)
    mdl = _hard_knapsack()
    t0 = time.perf_counter()
    out = highs.solve_model(mdl, time_limit=10_000.0)
    assert time.perf_counter() - t0 < 12.0
    assert out.termination == "time_limit" and out.solution == "feasible"
    assert "killed" in out.message
    _assert_incumbent_loaded(mdl, out, "max")


def test_hard_limit_counts_the_translation(monkeypatch):
    # the deadline runs from the call: a translation into HiGHS slower than the limit is
    # killed too, and the call returns without a solution
    from pyomo.contrib.appsi.solvers import Highs

    def slow(self, model):
        time.sleep(600)

    monkeypatch.setattr(Highs, "set_instance", slow)
    monkeypatch.setattr(highs, "kill_delay", lambda limit: 1.0)
    mdl = _hard_knapsack(n=30, m=3)
    t0 = time.perf_counter()
    out = highs.solve_model(mdl, time_limit=1000.0)
    assert time.perf_counter() - t0 < 11.0
    assert (out.termination, out.solution) == ("time_limit", "none")
    assert "still translating" in out.message
    assert all(v.value is None for v in mdl.x.values())


def test_hard_limit_returns_highs_own_time_limit_with_incumbent_and_bound():
    # HiGHS stops by itself at 1 s and reports; the child hands over its incumbent and bound
    mdl = _hard_knapsack()
    t0 = time.perf_counter()
    out = highs.solve_model(mdl, time_limit=1.0)
    assert time.perf_counter() - t0 < 1.0 + 10.0
    assert out.termination == "time_limit" and out.solution == "feasible"
    _assert_incumbent_loaded(mdl, out, "max")


def test_hard_limit_hands_the_mip_start_to_highs():
    # the planted solution is the market split's only one: with it as MIP start the child
    # returns it (minimisation: bound below), without a start HiGHS would hold nothing
    mdl, planted, planted_cost = _market_split()
    for j, v in mdl.x.items():
        v.set_value(float(planted[j]))
    out = highs.solve_model(mdl, time_limit=1.0, warmstart=True, hard_limit=True)
    assert out.solution in ("feasible", "optimal")
    assert out.objective == pytest.approx(planted_cost)
    _assert_incumbent_loaded(mdl, out, "min")


@pytest.mark.parametrize("seed", [0, 1])
def test_hard_limit_completes_as_the_solve_in_process(seed):
    # a MIP solved to optimality: same outcome and plan from the child and in process
    # (a variable no constraint uses is not HiGHS's and keeps its value in both)
    got = {}
    for hard in (True, False):
        mdl = _hard_knapsack(n=30, m=3, seed=seed)
        mdl.unused = pyo.Var(initialize=7.0)
        out = highs.solve_model(mdl, time_limit=60.0, hard_limit=hard)
        got[hard] = (out.termination, out.solution, out.objective, out.bound,
                     [round(v.value) for v in mdl.x.values()], mdl.unused.value)
    assert got[True] == got[False]
    assert got[True][:2] == ("optimal", "optimal") and got[True][-1] == 7.0


def test_hard_limit_reports_infeasible_as_in_process():
    mdl = pyo.ConcreteModel()
    mdl.x = pyo.Var(range(3), domain=pyo.Binary)
    mdl.odd = pyo.Constraint(expr=2 * mdl.x[0] + 2 * mdl.x[1] + 2 * mdl.x[2] == 3)
    mdl.cost = pyo.Objective(expr=sum(mdl.x.values()))
    out = highs.solve_model(mdl, time_limit=10.0, hard_limit=True)
    assert (out.termination, out.solution) == ("infeasible", "none")
    assert math.isnan(out.objective)


def test_lp_and_unlimited_solves_stay_in_process(monkeypatch):
    # no fork for an LP with a limit (duals come back) nor for a MIP without one
    def no_fork():
        raise AssertionError("forked")

    monkeypatch.setattr(highs.os, "fork", no_fork)
    lp = pyo.ConcreteModel()
    lp.x = pyo.Var(range(2), bounds=(0, None))
    lp.need = pyo.Constraint(expr=lp.x[0] + 2 * lp.x[1] >= 4)
    lp.cost = pyo.Objective(expr=3 * lp.x[0] + 2 * lp.x[1])
    out = highs.solve_model(lp, time_limit=10.0, want_duals=True)
    assert out.termination == "optimal" and out.objective == pytest.approx(4.0)
    assert out.duals[lp.need] == pytest.approx(1.0)
    out = highs.solve_model(_hard_knapsack(n=30, m=3))
    assert out.termination == "optimal"


def test_hard_limit_falls_back_in_process_without_fork(monkeypatch):
    monkeypatch.setattr(highs, "fork_available", lambda: False)
    out = highs.solve_model(_hard_knapsack(n=30, m=3), time_limit=60.0, hard_limit=True)
    assert out.termination == "optimal"


def test_hard_limit_falls_back_in_process_when_fork_fails(monkeypatch):
    def no_memory():
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(highs.os, "fork", no_memory)
    out = highs.solve_model(_hard_knapsack(n=30, m=3), time_limit=60.0, hard_limit=True)
    assert out.termination == "optimal"
    h, w, cap, v = _highs_knapsack(n=30, m=3)
    run = highs.run_highs(h, 60.0)
    assert run.termination == "optimal" and not run.killed
    _assert_knapsack_plan(run, w, cap, v)


def test_hard_limit_reports_a_failing_child_as_error(monkeypatch):
    # an exception inside the child comes back as termination "error" naming it, not raised
    from pyomo.contrib.appsi.solvers import Highs

    def broken(self, model, timer=None):
        raise RuntimeError("solver exploded")

    monkeypatch.setattr(Highs, "solve", broken)
    out = highs.solve_model(_hard_knapsack(n=30, m=3), time_limit=60.0)
    assert (out.termination, out.solution) == ("error", "none")
    assert "solver exploded" in out.message


# --- run_highs: the same hard limit for a highspy instance built without Pyomo -------------

def _highs_knapsack(n=400, m=40, seed=0):
    # the knapsack of _hard_knapsack as a highspy instance; returns (highs, w, cap, v)
    import highspy

    rng = np.random.default_rng(seed)
    w = rng.integers(10, 100, (m, n))
    v = rng.integers(10, 100, n)
    cap = w.sum(axis=1) // 3
    h = highspy.Highs()
    h.silent()
    h.addVars(n, np.zeros(n), np.ones(n))
    h.changeColsIntegrality(n, np.arange(n), np.array([highspy.HighsVarType.kInteger] * n))
    h.changeColsCost(n, np.arange(n), v.astype(float))
    h.changeObjectiveSense(highspy.ObjSense.kMaximize)
    for k in range(m):
        h.addRow(-highspy.kHighsInf, float(cap[k]), n, np.arange(n), w[k].astype(float))
    return h, w, cap, v


def _assert_knapsack_plan(run, w, cap, v):
    assert run.x is not None
    x = np.asarray(run.x)
    assert np.allclose(x, np.round(x), atol=1e-6)
    assert np.all(w @ x <= cap + 1e-6)
    assert v @ x == pytest.approx(run.objective)
    assert run.bound >= run.objective - 1e-6  # maximisation


def test_run_highs_kills_a_run_past_its_limit(monkeypatch):
    monkeypatch.setattr(highs, "kill_delay", lambda limit: 2.0)
    h, w, cap, v = _highs_knapsack()
    t0 = time.perf_counter()
    run = highs.run_highs(h, 10_000.0)
    assert time.perf_counter() - t0 < 12.0
    assert run.killed and run.termination == "time_limit"
    _assert_knapsack_plan(run, w, cap, v)


def test_run_highs_completes_as_highs_in_process():
    h, w, cap, v = _highs_knapsack(n=30, m=3)
    run = highs.run_highs(h, 60.0)
    assert not run.killed and run.termination == "optimal"
    _assert_knapsack_plan(run, w, cap, v)
    h.run()  # the caller's instance was not run by run_highs; here it is
    assert h.getInfo().objective_function_value == pytest.approx(run.objective)
    assert run.bound == pytest.approx(run.objective)


def test_run_highs_hands_the_mip_start_to_highs():
    import highspy

    opt_model, planted, planted_cost = _market_split()
    from pyomo.contrib.appsi.solvers import Highs

    opt = Highs()
    opt.set_instance(opt_model)  # the market split as a highspy instance
    h = opt._solver_model
    h.silent()
    col = opt._pyomo_var_to_solver_var_map
    start = np.zeros(h.getNumCol())
    for j, var in opt_model.x.items():
        start[col[id(var)]] = planted[j]
    sol = highspy.HighsSolution()
    sol.col_value = start
    sol.value_valid = True
    h.setSolution(sol)
    run = highs.run_highs(h, 1.0)
    assert run.termination == "time_limit" and run.objective == pytest.approx(planted_cost)
    assert run.bound <= run.objective + 1e-6


def test_run_highs_never_reports_an_objective_its_solution_does_not_have(monkeypatch):
    # the integer choice master of the demo with an orders cap against the warehouse
    # (captured from the solver), with the pool's best mix as MIP start: HiGHS 1.16 with
    # presolve on ended "optimal" at an objective (and bound) below the true optimum while
    # handing back the start. Whatever HiGHS does, an "optimal" outcome must cost what it
    # says, its bound must not exceed the optimum found without the start, and an
    # inconsistent one comes back as an error without a bound
    from pathlib import Path

    import highspy

    import optimizer.solve as solve_mod
    from optimizer.io import load_instance
    from optimizer.replan import ScenarioSpec

    inst = load_instance(Path(__file__).resolve().parents[1] / "instances" / "demo")
    sc = ScenarioSpec(name="x", warehouse=1200.0, max_orders_per_year=300.0,
                      budget=700000.0).apply(inst.scenario)
    seen = []
    real = solve_mod._choose

    def spy(ctx, Z, R, start, rhs, *a):
        if Z.shape[1] > 10 and start is not None and not seen:
            C, U = solve_mod._columns(ctx, Z, R)
            seen.append((C, U, start, rhs))
        return real(ctx, Z, R, start, rhs, *a)

    monkeypatch.setattr(solve_mod, "_choose", spy)
    solve_mod.solve(inst.with_scenario(sc), gap=1e-4)
    C, U, start, rhs = seen[0]
    act = np.flatnonzero(np.isfinite(rhs))
    n, J = C.shape
    scale = float(np.abs(C).mean())

    def master(with_start):
        h = highspy.Highs()
        h.setOptionValue("output_flag", False)
        h.setOptionValue("mip_rel_gap", 1e-6)
        nv = n * J
        h.addVars(nv, np.zeros(nv), np.ones(nv))
        h.changeColsCost(nv, np.arange(nv, dtype=np.int32), (C / scale).ravel())
        h.changeColsIntegrality(nv, np.arange(nv, dtype=np.int32),
                                np.full(nv, highspy.HighsVarType.kInteger))
        for i in range(n):
            h.addRow(1.0, 1.0, J, np.arange(i * J, (i + 1) * J, dtype=np.int32), np.ones(J))
        for k in act:
            row = (U[k] / abs(rhs[k])).ravel()
            nz = np.flatnonzero(row)
            h.addRow(-highspy.kHighsInf, 1.0 - 1e-6, nz.size, nz.astype(np.int32), row[nz])
        if with_start:
            x = np.zeros(nv)
            x[np.arange(n) * J + start] = 1.0
            sol = highspy.HighsSolution()
            sol.col_value = list(x)
            sol.value_valid = True
            h.setSolution(sol)
        return h

    ref = highs.run_highs(master(False), 120.0)
    assert ref.termination == "optimal"
    run = highs.run_highs(master(True), 120.0)
    assert run.x is not None
    own = float((C / scale).ravel() @ run.x)
    assert run.objective == pytest.approx(own, rel=1e-6)
    if run.termination == "optimal":
        assert run.bound <= ref.objective * (1 + 1e-6)
    else:
        assert run.termination == "error" and math.isnan(run.bound)
