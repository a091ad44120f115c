"""Presentation of a multi-period purchase plan (`optimizer.plan.PlanResult`): the terminal
summary, the CSV/JSON files of `optimizer plan --out DIR`, and the plot of stock against
floors and of capacity use per period. Nothing here solves; everything reads the result.
"""

from __future__ import annotations

import io as _io
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.plan import PlanResult, plan_to_json

JSON_KEYS = ("status", "objective", "bound", "lp_bound", "gap", "start_objective", "orders",
             "stock", "periods")


def plan_document(result: PlanResult) -> dict:
    """The JSON contract of issue 5: exactly JSON_KEYS (the message goes to the terminal)."""
    doc = plan_to_json(result)
    return {k: doc[k] for k in JSON_KEYS}


def _money(v) -> str:
    return "n/a" if v is None or not math.isfinite(v) else f"{v:,.2f}"


def period_use(result: PlanResult) -> pd.DataFrame:
    """Per period: spend and its budget, end-of-period volume and the warehouse capacity,
    trucks arriving (limits NaN where the scenario sets none)."""
    p = result.periods.copy()
    data = result.data
    if data is not None and len(p):
        b = data.budget[p["period"].to_numpy(int) - 1]
        p.insert(2, "budget", np.where(np.isfinite(b), b, np.nan))
        wh = np.where(np.isfinite(data.space_limit), data.space_limit, np.nan)[
            p["period"].to_numpy(int) - 1]
        p.insert(4, "warehouse", wh)
    return p


def plan_summary(result: PlanResult, max_orders: int = 15, max_periods: int = 26) -> str:
    """Terminal text: status line, objective / bound / LP bound / gap / start, the use of each
    period's limits and the first orders."""
    r = result
    lines = [f"status      {r.status}"]
    if r.status == "infeasible":
        lines.append(r.message)
        return "\n".join(lines) + "\n"
    gap = "n/a" if not math.isfinite(r.gap) else f"{100 * r.gap:.3f}%"
    lines += [
        f"objective   {_money(r.objective)} (ordering + holding + trucks"
        + (" + shortfall" if r.data is not None and r.data.backlog.any() else "") + ")",
        f"bound       {_money(r.bound)} (no plan meeting the limits costs less)",
        f"LP bound    {_money(r.lp_bound)} (LP relaxation of the formulation solved)",
        f"gap         {gap}   solve {r.solve_seconds:.2f} s (build {r.build_seconds:.2f}, "
        f"LP {r.lp_seconds:.2f}, LP-guided MIPs {r.heuristic_seconds:.2f}, full MIP "
        f"{r.mip_seconds:.2f})",
        f"start       {_money(r.start_objective)} ((R, Z) plan repaired to the limits; "
        "n/a = it breaks a limit)",
        f"LP-guided   {_money(r.heuristic_objective)} (best plan of the MIPs over the order slots "
        "the LP opens)",
    ]
    use = period_use(r)
    if len(use):
        lines.append("per period (spend in the order period, space at period end, trucks "
                     "arriving):")
        shown = use.head(max_periods)
        lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:,.1f}",
                                     na_rep="-"))
        if len(use) > len(shown):
            lines.append(f"... {len(use) - len(shown)} more periods (see --out)")
    o = r.orders.sort_values(["order_period", "sku"]) if len(r.orders) else r.orders
    lines.append(f"{len(o)} order(s); first {min(len(o), max_orders)}:")
    if len(o):
        lines.append(o.head(max_orders).to_string(index=False,
                                                  float_format=lambda v: f"{v:,.2f}"))
    if r.message:
        lines.append(r.message)
    return "\n".join(lines) + "\n"


def plan_files(result: PlanResult) -> dict[str, str]:
    """File name -> text for --out DIR: orders.csv, stock.csv, periods.csv, plan.json."""
    return {
        "orders.csv": result.orders.to_csv(index=False, float_format="%.6g"),
        "stock.csv": result.stock.to_csv(index=False, float_format="%.6g"),
        "periods.csv": period_use(result).to_csv(index=False, float_format="%.6g"),
        "plan.json": json.dumps(plan_document(result), indent=2) + "\n",
    }


def top_cost_skus(result: PlanResult, k: int = 3) -> list[str]:
    """The k SKUs with the largest ordering + holding cost in the plan."""
    data = result.data
    if data is None or not len(result.stock):
        return []
    st = result.stock
    hold = (np.maximum(st["stock"].to_numpy(float), 0.0).reshape(data.n, data.T)
            * data.holding_cost[:, None]).sum(axis=1)
    n_orders = result.orders.groupby("sku").size().reindex(data.sku).fillna(0).to_numpy()
    cost = hold + n_orders * data.ordering_cost
    return [str(data.sku[i]) for i in np.argsort(-cost)[:k]]


def plot_plan(result: PlanResult, path, n_skus: int = 3) -> None:
    """Left: stock (net, end of period) against the floor for the `n_skus` costliest SKUs,
    arrivals of plan orders as bars. Right: spend against the period budget, stored volume
    against the warehouse, trucks arriving per period. PNG or SVG by suffix, written
    atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from optimizer.io import atomic_write_bytes

    skus = top_cost_skus(result, n_skus)
    rows = max(3, len(skus))
    fig, axes = plt.subplots(rows, 2, figsize=(11, 2.4 * rows), squeeze=False)
    st = result.stock
    for ax, sku in zip(axes[:, 0], skus):
        s = st[st["sku"] == sku]
        ax.step(s["period"], s["stock"], where="mid", color="tab:blue", label="stock")
        ax.step(s["period"], s["floor"], where="mid", color="tab:red", ls="--", label="floor")
        o = result.orders[result.orders["sku"] == sku]
        if len(o):
            ax.bar(o["arrival_period"], o["quantity"], width=0.4, color="tab:green", alpha=0.4,
                   label="arrivals")
        ax.set_title(f"{sku}: stock vs floor", fontsize=9)
        ax.set_xlabel("period", fontsize=8)
        ax.legend(fontsize=7, loc="upper right")
    for ax in axes[len(skus):, 0]:
        ax.axis("off")
    use = period_use(result)
    per = use["period"] if len(use) else []
    specs = [("spend", "budget", "spend vs period budget"),
             ("space", "warehouse", "stored volume vs warehouse"),
             ("trucks", None, "trucks arriving")]
    for ax, (col, lim, title) in zip(axes[:, 1], specs):
        if len(use):
            ax.bar(per, use[col], color="tab:gray", label=col)
            if lim is not None and lim in use and use[lim].notna().any():
                ax.step(per, use[lim], where="mid", color="tab:red", ls="--", label=lim)
            ax.legend(fontsize=7, loc="upper right")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("period", fontsize=8)
    for ax in axes[3:, 1]:
        ax.axis("off")
    fig.suptitle(f"Purchase plan: {result.status}, cost {_money(result.objective)}", fontsize=10)
    fig.tight_layout()
    buf = _io.BytesIO()
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    fig.savefig(buf, format=fmt, dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
