"""Instance files: load, validate (every problem at once, by row, SKU and field), write.

An instance is a directory with `skus.csv` | `skus.parquet` | `skus.xlsx` and an optional
`scenario.toml`, or one JSON document {"skus": [...], "scenario": {...}} (the scenario in
the TOML's structure). README documents every column and key.
"""

from __future__ import annotations

import difflib
import json
import math
import os
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from optimizer.instance import (DISTRIBUTION_CODES, POISSON, UNIFORM, Budget, Instance, Scenario,
                                VehicleSpec, Vehicles, Warehouse)

REQUIRED = ("sku", "annual_demand", "lead_time_days", "unit_cost", "ordering_cost")
OPTIONAL_NUMERIC = {  # column -> default (NaN: stays missing)
    "demand_sd": 0.0, "lead_time_sd_days": 0.0, "holding_rate": np.nan, "holding_cost": np.nan,
    "shortage_cost": np.nan, "cycle_service": np.nan, "fill_rate": np.nan, "moq": 0.0,
    "order_multiple": np.nan, "unit_volume": 0.0, "unit_weight": 0.0, "supplier_on_time": 1.0,
    "sales_share": np.nan, "on_hand": np.nan,
}
OPTIONAL_TEXT = {"demand_distribution": "normal", "supplier": "default"}
KNOWN = set(REQUIRED) | set(OPTIONAL_NUMERIC) | set(OPTIONAL_TEXT)
MAX_MESSAGES = 200


@dataclass(frozen=True)
class Issue:
    """One problem: data row (1 = first data row; None for file or scenario problems), the
    SKU id when known, the field, and what is wrong."""

    row: int | None
    sku: str | None
    field: str
    message: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}" + (f" (sku {self.sku!r})" if self.sku else ""))
        where.append(f"field {self.field!r}")
        return ", ".join(where) + f": {self.message}"


class InstanceError(ValueError):
    """The instance has problems; `issues` lists every one found."""

    def __init__(self, issues: list[Issue]):
        self.issues = list(issues)
        super().__init__(str(self))

    where = "the instance"  # what the message says the problems are in

    def __str__(self) -> str:
        shown = self.issues[:MAX_MESSAGES]
        lines = [f"{len(self.issues)} problem(s) in {self.where}:"]
        lines += [f"  {i}" for i in shown]
        if len(self.issues) > len(shown):
            lines.append(f"  ... and {len(self.issues) - len(shown)} more")
        return "\n".join(lines)


