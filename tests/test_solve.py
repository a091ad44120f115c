"""The constrained multi-SKU optimum: closed forms, bisection, enumeration, invariants."""

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
from builders import make_instance
from scipy.optimize import brentq

from optimizer import single_item as si
from optimizer.distributions import LeadTimeDemand
from optimizer.instance import NORMAL, Budget, Scenario, VehicleSpec, Vehicles, Warehouse
from optimizer.policy import evaluate_plan
from optimizer.solve import coupling_limits, solve


def check_plan(inst, res):
    """Every returned plan re-checked against the instance."""
    assert res.policy is not None
    z, r = res.policy.order_quantity, res.policy.reorder_point
    again = evaluate_plan(inst, z, r)
    assert res.objective == pytest.approx(float(again.total_cost.sum()), rel=1e-12)
    assert res.bound <= res.objective * (1 + 1e-12)
    assert res.gap == pytest.approx((res.objective - res.bound) / res.objective, abs=1e-12)
    assert np.all(z >= inst.moq * (1 - 1e-12))
    # per-SKU service floors hold (they are constraints of each SKU, not priced away)
    fill = np.isfinite(inst.fill_rate)
    assert np.all(again.fill_rate[fill] >= inst.fill_rate[fill] - 1e-9)
    cyc = np.isfinite(inst.cycle_service)
    assert np.all(again.cycle_service[cyc] >= inst.cycle_service[cyc] - 1e-9)
    packs = inst.order_multiple > 0
    assert np.allclose(np.round(z[packs] / inst.order_multiple[packs]) * inst.order_multiple[packs],
                       z[packs])
    lim = coupling_limits(inst)
    sc = inst.scenario
    mu = again.reorder_point - again.safety_stock
    for c in res.constraints:
        if c.name == "budget":
            w = 0.5 if sc.budget.basis == "average" else 1.0
            used = float((inst.unit_cost * (w * z + r - mu)).sum())
        elif c.name == "warehouse":
            w = 0.5 if sc.warehouse.basis == "average" else 1.0
            used = float((inst.unit_volume * (w * z + r - mu)).sum())
        elif c.name == "fill_rate":
            used = float((inst.annual_demand * (1 - again.fill_rate)).sum())
        else:
            used = float((inst.annual_demand / z).sum())
        assert used == pytest.approx(c.used, rel=1e-9)
        assert used <= c.limit * (1 + 1e-9)
    assert len(res.constraints) == int(lim.active.sum())


def deterministic_instance(scenario, n=6, seed=0):
    rng = np.random.default_rng(seed)
    D = rng.uniform(500, 20_000, n)
    K = rng.uniform(20, 300, n)
    c = rng.uniform(2, 80, n)
    h = 0.24 * c
    vol = rng.uniform(0.01, 0.2, n)
    return make_instance(D, K, h, c, unit_volume=vol, scenario=scenario)


def test_peak_budget_equals_lagrange_closed_form():
    # source: textbook multi-item EOQ with an investment limit (e.g. Hadley & Whitin; Silver,
    # Pyke & Peterson): Q_i = sqrt(2 K_i D_i / (h_i + 2 lambda c_i)), lambda s.t. sum c Q = B.
    base = deterministic_instance(Scenario())
    eoq = np.sqrt(2 * base.ordering_cost * base.annual_demand / base.holding_cost)
    B = 0.55 * float((base.unit_cost * eoq).sum())
    inst = base.with_scenario(Scenario(budget=Budget(limit=B, basis="peak")))

    def q(lam):
        return np.sqrt(2 * inst.ordering_cost * inst.annual_demand
                       / (inst.holding_cost + 2 * lam * inst.unit_cost))

    lam = brentq(lambda l: float((inst.unit_cost * q(l)).sum()) - B, 0, 1e4, xtol=1e-14)
    res = solve(inst, gap=1e-6)
    assert res.status == "optimal"
    check_plan(inst, res)
    assert res.policy.order_quantity == pytest.approx(q(lam), rel=1e-4)
    assert res.constraints[0].shadow_price == pytest.approx(lam, rel=1e-3)
    assert res.constraints[0].binding


def test_space_limit_equals_lagrange_closed_form():
    base = deterministic_instance(Scenario(), seed=1)
    eoq = np.sqrt(2 * base.ordering_cost * base.annual_demand / base.holding_cost)
    V = 0.4 * float((base.unit_volume * eoq / 2).sum())
    inst = base.with_scenario(Scenario(warehouse=Warehouse(capacity=V, basis="average")))

    def q(lam):  # average basis: sum vol Q / 2 <= V -> h + lam vol
        return np.sqrt(2 * inst.ordering_cost * inst.annual_demand
                       / (inst.holding_cost + lam * inst.unit_volume))

    lam = brentq(lambda l: float((inst.unit_volume * q(l) / 2).sum()) - V, 0, 1e7, xtol=1e-12)
    res = solve(inst, gap=1e-6)
    check_plan(inst, res)
    assert res.policy.order_quantity == pytest.approx(q(lam), rel=1e-4)


