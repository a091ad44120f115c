"""The `optimizer` command line: parse, call the Python API, write, map status to exit code."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import click

EXIT_OK, EXIT_INPUT, EXIT_INFEASIBLE, EXIT_NOT_PROVEN = 0, 2, 3, 4
EXIT_ERROR = 1


def _load(path: str):
    from optimizer.io import InstanceError, load_instance

    try:
        return load_instance(path)
    except InstanceError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_INPUT)


def _emit(text: str, out: str | None) -> None:
    """Print, or write atomically (temp file then rename) so no partial file is left."""
    if out is None:
        click.echo(text, nl=not text.endswith("\n"))
        return
    from optimizer.io import atomic_write_text

    atomic_write_text(Path(out), text)
    click.echo(f"wrote {out}", err=True)


FORMAT = click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]),
                      default="table", show_default=True, help="Output format.")
OUT = click.option("--out", type=click.Path(dir_okay=False), default=None,
                   help="Write to FILE (atomically) instead of the terminal.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Inventory and procurement optimisation: single-item policies and the constrained
    multi-SKU optimum."""


@main.command()
@click.argument("instance", type=click.Path(exists=True))
def validate(instance: str) -> None:
    """Check INSTANCE and list every problem (row, SKU, field) at once."""
    from optimizer.io import validate as run_validate

    issues = run_validate(instance)
    if issues:
        click.echo(f"{len(issues)} problem(s) in {instance}:", err=True)
        for issue in issues:
            click.echo(f"  {issue}", err=True)
        sys.exit(EXIT_INPUT)
    click.echo(f"{instance}: valid")


@main.command()
@click.argument("instance", type=click.Path(exists=True))
@click.option("--model", type=click.Choice(["full", "modified", "rz", "eoq"]), default="full",
              show_default=True, help="Single-item model (see README).")
@FORMAT
@OUT
def policy(instance: str, model: str, fmt: str, out: str | None) -> None:
    """Single-item policy (Z, R) of every SKU, ignoring coupling limits."""
    from optimizer import report
    from optimizer.policy import kpis, single_item_policy

    inst = _load(instance)
    result = single_item_policy(inst, model=model)
    k = kpis(inst, result).to_dict()
    extra = _passthrough(inst)
    if fmt == "json":
        doc = {"status": "optimal", "model": model, "objective": result.objective,
               "skus": report.sku_records(result, extra), "kpis": k}
        _emit(report.to_json(doc), out)
    elif fmt == "csv":
        _emit(report.to_csv(result, extra), out)
    else:
        text = (f"single-item policy ({model}) for {inst.n} SKUs: total cost "
                f"{result.objective:,.2f} per year\n{report.policy_table(result)}\n"
                f"{report.kpi_lines(k)}\n")
        _emit(text, out)


def _passthrough(inst):
    cols = [c for c in inst.frame.columns if str(c).startswith("x_")]
    return inst.frame[cols] if cols else None


@main.command()
@click.option("--skus", "n_skus", type=click.IntRange(min=1), required=True,
              help="Number of SKUs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--tightness", type=click.FloatRange(0.05, 2.0), default=0.7, show_default=True,
              help="Limits as a fraction of what the single-item policies use.")
@click.option("--file-format", "file_format", type=click.Choice(["csv", "parquet", "xlsx"]),
              default="csv", show_default=True)
@click.argument("out", type=click.Path(file_okay=False))
def generate(n_skus: int, seed: int, tightness: float, file_format: str, out: str) -> None:
    """Write a synthetic instance of N SKUs with binding limits to directory OUT."""
    from optimizer.generate import generate_to_dir

    generate_to_dir(n_skus, seed, out, fmt=file_format, tightness=tightness)
    click.echo(f"wrote {n_skus} SKUs to {out}")


@main.command()
@click.argument("instance", type=click.Path(exists=True))
@click.option("--time-limit", type=click.FloatRange(min=0.1), default=None,
              help="Seconds; the best plan so far is returned with its bound and gap.")
@click.option("--gap", type=click.FloatRange(min=0.0, max=1.0), default=1e-4, show_default=True,
              help="Relative gap target (objective - bound) / objective.")
