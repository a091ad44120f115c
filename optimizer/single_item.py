"""Exact single-item (R, Z) optimisation with vehicle steps, MOQ and order multiples.

One vectorised routine minimises, for every SKU at once, the expected annual cost

    F(Z, R) = (K + c_v n(Z)) D / Z  +  h_q Z  +  h_r (R - E v)  +  P D b(R) / Z

over order quantity Z (MOQ <= Z, Z a multiple of the pack size when one is given) and
reorder point R >= 0, where n(Z) = ceil(Z / u) vehicles of u units each carry an order
and b(R) = E (v - R)^+ is the expected shortage per cycle (seed 004, eqs. 2-4).

With h_q = h/2, h_r = h and no vehicles this is exactly seed 004's cost; its optimality
conditions (eqs. 5 and 6) are

    Z = sqrt(D (K + c_v n + P b(R)) / h_q),     P(v > R) = h_r Z / (P D),

and the seed's iteration alternates them starting from the EOQ. The same form with shifted
coefficients is the pricing problem of the multi-SKU master (a budget price lambda adds
lambda c to h_q and h_r, a fill-rate price adds to P, an order-count price adds to K), so
this module is both the single-item model and the decomposition's oracle.

Exactness: on each vehicle-count interval (n-1) u < Z <= n u the vehicle cost is a
constant per order, so the interval optimum is found by the seed's iteration with Z clipped
to the interval; whole packs are then the two multiples around it (the reduced cost
g(Z) = min_R F(Z, R) is unimodal on an interval). Intervals are scanned while a valid
lower bound on their cost is below the best cost found, so the result is the global
optimum over vehicle counts, not a clipped EOQ.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from optimizer.distributions import LeadTimeDemand

# Per-SKU notes, bit flags so that one int array carries them (combine with |).
NOTE_BOUNDARY = 1  # no interior optimum: seed 004's condition (7) fails, R at its lower end 0
NOTE_R_CLIPPED = 2  # the unconstrained reorder point was negative; R = 0
NOTE_MOQ = 4  # MOQ binds
NOTE_VEHICLE_SCAN_CAPPED = 8  # vehicle scan hit its step cap; best found, not proven
NOTE_NOT_CONVERGED = 16  # (R, Z) iteration hit its iteration cap
NOTE_SERVICE_TARGET = 32  # shortage price set to meet a service target
NOTE_NO_SHORTAGE_PRICE = 64  # stochastic SKU without shortage cost or target: R = 0

NOTE_TEXT = {
    NOTE_BOUNDARY: "no interior optimum (seed 004 condition 7 fails): boundary R=0",
    NOTE_R_CLIPPED: "reorder point clipped at 0",
    NOTE_MOQ: "MOQ binds",
    NOTE_VEHICLE_SCAN_CAPPED: "vehicle-count scan capped: best found, not proven",
    NOTE_NOT_CONVERGED: "(R, Z) iteration did not converge",
    NOTE_SERVICE_TARGET: "shortage price set to meet the service target",
    NOTE_NO_SHORTAGE_PRICE: "no shortage cost or service target: R = 0",
}


def describe_notes(codes: np.ndarray) -> list[str]:
    """Human-readable note per SKU ("" when none)."""
    codes = np.asarray(codes, dtype=np.int64)
    out = np.full(codes.shape, "", dtype=object)
    for bit, text in NOTE_TEXT.items():  # loop over note kinds, not SKUs
        has = (codes & bit) != 0
        if has.any():
            out[has] = np.where(out[has] == "", text, out[has] + "; " + text)
    return list(out)


@dataclass(frozen=True)
class CostCoefficients:
    """Per-SKU coefficients of F(Z, R) (see module docstring). All arrays of length n.

    demand: units / year; ordering: money / order; hold_q: money per unit of Z per year;
    hold_r: money per unit of (R - E v) per year; penalty: money per unit short (0 = none);
    units_per_vehicle: units (inf = no vehicle limit); vehicle_cost: money per vehicle per
    delivery; moq, multiple: units (0 = none); min_reorder: lower bound on R (a cycle-service
    floor; NaN or 0 = none, R >= 0 always).
    """

    demand: np.ndarray
    ordering: np.ndarray
    hold_q: np.ndarray
    hold_r: np.ndarray
    penalty: np.ndarray
    units_per_vehicle: np.ndarray
    vehicle_cost: np.ndarray
    moq: np.ndarray
    multiple: np.ndarray
    min_reorder: np.ndarray

    @classmethod
    def build(cls, demand, ordering, hold_q, hold_r, penalty=0.0, units_per_vehicle=np.inf,
              vehicle_cost=0.0, moq=0.0, multiple=0.0, min_reorder=np.nan) -> "CostCoefficients":
        arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (
            demand, ordering, hold_q, hold_r, penalty, units_per_vehicle, vehicle_cost, moq,
            multiple, min_reorder)))
        return cls(*(np.array(a, dtype=float) for a in arrays))

    def take(self, idx) -> "CostCoefficients":
        return CostCoefficients(*(getattr(self, f)[idx] for f in self.__dataclass_fields__))


@dataclass(frozen=True)
class SingleItemSolution:
    """Optimal (Z, R) per SKU and the value of F at it."""

    order_quantity: np.ndarray  # Z, units per order
    reorder_point: np.ndarray  # R, units
    vehicles_per_order: np.ndarray  # n(Z), 0 when no vehicle limit
    objective: np.ndarray  # F(Z, R), money / year
    notes: np.ndarray  # int bit flags, see NOTE_*


def _vehicles(z, u):
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(np.isfinite(u), np.ceil(z / u - 1e-9), 0.0)
    return np.maximum(n, np.where(np.isfinite(u), 1.0, 0.0))


def evaluate(coef: CostCoefficients, ltd: LeadTimeDemand, z, r) -> np.ndarray:
    """F(Z, R) in money per year for given Z, R (arrays broadcast per SKU)."""
    z = np.asarray(z, dtype=float)
    r = np.asarray(r, dtype=float)
    n = _vehicles(z, coef.units_per_vehicle)
    # Z = 0 marks an empty candidate (no whole pack fits a vehicle interval): cost inf
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        shortage = np.where(coef.penalty > 0, coef.penalty * coef.demand * ltd.loss(r) / z, 0.0)
        f = ((coef.ordering + coef.vehicle_cost * n) * coef.demand / z + coef.hold_q * z
             + coef.hold_r * (r - ltd.mean) + shortage)
    return np.where(z > 0, f, np.inf)


def best_reorder_point(coef: CostCoefficients, ltd: LeadTimeDemand, z, r_start=None
                       ) -> np.ndarray:
    """argmin_R F(Z, R) for given Z: P(v > R) = h_r Z / (P D) (seed 004 eq. 6), R >= 0.

    Deterministic lead-time demand gives R = E v; R is raised to `min_reorder` where set
    (F is convex in R, so clipping the unconstrained minimiser is exact). `r_start`: a
    nearby R where the quantile search begins (same answer).
    """
    z = np.asarray(z, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(coef.penalty > 0, coef.hold_r * z / (coef.penalty * coef.demand), 1.0)
    r = ltd.isf(np.clip(q, 0.0, 1.0), start=r_start)
    # q >= 1: F rises with R everywhere (h_r >= P D / Z >= P D P(v > R) / Z), so R goes to
    # its floor 0 even below the support's lower end (uniform lead-time demand)
    r = np.where(q >= 1.0, 0.0, r)
    r = np.maximum(np.nan_to_num(r, nan=0.0, neginf=0.0), 0.0)
    r = np.where(ltd.deterministic, ltd.mean, r)
    return np.maximum(r, np.nan_to_num(coef.min_reorder, nan=0.0))


def _interval_optimum(coef, ltd, lo, hi, n_fixed, tol=1e-9, max_iter=100, z_start=None,
                      r_start=None):
    """Continuous optimum of F over lo <= Z <= hi with n_fixed vehicles per order.

    Seed 004's iteration with Z clipped to the interval; then the boundary point R = 0
    (with its own best Z) is compared, since without condition (7) the iteration ends there
    and with it a second stationary point may exist. Returns Z, R, notes. `z_start`,
    `r_start` (NaN where unknown): a nearby solution, e.g. the last pricing round's, where
    the iteration starts (the fixed point is the same).
    """
    fixed_charge = coef.ordering + coef.vehicle_cost * n_fixed
    z = np.clip(np.sqrt(fixed_charge * coef.demand / coef.hold_q), lo, hi)
    if z_start is not None:
        z = np.where(np.isfinite(z_start) & (z_start > 0), np.clip(z_start, lo, hi), z)
    r_now = np.full(z.shape, np.nan) if r_start is None else np.array(r_start, dtype=float)
    notes = np.zeros(z.shape, dtype=np.int64)
    active = np.ones(z.shape, dtype=bool)

    def step(rows, zz, rs):
        """The seed's map Z -> sqrt(D (K + c_v n + P b(R*(Z))) / h_q), clipped; and R*(Z)."""
        sub, sub_ltd = coef.take(rows), ltd.take(rows)
        rr = best_reorder_point(sub, sub_ltd, zz, r_start=rs)
        b = np.where(sub.penalty > 0, sub.penalty * sub_ltd.loss(rr), 0.0)
        return np.clip(np.sqrt((fixed_charge[rows] + b) * sub.demand / sub.hold_q),
                       lo[rows], hi[rows]), rr

    # Steffensen's acceleration of the seed's fixed-point iteration: two plain steps, then
    # the Aitken extrapolation when it lands inside the bracket and moves towards the fixed
    # point (else the plain second step). Same fixed point, far fewer evaluations. The
    # fixed point is where g'(Z) = h_q - (A + P b(R*(Z))) D / Z^2 (envelope theorem)
    # changes sign, and sign g'(Z) = sign(Z - map(Z)); each step so narrows a bracket of
    # it, and a SKU whose steps leave the bracket (the plain map oscillates at large
    # shortage prices) is bisected instead: convergence for every SKU.
    b_lo, b_hi = lo.astype(float).copy(), hi.astype(float).copy()
    tried = np.zeros(z.shape, dtype=bool)

    def narrow(rows, at, image):
        up = image > at  # the fixed point lies above `at`
        b_lo[rows] = np.where(up, np.maximum(b_lo[rows], at), b_lo[rows])
        b_hi[rows] = np.where(up, b_hi[rows], np.minimum(b_hi[rows], at))

    for _ in range(max_iter):
        idx = np.flatnonzero(active)
        if idx.size == 0:
            break
        z0 = z[idx]
        z1, r1 = step(idx, z0, r_now[idx])
        z2, r2 = step(idx, z1, r1)
        r_now[idx] = r2
        narrow(idx, z0, z1)
        narrow(idx, z1, z2)
        bl, bh = b_lo[idx], b_hi[idx]
        denom = z2 - 2.0 * z1 + z0
        with np.errstate(divide="ignore", invalid="ignore"):
            acc = z0 - (z1 - z0) ** 2 / denom
        ok = np.isfinite(acc) & (np.abs(denom) > 1e-14 * np.maximum(z0, 1.0)) \
            & (acc >= bl) & (acc <= bh)
        mid = np.where(np.isfinite(bh), 0.5 * (bl + bh), np.maximum(z2, 2.0 * bl))
        # a plain step that creeps (under a tenth of the bracket: the map is near slope 1,
        # typically because g still falls at the interval's end) gives way to the
        # interval's end in the direction of travel, tried once, then to bisection
        creep = np.isfinite(bh) & (np.abs(z2 - z1) < 0.1 * (bh - bl))
        up = z2 > z1
        end = np.where(up, hi[idx], lo[idx])
        try_end = creep & ~tried[idx] & (np.where(up, bh, bl) == end)
        tried[idx] |= try_end
        plain = np.where(creep, np.where(try_end, end, mid), z2)
        z_new = np.where(ok, acc, np.where((plain >= bl) & (plain <= bh), plain, mid))
        done = (np.abs(z_new - z0) <= tol * np.maximum(z_new, 1.0)) \
            | (np.abs(z1 - z0) <= tol * np.maximum(z1, 1.0)) \
            | (np.isfinite(bh) & (bh - bl <= tol * np.maximum(bh, 1.0)))
        z_new = np.where(np.abs(z1 - z0) <= tol * np.maximum(z1, 1.0), z1, z_new)
        z[idx] = z_new
        active[idx[done]] = False
    r = best_reorder_point(coef, ltd, z, r_start=r_now)
    notes[active] |= NOTE_NOT_CONVERGED
    # boundary R = 0 with its best Z on the interval
    free = ~ltd.deterministic & (coef.penalty > 0)
    if free.any():
        r0 = np.nan_to_num(coef.min_reorder, nan=0.0)
        b0 = np.where(coef.penalty > 0, coef.penalty * ltd.loss(r0), 0.0)
        z0 = np.clip(np.sqrt((fixed_charge + b0) * coef.demand / coef.hold_q), lo, hi)
        f_it = evaluate(coef, ltd, z, r)
        f_b = evaluate(coef, ltd, z0, r0)
        take_b = free & (f_b < f_it - 1e-12 * np.abs(f_it))
        z = np.where(take_b, z0, z)
        r = np.where(take_b, r0, r)
    return z, r, notes


