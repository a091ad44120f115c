"""A purchase plan built truck group by truck group around the LP relaxation.

A primal heuristic of `optimizer.plan_search.matrix_plan` (stage 2a). The LP relaxation of the
strong model is close to the optimum (500 SKUs x 26 periods: the best plans known lie
0.6-1% above it), but the whole MIP restricted to the order slots the LP opens is slow for
HiGHS: its first plan within 1% came after 14 s in one run and after 136 s in another, on
instances whose safety floors differed by 1e-10 units. The same neighbourhood cut by truck
group is ten MIPs of ~50 SKUs, each solved to a tight gap in seconds, and together they are
the whole neighbourhood but for the coupling rows, which they handle as follows.

Without the period budget and warehouse rows the model falls apart by truck group (a
supplier's SKUs share its trucks and nothing else). With them, each group gets a share of
the limits:

- the groups are dealt into `workers` streams (balanced by open slots), each stream solved in
  its own process; a stream's share of a limit is the LP plan's use by its groups plus an
  equal part of what the LP plan leaves unused, so the streams' shares add up to the limit;
- inside a stream the groups are solved one after the other (Gauss-Seidel): group g may use
  the stream's share less the use of the other groups of the stream, the groups already
  solved counted with their plan and those still to come with their LP plan;
- each group's MIP is `optimizer.plan_matrix`'s strong model of its SKUs, restricted to the
  slots its LP opens (y > 1e-6; widened by a period either side if that is infeasible), with
  the share as elastic budget and warehouse rows priced high (`PENALTY`), so a group whose
  share is too tight still returns a plan and shows by how much.

- then, in this process until the deadline (`polish_share` of the time), groups are solved
  again from their plan under what the other groups' plans leave of the limits: first those
  that overran their share (the other groups often left room), then the few whose MIPs
  ended farthest from their bound; a new group plan is kept when the whole plan's cost plus
  priced excess drops.

Every group's plan meets its own rules (floors, MOQ, packs, trucks), so the union meets every
rule but possibly the limits, where a group overran its share and the polish did not mend
it; the caller checks the union with `optimizer.plan.evaluate` like any other plan. The
result is a plan, never a bound: the restricted MIPs' bounds are not bounds of the whole
model.

Measured with `bench/bench_plan.py --skip-large` (500 x 26, seed 1, 2026-12-02, load 1.7-2.3)
side by side at a 60 s limit: the pipeline with this stage 0.90% above the LP bound in
54.2 s, without it 2.76% at the limit. Sibling instances (seeds 2 and 3, several runs at
60 s): 0.96-1.08% and 0.75-0.84%.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from formulations.lot_sizing import LotSizingData

_OPEN = 1e-6  # an LP y above this opens the order slot
# price of the elastic limit rows of a group MIP: per currency unit over a budget share, and
# per m3 over a warehouse share as a multiple of the median value per m3 of the SKUs (the
# 10 of `optimizer.plan_price` let a group overrun a tight share by 0.6 m3 when that saved it
# a truck; the union then broke the warehouse)
PENALTY = 100.0
# each group's MIP stops at this share of the caller's gap (0.2 x 1%: the groups' own gaps
# add up, and the neighbourhood itself sits ~0.6% above the LP bound)
GAP_SHARE = 0.2
# after the streams, this many groups besides those that overran their share are re-solved
# under what the others leave of the limits (those whose MIP ended farthest from its bound)
POLISH_MORE = 3
# the streams' pass ends within this many seconds whatever the time limit, so that a plan
# comes early and the polish (which stops at the gap) gets the rest (500 x 26 with a 60 s
# limit: ~43 s of pass after a 9 s LP; with 300 s the pass would otherwise take ~250 s
# before the first complete plan)
PASS_SECONDS = 50.0


@dataclass
class GroupOutcome:
    """One group's MIP: SKU count, open slots, HiGHS status, objective and bound (money, with
    the priced excess; NaN: none), excess over its share (budget money, warehouse m3)
    and wall seconds."""

    skus: int
    slots: int
    status: str
    objective: float
    bound: float
    over_budget: float
    over_space: float
    seconds: float


@dataclass
class GroupPlan:
    """Outcome of `group_plan`. x: order quantities (n, T), None when a group found no plan
    (or its process did not report in time); groups: a `GroupOutcome` per truck group (in
    the order of `optimizer.plan_decompose.truck_groups`, None for a group not solved);
    streams: how many processes ran; seconds: wall time; message: one line."""

    x: np.ndarray | None
    groups: list = field(default_factory=list)
    streams: int = 1
    seconds: float = 0.0
    message: str = ""


def lp_from_groups(data: LotSizingData, pm, time_limit: float | None = None):
    """The LP relaxation of `pm` (the whole model of `data`, `optimizer.plan_matrix`) solved
    from a basis put together from its truck groups' LPs: without the budget and warehouse
    rows the LP falls apart by group, so each group's optimal basis, with those rows basic,
    is an optimal basis of the whole LP without them, and the dual simplex goes on from it
    once the rows are in. 500 x 26: the ten group LPs take 2.8 s and the whole LP 2.6 s
    (804 iterations) from their basis, 6.1 s in all against 9.3 s for the whole LP without
    the rows and then with them. Returns the solved `highspy.Highs` (with every row), or None
    when a group LP is not optimal or a row of the whole model cannot be matched to exactly
    one group row; the caller then solves the whole LP itself.

    Rows are matched by their columns and coefficients (a weighted sum of the coefficients
    with random column weights, exact: a group's columns are a subsequence of the whole
    model's in the same order, so the sums are the same floats) and by their kind (<=, >=,
    =): the group models are built with the whole model's limits so that their big-M
    coefficients (capped by the budget) are the same, and their limit rows are left out."""
    import highspy

    from optimizer.plan_decompose import subset, truck_groups
    from optimizer.plan_matrix import build_plan_matrix, limit_rows, to_highs
    from optimizer.plan_search import _run

    rng = np.random.default_rng(0)
    weight = rng.random(pm.num_col) + 0.5

    def keys(A, cols, lo, up):
        A = A.tocsr().copy()
        A.data = A.data * weight[cols[A.indices]]
        kind = np.where(np.isinf(lo), 0, np.where(np.isinf(up), 1, 2))
        sides = 0.5772 * np.where(np.isfinite(lo), lo, 0.0) + 0.3183 * np.where(
            np.isfinite(up), up, 0.0)
        return np.asarray(A.sum(axis=1)).ravel() + sides, kind

    full_sum, full_kind = keys(pm.A, np.arange(pm.num_col), pm.row_lo, pm.row_up)
    by_kind = []  # per kind of row: (rows of that kind sorted by key, their sorted keys)
    for k in range(3):
        rows = np.flatnonzero(full_kind == k)
        rows = rows[np.argsort(full_sum[rows], kind="stable")]
        by_kind.append((rows, full_sum[rows]))

    def match(g_sum, g_kind):
        """Row of the whole model of each group row; None if one has no exact match."""
        out = np.full(g_sum.size, -1, dtype=np.int64)
        for k, (rows, sums) in enumerate(by_kind):
            mine = np.flatnonzero(g_kind == k)
            if not mine.size:
                continue
            if not rows.size:
                return None
            pos = np.minimum(np.searchsorted(sums, g_sum[mine]), rows.size - 1)
            if not np.array_equal(sums[pos], g_sum[mine]):
                return None
            out[mine] = rows[pos]
        return out

    col_status = np.full(pm.num_col, -1)
    row_status = np.full(pm.num_row, -1)
    T = data.T
    w_key = (pm.w_sku * T + pm.w_order) * T + pm.w_need
    w_sorted = np.argsort(w_key)
    for idx in truck_groups(data):
        g = build_plan_matrix(subset(data, idx, budget=data.budget, warehouse=data.warehouse),
                              strong=True)
        cols = np.full(g.num_col, -1)
        for name in ("x", "y", "n", "s", "b", "e"):
            mine, whole = getattr(g, name), getattr(pm, name)[idx]
            on = mine >= 0
            cols[mine[on]] = whole[on]
        on = g.v >= 0
        cols[g.v[on]] = pm.v[on]
        if g.w.size:
            want = (idx[g.w_sku] * T + g.w_order) * T + g.w_need
            pos = np.minimum(np.searchsorted(w_key[w_sorted], want), max(w_key.size - 1, 0))
            if not w_key.size or not np.array_equal(w_key[w_sorted][pos], want):
                return None
            cols[g.w] = pm.w[w_sorted[pos]]
        if (cols < 0).any():
            return None
        h = to_highs(g, relax=True, without_limits=True)
        _run(h, time_limit)
        if h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        basis = h.getBasis()
        col_status[cols] = [int(v) for v in basis.col_status]
        keep = np.ones(g.num_row, dtype=bool)
        keep[limit_rows(g)] = False
        g_sum, g_kind = keys(g.A, cols, g.row_lo, g.row_up)
        rows = match(g_sum[keep], g_kind[keep])
        # a row matched twice (two rows alike but for their bounds' values) or not at all
        if rows is None or (row_status[rows] >= 0).any() or np.unique(rows).size != rows.size:
            return None
        row_status[rows] = np.array([int(v) for v in basis.row_status])[keep]
    row_status[limit_rows(pm)] = int(highspy.HighsBasisStatus.kBasic)
    if (col_status < 0).any() or (row_status < 0).any():
        return None
    h = to_highs(pm, relax=True)
    basis = highspy.HighsBasis()
    basis.col_status = [highspy.HighsBasisStatus(int(v)) for v in col_status]
    basis.row_status = [highspy.HighsBasisStatus(int(v)) for v in row_status]
    basis.valid = True
    if h.setBasis(basis) != highspy.HighsStatus.kOk:
        return None
    _run(h, time_limit)
    return h


def _penalty(data: LotSizingData) -> tuple[float, float]:
    vol = data.unit_volume
    per_vol = data.unit_cost[vol > 0] / vol[vol > 0]
    return PENALTY, PENALTY * (float(np.median(per_vol)) if per_vol.size else 1.0)


def _deal(weights: np.ndarray, streams: int) -> list[list[int]]:
    """Indices dealt into `streams` lists, heaviest first to the lightest list."""
    out = [[] for _ in range(streams)]
    load = np.zeros(streams)
    for k in np.argsort(-weights, kind="stable"):
        j = int(np.argmin(load))
        out[j].append(int(k))
        load[j] += weights[k]
    return [s for s in out if s]


def _solve_group(data, idx, is_open, budget, space, penalty, gap, time_limit, start=None):
    """The group's restricted MIP under its shares (from the plan `start` of its SKUs, whose
    slots are then open too); (x (len(idx), T) or None, outcome)."""
    from optimizer.plan import widen_slots
    from optimizer.plan_decompose import subset
    from optimizer.plan_matrix import build_plan_matrix, orders_of, to_highs
    from optimizer.plan_search import MIP_OPTIONS, _give_start, _has_solution, _run

    t0 = time.perf_counter()
    sd = subset(data, idx, budget=budget, warehouse=space)
    slots = is_open if start is None else is_open | (start > 0)
    for _ in range(2):
        pm = build_plan_matrix(sd, strong=True, slots=slots, limit_penalty=penalty)
        h = to_highs(pm)
        for k, v in MIP_OPTIONS.items():
            h.setOptionValue(k, v)
        h.setOptionValue("mip_rel_gap", gap)
        if start is not None:
            _give_start(h, pm, sd, start)
        rest = None if time_limit is None else time_limit - (time.perf_counter() - t0)
        _run(h, None if rest is None else max(rest, 0.05))
        status = h.getModelStatus().name
        if _has_solution(h) or status != "kInfeasible":
            break
        slots = widen_slots(slots)
    info = h.getInfo()
    scale = data.money_scale
    x, ob, os_ = None, math.nan, math.nan
    if _has_solution(h):
        z = np.asarray(h.getSolution().col_value)
        x = orders_of(pm, sd, z)
        ob = float(z[pm.over_budget[pm.over_budget >= 0]].sum() * scale)
        os_ = float(z[pm.over_space[pm.over_space >= 0]].sum())
    return x, GroupOutcome(
        skus=int(idx.size), slots=int(slots.sum()), status=status,
        objective=info.objective_function_value * scale if x is not None else math.nan,
        bound=info.mip_dual_bound * scale if math.isfinite(info.mip_dual_bound) else math.nan,
        over_budget=ob, over_space=os_, seconds=time.perf_counter() - t0)


def _stream(data, parts, ks, x_lp, on_lp, y_lp, share_b, share_w, penalty, gap, deadline,
            report):
    """Solve the groups `ks` in turn under the stream's shares; `report(k, x, outcome)` after
    each. Returns early (without reporting the rest) when a group finds no plan. Time left
    before `deadline` goes to the `POLISH_MORE` groups whose MIPs ended farthest from their
    bound: solved again from their plan under the same shares, reported again when the
    stream's cost plus priced excess over its shares drops."""
    from optimizer.plan import _net_stock, evaluate
    from optimizer.plan_decompose import subset

    c, vol = data.unit_cost, data.unit_volume
    spend = {k: c[parts[k]] @ x_lp[parts[k]] for k in ks}
    space = {k: vol[parts[k]] @ on_lp[parts[k]] for k in ks}
    plans, outcomes = {}, {}
    weight = np.array([float((y_lp[parts[k]] > _OPEN).sum()) + 1.0 for k in ks])

    def others(k):
        """Use of the stream's other groups: their plan if solved, else their LP plan."""
        return (sum(spend[o] for o in ks if o != k), sum(space[o] for o in ks if o != k))

    def solve(k, limit, start=None):
        idx = parts[k]
        others_b, others_w = others(k)
        return _solve_group(data, idx, y_lp[idx] > _OPEN, share_b - others_b,
                            share_w - others_w, penalty, gap, limit, start=start)

    def use(k, x):
        idx = parts[k]
        return c[idx] @ x, vol[idx] @ np.maximum(_net_stock(subset(data, idx), x), 0.0)

    for j, k in enumerate(ks):
        limit = None
        if deadline is not None:
            limit = max((deadline - time.perf_counter()) * weight[j] / weight[j:].sum(), 0.05)
        x, oc = solve(k, limit)
        report(k, x, oc)
        if x is None:
            return
        plans[k], outcomes[k] = x, oc
        spend[k], space[k] = use(k, x)
    if deadline is None:
        return
    slack = {k: outcomes[k].objective - outcomes[k].bound for k in ks}
    queue = [k for k in sorted(ks, key=lambda k: -np.nan_to_num(slack[k])) if slack[k] > 0]
    queue = queue[:POLISH_MORE]

    def score(k, x):
        b, w = use(k, x)
        others_b, others_w = others(k)
        over_b = np.maximum(others_b + b - share_b, 0.0).sum()
        over_w = np.where(np.isfinite(share_w), np.maximum(others_w + w - share_w, 0.0),
                          0.0).sum()
        return (evaluate(subset(data, parts[k]), x)["cost"] + penalty[0] * over_b
                + penalty[1] * over_w)

    for j, k in enumerate(queue):
        now = time.perf_counter()
        if now > deadline - 1.0:
            break
        x, oc = solve(k, (deadline - now) / (len(queue) - j), start=plans[k])
        if x is not None and score(k, x) < score(k, plans[k]) - 1e-9 * abs(score(k, x)):
            plans[k], outcomes[k] = x, oc
            spend[k], space[k] = use(k, x)
            report(k, x, oc)


