"""Monte-Carlo check of (R, Z) plans: a daily-bucket simulation of every SKU at once.

`simulate(instance, Z, R)` runs the continuous-review (R, Z) policy of each SKU, day by day,
with every SKU (and every replication) held in flat numpy state arrays; the only Python loop
is over days. The simulated fill rate, cycle service, on-hand stock, orders and vehicle
loads are reported beside the analytical values of `optimizer.policy.evaluate_plan`, with
95% confidence half-widths across replications.

Model of one day t (all SKUs together)
---------------------------------------
1. Demand d_t occurs. Stock on hand at the start of the day serves it as far as it goes;
   the rest is backordered (nothing is lost). "Served immediately" = min(on hand, d_t).
2. End-of-day review: the inventory position P = on hand - backorders + on order is
   lowered by d_t. If P <= R an order is placed. Rule "nQ" (default): k orders of Z in one
   delivery, k the smallest integer with P + k Z > R (the (R, nQ) policy, whose inventory
   position after ordering is uniform on (R, R + Z] -- the assumption behind the analytical
   formulas). Rule "single": one Z per review, even if P stays at or below R. With daily
   demand well below Z the two coincide.
3. The order gets a lead time l (whole days): the lead time is drawn as
   N(lead_time_days, lead_time_sd_days) truncated to +-6 sd and at 0; with probability
   1 - supplier_on_time the delivery is late by one more nominal lead time (the reliability
   model of `Instance.effective_lead_time_demand`). The real number is turned into whole days
   by stochastic rounding (floor(x + U), U uniform), which keeps the mean exact and is the
   identity for whole-day lead times. The delivery is received at the end of day t + l
   (l = 0: the same evening), i.e. exactly l days after the order was placed; it first
   clears backorders.
4. On-hand stock is recorded at the end of the day (after receipts).

Because demand is reviewed only once a day, an order is placed on average about half a day
after the position actually crossed R: the stock-out exposure of the daily model is about
lead time + 1/2 day, not the lead time (the usual periodic-review effect). It lowers the
simulated fill rate by roughly (D / (2 days_per_year)) P(v > R) / Z against the analytical
value; tests keep daily demand small against the lead-time demand sd so this is small.

Daily demand (per SKU, mean mu = D / days_per_year, variance s^2 = sd_D^2 / days_per_year)
---------------------------------------------------------------------------------------------
- normal and gamma SKUs: gamma with that mean and variance (shape mu^2/s^2, scale s^2/mu).
  We use a gamma rather than a normal truncated at 0 because daily demand is very volatile
  (an annual CV of 0.3 is a daily CV of 5.7): truncating a normal there would multiply the
  mean several times over. The gamma keeps mean and variance of every horizon's demand
  exact; its skew is the price (lead-time demand is gamma, not normal, when the lead time is
  fixed).
- Poisson SKUs: Poisson(mu) (integer units; demand_sd is ignored, as in the analytical fit).
- uniform SKUs: uniform on mu -+ sqrt(3) s when that stays >= 0; otherwise (s > mu/sqrt(3))
  a day has no demand with probability 1 - p and is uniform on [0, c] with probability p,
  c = 1.5 (s^2 + mu^2) / mu, p = 2 mu / c -- same mean and variance, never negative (rather
  than clipping at 0, which would raise the mean).
- s = 0 (non-Poisson): mu every day (deterministic).

Measures (per SKU and replication, over the days after the warm-up)
-------------------------------------------------------------------
- fill_rate: units served immediately / units demanded (NaN when nothing was demanded).
- cycle_service: share of deliveries that arrived while no backorder was outstanding
  (net stock just before receipt >= 0) -- the event whose probability the analytical
  cycle service P(v <= R) gives. NaN when no delivery arrived.
- average_stock: mean end-of-day on-hand stock, units. (Taking end-of-day values matches
  E(net stock) = R + Z/2 - E v of the model; a within-day average would add about half a
  day's demand.)
- orders_per_year: orders placed per year (an nQ delivery counts once);
  vehicle_loads_per_year: sum over orders of ceil(quantity / units per vehicle) per year
  (0 where the SKU has no vehicle limit).

The initial state is a position uniform on (R, R + Z], all of it on hand, nothing on
order; `warmup_years` (default 1) is discarded and should exceed the longest lead time.

Engine: the SKUs of all replications are the columns of day x column blocks of
`BLOCK_DAYS` days; within a block nothing loops over days (for the default nQ rule). The
order days follow from the running demand (the position after review is P0 - C_t + Z K_t
with K_t a floor of C_t / Z), deliveries are kept as a list of events, and net stock,
service and stock statistics come from running sums and column sums over the block (see
`_simulate_columns`), a chunk of at most `CHUNK_COLUMNS` columns at a time (bounded
memory, grids that stay in cache). With drawn demand the block grids are float32 (the
running sums within one block of days: relative rounding ~1e-7; positions, net stock and
totals carried between blocks stay float64), which halves their memory traffic; a decision
at an exact tie (an order on one day or the next) can then go the other way, which changes
one SKU's path now and then, not any measure's expectation. Replayed demand keeps float64
grids, so `simulate_reference` reproduces it exactly. With `workers` > 1 the columns are split into contiguous
parts simulated in parallel (SKUs never interact): one in this process, the others in forked
worker processes.

Random numbers: daily demand comes from one SFC64 stream per (seed, replication, unit of
`_unit_width(n)` SKUs) (numpy SeedSequence spawn keys), consumed block after block; the
workers' parts end on unit boundaries, so results depend on the seed only, never on the
number of workers. Internally SKUs are sorted by sampler so each fills a contiguous column range
(results come back in the instance's order). Gamma draws with shape < 1 use Ahrens and
Dieter's GS algorithm, its first branch on whole day x SKU grids in float32 (see
`_gamma_block`). Lead-time noise is a counter-based hash of (seed, replication, SKU
position, day), so `simulate_reference` -- a plain per-SKU Python loop kept as the
readable specification and the benchmark baseline -- reproduces the same lead times and,
given the same demand (`demand=`), exactly the same results.
"""

from __future__ import annotations

import json
import math
import warnings
import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import special, stats

from optimizer.instance import GAMMA, NORMAL, POISSON, UNIFORM, Instance

BLOCK_DAYS = 64  # days of demand drawn per random-number block
LEAD_SD_CUT = 6.0  # lead-time normal truncated at +- this many sd
ORDER_RULES = ("nQ", "single")

SIM_COLUMNS = (
    "sku", "fill_rate", "fill_rate_ci", "cycle_service", "cycle_service_ci", "average_stock",
    "average_stock_ci", "orders_per_year", "vehicle_loads_per_year", "analytic_fill_rate",
    "analytic_cycle_service", "analytic_average_stock", "short",
)


# ---------------------------------------------------------------------------------------
# result