# -- atomic writes -----------------------------------------------------------------------
def atomic_write_bytes(path, data: bytes) -> None:
    """Write to a temporary file in the target directory, then rename over `path`: a reader
    sees the old file or the whole new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


# -- scenario ----------------------------------------------------------------------------
_SCENARIO_TOP = {"name", "days_per_year", "capital_rate", "budget", "warehouse", "vehicles",
                 "service", "orders"}


def _num(issues, key, value, *, positive=False, nonneg=False, prob=False, open_prob=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        issues.append(Issue(None, None, key, f"must be a finite number, got {value!r}"))
        return None
    v = float(value)
    if positive and v <= 0:
        issues.append(Issue(None, None, key, f"must be > 0, got {value!r}"))
    elif nonneg and v < 0:
        issues.append(Issue(None, None, key, f"must be >= 0, got {value!r}"))
    elif open_prob and not 0 < v < 1:
        issues.append(Issue(None, None, key, f"must be in (0, 1), got {value!r}"))
    return v


def _unknown(issues, prefix, table, known):
    for key in table:
        if key not in known:
            near = difflib.get_close_matches(key, sorted(known), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            issues.append(Issue(None, None, f"{prefix}{key}", f"unknown key{hint}"))


def _basis(issues, key, value):
    if value not in ("average", "peak"):
        issues.append(Issue(None, None, key, f"must be \"average\" or \"peak\", got {value!r}"))
        return "average"
    return value


def _vehicle(issues, prefix, table, inherit: VehicleSpec | None):
    _unknown(issues, prefix, table, {"capacity", "measure", "cost"})
    cap = table.get("capacity", inherit.capacity if inherit else None)
    measure = table.get("measure", inherit.measure if inherit else "weight")
    cost = table.get("cost", inherit.cost if inherit else 0.0)
    if cap is None:
        issues.append(Issue(None, None, prefix + "capacity", "is required"))
        return None
    cap = _num(issues, prefix + "capacity", cap, positive=True)
    cost = _num(issues, prefix + "cost", cost, nonneg=True)
    if measure not in ("weight", "volume"):
        issues.append(Issue(None, None, prefix + "measure",
                            f"must be \"weight\" or \"volume\", got {measure!r}"))
        measure = "weight"
    if cap is None or cost is None:
        return None
    return VehicleSpec(capacity=cap, measure=measure, cost=cost)


def scenario_from_dict(doc: dict, default_name: str = "base") -> tuple[Scenario, list[Issue]]:
    """The Scenario of a scenario table (TOML or JSON), and its problems."""
    issues: list[Issue] = []
    if not isinstance(doc, dict):
        return Scenario(name=default_name), [Issue(None, None, "scenario", "must be a table")]
    _unknown(issues, "", doc, _SCENARIO_TOP)
    kw: dict = {"name": str(doc.get("name", default_name))}
    if "days_per_year" in doc:
        v = _num(issues, "days_per_year", doc["days_per_year"], positive=True)
        if v is not None:
            kw["days_per_year"] = v
    if "capital_rate" in doc:
        v = _num(issues, "capital_rate", doc["capital_rate"], nonneg=True)
        if v is not None:
            kw["capital_rate"] = v
    if "budget" in doc:
        b = doc["budget"]
        _unknown(issues, "budget.", b, {"limit", "basis", "period_limit"})
        limit = _num(issues, "budget.limit", b["limit"], positive=True) if "limit" in b else None
        period = (_num(issues, "budget.period_limit", b["period_limit"], positive=True)
                  if "period_limit" in b else None)
        if limit is None and period is None and not issues:
            issues.append(Issue(None, None, "budget", "needs limit or period_limit"))
        kw["budget"] = Budget(limit=limit, basis=_basis(issues, "budget.basis",
                                                        b.get("basis", "average")),
                              period_limit=period)
    if "warehouse" in doc:
        w = doc["warehouse"]
        _unknown(issues, "warehouse.", w, {"capacity", "basis"})
        if "capacity" not in w:
            issues.append(Issue(None, None, "warehouse.capacity", "is required"))
        else:
            cap = _num(issues, "warehouse.capacity", w["capacity"], positive=True)
            if cap is not None:
                kw["warehouse"] = Warehouse(capacity=cap, basis=_basis(
                    issues, "warehouse.basis", w.get("basis", "average")))
    if "vehicles" in doc:
        v = dict(doc["vehicles"])
        suppliers = v.pop("suppliers", {})
        default = _vehicle(issues, "vehicles.", v, None) if v else None
        by = {}
        for sup, table in suppliers.items():
            spec = _vehicle(issues, f"vehicles.suppliers.{sup}.", table, default)
            if spec is not None:
                by[str(sup)] = spec
        kw["vehicles"] = Vehicles(default=default, by_supplier=by)
    if "service" in doc:
        s = doc["service"]
        _unknown(issues, "service.", s, {"fill_rate_min"})
        if "fill_rate_min" in s:
            kw["fill_rate_min"] = _num(issues, "service.fill_rate_min", s["fill_rate_min"],
                                       open_prob=True)
    if "orders" in doc:
        o = doc["orders"]
        _unknown(issues, "orders.", o, {"max_per_year"})
        if "max_per_year" in o:
            kw["max_orders_per_year"] = _num(issues, "orders.max_per_year", o["max_per_year"],
                                             positive=True)
    return Scenario(**kw), issues


def scenario_to_dict(sc: Scenario) -> dict:
    doc: dict = {"name": sc.name, "days_per_year": sc.days_per_year,
                 "capital_rate": sc.capital_rate}
    if sc.budget is not None:
        b = {"basis": sc.budget.basis}
        if sc.budget.limit is not None:
            b["limit"] = sc.budget.limit
        if sc.budget.period_limit is not None:
            b["period_limit"] = sc.budget.period_limit
        doc["budget"] = b
    if sc.warehouse is not None:
        doc["warehouse"] = {"capacity": sc.warehouse.capacity, "basis": sc.warehouse.basis}
    if sc.vehicles is not None:
        v: dict = {}
        if sc.vehicles.default is not None:
            d = sc.vehicles.default
            v.update(capacity=d.capacity, measure=d.measure, cost=d.cost)
        if sc.vehicles.by_supplier:
            v["suppliers"] = {k: {"capacity": s.capacity, "measure": s.measure, "cost": s.cost}
                              for k, s in sc.vehicles.by_supplier.items()}
        doc["vehicles"] = v
    if sc.fill_rate_min is not None:
        doc["service"] = {"fill_rate_min": sc.fill_rate_min}
    if sc.max_orders_per_year is not None:
        doc["orders"] = {"max_per_year": sc.max_orders_per_year}
    return doc


def _toml_value(v) -> str:
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return repr(float(v)) if isinstance(v, float) else str(v)


def scenario_to_toml(sc: Scenario) -> str:
    """A small TOML writer for the scenario structure (scalars and nested tables)."""
    doc = scenario_to_dict(sc)
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]

    def table(prefix, d):
        scal = {k: v for k, v in d.items() if not isinstance(v, dict)}
        if scal:
            lines.append(f"\n[{prefix}]")
            lines.extend(f"{k} = {_toml_value(v)}" for k, v in scal.items())
        for k, v in d.items():
            if isinstance(v, dict):
                key = k if k.isidentifier() else json.dumps(k)
                table(f"{prefix}.{key}", v)

    for k, v in doc.items():
        if isinstance(v, dict):
            table(k, v)
    return "\n".join(lines) + "\n"


# -- SKU table ---------------------------------------------------------------------------
def _validate_frame(df: pd.DataFrame, scenario: Scenario, issues: list[Issue]):
    """Check every column at once (vectorised masks); returns the normalised arrays."""
    df = df.reset_index(drop=True)
    n = len(df)
    cols = [str(c) for c in df.columns]
    df.columns = cols
    for sep, name in ((";", "semicolon"), ("\t", "tab")):
        if len(cols) == 1 and sep in cols[0]:
            # one column whose name holds the separator: the file is not comma-separated
            issues.append(Issue(None, None, "skus", f"the header reads as one column with "
                                f"{name}s in it: the file looks {name}-separated; save it "
                                "as comma-separated CSV with '.' as the decimal point"))
            return None
    for c in cols:
        if c not in KNOWN and not c.startswith("x_"):
            near = difflib.get_close_matches(c, sorted(KNOWN), n=1)
            hint = f" (did you mean {near[0]!r}?)" if near else ""
            issues.append(Issue(None, None, c, f"unknown column{hint}; prefix your own columns "
                                               "with x_"))
    for c in REQUIRED:
        if c not in df.columns:
            issues.append(Issue(None, None, c, "required column is missing"))
    if n == 0:
        issues.append(Issue(None, None, "sku", "the SKU table has no rows"))
    if issues and (n == 0 or any(i.message.startswith("required column") for i in issues)):
        return None
    sku = df["sku"]
    sku_text = sku.astype("string").fillna("").str.strip()
    ids = sku_text.to_numpy(dtype=object)

    def report(mask, field, message_fn):
        rows = np.flatnonzero(np.asarray(mask))
        for i in rows[:MAX_MESSAGES]:
            issues.append(Issue(int(i) + 1, ids[i] or None, field, message_fn(i)))
        if rows.size > MAX_MESSAGES:
            issues.append(Issue(None, None, field, f"... {rows.size - MAX_MESSAGES} more rows "
                                                   "with the same problem"))

    report(sku_text == "", "sku", lambda i: "is empty")
    dup = sku_text.duplicated(keep=False) & (sku_text != "")
    if dup.any():
        first = {}
        for i in np.flatnonzero(dup.to_numpy()):
            first.setdefault(ids[i], i + 1)
        report(dup, "sku", lambda i: f"duplicate id (first at row {first[ids[i]]})")

    not_number: dict = {}

    def numeric(col, default):
        if col not in df.columns:
            return np.full(n, default, dtype=float)
        raw = df[col]
        num = pd.to_numeric(raw, errors="coerce")
        text = raw.astype("string")
        bad = num.isna() & raw.notna() & (text.str.strip().fillna("") != "")
        report(bad, col, lambda i: f"is not a number: {raw.iloc[i]!r}")
        not_number[col] = bad.to_numpy()
        vals = num.to_numpy(dtype=float)
        inf = np.isinf(vals)
        report(inf, col, lambda i: "must be finite")
        vals = np.where(inf, np.nan, vals)
        return np.where(np.isnan(vals) & ~bad.to_numpy(), default, vals)

    arr = {c: numeric(c, np.nan) for c in REQUIRED[1:]}
    for c in REQUIRED[1:]:
        report(np.isnan(arr[c]) & ~not_number.get(c, np.zeros(n, bool)), c,
               lambda i: "is required (empty or not finite)")
    opt = {c: numeric(c, d) for c, d in OPTIONAL_NUMERIC.items()}

    def check(col, vals, bad_mask, what):
        report(bad_mask, col, lambda i: f"must be {what}, got {vals[i]:g}")

    D = arr["annual_demand"]
    check("annual_demand", D, D <= 0, "> 0")
    check("lead_time_days", arr["lead_time_days"], arr["lead_time_days"] < 0, ">= 0")
    check("unit_cost", arr["unit_cost"], arr["unit_cost"] <= 0, "> 0")
    check("ordering_cost", arr["ordering_cost"], arr["ordering_cost"] < 0, ">= 0")
    for c in ("demand_sd", "lead_time_sd_days", "moq", "unit_volume", "unit_weight"):
        check(c, opt[c], opt[c] < 0, ">= 0")
    for c in ("holding_rate", "holding_cost", "shortage_cost", "order_multiple"):
        check(c, opt[c], opt[c] <= 0, "> 0")
    check("on_hand", opt["on_hand"], opt["on_hand"] < 0, ">= 0")
    check("supplier_on_time", opt["supplier_on_time"],
          (opt["supplier_on_time"] <= 0) | (opt["supplier_on_time"] > 1), "in (0, 1]")
    check("sales_share", opt["sales_share"],
          (opt["sales_share"] <= 0) | (opt["sales_share"] > 1), "in (0, 1]")
    for c in ("cycle_service", "fill_rate"):
        check(c, opt[c], (opt[c] <= 0) | (opt[c] >= 1), "in (0, 1) (a target below 100%)")
    hr, hc = opt["holding_rate"], opt["holding_cost"]
    both = ~np.isnan(hr) & ~np.isnan(hc)
    report(both, "holding_cost", lambda i: "give holding_rate or holding_cost, not both")
    neither = np.isnan(hr) & np.isnan(hc)
    report(neither, "holding_cost", lambda i: "one of holding_rate or holding_cost is required")
    holding = np.where(np.isnan(hc), hr * arr["unit_cost"], hc)

    dist_text = (df["demand_distribution"].astype("string").str.strip().str.lower()
                 .fillna("normal") if "demand_distribution" in df.columns
                 else pd.Series(["normal"] * n))
    dist_text = dist_text.where(dist_text != "", "normal")
    known_dist = dist_text.isin(list(DISTRIBUTION_CODES))
    report(~known_dist.to_numpy(), "demand_distribution",
           lambda i: f"must be one of {', '.join(DISTRIBUTION_CODES)}, got {dist_text.iloc[i]!r}")
    dist = dist_text.map(DISTRIBUTION_CODES).fillna(0).to_numpy(dtype=np.int8)

    specs = np.stack([~np.isnan(opt[c]) for c in ("shortage_cost", "cycle_service", "fill_rate")])
    report(specs.sum(axis=0) > 1, "shortage_cost",
           lambda i: "give at most one of shortage_cost, cycle_service, fill_rate")
    days = scenario.days_per_year
    L = arr["lead_time_days"] / days
    sd_ltd = np.sqrt(np.maximum(L * opt["demand_sd"] ** 2
                                + (D / days) ** 2 * opt["lead_time_sd_days"] ** 2, 0.0))
    stochastic = (sd_ltd > 0) | (dist == POISSON)
    report(stochastic & (specs.sum(axis=0) == 0), "shortage_cost",
           lambda i: "demand or lead time is uncertain: give one of shortage_cost, "
                     "cycle_service, fill_rate")
    mean_ltd = D * L
    report((dist == UNIFORM) & (mean_ltd - np.sqrt(3) * sd_ltd < -1e-9), "demand_distribution",
           lambda i: "uniform lead-time demand fitted to its mean and sd would go below 0 "
                     "(needs sd <= mean / sqrt(3))")
    report((dist == 2) & (sd_ltd <= 0), "demand_distribution",
           lambda i: "gamma needs a positive lead-time demand sd (demand_sd or lead_time_sd_days)")

    supplier = (df["supplier"].astype("string").str.strip().fillna("default")
                if "supplier" in df.columns else pd.Series(["default"] * n))
    supplier = supplier.where(supplier != "", "default").to_numpy(dtype=object)
    if scenario.vehicles is not None:
        for sup in pd.unique(supplier):
            spec = scenario.vehicles.spec_for(str(sup))
            if spec is None:
                continue
            mask = supplier == sup
            per = opt["unit_weight"] if spec.measure == "weight" else opt["unit_volume"]
            col = "unit_weight" if spec.measure == "weight" else "unit_volume"
            report(mask & (per <= 0), col, lambda i: f"supplier {supplier[i]!r} ships by "
                   f"{spec.measure}: a positive {col} is needed for its trucks")
            report(mask & (per > spec.capacity), col, lambda i: f"one unit ({per[i]:g}) exceeds "
                   f"the vehicle capacity {spec.capacity:g}")
    return dict(
        sku=ids, annual_demand=D, demand_sd=opt["demand_sd"],
        lead_time_days=arr["lead_time_days"], lead_time_sd_days=opt["lead_time_sd_days"],
        unit_cost=arr["unit_cost"], ordering_cost=arr["ordering_cost"], holding_cost=holding,
        shortage_cost=opt["shortage_cost"], cycle_service=opt["cycle_service"],
        fill_rate=opt["fill_rate"], distribution=dist, moq=opt["moq"],
        order_multiple=np.nan_to_num(opt["order_multiple"], nan=0.0),
        unit_volume=opt["unit_volume"], unit_weight=opt["unit_weight"], supplier=supplier,
        supplier_on_time=opt["supplier_on_time"], sales_share=opt["sales_share"],
        on_hand=opt["on_hand"])


def instance_from_frames(skus: pd.DataFrame, scenario: dict | Scenario | None = None,
                         name: str = "base") -> Instance:
    """Validated Instance from a SKU DataFrame and a scenario (dict in the TOML structure,
    or a Scenario). Raises InstanceError listing every problem."""
    issues: list[Issue] = []
    if isinstance(scenario, Scenario):
        sc = scenario
    else:
        sc, issues = scenario_from_dict(scenario or {}, default_name=name)
    arrays = _validate_frame(skus.copy(), sc, issues)
    if issues or arrays is None:
        raise InstanceError(issues)
    frame = skus.reset_index(drop=True)
    return Instance(frame=frame, scenario=sc, **arrays)


def instance_from_dict(doc: dict, name: str = "base") -> Instance:
    if not isinstance(doc, dict) or "skus" not in doc:
        raise InstanceError([Issue(None, None, "skus", "the JSON document needs a 'skus' list")])
    skus = doc["skus"]
    if not isinstance(skus, list) or not all(isinstance(r, dict) for r in skus):
        raise InstanceError([Issue(None, None, "skus", "must be a list of objects")])
    return instance_from_frames(pd.DataFrame(skus), doc.get("scenario", {}), name=name)


def _read_skus(directory: Path) -> pd.DataFrame:
    found = [p for p in (directory / "skus.csv", directory / "skus.parquet",
                         directory / "skus.xlsx") if p.exists()]
    if not found:
        raise InstanceError([Issue(None, None, "skus", f"{directory} holds no skus.csv, "
                                                       "skus.parquet or skus.xlsx")])
    if len(found) > 1:
        raise InstanceError([Issue(None, None, "skus", "more than one SKU file: "
                                   + ", ".join(p.name for p in found))])
    path = found[0]
    try:
        if path.suffix == ".csv":
            return pd.read_csv(path, dtype={"sku": str, "supplier": str},
                               keep_default_na=True, skipinitialspace=True)
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_excel(path, dtype={"sku": str, "supplier": str})
    except Exception as exc:  # a file the reader cannot parse
        raise InstanceError([Issue(None, None, "skus", f"cannot read {path.name}: {exc}")])


def load_instance(path) -> Instance:
    """Load and validate an instance directory or JSON file (see module docstring)."""
    path = Path(path)
    if path.is_file():
        try:
            doc = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise InstanceError([Issue(None, None, "file", f"{path}: not valid JSON ({exc})")])
        return instance_from_dict(doc, name=path.stem)
    if not path.is_dir():
        raise InstanceError([Issue(None, None, "file", f"{path} does not exist")])
    skus = _read_skus(path)
    scen_path = path / "scenario.toml"
    doc = {}
    if scen_path.exists():
        try:
            doc = tomllib.loads(scen_path.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise InstanceError([Issue(None, None, "scenario.toml", f"not valid TOML: {exc}")])
    return instance_from_frames(skus, doc, name=path.name)


def validate(path) -> list[Issue]:
    """Every problem of the instance at `path` (empty when it is valid)."""
    try:
        load_instance(path)
    except InstanceError as exc:
        return exc.issues
    return []


def write_instance(instance: Instance, directory, fmt: str = "csv") -> None:
    """Write skus.<fmt> and scenario.toml so that load_instance reads the same instance."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    frame = instance.frame
    if fmt == "csv":
        atomic_write_text(directory / "skus.csv", frame.to_csv(index=False))
    elif fmt == "parquet":
        import io as _io

        buf = _io.BytesIO()
        frame.to_parquet(buf, index=False)
        atomic_write_bytes(directory / "skus.parquet", buf.getvalue())
    elif fmt == "xlsx":
        import io as _io

        buf = _io.BytesIO()
        frame.to_excel(buf, index=False)
        atomic_write_bytes(directory / "skus.xlsx", buf.getvalue())
    else:
        raise ValueError(f"fmt must be csv, parquet or xlsx, got {fmt!r}")
    for other in ("skus.csv", "skus.parquet", "skus.xlsx"):
        if other != f"skus.{fmt}" and (directory / other).exists():
            (directory / other).unlink()
    atomic_write_text(directory / "scenario.toml", scenario_to_toml(instance.scenario))