@click.option("--write-model", type=click.Path(dir_okay=False), default=None,
              help="Write the integer master to FILE.lp or FILE.mps.")
@click.option("--solver", default="appsi_highs", show_default=True,
              help="Pyomo solver for the integer master (HiGHS by default).")
@FORMAT
@OUT
def solve(instance, time_limit, gap, write_model, solver, fmt, out) -> None:
    """Constrained multi-SKU optimum under the scenario's limits, with bound and gap."""
    from optimizer import report
    from optimizer.solve import solve as run_solve

    inst = _load(instance)
    res = run_solve(inst, time_limit=time_limit, gap=gap, solver=solver,
                    write_model=write_model)
    extra = _passthrough(inst)
    if res.policy is None and out is not None:
        out = None  # no plan: nothing is written, the diagnosis goes to the terminal
        fmt = "table"
    if fmt == "json":
        _emit(report.to_json(report.solve_document(res, extra)), out)
    elif fmt == "csv":
        if res.policy is None:
            click.echo(report.solve_summary(res), err=True)
        else:
            _emit(report.to_csv(res.policy, extra), out)
    else:
        _emit(report.solve_summary(res) + "\n", out)
    code = {"optimal": EXIT_OK, "feasible": EXIT_OK, "infeasible": EXIT_INFEASIBLE,
            "time_limit": EXIT_NOT_PROVEN, "no_plan": EXIT_NOT_PROVEN}[res.status]
    if res.status in ("infeasible", "no_plan"):
        click.echo(f"{res.status}: {res.message}", err=True)
    sys.exit(code)


@main.command()
@click.argument("instance", type=click.Path(exists=True))
@click.option("--budgets", default=None, help="Comma-separated budgets, e.g. 100000,120000.")
@click.option("--budget-range", default=None, help="START:STOP:N evenly spaced budgets.")
@click.option("--scenarios", "scenarios_file", type=click.Path(exists=True, dir_okay=False),
              default=None, help="CSV with a name column and limit columns.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for frontier.csv and one plan JSON per scenario.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Frontier plot, .png or .svg.")
@click.option("--gap", type=click.FloatRange(min=0.0, max=1.0), default=1e-4, show_default=True)
@click.option("--time-limit", type=click.FloatRange(min=0.1), default=None,
              help="Seconds per scenario.")
@FORMAT
def replan(instance, budgets, budget_range, scenarios_file, out_dir, workers, plot, gap,
           time_limit, fmt) -> None:
    """Re-plan a batch of scenarios (budget cuts and other what-ifs) in one run."""
    import pandas as pd

    from optimizer import report
    from optimizer import replan as rp

    given = [x is not None for x in (budgets, budget_range, scenarios_file)]
    if sum(given) != 1:
        raise click.UsageError("give exactly one of --budgets, --budget-range, --scenarios")
    try:
        if budgets is not None:
            try:
                values = [float(v) for v in budgets.split(",") if v.strip()]
            except ValueError as exc:
                raise rp.ScenarioError(f"--budgets must be numbers: {exc}") from exc
            specs = rp.specs_from_budgets(values)
        elif budget_range is not None:
            specs = rp.specs_from_range(budget_range)
        else:
            specs = rp.specs_from_frame(pd.read_csv(scenarios_file), scenarios_file)
    except rp.ScenarioError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    inst = _load(instance)
    bar = _progress(len(specs))
    try:
        frontier = rp.replan(inst, specs, workers=workers, gap=gap, time_limit=time_limit,
                             progress=bar.update)
    finally:
        bar.close()
    table = frontier.table()
    if out_dir is not None:
        from optimizer.io import atomic_write_text

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        for o in frontier.outcomes:
            if o.result is not None and o.result.policy is not None:
                safe = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in o.spec.name)
                atomic_write_text(out / f"plan_{safe}.json",
                                  report.to_json(report.solve_document(o.result, _passthrough(inst))))
        atomic_write_text(out / "frontier.csv", table.to_csv(index=False, float_format="%.6g"))
    if plot is not None:
        rp.plot_frontier(frontier, plot)
    if fmt == "json":
        click.echo(report.to_json(rp.frontier_document(frontier)), nl=False)
    elif fmt == "csv":
        click.echo(table.to_csv(index=False, float_format="%.6g"), nl=False)
    else:
        cols = ["name", "status", "objective", "gap", "fill_rate", "average_inventory_value",
                "binding", "shadow_price_budget", "solve_seconds"]
        click.echo(table[cols].to_string(index=False, float_format=lambda v: f"{v:,.6g}"))
        for o in frontier.outcomes:
            if o.status in ("infeasible", "no_plan", "error"):
                click.echo(f"{o.spec.name}: {o.status}: {o.message}")
        click.echo(f"single-item baseline cost {frontier.baseline_objective:,.2f}; "
                   f"total {frontier.total_seconds:.2f} s")
    failed = all(o.status in ("infeasible", "no_plan", "error") for o in frontier.outcomes)
    sys.exit(EXIT_INFEASIBLE if failed else EXIT_OK)


