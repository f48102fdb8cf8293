"""The bundled catalog's contents, lookups with their fallbacks, and CSV errors."""

from __future__ import annotations

import importlib.util
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from costwarden.pricing import Catalog, CatalogError, load_bundled_catalog

ROOT = Path(__file__).resolve().parents[2]
HEADER = "cloud,instance_type,region,capacity_type,hourly_usd,gpus,gpu_model,vcpus,memory_gib,source,as_of\n"


@pytest.fixture(scope="module")
def bundled() -> Catalog:
    return load_bundled_catalog()


def _make_catalog() -> ModuleType:
    """tools/make_catalog.py: the shapes and regions the catalog is meant to cover."""
    spec = importlib.util.spec_from_file_location("make_catalog", ROOT / "tools" / "make_catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MAKE_CATALOG = _make_catalog()
AWS_TYPES = [shape[0] for shape in MAKE_CATALOG.AWS_SHAPES]
KARPENTER = "karpenter-provider-aws pkg/providers/pricing/zz_generated.pricing_aws.go"
SKYPILOT = "SkyPilot catalog skypilot-org/skypilot-catalog catalogs/"
ORIGINS = {
    "aws": "prices from the AWS Price List API",
    "gcp": "prices from the GCP Cloud Billing Catalog API",
    "azure": "prices from the Azure Retail Prices API",
}


def test_every_bundled_row_is_sourced_dated_and_positive(bundled: Catalog) -> None:
    assert len(bundled) >= 120
    for row in bundled.rows:
        assert row.source.strip(), row
        assert isinstance(row.as_of, date) and date(2024, 1, 1) <= row.as_of <= date(2027, 1, 1), row
        assert row.hourly_usd > 0, row
        assert row.vcpus > 0 and row.memory_gib > 0, row
        assert (row.gpus > 0) == (row.gpu_model is not None), row


def test_every_row_names_its_origin(bundled: Catalog) -> None:
    for row in bundled.rows:
        assert row.source.startswith((KARPENTER, SKYPILOT)), row
        assert ORIGINS[row.cloud] in row.source, row
        if row.source.startswith(SKYPILOT):
            # the file, the commit read and how the snapshot was dated
            assert f"/{row.cloud}/vms.csv @" in row.source and "snapshot undated" in row.source, row


def test_spot_rows_say_where_the_spot_price_came_from(bundled: Catalog) -> None:
    spot = [row for row in bundled.rows if row.capacity_type == "spot"]
    assert spot
    assert all("SpotPrice" in row.source for row in spot)
    # AWS and GCP price spot per zone: the row is the highest of the region's zones
    assert all("spot: highest of " in row.source for row in spot if row.cloud in ("aws", "gcp"))


@pytest.mark.parametrize("instance_type", AWS_TYPES)
def test_every_aws_shape_has_spot_rows(bundled: Catalog, instance_type: str) -> None:
    for region in ("us-east-1", "us-west-2"):
        row = bundled.lookup("aws", instance_type, region, "spot")
        assert row is not None, (instance_type, region)
        assert (row.region, row.capacity_type) == (region, "spot"), row
    on_demand = bundled.lookup("aws", instance_type, "us-east-1", "on-demand")
    assert on_demand is not None and on_demand.region == "us-east-1"


def test_spot_is_below_on_demand_for_every_pair(bundled: Catalog) -> None:
    pairs = 0
    for row in bundled.rows:
        if row.capacity_type != "spot":
            continue
        # the on-demand price a node of that type and region gets (another region's if unlisted)
        on_demand = bundled.lookup(row.cloud, row.instance_type, row.region, "on-demand")
        assert on_demand is not None, row
        assert row.hourly_usd < on_demand.hourly_usd, (row, on_demand)
        pairs += 1
    assert pairs >= 60


def test_regions_of_make_catalog_are_covered(bundled: Catalog) -> None:
    for kind in MAKE_CATALOG.GCP_TYPES:
        for region in MAKE_CATALOG.REGIONS["gcp"]:
            for capacity in ("on-demand", "spot"):
                row = bundled.lookup("gcp", kind, region, capacity)
                assert row is not None and (row.region, row.capacity_type) == (region, capacity)
    listed = {(row.cloud, row.region) for row in bundled.rows}
    assert {("aws", "us-east-1"), ("aws", "us-west-2"), ("aws", "eu-west-1"), ("azure", "eastus")} <= listed


def test_skypilot_aws_rows_are_dated_by_the_p5_price_cut(bundled: Catalog) -> None:
    """The SkyPilot AWS snapshot lists p4d/p4de/p5 at their prices before AWS cut them in June
    2025: its rows are dated 2025-06-01 at the latest, and those on-demand figures are left out
    (karpenter's newer us-east-1 rows stay; other regions fall back to them and say so)."""
    rows = [r for r in bundled.rows if r.cloud == "aws" and r.source.startswith(SKYPILOT)]
    assert rows and all(r.as_of == date(2025, 6, 1) and "@001367d" in r.source for r in rows)
    for kind in ("p4d.24xlarge", "p4de.24xlarge", "p5.48xlarge"):
        row = bundled.lookup("aws", kind, "us-west-2", "on-demand")
        assert row is not None and row.region == "us-east-1" and row.source.startswith(KARPENTER)
        assert "region us-west-2 not listed; us-east-1 price used" in row.source


@pytest.mark.parametrize(
    ("cloud", "instance_type", "region"),
    [
        ("aws", kind, "us-east-1")
        for kind in (
            "p5.48xlarge",
            "p4d.24xlarge",
            "p4de.24xlarge",
            "p3.2xlarge",
            "g6.xlarge",
            "g6.12xlarge",
            "g6.48xlarge",
            "g6e.xlarge",
            "g6e.12xlarge",
            "g6e.48xlarge",
            "g5.xlarge",
            "g5.12xlarge",
            "g5.48xlarge",
            "g4dn.xlarge",
            "g4dn.12xlarge",
        )
    ]
    + [
        ("gcp", kind, "us-central1")
        for kind in (
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
    ]
    + [
        ("azure", kind, "eastus")
        for kind in (
            "Standard_ND96isr_H100_v5",
            "Standard_ND96asr_v4",
            "Standard_NC24ads_A100_v4",
            "Standard_NC96ads_A100_v4",
            "Standard_NC4as_T4_v3",
            "Standard_NC64as_T4_v3",
            "Standard_NV36ads_A10_v5",
        )
    ],
)
def test_required_instance_types_are_listed(
    bundled: Catalog, cloud: str, instance_type: str, region: str
) -> None:
    row = bundled.lookup(cloud, instance_type, region, "on-demand")
    assert row is not None and row.region == region and row.capacity_type == "on-demand"


@pytest.mark.parametrize(
    ("instance_type", "price"),
    [
        ("p5.48xlarge", "55.04"),
        ("p4d.24xlarge", "21.957642"),
        ("g5.xlarge", "1.006"),
        ("g4dn.xlarge", "0.526"),
    ],
)
def test_reference_prices_are_exact(bundled: Catalog, instance_type: str, price: str) -> None:
    row = bundled.lookup("aws", instance_type, "us-east-1", "on-demand")
    assert row is not None
    assert row.hourly_usd == Decimal(price)
    assert row.as_of == date(2026, 7, 20)
    assert "karpenter-provider-aws" in row.source


def test_gcp_spot_row_is_used_for_spot_nodes(bundled: Catalog) -> None:
    row = bundled.lookup("gcp", "a3-highgpu-8g", "us-central1", "spot")
    assert row is not None
    assert row.capacity_type == "spot"
    assert row.hourly_usd == Decimal("20.19947")
    assert "on-demand price used" not in row.source


def test_spot_without_a_spot_row_falls_back_to_on_demand_and_says_so(bundled: Catalog) -> None:
    # SkyPilot lists ND H100 v5 "spot" at its on-demand price: no spot row was written for it
    row = bundled.lookup("azure", "Standard_ND96isr_H100_v5", "eastus", "spot")
    assert row is not None
    assert row.hourly_usd == Decimal("98.32")
    assert row.capacity_type == "on-demand"
    assert "no spot price listed; on-demand price used" in row.source


def test_aws_spot_row_is_used_for_spot_nodes(bundled: Catalog) -> None:
    row = bundled.lookup("aws", "g6.12xlarge", "us-east-1", "spot")
    assert row is not None
    assert (row.capacity_type, row.hourly_usd) == ("spot", Decimal("2.3398"))
    assert "SpotPrice, spot: highest of 4 zone(s)" in row.source
    assert "on-demand price used" not in row.source


def test_instance_type_and_cloud_match_case_insensitively(bundled: Catalog) -> None:
    row = bundled.lookup("AZURE", "standard_nc4as_t4_v3", "EastUS", "on-demand")
    assert row is not None and row.hourly_usd == Decimal("0.526")


def test_unknown_instance_type_or_cloud_gives_none(bundled: Catalog) -> None:
    assert bundled.lookup("aws", "x99.mega", "us-east-1", "on-demand") is None
    assert bundled.lookup("gcp", "p5.48xlarge", "us-east-1", "on-demand") is None


REGIONAL = Catalog.from_csv_text(
    HEADER
    + "aws,g5.xlarge,us-east-1,on-demand,1.006,1,A10G,4,16,src-east,2026-01-19\n"
    + "aws,g5.xlarge,*,on-demand,1.2,1,A10G,4,16,src-any,2026-01-19\n"
    + "aws,g5.xlarge,eu-west-1,spot,0.4,1,A10G,4,16,src-eu-spot,2026-01-19\n"
    + "aws,g4dn.xlarge,us-west-2,on-demand,0.526,1,T4,4,16,src-west,2026-01-19\n"
    + "aws,g4dn.xlarge,eu-west-1,on-demand,0.587,1,T4,4,16,src-eu,2026-01-19\n",
    "test.csv",
)


@pytest.mark.parametrize(
    ("instance_type", "region", "capacity", "price", "source"),
    [
        ("g5.xlarge", "us-east-1", "on-demand", "1.006", "src-east"),
        ("g5.xlarge", "ap-south-1", "on-demand", "1.2", "src-any"),
        ("g5.xlarge", None, "on-demand", "1.2", "src-any"),
        ("g5.xlarge", "eu-west-1", "spot", "0.4", "src-eu-spot"),
        (
            "g5.xlarge",
            "us-east-1",
            "spot",
            "0.4",
            "src-eu-spot; region us-east-1 not listed; eu-west-1 price used",
        ),
        (
            "g4dn.xlarge",
            "ap-south-1",
            "on-demand",
            "0.587",
            "src-eu; region ap-south-1 not listed; eu-west-1 price used",
        ),
        (
            "g4dn.xlarge",
            "us-west-2",
            "reserved",
            "0.526",
            "src-west; no reserved price listed; on-demand price used",
        ),
    ],
)
def test_lookup_fallbacks(
    instance_type: str, region: str | None, capacity: str, price: str, source: str
) -> None:
    row = REGIONAL.lookup("aws", instance_type, region, capacity)
    assert row is not None
    assert (row.hourly_usd, row.source) == (Decimal(price), source)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "aws,g5.xlarge,us-east-1,on-demand,cheap,1,A10G,4,16,s,2026-01-19",
            "hourly_usd 'cheap' is not a number",
        ),
        ("aws,g5.xlarge,us-east-1,on-demand,0,1,A10G,4,16,s,2026-01-19", "hourly_usd must be > 0"),
        ("aws,g5.xlarge,us-east-1,on-demand,NaN,1,A10G,4,16,s,2026-01-19", "not a finite number"),
        ("ibm,g5.xlarge,us-east-1,on-demand,1,1,A10G,4,16,s,2026-01-19", "cloud 'ibm' is not one of"),
        ("aws,g5.xlarge,us-east-1,preemptible,1,1,A10G,4,16,s,2026-01-19", "capacity_type 'preemptible'"),
        (
            "aws,g5.xlarge,us-east-1,on-demand,1,one,A10G,4,16,s,2026-01-19",
            "gpus 'one' is not a whole number",
        ),
        ("aws,g5.xlarge,us-east-1,on-demand,1,1,A10G,-4,16,s,2026-01-19", "vcpus must be >= 0"),
        ("aws,g5.xlarge,us-east-1,on-demand,1,1,A10G,4,16,,2026-01-19", "source is empty"),
        (
            "aws,g5.xlarge,us-east-1,on-demand,1,1,A10G,4,16,s,19/01/2026",
            "as_of '19/01/2026' is not an ISO date",
        ),
        ("aws,,us-east-1,on-demand,1,1,A10G,4,16,s,2026-01-19", "instance_type is empty"),
    ],
)
def test_bad_row_error_names_file_and_line(line: str, message: str) -> None:
    good = "aws,g4dn.xlarge,us-east-1,on-demand,0.526,1,T4,4,16,s,2026-01-19\n"
    with pytest.raises(CatalogError) as caught:
        Catalog.from_csv_text(HEADER + good + line + "\n", "charts/prices.csv")
    assert str(caught.value).startswith("charts/prices.csv:3: ")
    assert message in str(caught.value)


def test_duplicate_row_names_both_lines() -> None:
    row = "aws,g5.xlarge,us-east-1,on-demand,1.006,1,A10G,4,16,s,2026-01-19\n"
    with pytest.raises(CatalogError, match=r"^x\.csv:3: duplicate of the row on line 2$"):
        Catalog.from_csv_text(HEADER + row + row.replace("1.006", "1.1"), "x.csv")


def test_missing_column_is_reported() -> None:
    with pytest.raises(CatalogError, match=r"^x\.csv:1: missing column\(s\) source, as_of$"):
        Catalog.from_csv_text(
            "cloud,instance_type,region,capacity_type,hourly_usd,gpus,gpu_model,vcpus,memory_gib\n", "x.csv"
        )


def test_optional_columns_may_be_blank() -> None:
    catalog = Catalog.from_csv_text(
        HEADER + "gcp,e2-standard-4,us-central1,on-demand,0.134,,,,,s,2026-01-01\n", "x"
    )
    row = catalog.lookup("gcp", "e2-standard-4", "us-central1", "on-demand")
    assert row is not None
    assert (row.gpus, row.gpu_model, row.vcpus, row.memory_gib) == (0, None, Decimal(0), Decimal(0))
