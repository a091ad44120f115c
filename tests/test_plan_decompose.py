"""Supplier decomposition of the purchase plan (`optimizer.plan_decompose`), the elastic
limits and per-period warehouse of the lot-sizing builder it relies on. Known answers are the
full model solved to optimality (itself checked against enumeration in test_plan.py)."""

import math

import numpy as np
import pyomo.environ as pyo
import pytest

from builders import Lazy, limited_cases

from formulations.lot_sizing import LotSizingData, build_lot_sizing
from optimizer.highs import solve_model
from optimizer.plan import (check_plan, evaluate, lp_relaxation, result_from_orders,
                            solve_plan_data)
from optimizer.plan_decompose import decomposed_plan, subset, truck_groups

EXACT = 1e-9


CASES = Lazy(limited_cases)


def test_cases_have_binding_limits():
    assert len(CASES) == 4
    for _, data, opt in CASES:
        free = solve_plan_data(LotSizingData(**{**data.__dict__, "budget": None,
                                                "warehouse": None}), gap=EXACT, lp_bound=False)
        assert opt.objective > free.objective + 1e-6  # the limits cost something


def test_parts_are_the_truck_groups_and_no_truck_skus():
    data = CASES[0][1]
    parts = truck_groups(data)
    assert sorted(np.concatenate(parts).tolist()) == list(range(data.n))
    sup = data.supplier
    assert all(len(set(sup[p])) == 1 for p in parts)  # one supplier per part here
    sd = subset(data, parts[0], budget=np.full(data.T, 5.0), warehouse=7.0)
    assert sd.n == parts[0].size and np.allclose(sd.budget, 5.0)
    assert np.allclose(sd.space_limit, 7.0)


@pytest.mark.parametrize("k", range(4))
def test_decomposed_plan_is_feasible_and_sandwiches_the_optimum(k):
    seed, data, opt = CASES[k]
    dec = decomposed_plan(data, gap=EXACT, part_gap=EXACT)
    # the bound by parts is exactly the LP of the whole model without the coupling rows
    whole = build_lot_sizing(data)
    lp, _ = lp_relaxation(whole, without=("budget", "warehouse"))
    assert dec.bound == pytest.approx(lp * data.money_scale, rel=1e-7, abs=1e-6)
    assert dec.bound <= opt.objective + 1e-6
    assert dec.x is not None, dec.message
    res = result_from_orders(data, dec.x)
    assert check_plan(data, res) == []
    assert dec.objective == pytest.approx(res.objective)
    assert dec.objective >= opt.objective - 1e-6 * max(1.0, opt.objective)  # never below


@pytest.mark.parametrize("k", range(4))
def test_solve_with_decomposition_reports_an_honest_gap(k):
    seed, data, opt = CASES[k]
    for gap in (1e-2, EXACT):
        res = solve_plan_data(data, gap=gap, decompose=True)
        assert check_plan(data, res) == []
        assert res.bound <= opt.objective + 1e-6 * max(1.0, opt.objective)
        assert res.objective >= opt.objective - 1e-6 * max(1.0, opt.objective)
        assert res.gap == pytest.approx((res.objective - res.bound) / res.objective)
        assert res.status == "optimal" and res.gap <= gap + 1e-9
        if gap == EXACT:  # the full MIP closes what the decomposition leaves
            assert res.objective == pytest.approx(opt.objective, rel=1e-7)


def _solve_elastic(data, penalty):
    m = build_lot_sizing(data, limit_penalty=penalty)
    out = solve_model(m, mip_gap=EXACT)
    assert out.termination == "optimal"
    return m, out.objective * data.money_scale


def test_elastic_limits_with_a_high_price_give_the_optimum_and_with_none_drop_them():
    seed, data, opt = CASES[0]
    m, val = _solve_elastic(data, (1e3, 1e3))
    assert val == pytest.approx(opt.objective, rel=1e-7)
    assert sum(v.value for v in m.over_budget.values()) <= 1e-7
    assert sum(v.value for v in m.over_space.values()) <= 1e-7
    free = LotSizingData(**{**data.__dict__, "budget": None, "warehouse": None})
    free_opt = solve_plan_data(free, gap=EXACT, lp_bound=False).objective
    _, val0 = _solve_elastic(data, (0.0, 0.0))
    assert val0 == pytest.approx(free_opt, rel=1e-7)
    # a budget no plan meets: infeasible with hard rows, priced excess when elastic
    broke = LotSizingData(**{**data.__dict__, "budget": 1.0})
    hard = solve_model(build_lot_sizing(broke), mip_gap=EXACT)
    assert hard.termination == "infeasible"
    m, val = _solve_elastic(broke, (2.0, 1e3))
    over = sum(v.value for v in m.over_budget.values()) * data.money_scale
    assert over > 0
    assert val == pytest.approx(pyo.value(m.cost) * data.money_scale, rel=1e-9)


def test_warehouse_per_period_equals_scalar_and_binds_where_tighter():
    seed, data, opt = CASES[1]
    T = data.T
    same = LotSizingData(**{**data.__dict__, "warehouse": np.full(T, data.warehouse)})
    res = solve_plan_data(same, gap=EXACT, lp_bound=False)
    assert res.objective == pytest.approx(opt.objective, rel=1e-7)
    space = opt.periods["space"].to_numpy()
    j = int(np.argmax(np.where(np.arange(T) >= data.lead.max(), space, -np.inf)))
    wh = np.full(T, data.warehouse)
    wh[j] = space[j] - 1.0  # one period tighter than the optimum uses
    tight = LotSizingData(**{**data.__dict__, "warehouse": wh})
    res = solve_plan_data(tight, gap=EXACT, lp_bound=False)
    if res.status == "infeasible":
        return
    assert check_plan(tight, res) == []
    assert res.periods["space"].to_numpy()[j] <= wh[j] + 1e-6
    assert res.objective >= opt.objective - 1e-6
    ev = evaluate(tight, np.zeros((data.n, T)))
    assert math.isfinite(ev["cost"])
