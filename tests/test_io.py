"""Instance files: round trips, every validation branch, bundled instances."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from optimizer.generate import generate_instance
from optimizer.io import (InstanceError, instance_from_dict, instance_from_frames, load_instance,
                          validate, write_instance)

INSTANCES = Path(__file__).resolve().parents[1] / "instances"
GOOD = {"sku": ["A", "B"], "annual_demand": [1000, 200], "lead_time_days": [10, 5],
        "unit_cost": [5.0, 30.0], "ordering_cost": [50, 20], "holding_rate": [0.2, 0.25]}


def frame(**changes):
    d = {k: list(v) for k, v in GOOD.items()}
    d.update(changes)
    return pd.DataFrame(d)


@pytest.mark.parametrize("fmt", ["csv", "parquet", "xlsx"])
def test_round_trip_keeps_arrays_and_user_columns(tmp_path, fmt):
    skus, sc = generate_instance(40, seed=3)
    skus["x_buyer"] = [f"b{i % 3}" for i in range(40)]
    inst = instance_from_frames(skus, sc)
    write_instance(inst, tmp_path / "inst", fmt=fmt)
    back = load_instance(tmp_path / "inst")
    for name in ("annual_demand", "demand_sd", "holding_cost", "moq", "order_multiple",
                 "unit_weight", "supplier_on_time", "shortage_cost", "fill_rate"):
        assert np.allclose(getattr(back, name), getattr(inst, name), equal_nan=True), name
    assert list(back.sku) == list(inst.sku) and list(back.supplier) == list(inst.supplier)
    assert list(back.frame["x_buyer"]) == list(skus["x_buyer"])
    assert back.scenario == inst.scenario


def test_json_document_form():
    doc = {"skus": frame().to_dict(orient="records"),
           "scenario": {"days_per_year": 250, "budget": {"limit": 1000.0, "basis": "peak"}}}
    inst = instance_from_dict(doc)
    assert inst.scenario.days_per_year == 250 and inst.scenario.budget.basis == "peak"
    assert inst.holding_cost == pytest.approx([1.0, 7.5])


def test_lead_time_demand_formula():
    # source: README: mean D L / days; Var = (L/days) sd_D^2 + (D/days)^2 sd_L^2
    inst = instance_from_frames(frame(demand_sd=[300, 0], lead_time_sd_days=[2, 0],
                                      shortage_cost=[10, None]), {"days_per_year": 250})
    assert inst.lead_time_demand_mean[0] == pytest.approx(1000 * 10 / 250)
    assert inst.lead_time_demand_sd[0] == pytest.approx(np.sqrt(10 / 250 * 300**2 + (4.0 * 2) ** 2))


@pytest.mark.parametrize("changes,field,text", [
    ({"unit_cost": [-5.0, 30.0]}, "unit_cost", "must be > 0"),
    ({"annual_demand": ["lots", 200]}, "annual_demand", "not a number"),
    ({"annual_demand": [np.nan, 200]}, "annual_demand", "required"),
    ({"sku": ["A", "A"]}, "sku", "duplicate"),
    ({"holding_cost": [1.0, 2.0]}, "holding_cost", "not both"),
    ({"demand_sd": [100, 0]}, "shortage_cost", "uncertain"),
    ({"demand_sd": [100, 0], "cycle_service": [1.2, None]}, "cycle_service", "in (0, 1)"),
    ({"demand_sd": [100, 0], "fill_rate": [0.9, None], "shortage_cost": [3.0, None]},
     "shortage_cost", "at most one"),
    ({"demand_distribution": ["weibull", "normal"]}, "demand_distribution", "must be one of"),
    ({"demand_sd": [900, 0], "demand_distribution": ["uniform", "normal"],
      "shortage_cost": [4.0, None]}, "demand_distribution", "below 0"),
    ({"supplier_on_time": [1.5, 1]}, "supplier_on_time", "in (0, 1]"),
    ({"moq": [-1, 0]}, "moq", ">= 0"),
    ({"order_multiple": [0, 5]}, "order_multiple", "> 0"),
    ({"colour": ["red", "blue"]}, "colour", "unknown column"),
])
def test_validation_names_row_sku_and_field(changes, field, text):
    with pytest.raises(InstanceError, match="problem") as info:
        instance_from_frames(frame(**changes), {})
    hits = [i for i in info.value.issues if i.field == field and text in i.message]
    assert hits, [str(i) for i in info.value.issues]
    if hits[0].row is not None:
        assert hits[0].row == 1 and hits[0].sku == "A" and "row 1 (sku 'A')" in str(hits[0])


def test_all_problems_reported_at_once_and_scenario_errors(tmp_path):
    d = tmp_path / "bad"
    d.mkdir()
    frame(unit_cost=[-1.0, 0.0], ordering_cost=[-3, 5]).to_csv(d / "skus.csv", index=False)
    (d / "scenario.toml").write_text('[budget]\nlimit = -4\nbassis = "peak"\n'
                                     '[vehicles]\ncapacity = 10\nmeasure = "mass"\n')
    issues = validate(d)
    fields = {(i.row, i.field) for i in issues}
    assert {(1, "unit_cost"), (2, "unit_cost"), (1, "ordering_cost"), (None, "budget.limit"),
            (None, "budget.bassis"), (None, "vehicles.measure")} <= fields
    assert "did you mean 'basis'" in next(str(i) for i in issues if i.field == "budget.bassis")


def test_vehicle_cross_checks():
    sc = {"vehicles": {"capacity": 10.0, "measure": "weight", "cost": 50.0}}
    with pytest.raises(InstanceError, match="unit_weight"):
        instance_from_frames(frame(), sc)
    with pytest.raises(InstanceError, match="exceeds the vehicle capacity"):
        instance_from_frames(frame(unit_weight=[20.0, 1.0]), sc)


def test_missing_files_and_columns(tmp_path):
    assert "no skus.csv" in str(validate(tmp_path)[0])
    with pytest.raises(InstanceError, match="required column"):
        instance_from_frames(frame().drop(columns=["unit_cost"]), {})


def test_generator_is_deterministic_skewed_and_binding():
    a, sc = generate_instance(5000, seed=11)
    b, _ = generate_instance(5000, seed=11)
    pd.testing.assert_frame_equal(a, b)
    value = (a["annual_demand"] * a["unit_cost"]).sort_values(ascending=False).to_numpy()
    assert value[:1000].sum() / value.sum() > 0.6  # ABC: a fifth of SKUs, most of the value
    assert {"budget", "warehouse", "vehicles"} <= set(sc)
    inst = instance_from_frames(a, sc)
    assert inst.n == 5000 and (inst.distribution == 1).any()
    from optimizer.policy import single_item_policy
    pol = single_item_policy(inst)
    assert pol.average_inventory_value.sum() > sc["budget"]["limit"]  # the budget binds


@pytest.mark.parametrize("path", sorted(p.name for p in INSTANCES.iterdir() if p.is_dir()))
def test_bundled_instances_load(path):
    assert validate(INSTANCES / path) == []


@pytest.mark.parametrize("sep,name", [(";", "semicolon"), ("\t", "tab")])
def test_a_non_comma_csv_gets_one_clear_message(tmp_path, sep, name):
    # a European Excel export (';' between fields, ',' as decimal point) read as CSV is one
    # column named after the whole header: say so, instead of 16 unknown/missing columns
    src = pd.read_csv(INSTANCES / "seed002_items" / "skus.csv")
    inst = tmp_path / "inst"
    inst.mkdir()
    src.to_csv(inst / "skus.csv", sep=sep, decimal=",", index=False)
    (inst / "scenario.toml").write_text((INSTANCES / "seed002_items" / "scenario.toml")
                                        .read_text())
    with pytest.raises(InstanceError) as info:
        load_instance(inst)
    assert len(info.value.issues) == 1
    assert f"looks {name}-separated" in str(info.value)