def test_stochastic_average_budget_equals_bisection_on_multiplier():
    rng = np.random.default_rng(5)
    n = 8
    D = rng.uniform(300, 8000, n)
    c = rng.uniform(5, 60, n)
    base = make_instance(D, rng.uniform(20, 150, n), 0.25 * c, c, demand_sd=0.5 * D,
                         lead_time_days=rng.uniform(7, 40, n), shortage_cost=2.5 * c)
    ltd = LeadTimeDemand.build(base.distribution, base.lead_time_demand_mean,
                               base.lead_time_demand_sd)

    def policy_at(lam):  # h -> h + lam c in both holding terms
        h = base.holding_cost + lam * c
        coef = si.CostCoefficients.build(D, base.ordering_cost, h / 2, h, base.shortage_cost)
        return si.optimize(coef, ltd)

    def invest(lam):
        s = policy_at(lam)
        return float((c * (s.order_quantity / 2 + s.reorder_point - ltd.mean)).sum())

    B = 0.7 * invest(0.0)
    lam = brentq(lambda l: invest(l) - B, 0, 100, xtol=1e-13)
    ref = policy_at(lam)
    inst = base.with_scenario(Scenario(budget=Budget(limit=B)))
    res = solve(inst, gap=1e-6)
    check_plan(inst, res)
    assert res.policy.order_quantity == pytest.approx(ref.order_quantity, rel=1e-4)
    assert res.policy.reorder_point == pytest.approx(ref.reorder_point, rel=1e-4)
    assert res.constraints[0].shadow_price == pytest.approx(lam, rel=1e-3)


def enumerate_plans(inst, zmax):
    """Exhaustive: every combination of feasible integer quantities (deterministic SKUs)."""
    options = []
    for i in range(inst.n):
        zs = np.arange(1, zmax + 1, dtype=float)
        zs = zs[zs >= inst.moq[i]]
        if inst.order_multiple[i] > 0:
            zs = zs[zs % inst.order_multiple[i] == 0]
        options.append(zs)
    grids = np.meshgrid(*options, indexing="ij")
    Z = np.stack([g.ravel() for g in grids], axis=1)  # (combos, n)
    sub = [evaluate_plan(inst, Z[:, i] * 0 + 1, np.zeros(1)) for i in []]  # noqa: F841
    costs = np.zeros(Z.shape[0])
    invest = np.zeros(Z.shape[0])
    u, cv = inst.vehicle_arrays()
    for i in range(inst.n):  # few SKUs: per-SKU vectorised over combinations
        z = Z[:, i]
        n = np.ceil(z / u[i] - 1e-9)
        costs += (inst.ordering_cost[i] + cv[i] * n) * inst.annual_demand[i] / z \
            + inst.holding_cost[i] * z / 2
        invest += inst.unit_cost[i] * z / 2
    ok = invest <= inst.scenario.budget.limit * (1 + 1e-12)
    j = np.flatnonzero(ok)[np.argmin(costs[ok])]
    return Z[j], costs[j]


@pytest.mark.parametrize("seed", range(6))
def test_tiny_vehicle_moq_budget_equals_enumeration(seed):
    rng = np.random.default_rng(seed)
    n = 3
    D = rng.uniform(300, 3000, n)
    c = rng.uniform(2, 20, n)
    weight = rng.uniform(1, 5, n)
    sc = Scenario(vehicles=Vehicles(default=VehicleSpec(capacity=float(rng.uniform(100, 300)),
                                                        measure="weight", cost=float(rng.uniform(40, 200)))))
    base = make_instance(D, rng.uniform(10, 80, n), 0.3 * c, c, unit_weight=weight,
                         moq=np.array([0.0, float(rng.integers(20, 60)), 0.0]),
                         order_multiple=np.array([1.0, 1.0, 5.0]), scenario=sc)
    z_free, _ = enumerate_plans(base.with_scenario(
        Scenario(budget=Budget(limit=1e12), vehicles=sc.vehicles)), 160)
    B = 0.6 * float((c * z_free / 2).sum())
    inst = base.with_scenario(Scenario(budget=Budget(limit=B), vehicles=sc.vehicles))
    z_best, cost_best = enumerate_plans(inst, 160)
    res = solve(inst, gap=1e-6)
    check_plan(inst, res)
    assert res.objective == pytest.approx(cost_best, rel=1e-9)


def test_non_binding_limits_return_single_item_optimum_with_zero_gap():
    inst = deterministic_instance(Scenario(budget=Budget(limit=1e12)))
    res = solve(inst)
    assert res.status == "optimal"
    check_plan(inst, res)
    assert res.objective == pytest.approx(res.baseline.objective, rel=1e-12)
    assert res.gap == 0.0
    assert res.constraints[0].shadow_price == 0.0
    assert not res.constraints[0].binding


def test_infeasible_budget_names_the_smallest_budget_moqs_allow():
    base = deterministic_instance(Scenario(), n=4)
    moq = np.array([5000.0, 8000.0, 0.0, 12000.0])

    least = float((base.unit_cost * moq / 2).sum())  # deterministic: R = E v, Z >= MOQ
    inst = replace(base, moq=moq).with_scenario(Scenario(budget=Budget(limit=0.8 * least)))
    res = solve(inst)
    assert res.status == "infeasible"
    assert res.policy is None and res.objective is None and res.gap == np.inf
    d = res.diagnosis[0]
    assert d["limit"] == "budget" and not d["feasible"]
    assert d["least_possible"] == pytest.approx(least, rel=1e-4)
    assert d["short_by"] == pytest.approx(0.2 * least, rel=1e-3)
    assert "budget" in res.message