def _round_to_packs(coef, ltd, z_cont, lo, hi, r_near=None):
    """Best whole-pack Z near the continuous interval optimum, and its R and cost.

    lo, hi are the feasible Z range of the interval (already raised to MOQ). Candidates are
    the pack multiples just below and above z_cont, clipped into [lo, hi] on the pack grid.
    """
    m = coef.multiple
    has_pack = m > 0
    msafe = np.where(has_pack, m, 1.0)
    k_lo = np.ceil(lo / msafe - 1e-9)  # first pack count inside the interval
    k_hi = np.floor(hi / msafe + 1e-9)
    k_down = np.clip(np.floor(z_cont / msafe), k_lo, k_hi)
    k_up = np.clip(np.ceil(z_cont / msafe), k_lo, k_hi)
    cands = np.stack([np.where(has_pack, k_down * msafe, z_cont),
                      np.where(has_pack, k_up * msafe, z_cont)], axis=1)
    empty = has_pack & (k_lo > k_hi)  # no whole pack fits this vehicle interval
    rs = np.stack([best_reorder_point(coef, ltd, cands[:, j], r_start=r_near)
                   for j in range(2)], axis=1)
    costs = np.stack([evaluate(coef, ltd, cands[:, j], rs[:, j]) for j in range(2)], axis=1)
    j = np.argmin(costs, axis=1)
    rows = np.arange(z_cont.shape[0])
    cost = np.where(empty, np.inf, costs[rows, j])
    return cands[rows, j], rs[rows, j], cost


