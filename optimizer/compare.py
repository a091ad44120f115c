"""The single-item formulas against the constrained optimum: KPIs, the price of each limit,
the SKUs the limits change most, and an HTML or Markdown report.

Policies compared (all priced with the instance's full cost, `policy.evaluate_plan`):
deterministic EOQ with reorder level (seed 003), the probabilistic (R, Z) model (seed 004),
seed 002's modified model, and the constrained optimum (`solve`). The price of a limit is
the optimum's cost with every limit minus the optimum's cost with that limit removed (the
others kept): zero when the limit does not bind.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from optimizer.instance import Instance
from optimizer.policy import PolicyResult, kpis, single_item_policy

BASELINES = {"eoq": "EOQ + reorder level (seed 003)", "rz": "(R, Z) model (seed 004)",
             "modified": "modified model (seed 002)"}


@dataclass
class Comparison:
    """`summary`: one row per policy (totals and KPIs); `skus`: per SKU and policy;
    `limit_prices`: one row per limit; `changes`: SKUs whose Z or R the limits move most."""

    summary: pd.DataFrame
    skus: pd.DataFrame
    limit_prices: pd.DataFrame
    changes: pd.DataFrame
    status: str
    message: str = ""


def _policy_rows(instance: Instance, name: str, res: PolicyResult) -> tuple[dict, pd.DataFrame]:
    k = kpis(instance, res)
    days = instance.scenario.days_per_year
    cost = res.ordering_cost + res.delivery_cost + res.holding_cost + res.shortage_cost
    summary = {
        "policy": name, "total_cost": float(cost.sum()),
        "ordering_cost": float(res.ordering_cost.sum()),
        "delivery_cost": float(res.delivery_cost.sum()),
        "holding_cost": float(res.holding_cost.sum()),
        "shortage_cost": float(res.shortage_cost.sum()),
        "holding_cost_share": float(res.holding_cost.sum() / cost.sum()) if cost.sum() else 0.0,
        "average_inventory_value": k.average_inventory_value, "turnover": k.turnover,
        "days_of_supply": k.days_of_supply, "fill_rate": k.fill_rate,
        "cycle_service": float((instance.annual_demand * res.cycle_service).sum()
                               / instance.annual_demand.sum()),
    }
    value = instance.unit_cost * instance.annual_demand
    per = pd.DataFrame({
        "sku": instance.sku, "policy": name, "order_quantity": res.order_quantity,
        "order_cycle_days": res.order_quantity / instance.annual_demand * days,
        "reorder_point": res.reorder_point, "safety_stock": res.safety_stock,
        "average_stock": res.average_inventory,
        "average_stock_value": res.average_inventory_value,
        "turnover": np.where(res.average_inventory_value > 0,
                             value / np.maximum(res.average_inventory_value, 1e-300), np.inf),
        "fill_rate": res.fill_rate, "cycle_service": res.cycle_service,
        "ordering_cost": res.ordering_cost, "delivery_cost": res.delivery_cost,
        "holding_cost": res.holding_cost, "shortage_cost": res.shortage_cost,
        "total_cost": res.total_cost,
    })
    per["days_of_supply"] = days / per["turnover"]
    return summary, per


def compare(instance: Instance, gap: float = 1e-4, time_limit: float | None = None) -> Comparison:
    """Side-by-side comparison (see module docstring)."""
    from optimizer.solve import Planner

    rows, frames = [], []
    for key, label in BASELINES.items():
        s, per = _policy_rows(instance, label, single_item_policy(instance, key))
        rows.append(s)
        frames.append(per)
    planner = Planner(instance)
    opt = planner.solve(gap=gap, time_limit=time_limit)
    s, per = _policy_rows(instance, "single-item optimum (limits ignored)", planner.baseline)
    rows.append(s)
    frames.append(per)
    prices = []
    changes = pd.DataFrame()
    if opt.policy is not None:
        s, per = _policy_rows(instance, "constrained optimum", opt.policy)
        s.update(bound=opt.bound, gap=opt.gap, status=opt.status)
        rows.append(s)
        frames.append(per)
        sc = instance.scenario
        relax = {"budget": {"budget": None}, "warehouse": {"warehouse": None},
                 "fill_rate": {"fill_rate_min": None}, "orders": {"max_orders_per_year": None}}
        for c in opt.constraints:
            relaxed_sc = replace(sc, **relax[c.name])
            if c.shadow_price == 0 and not c.binding:
                price, rel = 0.0, opt.objective  # a slack limit costs nothing
            else:
                r = planner.solve(relaxed_sc, gap=gap, time_limit=time_limit)
                rel = r.objective
                price = max(opt.objective - rel, 0.0) if rel is not None else np.nan
            prices.append({"limit": c.name, "value": c.limit, "used": c.used,
                           "shadow_price": c.shadow_price, "binding": c.binding,
                           "cost_with_limit": opt.objective, "cost_without_limit": rel,
                           "price_of_limit": price})
        base = planner.baseline
        dz = opt.policy.order_quantity - base.order_quantity
        dr = opt.policy.reorder_point - base.reorder_point
        changes = pd.DataFrame({
            "sku": instance.sku, "order_quantity_single": base.order_quantity,
            "order_quantity_optimum": opt.policy.order_quantity,
            "order_quantity_change_pct": 100 * dz / base.order_quantity,
            "reorder_point_single": base.reorder_point,
            "reorder_point_optimum": opt.policy.reorder_point, "reorder_point_change": dr,
            "cost_change": opt.policy.total_cost - base.total_cost,
        })
        changes = changes.reindex(changes["cost_change"].abs().sort_values(ascending=False).index)
    return Comparison(pd.DataFrame(rows), pd.concat(frames, ignore_index=True),
                      pd.DataFrame(prices), changes.head(20).reset_index(drop=True),
                      opt.status, opt.message)


def _chart_png(cmp: Comparison) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    s = cmp.summary
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    parts = ["ordering_cost", "delivery_cost", "holding_cost", "shortage_cost"]
    bottom = np.zeros(len(s))
    for p in parts:
        axes[0].barh(s["policy"], s[p], left=bottom, label=p.replace("_", " "))
        bottom += s[p].to_numpy()
    axes[0].set_xlabel("cost per year")
    axes[0].legend(fontsize=7)
    axes[0].tick_params(axis="y", labelsize=7)
    axes[1].scatter(s["average_inventory_value"], s["fill_rate"])
    for _, row in s.iterrows():
        axes[1].annotate(row["policy"], (row["average_inventory_value"], row["fill_rate"]),
                         fontsize=6, textcoords="offset points", xytext=(3, 3))
    axes[1].set_xlabel("average inventory value")
    axes[1].set_ylabel("fill rate")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _markdown(df: pd.DataFrame) -> str:
    def cell(v):
        if isinstance(v, (float, np.floating)):
            return f"{v:,.4g}"
        return str(v)

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    rule = "|" + "---|" * len(df.columns)
    rows = ["| " + " | ".join(cell(v) for v in rec) + " |" for rec in df.itertuples(index=False)]
    return "\n".join([head, rule, *rows])


def render(cmp: Comparison, fmt: str = "html", title: str = "Inventory policy comparison") -> str:
    """The report as a self-contained HTML page (chart embedded as a data URI, no network)
    or Markdown."""
    tables = [("Policies", cmp.summary), ("Price of each limit", cmp.limit_prices),
              ("SKUs the limits change most", cmp.changes)]
    if fmt == "md":
        out = [f"# {title}", "", f"Constrained optimum: {cmp.status} {cmp.message}".strip(), ""]
        for name, df in tables:
            out += [f"## {name}", "", _markdown(df) if len(df) else "(none)", ""]
        return "\n".join(out)
    png = base64.b64encode(_chart_png(cmp)).decode()
    body = [f"<h1>{html.escape(title)}</h1>",
            f"<p>Constrained optimum: {html.escape(cmp.status)} {html.escape(cmp.message)}</p>",
            f'<img alt="cost split and inventory against fill rate" '
            f'src="data:image/png;base64,{png}">']
    for name, df in tables:
        body.append(f"<h2>{html.escape(name)}</h2>")
        body.append(df.to_html(index=False, float_format=lambda v: f"{v:,.4g}", border=0)
                    if len(df) else "<p>(none)</p>")
    style = ("body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
             "td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:right}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title><style>{style}</style></head><body>{''.join(body)}</body></html>\n")