def test_multiple_limits_with_fill_rate_floor_hold_and_bound_sandwich():
    rng = np.random.default_rng(11)
    n = 40
    D = rng.lognormal(7, 1, n)
    c = rng.lognormal(3, 0.8, n)
    base = make_instance(D, rng.uniform(20, 200, n), 0.22 * c, c, demand_sd=0.4 * D,
                         lead_time_days=rng.uniform(5, 30, n), shortage_cost=3 * c,
                         unit_volume=rng.uniform(0.001, 0.05, n))
    free = solve(base)
    inv = free.baseline_kpis.average_inventory_value
    vol = float((base.unit_volume * free.policy.average_inventory).sum())
    sc = Scenario(budget=Budget(limit=0.75 * inv), warehouse=Warehouse(capacity=0.7 * vol),
                  fill_rate_min=0.95)
    inst = base.with_scenario(sc)
    res = solve(inst, gap=1e-4)
    assert res.status == "optimal"
    check_plan(inst, res)
    assert res.gap <= 1e-4
    assert res.objective >= free.objective  # limits never make the plan cheaper


def test_time_limit_returns_flagged_result():
    rng = np.random.default_rng(2)
    n = 4000
    D = rng.lognormal(7, 1, n)
    c = rng.lognormal(3, 0.8, n)
    base = make_instance(D, rng.uniform(20, 200, n), 0.22 * c, c, demand_sd=0.4 * D,
                         shortage_cost=3 * c, unit_volume=rng.uniform(0.001, 0.05, n))
    inst = base.with_scenario(Scenario(budget=Budget(limit=1.0), warehouse=Warehouse(capacity=1.0),
                                       fill_rate_min=0.9))
    res = solve(inst, time_limit=0.2)
    assert res.status in ("time_limit", "infeasible")
    assert res.status != "optimal"


def test_two_process_pricing_equals_serial_pricing():
    from optimizer.generate import generate_instance
    from optimizer.io import instance_from_frames
    from optimizer.solve import PARALLEL_MIN_SKUS, _Context

    skus, sc = generate_instance(PARALLEL_MIN_SKUS + 200, seed=5)
    inst = instance_from_frames(skus, sc)
    lam = np.array([0.4, 150.0, 0.0, 0.0])
    serial = _Context(inst, coupling_limits(inst))
    serial.parallel = False
    both = _Context(inst, coupling_limits(inst))
    a, b = serial.price(lam), both.price(lam)
    assert both._pool is not None
    assert np.array_equal(a.z, b.z) and np.array_equal(a.r, b.r)
    assert a.priced_sum == pytest.approx(b.priced_sum, rel=1e-12)


def _smooth_stochastic(n=40, seed=3, fill_rate=None):
    """Normal demand, no steps; a shortage cost of 3 c per unit, or a fill-rate floor."""
    rng = np.random.default_rng(seed)
    D = rng.uniform(2_000, 30_000, n)
    c = rng.uniform(5, 60, n)
    service = dict(shortage_cost=3.0 * c) if fill_rate is None else dict(
        fill_rate=np.full(n, fill_rate))
    return make_instance(D, rng.uniform(30, 200, n), 0.25 * c, c, demand_sd=0.3 * D,
                         unit_volume=rng.uniform(0.01, 0.1, n), **service,
                         lead_time_days=rng.uniform(5, 30, n),
                         scenario=Scenario(budget=Budget(limit=1.0, basis="average"),
                                           warehouse=Warehouse(capacity=1.0)))


@pytest.mark.parametrize("fill_rate,step,tol", [(None, 1e-4, 2e-3), (0.97, 1e-2, 2e-2)])
def test_price_response_jacobian_matches_finite_differences(fill_rate, step, tol):
    # the Newton direction: d(use)/d(price) from the stationarity conditions equals central
    # differences of the exact pricing oracle on a smooth portfolio (normal demand, no
    # steps). With fill-rate floors (every one binding: no own shortage cost) R moves with Z
    # along b(R) = (1 - beta) Z, and the Jacobian follows that constraint (treating the
    # floor's price as fixed would let R swing with h_r); steps of 1% there, since the fill
    # search pins each floor's price to 1e-3, noise at 1e-4 steps
    from optimizer.solve import _Context

    inst = _smooth_stochastic(seed=3 if fill_rate is None else 4, fill_rate=fill_rate)
    ctx = _Context(inst, coupling_limits(inst))
    lam = np.array([0.4, 30.0, 0.0, 0.0])
    rnd = ctx.price(lam)
    if fill_rate is not None:
        assert np.all(rnd.penalty > 0)
    jac = ctx.response(rnd)
    for j in (0, 1):
        h = step * lam[j]
        up, dn = lam.copy(), lam.copy()
        up[j] += h
        dn[j] -= h
        fd = (ctx.price(up).total_use - ctx.price(dn).total_use) / (2 * h)
        assert jac[:2, j] == pytest.approx(fd[:2], rel=tol)


def test_baseline_is_the_single_item_policy():
    from optimizer.policy import single_item_policy

    inst = _smooth_stochastic()
    res = solve(inst)
    ref = single_item_policy(inst, "full")
    assert np.array_equal(res.baseline.order_quantity, ref.order_quantity)
    assert np.array_equal(res.baseline.reorder_point, ref.reorder_point)
    assert res.baseline.notes == ref.notes


