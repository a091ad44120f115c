"""The daily-bucket (R, Z) simulation against the analytical single-item formulas."""

import json

import numpy as np
import pytest
from builders import make_instance

from optimizer.distributions import LeadTimeDemand
from optimizer.instance import GAMMA, NORMAL, POISSON, UNIFORM, Scenario, VehicleSpec, Vehicles
from optimizer.simulate import (SIM_COLUMNS, plan_from_json, simulate, simulate_reference)


def test_normal_model_accurate_when_z_large_and_ltd_near_normal():
    # Lead-time demand sd 62 (mostly from a 6-day lead-time sd, so it is close to normal; the
    # daily demand itself has CV 0.016 per year), Z = 600 >> sd, R = E v + 1 sd.
    # Tolerance on fill: the daily review adds about half a day of demand (5 units) to the
    # exposure, i.e. at most 5 P(v > R) / Z = 5 x 0.16 / 600 = 0.0013 of fill, plus ~0.0007
    # for the remaining skew of lead-time demand -> 0.002. Stock: the exact backorder model
    # adds E(backorders) <= b(R) = 5.2 units to Z/2 + R - E v.
    inst = make_instance([3650.0] * 3, 50, 1.0, demand_sd=60, lead_time_days=30,
                         lead_time_sd_days=6, distribution=NORMAL)
    mean, sd = inst.effective_lead_time_demand()
    r = mean + sd
    res = simulate(inst, 600.0, r, years=30, replications=5, seed=1)
    assert np.all(np.abs(res.fill_rate - res.analytic_fill_rate) <= res.fill_rate_ci + 0.002)
    b_r = LeadTimeDemand.build(NORMAL, mean, sd).loss(r)
    gap = res.average_stock - res.analytic_average_stock
    assert np.all(gap >= -res.average_stock_ci - 0.5)
    assert np.all(gap <= res.average_stock_ci + b_r + 0.5)
    assert np.allclose(res.orders_per_year, 3650 / 600, rtol=0.02)
    assert not res.short.any()


def test_poisson_model_accurate():
    # 0.5 units/day, 60-day lead time: v ~ Poisson(30), sd 5.5; Z = 200. Integer demand makes
    # the position after ordering uniform on {R+1, ..., R+Z}: stock is Z/2 + R - E v + 1/2
    # (+ E backorders <= b(R) = 0.2); fill tolerance 0.002 as above (half a day = 0.25 units).
    inst = make_instance([182.5] * 3, 50, 1.0, lead_time_days=60, distribution=POISSON)
    res = simulate(inst, 200.0, 38.0, years=30, replications=5, seed=2)
    assert np.all(np.abs(res.fill_rate - res.analytic_fill_rate) <= res.fill_rate_ci + 0.002)
    assert np.all(np.abs(res.average_stock - (res.analytic_average_stock + 0.5))
                  <= res.average_stock_ci + 0.5)


def _gamma_loss(mean_per_day, var_per_day, days, y):
    ltd = LeadTimeDemand.build([GAMMA], [mean_per_day * days], [np.sqrt(var_per_day * days)])
    return ltd.loss(np.asarray(y).reshape(1, -1))[0]


def test_small_z_high_cv_bias_direction():
    # Gamma demand (annual CV 0.27, daily CV 5.2), fixed 10-day lead time: v ~ gamma(mean
    # 100, sd 165) both in the model and in the simulation, so only the approximations differ.
    # Z = 100, R = 150. The model's average stock Z/2 + R - E v ignores backorders: the
    # exact value adds E B = (1/Z) int_R^{R+Z} b(y) dy (position uniform on (R, R+Z]), which is
    # large here (b(R) = 41.6, E B = 32.8). The simulation must show that excess, not hide it.
    D, sd_d, L, z, r = 3650.0, 1000.0, 10, 100.0, 150.0
    inst = make_instance([D] * 3, 50, 1.0, demand_sd=sd_d, lead_time_days=L, distribution=GAMMA)
    res = simulate(inst, z, r, years=30, replications=5, seed=3)
    mu, var = D / 365, sd_d ** 2 / 365
    y = np.linspace(r, r + z, 4001)
    b_l, b_l1 = _gamma_loss(mu, var, L, y), _gamma_loss(mu, var, L + 1, y)
    excess = np.trapezoid(b_l, y) / z
    assert b_l[-1] < excess < b_l[0]
    gap = res.average_stock - res.analytic_average_stock
    assert np.all(gap > 0.7 * excess)  # analytical stock understated by about E B
    assert np.all(np.abs(gap - excess) <= res.average_stock_ci + 1.0)
    # Fill rate. Seed 004's 1 - b(R)/Z drops the b(R + Z) term, so it understates the exact
    # continuous-review fill 1 - (b(R) - b(R+Z))/Z (0.58 vs 0.84 here). With daily reviews the
    # exposure is a lead time plus one day's demand of this very lumpy item: the exact
    # daily-model fill is 1 - (days/D)(1/Z) int (b_{L+1} - b_L) = 0.56, which the simulation
    # reproduces (tolerance 0.02: the uniform-position assumption at this small Z).
    hw = res.analytic_fill_rate
    continuous = 1 - (b_l[0] - b_l[-1]) / z
    daily = 1 - 365 / D * np.trapezoid(b_l1 - b_l, y) / z
    assert np.all(hw < continuous)
    assert np.all(np.abs(res.fill_rate - daily) <= res.fill_rate_ci + 0.02)
    assert np.all(res.fill_rate < continuous - 0.1)


