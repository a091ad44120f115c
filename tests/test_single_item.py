"""Known answers and cross-checks for the single-item (R, Z) optimiser."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from scipy import optimize as sopt

from optimizer import single_item as si
from optimizer.distributions import LeadTimeDemand
from optimizer.instance import GAMMA, NORMAL, POISSON, UNIFORM


def seed_cost(D, K, h, p, ltd, z, r):
    """Seed 004 eq. (4): K D/Z + h (Z/2 + R - E v) + p (D/Z) b(R)."""
    return K * D / z + h * (z / 2 + r - ltd.mean) + p * D / z * ltd.loss(r)


def solve_plain(D, K, h, p, kind, mean, sd, **kw):
    ltd = LeadTimeDemand.build(np.atleast_1d(kind), np.atleast_1d(mean), np.atleast_1d(sd))
    coef = si.CostCoefficients.build(D, K, np.asarray(h) / 2.0, h, p, **kw)
    coef = si.CostCoefficients.build(*(np.broadcast_to(getattr(coef, f), ltd.mean.shape)
                                       for f in coef.__dataclass_fields__))
    return si.optimize(coef, ltd), ltd, coef


def test_published_iteration_example():
    # source: Nahmias-style iterative (Q, R) procedure, course worksheet "73-331 An iterative
    # procedure for finding an optimal (Q,R) policy": K=20, h=0.025, p=0.45, D=2000/yr,
    # lead time 2 months, annual demand sd 300 -> LTD N(333.33, 122.47); converges to
    # Q = 1840.95, R = 533.45.
    sol, ltd, _ = solve_plain(2000.0, 20.0, 0.025, 0.45, NORMAL, 2000 / 6, 300 / np.sqrt(6))
    assert sol.order_quantity[0] == pytest.approx(1840.954, rel=2e-5)
    assert sol.reorder_point[0] == pytest.approx(533.447, rel=2e-5)


def test_first_iterate_is_eoq_without_shortage_term():
    # deterministic lead-time demand: Z is the EOQ and R the lead-time demand (seed 003)
    sol, _, _ = solve_plain(10_000.0, 200.0, 5.0, 0.0, NORMAL, 200.0, 0.0)
    assert sol.order_quantity[0] == pytest.approx(np.sqrt(2 * 10_000 * 200 / 5), rel=1e-12)
    assert sol.reorder_point[0] == pytest.approx(200.0)


def uniform_closed_form(D, K, h, p, A):
    """Our derivation for v ~ U(0, A) (seed 004 eqs. 5-6 solved directly):
    Z = D sqrt(2 K p / (h (p D - A h))), R = A (1 - sqrt(2 K h / (p (p D - A h)))).
    The seed's printed (8)-(9) are the p = 1 case of these."""
    z = D * np.sqrt(2 * K * p / (h * (p * D - A * h)))
    r = A * (1 - np.sqrt(2 * K * h / (p * (p * D - A * h))))
    return z, r