def group_plan(data: LotSizingData, x_lp: np.ndarray, y_lp: np.ndarray, *,
               deadline: float | None = None, gap: float = 1e-2, bound: float = math.nan,
               workers: int = 2, polish_share: float = 0.1) -> GroupPlan:
    """A plan of `data` from the LP solution (x_lp order quantities, y_lp order indicators,
    both (n, T)) by truck group (see the module docstring), done by `deadline`
    (time.perf_counter(); None: each group's MIP runs to its gap, `GAP_SHARE` x `gap`, and
    only the groups that overran their share are polished). The streams get (1 -
    `polish_share`) of the time, at most `PASS_SECONDS`; the polish goes on until the plan
    is within `gap` of `bound` (a lower bound in money, e.g. the LP's; NaN: never) or the
    deadline. `workers` processes (forked; 1 or no fork: all in this one). Returns a
    `GroupPlan`."""
    from optimizer.highs import _reap, fork_available, kill_delay
    from optimizer.plan import _net_stock
    from optimizer.plan_decompose import truck_groups

    t0 = time.perf_counter()
    polish_deadline = deadline
    if deadline is not None:  # the streams end first, then the polish across them
        deadline = t0 + min((1.0 - polish_share) * (deadline - t0), PASS_SECONDS)
    parts = truck_groups(data)
    x_lp = np.maximum(np.asarray(x_lp, dtype=float), 0.0)
    on_lp = np.maximum(_net_stock(data, x_lp), 0.0)
    c, vol = data.unit_cost, data.unit_volume
    B, W = data.budget, data.space_limit
    slack_b = np.maximum(B - c @ x_lp, 0.0)  # what the LP plan leaves, shared by the streams
    slack_w = np.maximum(W - vol @ on_lp, 0.0)
    weights = np.array([float((y_lp[p] > _OPEN).sum()) + 1.0 for p in parts])
    streams = _deal(weights, max(1, min(workers, len(parts))) if fork_available() else 1)
    penalty = _penalty(data)
    group_gap = GAP_SHARE * gap
    out = GroupPlan(None, [None] * len(parts), streams=len(streams))
    plans: dict[int, np.ndarray | None] = {}

    def shares(ks):
        idx = np.concatenate([parts[k] for k in ks])
        part = 1.0 / len(streams)
        return (c[idx] @ x_lp[idx] + part * slack_b, vol[idx] @ on_lp[idx] + part * slack_w)

    def keep(k, x, oc):
        plans[k] = x
        out.groups[k] = oc

    children = []  # (pid, reader) of each forked stream
    for ks in streams[1:]:
        child = _fork_stream(data, parts, ks, x_lp, on_lp, y_lp, *shares(ks), penalty,
                             group_gap, deadline)
        if child is None:  # no fork: this process does that stream too
            _stream(data, parts, ks, x_lp, on_lp, y_lp, *shares(ks), penalty, group_gap,
                    deadline, keep)
        else:
            children.append(child)
    _stream(data, parts, streams[0], x_lp, on_lp, y_lp, *shares(streams[0]), penalty,
            group_gap, deadline, keep)
    for pid, reader in children:
        try:
            while True:
                if deadline is not None:
                    # the child's last group may overrun its limit as HiGHS does; then it
                    # gets `kill_delay(0)` more seconds before what it has not sent is lost
                    wait = deadline + kill_delay(0.0) - time.perf_counter()
                    if not reader.poll(max(wait, 0.0)):
                        break
                msg = reader.recv()
                if msg is None or msg[0] == "failed":  # done, or the child's groups lost
                    break
                keep(*msg)
        except (EOFError, OSError):  # the child died: its groups have no plan
            pass
        reader.close()
        _reap(pid, 1.0)
    solved = sum(oc is not None for oc in out.groups)
    over = [k for k, oc in enumerate(out.groups) if oc is not None
            and (oc.over_budget > 1e-6 or oc.over_space > 1e-6)]
    polished = ""
    if all(plans.get(k) is not None for k in range(len(parts))):
        x = np.zeros((data.n, data.T))
        for k, p in enumerate(parts):
            x[p] = plans[k]
        if polish_deadline is None or time.perf_counter() < polish_deadline - 0.5:
            slack = [oc.objective - oc.bound if oc is not None and math.isfinite(oc.bound)
                     else 0.0 for oc in out.groups]
            x, polished = _polish(data, parts, x, y_lp, over, np.asarray(slack), penalty,
                                  group_gap, polish_deadline, gap, bound)
        out.x = x
    out.seconds = time.perf_counter() - t0
    out.message = (f"{len(parts)} truck groups in {len(streams)} process(es): "
                   f"{solved} solved" + (f", {len(over)} over their share" if over else "")
                   + ("" if out.x is not None else ", no plan for every group")
                   + polished + f" in {out.seconds:.1f} s")
    return out


