"""Deterministic single-item formulas, vectorised over SKUs.

- EOQ and reorder level (seed 003): Q = sqrt(2 D S / H), reorder level = daily demand x
  lead time (+ safety stock).
- EOQ with planned backorders (textbook, e.g. Hillier & Lieberman; seed 003 mentions the
  model): backorder cost B per unit-year; Q = sqrt(2 D S / H) sqrt((H + B) / B), the largest
  backorder S* = Q H / (H + B).
- Quantity discounts, all-units and incremental (seed 003 mentions them; textbook
  treatment as in Silver, Pyke & Peterson): holding cost = holding_rate x price.

Price breaks are given as 2-D arrays (n_skus, n_breaks): `break_quantities` ascending per
row with the first break at 0, `break_prices` the unit price from that quantity on; rows
with fewer breaks are padded with NaN. `price_breaks_from_frame` builds them from a long
table (sku, min_quantity, unit_cost).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class EOQResult:
    """Per SKU: order_quantity (units), orders_per_year, cycle_years, ordering_cost,
    holding_cost and total_cost (money per year)."""

    order_quantity: np.ndarray
    orders_per_year: np.ndarray
    cycle_years: np.ndarray
    ordering_cost: np.ndarray
    holding_cost: np.ndarray
    total_cost: np.ndarray


def eoq(annual_demand, ordering_cost, holding_cost) -> EOQResult:
    """Economic order quantity Q = sqrt(2 D S / H) (seed 003) with its annual costs.

    >>> round(float(eoq(10_000, 200, 5).order_quantity), 1)
    894.4
    """
    D, S, H = np.broadcast_arrays(*(np.asarray(a, dtype=float)
                                    for a in (annual_demand, ordering_cost, holding_cost)))
    q = np.sqrt(2.0 * D * S / H)
    order = S * D / q
    hold = H * q / 2.0
    return EOQResult(q, D / q, q / D, order, hold, order + hold)


def reorder_level(annual_demand, lead_time_days, days_per_year=365.0, safety_stock=0.0):
    """Reorder level = daily demand x lead time + safety stock, units (seed 003).

    >>> float(reorder_level(10_000, 5, days_per_year=250))
    200.0
    """
    return (np.asarray(annual_demand, dtype=float) / days_per_year
            * np.asarray(lead_time_days, dtype=float) + np.asarray(safety_stock, dtype=float))


@dataclass(frozen=True)
class BackorderResult:
    """Per SKU: order_quantity and max_backorder, max_inventory (units); ordering, holding,
    backorder and total cost (money per year)."""

    order_quantity: np.ndarray
    max_backorder: np.ndarray
    max_inventory: np.ndarray
    ordering_cost: np.ndarray
    holding_cost: np.ndarray
    backorder_cost: np.ndarray
    total_cost: np.ndarray


def eoq_planned_backorders(annual_demand, ordering_cost, holding_cost, backorder_cost
                           ) -> BackorderResult:
    """EOQ with planned backorders, backorder_cost B per unit-year:
    Q = sqrt(2 D S / H) sqrt((H + B) / B), max backorder S = Q H / (H + B); per year
    ordering S D / Q, holding H (Q - S)^2 / (2 Q), backorders B S^2 / (2 Q)."""
    D, S, H, B = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (
        annual_demand, ordering_cost, holding_cost, backorder_cost)))
    q = np.sqrt(2.0 * D * S / H) * np.sqrt((H + B) / B)
    s = q * H / (H + B)
    order = S * D / q
    hold = H * (q - s) ** 2 / (2.0 * q)
    back = B * s ** 2 / (2.0 * q)
    return BackorderResult(q, s, q - s, order, hold, back, order + hold + back)


@dataclass(frozen=True)
class DiscountResult:
    """Per SKU: order_quantity (units), unit_price (average price paid per unit), and per
    year purchase_cost, ordering_cost, holding_cost, total_cost; break_index (the price
    break the quantity falls in)."""

    order_quantity: np.ndarray
    unit_price: np.ndarray
    purchase_cost: np.ndarray
    ordering_cost: np.ndarray
    holding_cost: np.ndarray
    total_cost: np.ndarray
    break_index: np.ndarray


def _breaks(break_quantities, break_prices):
    bq = np.atleast_2d(np.asarray(break_quantities, dtype=float))
    bp = np.atleast_2d(np.asarray(break_prices, dtype=float))
    if bq.shape != bp.shape:
        raise ValueError(f"break_quantities {bq.shape} and break_prices {bp.shape} differ")
    if np.any(bq[:, 0] != 0):
        raise ValueError("the first break quantity of every SKU must be 0")
    return bq, bp


def eoq_all_units_discount(annual_demand, ordering_cost, holding_rate, break_quantities,
                           break_prices) -> DiscountResult:
    """All-units discounts: the price of the break reached applies to every unit. For each
    break j the EOQ at its price, raised to the break quantity when below it (and dropped
    when at or above the next break, where a lower price applies); the cheapest total
    D c_j + S D / Q + i c_j Q / 2 wins."""
    bq, bp = _breaks(break_quantities, break_prices)
    D = np.asarray(annual_demand, dtype=float).reshape(-1, 1)
    S = np.asarray(ordering_cost, dtype=float).reshape(-1, 1)
    i = np.asarray(holding_rate, dtype=float).reshape(-1, 1)
    D, S, i = (np.broadcast_to(a, (bq.shape[0], 1)) for a in (D, S, i))
    nxt = np.concatenate([bq[:, 1:], np.full((bq.shape[0], 1), np.nan)], axis=1)
    nxt = np.where(np.isnan(nxt), np.inf, nxt)
    q = np.maximum(np.sqrt(2 * D * S / (i * bp)), bq)
    valid = ~np.isnan(bp) & (q < nxt)
    total = np.where(valid, D * bp + S * D / q + i * bp * q / 2, np.inf)
    j = np.argmin(total, axis=1)
    r = np.arange(bq.shape[0])
    qq, c = q[r, j], bp[r, j]
    d, s_, ii = D[:, 0], S[:, 0], i[:, 0]
    return DiscountResult(qq, c, d * c, s_ * d / qq, ii * c * qq / 2, total[r, j], j)


def _lot_cost(q, bq, bp):
    """Purchase cost of a lot of q units under incremental breaks (vectorised over rows)."""
    nxt = np.concatenate([bq[:, 1:], np.full((bq.shape[0], 1), np.inf)], axis=1)
    nxt = np.where(np.isnan(nxt), np.inf, nxt)
    units = np.clip(q[:, None] - bq, 0.0, np.where(np.isnan(bq), 0.0, nxt - bq))
    return np.nansum(np.where(np.isnan(bp), 0.0, units * bp), axis=1)


def eoq_incremental_discount(annual_demand, ordering_cost, holding_rate, break_quantities,
                             break_prices) -> DiscountResult:
    """Incremental discounts: each price applies only to the units within its band. A lot
    of Q costs C(Q) = R_j + c_j (Q - q_j) in band j (R_j the cost of the first q_j units);
    annual cost D C(Q)/Q + S D / Q + i C(Q) / 2 is minimised in band j at
    Q_j = sqrt(2 D (S + R_j - c_j q_j) / (i c_j)); the best feasible band wins (band ends
    are checked too)."""
    bq, bp = _breaks(break_quantities, break_prices)
    n = bq.shape[0]
    D = np.broadcast_to(np.asarray(annual_demand, dtype=float), (n,))
    S = np.broadcast_to(np.asarray(ordering_cost, dtype=float), (n,))
    i = np.broadcast_to(np.asarray(holding_rate, dtype=float), (n,))
    R = np.stack([_lot_cost(bq[:, j].copy(), bq, bp) for j in range(bq.shape[1])], axis=1)
    fixed = S[:, None] + R - bp * bq
    with np.errstate(invalid="ignore", divide="ignore"):
        q = np.sqrt(2 * D[:, None] * fixed / (i[:, None] * bp))
    nxt = np.concatenate([bq[:, 1:], np.full((n, 1), np.inf)], axis=1)
    nxt = np.where(np.isnan(nxt), np.inf, nxt)
    q = np.clip(q, np.maximum(bq, 1e-9), nxt)
    cands = np.concatenate([q, np.where(np.isfinite(nxt), nxt, np.nan)], axis=1)
    valid = ~np.isnan(cands) & np.concatenate([~np.isnan(bp), ~np.isnan(bp)], axis=1)

    def annual(qc):
        C = _lot_cost(qc, bq, bp)
        return D * C / qc + S * D / qc + i * C / 2, C

    totals = np.full(cands.shape, np.inf)
    for j in range(cands.shape[1]):  # loop over candidates (2 per break), not SKUs
        qc = np.where(valid[:, j], cands[:, j], 1.0)
        t, _ = annual(qc)
        totals[:, j] = np.where(valid[:, j], t, np.inf)
    j = np.argmin(totals, axis=1)
    qq = cands[np.arange(n), j]
    total, C = annual(qq)
    band = np.sum(qq[:, None] >= np.where(np.isnan(bq), np.inf, bq), axis=1) - 1
    return DiscountResult(qq, C / qq, D * C / qq, S * D / qq, i * C / 2, total, band)


def price_breaks_from_frame(df: pd.DataFrame, sku_order) -> tuple[np.ndarray, np.ndarray]:
    """Padded (quantities, prices) arrays in `sku_order` from a table with columns sku,
    min_quantity, unit_cost. Raises ValueError naming the SKU when it has no break at 0 or
    its prices rise with quantity."""
    missing = {"sku", "min_quantity", "unit_cost"} - set(df.columns)
    if missing:
        raise ValueError(f"price breaks: missing column(s) {', '.join(sorted(missing))}")
    d = df.sort_values(["sku", "min_quantity"])
    d = d.assign(k=d.groupby("sku").cumcount())
    width = int(d["k"].max()) + 1 if len(d) else 1
    qty = d.pivot(index="sku", columns="k", values="min_quantity").reindex(list(sku_order))
    price = d.pivot(index="sku", columns="k", values="unit_cost").reindex(list(sku_order))
    qty = qty.reindex(columns=range(width))
    price = price.reindex(columns=range(width))
    first = qty[0]
    bad = first.isna() | (first != 0)
    if bad.any():
        raise ValueError(f"price breaks: sku {bad[bad].index[0]!r} needs a break at quantity 0")
    rising = (price.diff(axis=1) > 0).any(axis=1)
    if rising.any():
        raise ValueError(f"price breaks: sku {rising[rising].index[0]!r} has a price that "
                         "rises with quantity")
    return qty.to_numpy(dtype=float), price.to_numpy(dtype=float)