def test_deterministic_demand_hand_computation():
    # 10 units/day, 10-day lead time, Z = 100, R = 120. Starting with 215 on hand, the position
    # falls 10 a day and first reaches R - 5 = 115 (<= R): an order of 100 is placed each time
    # it reaches 115 and arrives 10 days (100 units) later with 15 units left, so end-of-day stock
    # runs 115, 105, ..., 25 over each 10-day cycle: mean 70 = Z/2 + R - E v = 50 + 120 - 100.
    # Every unit is served from stock, every delivery finds no backorder, 36.5 orders a year.
    inst = make_instance([3650.0], 50, 1.0, lead_time_days=10)
    res = simulate(inst, 100.0, 120.0, years=10, replications=2, warmup_years=1.0,
                   initial_stock=215.0)
    assert res.fill_rate[0] == 1.0 and res.cycle_service[0] == 1.0
    assert res.average_stock[0] == pytest.approx(70.0, abs=1e-9)
    assert res.analytic_average_stock[0] == pytest.approx(70.0)
    assert res.orders_per_year[0] == pytest.approx(36.5)
    assert res.fill_rate_ci[0] == 0.0


def test_vehicle_loads():
    sc = Scenario(vehicles=Vehicles(default=VehicleSpec(capacity=30.0, measure="weight", cost=10)))
    inst = make_instance([3650.0, 3650.0], 50, 1.0, lead_time_days=10, unit_weight=[1.0, 0.0],
                         scenario=sc)
    res = simulate(inst, 100.0, 120.0, years=10, replications=1, initial_stock=215.0)
    assert res.vehicle_loads_per_year == pytest.approx([36.5 * 4, 0.0])  # ceil(100/30) = 4
    assert res.analytic_vehicle_loads_per_year == pytest.approx([36.5 * 4, 0.0])


def _mixed():
    return make_instance([3650, 1000, 50, 2000, 800], 50, 1.0,
                         demand_sd=[100, 50, 0, 400, 300], lead_time_days=[20, 10, 15, 7, 12.4],
                         lead_time_sd_days=[0, 2, 0, 1, 3], supplier_on_time=[1, 0.9, 1, 1, 0.8],
                         distribution=[NORMAL, GAMMA, POISSON, UNIFORM, NORMAL])


Z_MIX = np.array([400.0, 200.0, 10.0, 300.0, 90.0])
R_MIX = np.array([230.0, 40.0, 5.0, 60.0, 40.0])


def test_vectorised_equals_per_sku_loop_on_replayed_demand():
    # random lead times, late suppliers, several kinds, two replications; same demand fed in
    inst = _mixed()
    days = 365 * 4
    demand = np.random.default_rng(5).gamma(0.5, [20, 6, 0.3, 11, 4], size=(2, days, 5))
    for rule in ("nQ", "single"):
        a = simulate(inst, Z_MIX, R_MIX, years=3, replications=2, seed=7, demand=demand,
                     order_rule=rule)
        b = simulate_reference(inst, Z_MIX, R_MIX, years=3, replications=2, seed=7,
                               demand=demand, order_rule=rule)
        for k, v in b.items():
            np.testing.assert_allclose(a.replicates[k], v, rtol=1e-12, atol=1e-9, err_msg=k)


def test_float32_grids_agree_with_float64(monkeypatch):
    # drawn demand runs on float32 day x column grids; the same streams on float64 grids give
    # the same paths here (no exact ties), so the measures agree to float32 rounding
    import optimizer.simulate as sim

    inst = _mixed()
    a = simulate(inst, Z_MIX, R_MIX, years=5, replications=2, seed=9)
    monkeypatch.setattr(sim, "GRID_DTYPE", np.float64)
    b = simulate(inst, Z_MIX, R_MIX, years=5, replications=2, seed=9)
    for k, v in b.replicates.items():
        np.testing.assert_allclose(a.replicates[k], v, rtol=1e-5, atol=1e-6, err_msg=k)
    assert not np.array_equal(a.replicates["average_stock"], b.replicates["average_stock"])