@dataclass(frozen=True, eq=False)
class SimulationResult:
    """Simulated service and stock of a plan, per SKU (arrays of length n).

    Each measure has its mean over replications and `<measure>_ci`, the 95% confidence
    half-width (Student t with replications - 1 degrees of freedom; NaN with one
    replication). `analytic_*` are `evaluate_plan`'s values for the same (Z, R).
    `short` flags SKUs whose simulated fill rate is significantly below the analytical one:
    fill_rate + fill_rate_ci < analytic_fill_rate - tolerance (with one replication the
    half-width counts as 0). `replicates` holds the per-replication arrays, shape
    (replications, n), under the measure names.
    """

    sku: np.ndarray
    order_quantity: np.ndarray
    reorder_point: np.ndarray
    fill_rate: np.ndarray
    fill_rate_ci: np.ndarray
    cycle_service: np.ndarray
    cycle_service_ci: np.ndarray
    average_stock: np.ndarray
    average_stock_ci: np.ndarray
    orders_per_year: np.ndarray
    orders_per_year_ci: np.ndarray
    vehicle_loads_per_year: np.ndarray
    vehicle_loads_per_year_ci: np.ndarray
    analytic_fill_rate: np.ndarray
    analytic_cycle_service: np.ndarray
    analytic_average_stock: np.ndarray
    analytic_orders_per_year: np.ndarray
    analytic_vehicle_loads_per_year: np.ndarray
    short: np.ndarray
    replicates: dict
    years: float
    warmup_years: float
    replications: int
    seed: int
    tolerance: float
    order_rule: str = "nQ"

    @property
    def n(self) -> int:
        return int(self.sku.shape[0])

    def to_frame(self) -> pd.DataFrame:
        """One row per SKU with the columns in `SIM_COLUMNS`."""
        df = pd.DataFrame({c: getattr(self, c) for c in SIM_COLUMNS})
        df["short"] = df["short"].astype(bool)
        return df

    def to_json(self) -> dict:
        """{"skus": [{column: value}, ...], "settings": {...}} with NaN written as None."""
        records = []
        for rec in self.to_frame().to_dict(orient="records"):
            out = {}
            for k, v in rec.items():
                if isinstance(v, (bool, np.bool_)):
                    out[k] = bool(v)
                elif isinstance(v, (float, np.floating)):
                    out[k] = float(v) if math.isfinite(v) else None
                else:
                    out[k] = v if not isinstance(v, np.generic) else v.item()
            records.append(out)
        settings = {"years": self.years, "warmup_years": self.warmup_years,
                    "replications": self.replications, "seed": self.seed,
                    "tolerance": self.tolerance, "order_rule": self.order_rule}
        return {"skus": records, "settings": settings}


# ---------------------------------------------------------------------------------------
# plans from JSON


def plan_from_json(doc, instance: Instance | None = None):
    """(sku ids, Z, R) from a plan document written by `optimizer policy|solve --format json`
    ({"skus": [{"sku", "order_quantity", "reorder_point", ...}, ...]}; a dict or its JSON
    text). With `instance` the arrays are aligned to `instance.sku` (SKUs of the plan that
    the instance lacks are ignored); a SKU of the instance missing from the plan, a
    duplicate, or a non-numeric Z/R raises ValueError naming the SKU."""
    if isinstance(doc, (str, bytes)):
        doc = json.loads(doc)
    if not isinstance(doc, dict) or not isinstance(doc.get("skus"), list):
        raise ValueError('plan document must be an object with a "skus" list')
    table: dict[str, tuple[float, float]] = {}
    order: list[str] = []
    for i, rec in enumerate(doc["skus"]):
        if not isinstance(rec, dict) or "sku" not in rec:
            raise ValueError(f'plan entry {i + 1} has no "sku"')
        sku = str(rec["sku"])
        if sku in table:
            raise ValueError(f"plan lists SKU {sku!r} twice")
        try:
            z = float(rec["order_quantity"])
            r = float(rec["reorder_point"])
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"plan entry for SKU {sku!r} needs numeric order_quantity and "
                             "reorder_point") from None
        if not (math.isfinite(z) and z > 0 and math.isfinite(r)):
            raise ValueError(f"plan entry for SKU {sku!r}: order_quantity must be > 0 and "
                             f"reorder_point finite (got {z}, {r})")
        table[sku] = (z, r)
        order.append(sku)
    skus = order if instance is None else [str(s) for s in instance.sku]
    missing = [s for s in skus if s not in table]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise ValueError(f"plan has no entry for SKU {missing[0]!r}{more}")
    z = np.array([table[s][0] for s in skus], dtype=float)
    r = np.array([table[s][1] for s in skus], dtype=float)
    return skus, z, r


def load_plan(path, instance: Instance | None = None):
    """`plan_from_json` on a JSON file."""
    return plan_from_json(json.loads(Path(path).read_text()), instance)


# ---------------------------------------------------------------------------------------
# parameters shared by the vectorised engine and the reference loop


@dataclass(frozen=True)
class _Params:
    days_total: int
    warm_days: int
    measured_years: float
    kind: np.ndarray  # demand sampler per SKU: 0 const, 1 gamma, 2 poisson, 3 uniform, 4 zero-inflated uniform
    a: np.ndarray  # sampler parameters (see _daily_params)
    b: np.ndarray
    lead: np.ndarray
    lead_sd: np.ndarray
    on_time: np.ndarray
    ring: int  # longest possible lead time + 1
    units_per_vehicle: np.ndarray


_CONST, _GAMMA, _POISSON, _UNIF, _ZUNIF = 0, 1, 2, 3, 4


def _daily_params(instance: Instance):
    days = instance.scenario.days_per_year
    mu = instance.annual_demand / days
    var = instance.demand_sd ** 2 / days
    code = instance.distribution
    kind = np.full(instance.n, _CONST, dtype=np.int8)
    a = mu.copy()
    b = np.zeros(instance.n)
    pois = (code == POISSON) & (mu > 0)
    kind[pois] = _POISSON
    random = (~pois) & (var > 0) & (mu > 0)
    gam = random & ((code == NORMAL) | (code == GAMMA))
    with np.errstate(divide="ignore", invalid="ignore"):
        kind[gam] = _GAMMA
        a = np.where(gam, mu * mu / var, a)  # shape
        b = np.where(gam, var / mu, b)  # scale
        uni = random & (code == UNIFORM)
        half = np.sqrt(3.0 * var)
        plain = uni & (mu - half >= 0)
        kind[plain] = _UNIF
        a = np.where(plain, mu - half, a)
        b = np.where(plain, 2.0 * half, b)  # width
        zi = uni & ~plain
        kind[zi] = _ZUNIF
        c = 1.5 * (var + mu * mu) / mu
        a = np.where(zi, 2.0 * mu / c, a)  # p
        b = np.where(zi, c, b)  # upper end
    return kind, a, b


def _params(instance: Instance, years: float, warmup_years: float) -> _Params:
    days = instance.scenario.days_per_year
    measured = int(round(years * days))
    warm = int(round(warmup_years * days))
    if measured < 1:
        raise ValueError("years must cover at least one day")
    if warm < 0:
        raise ValueError("warmup_years must be >= 0")
    kind, a, b = _daily_params(instance)
    lead = np.maximum(instance.lead_time_days, 0.0)
    sd = np.maximum(instance.lead_time_sd_days, 0.0)
    late = np.where(instance.supplier_on_time < 1.0, lead, 0.0)
    ring = int(np.ceil(np.max(lead + LEAD_SD_CUT * sd + late, initial=0.0))) + 2
    units, _ = instance.vehicle_arrays()
    return _Params(warm + measured, warm, measured / days, kind, a, b, lead, sd,
                   instance.supplier_on_time.astype(float), ring, units)