def _solve_interval(coef, ltd, n, u, z_start=None, r_start=None):
    """Optimum over the vehicle interval with n vehicles per order (n = 0: no vehicles);
    z_start, r_start: a nearby solution to start from (see `_interval_optimum`)."""
    with np.errstate(invalid="ignore"):
        lo = np.where(n > 0, (n - 1) * u, 0.0)
        hi = np.where(n > 0, n * u, np.inf)
    lo = np.maximum(lo, coef.moq)
    lo = np.maximum(lo, 1e-9)
    feasible = lo <= hi * (1 + 1e-12)
    hi = np.maximum(hi, lo)
    z_c, r_c, notes = _interval_optimum(coef, ltd, lo, hi, n, z_start=z_start,
                                        r_start=r_start)
    z, r, cost = _round_to_packs(coef, ltd, z_c, lo, hi, r_near=r_c)
    cost = np.where(feasible, cost, np.inf)
    return z, r, cost, notes


def _interval_lower_bound(coef, ltd, n, u, sku=None):
    """Valid lower bound of F over Z in ((n-1)u, nu], Z >= MOQ.

    F(Z, R*) = a / Z + h_q Z + T(Z) with a = (K + c_v n) D and the tail
    T(Z) = min_R [h_r (R - E v) + P D b(R) / Z]. For each R the bracket is affine in
    s = 1 / Z, so T is concave in s (a minimum of affine functions): on the interval it lies
    above its chord through the ends, T >= alpha + beta / Z with beta >= 0 (T falls as Z
    grows). Hence F >= (a + beta) / Z + h_q Z + alpha, minimised in closed form on the
    interval. Tighter than bounding T by its value at the right end alone (beta = 0), which
    left the intervals next to the best one to be solved in most pricing rounds; the bound
    holds for the whole-pack optimum too (rounding to packs only raises F).

    `sku` (optional, one id per (SKU, n) pair): where a pair follows the same SKU's pair
    for n - 1, its left end is that pair's right end, and the tail there is taken from it
    instead of solved again (the vehicle scan's pairs come SKU by SKU with n rising, so
    each end costs one reorder-point solve instead of two; same values).
    """
    lo = np.maximum((n - 1) * u, np.maximum(coef.moq, 1e-9))
    hi = np.maximum(n * u, lo)
    a = (coef.ordering + coef.vehicle_cost * n) * coef.demand

    def tail(z, rows=None):
        c, lt = (coef, ltd) if rows is None else (coef.take(rows), ltd.take(rows))
        r = best_reorder_point(c, lt, z)
        return c.hold_r * (r - lt.mean) + np.where(
            c.penalty > 0, c.penalty * c.demand * lt.loss(r) / z, 0.0)

    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        t_hi = tail(hi)
        shared = np.zeros(n.shape, dtype=bool)
        if sku is not None and n.size > 1:
            shared[1:] = (sku[1:] == sku[:-1]) & (n[1:] == n[:-1] + 1) & (lo[1:] == hi[:-1])
        if shared.any():
            t_lo = np.empty_like(t_hi)
            t_lo[1:][shared[1:]] = t_hi[:-1][shared[1:]]
            own = np.flatnonzero(~shared)
            t_lo[own] = tail(lo[own], own)
        else:
            t_lo = tail(lo)
        span = 1.0 / lo - 1.0 / hi
        beta = np.where(span > 0, np.maximum(t_lo - t_hi, 0.0) / span, 0.0)
        alpha = t_hi - beta / hi
        z = np.clip(np.sqrt((a + beta) / coef.hold_q), lo, hi)
        lb = (a + beta) / z + coef.hold_q * z + alpha
        # where the chord overflows (shortage prices of 1e20 and more, on the way to an
        # infeasibility proof) the right-end bound stands in: a NaN would prune the interval
        z0 = np.clip(np.sqrt(a / coef.hold_q), lo, hi)
        lb = np.where(np.isnan(lb), a / z0 + coef.hold_q * z0 + t_hi, lb)
    return np.where(n * u >= lo, lb, np.inf)