def test_seed_determinism_and_batch_independence():
    inst = _mixed()
    a = simulate(inst, Z_MIX, R_MIX, years=3, replications=3, seed=11)
    b = simulate(inst, Z_MIX, R_MIX, years=3, replications=3, seed=11)
    c = simulate(inst, Z_MIX, R_MIX, years=3, replications=3, seed=12)
    pd_a, pd_b = a.to_frame(), b.to_frame()
    assert pd_a.equals(pd_b)
    assert not np.allclose(a.average_stock, c.average_stock)
    # a replication's numbers do not depend on how many replications run
    d = simulate(inst, Z_MIX, R_MIX, years=3, replications=1, seed=11)
    for k in d.replicates:
        np.testing.assert_array_equal(d.replicates[k][0], a.replicates[k][0])
    # with replayed demand, a SKU's result does not depend on the SKUs after it in the batch
    days = 365 * 4
    demand = np.random.default_rng(1).gamma(0.5, [20, 6, 0.3, 11, 4], size=(days, 5))
    full = simulate(inst, Z_MIX, R_MIX, years=3, replications=1, seed=4, demand=demand)
    part = simulate(inst.take([0, 1, 2]), Z_MIX[:3], R_MIX[:3], years=3, replications=1, seed=4,
                    demand=demand[:, :3])
    for k in part.replicates:
        np.testing.assert_allclose(part.replicates[k][0], full.replicates[k][0][:3], rtol=1e-12)


def test_frame_json_and_shapes():
    inst = _mixed()
    res = simulate(inst, Z_MIX, R_MIX, years=2, replications=2, seed=0)
    df = res.to_frame()
    assert tuple(df.columns) == SIM_COLUMNS
    assert list(df["sku"]) == list(inst.sku)
    assert df["short"].dtype == bool
    doc = res.to_json()
    json.dumps(doc, allow_nan=False)
    assert [s["sku"] for s in doc["skus"]] == list(inst.sku)
    assert res.replicates["fill_rate"].shape == (2, 5)
    one = simulate(inst, Z_MIX, R_MIX, years=2, replications=1, seed=0)
    assert np.isnan(one.fill_rate_ci).all()


def test_plan_from_json_aligns_and_names_missing_sku():
    inst = _mixed()
    doc = {"status": "optimal", "skus": [
        {"sku": s, "order_quantity": float(z), "reorder_point": float(r), "total_cost": 1.0}
        for s, z, r in reversed(list(zip(inst.sku, Z_MIX, R_MIX)))] + [
        {"sku": "EXTRA", "order_quantity": 1.0, "reorder_point": 0.0}]}
    skus, z, r = plan_from_json(json.dumps(doc), inst)
    assert skus == list(inst.sku)
    np.testing.assert_array_equal(z, Z_MIX)
    np.testing.assert_array_equal(r, R_MIX)
    doc["skus"] = [s for s in doc["skus"] if s["sku"] != "SKU3"]
    with pytest.raises(ValueError, match="SKU3"):
        plan_from_json(doc, inst)
    with pytest.raises(ValueError, match="twice"):
        plan_from_json({"skus": [doc["skus"][0], doc["skus"][0]]})


def test_bad_inputs():
    inst = _mixed()
    with pytest.raises(ValueError, match="SKU1"):
        simulate(inst, np.r_[0.0, Z_MIX[1:]], R_MIX)
    with pytest.raises(ValueError, match="order_rule"):
        simulate(inst, Z_MIX, R_MIX, order_rule="weekly")
    with pytest.raises(ValueError, match="demand must have shape"):
        simulate(inst, Z_MIX, R_MIX, years=1, demand=np.zeros((10, 5)))


def test_small_shape_gamma_sampler_matches_gamma_cdf():
    from scipy import stats

    from optimizer.simulate import _gamma_block

    k, theta, n = np.array([0.003, 0.03, 0.3, 2.0]), np.array([2.0, 1.0, 3.0, 1.0]), 100_000
    x = _gamma_block(np.random.default_rng(1), k, theta, n)
    np.testing.assert_allclose(x.mean(axis=0), k * theta, rtol=0.1)
    t = np.logspace(-30, 2, 80)  # no cut: tiny draws keep their value (float32 down to 1e-45)
    for j in range(k.size):
        ecdf = np.searchsorted(np.sort(x[:, j]), t * theta[j], side="right") / n
        assert np.abs(ecdf - stats.gamma(k[j], scale=theta[j]).cdf(t * theta[j])).max() < 0.01


