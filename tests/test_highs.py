"""The one solve path (`optimizer.highs.solve_model`): the watchdog past the time limit."""

import numpy as np
import pyomo.environ as pyo

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
    # cancels it. Here the limit is huge and the watchdog set to 1 s: the solve comes back
    # within seconds as time_limit (or, on a machine fast enough, optimal before then)
    monkeypatch.setattr(highs, "watchdog_delay", lambda limit: 1.0)
    mdl = _hard_knapsack()
    out = highs.solve_model(mdl, time_limit=10_000.0)
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
