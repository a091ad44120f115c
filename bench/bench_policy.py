"""Benchmark the single-item policy (`optimizer policy`) against stockpyl, side by side.

For N normal-demand SKUs with a shortage cost (the Hadley-Whitin (R, Q) model of seed
004), it times `optimizer.policy.single_item_policy` (the API behind `optimizer policy`,
instance already validated; the validation time is printed too) and, in the same run,
stockpyl's per-SKU `rq.r_q_eil_approximation` (the same model, one Python call per SKU) on
a sample of SKUs; prints SKUs per second for both, the ratio, and the largest relative
difference between the two answers on the sample. Targets (issue 2): 10^6 SKUs under 3 s,
at least 1000x stockpyl per SKU.

    pip install -e '.[bench]'
    python bench/bench_policy.py --sizes 10000,100000,1000000 [--sample 2000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pandas as pd


def normal_skus(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    demand = np.round(rng.lognormal(np.log(2000.0), 0.9, n), 1) + 50.0
    cost = np.round(rng.lognormal(np.log(20.0), 1.0, n), 2) + 0.5
    return pd.DataFrame({
        "sku": np.char.add("N", np.arange(n).astype(str)),
        "annual_demand": demand, "demand_sd": np.round(demand * rng.uniform(0.1, 0.6, n), 1),
        "lead_time_days": rng.integers(5, 60, n).astype(float), "unit_cost": cost,
        "ordering_cost": np.round(rng.uniform(20, 200, n), 2),
        "holding_rate": np.round(rng.uniform(0.15, 0.35, n), 3),
        "shortage_cost": np.round(cost * rng.uniform(1.0, 5.0, n), 2),
    })


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--sample", type=int, default=2000)
    args = ap.parse_args()

    from optimizer.io import instance_from_frames
    from optimizer.policy import single_item_policy

    try:
        from stockpyl.rq import r_q_eil_approximation
    except ImportError:  # bench-only extra
        r_q_eil_approximation = None
        print("stockpyl not installed (pip install -e '.[bench]'): no baseline")

    print(f"{'SKUs':>9} {'validate s':>10} {'policy s':>9} {'SKUs/s':>12} | "
          f"{'stockpyl SKUs/s':>15} {'ratio':>9} {'max rel diff':>12}")
    for n in [int(s) for s in args.sizes.split(",")]:
        df = normal_skus(n)
        t = time.perf_counter()
        inst = instance_from_frames(df, {})
        t_val = time.perf_counter() - t
        single_item_policy(inst.take(np.arange(min(n, 1000))))  # warm imports and caches
        t = time.perf_counter()
        pol = single_item_policy(inst)
        t_pol = time.perf_counter() - t
        ours_rate = n / t_pol
        sp_rate = ratio = diff = float("nan")
        if r_q_eil_approximation is not None:
            m = min(args.sample, n)
            L = inst.lead_time_days[:m] / 365.0
            t = time.perf_counter()
            out = [r_q_eil_approximation(inst.holding_cost[i], inst.shortage_cost[i],
                                         inst.ordering_cost[i], inst.annual_demand[i],
                                         inst.demand_sd[i], L[i], tol=1e-9)
                   for i in range(m)]
            sp_rate = m / (time.perf_counter() - t)
            ratio = ours_rate / sp_rate
            r_sp = np.array([o[0] for o in out])
            q_sp = np.array([o[1] for o in out])
            diff = float(max(np.max(np.abs(q_sp - pol.order_quantity[:m]) / q_sp),
                             np.max(np.abs(r_sp - pol.reorder_point[:m])
                                    / np.maximum(np.abs(r_sp), 1.0))))
        print(f"{n:>9} {t_val:>10.2f} {t_pol:>9.2f} {ours_rate:>12,.0f} | {sp_rate:>15,.0f} "
              f"{ratio:>9,.0f} {diff:>12.2e}", flush=True)


if __name__ == "__main__":
    main()
