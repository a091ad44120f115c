"""Batch re-planning: many scenarios of one instance, the cost / service frontier, diffs.

A scenario changes limits (budget, warehouse capacity, fill-rate floor, orders cap) or the
vehicle cost. Scenarios that differ only in limit values share one `solve.Planner`: its
column pool, the least-use rounds and the best prices carry from one scenario to the next
(scenarios run in budget order, so each starts beside its neighbour's prices). A changed
vehicle cost changes every SKU's cost, so such scenarios get a planner of their own.
`workers > 1` spreads contiguous runs of scenarios over processes, each with its own state.
A scenario that fails (bad value, infeasible limits) is reported in its row.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.instance import Budget, Instance, Scenario, VehicleSpec, Vehicles, Warehouse

SCENARIO_COLUMNS = ("name", "budget", "warehouse", "fill_rate_min", "max_orders_per_year",
                    "vehicle_cost")


class ScenarioError(ValueError):
    """A scenario value is unusable; the message names the scenario and the field."""


@dataclass(frozen=True)
class ScenarioSpec:
    """One what-if: a name and the limit values it sets (None: keep the instance's)."""

    name: str
    budget: float | None = None
    warehouse: float | None = None
    fill_rate_min: float | None = None
    max_orders_per_year: float | None = None
    vehicle_cost: float | None = None

    def apply(self, base: Scenario) -> Scenario:
        """The instance's scenario with this spec's values; raises ScenarioError."""
        def positive(field_name, v):
            if v is None:
                return None
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ScenarioError(f"scenario {self.name!r}, field {field_name!r}: must be a "
                                    f"positive number, got {v!r}")
            return float(v)

        sc = base
        if (b := positive("budget", self.budget)) is not None:
            basis = base.budget.basis if base.budget is not None else "average"
            period = base.budget.period_limit if base.budget is not None else None
            sc = replace(sc, budget=Budget(limit=b, basis=basis, period_limit=period))
        if (w := positive("warehouse", self.warehouse)) is not None:
            basis = base.warehouse.basis if base.warehouse is not None else "average"
            sc = replace(sc, warehouse=Warehouse(capacity=w, basis=basis))
        if self.fill_rate_min is not None:
            f = self.fill_rate_min
            if not (isinstance(f, (int, float)) and 0 < f < 1):
                raise ScenarioError(f"scenario {self.name!r}, field 'fill_rate_min': must be "
                                    f"in (0, 1), got {f!r}")
            sc = replace(sc, fill_rate_min=float(f))
        if (n := positive("max_orders_per_year", self.max_orders_per_year)) is not None:
            sc = replace(sc, max_orders_per_year=n)
        if self.vehicle_cost is not None:
            v = self.vehicle_cost
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ScenarioError(f"scenario {self.name!r}, field 'vehicle_cost': must be "
                                    f">= 0, got {v!r}")
            if base.vehicles is None or base.vehicles.default is None and not base.vehicles.by_supplier:
                raise ScenarioError(f"scenario {self.name!r}, field 'vehicle_cost': the "
                                    "instance has no [vehicles] to re-price")
            veh = base.vehicles
            default = replace(veh.default, cost=float(v)) if veh.default is not None else None
            by = {k: replace(s, cost=float(v)) for k, s in veh.by_supplier.items()}
            sc = replace(sc, vehicles=Vehicles(default=default, by_supplier=by))
        return replace(sc, name=self.name)


def specs_from_budgets(budgets) -> list[ScenarioSpec]:
    return [ScenarioSpec(name=f"budget={b:g}", budget=float(b)) for b in budgets]


def specs_from_range(text: str) -> list[ScenarioSpec]:
    """START:STOP:N -> N budgets evenly from START to STOP inclusive."""
    try:
        start, stop, n = text.split(":")
        values = np.linspace(float(start), float(stop), int(n))
    except ValueError as exc:
        raise ScenarioError(f"--budget-range must be START:STOP:N, got {text!r}") from exc
    if int(n) < 1:
        raise ScenarioError(f"--budget-range needs N >= 1, got {n}")
    return specs_from_budgets(values)


def specs_from_frame(df: pd.DataFrame, source: str = "scenarios") -> list[ScenarioSpec]:
    """A scenario table: a `name` column and any of SCENARIO_COLUMNS; empty cells keep the
    instance's value. Unknown columns are an error naming them."""
    unknown = [c for c in df.columns if c not in SCENARIO_COLUMNS]
    if unknown:
        raise ScenarioError(f"{source}: unknown column(s) {', '.join(map(str, unknown))}; "
                            f"known: {', '.join(SCENARIO_COLUMNS)}")
    if "name" not in df.columns:
        raise ScenarioError(f"{source}: a 'name' column is required")
    specs = []
    for row, rec in enumerate(df.to_dict(orient="records"), start=1):
        values = {}
        for col in SCENARIO_COLUMNS[1:]:
            v = rec.get(col)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            try:
                values[col] = float(v)
            except (TypeError, ValueError):
                # kept as given; ScenarioSpec.apply reports it in that scenario's row
                values[col] = v
        specs.append(ScenarioSpec(name=str(rec["name"]) if rec["name"] is not None
                                  else f"row {row}", **values))
    names = [s.name for s in specs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise ScenarioError(f"{source}: duplicate scenario name(s) {', '.join(sorted(dup))}")
    return specs


@dataclass
class ScenarioOutcome:
    spec: ScenarioSpec
    status: str  # optimal | feasible | time_limit | infeasible | no_plan | error
    result: object | None  # solve.SolveResult
    message: str = ""
    seconds: float = 0.0

    def row(self) -> dict:
        res = self.result
        sc = self.spec
        out = {"name": sc.name, "budget": sc.budget, "warehouse": sc.warehouse,
               "fill_rate_min": sc.fill_rate_min, "max_orders_per_year": sc.max_orders_per_year,
               "vehicle_cost": sc.vehicle_cost, "status": self.status,
               "objective": None, "bound": None, "gap": None, "fill_rate": None,
               "average_inventory_value": None, "turnover": None, "binding": "",
               "shadow_price_budget": None, "iterations": None,
               "solve_seconds": self.seconds,
               "message": self.message}
        if res is not None and res.policy is not None:
            out.update(objective=res.objective, bound=res.bound, gap=res.gap,
                       fill_rate=res.kpis.fill_rate,
                       average_inventory_value=res.kpis.average_inventory_value,
                       turnover=res.kpis.turnover,
                       binding=";".join(c.name for c in res.constraints if c.binding),
                       shadow_price_budget=res.shadow_price("budget"),
                       iterations=res.iterations)
        elif res is not None and res.bound is not None:
            out.update(bound=res.bound, iterations=res.iterations)  # no plan, a valid bound
        return out


@dataclass
class Frontier:
    """All scenarios' outcomes (in the order given), the single-item baseline and timing."""

    outcomes: list[ScenarioOutcome]
    baseline_objective: float
    baseline_investment: float
    baseline_fill_rate: float
    cold_seconds: float  # the first solve of each planner (a cold start)
    total_seconds: float
    notes: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        return pd.DataFrame([o.row() for o in self.outcomes])


def _structure_key(spec: ScenarioSpec):
    # scenarios with the same key can share a planner (only right-hand sides differ)
    return spec.vehicle_cost


def _run_chunk(instance: Instance, specs: list[ScenarioSpec], gap: float,
               time_limit: float | None, progress=None) -> tuple[list[ScenarioOutcome], float]:
    """Solve `specs` in order with one planner per structure; returns outcomes and the
    seconds the cold (first) solves of the planners took."""
    from optimizer.solve import Planner

    planners: dict = {}
    outcomes = []
    cold = 0.0
    for spec in specs:
        t = time.perf_counter()
        try:
            scenario = spec.apply(instance.scenario)
            key = _structure_key(spec)
            first = key not in planners
            if first:
                planners[key] = Planner(instance.with_scenario(scenario))
            res = planners[key].solve(scenario, gap=gap, time_limit=time_limit)
            secs = time.perf_counter() - t
            if first:
                cold += secs
            outcomes.append(ScenarioOutcome(spec, res.status, res, res.message, secs))
        except (ScenarioError, ValueError) as exc:
            outcomes.append(ScenarioOutcome(spec, "error", None, str(exc),
                                            time.perf_counter() - t))
        if progress is not None:
            progress(1)
    return outcomes, cold


def _chunk_worker(args):
    instance, specs, gap, time_limit = args
    return _run_chunk(instance, specs, gap, time_limit)


def replan(instance: Instance, specs: list[ScenarioSpec], *, workers: int = 1, gap: float = 1e-4,
           time_limit: float | None = None, progress=None) -> Frontier:
    """Solve every scenario; scenarios run grouped by structure and in budget order so each
    starts from its neighbour's state. `progress(k)` is called as scenarios finish."""
    from optimizer.solve import Planner  # noqa: F401  (import cost paid once, before timing)

    t0 = time.perf_counter()
    order = sorted(range(len(specs)), key=lambda i: (
        str(_structure_key(specs[i])), specs[i].budget if isinstance(specs[i].budget, float)
        else math.inf))
    ordered = [specs[i] for i in order]
    if workers <= 1 or len(ordered) < 2:
        outs, cold = _run_chunk(instance, ordered, gap, time_limit, progress)
    else:
        from concurrent.futures import ProcessPoolExecutor

        chunks = [list(c) for c in np.array_split(np.arange(len(ordered)), workers) if len(c)]
        jobs = [(instance, [ordered[i] for i in c], gap, time_limit) for c in chunks]
        outs, cold = [], 0.0
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for o, c in pool.map(_chunk_worker, jobs):
                outs.extend(o)
                cold = max(cold, c)
                if progress is not None:
                    progress(len(o))
    by_name = {o.spec.name: o for o in outs}
    outcomes = [by_name[s.name] for s in specs]
    from optimizer.policy import kpis, single_item_policy

    # every planner's baseline is the instance's single-item policy (scenarios change only
    # limits); take it from a solved scenario instead of solving it once more
    done = [o.result for o in outcomes if o.result is not None]
    base = done[0].baseline if done else single_item_policy(instance, "full")
    k = kpis(instance, base)
    investment = float((instance.unit_cost * (base.order_quantity / 2 + base.safety_stock)).sum())
    return Frontier(outcomes, base.objective, investment, k.fill_rate, cold,
                    time.perf_counter() - t0)


def frontier_document(fr: Frontier) -> dict:
    """The JSON of `optimizer replan --format json`."""
    rows = fr.table().replace({np.nan: None}).to_dict(orient="records")
    return {"scenarios": rows, "baseline": {"objective": fr.baseline_objective,
                                            "average_inventory_value": fr.baseline_investment,
                                            "fill_rate": fr.baseline_fill_rate},
            "cold_seconds": fr.cold_seconds, "total_seconds": fr.total_seconds}


def plot_frontier(fr: Frontier, path: str | Path) -> None:
    """Cost and fill rate against budget, the single-item baseline marked, the points where a
    limit starts or stops binding annotated. Written atomically (PNG or SVG by suffix)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from optimizer.io import atomic_write_bytes

    df = fr.table()
    df = df[df["objective"].notna() & df["budget"].notna()].sort_values("budget")
    fig, ax = plt.subplots(figsize=(8, 4.8))
    ax.plot(df["budget"], df["objective"], "o-", color="tab:blue", label="optimal cost / year")
    ax.axhline(fr.baseline_objective, color="tab:blue", ls=":", lw=1,
               label="single-item cost (limits ignored)")
    ax.axvline(fr.baseline_investment, color="grey", ls="--", lw=1,
               label="single-item average investment")
    ax.set_xlabel("inventory budget")
    ax.set_ylabel("expected annual cost")
    ax2 = ax.twinx()
    ax2.plot(df["budget"], df["fill_rate"], "s-", color="tab:orange", label="fill rate")
    ax2.set_ylabel("fill rate")
    prev = None
    for _, row in df.iterrows():
        cur = row["binding"] or ""
        if prev is not None and cur != prev:
            ax.annotate(f"binding: {cur or 'none'}", (row["budget"], row["objective"]),
                        textcoords="offset points", xytext=(4, 10), fontsize=7)
        prev = cur
    lines = ax.get_legend_handles_labels()
    lines2 = ax2.get_legend_handles_labels()
    ax.legend(lines[0] + lines2[0], lines[1] + lines2[1], fontsize=7, loc="upper right")
    ax.set_title("Cost / service frontier against the inventory budget")
    fig.tight_layout()
    import io as _io

    buf = _io.BytesIO()
    fmt = Path(path).suffix.lstrip(".").lower() or "png"
    fig.savefig(buf, format=fmt, dpi=110)
    plt.close(fig)
    atomic_write_bytes(Path(path), buf.getvalue())


def diff_plans(doc_a: dict, doc_b: dict, tol: float = 1e-9) -> pd.DataFrame:
    """SKU-level differences between two plan documents (JSON of `solve` / `policy`):
    one row per SKU whose Z or R changed (or that is in only one plan), with old and new
    values, the change and the cost effect (new - old total_cost, per year)."""
    def frame(doc, tag):
        df = pd.DataFrame(doc.get("skus", []))
        if df.empty or "sku" not in df.columns:
            raise ValueError(f"plan {tag}: no 'skus' list with a 'sku' field")
        return df.set_index(df["sku"].astype(str))[["order_quantity", "reorder_point",
                                                   "total_cost"]]

    a, b = frame(doc_a, "A"), frame(doc_b, "B")
    joined = a.add_suffix("_a").join(b.add_suffix("_b"), how="outer")
    dz = joined["order_quantity_b"] - joined["order_quantity_a"]
    dr = joined["reorder_point_b"] - joined["reorder_point_a"]
    out = pd.DataFrame({
        "sku": joined.index,
        "order_quantity_a": joined["order_quantity_a"], "order_quantity_b": joined["order_quantity_b"],
        "order_quantity_change": dz,
        "reorder_point_a": joined["reorder_point_a"], "reorder_point_b": joined["reorder_point_b"],
        "reorder_point_change": dr,
        "cost_effect": joined["total_cost_b"] - joined["total_cost_a"],
    }).reset_index(drop=True)
    scale_z = np.maximum(np.abs(joined["order_quantity_a"].to_numpy(dtype=float)), 1.0)
    scale_r = np.maximum(np.abs(joined["reorder_point_a"].to_numpy(dtype=float)), 1.0)
    changed = (np.abs(dz.to_numpy(dtype=float)) > tol * scale_z) | (
        np.abs(dr.to_numpy(dtype=float)) > tol * scale_r) | dz.isna().to_numpy()
    out = out[changed]
    return out.reindex(out["cost_effect"].abs().sort_values(ascending=False).index)
