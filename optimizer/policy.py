"""Single-item policies for every SKU of an instance, and their exact evaluation.

Models (all vectorised over SKUs):

- "eoq": the textbook formula planners use today (seed 003): Z = sqrt(2 D K / h) rounded up
  to MOQ and pack size, reorder level R = daily demand x lead time, no safety stock.
- "rz": seed 004's probabilistic (R, Z) model (its iteration; service-target variants),
  rounded up to MOQ and pack size afterwards as a planner would.
- "modified": seed 002's modified deterministic model carried over to the (R, Z) cost:
  delivery cost stepping with the vehicles an order needs, holding cost including the capital
  tied up (h + capital_rate x unit_cost), supplier reliability lengthening the lead time
  (`Instance.effective_lead_time_demand`), shortage loss weighted by the item's share of
  sales (p x sales_share / mean sales_share), MOQ and packs honoured exactly.
- "full" (default): everything the instance states (vehicles, capital, reliability, MOQ,
  packs) with the shortage cost as given; the exact single-item optimum.

Every policy is reported through `evaluate_plan`, which prices a (Z, R) per SKU with the
instance's full cost, so baselines and optimum are compared on one yardstick.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from optimizer.distributions import LeadTimeDemand
from optimizer.instance import Instance
from optimizer import single_item as si

MODELS = ("full", "modified", "rz", "eoq")


@dataclass(frozen=True)
class CostModel:
    """The instance's cost data as seen by one model (arrays per SKU)."""

    ltd: LeadTimeDemand
    holding: np.ndarray  # h, money / unit-year
    penalty: np.ndarray  # p, money / unit short (0 when none)
    units_per_vehicle: np.ndarray
    vehicle_cost: np.ndarray
    moq: np.ndarray
    multiple: np.ndarray


