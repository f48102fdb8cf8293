"""Regenerate the bundled price catalog from the live feeds: ``make catalog``.

    python tools/make_catalog.py operator/costwarden/pricing/catalog.csv [aws gcp azure]

The same feed code as ``costwarden run --price-feed`` (costwarden.pricefeeds), for the main GPU
VM types in the main regions, on-demand and spot; every row carries the API, region and fetch
time in ``source`` and the fetch date in ``as_of``. Naming clouds regenerates only theirs: the
other clouds' rows are kept from the file as they are. It needs network access and credentials:
AWS through boto3's default chain (``pricing:GetProducts``, ``ec2:DescribeSpotPriceHistory``),
GCP through Application Default Credentials (Cloud Billing API enabled), Azure none. Any feed
failing leaves the file untouched and exits 1 with one line per failure.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from costwarden.pricefeeds import PriceFeed, feeds_from_names
from costwarden.pricefeeds.catalog_rows import CatalogTarget, catalog_csv, generate, row_of
from costwarden.pricefeeds.errors import one_line
from costwarden.pricefeeds.gcp_machines import ACCELERATORS, machine_shape
from costwarden.pricing import Catalog

CAPACITIES = ("on-demand", "spot")
REGIONS = {
    "aws": ("us-east-1", "us-west-2", "eu-west-1"),
    "gcp": ("us-central1", "europe-west4"),
    "azure": ("eastus", "westeurope"),
}
# (instance type, GPUs, GPU model, vCPUs, GiB): https://aws.amazon.com/ec2/instance-types/accelerated-computing/
AWS_SHAPES = (
    ("p5.48xlarge", 8, "H100", 192, 2048),
    ("p4d.24xlarge", 8, "A100", 96, 1152),
    ("p4de.24xlarge", 8, "A100-80GB", 96, 1152),
    ("p3.2xlarge", 1, "V100", 8, 61),
    ("g6.xlarge", 1, "L4", 4, 16),
    ("g6.12xlarge", 4, "L4", 48, 192),
    ("g6.48xlarge", 8, "L4", 192, 768),
    ("g6e.xlarge", 1, "L40S", 4, 32),
    ("g6e.12xlarge", 4, "L40S", 48, 384),
    ("g6e.48xlarge", 8, "L40S", 192, 1536),
    ("g5.xlarge", 1, "A10G", 4, 16),
    ("g5.12xlarge", 4, "A10G", 48, 192),
    ("g5.48xlarge", 8, "A10G", 192, 768),
    ("g4dn.xlarge", 1, "T4", 4, 16),
    ("g4dn.12xlarge", 4, "T4", 48, 192),
)
# https://learn.microsoft.com/en-us/azure/virtual-machines/sizes/overview (GPU accelerated)
AZURE_SHAPES = (
    ("Standard_ND96isr_H100_v5", 8, "H100", 96, 1900),
    ("Standard_ND96asr_v4", 8, "A100", 96, 900),
    ("Standard_NC24ads_A100_v4", 1, "A100-80GB", 24, 220),
    ("Standard_NC96ads_A100_v4", 4, "A100-80GB", 96, 880),
    ("Standard_NC4as_T4_v3", 1, "T4", 4, 28),
    ("Standard_NC64as_T4_v3", 4, "T4", 64, 440),
    ("Standard_NV36ads_A10_v5", 1, "A10", 36, 440),
)
# Shapes from costwarden.pricefeeds.gcp_machines (the feed prices them from their parts).
GCP_TYPES = (
    "a3-highgpu-8g",
    "a3-megagpu-8g",
    "a2-highgpu-1g",
    "a2-highgpu-8g",
    "a2-ultragpu-8g",
    "g2-standard-4",
    "g2-standard-48",
    "n1-standard-8",
    "n1-standard-8+nvidia-tesla-t4x1",
    "n1-standard-8+nvidia-tesla-v100x1",
)


def targets(clouds: Iterable[str]) -> list[CatalogTarget]:
    """Every row to generate for these clouds."""
    shapes: list[tuple[str, str, int, str | None, Decimal, Decimal]] = []
    for cloud in clouds:
        if cloud == "gcp":
            shapes += [_gcp_shape(kind) for kind in GCP_TYPES]
        else:
            table = AWS_SHAPES if cloud == "aws" else AZURE_SHAPES
            shapes += [
                (cloud, k, gpus, model, Decimal(cpus), Decimal(gib)) for k, gpus, model, cpus, gib in table
            ]
    return [
        CatalogTarget(cloud, region, kind, capacity, gpus, model, cpus, gib)
        for cloud, kind, gpus, model, cpus, gib in shapes
        for region in REGIONS[cloud]
        for capacity in CAPACITIES
    ]


def _gcp_shape(kind: str) -> tuple[str, str, int, str | None, Decimal, Decimal]:
    shape = machine_shape(kind)
    assert shape is not None, kind
    model = ACCELERATORS[shape.accelerator].model if shape.accelerator and shape.gpus else None
    return ("gcp", kind, shape.gpus, model, Decimal(shape.vcpus), shape.memory_gib)


def main(
    argv: Sequence[str] | None = None,
    make_feeds: Callable[[Sequence[str]], Sequence[PriceFeed]] = feeds_from_names,
    now: datetime | None = None,
) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="the catalog CSV to write")
    parser.add_argument("clouds", nargs="*", help=f"only these of {', '.join(REGIONS)} (default: all)")
    args = parser.parse_args(argv)
    unknown = [c for c in args.clouds if c not in REGIONS]
    if unknown:
        parser.error(f"unknown cloud(s) {', '.join(unknown)}: one of {', '.join(REGIONS)}")
    clouds = tuple(dict.fromkeys(args.clouds or REGIONS))
    when = now or datetime.now(UTC)
    kept: dict[str, list[dict[str, str]]] = {}
    if set(clouds) != set(REGIONS) and args.out.exists():
        try:
            existing = Catalog.from_csv_text(args.out.read_text(), str(args.out))
        except (OSError, ValueError) as exc:
            print(f"make catalog: cannot keep the other clouds' rows: {one_line(exc)}", file=sys.stderr)
            return 1
        for row in existing.rows:
            if row.cloud not in clouds:
                kept.setdefault(row.cloud, []).append(row_of(row))
    made: dict[str, list[dict[str, str]]] = {}
    failures: list[str] = []
    try:
        feeds = make_feeds(clouds)
    except Exception as exc:
        failures.append(f"cannot set up the feeds: {one_line(exc)}")
        feeds = ()
    for feed in feeds:
        try:
            found, notes = generate([feed], targets([feed.cloud]), when)
        except Exception as exc:  # no network, no credentials, no permission: say which feed and why
            failures.append(f"{feed.name}: {one_line(exc)}")
            continue
        if not found:
            failures.append(f"{feed.name}: no prices at all ({len(notes)} note(s))")
        made[feed.cloud] = sorted(found, key=_order)
        for note in notes:
            print(f"make catalog: {note}", file=sys.stderr)
    if failures:
        for line in failures:
            print(f"make catalog: {line}", file=sys.stderr)
        print(
            f"make catalog: {args.out} left unchanged; this needs network access and credentials "
            "(AWS: boto3's default chain; GCP: Application Default Credentials; Azure: none)",
            file=sys.stderr,
        )
        return 1
    rows = [row for cloud in REGIONS for row in made.get(cloud, kept.get(cloud, []))]
    args.out.write_text(catalog_csv(rows))
    print(f"make catalog: wrote {len(rows)} rows to {args.out}")
    return 0


def _order(row: dict[str, str]) -> tuple[str, str, str]:
    return (row["region"], row["instance_type"], row["capacity_type"])


if __name__ == "__main__":
    sys.exit(main())
