"""Benchmark `optimizer solve` against a monolithic candidate-grid MIP, side by side.

For each size (synthetic instances from `optimizer generate`, budget, warehouse, trucks and
MOQs binding) it runs, each in its own process so peak memory is its own:

- ours: the decomposition (`optimizer.solve.solve`): wall time, rounds, gap, peak RSS of
  the solving process and, beside it, the largest summed RSS of its two pricing workers
  (pages shared with the parent after the fork are counted in both);
- grid: one Pyomo/HiGHS MIP choosing one of 30 candidate policies per SKU (15 quantities
  around the EOQ, snapped to MOQ and packs, x 2 reorder points), every limit as one row:
  Pyomo build time, HiGHS time, its plan's exact cost.

and prints the time ratio grid/ours and the cost ratio grid/ours (> 1: the grid plan costs
more). Usage:

    python bench/bench_solve.py --sizes 1000,10000,100000 [--grid-time-limit 600]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time


def _peak_rss_mib() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


class _ChildrenRss:
    """Largest summed RSS of this process's child processes (the pricing workers), polled
    every 0.2 s on a thread while the solve runs (the workers exit with the solver)."""

    def __init__(self):
        import threading

        self.peak = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self):
        import os

        me = str(os.getpid())
        while not self._stop.wait(0.2):
            total = 0.0
            for pid in filter(str.isdigit, os.listdir("/proc")):
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        if f.read().rsplit(")", 1)[1].split()[1] != me:
                            continue
                    with open(f"/proc/{pid}/status") as f:
                        for line in f:
                            if line.startswith("VmRSS:"):
                                total += int(line.split()[1]) / 1024.0
                except (OSError, IndexError):
                    continue
            self.peak = max(self.peak, total)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak


def _instance(n, seed):
    from optimizer.generate import generate_instance
    from optimizer.io import instance_from_frames

    skus, scenario = generate_instance(n, seed=seed)
    return instance_from_frames(skus, scenario)


def run_ours(n, seed, q):
    inst = _instance(n, seed)
    from optimizer.solve import solve

    watch = _ChildrenRss()
    t = time.perf_counter()
    res = solve(inst, gap=1e-3)
    q.put({"seconds": time.perf_counter() - t, "status": res.status, "objective": res.objective,
           "bound": res.bound, "gap": res.gap, "iterations": res.iterations,
           "binding": [c.name for c in res.constraints if c.binding],
           "peak_mib": _peak_rss_mib(), "workers_peak_mib": watch.stop()})


def run_grid(n, seed, time_limit, q):
    import numpy as np

    from formulations.grid_mip import build_grid_mip
    from optimizer import single_item as si
    from optimizer.highs import solve_model
    from optimizer.solve import _Context, _columns, _feasible, coupling_limits

    inst = _instance(n, seed)
    ctx = _Context(inst, coupling_limits(inst))
    cm = ctx.cm
    t0 = time.perf_counter()
    eoq = np.sqrt(2 * inst.annual_demand * inst.ordering_cost / cm.holding)
    factors = np.geomspace(0.2, 2.0, 15)
    Z = eoq[:, None] * factors[None, :]
    Z = np.maximum(Z, cm.moq[:, None])
    step = np.where(cm.multiple > 0, cm.multiple, 0.0)[:, None]
    Z = np.where(step > 0, np.ceil(Z / np.where(step > 0, step, 1) - 1e-9) * step, Z)
    R_opt = np.stack([si.best_reorder_point(ctx.base, ctx.ltd, Z[:, j]) for j in range(15)], axis=1)
    # every candidate meets the SKU's own service floor (cycle service: R >= its quantile,
    # already in best_reorder_point; fill rate: b(R) <= (1 - beta) Z)
    beta = inst.fill_rate
    floor = np.zeros_like(Z)
    fb = np.isfinite(beta)
    if fb.any():
        sub = ctx.ltd.take(np.flatnonzero(fb))
        floor[fb] = np.maximum(sub.loss_inverse((1 - beta[fb])[:, None] * Z[fb]), 0.0)
    R_opt = np.maximum(R_opt, floor)
    R_low = np.maximum(np.maximum(np.minimum(R_opt, ctx.ltd.mean[:, None]), 0.0), floor)
    R_low = np.maximum(R_low, np.nan_to_num(ctx.min_reorder, nan=0.0)[:, None])
    ZZ = np.concatenate([Z, Z], axis=1)
    RR = np.concatenate([R_opt, R_low], axis=1)
    C, U = _columns(ctx, ZZ, RR)
    act = np.flatnonzero(np.isfinite(ctx.limits.rhs))
    U, rhs = U[act], ctx.limits.rhs[act]
    names = [ctx.limits.names[k] for k in act]
    scale = max(float(C.mean()), 1e-9)
    norm = np.where(np.abs(rhs) > 0, np.abs(rhs), 1.0)
    m = build_grid_mip(C / scale, U / norm[:, None, None], rhs / norm, names)
    build = time.perf_counter() - t0
    out = solve_model(m, time_limit=time_limit, mip_gap=1e-3)
    cost = None
    if out.solution != "none":
        J = ZZ.shape[1]
        vals = np.array([[m.choose[i, j].value or 0 for j in range(J)] for i in range(inst.n)])
        pick = vals.argmax(axis=1)
        rows = np.arange(inst.n)
        cost = float(C[rows, pick].sum())
        assert _feasible(U[:, rows, pick].sum(axis=1), rhs, 1e-6)
    q.put({"build_seconds": build, "solve_seconds": out.seconds, "termination": out.termination,
           "objective": cost, "peak_mib": _peak_rss_mib()})


def _guarded(target, args, q):
    try:
        target(*args, q)
    except BaseException as exc:  # report, never leave the parent waiting
        q.put({"error": repr(exc)})


def in_process(target, *args):
    q = mp.Queue()
    p = mp.Process(target=_guarded, args=(target, args, q))
    p.start()
    res = q.get()
    p.join()
    if "error" in res:
        print(f"  {target.__name__} failed: {res['error']}", flush=True)
        return None
    return res


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--grid-time-limit", type=float, default=600.0)
    ap.add_argument("--no-grid", action="store_true")
    args = ap.parse_args()
    print(f"{'SKUs':>8} {'ours s':>8} {'rounds':>6} {'gap':>9} {'peak MiB':>9} {'+workers':>8} | "
          f"{'grid build s':>12} {'grid HiGHS s':>12} {'grid status':>11} | "
          f"{'time grid/ours':>14} {'cost grid/ours':>14}")
    rows = []
    for n in [int(s) for s in args.sizes.split(",")]:
        ours = in_process(run_ours, n, args.seed)
        grid = None if args.no_grid else in_process(run_grid, n, args.seed, args.grid_time_limit)
        if ours is None:
            continue
        t_ratio = c_ratio = float("nan")
        if grid is not None:
            t_ratio = (grid["build_seconds"] + grid["solve_seconds"]) / ours["seconds"]
            if grid["objective"] is not None and ours["objective"]:
                c_ratio = grid["objective"] / ours["objective"]
        print(f"{n:>8} {ours['seconds']:>8.2f} {ours['iterations']:>6} {ours['gap']:>9.2e} "
              f"{ours['peak_mib']:>9.0f} {ours['workers_peak_mib']:>8.0f} | "
              + (f"{grid['build_seconds']:>12.2f} {grid['solve_seconds']:>12.2f} "
                 f"{grid['termination']:>11} | " if grid else f"{'-':>12} {'-':>12} {'-':>11} | ")
              + f"{t_ratio:>14.2f} {c_ratio:>14.6f}", flush=True)
        rows.append({"skus": n, "ours": ours, "grid": grid})
    print(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
