"""Synthetic SKU masters of any size with realistic spreads and limits that bind.

Spreads (vectorised with one numpy Generator): annual demand lognormal around 1,000
units/yr with a heavy tail and unit cost lognormal around 20 so that about a fifth of the
SKUs carry most of the value (ABC); ordering cost 20-200 per order; holding rate 15-35%
per year; demand CV 0.1-1.0; lead times 3-60 days with 0-30% spread; Poisson for slow
movers (< 100 units/yr), some gamma; a shortage cost for ~60% of SKUs, a cycle-service or
fill-rate target for the rest; MOQs for ~40%, pack sizes for ~30%; volume and weight
correlated with value; suppliers with on-time rates 85-100% and their own trucks.

Limits: the single-item policies' average investment and volume are measured (a quick EOQ
plus z-sd_LTD estimate) and the budget and warehouse set to `tightness` and
`0.95 tightness` of them (both then bind); trucks hold roughly 1-3 EOQs of a typical SKU of the supplier.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def generate_instance(n_skus: int, seed: int = 0, n_suppliers: int | None = None,
                      tightness: float = 0.7) -> tuple[pd.DataFrame, dict]:
    """(SKU table, scenario dict in the scenario.toml structure)."""
    rng = np.random.default_rng(seed)
    n = int(n_skus)
    k = n_suppliers or max(3, n // 200)
    k = min(k, n)
    demand = np.round(rng.lognormal(np.log(1000.0), 1.2, n), 1) + 1.0
    unit_cost = np.clip(np.round(rng.lognormal(np.log(20.0), 1.1, n), 2), 0.5, 2000.0)
    ordering = np.round(rng.uniform(20, 200, n), 2)
    hrate = np.round(rng.uniform(0.15, 0.35, n), 3)
    cv = rng.uniform(0.1, 1.0, n)
    lead = rng.integers(3, 61, n).astype(float)
    lead_sd = np.round(lead * rng.uniform(0.0, 0.3, n), 1)
    dist = np.where(demand < 100, "poisson", np.where(rng.random(n) < 0.15, "gamma", "normal"))
    sd = np.round(cv * demand, 1)
    mode = rng.random(n)
    shortage = np.where(mode < 0.6, np.round(unit_cost * rng.uniform(1.0, 5.0, n), 2), np.nan)
    cycle = np.where((mode >= 0.6) & (mode < 0.8), np.round(rng.uniform(0.9, 0.99, n), 3), np.nan)
    fill = np.where(mode >= 0.8, np.round(rng.uniform(0.9, 0.99, n), 3), np.nan)
    h = hrate * unit_cost
    eoq = np.sqrt(2 * demand * ordering / h)
    has_moq = rng.random(n) < 0.4
    moq = np.where(has_moq, np.round(eoq * rng.uniform(0.3, 2.0, n)), 0.0)
    packs = np.array([6, 10, 12, 24, 50, 100], dtype=float)
    multiple = np.where(rng.random(n) < 0.3, rng.choice(packs, n), np.nan)
    # a pack larger than a fifth of the EOQ is unrealistic for a fast mover; keep small ones
    multiple = np.where(multiple > np.maximum(eoq / 5, 6), np.nan, multiple)
    moq = np.where(np.isfinite(multiple) & (moq > 0), np.ceil(moq / np.nan_to_num(multiple, nan=1))
                   * np.nan_to_num(multiple, nan=1), moq)
    volume = np.round(np.clip(unit_cost * rng.lognormal(np.log(0.002), 0.6, n), 0.0005, 0.5), 5)
    weight = np.round(np.clip(volume * rng.uniform(150, 400, n), 0.1, 50.0), 3)
    supplier_ids = np.array([f"S{i + 1:03d}" for i in range(k)], dtype=object)
    supplier = supplier_ids[rng.integers(0, k, n)]
    on_time_by = np.round(rng.uniform(0.85, 1.0, k), 3)
    on_time = on_time_by[np.searchsorted(supplier_ids, supplier)]
    share = rng.dirichlet(np.ones(n)) if n > 1 else np.ones(1)
    skus = pd.DataFrame({
        "sku": [f"SKU{i + 1:06d}" for i in range(n)], "annual_demand": demand, "demand_sd": sd,
        "lead_time_days": lead, "lead_time_sd_days": lead_sd, "unit_cost": unit_cost,
        "ordering_cost": ordering, "holding_rate": hrate, "shortage_cost": shortage,
        "cycle_service": cycle, "fill_rate": fill, "demand_distribution": dist, "moq": moq,
        "order_multiple": multiple, "unit_volume": volume, "unit_weight": weight,
        "supplier": supplier, "supplier_on_time": on_time, "sales_share": np.maximum(share, 1e-12),
    })
    # rough single-item investment: EOQ (at least MOQ) / 2 + 1.65 sd of lead-time demand
    L = lead / 365.0
    sd_ltd = np.sqrt(L * sd ** 2 + (demand / 365.0) ** 2 * lead_sd ** 2)
    q = np.maximum(eoq, moq)
    units = q / 2 + 1.65 * sd_ltd
    invest = float((unit_cost * units).sum())
    space = float((volume * units).sum())
    # trucks: capacity ~ 1-3 typical EOQ loads of the supplier's SKUs, by weight
    load = pd.Series(eoq * weight).groupby(supplier).median()
    cap = {s: float(np.round(load[s] * rng.uniform(1.0, 3.0), 0) + 1.0) for s in load.index}
    max_unit = pd.Series(weight).groupby(supplier).max()
    cap = {s: max(c, float(max_unit[s]) * 2) for s, c in cap.items()}
    default_cap = float(np.median(list(cap.values())))
    suppliers_table = {}
    for i, s in enumerate(sorted(cap)):
        if i % 2 == 0 or cap[s] > default_cap:  # the others use the default truck
            suppliers_table[s] = {"capacity": cap[s], "cost": float(np.round(rng.uniform(50, 400)))}
    scenario = {
        "name": f"synthetic_{n}_{seed}",
        "days_per_year": 365,
        "budget": {"limit": float(np.round(tightness * invest, 0)), "basis": "average"},
        "warehouse": {"capacity": float(np.round(0.95 * tightness * space, 3)),
                      "basis": "average"},
        "vehicles": {"capacity": default_cap, "measure": "weight",
                     "cost": float(np.round(rng.uniform(50, 400))),
                     "suppliers": suppliers_table},
    }
    return skus, scenario


def generate_to_dir(n_skus: int, seed: int, out_dir, fmt: str = "csv",
                    tightness: float = 0.7) -> None:
    """Generate and write an instance directory (validated on the way)."""
    from optimizer.io import instance_from_frames, write_instance

    skus, scenario = generate_instance(n_skus, seed=seed, tightness=tightness)
    write_instance(instance_from_frames(skus, scenario), out_dir, fmt=fmt)


def plan_start_state(instance, period_days: float, warmup: int = 26, seed: int = 0,
                     policy=None) -> tuple[np.ndarray, pd.DataFrame]:
    """A realistic starting point for `optimizer plan`: stock on hand today and the orders on
    the way, as left by running the single-item (R, Z) policy for `warmup` periods of flat
    demand (annual_demand x period_days / days_per_year) from a stock drawn uniformly in
    [R, R + Z] per SKU. Returns (on_hand per SKU in units, open orders DataFrame sku,
    period, quantity with period = arrival period 1, 2, ... counted from today)."""
    from optimizer.plan import build_plan_data, evaluate, rz_start
    from optimizer.policy import single_item_policy

    pol = policy if policy is not None else single_item_policy(instance, "full")
    rng = np.random.default_rng(seed)
    Z = np.nan_to_num(pol.order_quantity, nan=0.0)
    R = np.nan_to_num(pol.reorder_point, nan=0.0)
    start = R + rng.uniform(0.0, 1.0, instance.n) * Z
    lead = np.ceil(instance.lead_time_days / period_days - 1e-9).astype(int)
    T = warmup + int(lead.max()) + 1
    data, _ = build_plan_data(instance.with_scenario(instance.scenario.with_changes(
        budget=None, warehouse=None)), T, period_days, on_hand=start, policy=pol)
    x = rz_start(data, Z, R)
    x[:, warmup:] = 0.0  # only orders placed before today
    net = evaluate(data, x)["net"]
    on_hand = np.maximum(np.round(net[:, warmup - 1], 3), 0.0)
    ii, jj = np.nonzero(x[:, :warmup] > 0)
    arrive = jj + 1 + data.lead[ii] - warmup  # arrival period counted from today
    keep = arrive >= 1
    open_orders = pd.DataFrame({"sku": data.sku[ii[keep]], "period": arrive[keep],
                                "quantity": x[ii[keep], jj[keep]]})
    return on_hand, open_orders.sort_values(["period", "sku"]).reset_index(drop=True)