@pytest.mark.parametrize("newton", [True, False])
def test_newton_and_cutting_planes_agree(newton):
    # both dual methods reach the same optimum within the gap on a budget + space case
    from optimizer.solve import Planner

    inst = _smooth_stochastic(n=30, seed=5)
    free = solve(inst.with_scenario(Scenario()))
    sc = Scenario(budget=Budget(limit=0.6 * free.kpis.average_inventory_value, basis="average"),
                  warehouse=Warehouse(capacity=0.8 * float(
                      (inst.unit_volume * free.policy.average_inventory).sum())))
    inst = inst.with_scenario(sc)
    pl = Planner(inst)
    pl.newton = newton
    res = pl.solve(gap=1e-5)
    check_plan(inst, res)
    ref = Planner(inst)
    ref.newton = not newton
    other = ref.solve(gap=1e-5)
    assert res.objective == pytest.approx(other.objective, rel=2e-5)
    assert res.bound <= other.objective * (1 + 1e-12) and other.bound <= res.objective * (1 + 1e-12)


def test_grid_candidates_meet_fill_rate_targets():
    # the pack/vehicle grid of the integer master offers only policies meeting each SKU's
    # own fill-rate floor (a regression: grid columns once took the free R and broke it)
    from optimizer.solve import _Context, _grid_candidates

    rng = np.random.default_rng(7)
    n = 12
    D = rng.uniform(500, 5_000, n)
    c = rng.uniform(5, 50, n)
    inst = make_instance(D, 80.0, 0.25 * c, c, demand_sd=0.4 * D, lead_time_days=20.0,
                         fill_rate=0.97, order_multiple=rng.choice([10.0, 25.0], n),
                         unit_volume=0.05,
                         scenario=Scenario(budget=Budget(limit=1.0, basis="average")))
    ctx = _Context(inst, coupling_limits(inst))
    rnd = ctx.price(np.array([0.5, 0.0, 0.0, 0.0]))
    Zg, Rg = _grid_candidates(ctx, rnd.lam, rnd.z[:, None], rnd.r[:, None])
    assert Zg is not None and Zg.shape[1] > 4
    fill = 1.0 - ctx.ltd.loss(Rg) / Zg
    assert np.all(fill >= 0.97 - 1e-9)


@pytest.mark.parametrize("frac", [0.7, 0.8, 0.85, 0.92])
def test_exchange_repair_is_feasible_and_near_enumeration(frac):
    # the exchange heuristic against brute force over every pick of 3 candidates x 6 SKUs:
    # always feasible when a feasible pick exists, and above the optimum by at most the
    # largest cost step of one SKU (greedy knapsack guarantee for one binding limit)
    from optimizer.solve import _columns, _Context, _exchange_repair

    inst = _smooth_stochastic(n=6, seed=11)
    ctx = _Context(inst, coupling_limits(inst))
    rounds = [ctx.price(np.array([lb, 0.0, 0.0, 0.0])) for lb in (0.0, 0.3, 1.2)]
    Z = np.stack([r.z for r in rounds], axis=1)
    R = np.stack([r.r for r in rounds], axis=1)
    C, U = _columns(ctx, Z, R)
    rhs = np.array([frac * rounds[0].total_use[0], np.inf, np.inf, np.inf])
    best = np.inf
    for combo in itertools.product(range(3), repeat=6):
        pick = np.array(combo)
        if U[0, np.arange(6), pick].sum() <= rhs[0]:
            best = min(best, C[np.arange(6), pick].sum())
    pick = _exchange_repair(ctx, Z, R, rounds[1].lam, rhs)
    if not np.isfinite(best):
        assert pick is None
        return
    assert pick is not None
    rows = np.arange(6)
    assert U[0, rows, pick].sum() <= rhs[0] * (1 + 1e-9)
    cost = C[rows, pick].sum()
    assert best <= cost <= best + float((C.max(axis=1) - C.min(axis=1)).max()) + 1e-9


def test_replan_past_a_slack_limit_reuses_the_kept_plan():
    # once the budget stops binding the optimum no longer moves: the plan kept from the
    # previous scenario is feasible and within the gap, so no pricing round is spent
    from optimizer.solve import Planner

    inst = _smooth_stochastic(n=30, seed=5)
    free = solve(inst.with_scenario(Scenario()))
    value = free.kpis.average_inventory_value
    space = float((inst.unit_volume * free.policy.average_inventory).sum())

    def scenario(budget):
        return Scenario(budget=Budget(limit=budget, basis="average"),
                        warehouse=Warehouse(capacity=0.7 * space))

    pl = Planner(inst.with_scenario(scenario(0.5 * value)))
    tight = pl.solve(scenario(0.5 * value), gap=1e-4)
    loose = pl.solve(scenario(5.0 * value), gap=1e-4)
    looser = pl.solve(scenario(10.0 * value), gap=1e-4)
    assert tight.objective > loose.objective
    assert looser.iterations == 0
    assert looser.objective == pytest.approx(loose.objective, rel=1e-12)
    cold = solve(inst.with_scenario(scenario(10.0 * value)), gap=1e-4)
    assert looser.objective <= cold.objective * (1 + 1e-4)
    check_plan(inst.with_scenario(scenario(10.0 * value)), looser)


