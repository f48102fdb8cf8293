"""A synthetic month of AWS CUR 2.0 for the billing benchmarks (``billing_bench.py``).

The column set and Parquet types are those of ``tests/billing_exports.write_cur2_parquet`` (the
CUR 2.0 data dictionary: costs DOUBLE, times TIMESTAMP in UTC, ``resource_tags`` a
MAP<string, string>), plus ``product_instance_type`` and ``product_sku``. That generator builds a
``Cur2Line`` per row, which at a million rows takes longer than the import it feeds; this one
builds the same columns with numpy, and ``billing_bench`` checks on a small month that the store
reads both alike.

The fleet's lines per node-hour, as AWS bills them:

* ``sp``: on-demand nodes under a Compute Savings Plan. A covered hour is a
  ``SavingsPlanCoveredUsage`` line (unblended = the on-demand cost, effective = the plan's rate)
  plus its ``SavingsPlanNegation`` (unblended = minus the on-demand cost, effective 0); an hour
  the plan does not cover (``sp_uncovered`` of them, at random) is a ``Usage`` line at list.
* ``ri``: on-demand nodes under a reserved instance: ``DiscountedUsage``, unblended 0,
  ``reservation_effective_cost`` the amortised rate.
* ``spot``: ``Usage`` with usage type ``SpotUsage:<type>`` at the hour's spot price of the node's
  zone, a mean-reverting walk (moves of a few % an hour) around a level that drifts over the month.

Besides the nodes: a gp3 volume per node, billed daily and tagged with the node's SkyPilot
cluster (what reconciliation counts as non-compute spend), and a few ``Credit`` lines a day.

Money is generated in whole 1e-8 dollars (int64), so the exact total of every column is an
integer sum here, independent of DuckDB and of floating point; a DOUBLE of such a value prints
back as the same decimal (at most 15 significant digits), which is how the store reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

UNIT = Decimal("1e-8")  # generated money is an integer number of these
UNITS_PER_DOLLAR = 100_000_000
MONTH = datetime(2026, 11, 1, tzinfo=UTC)
MONTH_HOURS = 30 * 24
_US_PER_HOUR = 3_600_000_000
_TS = pa.timestamp("us", tz="UTC")

SP_RATE = Decimal("0.66")  # Savings Plan rate / on-demand rate
RI_RATE = Decimal("0.62")  # reserved instance amortised rate / on-demand rate
SP_UNCOVERED = 0.10  # share of a Savings Plan node's hours billed at on-demand (plan exhausted)
SPOT_LEVEL = 0.42  # spot / on-demand at the start of the month
ZONES = ("us-east-1a", "us-east-1b", "us-east-1c")
GP3_DAILY_UNITS = 2_000 * 8 * UNITS_PER_DOLLAR // 100 // 30  # 2 TB of gp3 at $0.08/GB-month, a day
ON_DEMAND = {  # the bundled catalog's us-east-1 on-demand prices
    "p5.48xlarge": Decimal("55.04"),
    "p4d.24xlarge": Decimal("21.957642"),
}


@dataclass(frozen=True)
class Node:
    instance_id: str
    instance_type: str
    kind: str  # sp | ri | spot
    zone: str
    cluster: str  # SkyPilot cluster tag (its budget's)

    @property
    def resource(self) -> str:
        return f"aws:{self.instance_id}"

    @property
    def list_units(self) -> int:
        return int(ON_DEMAND[self.instance_type] / UNIT)


def fleet(counts: Sequence[tuple[str, str, int]], nodes_per_cluster: int = 5) -> list[Node]:
    """Nodes by (instance type, kind, count), ids ``i-…`` (17 hex digits), zones in turn."""
    nodes: list[Node] = []
    for instance_type, kind, count in counts:
        for _ in range(count):
            n = len(nodes)
            nodes.append(
                Node(
                    instance_id=f"i-{0x0A5C0000000000000 + n * 7919:017x}",
                    instance_type=instance_type,
                    kind=kind,
                    zone=ZONES[n % len(ZONES)],
                    cluster=f"sky-{n // nodes_per_cluster:04d}-ab12",
                )
            )
    return nodes


def spot_units(nodes: Sequence[Node], hours: int, seed: int) -> np.ndarray:
    """The spot price (1e-8 dollars) of each node's zone and type, per hour: (nodes, hours).

    Per (zone, type): a walk of ±3 % an hour pulled back to a level that starts at
    ``SPOT_LEVEL`` of on-demand and drifts ±15 % over the month; rounded to 4 decimals, as
    AWS publishes spot prices."""
    rng = np.random.default_rng(seed)
    pairs = sorted({(n.zone, n.instance_type) for n in nodes})
    series: dict[tuple[str, str], np.ndarray] = {}
    t = np.arange(hours) / max(hours - 1, 1)
    for zone, instance_type in pairs:
        drift = 1 + rng.uniform(-0.15, 0.15) * t  # the level moves over the month
        level = SPOT_LEVEL * float(ON_DEMAND[instance_type]) * drift
        price = np.empty(hours)
        price[0] = level[0]
        shocks = rng.normal(0, 0.03, hours)
        for h in range(1, hours):
            price[h] = price[h - 1] + 0.2 * (level[h] - price[h - 1]) + shocks[h] * level[h]
        series[(zone, instance_type)] = np.round(np.maximum(price, 0.05 * level), 4)
    out = np.stack([series[(n.zone, n.instance_type)] for n in nodes])
    return np.rint(out * UNITS_PER_DOLLAR).astype(np.int64)


@dataclass(frozen=True)
class Month:
    """A month of lines as columns (money in 1e-8 dollars), in generation order."""

    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["line_type"])

    def where(self, mask: np.ndarray) -> Month:
        return Month({k: v[mask] for k, v in self.columns.items()})

    def before(self, limit: datetime) -> Month:
        """The lines whose usage ends at or before ``limit`` (what a delivery made then holds)."""
        end = self.columns["start_us"] + self.columns["hours"] * _US_PER_HOUR
        return self.where(end <= _micros(limit))

    def exact(self, column: str) -> Decimal:
        """The exact sum of a money column in dollars."""
        return Decimal(int(self.columns[column].sum(dtype=np.int64))) * UNIT

    def exact_effective(self) -> Decimal:
        """The exact sum of the lines' EffectiveCost in dollars."""
        return Decimal(int(self.effective_units().sum(dtype=np.int64))) * UNIT

    def effective_units(self) -> np.ndarray:
        """EffectiveCost by AWS's rules (costwarden.billing.formats), in 1e-8 dollars."""
        c = self.columns
        kind = c["line_type"]
        return np.select(
            [kind == "SavingsPlanCoveredUsage", kind == "DiscountedUsage", kind == "SavingsPlanNegation"],
            [c["sp_effective"], c["ri_effective"], 0],
            c["unblended"],
        )

    def node_effective(self, until: datetime | None = None) -> dict[str, int]:
        """Effective cost (1e-8 dollars) per instance id of the node lines starting before ``until``."""
        c = self.columns
        mask = np.char.startswith(c["resource_id"].astype(str), "i-")
        if until is not None:
            mask &= c["start_us"] < _micros(until)
        ids, where = np.unique(c["resource_id"][mask].astype(str), return_inverse=True)
        sums = np.zeros(len(ids), dtype=np.int64)
        np.add.at(sums, where, self.effective_units()[mask])
        return dict(zip(ids.tolist(), sums.tolist(), strict=True))

    def table(self) -> pa.Table:
        """The lines as a CUR 2.0 Parquet table."""
        c = self.columns
        n = len(self)
        start = c["start_us"]
        end = start + c["hours"] * _US_PER_HOUR
        month_of = start.astype("datetime64[us]").astype("datetime64[M]")
        period = month_of.astype("datetime64[us]").astype(np.int64)

        def money(name: str) -> pa.Array:
            values = c[name] / UNITS_PER_DOLLAR
            return pa.array(values, pa.float64(), mask=c.get(name + "_null"))

        tag_values = np.stack([c["cluster"], np.full(n, "ml-research", dtype=object)], axis=1)
        tag_keys = np.array(["user:skypilot-cluster-name", "user:team"], dtype=object)
        offsets = np.where(c["tagged"], 2, 0).cumsum()
        tags = pa.MapArray.from_arrays(
            pa.array(np.concatenate([[0], offsets]).astype(np.int32)),
            pa.array(np.tile(tag_keys, n)[np.repeat(c["tagged"], 2)], pa.string()),
            pa.array(
                tag_values[c["tagged"]].ravel(),
                pa.string(),
            ),
        )
        return pa.table(
            {
                "bill_billing_period_start_date": pa.array(period, _TS),
                "bill_payer_account_id": pa.array(np.full(n, "111122223333", dtype=object), pa.string()),
                "line_item_usage_account_id": pa.array(np.full(n, "444455556666", dtype=object), pa.string()),
                "line_item_line_item_type": pa.array(c["line_type"], pa.string()),
                "line_item_usage_start_date": pa.array(start, _TS),
                "line_item_usage_end_date": pa.array(end, _TS),
                "line_item_product_code": pa.array(c["product"], pa.string()),
                "line_item_usage_type": pa.array(c["usage_type"], pa.string()),
                "line_item_resource_id": pa.array(c["resource_id"], pa.string()),
                "line_item_unblended_cost": money("unblended"),
                "line_item_currency_code": pa.array(np.full(n, "USD", dtype=object), pa.string()),
                "savings_plan_savings_plan_effective_cost": money("sp_effective"),
                "reservation_effective_cost": money("ri_effective"),
                "pricing_public_on_demand_cost": money("public"),
                "product_region_code": pa.array(np.full(n, "us-east-1", dtype=object), pa.string()),
                "product_instance_type": pa.array(c["instance_type"], pa.string()),
                "product_sku": pa.array(c["sku"], pa.string()),
                "resource_tags": tags,
            }
        )

    def write(self, directory: str, stem: str, parts: int = 1) -> list[str]:
        """Write the lines as ``parts`` Parquet files (a Data Exports delivery's parts)."""
        table = self.table()
        size = -(-len(self) // parts)
        paths = []
        for i in range(parts):
            path = f"{directory}/{stem}-{i + 1:05d}.snappy.parquet"
            pq.write_table(table.slice(i * size, size), path, row_group_size=128 * 1024)
            paths.append(path)
        return paths


def _micros(when: datetime) -> int:
    return int((when - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))


def month_lines(
    nodes: Sequence[Node],
    seed: int,
    start: datetime = MONTH,
    hours: int = MONTH_HOURS,
    credits_per_day: int = 3,
) -> Month:
    """Every line of ``hours`` hours from ``start`` for ``nodes`` (module docstring); a month by
    default (longer spans: each line in its own billing period)."""
    first = _micros(start)
    rng = np.random.default_rng(seed)
    ids = np.array([n.instance_id for n in nodes], dtype=object)
    types = np.array([n.instance_type for n in nodes], dtype=object)
    kinds = np.array([n.kind for n in nodes], dtype=object)
    clusters = np.array([n.cluster for n in nodes], dtype=object)
    lists = np.array([n.list_units for n in nodes], dtype=np.int64)
    spot = spot_units(nodes, hours, seed + 1)
    node_ix, hour_ix = np.meshgrid(np.arange(len(nodes)), np.arange(hours), indexing="ij")
    node_ix, hour_ix = node_ix.ravel(), hour_ix.ravel()
    kind = kinds[node_ix]
    covered = rng.random(len(node_ix)) >= SP_UNCOVERED
    sp_rate = int(SP_RATE * 100)
    ri_rate = int(RI_RATE * 100)
    listed = lists[node_ix]

    parts: list[dict[str, np.ndarray]] = []

    def add(mask: np.ndarray, line_type: str, usage: str, unblended: np.ndarray, **money: np.ndarray) -> None:
        count = int(mask.sum())
        ix = node_ix[mask]
        prefix = np.full(count, usage, dtype=object)
        zero = np.zeros(count, dtype=np.int64)
        null = np.ones(count, dtype=bool)
        part = {
            "line_type": np.full(count, line_type, dtype=object),
            "start_us": first + hour_ix[mask].astype(np.int64) * _US_PER_HOUR,
            "hours": np.ones(count, dtype=np.int64),
            "product": np.full(count, "AmazonEC2", dtype=object),
            "usage_type": prefix + types[ix],
            "resource_id": ids[ix],
            "instance_type": types[ix],
            "sku": np.full(count, "8VCNEHQMSCQS4P39", dtype=object),
            "cluster": clusters[ix],
            "tagged": np.ones(count, dtype=bool),
            "unblended": unblended,
            "public": listed[mask],
        }
        for name in ("sp_effective", "ri_effective"):
            given = money.get(name)
            part[name] = given if given is not None else zero
            part[name + "_null"] = np.zeros(count, dtype=bool) if given is not None else null
        part["public_null"] = np.zeros(count, dtype=bool)
        parts.append(part)

    sp_covered = (kind == "sp") & covered
    add(sp_covered, "SavingsPlanCoveredUsage", "BoxUsage:", listed[sp_covered],
        sp_effective=listed[sp_covered] * sp_rate // 100)  # fmt: skip
    add(sp_covered, "SavingsPlanNegation", "BoxUsage:", -listed[sp_covered])
    sp_open = (kind == "sp") & ~covered
    add(sp_open, "Usage", "BoxUsage:", listed[sp_open])
    ri = kind == "ri"
    add(ri, "DiscountedUsage", "BoxUsage:", np.zeros(int(ri.sum()), dtype=np.int64),
        ri_effective=listed[ri] * ri_rate // 100)  # fmt: skip
    is_spot = kind == "spot"
    add(is_spot, "Usage", "SpotUsage:", spot[node_ix[is_spot], hour_ix[is_spot]])

    days = hours // 24
    volumes = len(nodes) * days
    day_ix = np.repeat(np.arange(days), len(nodes))
    vol_node = np.tile(np.arange(len(nodes)), days)
    volume_ids = np.array(
        [f"vol-{0x0B7D0000000000000 + i * 104729:017x}" for i in range(len(nodes))], dtype=object
    )
    parts.append(
        _other_lines(
            volumes,
            "Usage",
            first + day_ix * 24 * _US_PER_HOUR,
            24,
            "EBS:VolumeUsage.gp3",
            volume_ids[vol_node],
            clusters[vol_node],
            np.full(volumes, GP3_DAILY_UNITS, dtype=np.int64),
        )
    )
    credit_count = days * credits_per_day
    parts.append(
        _other_lines(
            credit_count,
            "Credit",
            first + np.repeat(np.arange(days), credits_per_day) * 24 * _US_PER_HOUR,
            24,
            "Credit",
            np.full(credit_count, "", dtype=object),
            np.full(credit_count, "", dtype=object),
            -rng.integers(10 * UNITS_PER_DOLLAR, 500 * UNITS_PER_DOLLAR, credit_count),
            tagged=False,
        )
    )
    columns = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    order = np.argsort(columns["start_us"], kind="stable")  # an export is roughly in time order
    return Month({k: v[order] for k, v in columns.items()})


def _other_lines(
    count: int,
    line_type: str,
    start_us: np.ndarray,
    hours: int,
    usage: str,
    resource_id: np.ndarray,
    cluster: np.ndarray,
    unblended: np.ndarray,
    tagged: bool = True,
) -> dict[str, np.ndarray]:
    null = np.ones(count, dtype=bool)
    zero = np.zeros(count, dtype=np.int64)
    return {
        "line_type": np.full(count, line_type, dtype=object),
        "start_us": start_us.astype(np.int64),
        "hours": np.full(count, hours, dtype=np.int64),
        "product": np.full(count, "AmazonEC2", dtype=object),
        "usage_type": np.full(count, usage, dtype=object),
        "resource_id": resource_id,
        "instance_type": np.full(count, "", dtype=object),
        "sku": np.full(count, "HY3BZPP2B6K8MSJF", dtype=object),
        "cluster": cluster,
        "tagged": np.full(count, tagged, dtype=bool),
        "unblended": unblended.astype(np.int64),
        "public": zero,
        "sp_effective": zero,
        "sp_effective_null": null,
        "ri_effective": zero,
        "ri_effective_null": null,
        "public_null": null,
    }