# counter-based noise for lead times: splitmix64 of (seed, replication, SKU position, day, stream)
_M1 = np.uint64(0x9E3779B97F4A7C15)
_M2 = np.uint64(0xBF58476D1CE4E5B9)
_M3 = np.uint64(0x94D049BB133111EB)
_KEY_SKU = np.uint64(0xD1B54A32D192ED03)
_KEY_DAY = np.uint64(0x8CB92BA72F3D8DD7)
_KEY_STREAM = np.uint64(0xABC98388FB8FAC03)


def _mix(x: np.ndarray) -> np.ndarray:
    x = x + _M1
    x = (x ^ (x >> np.uint64(30))) * _M2
    x = (x ^ (x >> np.uint64(27))) * _M3
    return x ^ (x >> np.uint64(31))


def _uniforms(seed: int, rep, sku_pos, day: int, stream: int) -> np.ndarray:
    """Uniforms in (0, 1), one per (rep, sku_pos) pair, a pure function of its arguments."""
    with np.errstate(over="ignore"):
        return _uniforms_raw(seed, rep, sku_pos, day, stream)


def _uniforms_raw(seed, rep, sku_pos, day, stream):
    base = _mix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
                ^ np.uint64(stream) * _KEY_STREAM)
    x = (np.asarray(rep, dtype=np.uint64) << np.uint64(40)) + np.asarray(sku_pos, dtype=np.uint64)
    x = _mix(_mix(x * _KEY_SKU ^ base) ^ (np.uint64(day) * _KEY_DAY))
    return ((x >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)


def _order_keys(seed: int, rep, sku_pos) -> np.ndarray:
    """Per (replication, SKU position) hash key of the lead-time noise."""
    with np.errstate(over="ignore"):
        base = _mix(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64) ^ _KEY_STREAM)
        x = (np.asarray(rep, dtype=np.uint64) << np.uint64(40)) + np.asarray(sku_pos, dtype=np.uint64)
        return _mix(x * _KEY_SKU ^ base)


_BITS21 = np.uint64((1 << 21) - 1)


def _lead_days(p: _Params, keys, sku_pos, day) -> np.ndarray:
    """Whole-day lead times of the orders placed on `day` (one day, or one per order) by
    SKUs at `sku_pos` with hash keys `keys` (`_order_keys`): three 21-bit uniforms from one
    64-bit hash of (key, day) drive the normal deviate, the late/on-time draw and the
    stochastic rounding. (A 21-bit uniform keeps the deviate within +-5.03, inside the
    +-LEAD_SD_CUT truncation.)"""
    with np.errstate(over="ignore"):
        h = _mix(keys ^ (np.asarray(day).astype(np.uint64) * _KEY_DAY))
    scale = 1.0 / 2097152.0

    def uniform(shift):
        u = ((h >> np.uint64(shift)) & _BITS21).astype(np.float64)
        u += 0.5
        u *= scale
        return u

    lead = p.lead[sku_pos]
    x = special.ndtri(uniform(0))
    x *= p.lead_sd[sku_pos]
    x += lead
    np.maximum(x, 0.0, out=x)
    np.add(x, lead, out=x, where=uniform(21) > p.on_time[sku_pos])  # late: one more lead time
    x += uniform(42)
    np.floor(x, out=x)
    np.minimum(x, p.ring - 1, out=x)
    return x.astype(np.int64)