def cost_model(instance: Instance, model: str = "full") -> CostModel:
    """Per-SKU cost data for `model` (see module docstring)."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {', '.join(MODELS)}, got {model!r}")
    sc = instance.scenario
    if model in ("full", "modified"):
        mean, sd = instance.effective_lead_time_demand()
        holding = instance.holding_cost + sc.capital_rate * instance.unit_cost
        units, vcost = instance.vehicle_arrays()
    else:
        mean, sd = instance.lead_time_demand_mean, instance.lead_time_demand_sd
        holding = instance.holding_cost.copy()
        units, vcost = np.full(instance.n, np.inf), np.zeros(instance.n)
    penalty = np.nan_to_num(instance.shortage_cost, nan=0.0)
    if model == "modified":
        share = instance.sales_share
        if np.isfinite(share).any():
            weight = np.where(np.isfinite(share), share / np.nanmean(share), 1.0)
            penalty = penalty * weight
    ltd = LeadTimeDemand.build(instance.distribution, mean, sd)
    return CostModel(ltd, holding, penalty, units, vcost, instance.moq, instance.order_multiple)


def exact_cost_model(instance: Instance) -> CostModel:
    """The yardstick every plan is priced with: the "full" model."""
    return cost_model(instance, "full")


@dataclass(frozen=True)
class PolicyResult:
    """A (Z, R) policy per SKU with its exact annual costs and service (arrays per SKU).

    Costs are money per year; quantities in units; service levels are fractions.
    `notes` holds one string per SKU ("" when nothing special applied).
    """

    sku: np.ndarray
    order_quantity: np.ndarray
    reorder_point: np.ndarray
    safety_stock: np.ndarray
    orders_per_year: np.ndarray
    vehicles_per_order: np.ndarray
    ordering_cost: np.ndarray
    delivery_cost: np.ndarray
    holding_cost: np.ndarray
    shortage_cost: np.ndarray
    total_cost: np.ndarray
    cycle_service: np.ndarray
    fill_rate: np.ndarray
    average_inventory: np.ndarray  # units
    average_inventory_value: np.ndarray  # money
    notes: list[str] = field(default_factory=list)
    model: str = "full"

    @property
    def objective(self) -> float:
        return float(self.total_cost.sum())

    def to_frame(self) -> pd.DataFrame:
        cols = {name: getattr(self, name) for name in POLICY_COLUMNS}
        df = pd.DataFrame(cols)
        df["notes"] = self.notes if self.notes else [""] * len(df)
        return df


POLICY_COLUMNS = (
    "sku", "order_quantity", "reorder_point", "safety_stock", "orders_per_year",
    "vehicles_per_order", "ordering_cost", "delivery_cost", "holding_cost", "shortage_cost",
    "total_cost", "cycle_service", "fill_rate", "average_inventory", "average_inventory_value",
)


@dataclass(frozen=True)
class KPIs:
    """Portfolio indicators of a policy.

    average_inventory_value: sum c (Z/2 + R - E v)^+, money; turnover: annual cost of goods
    (sum c D) over average inventory value, per year; days_of_supply: days_per_year /
    turnover; fill_rate: demand-weighted fill rate (seed 001's KPIs).
    """

    average_inventory_value: float
    turnover: float
    days_of_supply: float
    fill_rate: float
    total_cost: float

    def to_dict(self) -> dict:
        return {k: float(v) for k, v in self.__dict__.items()}


def kpis(instance: Instance, result: PolicyResult) -> KPIs:
    value = float(result.average_inventory_value.sum())
    cogs = float((instance.unit_cost * instance.annual_demand).sum())
    turnover = cogs / value if value > 0 else float("inf")
    days = instance.scenario.days_per_year / turnover if turnover > 0 else float("inf")
    fill = float((instance.annual_demand * result.fill_rate).sum() / instance.annual_demand.sum())
    return KPIs(value, turnover, days, fill, float(result.total_cost.sum()))


def evaluate_plan(instance: Instance, order_quantity, reorder_point, notes=None,
                  model: str = "full", cm: CostModel | None = None) -> PolicyResult:
    """Exact per-SKU annual costs and service of given (Z, R), priced with the full model.

    ordering = K D / Z; delivery = c_v ceil(Z/u) D / Z; holding = h (Z/2 + R - E v) (seed 004
    eq. 1, h including capital tied up); shortage = p D b(R) / Z (seed 004 eq. 3);
    cycle service = P(v <= R); fill rate = 1 - b(R) / Z. `cm`: the instance's full cost
    model when already built (it depends on the SKUs, vehicles and capital rate only).
    """
    cm = exact_cost_model(instance) if cm is None else cm
    z = np.asarray(order_quantity, dtype=float)
    r = np.asarray(reorder_point, dtype=float)
    d = instance.annual_demand
    ltd = cm.ltd
    n = si._vehicles(z, cm.units_per_vehicle)
    loss = ltd.loss(r)
    ordering = instance.ordering_cost * d / z
    delivery = cm.vehicle_cost * n * d / z
    safety = r - ltd.mean
    holding = cm.holding * (z / 2.0 + safety)
    shortage = cm.penalty * d * loss / z
    avg_units = np.maximum(z / 2.0 + safety, 0.0)
    text = notes if notes is not None else [""] * instance.n
    return PolicyResult(
        sku=instance.sku, order_quantity=z, reorder_point=r, safety_stock=safety,
        orders_per_year=d / z, vehicles_per_order=n, ordering_cost=ordering,
        delivery_cost=delivery, holding_cost=holding, shortage_cost=shortage,
        total_cost=ordering + delivery + holding + shortage,
        cycle_service=ltd.cdf(r), fill_rate=np.clip(1.0 - loss / z, 0.0, 1.0),
        average_inventory=avg_units, average_inventory_value=avg_units * instance.unit_cost,
        notes=list(text), model=model)


def coefficients(instance: Instance, cm: CostModel, *, honour_limits: bool = True,
                 penalty=None, min_reorder=None, extra_hold_q=0.0, extra_hold_r=0.0,
                 extra_ordering=0.0, extra_penalty=0.0) -> si.CostCoefficients:
    """F's coefficients for the instance under cost model `cm`, with optional price shifts
    (the multi-SKU master's duals): h_q = h/2 + extra_hold_q, h_r = h + extra_hold_r, etc."""
    p = cm.penalty if penalty is None else penalty
    fixed = np.full(instance.n, np.nan) if min_reorder is None else min_reorder
    return si.CostCoefficients.build(
        demand=instance.annual_demand,
        ordering=instance.ordering_cost + extra_ordering,
        hold_q=cm.holding / 2.0 + extra_hold_q,
        hold_r=cm.holding + extra_hold_r,
        penalty=p + extra_penalty,
        units_per_vehicle=cm.units_per_vehicle if honour_limits else np.inf,
        vehicle_cost=cm.vehicle_cost if honour_limits else 0.0,
        moq=cm.moq if honour_limits else 0.0,
        multiple=cm.multiple if honour_limits else 0.0,
        min_reorder=fixed,
    )


def cycle_service_reorder_point(ltd: LeadTimeDemand, alpha) -> np.ndarray:
    """Smallest R >= 0 with P(v <= R) >= alpha (NaN where alpha is NaN)."""
    alpha = np.asarray(alpha, dtype=float)
    r = ltd.isf(np.clip(1.0 - np.nan_to_num(alpha, nan=0.5), 0.0, 1.0))
    r = np.maximum(np.nan_to_num(r, nan=0.0, neginf=0.0), 0.0)
    r = np.where(ltd.deterministic, ltd.mean, r)
    return np.where(np.isnan(alpha), np.nan, r)


def solve_with_service(coef: si.CostCoefficients, ltd: LeadTimeDemand, fill_target,
                       tol: float = 1e-3, max_iter: int = 25, penalty_guess=None,
                       bound_tol: float | None = None, warm=None, guess_width: float = 0.01,
                       guess_trusted=None, trusted_width: float = 2e-4
                       ) -> tuple[si.SingleItemSolution, np.ndarray]:
    """Optimum of F where SKUs with a fill-rate target (fill_target not NaN) must reach it.

    The target b(R) <= (1 - beta) Z is priced: for a shortage price P the optimum's fill
    rate rises with P, so the smallest P meeting the target (found by regula falsi on log P
    with the Illinois safeguard, vectorised over SKUs) gives the optimum of ordering +
    holding under the target (Lagrangian relaxation of b(R) <= (1 - beta) Z). SKUs whose
    own penalty already meets the target keep it. `penalty_guess` (per SKU, e.g. the
    previous pricing round's) narrows the first bracket to +-`guess_width`; a SKU whose
    guess lands on the wrong side tries a ladder of prices beyond it in one pass.
    `bound_tol` (pricing rounds of `solve`): also stop once the open SKUs together can move
    the Lagrangian bound by less than this share of the cost; None (single-item policies)
    pins every price to `tol`. `warm` = (Z, R, vehicles) of a nearby problem (the last
    pricing round's) starts every single-item solve there (see `single_item.optimize`).
    `guess_trusted` (per SKU, bool): guesses accurate to about `trusted_width`
    (`predict_floor_prices` converged); those SKUs are solved first at the guess raised by
    that width, the side meeting the target, and their lower end g / (1 + width) is taken
    on trust for the stopping test (it only estimates how far the bound could still rise;
    any price gives a valid bound), so most of them need one solve instead of three.
    Returns the solution and the penalty used per SKU.
    """
    fill_target = np.asarray(fill_target, dtype=float)
    penalty = coef.penalty.copy()
    need = np.isfinite(fill_target) & ~ltd.deterministic
    idx = np.flatnonzero(need)
    if warm is not None:
        warm = tuple(np.asarray(a, dtype=float) for a in warm)
    if idx.size == 0:
        return si.optimize(coef, ltd, warm=warm), penalty
    rest = np.flatnonzero(~need)
    size = coef.demand.shape[0]
    oz, orr, on, of = (np.zeros(size) for _ in range(4))
    onotes = np.zeros(size, dtype=np.int64)
    sub, sub_ltd, target = coef.take(idx), ltd.take(idx), fill_target[idx]

    # the solution at each SKU's current upper end (the side meeting the target)
    keep = {k: np.zeros(idx.size) for k in ("z", "r", "n", "f")}
    keep["notes"] = np.zeros(idx.size, dtype=np.int64)
    # each SKU's latest solution along the search, the start of its next solve
    near = [np.full(idx.size, np.nan) for _ in range(3)] if warm is None else \
        [a[idx].copy() for a in warm]

    def over_target(rows, s):
        """Fill rate minus target of solution `s` of the floor SKUs `rows` (one per entry)."""
        return 1.0 - sub_ltd.take(rows).loss(s.reorder_point) / s.order_quantity - target[rows]

    def record(rows, s, pick, meets):
        """Solution pick[j] of `s` is where SKU rows[j]'s next solve starts and, where
        meets[j], its solution at the upper end (the one returned)."""
        near[0][rows], near[1][rows] = s.order_quantity[pick], s.reorder_point[pick]
        near[2][rows] = s.vehicles_per_order[pick]
        at, pk = rows[meets], pick[meets]
        keep["z"][at], keep["r"][at] = s.order_quantity[pk], s.reorder_point[pk]
        keep["n"][at], keep["f"][at] = s.vehicles_per_order[pk], s.objective[pk]
        keep["notes"][at] = s.notes[pk]

    def fill_at(p, rows=None, with_rest=False):
        """Fill rate minus target of the floor SKUs `rows` solved at shortage prices p,
        recorded; with_rest, the SKUs without a floor are solved in the same call (one
        solve's fixed overhead instead of two; each SKU's answer is its own) and stored."""
        rows = np.arange(idx.size) if rows is None else rows
        if with_rest and rest.size:
            both = np.concatenate([rest, idx[rows]])
            start = tuple(np.concatenate([np.full(rest.size, np.nan) if warm is None
                                          else a[rest], b[rows]]) for a, b in
                          zip(warm if warm is not None else near, near))
            s_all = si.optimize(_with_penalty(coef.take(both), np.concatenate(
                [coef.penalty[rest], p])), ltd.take(both), warm=start)
            k = rest.size
            oz[rest], orr[rest] = s_all.order_quantity[:k], s_all.reorder_point[:k]
            on[rest], of[rest] = s_all.vehicles_per_order[:k], s_all.objective[:k]
            onotes[rest] = s_all.notes[:k]
            s = si.SingleItemSolution(s_all.order_quantity[k:], s_all.reorder_point[k:],
                                      s_all.vehicles_per_order[k:], s_all.objective[k:],
                                      s_all.notes[k:])
        else:
            s = si.optimize(_with_penalty(sub.take(rows), p), sub_ltd.take(rows),
                            warm=tuple(a[rows] for a in near))
        x = over_target(rows, s)
        record(rows, s, np.arange(rows.size), x >= 0)
        return x

    base_lo = np.maximum(sub.penalty, 1e-9 * sub.hold_r)
    lo = base_lo.copy()
    hi = np.maximum(lo, sub.hold_r) * 4.0
    guided = np.zeros(idx.size, dtype=bool)
    one_sided = np.zeros(idx.size, dtype=bool)  # trusted guesses (see the docstring)
    if penalty_guess is not None:
        # a narrow first bracket around the guess: in a re-pricing round nine SKUs in ten
        # land within 1% of it, and a bracket that already pins the price ends the search
        # in two passes where +-5% took five
        g = np.asarray(penalty_guess, dtype=float)[idx]
        guided = np.isfinite(g) & (g > lo)
        if guess_trusted is not None:
            one_sided = guided & np.asarray(guess_trusted, dtype=bool)[idx]
        width = np.where(one_sided, trusted_width, guess_width)
        lo = np.where(guided, np.maximum(lo, g / (1 + width)), lo)
        hi = np.where(guided, np.maximum(g * (1 + width), lo * (1 + np.minimum(width, 1e-3))),
                      hi)

    # a guided SKU whose first price lands on the wrong side tries these multiples of it
    # (up, or their inverses down) in one pass: the search's later passes are few-SKU
    # solves that cost their fixed overhead each (a warm 5,000-SKU round spent as long on
    # five such passes as on its first), and a ladder brackets the price in one
    rungs = 1.0 + np.array([3e-4, 1e-3, 2e-3, 4e-3, 7e-3, 9e-3, 1.1e-2, 1.4e-2, 2e-2, 4e-2,
                            0.1, 0.25])

    def ladder(parts):
        """One pass over several prices per SKU. parts: (rows, prices ascending per row
        (rows, w), whether each row's lo meets the target). Each SKU's bracket becomes the
        tightest the pass shows: hi the cheapest price meeting the target (its solution
        kept), lo the dearest one below it that misses; a SKU meeting at none of its prices
        keeps lo -> hi (met) or moves both ends to its dearest price (missed), whose
        widening follows."""
        parts = [p for p in parts if p[0].size]
        if not parts:
            return
        rows_all = np.concatenate([np.repeat(r, c.shape[1]) for r, c, _ in parts])
        s = si.optimize(_with_penalty(sub.take(rows_all), np.concatenate(
            [c.ravel() for _, c, _ in parts])), sub_ltd.take(rows_all),
            warm=tuple(a[rows_all] for a in near))
        over = over_target(rows_all, s)
        start = 0
        for rows, c, met in parts:
            k, w = c.shape
            f = over[start:start + k * w].reshape(k, w)
            meets = f >= 0
            found = meets.any(axis=1)
            j = np.where(found, np.argmax(meets, axis=1), w - 1)
            ar = np.arange(k)
            pick = start + ar * w + j
            start += k * w
            record(rows, s, pick, found)
            lo_old, f_lo_old = lo[rows].copy(), f_lo[rows].copy()
            below = np.maximum(j - 1, 0)
            hi[rows] = np.where(found, c[ar, j], np.where(met, lo_old, c[ar, -1]))
            f_hi[rows] = np.where(found, f[ar, j], np.where(met, f_lo_old, f[ar, -1]))
            # lo: the price below the first that meets (a miss); a met row meeting even at
            # its lowest price (its own) has lo there, which ends its search
            lo[rows] = np.where(found & (j > 0), c[ar, below],
                                np.where(found, np.where(met, c[ar, 0], lo_old), c[ar, -1]))
            f_lo[rows] = np.where(found & (j > 0), f[ar, below],
                                  np.where(found, np.where(met, f[ar, 0], f_lo_old),
                                           f[ar, -1]))

    f_first = fill_at(np.where(one_sided, hi, lo), with_rest=True)
    f_lo = np.where(one_sided, np.nan, f_first)  # NaN: a lower end taken on trust
    f_hi = np.where(one_sided, f_first, np.nan)
    # a trusted SKU that misses at its upper end: that end is a lower end, and it climbs
    # the ladder with the other guided SKUs that missed at theirs
    miss = np.flatnonzero(one_sided & (f_first < 0))
    lo[miss], f_lo[miss] = hi[miss], f_first[miss]
    # one pass for the rest of the first bracket: the guided SKUs try the ladder on the
    # side their first price pointed to, the unguided ones that missed their upper end
    up = np.flatnonzero(f_lo < 0)
    down = np.flatnonzero((f_lo >= 0) & (lo > base_lo) & guided)
    rise, plain = up[guided[up]], up[~guided[up]]
    ladder([(rise, lo[rise, None] * rungs, False), (plain, hi[plain, None], False),
            (down, np.maximum(np.column_stack([base_lo[down], lo[down, None] / rungs[::-1]]),
                              base_lo[down, None]), True)])
    done = f_lo >= 0  # the SKU's own shortage price already meets its target
    hi = np.where(done, lo, hi)
    f_hi = np.where(done, f_lo, f_hi)
    for _ in range(59):  # grow the bracket until every SKU meets its target at hi
        short = f_hi < 0
        if not short.any():
            break
        lo = np.where(short, hi, lo)
        f_lo = np.where(short, f_hi, f_lo)
        # x4 a pass (a guided SKU here has missed its whole ladder: its guess is >25% off)
        hi = np.where(short, hi * 4.0, hi)
        rows = np.flatnonzero(short)
        f_hi[rows] = fill_at(hi[rows], rows)
    # Illinois (regula falsi) on log P, keeping the bracket f(lo) < 0 <= f(hi); a SKU
    # whose same end is kept three times running (its fill rate jumps at a pack, vehicle
    # or Poisson step, where no secant lands) bisects instead
    xl, xh = np.log(lo), np.log(hi)
    excess = f_hi.copy()  # the fill excess at hi (f_hi itself is reweighted by Illinois)
    side = np.zeros(idx.size)
    run = np.zeros(idx.size)
    for _ in range(max_iter):
        # Stop a SKU when its price is pinned (relative tol) or when the rest of the search
        # cannot move its bound: the dual value is concave in P with slope -D x (x the
        # fill excess) at hi, so it can rise by at most D x (P_hi - P_lo) from here.
        gain = sub.demand * np.maximum(excess, 0.0) * (np.exp(xh) - np.exp(xl))
        open_ = (xh - xl > np.log1p(tol)) & (excess > 1e-6)
        if bound_tol is not None:
            open_ &= gain > bound_tol * keep["f"]
        # ... and stop the search once all the open SKUs together could move the summed
        # bound by less than bound_tol of the summed cost: a handful of SKUs whose fill
        # rate jumps would otherwise cost a dozen more rounds of the whole machinery
        if not open_.any() or (bound_tol is not None and gain[open_].sum()
                               <= bound_tol * np.abs(keep["f"]).sum()):
            break
        with np.errstate(divide="ignore", invalid="ignore"):
            x = np.where(f_hi != f_lo, xh - f_hi * (xh - xl) / (f_hi - f_lo), 0.5 * (xl + xh))
        x = np.where(np.isfinite(x) & (x > xl) & (x < xh) & (run < 3), x, 0.5 * (xl + xh))
        x = np.where(open_, x, xh)
        rows = np.flatnonzero(open_)
        f = np.zeros(idx.size)
        f[rows] = fill_at(np.exp(x[rows]), rows)
        up = open_ & (f >= 0)
        down = open_ & (f < 0)
        # Illinois: halve the stale end's weight when the same end is kept twice
        f_lo = np.where(up & (side == 1), 0.5 * f_lo, f_lo)
        f_hi = np.where(down & (side == -1), 0.5 * f_hi, f_hi)  # (only steers the secant)
        xh = np.where(up, x, xh)
        f_hi = np.where(up, f, f_hi)
        excess = np.where(up, f, excess)
        xl = np.where(down, x, xl)
        f_lo = np.where(down, f, f_lo)
        new_side = np.where(up, 1, np.where(down, -1, side))
        run = np.where(open_ & (new_side == side), run + 1, np.where(open_, 1, run))
        run = np.where(run >= 4, 0, run)  # after a bisection, back to the secant
        side = new_side
    hi = np.exp(xh)  # the feasible side of the bracket; its solution is in `keep`
    oz[idx], orr[idx], on[idx] = keep["z"], keep["r"], keep["n"]
    of[idx] = keep["f"]
    onotes[idx] = keep["notes"] | np.where(done, 0, si.NOTE_SERVICE_TARGET)
    penalty[idx] = hi
    return si.SingleItemSolution(oz, orr, on, of, onotes), penalty


def predict_floor_prices(new: si.CostCoefficients, ltd: LeadTimeDemand, fill_target, z, r,
                         penalty, iters: int = 4, rtol: float = 1e-7
                         ) -> tuple[np.ndarray, np.ndarray]:
    """Shortage prices at which binding fill-rate floors hold under coefficients `new`,
    predicted from a nearby solution (z, r, penalty), e.g. the last pricing round's, which
    met the same conditions under its own coefficients: money per unit short. Returns
    (prices, converged); NaN where not predicted.

    At a binding floor the optimum of F at shortage price P satisfies (module
    `single_item`; A = K + c_v n with the vehicle count n kept)

        b(R) = (1 - beta) Z,   h_r Z = P D S(R),   h_q Z^2 = (A + P b(R)) D,

    the floor, the R- and the Z-stationarity conditions. Newton's method on (Z, R, P)
    from the old solution solves them for the new h_q, h_r; where Z sits on a kink (the
    MOQ, a full vehicle, a pack grid) the third row holds Z instead, which reduces the
    step to the old price scaled by the change of h_r. `converged`: the residuals fell
    below `rtol` with Z inside its vehicle interval, and the price moved by less than half.
    A prediction only: the caller's search still brackets the price."""
    beta = np.asarray(fill_target, dtype=float)
    z0, r0, p0 = (np.asarray(a, dtype=float) for a in (z, r, penalty))
    out = np.full(z0.shape, np.nan)
    conv = np.zeros(z0.shape, dtype=bool)
    rows = np.flatnonzero(np.isfinite(beta) & ~ltd.deterministic & ~ltd.discrete
                          & (p0 > 0) & (z0 > 0))
    if rows.size == 0:
        return out, conv
    c, sub = new.take(rows), ltd.take(rows)
    zi, ri, pi = z0[rows], r0[rows], p0[rows]
    u = c.units_per_vehicle
    n = si._vehicles(zi, u)
    a = c.ordering + c.vehicle_cost * n
    lo = np.maximum(np.where(n > 0, (n - 1) * u, 0.0), c.moq)
    hi = np.where(n > 0, n * u, np.inf)
    short = 1.0 - beta[rows]
    fixed = ((c.moq > 0) & (zi <= c.moq * (1 + 1e-9))) | (c.multiple > 0) | (
        np.isfinite(u) & (np.abs(zi - n * u) <= 1e-9 * zi))
    hq, hr, d = c.hold_q, c.hold_r, c.demand
    res = np.full(rows.size, np.inf)
    with np.errstate(all="ignore"):
        for _ in range(iters):
            b, s, f = sub.loss(ri), sub.survival(ri), np.maximum(sub.density(ri), 1e-300)
            e = np.stack([b - short * zi, hr * zi - pi * d * s,
                          np.where(fixed, 0.0, hq * zi**2 - (a + pi * b) * d)], axis=1)
            res = np.max(np.abs(e) / np.stack([short * zi, hr * zi, hq * zi**2], axis=1),
                         axis=1)
            jac = np.zeros((rows.size, 3, 3))
            jac[:, 0, 0], jac[:, 0, 1] = -short, -s
            jac[:, 1, 0], jac[:, 1, 1], jac[:, 1, 2] = hr, pi * d * f, -d * s
            jac[:, 2, 0] = np.where(fixed, 1.0, 2.0 * hq * zi)
            jac[:, 2, 1] = np.where(fixed, 0.0, pi * d * s)
            jac[:, 2, 2] = np.where(fixed, 0.0, -b * d)
            good = np.all(np.isfinite(jac), axis=(1, 2)) & np.all(np.isfinite(e), axis=1)
            good[good] = np.abs(np.linalg.det(jac[good])) > 0
            step = np.zeros((rows.size, 3))
            if good.any():
                step[good] = np.linalg.solve(jac[good], -e[good][..., None])[..., 0]
            zi = np.clip(zi + step[:, 0], np.maximum(lo, 0.5 * zi), np.minimum(hi, 2.0 * zi))
            ri = ri + step[:, 1]
            pi = np.clip(pi + step[:, 2], 0.5 * pi, 2.0 * pi)
    out[rows] = pi
    conv[rows] = (res <= rtol) & np.isfinite(pi) & (pi > 0) & (np.abs(pi / p0[rows] - 1) < 0.5)
    return out, conv


def _with_penalty(coef: si.CostCoefficients, penalty) -> si.CostCoefficients:
    fields = {f: getattr(coef, f) for f in coef.__dataclass_fields__}
    fields["penalty"] = np.asarray(penalty, dtype=float)
    return si.CostCoefficients(**fields)


def _round_up_to_limits(z, moq, multiple):
    z = np.maximum(z, moq)
    m = np.where(multiple > 0, multiple, 1.0)
    return np.where(multiple > 0, np.ceil(z / m - 1e-9) * m, z)


def single_item_policy(instance: Instance, model: str = "full") -> PolicyResult:
    """The single-item policy of every SKU under `model` (see module docstring), priced
    with the instance's full cost by `evaluate_plan`."""
    cm = cost_model(instance, model)
    ltd = cm.ltd
    if model == "eoq":
        z = np.sqrt(2.0 * instance.annual_demand * instance.ordering_cost / cm.holding)
        z = _round_up_to_limits(np.maximum(z, 1e-9), cm.moq, cm.multiple)
        r = ltd.mean  # reorder level = daily demand x lead time (seed 003)
        return evaluate_plan(instance, z, r, model=model)
    honour = model in ("full", "modified")
    fixed = cycle_service_reorder_point(ltd, instance.cycle_service)
    coef = coefficients(instance, cm, honour_limits=honour, min_reorder=fixed)
    sol, _ = solve_with_service(coef, ltd, instance.fill_rate)
    z, r = sol.order_quantity, sol.reorder_point
    notes = sol.notes
    if not honour:
        z_round = _round_up_to_limits(z, cm.moq, cm.multiple)
        changed = z_round != z
        if changed.any():
            sub = coef.take(np.flatnonzero(changed))
            r = r.copy()
            r[changed] = si.best_reorder_point(sub, ltd.take(np.flatnonzero(changed)), z_round[changed])
            z = z_round
    notes = notes | np.where(np.isfinite(instance.cycle_service), si.NOTE_SERVICE_TARGET, 0)
    return evaluate_plan(instance, z, r, notes=si.describe_notes(notes), model=model)
