"""`optimizer plan` end to end: JSON contract, --out files, plot, bad plan inputs (row and field
named, exit 2, nothing written), infeasible limits (exit 3), and every plan the command prints
re-checked against the instance with `check_plan`."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from optimizer.cli import main
from optimizer.io import load_instance, load_period_table
from optimizer.plan import build_plan_data, check_plan, result_from_orders

INSTANCES = Path(__file__).resolve().parents[1] / "instances"
KEYS = {"status", "objective", "bound", "lp_bound", "gap", "start_objective", "orders", "stock",
        "periods"}

SKUS = """sku,annual_demand,demand_sd,lead_time_days,unit_cost,ordering_cost,holding_rate,cycle_service,moq,order_multiple,unit_volume,unit_weight,supplier,on_hand
A,5200,900,10,10,120,0.2,0.95,0,,0.01,2.0,S1,400
B,2600,500,20,20,80,0.2,0.95,100,10,0.02,5.0,S1,300
C,900,200,3,5,40,0.2,0.95,50,,0.005,1.0,S2,
D,12000,2500,35,2,200,0.25,0.95,500,50,0.002,0.4,S2,2500
"""
SCENARIO = """name = "tiny"
[budget]
period_limit = {budget}
[warehouse]
capacity = {warehouse}
[vehicles]
capacity = 2000.0
measure = "weight"
cost = 150.0
"""


def _instance(tmp_path, budget=6000.0, warehouse=16.0, skus=SKUS, name="inst"):
    d = tmp_path / name
    d.mkdir(exist_ok=True)
    (d / "skus.csv").write_text(skus)
    (d / "scenario.toml").write_text(SCENARIO.format(budget=budget, warehouse=warehouse))
    return d


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args],
                                              catch_exceptions=False)


def recheck(doc, inst_dir, horizon, period_days=7.0, **kwargs):
    """Rebuild the plan's data from the files and re-check the printed plan: orders
    re-simulated, floors, budget, space, MOQ, packs, trucks, and the printed stock, use and
    cost equal what the orders imply."""
    inst = load_instance(inst_dir)
    data, _ = build_plan_data(inst, horizon, period_days, **kwargs)
    pos = {s: i for i, s in enumerate(data.sku)}
    x = np.zeros((data.n, data.T))
    for o in doc["orders"]:
        x[pos[o["sku"]], o["order_period"] - 1] += o["quantity"]
        assert o["arrival_period"] == o["order_period"] + data.lead[pos[o["sku"]]]
    res = result_from_orders(data, x)
    assert res.message == ""  # no rule broken
    assert check_plan(data, res) == []
    assert res.objective == pytest.approx(doc["objective"], rel=1e-6)
    stock = pd.DataFrame(doc["stock"])
    assert np.allclose(stock["stock"], res.stock["stock"], rtol=1e-6, atol=1e-4)
    periods = pd.DataFrame(doc["periods"])
    assert np.allclose(periods["spend"], res.periods["spend"], rtol=1e-6, atol=1e-4)
    assert np.allclose(periods["trucks"], res.periods["trucks"])
    assert sum(o["trucks"] for o in doc["orders"]) == pytest.approx(periods["trucks"].sum())
    return data, res


def test_json_contract_and_plan_rechecked(tmp_path):
    inst = _instance(tmp_path)
    res = run("plan", inst, "--horizon", 10, "--period-days", 7, "--format", "json", "--gap", 0)
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    assert set(doc) == KEYS
    assert set(doc["orders"][0]) == {"sku", "supplier", "order_period", "arrival_period",
                                     "quantity", "trucks"}
    assert set(doc["stock"][0]) == {"sku", "period", "stock", "floor"}
    assert set(doc["periods"][0]) == {"period", "spend", "space", "trucks"}
    assert doc["status"] == "optimal" and doc["gap"] <= 1e-9
    assert doc["lp_bound"] <= doc["bound"] + 1e-6 <= doc["objective"] + 1e-6
    assert len(doc["stock"]) == 4 * 10 and len(doc["periods"]) == 10
    data, _ = recheck(doc, inst, 10)
    # the SKU master's on_hand column is the starting stock; C's empty cell keeps R
    assert data.on_hand[[0, 1, 3]].tolist() == [400.0, 300.0, 2500.0]
    assert all(p["spend"] <= 6000.0 + 1e-6 for p in doc["periods"])
    assert all(p["space"] <= 16.0 + 1e-6 for p in doc["periods"])
    # both limits bind: dropping the budget, then also the warehouse, makes the plan cheaper
    costs = [doc["objective"]]
    for i, (b, w) in enumerate([(1e7, 16.0), (1e7, 1e6)]):
        loose = run("plan", _instance(tmp_path, b, w, name=f"loose{i}"), "--horizon", 10,
                    "--format", "json", "--gap", 0)
        costs.append(json.loads(loose.stdout)["objective"])
    assert costs[0] > costs[1] * 1.05 and costs[1] > costs[2] * 1.05


def test_out_dir_plot_forecast_open_orders_and_table(tmp_path):
    inst = _instance(tmp_path)
    fc = tmp_path / "forecast.csv"
    fc.write_text("sku,period,demand\n" + "".join(f"A,{t},{50 + 10 * t}\n" for t in range(1, 9)))
    oo = tmp_path / "open.csv"
    oo.write_text("sku,period,quantity\nD,2,1000\nD,3,500\nB,1,100\n")
    out, png = tmp_path / "plan_out", tmp_path / "plan.png"
    res = run("plan", inst, "--horizon", 8, "--forecast", fc, "--open-orders", oo, "--out", out,
              "--plot", png, "--gap", "0.005")
    assert res.exit_code == 0, res.stderr
    for word in ("status", "objective", "bound", "LP bound", "gap", "start", "spend", "budget",
                 "warehouse", "trucks", "order(s)"):
        assert word in res.stdout
    assert sorted(p.name for p in out.iterdir()) == ["orders.csv", "periods.csv", "plan.json",
                                                     "stock.csv"]
    doc = json.loads((out / "plan.json").read_text())
    assert set(doc) == KEYS and doc["gap"] <= 0.005 + 1e-12
    orders = pd.read_csv(out / "orders.csv")
    assert list(orders.columns) == ["sku", "supplier", "order_period", "arrival_period",
                                    "quantity", "trucks"]
    assert len(orders) == len(doc["orders"])
    periods = pd.read_csv(out / "periods.csv")
    assert list(periods.columns) == ["period", "spend", "budget", "space", "warehouse", "trucks"]
    assert len(pd.read_csv(out / "stock.csv")) == 4 * 8
    data, _ = recheck(doc, inst, 8, forecast=load_period_table(fc, "demand", 8, list("ABCD")),
                      open_orders=load_period_table(oo, "quantity", 8, list("ABCD"),
                                                    unique=False))
    assert data.demand[0].tolist() == [50 + 10 * t for t in range(1, 9)]
    assert data.arrivals[3, 1] == 1000.0
    raw = png.read_bytes()
    assert raw[:8] == b"\x89PNG\r\n\x1a\n" and b"IEND" in raw[-16:]
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[0] > 300 and img.shape[1] > 600
    csv = run("plan", inst, "--horizon", 8, "--forecast", fc, "--open-orders", oo, "--format",
              "csv", "--gap", "0.005")
    assert csv.stdout.splitlines()[0] == "sku,supplier,order_period,arrival_period,quantity,trucks"


@pytest.mark.parametrize("row,field,text", [
    ("NOPE,2,5", "row 2 (sku 'NOPE'), field 'sku'", "unknown SKU"),
    ("B,2.5,5", "row 2 (sku 'B'), field 'period'", "whole period >= 1"),
    ("B,0,5", "row 2 (sku 'B'), field 'period'", "whole period >= 1"),
    ("B,2,-3", "row 2 (sku 'B'), field 'demand'", ">= 0"),
    ("B,2,lots", "row 2 (sku 'B'), field 'demand'", "not a finite number: 'lots'"),
    ("A,1,7", "row 2 (sku 'A'), field 'period'", "given twice (first at row 1)"),
])
def test_bad_forecast_row_names_row_and_field_and_writes_nothing(tmp_path, row, field, text):
    inst = _instance(tmp_path)
    fc = tmp_path / "forecast.csv"
    fc.write_text(f"sku,period,demand\nA,1,10\n{row}\nC,3,4\n")
    out, png = tmp_path / "out", tmp_path / "p.png"
    res = run("plan", inst, "--horizon", 8, "--forecast", fc, "--out", out, "--plot", png,
              "--format", "json")
    assert res.exit_code == 2
    assert "forecast.csv" in res.stderr and field in res.stderr and text in res.stderr
    assert res.stdout == ""
    assert not out.exists() and not png.exists()


def test_bad_on_hand_and_period_budgets(tmp_path):
    inst = _instance(tmp_path, skus=SKUS.replace("S1,300", "S1,-5"))
    res = run("plan", inst, "--horizon", 6)
    assert res.exit_code == 2 and "row 2 (sku 'B'), field 'on_hand'" in res.stderr
    inst = _instance(tmp_path)
    pb = tmp_path / "budgets.csv"
    pb.write_text("period,budget\n1,9000\n2,0\n")
    res = run("plan", inst, "--horizon", 6, "--period-budgets", pb)
    assert res.exit_code == 2 and "row 2, field 'budget': must be > 0" in res.stderr
    pb.write_text("period,budget\n1,12000\n2,3000\n")
    res = run("plan", inst, "--horizon", 6, "--period-budgets", pb, "--format", "json")
    assert res.exit_code == 0, res.stderr
    doc = json.loads(res.stdout)
    spend = [p["spend"] for p in doc["periods"]]
    assert spend[0] <= 12000 + 1e-6 and spend[1] <= 3000 + 1e-6
    assert max(spend[2:]) <= 6000 + 1e-6  # other periods keep period_limit
    recheck(doc, inst, 6, period_budget=[12000, 3000] + [np.nan] * 4)


def test_infeasible_budget_exits_3_with_diagnosis_and_writes_nothing(tmp_path):
    inst = _instance(tmp_path, budget=4500.0)
    out = tmp_path / "out"
    res = run("plan", inst, "--horizon", 8, "--out", out)
    assert res.exit_code == 3
    assert "infeasible: budget in period" in res.stderr and "short by" in res.stderr
    assert not out.exists()


def test_plain_and_no_start_reach_the_same_optimum(tmp_path):
    inst = _instance(tmp_path)
    docs = []
    for extra in ([], ["--plain", "--no-start"]):
        res = run("plan", inst, "--horizon", 8, "--gap", 0, "--format", "json", *extra)
        assert res.exit_code == 0, res.stderr
        docs.append(json.loads(res.stdout))
        recheck(docs[-1], inst, 8)
    assert docs[0]["objective"] == pytest.approx(docs[1]["objective"], rel=1e-6)
    assert docs[0]["lp_bound"] >= docs[1]["lp_bound"] - 1e-6  # strong LP at least the plain one
    assert docs[1]["start_objective"] is None


def test_bundled_plan_demo(tmp_path):
    demo = INSTANCES / "plan_demo"
    res = run("plan", demo, "--horizon", 12, "--period-days", 7, "--format", "json")
    assert res.exit_code == 0, res.stderr
    assert "open_orders.csv" in res.stderr  # read from the instance folder
    doc = json.loads(res.stdout)
    assert doc["status"] == "optimal" and doc["gap"] <= 1e-2 + 1e-12
    recheck(doc, demo, 12, open_orders=load_period_table(
        demo / "open_orders.csv", "quantity", 12, load_instance(demo).sku, unique=False))
    spend = max(p["spend"] for p in doc["periods"])
    assert 0.99 * 45000.0 <= spend <= 45000.0 + 1e-6  # the period budget is (nearly) used up


def test_json_on_stdout_of_a_separate_process_is_only_the_document(tmp_path):
    # HiGHS prints a banner on file descriptor 1 when the first highspy instance is made;
    # CliRunner does not see that descriptor, a real process does
    import subprocess
    import sys

    inst = _instance(tmp_path)
    out = subprocess.run([sys.executable, "-c", "from optimizer.cli import main; main()", "plan",
                          str(inst), "--horizon", "6", "--period-days", "7", "--format", "json"],
                         capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    doc = json.loads(out.stdout)
    assert doc["status"] == "optimal"
    assert doc["objective"] >= doc["bound"] - 1e-6


def test_rows_after_the_horizon_are_reported_and_not_used(tmp_path):
    # a forecast and an open-orders export that run past the horizon (a year of weeks,
    # planned 8 at a time) plan like the same files cut at the horizon, and the terminal
    # says how many rows were left out
    inst = _instance(tmp_path)
    fc, cut = tmp_path / "forecast.csv", tmp_path / "forecast8.csv"
    rows = "".join(f"A,{t},{50 + 10 * t}\n" for t in range(1, 13))
    fc.write_text("sku,period,demand\n" + rows)
    cut.write_text("sku,period,demand\n" + "".join(f"A,{t},{50 + 10 * t}\n" for t in range(1, 9)))
    oo = tmp_path / "open.csv"
    oo.write_text("sku,period,quantity\nD,2,1000\nD,11,500\n")
    res = run("plan", inst, "--horizon", 8, "--forecast", fc, "--open-orders", oo, "--format",
              "json", "--gap", "0.005")
    assert res.exit_code == 0, res.stderr
    assert "forecast.csv: 4 row(s) for period(s) 9..12, after the horizon of 8, not used" \
        in res.stderr
    assert "open.csv: 1 row(s) for period(s) 11..11" in res.stderr
    ref = run("plan", inst, "--horizon", 8, "--forecast", cut, "--open-orders", oo, "--format",
              "json", "--gap", "0.005")
    a, b = json.loads(res.stdout), json.loads(ref.stdout)
    assert a["objective"] == pytest.approx(b["objective"], rel=1e-9)
    assert a["orders"] == b["orders"]


def test_a_semicolon_forecast_says_so(tmp_path):
    inst = _instance(tmp_path)
    fc = tmp_path / "forecast.csv"
    fc.write_text("sku;period;demand\nA;1;10\n")
    res = run("plan", inst, "--horizon", 8, "--forecast", fc)
    assert res.exit_code == 2
    assert "forecast.csv" in res.stderr and "looks semicolon-separated" in res.stderr