def _polish(data, parts, x, y_lp, over, slack, penalty, group_gap, deadline, gap, bound):
    """Re-solve groups under what the others leave of the limits (their plans, not their
    shares), each from its own plan, in rounds until `deadline`: first the groups that
    overran their share (a tight share, often with room left by the others), then the
    `POLISH_MORE` others whose MIPs stopped farthest from their bound (`slack`, money); a
    round after a round that found something takes every group, farthest first, and so do
    up to two more rounds while the plan breaks a limit. A new group plan is kept when the
    whole plan's cost plus priced excess over the limits drops. Stops as soon as the plan
    meets every limit within `gap` of `bound`; with no deadline, after the overran groups
    unless a limit is still broken. Returns (x, note)."""
    from optimizer.plan import evaluate, limit_excess

    B, W = data.budget, data.space_limit
    c, vol = data.unit_cost, data.unit_volume

    def score(ev):
        over_b, over_w = limit_excess(data, ev)
        return ev["cost"] + penalty[0] * over_b + penalty[1] * over_w

    def done(ev):
        return (sum(limit_excess(data, ev)) <= 1e-9 and math.isfinite(bound)
                and ev["cost"] - bound <= gap * abs(ev["cost"]))

    ev = evaluate(data, x)
    before = score(ev)
    slack = np.asarray(slack, dtype=float).copy()
    queue = list(over)
    if deadline is not None:
        queue += [int(k) for k in np.argsort(-slack, kind="stable")
                  if k not in over and slack[k] > 0][:POLISH_MORE]
    tried = better = rounds = 0
    while queue and not done(ev):
        rounds += 1
        found = False
        for j, k in enumerate(queue):
            now = time.perf_counter()
            if (deadline is not None and now > deadline - 0.2) or done(ev):
                break
            idx = parts[k]
            own_b = c[idx] @ x[idx]
            own_w = vol[idx] @ ev["on"][idx]
            limit = None if deadline is None else (deadline - now) / (len(queue) - j)
            xg, oc = _solve_group(data, idx, y_lp[idx] > _OPEN, B - (ev["spend"] - own_b),
                                  W - (ev["space"] - own_w), penalty, group_gap, limit,
                                  start=x[idx])
            tried += 1
            if xg is None:
                continue
            if math.isfinite(oc.bound):
                slack[k] = oc.objective - oc.bound
            xn = x.copy()
            xn[idx] = xg
            evn = evaluate(data, xn)
            if score(evn) < score(ev) - 1e-9 * abs(score(ev)):
                x, ev = xn, evn
                better += 1
                found = True
        broken = sum(limit_excess(data, ev)) > 1e-9
        if deadline is not None and time.perf_counter() > deadline - 0.2:
            break
        if not (broken and rounds < 3) and (deadline is None or not found):
            break
        # every group now, farthest from its bound first (all of them while a limit is
        # broken: the others may make room for the group that overran)
        queue = [int(k) for k in np.argsort(-slack, kind="stable")
                 if slack[k] > 0 or broken]
    after = score(ev)
    note = (f"; {tried} re-solved under what the others leave in {rounds} round(s), "
            f"{better} better ({before:,.2f} -> {after:,.2f})" if tried else "")
    return x, note


def _fork_stream(data, parts, ks, x_lp, on_lp, y_lp, share_b, share_w, penalty, gap,
                 deadline):
    """Fork a child that solves the stream `ks` and sends (k, x, outcome) per group, then
    None (("failed", message) if it fails); (pid, reader), or None when fork fails."""
    from optimizer.highs import _NoFork, fork_child

    def body(conn):
        _stream(data, parts, ks, x_lp, on_lp, y_lp, share_b, share_w, penalty, gap,
                deadline, lambda *msg: conn.send(msg))

    try:
        return fork_child(body)
    except _NoFork:
        return None