def test_results_do_not_depend_on_workers_or_chunks(monkeypatch):
    # random streams belong to (replication, block of SKUs), and the columns are split between
    # workers and into chunks only on those blocks' boundaries: the numbers stay the same
    import optimizer.simulate as sim
    from optimizer.simulate import UNIT_SKUS

    n = 2 * UNIT_SKUS + 300  # two random-number units per replication
    inst = make_instance(np.linspace(100.0, 5000.0, n), 50, 1.0,
                         demand_sd=np.linspace(30.0, 900.0, n), lead_time_days=12,
                         lead_time_sd_days=2, supplier_on_time=0.9,
                         distribution=[NORMAL, GAMMA, POISSON, UNIFORM] * (n // 4))
    z, r = np.full(n, 150.0), np.full(n, 60.0)
    runs = [simulate(inst, z, r, years=1, replications=2, seed=5, workers=k) for k in (1, 2, 3)]
    monkeypatch.setattr(sim, "CHUNK_COLUMNS", UNIT_SKUS)  # one unit per chunk
    runs.append(simulate(inst, z, r, years=1, replications=2, seed=5, workers=1))
    for res in runs[1:]:
        for k, v in runs[0].replicates.items():
            np.testing.assert_array_equal(res.replicates[k], v, err_msg=k)


def test_poisson_sampler_matches_pmf():
    from scipy import stats

    from optimizer.simulate import _poisson_block

    lam, n = np.array([0.03, 0.2, 1.0, 9.9, 25.0]), 100_000  # the last by numpy's sampler
    x = np.empty((n, lam.size))
    _poisson_block(np.random.default_rng(2), lam, n, x)
    for j, m in enumerate(lam):
        vals, cnt = np.unique(x[:, j], return_counts=True)
        assert np.array_equal(vals, np.round(vals)) and vals[0] >= 0
        expected = stats.poisson(m).pmf(vals) * n
        big = expected > 5
        chi2 = (((cnt - expected) ** 2 / expected)[big]).sum()
        assert stats.chi2.sf(chi2, max(big.sum() - 1, 1)) > 1e-3


@pytest.mark.parametrize("bad", [np.nan, np.inf, -1.0])
def test_replayed_demand_must_be_finite_and_nonnegative(bad):
    inst = _mixed()
    demand = np.ones((365 * 2, 5))
    demand[100, 3] = bad
    with pytest.raises(ValueError, match="finite and >= 0"):
        simulate(inst, Z_MIX, R_MIX, years=1, demand=demand)


def test_vectorised_equals_per_sku_loop_on_edge_cases():
    # the block engine against the day-by-day loop where it differs most from it: several Z
    # in one day, a start below R (orders on day 0) or far above R + Z, zero lead times,
    # integer demand hitting R exactly, a warm-up that ends inside a block, two workers
    rng = np.random.default_rng(11)
    n = 12
    sc = Scenario(vehicles=Vehicles(default=VehicleSpec(capacity=40.0, measure="weight", cost=10)))
    d = rng.uniform(50, 8000, n)
    inst = make_instance(d, 50, 1.0, demand_sd=d * rng.uniform(0, 0.8, n) * (rng.random(n) > 0.2),
                         lead_time_days=rng.uniform(0, 40, n).round(1),
                         lead_time_sd_days=rng.uniform(0, 5, n) * (rng.random(n) > 0.3),
                         supplier_on_time=np.where(rng.random(n) > 0.5, 1.0, 0.85),
                         distribution=list(rng.choice([NORMAL, GAMMA, POISSON, UNIFORM], n)),
                         unit_weight=rng.uniform(0, 2, n), scenario=sc)
    z, r = rng.uniform(5, 300, n), rng.uniform(-20, 200, n)
    z[0], r[0] = 100.0, 120.0
    years, warm = 2.3, 0.7
    days = int(round(years * 365)) + int(round(warm * 365))
    demand = rng.gamma(0.3, 40, size=(2, days, n)) * (rng.random((2, days, n)) > 0.3)
    demand[:, :, 0] = 10.0  # integer demand: the position lands on R exactly
    demand[:, ::7, 1] = 900.0  # lumpy: several Z in one day
    starts = (None, np.r_[r[:6] - 50, r[6:] + 3 * z[6:]])
    for rule, start, workers in [("nQ", starts[0], 2), ("nQ", starts[1], 1),
                                 ("single", starts[0], 1), ("single", starts[1], 2)]:
        kw = dict(years=years, warmup_years=warm, replications=2, seed=3, demand=demand,
                  order_rule=rule, initial_stock=start)
        a = simulate(inst, z, r, workers=workers, **kw)
        b = simulate_reference(inst, z, r, **kw)
        for k, v in b.items():
            np.testing.assert_allclose(a.replicates[k], v, rtol=1e-12, atol=1e-9,
                                       err_msg=f"{k} {rule}")