@pytest.mark.parametrize("p", [0.8, 1.0, 3.0, 12.0])
def test_uniform_closed_form_equals_iteration_and_numeric_minimum(p):
    D, K, h, A = 1200.0, 40.0, 2.0, 150.0
    z_cf, r_cf = uniform_closed_form(D, K, h, p, A)
    assert p * D / h > np.sqrt(2 * D * (K + p * A / 2) / h)  # seed eq. (7) holds
    sol, ltd, _ = solve_plain(D, K, h, p, UNIFORM, A / 2, A / np.sqrt(12))
    assert sol.order_quantity[0] == pytest.approx(z_cf, rel=1e-6)
    assert sol.reorder_point[0] == pytest.approx(r_cf, rel=1e-6)
    f = lambda x: float(seed_cost(D, K, h, p, ltd, np.array([x[0]]), np.array([x[1]]))[0])
    res = sopt.minimize(f, x0=[z_cf * 1.3, r_cf * 0.7], method="Nelder-Mead",
                        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
    assert res.x[0] == pytest.approx(z_cf, rel=1e-6)
    assert res.x[1] == pytest.approx(r_cf, rel=1e-6)


def test_seed_printed_uniform_form_only_holds_for_p_equal_one():
    D, K, h, A = 1200.0, 40.0, 2.0, 150.0
    printed_z = D * np.sqrt(2 * K / (h * (D - A * h)))  # seed eq. (9)
    assert uniform_closed_form(D, K, h, 1.0, A)[0] == pytest.approx(printed_z)
    assert uniform_closed_form(D, K, h, 3.0, A)[0] != pytest.approx(printed_z, rel=1e-3)


def test_boundary_when_condition_7_fails():
    # pD/h small: no interior optimum; R = 0 and Z = sqrt(2D(K + p E v)/h), flagged
    D, K, h, p, A = 100.0, 10.0, 5.0, 0.2, 60.0
    assert p * D / h <= np.sqrt(2 * D * (K + p * A / 2) / h)
    sol, ltd, _ = solve_plain(D, K, h, p, UNIFORM, A / 2, A / np.sqrt(12))
    assert sol.reorder_point[0] == 0.0
    assert sol.order_quantity[0] == pytest.approx(np.sqrt(2 * D * (K + p * A / 2) / h))
    assert sol.notes[0] & si.NOTE_BOUNDARY
    assert np.isfinite(sol.objective).all()


@settings(max_examples=40, deadline=None)
@given(D=st.floats(50, 50_000), K=st.floats(5, 500), h=st.floats(0.2, 20),
       pmult=st.floats(1.5, 40), cv=st.floats(0.1, 1.0), lt=st.floats(0.01, 0.3),
       kind=st.sampled_from([NORMAL, GAMMA, UNIFORM]))
def test_every_result_is_a_local_minimum_of_the_seed_cost(D, K, h, pmult, cv, lt, kind):
    p = pmult * h
    mean = D * lt
    sd = cv * mean
    if kind == UNIFORM:
        sd = min(sd, mean / np.sqrt(3))
    sol, ltd, _ = solve_plain(D, K, h, p, kind, mean, sd)
    z, r = sol.order_quantity, sol.reorder_point
    f0 = seed_cost(D, K, h, p, ltd, z, r)
    assert np.allclose(f0, sol.objective, rtol=1e-12)
    for dz, dr in [(1e-3, 0), (-1e-3, 0), (0, 1e-3), (0, -1e-3), (1e-3, 1e-3), (-1e-3, -1e-3),
                   (1e-3, -1e-3), (-1e-3, 1e-3)]:
        zz = z * (1 + dz)
        rr = np.maximum(r + dr * max(sd, 1.0), 0.0)
        assert np.all(seed_cost(D, K, h, p, ltd, zz, rr) >= f0 * (1 - 1e-12))


def test_poisson_equals_scan_over_integer_r():
    rng = np.random.default_rng(3)
    for _ in range(20):
        D, K, h = rng.uniform(20, 400), rng.uniform(5, 100), rng.uniform(0.5, 10)
        p, mean = rng.uniform(2, 80), rng.uniform(0.5, 15)
        sol, ltd, _ = solve_plain(D, K, h, p, POISSON, mean, np.sqrt(mean))
        rs = np.arange(0, 80)
        z = sol.order_quantity[0]
        costs = [seed_cost(D, K, h, p, ltd, np.array([z]), np.array([float(rr)]))[0] for rr in rs]
        assert sol.reorder_point[0] == rs[int(np.argmin(costs))]
        assert float(sol.reorder_point[0]).is_integer()
        # and no (integer R, Z) pair on a fine scan beats it
        zs = np.linspace(0.3 * z, 3 * z, 400)
        best = min(seed_cost(D, K, h, p, LeadTimeDemand.build(
            np.full(zs.size, POISSON), np.full(zs.size, mean), np.full(zs.size, np.sqrt(mean))),
            zs, np.full(zs.size, float(rr))).min() for rr in rs)
        assert sol.objective[0] <= best * (1 + 1e-9)


def enumerate_integer_z(D, K, h, p, ltd_scalar, u, cv, moq, mult, zmax):
    """Brute force: every feasible integer Z, its best R, the cheapest total."""
    zs = np.arange(1, zmax + 1, dtype=float)
    zs = zs[zs >= moq]
    if mult > 0:
        zs = zs[np.isclose(zs % mult, 0)]
    n = zs.size
    ltd = LeadTimeDemand.build(np.full(n, ltd_scalar[0]), np.full(n, ltd_scalar[1]),
                               np.full(n, ltd_scalar[2]))
    coef = si.CostCoefficients.build(np.full(n, D), K, h / 2, h, p, u, cv, moq, mult)
    rs = si.best_reorder_point(coef, ltd, zs)
    f = si.evaluate(coef, ltd, zs, rs)
    j = int(np.argmin(f))
    return zs[j], f[j]


@pytest.mark.parametrize("case", range(12))
def test_vehicle_steps_and_moq_equal_enumeration(case):
    rng = np.random.default_rng(100 + case)
    D = rng.uniform(500, 5000)
    K = rng.uniform(10, 200)
    h = rng.uniform(1, 10)
    u = float(rng.integers(20, 400))
    cv = rng.uniform(20, 600)
    moq = float(rng.choice([0, rng.integers(10, 300)]))
    mult = float(rng.choice([1, 1, 5, 12]))
    stochastic = case % 2 == 1
    p = rng.uniform(5, 50) if stochastic else 0.0
    mean = D * 0.05
    sd = 0.3 * mean if stochastic else 0.0
    sol, ltd, coef = solve_plain(D, K, h, p, NORMAL, mean, sd, units_per_vehicle=u,
                                 vehicle_cost=cv, moq=moq, multiple=mult)
    z_best, f_best = enumerate_integer_z(D, K, h, p, (NORMAL, mean, sd), u, cv, moq, mult,
                                         zmax=int(6 * np.sqrt(2 * D * (K + cv) / h) + moq + 2 * u))
    assert sol.objective[0] == pytest.approx(f_best, rel=1e-9)
    assert float(sol.order_quantity[0]).is_integer()
    assert sol.order_quantity[0] >= moq
    assert sol.order_quantity[0] % mult == 0
    assert sol.vehicles_per_order[0] == np.ceil(sol.order_quantity[0] / u - 1e-9)


def test_vectorised_over_skus_matches_one_by_one():
    rng = np.random.default_rng(7)
    n = 50
    D, K, h = rng.uniform(100, 9000, n), rng.uniform(10, 300, n), rng.uniform(0.5, 8, n)
    p, mean = rng.uniform(2, 60, n), rng.uniform(5, 400, n)
    kind = rng.choice([NORMAL, GAMMA, POISSON], n)
    sd = np.where(kind == POISSON, np.sqrt(mean), 0.4 * mean)
    u = rng.uniform(30, 600, n)
    cv = rng.uniform(0, 300, n)
    all_sol, _, _ = solve_plain(D, K, h, p, kind, mean, sd, units_per_vehicle=u, vehicle_cost=cv)
    for i in range(0, n, 7):
        one, _, _ = solve_plain(D[i], K[i], h[i], p[i], kind[i], mean[i], sd[i],
                                units_per_vehicle=u[i], vehicle_cost=cv[i])
        assert one.objective[0] == pytest.approx(all_sol.objective[i], rel=1e-12)


# SKUs from a generated instance on which the plain (R, Z) iteration oscillated to its cap:
# a shortage price below h_r Z / D on part of the range makes R* jump to 0 there, and the
# map Z -> sqrt(D (A + P b(R*)) / h_q) jumps with it
OSCILLATING = [
    # D, K, h_q, h_r, P, units per vehicle, vehicle cost, moq, E v, sd v
    (965.6, 21.14, 203.188755, 406.37751, 288.39, 135.4960754418657, 152.0, 0.0, 167.702, 229.011),
    (3865.4, 92.6, 114.21024, 228.42048, 72.38, 321.74688057041, 263.0, 0.0, 558.947, 312.977),
    (548.2, 87.05, 78.732675, 157.46535, 52.34, 377.76501005458204, 83.0, 131.0, 88.2227, 63.1539),
    (9125.3, 144.22, 45.6999, 91.3998, 27.01702786061179, 42.633469645963714, 265.0, 0.0,
     906.530, 802.952),
]


@pytest.mark.parametrize("case", OSCILLATING)
def test_iteration_converges_where_the_plain_map_oscillates(case):
    """The bracketed iteration converges (no not-converged note), warm or cold start, to
    the minimum of F over a dense grid of Z (R = argmin_R F at each Z, exact)."""
    D, K, hq, hr, P, u, cv, moq, m, s = case
    coef = si.CostCoefficients.build([D], [K], [hq], [hr], penalty=[P], units_per_vehicle=[u],
                                     vehicle_cost=[cv], moq=[moq])
    ltd = LeadTimeDemand.build([NORMAL], [m], [s])
    sol = si.optimize(coef, ltd)
    assert not sol.notes[0] & si.NOTE_NOT_CONVERGED
    # the grid holds every vehicle boundary n u exactly (the optimum often sits on one)
    zs = np.concatenate([np.linspace(max(moq, 1e-3), 40 * u, 400_001), u * np.arange(1, 41)])
    zs = zs[zs >= moq]
    cb = si.CostCoefficients.build(*(np.full(zs.size, getattr(coef, f)[0])
                                     for f in coef.__dataclass_fields__))
    lb = LeadTimeDemand.build(np.full(zs.size, NORMAL), np.full(zs.size, m), np.full(zs.size, s))
    grid = si.evaluate(cb, lb, zs, si.best_reorder_point(cb, lb, zs)).min()
    assert sol.objective[0] <= grid * (1 + 1e-9)
    assert sol.objective[0] >= grid * (1 - 1e-7)  # the grid's spacing
    warm = si.optimize(coef, ltd, warm=(sol.order_quantity * 1.3, sol.reorder_point * 0.7,
                                        sol.vehicles_per_order + 1))
    assert warm.objective[0] == pytest.approx(sol.objective[0], rel=1e-10)


def _demand_and_vehicle_capacity(rng, m, kind):
    """Random annual demand D, lead-time demand of `kind` (mean 1-8% of D) and units per
    vehicle u for m SKUs, drawn in that order."""
    D = rng.uniform(200, 20000, m)
    mean = D * rng.uniform(0.01, 0.08, m)
    sd = mean * rng.uniform(0.2, 1.2, m) if kind != POISSON else np.sqrt(mean)
    return D, LeadTimeDemand.build(np.full(m, kind), mean, sd), rng.uniform(20, 400, m)


@pytest.mark.parametrize("kind", [NORMAL, GAMMA, POISSON, UNIFORM])
def test_interval_lower_bound_holds_and_beats_the_right_end_bound(kind):
    # the vehicle scan prunes an interval when this bound reaches the incumbent: it must
    # never exceed the interval's true minimum (a fine scan of Z with the best R each), and
    # the chord of the tail (concave in 1/Z) must lift it above the bound that takes the
    # tail at the interval's right end only
    rng = np.random.default_rng(7)
    m = 300
    D, ltd, u = _demand_and_vehicle_capacity(rng, m, kind)
    coef = si.CostCoefficients.build(D, rng.uniform(10, 200, m), rng.uniform(0.5, 5, m),
                                     rng.uniform(1, 10, m), rng.uniform(5, 60, m), u,
                                     rng.uniform(20, 600, m), np.where(rng.random(m) < 0.3,
                                                                       rng.uniform(10, 500, m), 0))
    n = rng.integers(1, 6, m).astype(float)
    lb = si._interval_lower_bound(coef, ltd, n, u)
    lo = np.maximum((n - 1) * u, np.maximum(coef.moq, 1e-9))
    hi = n * u
    ok = lo <= hi
    zs = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, 401)[None, :]
    # the interval is open at (n - 1) u (and the vehicle count rounds within 1e-9 of it):
    # there the order fills one vehicle fewer
    zs = np.maximum(zs, ((n - 1) * u * (1 + 1e-7))[:, None])
    best = np.full(m, np.inf)
    for j in range(zs.shape[1]):
        z = np.where(ok, zs[:, j], 1.0)
        r = si.best_reorder_point(coef, ltd, z)
        best = np.minimum(best, np.where(ok, si.evaluate(coef, ltd, z, r), np.inf))
    assert np.all(lb[ok] <= best[ok] * (1 + 1e-9))
    assert np.all(np.isinf(lb[~ok]))
    # the right-end bound the scan used before
    a = (coef.ordering + coef.vehicle_cost * n) * coef.demand
    z0 = np.clip(np.sqrt(a / coef.hold_q), lo, np.maximum(hi, lo))
    r_hi = si.best_reorder_point(coef, ltd, np.maximum(hi, lo))
    old = a / z0 + coef.hold_q * z0 + coef.hold_r * (r_hi - ltd.mean) + \
        coef.penalty * coef.demand * ltd.loss(r_hi) / np.maximum(hi, lo)
    assert np.all(lb[ok] >= old[ok] * (1 - 1e-12))
    # above the best interval (its EOQ under the interval, the case the scan meets most)
    # the chord lifts the bound for most SKUs
    above = ok & (np.sqrt(a / coef.hold_q) < lo) & (coef.penalty > 0)
    assert above.sum() >= 10
    assert np.mean(lb[above] > old[above] * (1 + 1e-6)) > 0.5


