"""Deterministic formulas: seed 003's example, backorders and discounts vs brute force."""

import numpy as np
import pandas as pd
import pytest
from scipy import optimize as sopt

from optimizer.eoq import (eoq, eoq_all_units_discount, eoq_incremental_discount,
                           eoq_planned_backorders, price_breaks_from_frame, reorder_level)


def test_seed003_worked_example():
    # source: seed 003: D = 10,000, S = 200, H = 5 -> EOQ = 894 (approx.)
    r = eoq(10_000, 200, 5)
    assert float(r.order_quantity) == pytest.approx(894.427191, rel=1e-9)
    assert float(r.ordering_cost) == pytest.approx(float(r.holding_cost))
    # source: seed 003: 40 per day x 5 days = 200 (250 working days)
    assert float(reorder_level(10_000, 5, days_per_year=250)) == pytest.approx(200.0)


def test_planned_backorders_equal_numeric_minimum():
    D, S, H, B = 4000.0, 80.0, 3.0, 12.0
    r = eoq_planned_backorders(D, S, H, B)

    def cost(x):
        q, s = x
        return S * D / q + H * (q - s) ** 2 / (2 * q) + B * s ** 2 / (2 * q)

    res = sopt.minimize(cost, x0=[300.0, 50.0], method="Nelder-Mead",
                        options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 10000})
    assert float(r.order_quantity) == pytest.approx(res.x[0], rel=1e-6)
    assert float(r.max_backorder) == pytest.approx(res.x[1], rel=1e-6)
    assert float(r.total_cost) == pytest.approx(res.fun, rel=1e-9)
    # no backorders when they are prohibitively expensive: back to the EOQ
    assert float(eoq_planned_backorders(D, S, H, 1e12).order_quantity) == pytest.approx(
        float(eoq(D, S, H).order_quantity), rel=1e-6)


def test_all_units_textbook_example():
    # source: classic all-units example (Silver, Pyke & Peterson style): D = 1,200/yr,
    # S = 50, i = 0.2; price 5.00 below 200 units, 4.75 from 200, 4.60 from 500.
    # EOQ at 4.60 is sqrt(2*1200*50/0.92) = 361 < 500, so candidates 500 (at 4.60) and
    # the EOQ at 4.75 (355 units, in [200, 500)); the totals pick 500 units.
    bq = np.array([[0.0, 200.0, 500.0]])
    bp = np.array([[5.0, 4.75, 4.60]])
    r = eoq_all_units_discount(1200.0, 50.0, 0.2, bq, bp)
    total_500 = 1200 * 4.60 + 50 * 1200 / 500 + 0.2 * 4.60 * 500 / 2
    q475 = np.sqrt(2 * 1200 * 50 / (0.2 * 4.75))
    total_475 = 1200 * 4.75 + 50 * 1200 / q475 + 0.2 * 4.75 * q475 / 2
    assert min(total_500, total_475) == total_500
    assert float(r.order_quantity[0]) == 500.0 and float(r.unit_price[0]) == 4.60
    assert float(r.total_cost[0]) == pytest.approx(total_500)


def brute(D, S, i, bq, bp, incremental):
    qs = np.arange(1.0, 6000.0)
    if incremental:
        nxt = np.append(bq[1:], np.inf)
        units = np.clip(qs[:, None] - bq[None, :], 0, nxt - bq)
        C = (units * bp).sum(axis=1)
    else:
        j = np.searchsorted(bq, qs, side="right") - 1
        C = bp[j] * qs
    total = D * C / qs + S * D / qs + i * C / 2
    k = int(np.argmin(total))
    return qs[k], total[k]


@pytest.mark.parametrize("incremental", [False, True])
def test_discounts_equal_enumeration_over_integer_q(incremental):
    rng = np.random.default_rng(4)
    n = 12
    D = rng.uniform(300, 20000, n)
    S = rng.uniform(20, 300, n)
    i = rng.uniform(0.1, 0.4, n)
    c0 = rng.uniform(2, 40, n)
    bq = np.stack([np.zeros(n), rng.integers(50, 600, n), rng.integers(700, 2500, n)], axis=1)
    bp = np.stack([c0, c0 * 0.95, c0 * 0.9], axis=1)
    bq[0, 2] = bp[0, 2] = np.nan  # a SKU with two breaks only (padding)
    fn = eoq_incremental_discount if incremental else eoq_all_units_discount
    r = fn(D, S, i, bq, bp)
    for k in range(n):
        keep = ~np.isnan(bq[k])
        _, t = brute(D[k], S[k], i[k], bq[k][keep], bp[k][keep], incremental)
        assert float(r.total_cost[k]) <= t * (1 + 1e-12)  # continuous Q: never worse
        assert float(r.total_cost[k]) == pytest.approx(t, rel=1e-4)


def test_price_breaks_from_frame_and_errors():
    df = pd.DataFrame({"sku": ["A", "A", "B"], "min_quantity": [100, 0, 0],
                       "unit_cost": [9.0, 10.0, 3.0]})
    q, p = price_breaks_from_frame(df, ["A", "B"])
    assert q[0].tolist() == [0.0, 100.0] and np.isnan(q[1, 1])
    assert p[0].tolist() == [10.0, 9.0]
    with pytest.raises(ValueError, match="'A'.*quantity 0"):
        price_breaks_from_frame(df[df.min_quantity > 0], ["A"])
    with pytest.raises(ValueError, match="'A'.*rises"):
        price_breaks_from_frame(df.assign(unit_cost=[11.0, 10.0, 3.0]), ["A", "B"])
    with pytest.raises(ValueError, match="first break"):
        eoq_all_units_discount(1, 1, 0.2, [[5.0]], [[1.0]])
