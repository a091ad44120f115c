"""The typed, validated instance: SKU master as numpy arrays plus the scenario's limits.

An `Instance` is what every model and formulation consumes. It is built only by
`optimizer.io.load_instance` (files) or `optimizer.io.instance_from_dict` (JSON), which
validate every field first, so code downstream may assume clean, finite data.

Units: demand in units per year, lead times in days, money per unit / per order /
per unit-year as the field names say.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
import pandas as pd

# Lead-time demand distribution codes, stored per SKU in `Instance.distribution`.
NORMAL, POISSON, GAMMA, UNIFORM = 0, 1, 2, 3
DISTRIBUTION_CODES = {"normal": NORMAL, "poisson": POISSON, "gamma": GAMMA, "uniform": UNIFORM}
DISTRIBUTION_NAMES = {v: k for k, v in DISTRIBUTION_CODES.items()}

Basis = Literal["average", "peak"]
Measure = Literal["weight", "volume"]


@dataclass(frozen=True)
class Budget:
    """Limit on inventory investment (money). basis "average": sum c (Z/2 + R - E v);
    "peak": sum c (Z + R - E v). `period_limit` is the purchase spend per period used by
    the multi-period plan."""

    limit: float | None = None
    basis: Basis = "average"
    period_limit: float | None = None


@dataclass(frozen=True)
class Warehouse:
    """Limit on stored volume (sum unit_volume x stock) on the same two bases as Budget."""

    capacity: float
    basis: Basis = "average"


@dataclass(frozen=True)
class VehicleSpec:
    """One vehicle type: capacity in kg (measure "weight") or m3 ("volume"), cost per
    vehicle per delivery."""

    capacity: float
    measure: Measure = "weight"
    cost: float = 0.0


@dataclass(frozen=True)
class Vehicles:
    """Default vehicle plus per-supplier overrides (supplier id -> spec)."""

    default: VehicleSpec | None = None
    by_supplier: dict[str, VehicleSpec] = field(default_factory=dict)

    def spec_for(self, supplier: str) -> VehicleSpec | None:
        return self.by_supplier.get(supplier, self.default)


@dataclass(frozen=True)
class Scenario:
    """Scenario-wide settings and coupling limits (scenario.toml)."""

    name: str = "base"
    days_per_year: float = 365.0
    # interest on capital tied up, per year, fraction of unit_cost (seed 002's W parameter)
    capital_rate: float = 0.0
    budget: Budget | None = None
    warehouse: Warehouse | None = None
    vehicles: Vehicles | None = None
    # aggregate, demand-weighted fill-rate floor
    fill_rate_min: float | None = None
    # cap on the total number of orders (deliveries) per year over all SKUs
    max_orders_per_year: float | None = None

    def with_changes(self, **kwargs) -> "Scenario":
        return replace(self, **kwargs)


@dataclass(frozen=True, eq=False)
class Instance:
    """Validated SKU master (one entry per SKU in every array) and scenario.

    `frame` keeps the user's table as given (including pass-through `x_` columns) so
    nothing the user gave is lost; the arrays are the normalised numeric view.
    Missing optional values are NaN (shortage_cost, cycle_service, fill_rate,
    sales_share) or 0 (moq, order_multiple meaning "none", unit_volume, unit_weight).
    """

    frame: pd.DataFrame
    scenario: Scenario
    sku: np.ndarray  # str ids
    annual_demand: np.ndarray  # units / year
    demand_sd: np.ndarray  # sd of annual demand, units / year
    lead_time_days: np.ndarray
    lead_time_sd_days: np.ndarray
    unit_cost: np.ndarray  # money / unit
    ordering_cost: np.ndarray  # money / order
    holding_cost: np.ndarray  # money / unit-year (holding_rate x unit_cost when a rate was given)
    shortage_cost: np.ndarray  # money / unit short, NaN when absent
    cycle_service: np.ndarray  # target alpha, NaN when absent
    fill_rate: np.ndarray  # target beta, NaN when absent
    distribution: np.ndarray  # int8 codes, see DISTRIBUTION_CODES
    moq: np.ndarray  # units, 0 = none
    order_multiple: np.ndarray  # units, 0 = none
    unit_volume: np.ndarray  # m3 / unit
    unit_weight: np.ndarray  # kg / unit
    supplier: np.ndarray  # str ids
    supplier_on_time: np.ndarray  # probability a delivery is on time
    sales_share: np.ndarray  # NaN when absent
    # units in stock today (multi-period plan's start), NaN where not given; None = no column
    on_hand: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.sku.shape[0])

    @property
    def lead_time_years(self) -> np.ndarray:
        return self.lead_time_days / self.scenario.days_per_year

    @property
    def lead_time_demand_mean(self) -> np.ndarray:
        """E v = D L / days_per_year (units)."""
        return self.annual_demand * self.lead_time_years

    @property
    def lead_time_demand_sd(self) -> np.ndarray:
        """sd of v: Var v = (L/days) sd_D^2 + (D/days)^2 sd_L^2 (units).

        Demand over a lead time of L days is a sum of L/days_per_year of a year's
        independent demand, plus the variance the random lead time adds at mean daily
        rate D/days_per_year (the standard random-sum formula).
        """
        days = self.scenario.days_per_year
        var = self.lead_time_years * self.demand_sd**2 + (
            self.annual_demand / days
        ) ** 2 * self.lead_time_sd_days**2
        return np.sqrt(var)

    def effective_lead_time_demand(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and sd of lead-time demand when suppliers are late (seed 002's reliability).

        Model (ours; the seed gives no formula): a delivery is on time with probability q =
        supplier_on_time; a late one arrives one whole lead time late. The effective lead
        time T = L (1 + B), B ~ Bernoulli(1 - q), so E T = L (2 - q) days and
        Var T = sd_L^2 + L^2 q (1 - q). Lead-time demand then has mean D E T / days and
        variance (E T / days) sd_D^2 + (D / days)^2 Var T. With q = 1 this equals
        `lead_time_demand_mean` / `lead_time_demand_sd`.
        """
        days = self.scenario.days_per_year
        q = self.supplier_on_time
        L = self.lead_time_days
        mean_t = L * (2.0 - q)
        var_t = self.lead_time_sd_days**2 + L**2 * q * (1.0 - q)
        mean = self.annual_demand * mean_t / days
        var = (mean_t / days) * self.demand_sd**2 + (self.annual_demand / days) ** 2 * var_t
        return mean, np.sqrt(var)

    def vehicle_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """Per SKU: units that fit one vehicle (inf when no vehicle limit or the unit has no
        weight/volume on the vehicle's measure) and cost per vehicle per delivery (0 if none)."""
        units = np.full(self.n, np.inf)
        cost = np.zeros(self.n)
        vehicles = self.scenario.vehicles
        if vehicles is None:
            return units, cost
        suppliers = pd.unique(self.supplier)
        for sup in suppliers:  # loop over suppliers (few), never over SKUs
            spec = vehicles.spec_for(str(sup))
            if spec is None:
                continue
            mask = self.supplier == sup
            per_unit = self.unit_weight[mask] if spec.measure == "weight" else self.unit_volume[mask]
            with np.errstate(divide="ignore"):
                units[mask] = np.where(per_unit > 0, spec.capacity / np.where(per_unit > 0, per_unit, 1.0), np.inf)
            cost[mask] = spec.cost
        return units, cost

    def take(self, index) -> "Instance":
        """Sub-instance of the SKUs at `index` (positions or boolean mask)."""
        idx = np.asarray(index)
        arrays = {
            name: getattr(self, name)[idx]
            for name in self.__dataclass_fields__
            if name not in ("frame", "scenario") and getattr(self, name) is not None
        }
        return Instance(frame=self.frame.iloc[idx].reset_index(drop=True), scenario=self.scenario, **arrays)

    def with_scenario(self, scenario: Scenario) -> "Instance":
        return replace(self, scenario=scenario)
