"""Throughput of the daily-bucket (R, Z) simulation, vectorised against a per-SKU loop.

On a synthetic instance (`optimizer generate`: normal/gamma/Poisson SKUs, random lead
times, late suppliers, trucks) with a quick plan (EOQ rounded up to the MOQ, reorder point
E v + 1.65 sd of the effective lead-time demand) it times, in the same run,

- `optimizer.simulate.simulate` on --skus SKUs x --years years, 1 replication, no warm-up,
  in one process and on --workers parallel workers (forked processes; best of --repeat
  runs each, the median beside it; wall-clock and CPU seconds, workers included), and
  prints SKU-years per second and the ratio to the target (300,000 SKU-years/s); also the
  one-process run with demand replayed from a pre-drawn array, which isolates the
  simulation from random-number generation;
- `optimizer.simulate.simulate_reference` (plain Python loops, one SKU at a time, demand
  drawn day by day) on --naive-skus SKUs x the same years, and the speed-up over it.

The machine's load average is printed first and last: the wall-clock figures (and the gain
from a second worker) depend on other processes sharing the cores.

    python bench/bench_simulate.py --skus 10000 --years 10 [--naive-skus 20] [--workers 2]
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


def _cpu_seconds() -> float:
    """CPU seconds of this process and of its waited-for children (forked workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skus", type=int, default=10000)
    ap.add_argument("--years", type=float, default=10.0)
    ap.add_argument("--naive-skus", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=5,
                    help="vectorised runs; the best is reported (and the median)")
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
          f"{inst.scenario.days_per_year:g} days, 1 replication; "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")

    sku_years = inst.n * args.years

    def timed(**kw):
        """Best and median wall-clock, best CPU seconds (this process and its finished
        workers) of --repeat runs, and the last result."""
        walls, cpus = [], []
        for _ in range(args.repeat):
            t, c = time.perf_counter(), _cpu_seconds()
            res = simulate(inst, z, r, years=args.years, replications=1, warmup_years=0.0,
                           seed=args.seed, **kw)
            walls.append(time.perf_counter() - t)
            cpus.append(_cpu_seconds() - c)
        return min(walls), float(np.median(walls)), min(cpus), res

    rates = {}
    for workers in sorted({1, args.workers}):
        wall, median, cpu, res = timed(workers=workers)
        rates[workers] = rate = sku_years / wall
        print(f"vectorised simulate, {workers} worker(s): {wall:.3f} s wall ({cpu:.3f} s CPU; "
              f"median of {args.repeat} runs {median:.3f} s = {sku_years / median:,.0f}/s) -> "
              f"{rate:,.0f} SKU-years/s = {rate / TARGET:.2f} x the {TARGET:,.0f} target")
    print(f"  mean simulated fill rate {np.nanmean(res.fill_rate):.4f} "
          f"(analytical {np.nanmean(res.analytic_fill_rate):.4f}), "
          f"short SKUs {int(res.short.sum())}")

    days = int(round(args.years * inst.scenario.days_per_year))
    demand = np.random.default_rng(0).poisson(
        inst.annual_demand / inst.scenario.days_per_year, size=(days, inst.n)).astype(float)
    wall, _, cpu, _ = timed(workers=1, demand=demand)
    print(f"  same on 1 worker with demand replayed (no random-number generation): {wall:.3f} s "
          f"({cpu:.3f} s CPU) -> {sku_years / wall:,.0f} SKU-years/s")

    sub = inst.take(np.arange(min(args.naive_skus, inst.n)))
    t = time.perf_counter()
    simulate_reference(sub, z[:sub.n], r[:sub.n], years=args.years, replications=1,
                       warmup_years=0.0, seed=args.seed)
    naive_s = time.perf_counter() - t
    naive_rate = sub.n * args.years / naive_s
    print(f"naive per-SKU loop: {sub.n} SKUs in {naive_s:.3f} s -> {naive_rate:,.0f} SKU-years/s")
    for workers, rate in rates.items():
        print(f"speed-up over the naive loop, {workers} worker(s): {rate / naive_rate:,.0f}x; "
              f"ratio to the target {rate / TARGET:.2f}")
    print(f"load average at the end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