def test_price_extrapolation_along_one_limit():
    # prices of a budget sweep follow a power of the budget: two optima (100, 4) and
    # (200, 2) put the price at 400 on the same power law, 1; any second change, a limit
    # switched on or off, or a guess beyond x2 of the last price gives no guess
    from optimizer.solve import Planner

    pl = Planner(_smooth_stochastic(n=5))
    inf = np.inf
    pl._optima = [(np.array([100.0, 50.0, inf, inf]), np.array([4.0, 2.0, 0.0, 0.0])),
                  (np.array([200.0, 50.0, inf, inf]), np.array([2.0, 3.0, 0.0, 0.0]))]
    guess = pl._extrapolated_prices(np.array([400.0, 50.0, inf, inf]))
    assert guess[0] == pytest.approx(1.0)
    assert guess[1] == pytest.approx(3.0 * 1.5)
    assert pl._extrapolated_prices(np.array([400.0, 60.0, inf, inf])) is None
    assert pl._extrapolated_prices(np.array([400.0, inf, inf, inf])) is None
    pl._optima[1] = (np.array([200.0, 50.0, inf, inf]), np.array([1.0, 3.0, 0.0, 0.0]))
    assert pl._extrapolated_prices(np.array([400.0, 50.0, inf, inf])) is None  # 1 -> 0.25


def test_active_step_solves_the_linear_complementarity_model():
    """On a linear model use(lambda) = u + J (lambda' - lambda), the model-settled active set
    gives the complementarity solution (prices >= 0, use <= target, a positive price only on
    a limit used exactly), the same as enumerating every active set; a limit priced 0 that
    the step would push over its target joins in the same step."""
    from itertools import combinations

    from optimizer.solve import _active_step

    rng = np.random.default_rng(3)
    for _ in range(200):
        k = 3
        a = rng.uniform(0.2, 1.0, (k, k))
        jac = -(a @ a.T + 0.5 * np.eye(k))  # use falls as prices rise, symmetric negative
        lam = np.where(rng.random(k) < 0.5, rng.uniform(0.1, 2.0, k), 0.0)
        resid = rng.normal(0.0, 1.0, k)  # target - use at lam
        act = np.ones(k, dtype=bool)
        on = lam > 0
        idx, trial = _active_step(jac, resid, lam, on, act)
        new = np.zeros(k)
        new[idx] = trial
        left = resid - jac @ (new - lam)  # target - model use at the new prices
        assert np.all(new >= -1e-9) and np.all(left >= -1e-9)
        assert np.all(np.abs(left[new > 1e-12]) <= 1e-9)
        # enumeration: the unique complementarity solution of this strictly monotone model
        found = []
        for size in range(k + 1):
            for s in combinations(range(k), size):
                s = list(s)
                x = np.zeros(k)
                if s:  # the limits in s used exactly, the others priced 0
                    x[s] = np.linalg.solve(jac[np.ix_(s, s)], (resid + jac @ lam)[s])
                rem = resid - jac @ (x - lam)
                if np.all(x >= -1e-9) and np.all(rem >= -1e-9) and np.all(np.abs(rem[s]) <= 1e-9):
                    found.append(x)
        assert found and np.allclose(new, found[0], atol=1e-8)


def _serial_context():
    """A generated 400-SKU instance (seed 5: fill-rate floors, packs, vehicles) and its
    pricing context, priced in this process: the pricing tests' common setup."""
    from optimizer.generate import generate_instance
    from optimizer.io import instance_from_frames
    from optimizer.solve import _Context

    skus, sc = generate_instance(400, seed=5)
    inst = instance_from_frames(skus, sc)
    ctx = _Context(inst, coupling_limits(inst))
    ctx.parallel = False
    return inst, ctx


def test_warm_started_pricing_equals_cold_pricing():
    """A pricing round started from the last round's policies (warm) reaches the same
    per-SKU optima as one started from scratch: same objective to 1e-9 per SKU."""
    from optimizer.policy import solve_with_service

    _, ctx = _serial_context()
    first = ctx.price(np.array([0.5, 0.0, 0.0, 0.0]))
    warm = (first.z, first.r, si._vehicles(first.z, ctx.base.units_per_vehicle))
    for lam in ([0.45, 0.0, 0.0, 0.0], [0.8, 50.0, 0.0, 0.0]):
        coef = ctx.priced(np.array(lam))
        cold, _ = solve_with_service(coef, ctx.ltd, ctx.fill_target)
        hot, _ = solve_with_service(coef, ctx.ltd, ctx.fill_target, warm=warm)
        assert hot.objective == pytest.approx(cold.objective, rel=1e-9)


def test_guided_fill_floor_search_pins_the_same_prices():
    """The fill-floor price search started from a guess (the last round's prices rescaled,
    as pricing rounds do) pins each binding floor's shortage price to the same value as the
    search from scratch, within its tolerance; guesses 30% high and 60% low included, and
    every SKU with a target meets it."""
    from optimizer.policy import solve_with_service

    _, ctx = _serial_context()
    ctx.price(np.array([0.5, 0.0, 0.0, 0.0]))
    has = np.isfinite(ctx.fill_target) & ~ctx.ltd.deterministic
    for lam in ([0.45, 0.0, 0.0, 0.0], [0.8, 50.0, 0.0, 0.0]):
        coef = ctx.priced(np.array(lam))
        cold, p_cold = solve_with_service(coef, ctx.ltd, ctx.fill_target)
        guess, _ = ctx.penalty_guess(coef)
        rng = np.random.default_rng(3)
        for g in (guess, guess * rng.choice([0.4, 1.0, 1.3], guess.size)):
            sol, p = solve_with_service(coef, ctx.ltd, ctx.fill_target, penalty_guess=g)
            binding = has & (p_cold > coef.penalty * (1 + 1e-6))
            assert binding.sum() > 20
            # both searches stop within 1e-3 (relative) above the least price meeting the
            # target, so they agree to about that, but for the odd SKU whose fill rate
            # jumps (packs, Poisson) where either search may stop anywhere on the step
            close = np.isclose(p[binding], p_cold[binding], rtol=2.5e-3)
            assert close.mean() >= 0.97, close.mean()
            fill = 1.0 - ctx.ltd.loss(sol.reorder_point) / sol.order_quantity
            assert np.all(fill[has] >= ctx.fill_target[has] - 1e-9)
            # the plans cost the same at these prices (own shortage costs, floors met)
            cost = si.evaluate(coef, ctx.ltd, sol.order_quantity, sol.reorder_point).sum()
            base = si.evaluate(coef, ctx.ltd, cold.order_quantity, cold.reorder_point).sum()
            assert cost == pytest.approx(base, rel=1e-5)