def optimize(coef: CostCoefficients, ltd: LeadTimeDemand, max_vehicle_steps: int = 4000,
             warm=None) -> SingleItemSolution:
    """Global minimum of F(Z, R) for every SKU (see module docstring). Vectorised over SKUs;
    the only Python loops run over iterations and vehicle counts.

    `warm` = (Z, R, vehicles per order) of a nearby problem (the last pricing round; NaN
    where unknown): the iterations start there and the vehicle scan starts from that
    vehicle count's interval, so a small change of the coefficients costs a few steps.
    The scan over every vehicle count whose lower bound beats the incumbent still runs, so
    the answer is the same global optimum."""
    size = coef.demand.shape[0]
    u = coef.units_per_vehicle
    has_vehicle = np.isfinite(u) & (coef.vehicle_cost > 0)
    wz = wr = wn = None
    if warm is not None:
        wz, wr, wn = (np.asarray(a, dtype=float) for a in warm)
    # a vehicle limit without a vehicle cost does not change F: treat as no step
    n0 = np.zeros(size)
    best_z, best_r = np.full(size, np.nan), np.full(size, np.nan)
    best_f, notes = np.full(size, np.inf), np.zeros(size, dtype=np.int64)
    # the no-vehicle interval: the whole answer for SKUs without vehicle steps, a first
    # incumbent for the others (not needed when the last round's interval gives one)
    first = ~has_vehicle if wn is None else ~(has_vehicle & np.isfinite(wn) & (wn >= 1)
                                              & np.isfinite(wz))
    if wn is None:
        first = np.ones(size, dtype=bool)
    rows = np.flatnonzero(first)
    if rows.size:
        sub0 = coef.take(rows)
        zz, rr, ff, nn = _solve_interval(
            sub0, ltd.take(rows), n0[rows], np.where(has_vehicle[rows], u[rows], np.inf),
            z_start=None if wz is None else np.where(has_vehicle[rows], np.nan, wz[rows]),
            r_start=None if wr is None else np.where(has_vehicle[rows], np.nan, wr[rows]))
        best_z[rows], best_r[rows], best_f[rows], notes[rows] = zz, rr, ff, nn
    idx = np.flatnonzero(has_vehicle)
    if idx.size:
        sub, sub_ltd, uu = coef.take(idx), ltd.take(idx), u[idx]
        # Start from the intervals around the continuous optimum (linearised vehicle cost),
        # so the incumbent is good before the scan prunes.
        z_lin = np.maximum(np.sqrt((sub.ordering + sub.vehicle_cost) * sub.demand / sub.hold_q),
                           sub.moq)
        centre = np.maximum(np.ceil(z_lin / uu), 1.0)
        bz = np.full(idx.size, np.nan)
        br = np.full(idx.size, np.nan)
        bf = np.full(idx.size, np.inf)
        bnotes = np.zeros(idx.size, dtype=np.int64)

        def consider(n, rows, zs=None, rs=None):
            """Solve interval n[j] of SKU rows[j] for all pairs at once (rows may repeat) and
            keep each SKU's best."""
            s, sl = sub.take(rows), sub_ltd.take(rows)
            z, r, f, nt = _solve_interval(s, sl, n, uu[rows], z_start=zs, r_start=rs)
            order = np.lexsort((f, rows))
            first = order[np.unique(rows[order], return_index=True)[1]]
            cand_rows = rows[first]
            better = f[first] < bf[cand_rows]
            sel, pick = cand_rows[better], first[better]
            bz[sel], br[sel], bf[sel], bnotes[sel] = z[pick], r[pick], f[pick], nt[pick]

        allrows = np.arange(idx.size)
        # the vehicle counts already solved per SKU (NaN: none): the scan below skips them,
        # as solving an interval again from another start gives the same optimum (on the
        # 10k re-plan sweep nine SKUs in ten re-solved their warm interval in the scan)
        solved = np.full((idx.size, 3), np.nan)
        known = np.zeros(idx.size, dtype=bool)
        if wn is not None:
            known = np.isfinite(wn[idx]) & (wn[idx] >= 1) & np.isfinite(wz[idx])
        if known.any():
            # the last solution's interval, from the last solution: usually still the best,
            # and a good incumbent for the scan's pruning either way
            kr = allrows[known]
            consider(wn[idx][known], kr, wz[idx][known], wr[idx][known])
            solved[kr, 0] = wn[idx][known]
        cold = allrows[~known]
        if cold.size:
            tried_n = [np.maximum(centre[cold] + off, 1.0) for off in (-1.0, 0.0, 1.0)]
            consider(np.concatenate(tried_n), np.tile(cold, 3))
            solved[cold] = np.stack(tried_n, axis=1)
        # Scan n = 1, 2, ... in blocks of vehicle counts, solving only the (SKU, n) pairs
        # whose interval lower bound beats the SKU's incumbent; a SKU stops once n u passes
        # the largest Z that could beat it: F >= h_q Z + h_r (0 - E v).
        z_cap = (bf + sub.hold_r * sub_ltd.mean) / sub.hold_q
        n_max = np.ceil(z_cap / uu) + 1.0
        block = 64
        capped = np.zeros(idx.size, dtype=bool)
        step = 1
        while True:
            # the cap tightens as the incumbents improve (the same bound, a lower F)
            n_max = np.minimum(n_max, np.ceil(((bf + sub.hold_r * sub_ltd.mean)
                                               / sub.hold_q) / uu) + 1.0)
            rows = np.flatnonzero(n_max >= step)
            if rows.size == 0:
                break
            if step > max_vehicle_steps:
                capped[rows] = True
                break
            ns = step + np.arange(block, dtype=float)
            # chunks of SKUs keep the (SKU, n) pair arrays to about a million entries
            for chunk in np.array_split(rows, max(1, rows.size * block // 1_000_000)):
                pr = np.repeat(chunk, block)
                pn = np.tile(ns, chunk.size)
                keep = pn <= n_max[pr]
                pr, pn = pr[keep], pn[keep]
                lb = _interval_lower_bound(sub.take(pr), sub_ltd.take(pr), pn, uu[pr], sku=pr)
                need = (lb < bf[pr] * (1 - 1e-12)) & ~np.any(solved[pr] == pn[:, None], axis=1)
                if need.any():
                    # start each interval from the SKU's incumbent clipped into it: an
                    # interval other than the best one has its optimum at the end nearest
                    # the best, so this is usually one step
                    consider(pn[need], pr[need], bz[pr[need]], br[pr[need]])
            step += block
            # past the first block only SKUs with many vehicle counts left are scanned:
            # wider blocks, fewer passes (each pass has a fixed cost of ~1 ms)
            block = min(2 * block, 1024)
        bnotes[capped] |= NOTE_VEHICLE_SCAN_CAPPED
        best_z[idx], best_r[idx], best_f[idx], notes[idx] = bz, br, bf, bnotes
    n_final = _vehicles(best_z, u)
    notes = notes | np.where((coef.moq > 0) & (best_z <= coef.moq * (1 + 1e-9)), NOTE_MOQ, 0)
    # R at its lower end while the R-derivative there is still negative in the interior
    # sense: the seed's condition for an interior optimum fails (or the quantile was < 0).
    free = ~ltd.deterministic & (coef.penalty > 0)
    at_zero = free & (best_r <= np.nan_to_num(coef.min_reorder, nan=0.0))
    if at_zero.any():
        with np.errstate(divide="ignore", invalid="ignore"):
            q = coef.hold_r * best_z / (coef.penalty * coef.demand)
        notes = notes | np.where(at_zero & (q >= 1.0), NOTE_BOUNDARY, 0)
        notes = notes | np.where(at_zero & (q < 1.0), NOTE_R_CLIPPED, 0)
    notes = notes | np.where(~(coef.min_reorder > 0) & ~ltd.deterministic
                             & ~(coef.penalty > 0), NOTE_NO_SHORTAGE_PRICE, 0)
    return SingleItemSolution(best_z, best_r, n_final, best_f, notes)