def _progress(total: int):
    """A progress bar on a terminal, silent otherwise (tqdm decides by TTY)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="scenario", disable=None, file=sys.stderr, leave=False)


@main.command()
@click.argument("plan_a", type=click.Path(exists=True, dir_okay=False))
@click.argument("plan_b", type=click.Path(exists=True, dir_okay=False))
@FORMAT
@OUT
def diff(plan_a, plan_b, fmt, out) -> None:
    """SKUs whose Z or R differ between two plan files, with the cost effect."""
    import json

    from optimizer import report
    from optimizer.replan import diff_plans

    docs = []
    for path in (plan_a, plan_b):
        try:
            docs.append(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            click.echo(f"error: {path}: not a plan JSON ({exc})", err=True)
            sys.exit(EXIT_INPUT)
    try:
        d = diff_plans(*docs)
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    if fmt == "json":
        _emit(report.to_json({"changed": d.to_dict(orient="records"),
                              "cost_effect": float(d["cost_effect"].sum(skipna=True))}), out)
    elif fmt == "csv":
        _emit(d.to_csv(index=False, float_format="%.6g"), out)
    else:
        text = (f"{len(d)} SKU(s) change; cost effect {d['cost_effect'].sum(skipna=True):+,.2f} "
                "per year\n" + (d.head(50).to_string(index=False, float_format=lambda v: f"{v:,.4g}")
                                 if len(d) else ""))
        _emit(text + "\n", out)


@main.command()
@click.argument("instance", type=click.Path(exists=True))
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="report.html or report.md (written atomically).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Terminal output when no --out is given.")
@click.option("--gap", type=click.FloatRange(min=0.0, max=1.0), default=1e-4, show_default=True)
def compare(instance, out, fmt, gap) -> None:
    """Single-item formulas (EOQ, (R, Z), seed 002's model) against the constrained optimum:
    KPIs, the price of each limit, the SKUs the limits change most."""
    from optimizer import report
    from optimizer.compare import compare as run_compare, render

    inst = _load(instance)
    cmp = run_compare(inst, gap=gap)
    if out is not None:
        suffix = Path(out).suffix.lower()
        if suffix not in (".html", ".md"):
            raise click.UsageError("--out must end in .html or .md")
        _emit(render(cmp, "html" if suffix == ".html" else "md",
                     title=f"Inventory policy comparison: {inst.scenario.name}"), out)
    elif fmt == "json":
        _emit(report.to_json({"status": cmp.status,
                              "policies": cmp.summary.to_dict(orient="records"),
                              "limit_prices": cmp.limit_prices.to_dict(orient="records"),
                              "changes": cmp.changes.to_dict(orient="records"),
                              "skus": cmp.skus.to_dict(orient="records")}), None)
    elif fmt == "csv":
        _emit(cmp.skus.to_csv(index=False, float_format="%.6g"), None)
    else:
        cols = ["policy", "total_cost", "holding_cost_share", "average_inventory_value",
                "turnover", "days_of_supply", "fill_rate"]
        click.echo(cmp.summary[cols].to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
        if len(cmp.limit_prices):
            click.echo("\nprice of each limit (cost with it minus cost without it, per year):")
            click.echo(cmp.limit_prices[["limit", "value", "shadow_price", "binding",
                                         "price_of_limit"]].to_string(index=False))
        if len(cmp.changes):
            click.echo("\nSKUs the limits change most:")
            click.echo(cmp.changes.head(10).to_string(index=False,
                                                      float_format=lambda v: f"{v:,.4g}"))
    sys.exit({"infeasible": EXIT_INFEASIBLE, "no_plan": EXIT_NOT_PROVEN}.get(cmp.status,
                                                                            EXIT_OK))


@main.command()
@click.argument("instance", type=click.Path(exists=True))
@click.option("--plan", "plan_path", type=click.Path(exists=True, dir_okay=False), required=True,
              help="Plan JSON written by `optimizer solve` or `optimizer policy`.")
@click.option("--years", type=click.FloatRange(min=0.1), default=10.0, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--replications", type=click.IntRange(min=1), default=5, show_default=True)
@FORMAT
@OUT
def simulate(instance, plan_path, years, seed, replications, fmt, out) -> None:
    """Simulate the plan's (R, Z) policies day by day: fill rate, cycle service, stock,
    orders and truck loads with confidence intervals beside the analytical values."""
    from optimizer import report
    from optimizer.simulate import load_plan, simulate as run_simulate

    inst = _load(instance)
    try:
        _, z, r = load_plan(plan_path, inst)
    except ValueError as exc:
        click.echo(f"error: {plan_path}: {exc}", err=True)
        sys.exit(EXIT_INPUT)
    res = run_simulate(inst, z, r, years=years, seed=seed, replications=replications)
    df = res.to_frame()
    if fmt == "json":
        _emit(report.to_json(res.to_json()), out)
    elif fmt == "csv":
        _emit(df.to_csv(index=False, float_format="%.6g"), out)
    else:
        cols = ["sku", "fill_rate", "fill_rate_ci", "analytic_fill_rate", "cycle_service",
                "analytic_cycle_service", "average_stock", "analytic_average_stock", "short"]
        text = df[cols].head(40).to_string(index=False, float_format=lambda v: f"{v:,.4f}")
        short = int(df["short"].sum())
        _emit(f"{text}\n{short} of {len(df)} SKU(s) deliver less fill rate than the analytical "
              "value promises (flag 'short')\n", out)


@main.command()
@click.argument("instance", type=click.Path(exists=True))
@click.option("--horizon", type=click.IntRange(min=1), required=True,
              help="Number of periods T (numbered 1..T).")
@click.option("--period-days", type=click.FloatRange(min=0.0, min_open=True), default=7.0,
              show_default=True, help="Length of a period in days.")
@click.option("--forecast", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV sku, period, demand (units per period); default: INSTANCE/forecast.csv "
                   "if present, else the flat annual rate.")
@click.option("--open-orders", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV sku, period, quantity of deliveries already on the way (by arrival "
                   "period); default: INSTANCE/open_orders.csv if present.")
@click.option("--period-budgets", type=click.Path(exists=True, dir_okay=False), default=None,
              help="CSV period, budget: purchase budget per order period (others keep the "
                   "scenario's [budget] period_limit).")
@click.option("--time-limit", type=click.FloatRange(min=0.1), default=None,
              help="Seconds; the best plan so far is returned with its bound and gap.")
@click.option("--gap", type=click.FloatRange(min=0.0, max=1.0), default=1e-2, show_default=True,
              help="Relative gap target (objective - bound) / objective.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default=None,
              help="Directory for orders.csv, stock.csv, periods.csv, plan.json.")
@click.option("--plot", type=click.Path(dir_okay=False), default=None,
              help="Stock vs floors and capacity use per period, .png or .svg.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table",
              show_default=True, help="Terminal output (csv: the orders).")
@click.option("--plain", is_flag=True, help="Plain big-M formulation instead of the strong one.")
@click.option("--no-start", is_flag=True, help="Do not warm-start HiGHS from the (R, Z) plan.")
@click.option("--price/--no-price", default=None,
              help="Pricing route for large instances (Lagrangian bound, per-SKU plans "
                   "chosen under the limits); default: from 50,000 SKU-periods on.")
def plan(instance, horizon, period_days, forecast, open_orders, period_budgets, time_limit, gap,
         out_dir, plot, fmt, plain, no_start, price) -> None:
    """Multi-period purchase plan: what to order from whom in each period (lot sizing with
    shared trucks, MOQ, period budgets and space), warm-started from the (R, Z) policy."""
    from optimizer import plan_report
    from optimizer.plan import plan as run_plan

    inst = _load(instance)
    folder = Path(instance)
    if folder.is_dir():  # the instance folder's own plan inputs, unless given explicitly
        if forecast is None and (folder / "forecast.csv").exists():
            forecast = str(folder / "forecast.csv")
            click.echo(f"using {forecast}", err=True)
        if open_orders is None and (folder / "open_orders.csv").exists():
            open_orders = str(folder / "open_orders.csv")
            click.echo(f"using {open_orders}", err=True)
    tables = _plan_tables(inst, horizon, forecast, open_orders, period_budgets)
    res = run_plan(inst, horizon, period_days, forecast=tables["forecast"],
                   open_orders=tables["open_orders"], period_budget=tables["period_budget"],
                   time_limit=time_limit, gap=gap, strong=not plain, use_start=not no_start,
                   price=price)
    has_plan = math.isfinite(res.objective)
    if has_plan:
        files = plan_report.plan_files(res)  # all texts first: a failure writes nothing
        if out_dir is not None:
            from optimizer.io import atomic_write_text

            for name, text in files.items():
                atomic_write_text(Path(out_dir) / name, text)
            click.echo(f"wrote {', '.join(files)} to {out_dir}", err=True)
        if plot is not None:
            plan_report.plot_plan(res, plot)
            click.echo(f"wrote {plot}", err=True)
        if fmt == "json":
            click.echo(files["plan.json"], nl=False)
        elif fmt == "csv":
            click.echo(files["orders.csv"], nl=False)
        else:
            click.echo(plan_report.plan_summary(res), nl=False)
        if fmt != "table" and res.message:
            click.echo(res.message, err=True)
    else:  # no plan: nothing is written, the reason goes to the terminal
        if fmt == "json":
            import json

            click.echo(json.dumps(plan_report.plan_document(res), indent=2))
        click.echo(res.message if res.status == "infeasible" else
                   f"{res.status}: {res.message}", err=True)
    code = {"optimal": EXIT_OK, "feasible": EXIT_OK, "infeasible": EXIT_INFEASIBLE,
            "time_limit": EXIT_NOT_PROVEN}.get(res.status, EXIT_ERROR)
    sys.exit(code)


def _plan_tables(inst, horizon, forecast, open_orders, period_budgets) -> dict:
    """Read and validate the plan's CSV inputs; any problem exits 2 naming row and field."""
    import numpy as np

    from optimizer.io import TableError, load_period_table

    out = {"forecast": None, "open_orders": None, "period_budget": None}

    def read(path, value, skus=None, **kw):
        # rows after the horizon are valid input the plan does not reach: said, not used
        df = load_period_table(path, value, horizon, skus, beyond_horizon=True, **kw)
        rows, first, last = df.attrs["beyond"]
        if rows:
            click.echo(f"{Path(path).name}: {rows} row(s) for period(s) {first}..{last}, "
                       f"after the horizon of {horizon}, not used", err=True)
        return df

    try:
        if forecast is not None:
            out["forecast"] = read(forecast, "demand", inst.sku)
        if open_orders is not None:
            out["open_orders"] = read(open_orders, "quantity", inst.sku, unique=False)
        if period_budgets is not None:
            b = read(period_budgets, "budget", positive=True)
            vec = np.full(horizon, np.nan)
            vec[b["period"].to_numpy(int) - 1] = b["budget"].to_numpy(float)
            out["period_budget"] = vec
    except TableError as exc:
        click.echo(str(exc), err=True)
        sys.exit(EXIT_INPUT)
    return out


if __name__ == "__main__":  # pragma: no cover
    main()
