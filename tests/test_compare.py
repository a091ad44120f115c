"""Comparison report: limit prices, seed KPIs for the bundled items, rendering."""

import base64
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner

from optimizer.cli import main
from optimizer.compare import compare, render
from optimizer.io import load_instance

INSTANCES = Path(__file__).resolve().parents[1] / "instances"


@pytest.fixture(scope="module")
def seed000():
    return compare(load_instance(INSTANCES / "seed000_materials"))


def test_price_of_a_slack_limit_is_zero_and_a_binding_one_positive(seed000):
    prices = seed000.limit_prices.set_index("limit")
    assert prices.loc["fill_rate", "price_of_limit"] == 0.0  # 92% floor does not bind
    assert not prices.loc["fill_rate", "binding"]
    b = prices.loc["budget"]
    assert b["binding"] and b["price_of_limit"] > 0
    assert b["cost_without_limit"] == pytest.approx(b["cost_with_limit"] - b["price_of_limit"])
    # without the budget the optimum is the single-item optimum
    single = seed000.summary.set_index("policy").loc["single-item optimum (limits ignored)"]
    assert b["cost_without_limit"] == pytest.approx(single["total_cost"], rel=1e-6)


def test_seed000_kpis_present(seed000):
    s = seed000.summary
    for col in ("holding_cost_share", "fill_rate", "turnover", "days_of_supply",
                "average_inventory_value"):
        assert s[col].notna().all()
    opt = s.set_index("policy").loc["constrained optimum"]
    assert opt["fill_rate"] >= 0.92 - 1e-9  # seed 000's fulfilment target holds
    assert opt["average_inventory_value"] <= 480000.0 * (1 + 1e-9)


def test_seed002_modified_model_against_deterministic():
    # seed 002's finding: the modified model (capital tied up, trucks) orders less than the
    # plain deterministic model, so the average stock is lower and the turnover higher
    c = compare(load_instance(INSTANCES / "seed002_items"))
    per = c.skus.set_index(["policy", "sku"])
    for sku in ("alpha", "beta", "gamma"):
        det = per.loc[("EOQ + reorder level (seed 003)", sku)]
        rz = per.loc[("(R, Z) model (seed 004)", sku)]
        mod = per.loc[("modified model (seed 002)", sku)]
        assert mod["order_cycle_days"] == pytest.approx(
            mod["order_quantity"] / det["order_quantity"] * det["order_cycle_days"])
        assert mod["average_stock"] <= rz["average_stock"] + 1e-9
    s = c.summary.set_index("policy")
    assert s.loc["modified model (seed 002)", "turnover"] > s.loc["(R, Z) model (seed 004)", "turnover"]


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.images = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "img":
            self.images.append(dict(attrs)["src"])


def test_report_renders_with_embedded_chart(seed000, tmp_path):
    page = render(seed000)
    p = _Collect()
    p.feed(page)
    assert p.tags.count("table") == 3 and "h1" in p.tags
    assert len(p.images) == 1 and p.images[0].startswith("data:image/png;base64,")
    png = base64.b64decode(p.images[0].split(",", 1)[1])
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert "http" not in page.replace("charset", "")  # opens with no network
    md = render(seed000, "md")
    assert md.startswith("# ") and "| policy |" in md
    out = tmp_path / "report.html"
    res = CliRunner().invoke(main, ["compare", str(INSTANCES / "seed000_materials"), "--out",
                                    str(out)])
    assert res.exit_code == 0 and out.read_text().startswith("<!DOCTYPE html>")