def test_guesses_a_few_percent_off_are_bracketed_by_one_ladder_pass(monkeypatch):
    """Guesses off by 0.5-10% either way (each SKU its own): the search tries a ladder of
    prices on the guess's wrong side in one pass, so it pins the same prices as the search
    from scratch (tolerance 1e-3, jumps aside), meets every floor, costs the same, and
    takes at most 5 single-item solves (one at a time it took 10 here)."""
    from optimizer import policy
    from optimizer.policy import solve_with_service

    _, ctx = _serial_context()
    ctx.price(np.array([0.5, 0.0, 0.0, 0.0]))
    has = np.isfinite(ctx.fill_target) & ~ctx.ltd.deterministic
    coef = ctx.priced(np.array([0.45, 0.0, 0.0, 0.0]))
    cold, p_cold = solve_with_service(coef, ctx.ltd, ctx.fill_target)
    binding = has & (p_cold > coef.penalty * (1 + 1e-6))
    assert binding.sum() > 20
    off = np.random.default_rng(4).choice([0.9, 0.97, 0.995, 1.005, 1.03, 1.1], p_cold.size)
    solves = []
    optimize = si.optimize
    monkeypatch.setattr(policy.si, "optimize", lambda *a, **k: solves.append(1) or
                        optimize(*a, **k))
    sol, p = solve_with_service(coef, ctx.ltd, ctx.fill_target, warm=ctx._warm,
                                penalty_guess=np.where(binding, p_cold * off, np.nan))
    assert len(solves) <= 5
    assert np.isclose(p[binding], p_cold[binding], rtol=2.5e-3).mean() >= 0.97
    fill = 1.0 - ctx.ltd.loss(sol.reorder_point) / sol.order_quantity
    assert np.all(fill[has] >= ctx.fill_target[has] - 1e-9)
    cost = si.evaluate(coef, ctx.ltd, sol.order_quantity, sol.reorder_point).sum()
    base = si.evaluate(coef, ctx.ltd, cold.order_quantity, cold.reorder_point).sum()
    assert cost == pytest.approx(base, rel=1e-5)


def test_predicted_fill_floor_prices_match_the_search():
    """`predict_floor_prices` (Newton on a binding floor's optimality conditions from the
    last round's solution) lands on the price the search from scratch pins, within that
    search's own tolerance (1e-3), for nine SKUs in ten where it reports convergence; the
    plain rescaled guess it replaces is further off."""
    from optimizer.policy import predict_floor_prices, solve_with_service

    _, ctx = _serial_context()
    old = ctx.priced(np.array([0.5, 0.0, 0.0, 0.0]))
    sol0, p0 = solve_with_service(old, ctx.ltd, ctx.fill_target)
    has = np.isfinite(ctx.fill_target) & ~ctx.ltd.deterministic
    binding = has & (p0 > old.penalty * (1 + 1e-6))
    for lam in ([0.45, 0.0, 0.0, 0.0], [0.6, 0.0, 0.0, 0.0]):
        new = ctx.priced(np.array(lam))
        _, p_new = solve_with_service(new, ctx.ltd, ctx.fill_target)
        pred, conv = predict_floor_prices(new, ctx.ltd, ctx.fill_target,
                                          sol0.order_quantity, sol0.reorder_point,
                                          np.where(binding, p0, np.nan))
        conv &= binding & (p_new > new.penalty * (1 + 1e-6))
        assert conv.sum() >= 0.6 * binding.sum() and conv.sum() > 20
        err = np.abs(pred[conv] / p_new[conv] - 1)
        # (pack and vehicle SKUs whose fill rate jumps are the few further off)
        assert np.mean(err <= 2e-3) >= 0.85 and np.median(err) < 1e-4, np.quantile(err, [.5, .9])
        scaled = p0[conv] * new.hold_r[conv] / old.hold_r[conv]
        assert np.median(err) < np.median(np.abs(scaled / p_new[conv] - 1))
        assert not np.any(np.isfinite(pred[~binding & ~has]))