def _vehicle_loads(q, units):
    """Vehicles per order: ceil(q / units per vehicle), at least 1; 0 without a vehicle
    limit (units = inf: q / inf = 0 gives -0, raised to 0 by the floor of 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        n = q / units
    n -= 1e-9
    np.ceil(n, out=n)
    return np.maximum(n, np.isfinite(units), out=n)


# ---------------------------------------------------------------------------------------
# demand


UNIT_SKUS = 1024  # fewest SKUs per random-number stream (one stream per replication and unit)
UNITS_PER_REPLICATION = 2  # ... and at most this many streams per replication, unless
UNIT_MAX_SKUS = 8192  # a unit would be wider than this


def _unit_width(n: int) -> int:
    """SKUs per random-number unit: wide enough to amortise the per-call overhead of numpy
    (a demand draw per unit and block costs some 50 numpy calls), narrow enough to share
    the columns between two workers (2 units per replication) and to keep a unit's day x
    column grids in cache (at most UNIT_MAX_SKUS). Depends on n only, never on the number
    of workers."""
    return max(UNIT_SKUS, min(-(-n // UNITS_PER_REPLICATION), UNIT_MAX_SKUS))


_GS_SURE = 2.0 ** -24  # below this X, GS acceptance cannot fail in float32 (see _gamma_block)
_GS_SECOND_ROUND = 1000  # rejected cells from which a second GS round beats numpy's sampler
_BIG_GAMMA = 5  # engine-only sampler code: gamma SKUs with daily shape >= 1


def _column(flat: np.ndarray, w: int) -> np.ndarray:
    """Column of flat indices into a C-ordered (rows, w) array: flat - (flat // w) w, which
    numpy computes with a fast division by a scalar, about 3x quicker than flat % w."""
    return flat - (flat // w) * w


def _gamma_ge1(rng, shape: np.ndarray) -> np.ndarray:
    """One gamma(shape) draw per entry of a flat array of shapes >= 1, scale 1.

    Marsaglia and Tsang (2000), "A simple method for generating gamma variables", ACM TOMS
    26(3): with d = shape - 1/3, c = 1/sqrt(9 d), x standard normal and v = (1 + c x)^3,
    d v is accepted when v > 0 and u < 1 - 0.0331 x^4 or log u < x^2/2 + d (1 - v + log v);
    about 2-5% of the proposals are drawn again. Written with whole-array draws rather than
    `Generator.standard_gamma(array)` because numpy holds the GIL in its per-element
    broadcasting path, which serialises worker threads; this loop draws with scalar
    parameters (GIL released) and costs the same on one thread."""
    d = shape - 1.0 / 3.0
    c = 1.0 / np.sqrt(9.0 * d)
    out = np.empty(shape.size)
    idx = np.arange(shape.size)  # entries still to draw
    dd, cc = d, c
    while idx.size:
        x = rng.standard_normal(idx.size)
        v = cc * x
        v += 1.0
        v3 = v * v
        v3 *= v
        u = rng.random(idx.size)
        x *= x
        ok = u < 1.0 - 0.0331 * (x * x)  # the squeeze: no logarithms for most proposals
        rest = np.flatnonzero(~ok & (v > 0.0))
        if rest.size:
            vr = v3[rest]
            ok[rest] = np.log(u[rest]) < 0.5 * x[rest] + dd[rest] * (1.0 - vr + np.log(vr))
        ok &= v > 0.0
        good = np.flatnonzero(ok)
        out[idx[good]] = dd[good] * v3[good]
        bad = np.flatnonzero(~ok)
        idx = idx[bad]
        dd, cc = dd[bad], cc[bad]
    return out


_F32 = np.float32
_TWO32 = 2.0 ** 32


def _small_gamma_consts(shape, scale):
    """Per-column constants of `_gamma_block` for shapes k < 1 (float32 rows): k, theta
    and log b, b = 1 + k/e."""
    shape = np.asarray(shape, dtype=float)
    scale = np.asarray(scale, dtype=float)
    return (shape.astype(_F32), scale.astype(_F32),
            np.log1p(shape / math.e).astype(_F32))


def _gs_round(rng, k, log_b, shape, where):
    """One round of algorithm GS (see `_gamma_block`) for every cell of a float32 array of
    `shape`, with shapes k < 1 and log b = log(1 + k/e) given per cell or per column (float32,
    broadcast against `shape`); `where(i)` maps flat cell indices to indices into k.
    Returns the draws and the flat indices of the rejected cells (to be drawn again)."""
    cells = math.prod(shape)
    j = rng.bit_generator.random_raw((cells + 1) // 2).view(np.uint32)[:cells]
    x = j.astype(_F32).reshape(shape)
    x *= _F32(1.0 / _TWO32)  # U = j / 2^32 rounded to float32 (j = 0 gives X = 0)
    with np.errstate(divide="ignore"):
        np.log(x, out=x)
    x += log_b  # log P
    x /= k
    np.exp(x, out=x)  # X of the first branch, every cell
    # cells whose acceptance test can fail, or that belong to the second branch (X > 1)
    xf = x.reshape(-1)
    test = np.flatnonzero(xf > _F32(_GS_SURE))
    xt = xf[test]
    jv = rng.bit_generator.random_raw((test.size + 1) // 2).view(np.uint32)[:test.size]
    v = jv.astype(_F32)
    v *= _F32(1.0 / _TWO32)
    e = np.negative(xt)
    np.exp(e, out=e)
    ok = v <= e
    above = xt > _F32(1.0)  # P > 1: the rare exponential-tail branch
    rare = np.flatnonzero(above | ~ok)  # one scan finds both rare cases
    if not rare.size:
        return x, rare
    hi = rare[above[rare]]
    if hi.size:  # b - P = b (1 - U) in float64: > 0 even for U next to 1
        kh = k[where(test[hi])].astype(float)
        one_minus_u = (_TWO32 - 0.5 - j[test[hi]]) / _TWO32
        xh = -np.log((1.0 + kh / math.e) * one_minus_u / kh)
        ok[hi] = np.log((jv[hi] + 0.5) / _TWO32) <= (kh - 1.0) * np.log(xh)
        xf[test[hi]] = xh
    return x, test[rare[~ok[rare]]]


def _gamma_block(rng, shape, scale, days, out=None, consts=None):
    """(days, n) gamma draws with per-column shape k and scale theta (into `out` if given).

    Shapes >= 1: `_gamma_ge1`. Shapes k < 1 (most daily demands: k = 1 / (days_per_year
    CV^2)): Ahrens and Dieter's algorithm GS (Computing 12 (1974) 223-246; Devroye 1986,
    IX.6). With b = 1 + k/e and P = b U, U uniform: if P <= 1, X = P^(1/k), accepted when a
    second uniform V <= e^-X; otherwise X = -log((b - P) / k), accepted when V <= X^(k-1).
    Acceptance is about 1 - 0.94 k; the rejected cells get a second round (`_gs_round` on
    them alone; numpy's own gamma sampler when they are few) and the few rejected again
    numpy's sampler.

    The first branch runs on every cell at once, in float32, as X = exp((log(U) + log(b)) / k)
    with U = j / 2^32 from a 32-bit random integer j (raw generator output, half the cost
    of a float uniform): whole-array operations with row constants, no per-cell gathers,
    and no cut: tiny draws keep their value (they underflow to 0 only below 1e-45). The
    acceptance test needs V only where X > 2^-24: below that e^-X rounds to 1 in float32
    and a float32 V <= 1 always passes (the test ignores a rejection probability below
    6e-8, as a float32 test does anyway). Those cells (about 17 k of them) draw V;
    the cells with P > 1 (about k/e of them) get the second branch in float64.

    Accuracy: only the rounding of U to float32 (to nearest, so unbiased) and of the
    exponent reach X; a draw differs from the float64 draw for the same U by a relative
    ~6e-8 / k (the power 1/k amplifies the rounding of U), at most ~3e-5 at the smallest
    daily shapes (k ~ 0.003), random in sign (log b is rounded to float32 from float64,
    a fixed relative error below 1e-7 of P). All far below any Monte-Carlo error of the
    measures. `consts`: `_small_gamma_consts` of the columns when all shapes are < 1
    (precomputed by the caller)."""
    shape = np.asarray(shape, dtype=float)
    scale = np.asarray(scale, dtype=float)
    n = shape.size
    if out is None:
        out = np.empty((days, n))
    big = shape >= 1.0
    if big.any():
        cols = np.flatnonzero(big)
        g = _gamma_ge1(rng, np.broadcast_to(shape[cols], (days, cols.size)).reshape(-1))
        g = g.reshape(days, cols.size)
        g *= scale[cols]
        if cols.size == n:
            out[...] = g
            return out
        out[:, cols] = g
    cols = np.flatnonzero(~big)
    w = cols.size
    if consts is None or w != n:
        consts = _small_gamma_consts(shape[cols], scale[cols])
    k_col, theta_col, log_b_col = consts
    x, bad = _gs_round(rng, k_col, log_b_col, (days, w), lambda i: _column(i, w))
    if bad.size:  # rejected proposals (of either branch) start afresh
        xf = x.reshape(-1)
        cb = _column(bad, w)
        kb = k_col[cb]
        if bad.size < _GS_SECOND_ROUND:  # a few: numpy's exact sampler at once
            xb = rng.standard_gamma(kb.astype(float))
        else:  # a second vectorised round, numpy's sampler for the few rejected again
            xb, bad2 = _gs_round(rng, kb, log_b_col[cb], kb.shape, lambda i: i)
            if bad2.size:
                xb[bad2] = rng.standard_gamma(kb[bad2].astype(float))
        xf[bad] = xb
    x *= theta_col
    if w == n:
        out[...] = x
    else:
        out[:, cols] = x
    return out


def _samplers(p: _Params) -> np.ndarray:
    """Sampler code per SKU: `p.kind`, with gamma SKUs of daily shape >= 1 told apart."""
    code = p.kind.astype(np.int8).copy()
    code[(p.kind == _GAMMA) & (p.a >= 1.0)] = _BIG_GAMMA
    return code


_POISSON_INVERSION_MAX = 10.0  # mean daily demand up to which Poisson draws use inversion


def _poisson_block(rng, lam, days: int, out: np.ndarray) -> None:
    """(days, n) Poisson(lam) counts into `out`. Columns with lam <= 10 (daily demand of
    slow movers): inversion of the CDF, X = min{k : U <= F(k)} with one float64 uniform per
    cell; most cells stop at U <= F(0) = e^-lam, the others walk up the CDF together (about
    lam steps). That is exact and several times cheaper than numpy's array-parameter
    sampler, which also holds the GIL. Larger means: numpy's sampler."""
    lam = np.asarray(lam, dtype=float)
    n = lam.size
    big = np.flatnonzero(lam > _POISSON_INVERSION_MAX)
    if big.size:
        out[:, big] = rng.poisson(np.broadcast_to(lam[big], (days, big.size)))
        if big.size == n:
            return
    cols = np.flatnonzero(lam <= _POISSON_INVERSION_MAX)
    w = cols.size
    lam_c = lam[cols]
    u = rng.random((days, w))
    p0 = np.exp(-lam_c)
    hit = np.flatnonzero(u > p0)  # X >= 1
    x = np.zeros(days * w)
    col = _column(hit, w)
    uh, lh = u.reshape(-1)[hit], lam_c[col]
    term = p0[col] * lh  # P(X = 1)
    cdf = p0[col] + term
    k = 1.0
    idx = np.arange(hit.size)  # entries still above the CDF
    while True:
        more = np.flatnonzero(uh > cdf)
        x[hit[idx]] = k  # entries that stop here keep k; the others are overwritten later
        if not more.size:
            break
        idx, uh, lh, term, cdf = idx[more], uh[more], lh[more], term[more], cdf[more]
        k += 1.0
        term *= lh / k
        cdf += term
    if w == n:
        out[...] = x.reshape(days, w)
    else:
        out[:, cols] = x.reshape(days, w)


def _draw(code: int, rng, a, b, days: int, out: np.ndarray, consts=None) -> None:
    """Daily demand of SKUs sharing one sampler into out (days, len(a))."""
    w = a.size
    if code == _CONST:
        out[...] = a
    elif code in (_GAMMA, _BIG_GAMMA):
        _gamma_block(rng, a, b, days, out, consts)
    elif code == _POISSON:
        _poisson_block(rng, a, days, out)
    elif code == _UNIF:
        out[...] = a + b * rng.random((days, w))
    else:
        u = rng.random((days, w))
        np.multiply(u, b / a, out=out)
        out[u >= a] = 0.0


_MIN_DRAW_CELLS = 4096  # a narrow unit draws this many values at least per call


class _Unit:
    """One random-number unit: a replication's SKUs [i0, i1) at column offset `off` of a
    part, its stream, its sampler groups and, for narrow units, a buffer of drawn days."""

    def __init__(self, off: int, groups: list, rng, width: int):
        self.off, self.groups, self.rng, self.width = off, groups, rng, width
        # days per call: one block for wide units (drawn straight into the block), many
        # blocks for narrow ones, whose per-call overhead would otherwise dominate
        blocks = -(-_MIN_DRAW_CELLS // (BLOCK_DAYS * width))
        self.span = BLOCK_DAYS * blocks if blocks > 1 else None
        self.buf = np.empty((0, width), dtype=GRID_DTYPE)  # the engine's grid type: no casts
        self.used = 0

    def _draw(self, days: int, out: np.ndarray) -> None:
        for code, a, b, lo, hi, consts in self.groups:
            _draw(code, self.rng, a, b, days, out[:, lo:hi], consts)

    def fill(self, out: np.ndarray) -> None:
        """The unit's next len(out) days into out (days, width)."""
        days = out.shape[0]
        if self.span is None:
            self._draw(days, out)
            return
        if self.buf.shape[0] - self.used < days:
            new = np.empty((self.span, self.width), dtype=self.buf.dtype)
            self._draw(self.span, new)
            self.buf = np.concatenate((self.buf[self.used:], new))
            self.used = 0
        out[...] = self.buf[self.used:self.used + days]
        self.used += days


class _Demand:
    """Daily demand for the engine columns [c0, c1) (replication-major, SKUs in sampler
    order), one block of days at a time.

    Drawn: the columns are cut into units (one replication, `_unit_width(n)` SKUs); each unit
    has its own SFC64 stream (SeedSequence(seed, spawn_key=(replication, unit))) consumed
    day after day (`_Unit`), so the numbers depend on the seed only, never on how columns
    are shared between workers or chunks. Given: sliced from the replayed array."""

    def __init__(self, p: _Params, code, n: int, seed: int, c0: int, c1: int, given=None,
                 columns=None):
        self.given, self.columns, self.n = given, columns, n
        self.units = []  # _Unit, or (column offset in the part, replication, i0, i1) if given
        col = c0
        width = _unit_width(n)
        while col < c1:
            rep, i0 = divmod(col, n)
            unit = i0 // width
            i1 = min((unit + 1) * width, n, i0 + (c1 - col))
            if given is not None:
                self.units.append((col - c0, rep, i0, i1))
            else:
                # runs of equal sampler code inside the unit (SKUs are sorted by code)
                cuts = np.flatnonzero(np.diff(code[i0:i1])) + 1
                edges = np.concatenate(([0], cuts, [i1 - i0]))
                groups = []
                for lo, hi in zip(edges[:-1], edges[1:]):
                    kind, a, b = int(code[i0 + lo]), p.a[i0 + lo:i0 + hi], p.b[i0 + lo:i0 + hi]
                    consts = _small_gamma_consts(a, b) if kind == _GAMMA else None
                    groups.append((kind, a, b, int(lo), int(hi), consts))
                ss = np.random.SeedSequence(seed, spawn_key=(rep, unit))
                rng = np.random.Generator(np.random.SFC64(ss))
                self.units.append(_Unit(col - c0, groups, rng, i1 - i0))
            col += i1 - i0

    def fill(self, out: np.ndarray, b0: int) -> None:
        """Demand of days b0 .. b0 + len(out) - 1 into out (days, part width); the blocks
        are asked for in order."""
        days = out.shape[0]
        if self.given is not None:
            for off, rep, i0, i1 in self.units:
                out[:, off:off + i1 - i0] = self.given[rep, b0:b0 + days][:, self.columns[i0:i1]]
            return
        for u in self.units:
            u.fill(out[:, u.off:u.off + u.width])


def _demand_array(demand, reps: int, days_total: int, n: int) -> np.ndarray:
    d = np.asarray(demand, dtype=float)
    if d.ndim == 2:
        d = np.broadcast_to(d, (reps,) + d.shape)
    if d.shape != (reps, days_total, n):
        raise ValueError(f"demand must have shape (days, n) = ({days_total}, {n}) or "
                         f"(replications, days, n) = ({reps}, {days_total}, {n}); got {d.shape}")
    # two reductions, no boolean temporaries; a NaN makes the minimum NaN and fails too
    if d.size and not (d.min() >= 0.0 and np.isfinite(d.max())):
        raise ValueError("demand must be finite and >= 0")
    return d


# ---------------------------------------------------------------------------------------
# the vectorised engine


def _initial_position(seed: int, reps: int, n: int, z, r, start=None,
                      positions=None) -> np.ndarray:
    if start is not None:
        return np.tile(np.asarray(start, dtype=float), reps)
    pos = np.arange(n) if positions is None else positions
    u = _uniforms(seed, np.repeat(np.arange(reps), n), np.tile(pos, reps), 0, 0)
    return np.tile(r, reps) + np.tile(z, reps) * (1.0 - u)  # uniform on (R, R + Z]


def _permuted(p: _Params, perm) -> _Params:
    fields = {f: getattr(p, f) for f in p.__dataclass_fields__}
    for f, v in fields.items():
        if isinstance(v, np.ndarray):
            fields[f] = v[perm]
    return _Params(**fields)


_TOTALS = ("demand", "served", "stock", "cycles", "cycles_ok", "orders", "loads")


def _run(p: _Params, z, r, reps: int, seed: int, demand, rule: str, workers: int, start):
    """Per-replication totals, each of shape (reps, n), in the instance's SKU order.

    Internally the SKUs are sorted by demand sampler so each sampler fills a contiguous
    column range; lead-time noise stays keyed on the original positions."""
    code = _samplers(p)
    perm = np.argsort(code, kind="stable")
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    p = _permuted(p, perm)
    z, r = z[perm], r[perm]
    if start is not None:
        start = start[perm]
    tot = _run_sorted(p, code[perm], z, r, reps, seed, demand, rule, workers, start, perm)
    return {k: v[:, inv] for k, v in tot.items()}


def _blocks(warm_days: int, days_total: int):
    """(first day, days, measured) of each block; a block never straddles the warm-up end,
    so every block is either discarded whole or measured whole."""
    out = []
    for lo, hi, measured in ((0, warm_days, False), (warm_days, days_total, True)):
        for b0 in range(lo, hi, BLOCK_DAYS):
            out.append((b0, min(BLOCK_DAYS, hi - b0), measured))
    return out


CHUNK_COLUMNS = 8192  # columns simulated together (more are split on unit boundaries)
GRID_DTYPE = np.float32  # day x column grids of a block with drawn demand (see the module doc)
PARALLEL_MIN_CELLS = 2_000_000  # column-days below which one process does all (~20 ms)


def _chunk_cuts(edges: np.ndarray) -> list:
    """Cut points among the unit `edges` (first to last) so that each chunk holds at most
    CHUNK_COLUMNS columns, or one unit when a unit alone is wider."""
    cuts = [int(edges[0])]
    for prev, e in zip(edges[:-1], edges[1:]):
        if e - cuts[-1] > CHUNK_COLUMNS and prev > cuts[-1]:
            cuts.append(int(prev))
    cuts.append(int(edges[-1]))
    return cuts


def _run_sorted(p: _Params, code, z, r, reps: int, seed: int, demand, rule: str, workers: int,
                start, positions):
    """Totals (reps, n) with the SKUs in sampler order. The columns (replication-major)
    are split into `workers` contiguous parts simulated independently (`_in_parallel`):
    SKUs never interact."""
    n = z.size
    m = reps * n
    cols = {
        "Z": np.tile(z, reps), "R": np.tile(r, reps),
        "units": np.tile(p.units_per_vehicle, reps),
        "pos": np.tile(np.arange(n), reps),  # position in the (sorted) parameter arrays
        "keys": _order_keys(seed, np.repeat(np.arange(reps), n), np.tile(positions, reps)),
        "P0": _initial_position(seed, reps, n, z, r, start, positions),
    }
    # whole-day lead times that never vary need no noise at all
    fixed = (p.lead_sd == 0) & (p.on_time >= 1.0) & (p.lead == np.floor(p.lead))
    lead_fixed = None
    if fixed.all():
        lead_fixed = np.tile(np.minimum(p.lead, p.ring - 1), reps).astype(np.int64)
    # parts end on unit boundaries, so every random stream belongs to exactly one part and the
    # numbers do not depend on the number of workers
    edges = np.unique(np.concatenate([np.arange(0, n, _unit_width(n)) + rep * n
                                      for rep in range(reps)] + [[m]]))
    parts = max(1, min(int(workers), edges.size - 1))
    if m * p.days_total < PARALLEL_MIN_CELLS:
        parts = 1  # starting a worker would cost more than it saves
    bounds = [int(edges[np.argmin(np.abs(edges - m * k / parts))]) for k in range(parts + 1)]
    bounds = sorted(set(bounds))
    parts = len(bounds) - 1

    def work(k):
        # a part runs in chunks of whole units of at most about CHUNK_COLUMNS columns: that
        # bounds the memory of the day x column grids and keeps them in cache
        cuts = _chunk_cuts(edges[(edges >= bounds[k]) & (edges <= bounds[k + 1])])
        out = []
        for c0, c1 in zip(cuts[:-1], cuts[1:]):
            src = _Demand(p, code, n, seed, c0, c1, demand, positions)
            sl = {name: v[c0:c1] for name, v in cols.items()}
            fl = None if lead_fixed is None else lead_fixed[c0:c1]
            out.append(_simulate_columns(p, sl, fl, src, rule))
        return {key: np.concatenate([t[key] for t in out]) for key in _TOTALS}

    res = _in_parallel(work, parts)
    return {k: np.concatenate([t[k] for t in res]).reshape(reps, n) for k in _TOTALS}


# forked workers inherit the loaded modules and the engine's arrays: nothing is pickled on the
# way in, only the per-column totals on the way back. Processes rather than threads: numpy
# holds the GIL in its per-call overhead and in a few routines (bincount, add.at), and on a
# busy machine two threads handing the GIL to each other ran slower than one thread.
_CAN_FORK = "fork" in mp.get_all_start_methods()
_PART_WORK = None  # the work function of the parts, set just before forking


def _run_part(k: int):
    return _PART_WORK(k)


def _in_parallel(work, parts: int) -> list:
    """[work(0), ..., work(parts - 1)]: part 0 in this process, the others in forked worker
    processes (worker threads where fork is unavailable)."""
    if parts == 1:
        return [work(0)]
    global _PART_WORK
    if _CAN_FORK and not mp.current_process().daemon:  # daemonic processes may not fork
        _PART_WORK = work
        try:
            with ProcessPoolExecutor(max_workers=parts - 1,
                                     mp_context=mp.get_context("fork")) as pool:
                futures = [pool.submit(_run_part, k) for k in range(1, parts)]
                first = work(0)
                return [first] + [f.result() for f in futures]
        finally:
            _PART_WORK = None
    with ThreadPoolExecutor(max_workers=parts) as pool:
        return list(pool.map(work, range(parts)))


def _cumsum_rows(x: np.ndarray, rows=None) -> None:
    """In-place running sum down axis 0. A loop over rows: each step is one contiguous
    vector add, several times faster than np.cumsum(axis=0) on a C-ordered block. `rows`:
    list(x) made once by a caller that sums the same buffer often (saves making views)."""
    rows = list(x) if rows is None else rows
    add = np.add
    for t in range(1, x.shape[0]):
        add(rows[t - 1], rows[t], out=rows[t])


_WARMED = [0]  # bytes of the largest block this process has allocated and freed


def _warm_allocator(nbytes: int) -> None:
    """Allocate and free one block of `nbytes` (once per process and size). glibc's malloc
    then raises its adaptive mmap threshold to that size and serves the engine's per-block
    temporaries (1-4 MB: random words, index arrays of the day x column grids) from its heap,
    instead of mapping and faulting in fresh pages for each. Measured on 10,000 SKUs x 10
    years with float32 grids: ~130,000 page faults and 0.12-0.20 s of system time per run
    without it, none with it. A harmless allocation elsewhere."""
    if nbytes > _WARMED[0]:
        np.empty(nbytes, dtype=np.uint8)  # never touched; freed at once
        _WARMED[0] = nbytes


def _simulate_columns(p: _Params, c: dict, lead_fixed, src: _Demand, rule: str) -> dict:
    """Simulate the columns of one part, a block of days at a time. Returns totals per column.

    Per block of days t = 0, 1, ... (no loop over days for the nQ rule), with P0 the
    inventory position and N0 the net stock at the end of the previous block:
    - y_t = C_t - s, C_t the running demand since the block start and s = P0 - R (nQ) or
      0 (single). Under (R, nQ) the position after the day-t review is P0 - C_t + Z K_t with
      K_t = max(0, floor(y_t / Z) + 1) orders of Z so far in the block, so the order days
      are where floor(y_t / Z) steps up and the quantity is the step times Z. (Rule
      "single": at most one Z a day, which depends on the path, so a short loop over the
      block's days decides the orders.)
    - Orders get lead times (hash of SKU and day) and join the list of pending deliveries.
    - Deliveries due in the block are added onto a day x column grid A (kept zero elsewhere);
      N0 - s plus its running sum down the days, minus y_t, is the net stock. Stock is the
      column sum of its positive part; fill and cycle service come from the delivery events
      (net stock just before each receipt) and the backorders at the block ends.
    """
    Z, R = c["Z"], c["R"]
    w = Z.size
    P = c["P0"].copy()  # inventory position at the end of the previous block
    net0 = P.copy()  # net stock then (all on hand at the start)
    B = BLOCK_DAYS
    _warm_allocator(16 * B * w)  # room for the block's largest temporaries (int64 indices)
    # grids in float32 for drawn demand (see GRID_DTYPE), float64 for replayed demand
    dt = np.float64 if src.given is not None else GRID_DTYPE
    Zg = Z.astype(dt)
    Y = np.empty((B, w), dtype=dt)
    A = np.zeros((B, w), dtype=dt)
    W = np.empty((B, w), dtype=dt)
    E = np.empty((B, w), dtype=bool)
    zero = np.zeros(w, dtype=dt)  # np.maximum against a zero row: several times faster than 0.0
    y_rows, w_rows, a_rows = list(Y), list(W), list(A)  # row views, made once
    pend_day = np.empty(0, dtype=np.int64)
    pend_col = np.empty(0, dtype=np.int64)
    pend_q = np.empty(0)
    tot = {k: np.zeros(w) for k in _TOTALS}
    for b0, days, measured in _blocks(p.warm_days, p.days_total):
        Yb, Wb, Eb = Y[:days], W[:days], E[:days]
        src.fill(Yb, b0)  # daily demand
        # --- orders placed in the block
        if rule == "nQ":
            shift = P - R
            Yb[0] -= shift
            _cumsum_rows(Yb, y_rows)  # y_t: an order is due at y_t >= 0, k Z at y_t >= (k - 1) Z
            np.divide(Yb, Zg, out=Wb)
            np.floor(Wb, out=Wb)
            np.not_equal(Wb[1:], Wb[:-1], out=Eb[1:])
            np.greater_equal(Wb[0], zero, out=Eb[0])
            flat = np.flatnonzero(Eb)
            steps = Wb.reshape(-1)[flat]
            keep = steps >= 0.0  # a step between negative levels is no order
            if not keep.all():
                flat, steps = flat[keep], steps[keep]
            t = flat // w
            col = flat - t * w
            before = np.where(t > 0, Wb.reshape(-1)[flat - w], -1.0)  # (t = 0: wraps, unused)
            q = (steps - np.maximum(before, -1.0)) * Z[col]
        else:
            shift = zero
            pos = P.copy()
            for d in range(days):
                np.subtract(pos, Yb[d], out=pos)
                np.less_equal(pos, R, out=Eb[d])
                np.add(pos, Z, out=pos, where=Eb[d])
            _cumsum_rows(Yb, y_rows)
            flat = np.flatnonzero(Eb)
            t = flat // w
            col = flat - t * w
            q = Z[col]
        demand = Yb[-1] + shift  # the block's demand per column
        P -= demand
        P += np.bincount(col, q, minlength=w)
        # --- lead times; deliveries join the pending list
        day = t + b0
        if lead_fixed is not None:
            lead = lead_fixed[col]
        else:
            lead = _lead_days(p, c["keys"][col], c["pos"][col], day)
        if measured:
            tot["orders"] += np.bincount(col, minlength=w)
            tot["loads"] += np.bincount(col, _vehicle_loads(q, c["units"][col]), minlength=w)
        pend_day = np.concatenate((pend_day, day + lead))
        pend_col = np.concatenate((pend_col, col))
        pend_q = np.concatenate((pend_q, q))
        due = pend_day < b0 + days
        ta, ca, qa = pend_day[due] - b0, pend_col[due], pend_q[due]
        keep = ~due
        pend_day, pend_col, pend_q = pend_day[keep], pend_col[keep], pend_q[keep]
        # --- receipts and net stock: net_t = N0 - s + receipts up to t - y_t
        ia = ta * w + ca
        a_flat = A.reshape(-1)  # all zero between blocks: only the receipts are set
        np.add.at(a_flat, ia, qa)
        aday = a_flat[ia]  # all units received that day by that column
        np.add(A[0], net0 - shift, out=Wb[0])
        add = np.add
        for d in range(1, days):
            add(w_rows[d - 1], a_rows[d], out=w_rows[d])
        a_flat[ia] = 0.0
        np.subtract(Wb, Yb, out=Wb)  # net stock at the end of each day
        net1 = Wb[-1].astype(float)
        if measured:
            tot["demand"] += demand
            # units not served at once = rise in backorders + backorders cleared by receipts;
            # a day's receipts clear min(received, backorders just before), shared pro rata
            # between that day's deliveries
            pre = Wb.reshape(-1)[ia] - aday  # net stock just before the receipt
            cleared = np.minimum(aday, np.maximum(-pre, 0.0)) * (qa / aday)
            short = np.maximum(-net1, 0.0) - np.maximum(-net0, 0.0)
            short += np.bincount(ca, cleared, minlength=w)
            tot["served"] -= short
            tot["cycles"] += np.bincount(ca, minlength=w)
            tot["cycles_ok"] += np.bincount(ca, pre >= 0.0, minlength=w)
            np.maximum(Wb, zero, out=Wb)
            tot["stock"] += Wb.sum(axis=0)
        net0 = net1
    tot["served"] += tot["demand"]
    return tot


def _measures(tot: dict, p: _Params) -> dict:
    measured_days = p.days_total - p.warm_days
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "fill_rate": np.where(tot["demand"] > 0, tot["served"] / tot["demand"], np.nan),
            "cycle_service": np.where(tot["cycles"] > 0, tot["cycles_ok"] / tot["cycles"], np.nan),
            "average_stock": tot["stock"] / measured_days,
            "orders_per_year": tot["orders"] / p.measured_years,
            "vehicle_loads_per_year": tot["loads"] / p.measured_years,
        }


def _mean_ci(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over replications (axis 0) and 95% t half-width (NaN with < 2 values)."""
    cnt = np.sum(np.isfinite(x), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(x, axis=0)
        sd = np.nanstd(x, axis=0, ddof=1) if x.shape[0] > 1 else np.full(x.shape[1], np.nan)
        tq = stats.t.ppf(0.975, np.maximum(cnt - 1, 1))
        half = np.where(cnt > 1, tq * sd / np.sqrt(np.maximum(cnt, 1)), np.nan)
    return mean, half


def _check_plan(instance: Instance, order_quantity, reorder_point):
    z = np.asarray(order_quantity, dtype=float).reshape(-1)
    r = np.asarray(reorder_point, dtype=float).reshape(-1)
    if z.size == 1 and instance.n > 1:
        z = np.full(instance.n, z[0])
    if r.size == 1 and instance.n > 1:
        r = np.full(instance.n, r[0])
    if z.shape != (instance.n,) or r.shape != (instance.n,):
        raise ValueError(f"order_quantity and reorder_point need one value per SKU ({instance.n})")
    bad = ~(np.isfinite(z) & (z > 0) & np.isfinite(r))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"SKU {instance.sku[i]!r}: order_quantity must be > 0 and reorder_point "
                         f"finite (got {z[i]}, {r[i]})")
    return z, r


def _check_start(initial_stock, n):
    if initial_stock is None:
        return None
    s = np.array(np.broadcast_to(np.asarray(initial_stock, dtype=float), (n,)))
    if not np.isfinite(s).all():
        raise ValueError("initial_stock must be finite")
    return s


def simulate(instance: Instance, order_quantity, reorder_point, years: float = 10,
             seed: int = 0, replications: int = 5, warmup_years: float = 1.0, *,
             order_rule: str = "nQ", tolerance: float = 0.005, demand=None,
             initial_stock=None, workers: int = 2) -> SimulationResult:
    """Simulate every SKU's (R, Z) policy in daily buckets (see the module docstring).

    years: measured length (after `warmup_years` of warm-up), in years of
    `scenario.days_per_year` days (rounded to whole days). replications: independent runs
    (distinct random streams) for the confidence intervals. order_rule: "nQ" or "single".
    tolerance: fill-rate slack for the `short` flag. demand: optional daily demand to replay
    instead of drawing it, shape (days, n) or (replications, days, n) with days = warm-up +
    measured days (lead times stay random). initial_stock: on-hand units per SKU at day 0
    (nothing on order); default a position drawn uniformly on (R, R + Z], all on hand.
    workers: parallel workers (this process and forked processes; threads where fork is
    unavailable), each simulating (and drawing the demand of) a contiguous share of the
    SKU x replication columns; the results do not depend on it.
    """
    if order_rule not in ORDER_RULES:
        raise ValueError(f"order_rule must be one of {ORDER_RULES}, got {order_rule!r}")
    reps = int(replications)
    if reps < 1:
        raise ValueError("replications must be >= 1")
    z, r = _check_plan(instance, order_quantity, reorder_point)
    p = _params(instance, years, warmup_years)
    given = None if demand is None else _demand_array(demand, reps, p.days_total, instance.n)
    start = _check_start(initial_stock, instance.n)
    tot = _run(p, z, r, reps, int(seed), given, order_rule, workers, start)
    reps_arrays = _measures(tot, p)
    out = {}
    for name, arr in reps_arrays.items():
        out[name], out[name + "_ci"] = _mean_ci(arr)
    from optimizer.policy import evaluate_plan  # lazily: policy pulls in the distributions

    ana = evaluate_plan(instance, z, r)
    short = (out["fill_rate"] + np.nan_to_num(out["fill_rate_ci"], nan=0.0)
             < ana.fill_rate - tolerance)
    return SimulationResult(
        sku=instance.sku, order_quantity=z, reorder_point=r, **out,
        analytic_fill_rate=ana.fill_rate, analytic_cycle_service=ana.cycle_service,
        analytic_average_stock=ana.average_inventory,
        analytic_orders_per_year=ana.orders_per_year,
        analytic_vehicle_loads_per_year=ana.orders_per_year * ana.vehicles_per_order,
        short=np.asarray(short & np.isfinite(out["fill_rate"]), dtype=bool),
        replicates=reps_arrays, years=float(years), warmup_years=float(warmup_years),
        replications=reps, seed=int(seed), tolerance=float(tolerance), order_rule=order_rule)


# ---------------------------------------------------------------------------------------
# the readable per-SKU specification (and benchmark baseline)


def simulate_reference(instance: Instance, order_quantity, reorder_point, years: float = 10,
                       seed: int = 0, replications: int = 1, warmup_years: float = 1.0, *,
                       order_rule: str = "nQ", demand=None, initial_stock=None) -> dict:
    """The same model as `simulate`, written as plain Python loops over replications, SKUs
    and days (scalar arithmetic, no vectorisation). Returns the per-replication measures
    {name: array (replications, n)} like `SimulationResult.replicates`.

    With `demand` (as in `simulate`) the results equal `simulate`'s up to floating-point
    summation order; without it, demand is drawn day by day from a per-SKU numpy Generator
    (a different stream from `simulate`'s, same distribution)."""
    if order_rule not in ORDER_RULES:
        raise ValueError(f"order_rule must be one of {ORDER_RULES}, got {order_rule!r}")
    reps = int(replications)
    z_arr, r_arr = _check_plan(instance, order_quantity, reorder_point)
    p = _params(instance, years, warmup_years)
    n = instance.n
    given = None if demand is None else _demand_array(demand, reps, p.days_total, n)
    start = _check_start(initial_stock, n)
    pos0 = _initial_position(seed, reps, n, z_arr, r_arr, start).reshape(reps, n)
    keys = ("demand", "served", "stock", "cycles", "cycles_ok", "orders", "loads")
    tot = {k: np.zeros((reps, n)) for k in keys}
    for rep in range(reps):
        for i in range(n):
            Z, R = float(z_arr[i]), float(r_arr[i])
            units = float(p.units_per_vehicle[i])
            kind, a, b = int(p.kind[i]), float(p.a[i]), float(p.b[i])
            rng = np.random.default_rng([seed, rep, i])
            position = float(pos0[rep, i])
            net = position
            calendar: dict[int, list] = {}  # day -> [quantity, deliveries]
            acc = dict.fromkeys(keys, 0.0)
            for day in range(p.days_total):
                if given is not None:
                    d = float(given[rep, day, i])
                elif kind == _CONST:
                    d = a
                elif kind == _GAMMA:
                    d = rng.standard_gamma(a) * b
                elif kind == _POISSON:
                    d = float(rng.poisson(a))
                elif kind == _UNIF:
                    d = a + b * rng.random()
                else:
                    u = rng.random()
                    d = u * (b / a) if u < a else 0.0
                measuring = day >= p.warm_days
                if measuring:
                    acc["demand"] += d
                    acc["served"] += min(max(net, 0.0), d)
                net -= d
                position -= d
                if position <= R:
                    if order_rule == "nQ":
                        k = math.floor((R - position) / Z) + 1.0
                        q = k * Z
                        if position + q <= R:
                            q += Z
                    else:
                        q = Z
                    position += q
                    here = np.array([i])
                    lead = int(_lead_days(p, _order_keys(seed, [rep], here), here, day)[0])
                    slot = calendar.setdefault(day + lead, [0.0, 0.0])
                    slot[0] += q
                    slot[1] += 1.0
                    if measuring:
                        acc["orders"] += 1.0
                        if math.isfinite(units):
                            acc["loads"] += max(math.ceil(q / units - 1e-9), 1)
                if day in calendar:
                    q, count = calendar.pop(day)
                    if measuring:
                        acc["cycles"] += count
                        if net >= 0.0:
                            acc["cycles_ok"] += count
                    net += q
                if measuring:
                    acc["stock"] += max(net, 0.0)
            for k in keys:
                tot[k][rep, i] = acc[k]
    return _measures(tot, p)
