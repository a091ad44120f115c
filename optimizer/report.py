"""Rendering results as JSON documents, CSV tables and terminal tables (no maths here)."""

from __future__ import annotations

import io
import json
import math

import numpy as np
import pandas as pd

from optimizer.policy import POLICY_COLUMNS, PolicyResult


def _clean(value):
    """JSON-safe scalar: numpy -> python, non-finite floats -> None."""
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def sku_records(result: PolicyResult, extra: pd.DataFrame | None = None) -> list[dict]:
    """One dict per SKU with the policy fields (and the user's x_ columns when given)."""
    df = result.to_frame()
    if extra is not None and len(extra.columns):
        df = pd.concat([df, extra.reset_index(drop=True)], axis=1)
    records = df.to_dict(orient="records")
    return [_clean(r) for r in records]


def to_json(doc: dict) -> str:
    return json.dumps(_clean(doc), indent=2, allow_nan=False) + "\n"


def to_csv(result: PolicyResult, extra: pd.DataFrame | None = None) -> str:
    df = result.to_frame()
    if extra is not None and len(extra.columns):
        df = pd.concat([df, extra.reset_index(drop=True)], axis=1)
    buf = io.StringIO()
    df.to_csv(buf, index=False, float_format="%.6g")
    return buf.getvalue()


_TABLE_COLUMNS = {
    "sku": ("SKU", "{}"),
    "order_quantity": ("Z", "{:.1f}"),
    "reorder_point": ("R", "{:.1f}"),
    "safety_stock": ("SS", "{:.1f}"),
    "orders_per_year": ("orders/yr", "{:.2f}"),
    "vehicles_per_order": ("veh", "{:.0f}"),
    "total_cost": ("cost/yr", "{:,.2f}"),
    "cycle_service": ("alpha", "{:.3f}"),
    "fill_rate": ("beta", "{:.4f}"),
}


def policy_table(result: PolicyResult, max_rows: int = 40) -> str:
    """Fixed-width table of the per-SKU policy (first `max_rows` rows)."""
    df = result.to_frame()
    shown = df.head(max_rows)
    header = [label for label, _ in _TABLE_COLUMNS.values()]
    rows = [[fmt.format(v) for (col, (_, fmt)), v in zip(_TABLE_COLUMNS.items(), rec)]
            for rec in shown[list(_TABLE_COLUMNS)].itertuples(index=False)]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(header)]
    lines = ["  ".join(h.rjust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in rows]
    if len(df) > max_rows:
        lines.append(f"... {len(df) - max_rows} more SKUs (use --format csv or --out for all)")
    return "\n".join(lines)


def kpi_lines(k: dict) -> str:
    return (f"average inventory value {k['average_inventory_value']:,.2f}   "
            f"turnover {k['turnover']:.2f}/yr   days of supply {k['days_of_supply']:.1f}   "
            f"fill rate {k['fill_rate']:.4f}")


def solve_document(res, extra=None) -> dict:
    """The JSON contract of `optimizer solve` (README documents every field)."""
    doc = {
        "status": res.status,
        "objective": res.objective,
        "bound": res.bound,
        "gap": res.gap,
        "solve_seconds": res.solve_seconds,
        "iterations": res.iterations,
        "message": res.message,
        "skus": sku_records(res.policy, extra) if res.policy is not None else [],
        "constraints": [c.to_dict() for c in res.constraints],
        "baseline": {"objective": res.baseline.objective, **res.baseline_kpis.to_dict()},
        "kpis": res.kpis.to_dict() if res.kpis is not None else None,
    }
    if res.diagnosis:
        doc["diagnosis"] = res.diagnosis
    return doc


def solve_summary(res) -> str:
    """Terminal summary: status, objective, bound, gap, limits, KPIs vs baseline, SKU table."""
    lines = [f"status      {res.status}" + (f"  ({res.message})" if res.message else "")]
    if res.objective is not None:
        lines += [
            f"objective   {res.objective:,.2f} per year (exact cost of the plan)",
            f"bound       {res.bound:,.2f} (no plan meeting the limits costs less)",
            f"gap         {res.gap:.2e}   iterations {res.iterations}   "
            f"time {res.solve_seconds:.2f} s",
            f"baseline    {res.baseline.objective:,.2f} per year (single-item policies, "
            "limits ignored)",
        ]
    if res.constraints:
        lines.append("limits:")
        for c in res.constraints:
            flag = "binding" if c.binding else "slack"
            lines.append(f"  {c.name:<10} limit {c.limit:>14,.2f}  used {c.used:>14,.2f}  "
                         f"shadow price {c.shadow_price:>12.6g}  {flag}")
    for d in res.diagnosis:
        if not d.get("feasible", True):
            lines.append(f"  {d['limit']}: least possible {d['least_possible']:,.2f}, "
                         f"limit {d['value']:,.2f}, short by {d['short_by']:,.2f}")
    if res.kpis is not None:
        lines.append("kpis        " + kpi_lines(res.kpis.to_dict()))
        lines.append("baseline    " + kpi_lines(res.baseline_kpis.to_dict()))
        lines.append(policy_table(res.policy))
    return "\n".join(lines)


__all__ = ["sku_records", "to_json", "to_csv", "policy_table", "kpi_lines", "POLICY_COLUMNS"]
