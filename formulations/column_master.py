"""Restricted master problems of the Dantzig-Wolfe decomposition (Pyomo builders only).

Two builders over candidate policies ("columns"):

- `build_aggregated_master`: one column per pricing round, each the whole portfolio's
  policy at that round's prices (cost C_t, use U_t of each coupling resource). Convex weights
  theta_t pick a combination; its LP duals are the resource prices for the next round.
  Artificial slacks with a large cost keep it feasible before enough columns exist.
- `build_choice_master`: the disaggregated master, one binary per (SKU, candidate policy),
  exactly one candidate per SKU, coupling rows on the resources. Its integer optimum is a
  plan; SKUs whose candidates all coincide are left out by the caller and enter through the
  right-hand sides.

Both take plain arrays; money is expected pre-scaled (thousands) by the caller so that HiGHS
sees well-scaled coefficients. No solving, no I/O here.
"""

from __future__ import annotations

import numpy as np
import pyomo.environ as pyo
from pyomo.core.expr.numeric_expr import LinearExpression


def build_aggregated_master(costs, usage, rhs, names, slack_cost: float) -> pyo.ConcreteModel:
    """LP: min sum_t C_t theta_t + slack_cost sum_k s_k
    s.t. sum_t U_kt theta_t - s_k <= b_k (one row per resource k), sum_t theta_t = 1.

    costs: (T,) cost of each round's portfolio; usage: (K, T); rhs: (K,); names: K row
    names (e.g. "budget"), used as component names so duals read by meaning.
    """
    costs = np.asarray(costs, dtype=float)
    usage = np.asarray(usage, dtype=float).reshape(len(names), costs.size)
    m = pyo.ConcreteModel(name="aggregated_master")
    m.T = pyo.RangeSet(0, costs.size - 1)
    m.K = pyo.Set(initialize=list(names), ordered=True)
    m.theta = pyo.Var(m.T, domain=pyo.NonNegativeReals)
    m.slack = pyo.Var(m.K, domain=pyo.NonNegativeReals)
    row = {name: k for k, name in enumerate(names)}
    # each coupling resource: the weighted portfolio may not use more than the limit
    m.resource = pyo.Constraint(m.K, rule=lambda m, k: sum(
        float(usage[row[k], t]) * m.theta[t] for t in m.T) - m.slack[k] <= float(rhs[row[k]]))
    # convexity: the weights form one portfolio
    m.convexity = pyo.Constraint(expr=sum(m.theta[t] for t in m.T) == 1)
    m.cost = pyo.Objective(expr=sum(float(costs[t]) * m.theta[t] for t in m.T)
                           + slack_cost * sum(m.slack[k] for k in m.K), sense=pyo.minimize)
    m.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
    return m


def build_choice_master(costs, usage, rhs, names, integer: bool = True) -> pyo.ConcreteModel:
    """Choose one candidate per SKU: min sum_ij c_ij y_ij s.t. sum_j y_ij = 1 for every SKU i,
    sum_ij u_kij y_ij <= b_k for every resource k, y binary (or in [0, 1] when not integer).

    costs: (n, J); usage: (K, n, J); rhs: (K,) after subtracting SKUs fixed by the caller.
    Built from arrays in one pass through Pyomo's linear-expression API.
    """
    costs = np.asarray(costs, dtype=float)
    n, J = costs.shape
    usage = np.asarray(usage, dtype=float).reshape(len(names), n, J)
    m = pyo.ConcreteModel(name="choice_master")
    m.I = pyo.RangeSet(0, n - 1)
    m.J = pyo.RangeSet(0, J - 1)
    m.choose = pyo.Var(m.I, m.J, domain=pyo.Binary if integer else pyo.UnitInterval)
    # exactly one candidate policy per SKU
    m.one = pyo.Constraint(m.I, rule=lambda m, i: sum(m.choose[i, j] for j in m.J) == 1)
    flat_vars = [m.choose[i, j] for i in range(n) for j in range(J)]
    m.K = pyo.Set(initialize=list(names), ordered=True)
    row = {name: k for k, name in enumerate(names)}

    def resource_rule(m, k):
        coefs = usage[row[k]].ravel()
        nz = np.flatnonzero(coefs)
        expr = LinearExpression(
            constant=0.0, linear_coefs=[float(coefs[q]) for q in nz],
            linear_vars=[flat_vars[q] for q in nz])
        return expr <= float(rhs[row[k]])

    # each coupling resource: total use of the chosen policies within the limit
    m.resource = pyo.Constraint(m.K, rule=resource_rule)
    c = costs.ravel()
    m.cost = pyo.Objective(expr=LinearExpression(
        constant=0.0, linear_coefs=[float(v) for v in c], linear_vars=flat_vars),
        sense=pyo.minimize)
    return m


def build_dual_master(cut_costs, cut_usage, rhs, names, price_upper, price_lower=None
                      ) -> pyo.ConcreteModel:
    """Kelley / boxstep model of the Lagrangian dual with K resource prices.

    max sigma - sum_k lambda_k b_k  s.t.  sigma <= C_t + sum_k lambda_k U_kt for every cut t,
    lower_k <= lambda_k <= upper_k. Each cut is one pricing round (C_t: cost, U_kt: resource
    use of the round's portfolio). The duals of `cut` are the convex weights of the
    aggregated primal master. Dimensions: cut_costs (T,), cut_usage (K, T), rhs (K,).
    """
    cut_costs = np.asarray(cut_costs, dtype=float)
    T = cut_costs.size
    cut_usage = np.asarray(cut_usage, dtype=float).reshape(len(names), T)
    upper = np.broadcast_to(np.asarray(price_upper, dtype=float), (len(names),))
    lower = np.zeros(len(names)) if price_lower is None else np.broadcast_to(
        np.asarray(price_lower, dtype=float), (len(names),))
    m = pyo.ConcreteModel(name="dual_master")
    m.K = pyo.Set(initialize=list(names), ordered=True)
    row = {name: k for k, name in enumerate(names)}
    m.price = pyo.Var(m.K, bounds=lambda m, k: (float(lower[row[k]]), float(upper[row[k]])))
    m.sigma = pyo.Var(domain=pyo.Reals)
    m.T = pyo.RangeSet(0, T - 1)
    # each pricing round bounds the dual function from above (a cutting plane)
    m.cut = pyo.Constraint(m.T, rule=lambda m, t: m.sigma <= float(cut_costs[t]) + sum(
        float(cut_usage[row[k], t]) * m.price[k] for k in m.K))
    m.value = pyo.Objective(expr=m.sigma - sum(float(rhs[row[k]]) * m.price[k] for k in m.K),
                            sense=pyo.maximize)
    m.dual = pyo.Suffix(direction=pyo.Suffix.IMPORT)
    return m
