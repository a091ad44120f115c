"""Small instances built directly from arrays (bypassing file I/O) for model tests."""

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
