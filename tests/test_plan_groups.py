"""The LP-guided plan by truck group (`optimizer.plan_groups`) and its place in the array
pipeline (`optimizer.plan_search.matrix_plan`). Known answers: the full MIP solved to
optimality (checked against enumeration in test_plan.py); every plan re-checked on the
whole instance."""

import dataclasses
import os

import numpy as np
import pytest

from builders import Lazy, limited_cases

from optimizer import plan_groups, plan_matrix
from optimizer.plan import check_plan, evaluate, result_from_orders, solve_plan_data
from optimizer.plan_decompose import truck_groups
from optimizer.plan_groups import _deal, _fork_stream, _stream, group_plan, lp_from_groups
from optimizer.plan_matrix import build_plan_matrix, to_highs
from optimizer.plan_search import matrix_plan

EXACT = 1e-9


CASES = Lazy(lambda: [(data, opt) for _, data, opt in
                     limited_cases(price=False, heuristic=False)])


def _lp(data):
    """(x, y, value) of the strong model's LP relaxation with every row."""
    pm = build_plan_matrix(data)
    h = to_highs(pm, relax=True)
    h.run()
    z = np.asarray(h.getSolution().col_value)

    def grid(g):
        return np.where(g >= 0, z[np.where(g >= 0, g, 0)], 0.0)

    return grid(pm.x), grid(pm.y), h.getInfo().objective_function_value * data.money_scale


def test_cases_have_several_truck_groups_and_binding_limits():
    assert len(CASES) == 4
    for data, opt in CASES:
        assert len(truck_groups(data)) == 4  # A, B, C with trucks; D's SKU without
        assert evaluate(data, _orders(data, opt))["cost"] == pytest.approx(opt.objective,
                                                                           rel=1e-9)
        free = solve_plan_data(dataclasses.replace(data, budget=None, warehouse=None),
                               gap=EXACT, lp_bound=False)
        assert opt.objective > free.objective + 1e-6  # the limits cost something


def _orders(data, res):
    x = np.zeros((data.n, data.T))
    pos = {s: i for i, s in enumerate(data.sku)}
    for r in res.orders.itertuples():
        x[pos[r.sku], r.order_period - 1] += r.quantity
    return x


@pytest.mark.parametrize("k", range(4))
@pytest.mark.parametrize("workers", [1, 2])
def test_group_plan_meets_every_rule_and_costs_no_less_than_the_optimum(k, workers):
    data, opt = CASES[k]
    x_lp, y_lp, lp = _lp(data)
    gp = group_plan(data, x_lp, y_lp, gap=1e-4, workers=workers)
    assert gp.streams == min(workers, 4)
    assert all(oc is not None for oc in gp.groups)
    assert gp.x is not None, gp.message
    ev = evaluate(data, gp.x)
    # the groups' own rules hold by construction; the limits hold unless a group overran its
    # share, which its outcome then reports
    own = [v for v in ev["violations"] if not v.startswith(("budget", "warehouse"))]
    assert not own
    overran = any(oc.over_budget > 1e-6 or oc.over_space > 1e-6 for oc in gp.groups)
    assert overran or not ev["violations"]
    assert ev["cost"] >= opt.objective * (1 - 1e-9) - 1e-9
    assert ev["cost"] >= lp * (1 - 1e-9)
    for oc in gp.groups:  # each group's plan: its objective is at or above its MIP bound
        assert oc.objective >= oc.bound * (1 - 1e-9) - 1e-6


def test_the_streams_shares_add_up_to_the_limits():
    """Two streams each under its share: the union spends at most the budget in every
    period, and fits the warehouse, whenever no group overran its share."""
    checked = 0
    for data, _ in CASES:
        x_lp, y_lp, _ = _lp(data)
        gp = group_plan(data, x_lp, y_lp, gap=1e-4, workers=2)
        if any(oc.over_budget > 1e-6 or oc.over_space > 1e-6 for oc in gp.groups):
            continue
        ev = evaluate(data, gp.x)
        assert (ev["spend"] <= data.budget * (1 + 1e-7) + 1e-6).all()
        assert (ev["space"] <= data.space_limit * (1 + 1e-7) + 1e-6).all()
        checked += 1
    assert checked >= 2


