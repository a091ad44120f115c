"""Batch re-planning: frontier points equal cold solves, monotone cost, failures isolated."""

import math

import numpy as np
import pandas as pd
import pytest
from builders import make_instance

from optimizer.instance import Budget, Scenario, VehicleSpec, Vehicles, Warehouse
from optimizer.policy import single_item_policy
from optimizer.replan import (ScenarioError, ScenarioSpec, diff_plans, plot_frontier, replan,
                              specs_from_budgets, specs_from_frame, specs_from_range)
from optimizer.report import solve_document
from optimizer.solve import solve


@pytest.fixture(scope="module")
def inst():
    rng = np.random.default_rng(21)
    n = 60
    D = rng.lognormal(7, 1, n)
    c = rng.lognormal(3, 0.8, n)
    base = make_instance(D, rng.uniform(20, 200, n), 0.22 * c, c, demand_sd=0.4 * D,
                         lead_time_days=rng.uniform(5, 30, n), shortage_cost=3 * c,
                         unit_volume=rng.uniform(0.001, 0.05, n))
    pol = single_item_policy(base)
    vol = float((base.unit_volume * pol.average_inventory).sum())
    inv = float(pol.average_inventory_value.sum())
    return base.with_scenario(Scenario(budget=Budget(limit=inv), warehouse=Warehouse(capacity=0.8 * vol)))


def investment(inst):
    return float(single_item_policy(inst).average_inventory_value.sum())


def test_frontier_points_equal_cold_solves_and_cost_falls_with_budget(inst):
    inv = investment(inst)
    budgets = np.linspace(0.5 * inv, 1.1 * inv, 7)
    fr = replan(inst, specs_from_budgets(budgets), gap=1e-5)
    table = fr.table()
    assert list(table["status"]) == ["optimal"] * 7
    for spec, row in zip(specs_from_budgets(budgets), table.itertuples()):
        cold = solve(inst.with_scenario(spec.apply(inst.scenario)), gap=1e-5)
        # both within 1e-5 of their own bounds, and each bound is valid for the other
        assert row.objective == pytest.approx(cold.objective, rel=2e-5)
        assert row.bound <= cold.objective * (1 + 1e-9)
        assert cold.bound <= row.objective * (1 + 1e-9)
    costs = table["objective"].to_numpy()
    assert np.all(np.diff(costs) <= 1e-6 * costs[:-1])  # non-increasing as the budget grows
    assert fr.baseline_objective <= costs.min() * (1 + 1e-9)


def test_infeasible_and_bad_scenarios_are_reported_and_the_rest_complete(inst):
    inv = investment(inst)
    specs = [ScenarioSpec("tight", budget=0.9 * inv),
             ScenarioSpec("impossible", budget=1.0, fill_rate_min=0.999),
             ScenarioSpec("bad", budget=-5.0),
             ScenarioSpec("loose", budget=1.2 * inv)]
    fr = replan(inst, specs)
    by = {o.spec.name: o for o in fr.outcomes}
    assert [o.spec.name for o in fr.outcomes] == ["tight", "impossible", "bad", "loose"]
    assert by["tight"].status == "optimal" and by["loose"].status == "optimal"
    assert by["impossible"].status == "infeasible" and by["impossible"].message
    assert by["bad"].status == "error"
    assert "budget" in by["bad"].message and "bad" in by["bad"].message


def test_scenario_sources_and_validation():
    assert [s.budget for s in specs_from_range("100:300:3")] == [100.0, 200.0, 300.0]
    with pytest.raises(ScenarioError, match="START:STOP:N"):
        specs_from_range("100-300")
    df = pd.DataFrame({"name": ["a", "b"], "budget": [1000.0, np.nan], "fill_rate_min": [np.nan, 0.9]})
    specs = specs_from_frame(df)
    assert specs[0].budget == 1000.0 and specs[0].fill_rate_min is None
    assert specs[1].budget is None and specs[1].fill_rate_min == 0.9
    with pytest.raises(ScenarioError, match="unknown column"):
        specs_from_frame(pd.DataFrame({"name": ["a"], "budjet": [1.0]}))
    with pytest.raises(ScenarioError, match="duplicate"):
        specs_from_frame(pd.DataFrame({"name": ["a", "a"], "budget": [1.0, 2.0]}))
    with pytest.raises(ScenarioError, match="fill_rate_min"):
        ScenarioSpec("x", fill_rate_min=1.5).apply(Scenario())
    with pytest.raises(ScenarioError, match="no \\[vehicles\\]"):
        ScenarioSpec("x", vehicle_cost=10.0).apply(Scenario())
    sc = ScenarioSpec("v", vehicle_cost=99.0).apply(
        Scenario(vehicles=Vehicles(default=VehicleSpec(100.0, "weight", 5.0))))
    assert sc.vehicles.default.cost == 99.0


def test_plot_is_a_valid_png(inst, tmp_path):
    inv = investment(inst)
    fr = replan(inst, specs_from_budgets(np.linspace(0.6 * inv, 1.1 * inv, 4)))
    path = tmp_path / "frontier.png"
    plot_frontier(fr, path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    from PIL import Image

    with Image.open(path) as img:
        assert img.size[0] > 400 and img.size[1] > 300


def test_diff_lists_changed_skus_with_cost_effect(inst):
    inv = investment(inst)
    a = solve(inst.with_scenario(ScenarioSpec("a", budget=0.7 * inv).apply(inst.scenario)))
    b = solve(inst.with_scenario(ScenarioSpec("b", budget=0.9 * inv).apply(inst.scenario)))
    d = diff_plans(solve_document(a), solve_document(b))
    assert len(d) > 0
    assert d["cost_effect"].sum() == pytest.approx(b.objective - a.objective, rel=1e-9)
    same = diff_plans(solve_document(a), solve_document(a))
    assert len(same) == 0


def test_a_scenario_without_a_plan_keeps_its_bound_and_is_not_called_infeasible():
    # demo with aggregate fill-rate floors: 0.97 is met (a plan within the gap); at 0.971
    # every limit can be met alone and the bound stays finite, so no claim of infeasibility
    # is made (no plan found today: status no_plan, its bound in the row); 0.972 is proven
    # contradictory by the bound
    from pathlib import Path

    from optimizer.io import load_instance
    from optimizer.replan import ScenarioSpec, replan

    demo = load_instance(Path(__file__).resolve().parents[1] / "instances" / "demo")
    specs = [ScenarioSpec(name=f"f{v}", fill_rate_min=v) for v in (0.97, 0.971, 0.972)]
    fr = replan(demo, specs, gap=1e-3)
    rows = {r["name"]: r for r in fr.table().to_dict(orient="records")}
    assert rows["f0.97"]["status"] == "optimal" and rows["f0.97"]["fill_rate"] >= 0.97 - 1e-9
    mid = rows["f0.971"]
    assert mid["status"] in ("no_plan", "optimal")
    if mid["status"] == "no_plan":
        assert mid["bound"] > rows["f0.97"]["objective"] and math.isnan(mid["objective"])
        assert "not proven infeasible" in mid["message"]
    else:
        assert mid["fill_rate"] >= 0.971 - 1e-9 and mid["gap"] <= 1e-3
    assert rows["f0.972"]["status"] == "infeasible"
