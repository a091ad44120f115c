"""Monolithic candidate-grid MIP: the benchmark baseline for `optimizer solve`.

What a modeller would write without decomposition: per SKU a fixed grid of candidate
policies (order quantity and reorder point), one binary per candidate, exactly one chosen,
and every coupling limit as one row over all binaries. It has no bound on the true
(continuous) problem: its optimum is only as good as its grid.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo

from formulations.column_master import build_choice_master


def build_grid_mip(costs, usage, rhs, names) -> pyo.ConcreteModel:
    """costs: (n, G) exact annual cost of each SKU's G candidates; usage: (K, n, G); rhs: (K,).

    The model is the choose-one-per-SKU master over the whole grid (`m.choose`, `m.one`,
    `m.resource`), named `grid_mip`.
    """
    m = build_choice_master(np.asarray(costs), np.asarray(usage), np.asarray(rhs), names)
    m.name = "grid_mip"
    return m
