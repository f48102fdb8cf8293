"""Bundled catalog rows from SkyPilot's public price catalog, where no cloud API can be reached.

    python tools/catalog_from_skypilot.py CLOUD VMS_CSV --catalog FILE --path PATH --commit SHA \\
        --as-of YYYY-MM-DD --dating TEXT [--keep-newer] [--exclude CLOUD/REGION/TYPE/CAPACITY ...]

VMS_CSV is a local copy of (any rows of) ``catalogs/<version>/<cloud>/vms.csv`` from
https://github.com/skypilot-org/skypilot-catalog, which SkyPilot's fetchers generate from the
AWS Price List API and EC2 spot price history, the GCP Cloud Billing Catalog and the Azure Retail
Prices API. ``--path`` and ``--commit`` say which file and version it is; they go into every
row's ``source`` with ``--dating``, the sentence that says how ``--as-of`` was established (the
catalog files carry no date of their own).

The rows written are the ones ``tools/make_catalog.py`` would fetch live (its shapes, REGIONS and
capacity types, through its ``targets``); ``gpus``, ``vcpus`` and ``memory_gib`` come from those
shapes, and a SkyPilot column that disagrees is named in the row's source. Per region:

* on-demand: ``Price``. SkyPilot repeats it for every zone; should zones disagree, the highest.
* spot: the highest ``SpotPrice`` of the region's zones. A spot node's zone is often not known
  when the catalog prices it, and the catalog is a guardrail's fallback: the highest zone never
  understates what a node placed anywhere in the region cost (the live AWS feed, which knows
  the zones, takes the node's own zone or the median). A spot figure not below the on-demand
  one is no spot price and is left out (a spot node then gets the on-demand row, and says so).
* GCP lists host VMs and attached GPUs as separate rows, per zone: a VM's price is its host
  row plus the row of its GPUs (model and count) in the same zone.

Money is Decimal throughout. The rows are merged into ``--catalog``: a row with the same (cloud,
instance type, region, capacity type) is replaced, every other row is kept. ``--keep-newer``
keeps an existing row dated after ``--as-of`` instead (a newer figure from elsewhere is not
overwritten by an older snapshot); ``--exclude`` (fnmatch patterns) leaves figures out.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import importlib.util
import io
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path
from types import ModuleType

from costwarden.pricefeeds.catalog_rows import CatalogTarget, catalog_csv, plain, row_of
from costwarden.pricefeeds.gcp_machines import ACCELERATORS, machine_shape
from costwarden.pricing import Catalog

REPOSITORY = "skypilot-org/skypilot-catalog"
ORIGINS = {
    "aws": "prices from the AWS Price List API and EC2 spot price history",
    "gcp": "prices from the GCP Cloud Billing Catalog API",
    "azure": "prices from the Azure Retail Prices API",
}
_COLUMNS = {"Price": "on-demand", "SpotPrice": "spot"}
_REQUIRED = ("InstanceType", "Price", "SpotPrice", "Region")
_N1_ATTACHED = re.compile(r"^(?P<host>[a-z0-9-]+)\+")


def _tools_module(name: str) -> ModuleType:
    """A sibling script of this one (``tools/`` is not a package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_make_catalog = _tools_module("make_catalog")
CAPACITIES: tuple[str, ...] = _make_catalog.CAPACITIES
REGIONS: Mapping[str, tuple[str, ...]] = _make_catalog.REGIONS
targets: Callable[[Iterable[str]], list[CatalogTarget]] = _make_catalog.targets


@dataclass(frozen=True, slots=True)
class Listing:
    """One row of a SkyPilot vms.csv."""

    instance_type: str  # empty on GCP's GPU rows
    accelerator: str
    accelerator_count: Decimal | None
    vcpus: Decimal | None
    memory_gib: Decimal | None
    region: str
    zone: str  # empty where the cloud is listed per region (Azure)
    prices: Mapping[str, Decimal | None]  # "Price" and "SpotPrice"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Which SkyPilot file the listings are, and how old."""

    path: str
    commit: str
    as_of: date
    dating: str  # how as_of was established, for the source


@dataclass(frozen=True, slots=True)
class _ZonePrice:
    zone: str
    hourly: Decimal
    parts: str  # how the figure was made, for the source ("" for a single row)


def read_listings(text: str, origin: str = "vms.csv") -> list[Listing]:
    """Parse SkyPilot's vms.csv (any subset of its rows, header first)."""
    reader = csv.DictReader(io.StringIO(text))
    header = tuple(reader.fieldnames or ())
    missing = [c for c in _REQUIRED if c not in header]
    if missing:
        raise ValueError(f"{origin}:1: missing column(s) {', '.join(missing)}")
    listings: list[Listing] = []
    for raw in reader:
        try:
            listings.append(_listing(raw))
        except ValueError as exc:
            raise ValueError(f"{origin}:{reader.line_num}: {exc}") from None
    return listings


def _listing(raw: Mapping[str, str | None]) -> Listing:
    def text(column: str) -> str:
        return (raw.get(column) or "").strip()

    region = text("Region")
    if not region:
        raise ValueError("Region is empty")
    return Listing(
        instance_type=text("InstanceType"),
        accelerator=text("AcceleratorName"),
        accelerator_count=_number(text("AcceleratorCount"), "AcceleratorCount"),
        vcpus=_number(text("vCPUs"), "vCPUs"),
        memory_gib=_number(text("MemoryGiB"), "MemoryGiB"),
        region=region,
        zone=text("AvailabilityZone"),
        prices={column: _number(text(column), column) for column in _COLUMNS},
    )


def _number(value: str, column: str) -> Decimal | None:
    """A Decimal, or None for an empty cell (pandas writes NaN as nothing)."""
    if not value:
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{column} {value!r} is not a number") from None
    if number.is_nan():
        return None
    if not number.is_finite() or number < 0:
        raise ValueError(f"{column} {value!r} is not a price")
    return number


def rows_from_listings(
    listings: Sequence[Listing],
    snapshot: Snapshot,
    wanted: Sequence[CatalogTarget],
    exclude: Sequence[str] = (),
) -> tuple[list[dict[str, str]], list[str]]:
    """Catalog rows for the wanted targets the listings price, and a note per target left out."""
    rows: list[dict[str, str]] = []
    notes: list[str] = []
    for target in wanted:
        label = f"{target.cloud} {target.region} {target.instance_type} {target.capacity_type}"
        if any(fnmatch.fnmatchcase(_pattern_key(target), p.lower()) for p in exclude):
            notes.append(f"excluded: {label}")
            continue
        column = "Price" if target.capacity_type == "on-demand" else "SpotPrice"
        zoned = _zone_prices(target, listings, column)
        if not zoned:
            notes.append(f"no {column}: {label}")
            continue
        top = max(zoned, key=lambda z: z.hourly)
        if target.capacity_type == "spot":
            on_demand = _zone_prices(target, listings, "Price")
            if on_demand and top.hourly >= max(z.hourly for z in on_demand):
                notes.append(f"spot not below on-demand ({plain(top.hourly)}), left out: {label}")
                continue
        source = _source(
            target,
            snapshot,
            column,
            top=top,
            zoned=zoned,
            listed=_zones_listed(target, listings),
            disagreements=_disagreements(target, listings),
        )
        rows.append(_row(target, top.hourly, source, snapshot.as_of))
    return rows, notes


def _pattern_key(target: CatalogTarget) -> str:
    return f"{target.cloud}/{target.region}/{target.instance_type}/{target.capacity_type}".lower()


def _zone_prices(target: CatalogTarget, listings: Sequence[Listing], column: str) -> list[_ZonePrice]:
    """Per zone of the target's region, the target's price in one column (the highest of any
    duplicate rows for a zone); zones without one are left out."""
    if target.cloud == "gcp":
        return _gcp_zone_prices(target, listings, column)
    best: dict[str, Decimal] = {}
    for listing in _own(target, listings):
        value = listing.prices[column]
        if value is not None and (listing.zone not in best or value > best[listing.zone]):
            best[listing.zone] = value
    return [_ZonePrice(zone, hourly, "") for zone, hourly in sorted(best.items())]


def _own(target: CatalogTarget, listings: Sequence[Listing]) -> list[Listing]:
    kind = target.instance_type.lower()
    return [
        x for x in listings if x.instance_type.lower() == kind and x.region.lower() == target.region.lower()
    ]


def _gcp_parts(target: CatalogTarget) -> tuple[str, str | None, int]:
    """The host machine type, SkyPilot's name of its GPUs (None without) and their count."""
    shape = machine_shape(target.instance_type)
    attached = _N1_ATTACHED.match(target.instance_type.lower())
    host = attached["host"] if attached else target.instance_type.lower()
    if shape is None or not shape.accelerator or not shape.gpus:
        return host, None, 0
    return host, ACCELERATORS[shape.accelerator].model, shape.gpus


def _gcp_zone_prices(target: CatalogTarget, listings: Sequence[Listing], column: str) -> list[_ZonePrice]:
    host, gpu, count = _gcp_parts(target)
    region = target.region.lower()
    hosts: dict[str, Decimal] = {}
    gpus: dict[str, Decimal] = {}
    for x in listings:
        value = x.prices[column]
        if value is None or x.region.lower() != region:
            continue
        if x.instance_type.lower() == host and not x.accelerator:
            hosts[x.zone] = max(value, hosts.get(x.zone, value))
        elif not x.instance_type and x.accelerator == gpu and x.accelerator_count == Decimal(count):
            gpus[x.zone] = max(value, gpus.get(x.zone, value))
    zoned: list[_ZonePrice] = []
    for zone, host_price in sorted(hosts.items()):
        if gpu is None:
            zoned.append(_ZonePrice(zone, host_price, f"host {host} {plain(host_price)}"))
        elif zone in gpus:
            parts = f"host {host} {plain(host_price)} + {count}x{gpu} {plain(gpus[zone])}"
            zoned.append(_ZonePrice(zone, host_price + gpus[zone], parts))
    return zoned


def _zones_listed(target: CatalogTarget, listings: Sequence[Listing]) -> int:
    """How many zones list the VM at all, priced or not (GCP: its host row)."""
    if target.cloud == "gcp":
        host = _gcp_parts(target)[0]
        region = target.region.lower()
        return len(
            {x.zone for x in listings if x.instance_type.lower() == host and x.region.lower() == region}
        )
    return len({x.zone for x in _own(target, listings)})


def _disagreements(target: CatalogTarget, listings: Sequence[Listing]) -> list[str]:
    """SkyPilot columns that disagree with the shape the row records."""
    found: set[str] = set()
    checks: tuple[tuple[str, str, Decimal | None], ...]
    if target.cloud == "gcp":
        host = _gcp_parts(target)[0]
        region = target.region.lower()
        own = [x for x in listings if x.instance_type.lower() == host and x.region.lower() == region]
        checks = (("vCPUs", "vcpus", target.vcpus), ("MemoryGiB", "memory_gib", target.memory_gib))
    else:
        own = _own(target, listings)
        checks = (
            ("AcceleratorCount", "accelerator_count", Decimal(target.gpus) if target.gpus else None),
            ("vCPUs", "vcpus", target.vcpus),
            ("MemoryGiB", "memory_gib", target.memory_gib),
        )
    for column, attribute, expected in checks:
        for x in own:
            value = getattr(x, attribute)
            if value is not None and value != expected:
                found.add(f"SkyPilot's {column} {plain(value)}")
    return sorted(found)


def _source(
    target: CatalogTarget,
    snapshot: Snapshot,
    column: str,
    *,
    top: _ZonePrice,
    zoned: Sequence[_ZonePrice],
    listed: int,
    disagreements: Sequence[str],
) -> str:
    what = f"{column}: {top.parts}" if top.parts else column
    if target.cloud == "azure" or (len(zoned) == 1 and not top.zone):
        how = "the region's price"
    elif column == "SpotPrice":
        how = f"spot: highest of {len(zoned)} zone(s)"
        if listed > len(zoned):
            how += f", {listed - len(zoned)} more listed without one"
    elif len({z.hourly for z in zoned}) == 1:
        how = f"the same in {len(zoned)} zone(s)"
    else:
        lowest = min(z.hourly for z in zoned)
        how = f"zones differ ({plain(lowest)} to {plain(top.hourly)}): highest of {len(zoned)} zone(s)"
    shape = ""
    if disagreements:
        shape = f"; shape per tools/make_catalog.py ({', '.join(disagreements)})"
    return (
        f"SkyPilot catalog {REPOSITORY} {snapshot.path} @{snapshot.commit[:7]} {target.region}; "
        f"{what}, {how}{shape}; {snapshot.dating}; {ORIGINS[target.cloud]}"
    )


def _row(target: CatalogTarget, hourly: Decimal, source: str, as_of: date) -> dict[str, str]:
    return {
        "cloud": target.cloud,
        "instance_type": target.instance_type,
        "region": target.region,
        "capacity_type": target.capacity_type,
        "hourly_usd": plain(hourly),
        "gpus": str(target.gpus),
        "gpu_model": target.gpu_model or "",
        "vcpus": plain(target.vcpus),
        "memory_gib": plain(target.memory_gib),
        "source": source,
        "as_of": as_of.isoformat(),
    }


def _key(row: Mapping[str, str]) -> tuple[str, str, str, str]:
    return (row["cloud"].lower(), row["instance_type"].lower(), row["region"].lower(), row["capacity_type"])


def merge(
    existing: Iterable[dict[str, str]], new: Iterable[dict[str, str]], keep_newer: bool = False
) -> tuple[list[dict[str, str]], list[str]]:
    """The existing rows with the new ones merged in (same key: replaced, unless ``keep_newer``
    and the existing row is dated later), in make_catalog's order; and a line per change."""
    merged = {_key(row): row for row in existing}
    notes: list[str] = []
    for row in new:
        key = _key(row)
        old = merged.get(key)
        label = " ".join((row["cloud"], row["region"], row["instance_type"], row["capacity_type"]))
        if old is None:
            notes.append(f"added {label} {row['hourly_usd']}")
        elif keep_newer and old["as_of"] > row["as_of"]:
            notes.append(
                f"kept {label} {old['hourly_usd']} ({old['as_of']}; newer than {row['as_of']}: "
                f"this snapshot says {row['hourly_usd']})"
            )
            continue
        elif Decimal(old["hourly_usd"]) != Decimal(row["hourly_usd"]):
            notes.append(f"replaced {label} {old['hourly_usd']} -> {row['hourly_usd']}")
        else:
            notes.append(f"replaced {label} {row['hourly_usd']} (same figure)")
        merged[key] = row
    clouds = list(REGIONS)
    order = sorted(
        merged.values(),
        key=lambda r: (clouds.index(r["cloud"]), r["region"], r["instance_type"], r["capacity_type"]),
    )
    return order, notes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cloud", choices=tuple(REGIONS))
    parser.add_argument("vms", type=Path, help="a local copy of (rows of) SkyPilot's vms.csv")
    parser.add_argument("--catalog", type=Path, required=True, help="the catalog CSV to merge into")
    parser.add_argument("--path", required=True, help="the file in the SkyPilot repository")
    parser.add_argument("--commit", required=True, help="the SkyPilot repository commit read")
    parser.add_argument("--as-of", required=True, type=date.fromisoformat, help="YYYY-MM-DD")
    parser.add_argument("--dating", required=True, help="how --as-of was established (goes into source)")
    parser.add_argument("--keep-newer", action="store_true", help="keep existing rows dated after --as-of")
    parser.add_argument(
        "--exclude", action="append", default=[], metavar="CLOUD/REGION/TYPE/CAPACITY", help="fnmatch"
    )
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[0-9a-f]{7,40}", args.commit):
        parser.error(f"--commit {args.commit!r} is not a git commit")
    try:
        listings = read_listings(args.vms.read_text(encoding="utf-8"), str(args.vms))
        existing = Catalog.from_csv_text(args.catalog.read_text(encoding="utf-8"), str(args.catalog))
    except (OSError, ValueError) as exc:
        print(f"catalog from skypilot: {exc}", file=sys.stderr)
        return 1
    snapshot = Snapshot(args.path, args.commit, args.as_of, args.dating)
    rows, skipped = rows_from_listings(listings, snapshot, targets([args.cloud]), args.exclude)
    merged, changes = merge((row_of(r) for r in existing.rows), rows, args.keep_newer)
    text = catalog_csv(merged)
    Catalog.from_csv_text(text, str(args.catalog))  # what is written loads
    args.catalog.write_text(text, encoding="utf-8")
    for line in [*skipped, *changes]:
        print(f"catalog from skypilot: {line}", file=sys.stderr)
    print(
        f"catalog from skypilot: {len(rows)} {args.cloud} row(s) from {args.vms}, "
        f"{len(skipped)} target(s) without one; {len(merged)} rows in {args.catalog}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
