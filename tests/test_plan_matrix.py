"""The lot-sizing model as arrays (`optimizer.plan_matrix`) against the Pyomo builder it
mirrors: the same LP relaxation and MIP optimum (the Pyomo model's own optimum is checked
against enumeration and dynamic programmes in test_plan.py), the MIP start of a plan
feasible with the plan's cost, and the orders read back unchanged."""

import numpy as np
import pytest

from builders import small_plan_fields

from formulations.lot_sizing import LotSizingData, build_lot_sizing
from optimizer.plan import evaluate, lp_relaxation, solve_plan_data
from optimizer.plan_matrix import (build_plan_matrix, orders_of, plan_columns, set_limits,
                                   to_highs)

EXACT = 1e-9


def _data(seed, backlog=False, n=7, T=7):
    """Three suppliers with trucks and one SKU without; lead times 0-2 (stock that is data
    in the first periods), MOQ, packs, open orders; budget and warehouse cut into the plan."""
    rng = np.random.default_rng(seed)
    kw = small_plan_fields(rng, n, T, max_lead=3, least_on_hand=0)
    kw["arrivals"] = np.where(rng.random((n, T)) < 0.1, 10.0, 0.0)
    kw["shortage_cost"] = (np.where(rng.random(n) < 0.5, 20.0, np.nan) if backlog
                           else np.nan)
    free = LotSizingData(**kw)
    res = solve_plan_data(free, gap=EXACT, lp_bound=False)
    spend = res.periods["spend"].to_numpy()
    space = res.periods["space"].to_numpy()
    return LotSizingData(**kw, budget=0.8 * spend.max(),
                         warehouse=space.min() + 0.9 * (space.max() - space.min()))


CASES = [(seed, backlog) for seed in range(4) for backlog in (False, True)]


def _highs_value(h):
    return h.getInfo().objective_function_value


@pytest.mark.parametrize("seed,backlog", CASES)
@pytest.mark.parametrize("strong", [True, False])
def test_lp_relaxation_equals_the_pyomo_model(seed, backlog, strong):
    data = _data(seed, backlog)
    pm = build_plan_matrix(data, strong=strong)
    ref, _ = lp_relaxation(build_lot_sizing(data, strong=strong))
    h = to_highs(pm, relax=True)
    h.run()
    assert _highs_value(h) == pytest.approx(ref, rel=1e-8, abs=1e-9)
    # without the limits, then with them put back on the same instance (warm start)
    free, _ = lp_relaxation(build_lot_sizing(data, strong=strong),
                            without=("budget", "warehouse"))
    h = to_highs(pm, relax=True, without_limits=True)
    h.run()
    assert _highs_value(h) == pytest.approx(free, rel=1e-8, abs=1e-9)
    set_limits(h, pm)
    h.run()
    assert _highs_value(h) == pytest.approx(ref, rel=1e-8, abs=1e-9)


@pytest.mark.parametrize("seed,backlog", CASES)
def test_mip_optimum_equals_the_pyomo_model_and_start_round_trips(seed, backlog):
    data = _data(seed, backlog)
    opt = solve_plan_data(data, gap=EXACT, lp_bound=False)
    assert opt.status == "optimal"
    pm = build_plan_matrix(data, strong=True)
    h = to_highs(pm)
    h.setOptionValue("mip_rel_gap", EXACT)
    h.run()
    scale = data.money_scale
    assert _highs_value(h) * scale == pytest.approx(opt.objective, rel=1e-7)
    x = orders_of(pm, data, np.array(h.getSolution().col_value))
    ev = evaluate(data, x)
    assert ev["violations"] == []
    assert ev["cost"] == pytest.approx(opt.objective, rel=1e-7)
    # the columns a plan implies meet every row and bound and cost what the plan costs
    z = plan_columns(pm, data, x)
    r = pm.A @ z
    tol = 1e-6 * (1 + np.abs(r))
    assert (r >= pm.row_lo - tol).all() and (r <= pm.row_up + tol).all()
    assert (z >= pm.lb - 1e-9).all() and (z <= pm.ub + 1e-9).all()
    assert np.allclose(z[pm.integer], np.round(z[pm.integer]))
    assert (pm.c @ z + pm.offset) * scale == pytest.approx(ev["cost"], rel=1e-9)
    assert np.array_equal(orders_of(pm, data, z), x)


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("gap", [EXACT, 0.05, 0.5])
def test_matrix_plan_sandwiches_the_optimum_within_the_gap(seed, gap):
    from optimizer.plan_search import matrix_plan

    data = _data(seed)
    opt = solve_plan_data(data, gap=EXACT, lp_bound=False, direct=False)  # Pyomo path
    out = matrix_plan(data, gap=gap)
    assert out.termination == "optimal"
    assert evaluate(data, out.x)["violations"] == []
    assert out.bound <= opt.objective * (1 + 1e-9) <= out.objective * (1 + 1e-9) + 1e-9
    assert out.objective - out.bound <= gap * out.objective + 1e-9
    assert out.lp_bound <= out.bound + 1e-9
    assert out.history[-1][1] == out.objective