def test_trusted_fill_floor_guesses_keep_floors_and_a_valid_tight_bound():
    """With trusted guesses the search solves those SKUs first at the guess raised by its
    width and stops there when the bound could gain little: every floor still holds, the
    plan costs what the full search's plan costs (3e-5), and the Lagrangian value (any
    shortage price gives a valid one) is within the search tolerance of the full search's
    and never above the best the search from scratch found by more than its own slack."""
    from optimizer.policy import solve_with_service

    inst, ctx = _serial_context()
    ctx.price(np.array([0.5, 0.0, 0.0, 0.0]))
    has = np.isfinite(ctx.fill_target) & ~ctx.ltd.deterministic
    beta = np.nan_to_num(ctx.fill_target, nan=1.0)
    d = inst.annual_demand

    def lagrangian(coef, sol, p):
        return float((sol.objective - (p - coef.penalty) * (1 - beta) * d).sum())

    for lam in ([0.45, 0.0, 0.0, 0.0], [0.55, 0.0, 0.0, 0.0]):
        coef = ctx.priced(np.array(lam))
        guess, trusted = ctx.penalty_guess(coef)
        assert trusted is not None and trusted.sum() > 20
        full, p_full = solve_with_service(coef, ctx.ltd, ctx.fill_target, bound_tol=1e-7)
        sol, p = solve_with_service(coef, ctx.ltd, ctx.fill_target, penalty_guess=guess,
                                    guess_trusted=trusted, warm=ctx._warm, bound_tol=1e-5)
        fill = 1.0 - ctx.ltd.loss(sol.reorder_point) / sol.order_quantity
        assert np.all(fill[has] >= ctx.fill_target[has] - 1e-9)
        cost = si.evaluate(coef, ctx.ltd, sol.order_quantity, sol.reorder_point).sum()
        base = si.evaluate(coef, ctx.ltd, full.order_quantity, full.reorder_point).sum()
        assert cost == pytest.approx(base, rel=3e-5)
        total = float(np.abs(sol.objective).sum())
        assert lagrangian(coef, sol, p) >= lagrangian(coef, full, p_full) - 2e-5 * total
        assert lagrangian(coef, sol, p) <= lagrangian(coef, full, p_full) + 1e-6 * total


def test_multistart_exchange_with_two_limits_is_feasible_and_never_worse():
    # budget and space both binding, 4 candidate rounds x 7 SKUs (one SKU's candidates all
    # alike, so it is taken off the limits): every start gives a feasible mix or none, the
    # best start is no worse than the first, and none beats enumeration
    from optimizer.solve import _best_exchange, _columns, _Context, _exchange_repair

    inst = _smooth_stochastic(n=7, seed=12)
    ctx = _Context(inst, coupling_limits(inst))
    lams = [np.array([lb, lw, 0.0, 0.0]) for lb, lw in
            ((0.0, 0.0), (0.3, 40.0), (1.0, 5.0), (0.2, 300.0))]
    rounds = [ctx.price(lam) for lam in lams]
    Z = np.stack([r.z for r in rounds], axis=1)
    R = np.stack([r.r for r in rounds], axis=1)
    Z[3], R[3] = Z[3, 0], R[3, 0]
    C, U = _columns(ctx, Z, R)
    rows = np.arange(7)
    for frac in (0.6, 0.75, 0.9):
        rhs = np.array([frac * rounds[0].total_use[0], frac * rounds[0].total_use[1],
                        np.inf, np.inf])
        best = np.inf
        for combo in itertools.product(range(4), repeat=7):
            pick = np.array(combo)
            if np.all(U[:2, rows, pick].sum(axis=1) <= rhs[:2]):
                best = min(best, C[rows, pick].sum())
        first = _exchange_repair(ctx, Z, R, lams[1], rhs, columns=(C, U))
        # bound = the optimum, gap 1e-3: a first start above it counts as a near miss
        # (within 30 x the gap), so the other starts run
        multi, cost = _best_exchange(ctx, Z, R, C, U, lams[1], rounds, rhs, bound=best,
                                     gap=1e-3)
        for pick in (first, multi):
            if pick is not None:
                assert np.all(U[:2, rows, pick].sum(axis=1) <= rhs[:2] * (1 + 1e-9))
                assert C[rows, pick].sum() >= best - 1e-9
        if first is not None:
            assert cost <= C[rows, first].sum() + 1e-9


@pytest.mark.parametrize("seed", range(6))
def test_exchange_prefixes_match_a_full_stable_sort(seed):
    # the partial-sort prefixes of the exchange repair pick exactly what sorting every
    # mover would: ties (rounded ratios) and heads longer than the first guess included
    from optimizer.solve import _cheapest_prefix, _fitting_prefix

    rng = np.random.default_rng(seed)
    m = int(rng.integers(1, 3000))
    ratio = np.round(rng.exponential(1.0, m), int(rng.integers(1, 4)))  # many ties
    relief = rng.uniform(0.0, 1.0, m)
    items = rng.permutation(m) + 7
    order = np.argsort(ratio, kind="stable")
    for need in (0.0, 0.3, relief.sum() * rng.uniform(0.01, 0.9), relief.sum() * 2):
        k = int(np.searchsorted(np.cumsum(relief[order]), need)) + 1
        assert np.array_equal(_cheapest_prefix(ratio, relief, need, items), items[order[:k]])
    added = rng.uniform(-0.2, 1.0, (2, m))
    for frac in (0.0, 0.05, 0.5, 2.0):
        room = np.abs(added).sum(axis=1) * frac
        fits = np.all(np.cumsum(added[:, order], axis=1) <= room[:, None], axis=0)
        k = int(np.argmin(fits)) if not fits.all() else m
        assert np.array_equal(_fitting_prefix(ratio, added, room, items), items[order[:k]])