def test_deal_balances_weights_heaviest_first():
    assert _deal(np.array([5.0, 1.0, 4.0, 2.0]), 2) == [[0, 1], [2, 3]]  # loads 6 and 6
    assert _deal(np.array([5.0, 1.0]), 3) == [[0], [1]]  # no empty stream


def test_a_forked_stream_returns_what_the_same_stream_gives_in_process():
    data, _ = CASES[1]
    x_lp, y_lp, _ = _lp(data)
    parts = truck_groups(data)
    on = np.maximum(evaluate(data, x_lp)["net"], 0.0)
    ks = [2, 0]
    args = (data, parts, ks, x_lp, on, y_lp, data.budget.copy(), data.space_limit.copy(),
            (100.0, 100.0), 1e-6, None)
    here = {}
    _stream(*args, lambda k, x, oc: here.__setitem__(k, x))
    pid, reader = _fork_stream(*args)
    there = {}
    while (msg := reader.recv()) is not None:
        assert msg[0] != "failed", msg
        there[msg[0]] = msg[1]
    os.waitpid(pid, 0)
    assert sorted(here) == sorted(there) == [0, 2]
    for k in ks:
        np.testing.assert_allclose(there[k], here[k])


def test_a_stream_whose_process_dies_leaves_no_plan(monkeypatch):
    """A child that fails reports nothing: group_plan returns no plan instead of a union
    with groups missing (their SKUs would order nothing)."""
    data, _ = CASES[0]
    x_lp, y_lp, _ = _lp(data)
    parent = os.getpid()
    real = plan_groups._stream

    def dies_in_child(*a, **kw):
        if os.getpid() != parent:
            raise RuntimeError("child fails")
        return real(*a, **kw)

    monkeypatch.setattr(plan_groups, "_stream", dies_in_child)
    gp = group_plan(data, x_lp, y_lp, gap=1e-4, workers=2)
    assert gp.x is None
    assert "no plan for every group" in gp.message
    assert sum(oc is None for oc in gp.groups) >= 1


@pytest.mark.parametrize("k", range(4))
def test_the_pipeline_with_the_group_stage_still_reaches_the_exact_optimum(k):
    data, opt = CASES[k]
    out = matrix_plan(data, gap=EXACT, groups=True)
    assert out.termination == "optimal"
    assert out.objective == pytest.approx(opt.objective, rel=1e-7)
    res = result_from_orders(data, out.x)
    res.bound, res.gap = out.bound, 0.0
    assert not check_plan(data, res)
    assert "truck group" in out.message


@pytest.mark.parametrize("k", range(4))
def test_the_lp_from_the_groups_bases_is_the_whole_lp(k):
    """Same optimum as the whole LP solved from scratch, in few simplex iterations: the
    groups' bases with the limit rows basic are an optimal basis without those rows."""
    data, _ = CASES[k]
    pm = build_plan_matrix(data)
    h = lp_from_groups(data, pm)
    assert h is not None
    assert h.getModelStatus().name == "kOptimal"
    assert h.getInfo().objective_function_value * data.money_scale == pytest.approx(
        _lp(data)[2], rel=1e-9)
    free = to_highs(pm, relax=True, without_limits=True)
    free.run()
    scratch = free.getInfo().simplex_iteration_count
    assert h.getInfo().simplex_iteration_count <= scratch


def test_the_lp_from_the_groups_gives_up_on_a_row_it_cannot_match(monkeypatch):
    """A group model whose rows differ from the whole model's (here: one coefficient off)
    returns None, and the pipeline then solves the whole LP itself (its group MIPs see the
    same wrong models: their plans are checked on the instance like any other)."""
    data, opt = CASES[0]
    pm = build_plan_matrix(data)
    original = plan_matrix.build_plan_matrix

    def off(d, *a, **kw):
        g = original(d, *a, **kw)
        if d.n < data.n:
            g.A = g.A.copy()
            g.A.data[0] *= 1.5
        return g

    monkeypatch.setattr(plan_matrix, "build_plan_matrix", off)
    assert lp_from_groups(data, pm) is None
    out = matrix_plan(data, gap=EXACT)
    assert out.objective == pytest.approx(opt.objective, rel=1e-7)
