"""End-to-end CLI: known answers through the command line, exit codes, atomic outputs."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from optimizer.cli import main

INSTANCES = Path(__file__).resolve().parents[1] / "instances"


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_policy_seed003_known_answer():
    # source: seed 003: EOQ = sqrt(2 x 10,000 x 200 / 5) = 894.4; reorder level 40 x 5 = 200
    res = run("policy", INSTANCES / "seed003_eoq", "--format", "json")
    assert res.exit_code == 0
    doc = json.loads(res.output)
    sku = doc["skus"][0]
    assert sku["order_quantity"] == pytest.approx(894.427191, rel=1e-9)
    assert sku["reorder_point"] == pytest.approx(200.0)
    assert sku["ordering_cost"] == pytest.approx(sku["holding_cost"])
    assert doc["objective"] == pytest.approx(2 * 200 * 10_000 / 894.427191, rel=1e-9)
    assert set(doc["kpis"]) == {"average_inventory_value", "turnover", "days_of_supply",
                                "fill_rate", "total_cost"}


@pytest.mark.parametrize("model", ["full", "modified", "rz", "eoq"])
def test_policy_models_and_formats(model, tmp_path):
    out = tmp_path / "p.csv"
    res = run("policy", INSTANCES / "seed002_items", "--model", model, "--format", "csv",
              "--out", out)
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert lines[0].startswith("sku,order_quantity,reorder_point") and "x_consumption" in lines[0]
    assert len(lines) == 4
    table = run("policy", INSTANCES / "seed002_items", "--model", model)
    assert "alpha" in table.output and "total cost" in table.output


def test_solve_json_contract_and_exit_code(tmp_path):
    out = tmp_path / "plan.json"
    res = run("solve", INSTANCES / "demo", "--format", "json", "--out", out)
    assert res.exit_code == 0
    doc = json.loads(out.read_text())
    assert doc["status"] == "optimal"
    assert doc["bound"] <= doc["objective"] and doc["gap"] <= 1e-4
    assert {c["name"] for c in doc["constraints"]} == {"budget", "warehouse"}
    assert all(c["used"] <= c["limit"] * (1 + 1e-9) for c in doc["constraints"])
    assert doc["baseline"]["objective"] <= doc["objective"]
    assert len(doc["skus"]) == 60
    assert sum(s["total_cost"] for s in doc["skus"]) == pytest.approx(doc["objective"], rel=1e-9)


def test_infeasible_budget_exits_3_and_writes_nothing(tmp_path):
    inst = tmp_path / "inst"
    inst.mkdir()
    (inst / "skus.csv").write_text(
        "sku,annual_demand,lead_time_days,unit_cost,ordering_cost,holding_cost,moq\n"
        "A,1000,5,10,50,2,5000\nB,500,5,10,50,2,0\n")
    (inst / "scenario.toml").write_text("[budget]\nlimit = 1000\nbasis = \"peak\"\n")
    out = tmp_path / "plan.json"
    res = CliRunner().invoke(main, ["solve", str(inst), "--out", str(out)])
    assert res.exit_code == 3
    assert "budget" in res.output and "50,000" in res.output  # least budget: 10 x 5,000
    assert not out.exists()


def test_bad_input_exits_2_names_row_and_field(tmp_path):
    inst = tmp_path / "inst"
    inst.mkdir()
    (inst / "skus.csv").write_text(
        "sku,annual_demand,lead_time_days,unit_cost,ordering_cost,holding_cost\n"
        "A,1000,5,10,50,2\nB,-4,5,10,50,2\n")
    out = tmp_path / "p.json"
    res = CliRunner().invoke(main, ["policy", str(inst), "--out", str(out)])
    assert res.exit_code == 2
    assert "row 2 (sku 'B'), field 'annual_demand'" in res.output
    assert not out.exists()
    res = CliRunner().invoke(main, ["validate", str(inst)])
    assert res.exit_code == 2 and "annual_demand" in res.output
    assert run("validate", INSTANCES / "demo").exit_code == 0


def test_generate_writes_a_valid_instance(tmp_path):
    res = run("generate", "--skus", 300, "--seed", 4, tmp_path / "g")
    assert res.exit_code == 0
    assert run("validate", tmp_path / "g").exit_code == 0
    res = run("solve", tmp_path / "g", "--format", "json", "--gap", "1e-3")
    doc = json.loads(res.output)
    assert doc["status"] in ("optimal", "feasible") and doc["gap"] <= 1e-3 or doc["status"] == "feasible"
    assert any(c["binding"] for c in doc["constraints"])


def test_write_model_lp(tmp_path):
    lp = tmp_path / "m.lp"
    res = run("solve", INSTANCES / "demo", "--write-model", lp)
    assert res.exit_code == 0
    text = lp.read_text()
    assert "choose" in text and "budget" in text and "warehouse" in text


def test_replan_and_diff(tmp_path):
    out = tmp_path / "batch"
    res = run("replan", INSTANCES / "demo", "--budget-range", "700000:900000:3", "--out", out,
              "--plot", tmp_path / "f.png", "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert len(doc["scenarios"]) == 3 and doc["total_seconds"] > 0
    plans = sorted(out.glob("plan_*.json"))
    assert len(plans) == 3 and (out / "frontier.csv").exists()
    assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"
    res = run("diff", plans[0], plans[-1], "--format", "json")
    d = json.loads(res.output)
    assert d["changed"] and isinstance(d["cost_effect"], float)


def test_simulate_a_solved_plan(tmp_path):
    plan = tmp_path / "plan.json"
    assert run("solve", INSTANCES / "seed002_items", "--format", "json", "--out", plan).exit_code == 0
    res = run("simulate", INSTANCES / "seed002_items", "--plan", plan, "--years", 3,
              "--replications", 3, "--format", "json")
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    rows = {r["sku"]: r for r in doc["skus"]}
    assert set(rows) == {"alpha", "beta", "gamma"}
    for r in rows.values():
        assert 0 <= r["fill_rate"] <= 1 and r["fill_rate_ci"] >= 0
        assert "analytic_fill_rate" in r and "short" in r
    bad = tmp_path / "bad.json"
    bad.write_text('{"skus": [{"sku": "alpha", "order_quantity": 10, "reorder_point": 5}]}')
    res = CliRunner().invoke(main, ["simulate", str(INSTANCES / "seed002_items"), "--plan",
                                    str(bad)])
    assert res.exit_code == 2 and "beta" in res.output
