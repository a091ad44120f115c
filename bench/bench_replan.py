"""Benchmark batch re-planning against cold solves, side by side in one run.

On one synthetic instance (`optimizer generate`, budget, warehouse and trucks binding) and
N budgets from tight to slack it measures: one cold solve, the whole frontier through
`optimizer.replan.replan` (state carried from scenario to scenario), the mean re-plan, and
the same frontier as N cold solves. Prints the ratios the issue targets: mean re-plan /
cold solve (target <= 0.10) and frontier / cold solve (target <= 2).

    python bench/bench_replan.py --skus 10000 --budgets 20 [--gap 1e-3] [--repeat 3]

The cold solve and the frontier run --repeat times, alternating, and the ratios use their
medians (single runs on a shared machine move by +-15%).

    python bench/bench_replan.py --seeds 1,2,3,4,5,6 --skip-cold-frontier

runs the same on several generated instances (the rounds a frontier needs differ from
instance to instance: where a limit stops binding, how far the first step lands) and
ends with each seed's frontier / cold ratio and their mean and largest.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--skus", type=int, default=10000)
    ap.add_argument("--budgets", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seeds", default=None,
                    help="comma-separated seeds: the whole run for each, then a summary")
    ap.add_argument("--gap", type=float, default=1e-3)
    ap.add_argument("--skip-cold-frontier", action="store_true")
    ap.add_argument("--repeat", type=int, default=3,
                    help="cold solve and frontier runs; ratios from the medians")
    args = ap.parse_args()
    seeds = [int(x) for x in args.seeds.split(",")] if args.seeds else [args.seed]
    summary = []
    for seed in seeds:
        if len(seeds) > 1:
            print(f"=== seed {seed}")
        summary.append((seed,) + run(args, seed))
    if len(seeds) > 1:
        print("seed  cold s  frontier s  frontier/cold  mean re-plan/cold")
        for seed, cold_s, front_s, re_mean in summary:
            print(f"{seed:4d}  {cold_s:6.2f}  {front_s:10.2f}  {front_s / cold_s:13.2f}  "
                  f"{re_mean / cold_s:17.3f}")
        ratios = np.array([f / c for _, c, f, _ in summary])
        print(f"RATIO frontier / cold solve over {len(seeds)} seeds: mean {ratios.mean():.2f}, "
              f"largest {ratios.max():.2f} (target <= 2)")


def run(args, seed):
    """One instance: prints its figures; returns (median cold s, median frontier s, mean
    re-plan s)."""
    from optimizer.generate import generate_instance
    from optimizer.io import instance_from_frames
    from optimizer.replan import replan, specs_from_budgets
    from optimizer.solve import solve

    skus, sc = generate_instance(args.skus, seed=seed)
    inst = instance_from_frames(skus, sc)
    b0 = sc["budget"]["limit"]
    budgets = np.linspace(0.8 * b0, 1.8 * b0, args.budgets)
    specs = specs_from_budgets(budgets)

    # cold solve and frontier alternate --repeat times; the ratios use the medians (a shared
    # machine's noise moves single runs by +-15%)
    colds, frontiers = [], []
    for k in range(args.repeat):
        t = time.perf_counter()
        cold = solve(inst.with_scenario(specs[0].apply(inst.scenario)), gap=args.gap)
        colds.append(time.perf_counter() - t)
        fr = replan(inst, specs, gap=args.gap)
        frontiers.append(fr)
        re_k = fr.table()["solve_seconds"].to_numpy()[1:]
        print(f"run {k + 1}: cold solve {colds[-1]:.2f} s (status {cold.status}, gap "
              f"{cold.gap:.2e}); frontier {fr.total_seconds:.2f} s (its first, cold, solve "
              f"{fr.cold_seconds:.2f} s; re-plans {re_k.sum():.2f} s)")
    cold_s = float(np.median(colds))
    k_med = int(np.argsort([f.total_seconds for f in frontiers])[len(frontiers) // 2])
    fr = frontiers[k_med]
    table = fr.table()
    re_s = np.median([f.table()["solve_seconds"].to_numpy()[1:] for f in frontiers], axis=0)
    print(f"median cold solve (tightest budget): {cold_s:.2f} s")
    print(f"median frontier via replan: {fr.total_seconds:.2f} s total, first (cold) "
          f"{fr.cold_seconds:.2f} s, mean re-plan {re_s.mean():.2f} s, max {re_s.max():.2f} s")
    print(table[["name", "status", "objective", "gap", "binding", "shadow_price_budget",
                 "iterations", "solve_seconds"]].to_string(index=False))
    cold_total = float("nan")
    if not args.skip_cold_frontier:
        t = time.perf_counter()
        objs, each = [], []
        for spec in specs:
            t1 = time.perf_counter()
            r = solve(inst.with_scenario(spec.apply(inst.scenario)), gap=args.gap)
            each.append(time.perf_counter() - t1)
            objs.append(r.objective)
        cold_total = time.perf_counter() - t
        each = np.array(each)
        per = table["solve_seconds"].to_numpy()
        print("per scenario (seconds): cold solve of the scenario vs its re-plan")
        for name, c, p_ in zip(table["name"], each, per):
            print(f"  {name:>22} cold {c:6.2f}  re-plan {p_:6.2f}  ratio {p_ / c:.3f}")
        diff = np.nanmax(np.abs(np.array(objs, dtype=float) - table["objective"].to_numpy(dtype=float))
                         / np.array(objs, dtype=float))
        print(f"frontier as {len(specs)} cold solves: {cold_total:.2f} s; largest relative "
              f"objective difference to the re-planned frontier {diff:.2e}")
    print(f"RATIO mean re-plan / cold solve = {re_s.mean() / cold_s:.3f} (target <= 0.10)")
    print(f"RATIO frontier / cold solve = {fr.total_seconds / cold_s:.2f} (target <= 2)")
    if not args.skip_cold_frontier:
        print(f"RATIO frontier / {len(specs)} cold solves = {fr.total_seconds / cold_total:.3f}")
        # the same targets read per scenario: each re-plan against the cold solve of the
        # same limits, and the frontier against the mean cold solve of its scenarios
        print(f"RATIO re-plans / cold solves of the same scenarios = "
              f"{re_s.sum() / each[1:].sum():.3f} (target <= 0.10)")
        print(f"RATIO frontier / mean cold solve of its scenarios = "
              f"{fr.total_seconds / each.mean():.2f} (target <= 2)")
    return cold_s, fr.total_seconds, float(re_s.mean())


if __name__ == "__main__":
    main()
