"""Throughput of the daily-bucket (R, Z) simulation, vectorised against a per-SKU loop.

On a synthetic instance (`optimizer generate`: normal/gamma/Poisson SKUs, random lead
times, late suppliers, trucks) with a quick plan (EOQ rounded up to the MOQ, reorder point
E v + 1.65 sd of the effective lead-time demand) it times

- `optimizer.simulate.simulate` on --skus SKUs x --years years, 1 replication, no warm-up,
  and prints SKU-years per second and its ratio to the issue's target (300,000 SKU-years/s);
  also the same run with demand replayed from a pre-drawn array, which isolates the daily
  loop and the block statistics from random-number generation;
- `optimizer.simulate.simulate_reference` (plain Python loops, one SKU at a time, demand
  drawn day by day) on --naive-skus SKUs x the same years, and the speed-up.

    python bench/bench_simulate.py --skus 10000 --years 10 [--naive-skus 20] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

TARGET = 300_000.0  # SKU-years per second


def quick_plan(inst):
    """EOQ (>= MOQ) and R = E v + 1.65 sd of the effective lead-time demand."""
    z = np.sqrt(2.0 * inst.annual_demand * inst.ordering_cost / inst.holding_cost)
    z = np.maximum(np.maximum(z, inst.moq), 1.0)
    mean, sd = inst.effective_lead_time_demand()
    return z, np.maximum(mean + 1.65 * sd, 0.0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skus", type=int, default=10000)
    ap.add_argument("--years", type=float, default=10.0)
    ap.add_argument("--naive-skus", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3, help="vectorised runs; the best is reported")
    args = ap.parse_args()

    from optimizer.generate import generate_instance
    from optimizer.io import instance_from_frames
    from optimizer.simulate import simulate, simulate_reference

    skus, sc = generate_instance(args.skus, seed=args.seed)
    inst = instance_from_frames(skus, sc)
    z, r = quick_plan(inst)
    kinds = {name: int((inst.distribution == code).sum())
             for name, code in (("normal", 0), ("poisson", 1), ("gamma", 2), ("uniform", 3))}
    print(f"instance: {inst.n} SKUs {kinds}, {args.years:g} years x "
          f"{inst.scenario.days_per_year:g} days, 1 replication, threads={args.threads}")

    sku_years = inst.n * args.years
    best = np.inf
    for _ in range(args.repeat):
        t = time.perf_counter()
        res = simulate(inst, z, r, years=args.years, replications=1, warmup_years=0.0,
                       seed=args.seed, threads=args.threads)
        best = min(best, time.perf_counter() - t)
    rate = sku_years / best
    print(f"vectorised simulate: {best:.3f} s -> {rate:,.0f} SKU-years/s "
          f"({rate / TARGET:.2f} x the {TARGET:,.0f} target)")
    print(f"  mean simulated fill rate {np.nanmean(res.fill_rate):.4f} "
          f"(analytical {np.nanmean(res.analytic_fill_rate):.4f}), short SKUs {int(res.short.sum())}")

    days = int(round(args.years * inst.scenario.days_per_year))
    demand = np.random.default_rng(0).poisson(
        inst.annual_demand / inst.scenario.days_per_year, size=(days, inst.n)).astype(float)
    t = time.perf_counter()
    simulate(inst, z, r, years=args.years, replications=1, warmup_years=0.0,
             seed=args.seed, demand=demand)
    loop_s = time.perf_counter() - t
    print(f"  same run with demand replayed (no random-number generation): {loop_s:.3f} s -> "
          f"{sku_years / loop_s:,.0f} SKU-years/s")

    sub = inst.take(np.arange(min(args.naive_skus, inst.n)))
    t = time.perf_counter()
    simulate_reference(sub, z[:sub.n], r[:sub.n], years=args.years, replications=1,
                       warmup_years=0.0, seed=args.seed)
    naive_s = time.perf_counter() - t
    naive_rate = sub.n * args.years / naive_s
    print(f"naive per-SKU loop: {sub.n} SKUs in {naive_s:.3f} s -> {naive_rate:,.0f} SKU-years/s; "
          f"vectorised speed-up {rate / naive_rate:,.0f}x")


if __name__ == "__main__":
    main()
