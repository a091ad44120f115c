"""Small instances built directly from arrays (bypassing file I/O) for model tests."""

from collections.abc import Sequence

import numpy as np
import pandas as pd

from optimizer.instance import NORMAL, Instance, Scenario


def make_instance(annual_demand, ordering_cost, holding_cost, unit_cost=1.0, *, demand_sd=0.0,
                  lead_time_days=10.0, lead_time_sd_days=0.0, shortage_cost=np.nan,
                  cycle_service=np.nan, fill_rate=np.nan, distribution=NORMAL, moq=0.0,
                  order_multiple=0.0, unit_volume=0.0, unit_weight=0.0, supplier="default",
                  supplier_on_time=1.0, sales_share=np.nan, scenario=None) -> Instance:
    D = np.atleast_1d(np.asarray(annual_demand, dtype=float))
    n = D.size

    def arr(v, dtype=float):
        return np.array(np.broadcast_to(np.asarray(v, dtype=dtype), (n,)))

    sku = np.array([f"SKU{i + 1}" for i in range(n)], dtype=object)
    return Instance(
        frame=pd.DataFrame({"sku": sku}), scenario=scenario or Scenario(), sku=sku,
        annual_demand=D, demand_sd=arr(demand_sd), lead_time_days=arr(lead_time_days),
        lead_time_sd_days=arr(lead_time_sd_days), unit_cost=arr(unit_cost),
        ordering_cost=arr(ordering_cost), holding_cost=arr(holding_cost),
        shortage_cost=arr(shortage_cost), cycle_service=arr(cycle_service),
        fill_rate=arr(fill_rate), distribution=arr(distribution, np.int8), moq=arr(moq),
        order_multiple=arr(order_multiple), unit_volume=arr(unit_volume),
        unit_weight=arr(unit_weight), supplier=arr(supplier, object),
        supplier_on_time=arr(supplier_on_time), sales_share=arr(sales_share))


def small_plan_fields(rng, n: int, T: int, *, max_lead: int, least_on_hand: int) -> dict:
    """LotSizingData fields of a small random purchase-plan instance: four suppliers (A, B,
    C with trucks, D without: its SKU carries load 0), MOQs, packs, floors, stock on hand;
    lead times 0..max_lead-1 periods."""
    return dict(
        sku=[f"S{i}" for i in range(n)], supplier=(["A", "A", "B", "B", "C", "C", "D"] * 2)[:n],
        demand=rng.integers(2, 12, (n, T)).astype(float), lead=rng.integers(0, max_lead, n),
        on_hand=rng.integers(least_on_hand, 15, n).astype(float),
        floor=rng.choice([0.0, 3.0], n),
        unit_cost=rng.uniform(1, 4, n).round(1), ordering_cost=rng.uniform(10, 40, n).round(1),
        holding_cost=rng.uniform(0.3, 1.5, n).round(2), moq=rng.choice([0.0, 8.0], n),
        multiple=rng.choice([0.0, 2.0], n), unit_volume=rng.uniform(0.5, 1.5, n).round(2),
        load=np.where(np.arange(n) == n - 1, 0.0, rng.uniform(1, 3, n).round(1)),
        truck_capacity={"A": 30.0, "B": 25.0, "C": 20.0},
        truck_cost={"A": 40.0, "B": 30.0, "C": 25.0})


def limited_plan_data(seed: int, *, backlog: bool = False, n: int = 7, T: int = 6,
                      budget_share: float = 0.75, space_share: float = 0.8):
    """`small_plan_fields` of `seed` with a period budget and a warehouse that cut into the
    optimum without them: budget = budget_share x its peak spend, warehouse = its least
    space + space_share x (peak - least). backlog: half the SKUs get a shortage cost. The
    limits may leave no plan (check with `optimizer.plan.diagnose`)."""
    from formulations.lot_sizing import LotSizingData
    from optimizer.plan import solve_plan_data

    rng = np.random.default_rng(seed)
    kw = small_plan_fields(rng, n, T, max_lead=2, least_on_hand=5)
    if backlog:
        kw["shortage_cost"] = np.where(rng.random(n) < 0.5, 20.0, np.nan)
    free = solve_plan_data(LotSizingData(**kw), gap=1e-9, lp_bound=False)
    spend, space = free.periods["spend"].to_numpy(), free.periods["space"].to_numpy()
    return LotSizingData(**kw, budget=budget_share * spend.max(),
                         warehouse=space.min() + space_share * (space.max() - space.min()))


def limited_cases(count: int = 4, **solve_kw) -> list:
    """(seed, data, exact optimum) for the first `count` seeds from 0 whose
    `limited_plan_data` leaves a plan and whose MIP `solve_plan_data` (gap 1e-9, no LP
    bound, `solve_kw`) solves to optimality."""
    from optimizer.plan import diagnose, solve_plan_data

    out = []
    for seed in range(40):
        data = limited_plan_data(seed)
        if diagnose(data):
            continue
        opt = solve_plan_data(data, gap=1e-9, lp_bound=False, **solve_kw)
        if opt.status == "optimal":
            out.append((seed, data, opt))
        if len(out) == count:
            break
    return out


class Lazy(Sequence):
    """The list `make()` returns, built on first use: a test module's exact MIP optima are
    solved by the process that runs its tests, not by every process that collects it (a
    parallel run's workers import every module; the optima took 2 min 40 s of each
    collection)."""

    def __init__(self, make):
        self._make = make
        self._items = None

    def _list(self) -> list:
        if self._items is None:
            self._items = list(self._make())
        return self._items

    def __getitem__(self, i):
        return self._list()[i]

    def __len__(self) -> int:
        return len(self._list())