def test_within_gap_tries_the_exchange_only_near_the_priced_limits(monkeypatch):
    # a pool whose rounds all use the priced limit 3% or more off its right-hand side (the
    # first check of a re-plan whose budget moved) cannot mix to a plan within the gap: the
    # check answers without running the exchange; a round within 3% gets the exchange
    import optimizer.solve as solve_mod
    from optimizer.solve import _Context, _within_gap

    inst = _smooth_stochastic(n=40, seed=3)
    ctx = _Context(inst, coupling_limits(inst))
    rounds = [ctx.price(np.array([lb, 0.0, 0.0, 0.0])) for lb in (0.0, 2.0)]
    calls = []
    real = solve_mod._mixed_cost
    monkeypatch.setattr(solve_mod, "_mixed_cost",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    u0, u1 = rounds[0].total_use[0], rounds[1].total_use[0]
    assert u1 < 0.9 * u0
    for budget, tried in ((0.5 * (u0 + u1), False), (0.99 * u1, True)):
        rhs = np.array([budget, np.inf, np.inf, np.inf])
        best = max(rounds, key=lambda r: r.lagrangian(rhs))
        calls.clear()
        assert _within_gap(ctx, rounds, best, rhs, 1e-3) is False
        assert bool(calls) is tried


def test_fill_rate_floor_pulling_against_the_warehouse_gets_a_plan():
    # demo instance with an aggregate fill-rate floor of 0.97: the floor and the warehouse
    # pull against each other, Newton's prices converge from one side and every round broke
    # the warehouse by ~1e-5 (reported as infeasible). A round inside the warehouse, mixed
    # with the last one, meets all three limits within the gap of the bound; at 0.975 the
    # bound proves the limits contradictory
    from pathlib import Path

    from optimizer.io import load_instance

    inst = load_instance(Path(__file__).resolve().parents[1] / "instances" / "demo")
    base = inst.scenario
    res = solve(inst.with_scenario(replace(base, fill_rate_min=0.97)), gap=1e-3)
    assert res.status == "optimal"
    assert res.bound <= res.objective <= res.bound / (1 - 1e-3)
    assert all(c.used <= c.limit * (1 + 1e-9) for c in res.constraints)
    assert {c.name for c in res.constraints} == {"budget", "warehouse", "fill_rate"}
    assert res.kpis.fill_rate >= 0.97 - 1e-9
    bad = solve(inst.with_scenario(replace(base, fill_rate_min=0.975)), gap=1e-3)
    assert bad.status == "infeasible" and "cannot all be met" in bad.message


def test_no_plan_found_is_not_reported_as_infeasible(monkeypatch):
    # when the plan search comes back empty but every limit can be met alone and the bound
    # stays finite, nothing is proven: status no_plan, with the bound and the closest plan
    import optimizer.solve as solve_mod

    inst = _smooth_stochastic(n=40, seed=3)
    monkeypatch.setattr(solve_mod, "_primal", lambda *a, **k: (None, None, None))
    res = solve(inst, gap=1e-3)
    assert res.status == "no_plan"
    assert res.policy is None and res.bound is not None and math.isfinite(res.bound)
    assert "not proven infeasible" in res.message
    assert any("closest_plan_uses" in d for d in res.diagnosis)


def test_a_mix_found_during_the_search_is_never_lost():
    # demo, warehouse 1,200: an exchange mix within 1.8e-4 of the bound turns up while the
    # prices are searched, later rounds change which rounds are near the prices, and the
    # plan returned was 1.7e-3 above the bound (status feasible at a 1e-4 target). A mix
    # better than every feasible plan now joins the pool and stays the incumbent
    from pathlib import Path

    from optimizer.io import load_instance

    inst = load_instance(Path(__file__).resolve().parents[1] / "instances" / "demo")
    res = solve(inst.with_scenario(replace(inst.scenario, warehouse=replace(
        inst.scenario.warehouse, capacity=1200.0))), gap=1e-4)
    assert res.status == "optimal" and res.gap <= 1e-4
    assert all(c.used <= c.limit * (1 + 1e-9) for c in res.constraints)


@pytest.mark.parametrize("limits", [
    dict(warehouse=1200.0, max_orders_per_year=300.0, budget=700000.0),
    dict(max_orders_per_year=200.0)])
def test_the_integer_master_is_not_stopped_by_its_own_start(limits):
    # demo with an orders cap against the warehouse: the pool's best mix is 0.2-0.44% above
    # the bound and the grid master holds plans within 1e-4 of it, but HiGHS given the mix
    # as MIP start (presolve on) ended "optimal" at a value below the true optimum and
    # handed back the start. A pick whose cost is not HiGHS's objective is re-solved from
    # the start with presolve off; each limit sits 1e-6 inside in the master, so what
    # HiGHS accepts within its tolerance meets the limits exactly
    from pathlib import Path

    from optimizer.io import load_instance
    from optimizer.replan import ScenarioSpec

    inst = load_instance(Path(__file__).resolve().parents[1] / "instances" / "demo")
    sc = ScenarioSpec(name="x", **limits).apply(inst.scenario)
    res = solve(inst.with_scenario(sc), gap=1e-4)
    # returned start: 4.4e-3 and 2.1e-4; the master's own optimum over its candidates sits
    # within 1.1e-4 of the bound in both (the candidates depend on the Newton path)
    assert res.status in ("optimal", "feasible") and res.gap <= 1.5e-4
    assert all(c.used <= c.limit * (1 + 1e-9) for c in res.constraints)