# -- plan inputs: forecast, open orders, period budgets ----------------------------------
class TableError(InstanceError):
    """A plan input table (forecast, open orders, period budgets) has problems."""

    def __init__(self, name: str, issues: list[Issue]):
        self.name = self.where = name
        super().__init__(issues)


def load_period_table(path, value: str, horizon: int, skus=None, *, positive: bool = False,
                      unique: bool = True, beyond_horizon: bool = False) -> pd.DataFrame:
    """Read and validate a long table of per-period values for `optimizer plan`.

    Columns: sku (only when `skus` is given), period, `value` (forecast: demand, units per
    period; open orders: quantity, units arriving in that period; period budgets: budget,
    money per order period). Checks every row at once: SKU known, period a whole number in
    1..horizon, value a finite number >= 0 (> 0 when `positive`), and with `unique` no
    (sku, period) given twice (open orders may repeat: several deliveries add up). Raises
    TableError naming the row (1 = first data row), the SKU and the field of every problem;
    returns the frame with sku as str, period as int and value as float.

    `beyond_horizon`: rows for whole periods after the horizon are valid (a forecast or an
    ERP export covering a year, planned 12 weeks at a time) but not returned; their count
    and period range are in `frame.attrs["beyond"]` = (rows, first, last), for the caller
    to report (nothing the user gave is dropped silently).
    """
    path = Path(path)
    name = path.name
    try:
        df = pd.read_csv(path, dtype={"sku": str}, skipinitialspace=True)
    except Exception as exc:  # a file the reader cannot parse
        raise TableError(name, [Issue(None, None, "file", f"cannot read {path}: {exc}")])
    df.columns = [str(c).strip() for c in df.columns]
    for sep, what in ((";", "semicolon"), ("\t", "tab")):
        if len(df.columns) == 1 and sep in df.columns[0]:
            raise TableError(name, [Issue(None, None, "file", f"the header reads as one "
                                          f"column with {what}s in it: the file looks "
                                          f"{what}-separated; save it as comma-separated CSV "
                                          "with '.' as the decimal point")])
    need = (["sku"] if skus is not None else []) + ["period", value]
    missing = [c for c in need if c not in df.columns]
    issues = [Issue(None, None, c, "required column is missing") for c in missing]
    if issues:
        raise TableError(name, issues)
    n = len(df)
    ids = (df["sku"].astype("string").fillna("").str.strip().to_numpy(dtype=object)
           if skus is not None else np.full(n, None, dtype=object))

    def report(mask, field, message_fn):
        rows = np.flatnonzero(np.asarray(mask))
        for i in rows[:MAX_MESSAGES]:
            issues.append(Issue(int(i) + 1, ids[i] or None, field, message_fn(i)))

    if skus is not None:
        known = set(str(s) for s in skus)
        report(np.array([s not in known for s in ids]), "sku",
               lambda i: f"unknown SKU {ids[i]!r} (not in the SKU master)" if ids[i]
               else "is empty")
    per = pd.to_numeric(df["period"], errors="coerce").to_numpy(dtype=float)
    late = np.isfinite(per) & (per == np.round(per)) & (per > horizon)
    bad_per = ~np.isfinite(per) | (per != np.round(per)) | (per < 1) | (
        (per > horizon) & ~beyond_horizon)
    span = ">= 1" if beyond_horizon else f"in 1..{horizon}"
    report(bad_per, "period", lambda i: f"must be a whole period {span}, got "
                                        f"{str(df['period'].iloc[i])!r}")
    val = pd.to_numeric(df[value], errors="coerce").to_numpy(dtype=float)
    report(~np.isfinite(val), value, lambda i: f"is not a finite number: {str(df[value].iloc[i])!r}")
    low = np.isfinite(val) & ((val <= 0) if positive else (val < 0))
    report(low, value, lambda i: f"must be {'> 0' if positive else '>= 0'}, got {val[i]:g}")
    if unique:
        key = pd.DataFrame({"sku": ids.astype(str), "period": per})
        dup = key.duplicated(keep="first").to_numpy() & ~bad_per
        if dup.any():
            first = {}
            for i, k in enumerate(zip(key["sku"], key["period"])):
                first.setdefault(k, i + 1)
            report(dup, "period", lambda i: f"period {int(per[i])} given twice (first at row "
                                            f"{first[(str(ids[i]), per[i])]})")
    if issues:
        raise TableError(name, issues)
    out = pd.DataFrame({"period": per.astype(int), value: val})
    if skus is not None:
        out.insert(0, "sku", ids.astype(str))
    if beyond_horizon:
        out = out[~late].reset_index(drop=True)
        out.attrs["beyond"] = ((int(late.sum()), int(per[late].min()), int(per[late].max()))
                               if late.any() else (0, 0, 0))
    return out