@pytest.mark.parametrize("kind", [NORMAL, GAMMA, POISSON, UNIFORM])
def test_interval_lower_bound_shared_ends_give_the_same_bounds(kind):
    # the vehicle scan hands its (SKU, n) pairs SKU by SKU with n rising and lets
    # consecutive intervals share the tail at their common end: every bound must equal the
    # one computed end by end (MOQs that raise a left end break the sharing there)
    rng = np.random.default_rng(11)
    m = 60
    D, ltd, u = _demand_and_vehicle_capacity(rng, m, kind)
    moq = np.where(rng.random(m) < 0.4, u * rng.uniform(0.5, 3.0, m), 0.0)
    coef = si.CostCoefficients.build(D, rng.uniform(10, 200, m), rng.uniform(0.5, 5, m),
                                     rng.uniform(1, 10, m), rng.uniform(5, 60, m), u,
                                     rng.uniform(20, 600, m), moq)
    counts = rng.integers(1, 7, m)
    sku = np.repeat(np.arange(m), counts)
    n = np.concatenate([np.arange(1, c + 1) for c in counts]).astype(float)
    sub, sub_ltd = coef.take(sku), ltd.take(sku)
    shared = si._interval_lower_bound(sub, sub_ltd, n, u[sku], sku=sku)
    alone = si._interval_lower_bound(sub, sub_ltd, n, u[sku])
    np.testing.assert_array_equal(shared, alone)
