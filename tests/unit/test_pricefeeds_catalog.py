"""`make catalog`: the generator's rows, from the real feeds on faked clouds, load with the
catalog loader; the tool keeps other clouds' rows, and without network or credentials it says
so and leaves the file alone."""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from costwarden.pricefeeds import FeedPrice, FeedPrices, PriceWant
from costwarden.pricefeeds.aws import AwsPriceFeed
from costwarden.pricefeeds.azure import AzurePriceFeed
from costwarden.pricefeeds.catalog_rows import CatalogTarget, catalog_csv, generate
from costwarden.pricefeeds.gcp import GcpPriceFeed
from costwarden.pricing import Catalog
from tests.pricefeed_fakes import (
    RETAIL_PATH,
    PageServer,
    aws_product,
    catalog_client,
    gce_route,
    gce_sku,
    retail_item,
    retail_route,
    serving,
    stubbed,
)

ROOT = Path(__file__).resolve().parents[2]
NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
US = ["us-central1"]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_catalog", ROOT / "tools" / "make_catalog.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _target(
    cloud: str, region: str, kind: str, capacity: str, gpus: int, model: str, cpus: int, gib: int
) -> CatalogTarget:
    return CatalogTarget(cloud, region, kind, capacity, gpus, model, Decimal(cpus), Decimal(gib))


def test_generated_rows_from_the_real_feeds_load_as_a_catalog() -> None:
    pricing, pricing_stub = stubbed("pricing", "us-east-1")
    pricing_stub.add_response(
        "get_products", {"PriceList": [aws_product("g5.xlarge", "us-east-1", "1.0060000000")]}
    )
    ec2, ec2_stub = stubbed("ec2", "us-east-1")
    history = [
        {
            "AvailabilityZone": z,
            "InstanceType": "g5.xlarge",
            "ProductDescription": "Linux/UNIX",
            "SpotPrice": p,
            "Timestamp": NOW,
        }
        for z, p in (("us-east-1a", "0.41"), ("us-east-1b", "0.3821"), ("us-east-1c", "0.45"))
    ]
    ec2_stub.add_response("describe_spot_price_history", {"SpotPriceHistory": history})
    skus = [
        gce_sku("G2C", "G2 Instance Core running in Americas", "CPU", "OnDemand", US, "h", 0, 24985000),
        gce_sku("G2R", "G2 Instance Ram running in Americas", "RAM", "OnDemand", US, "GiBy.h", 0, 2927000),
        gce_sku("L4", "Nvidia L4 GPU running in Americas", "GPU", "OnDemand", US, "h", 0, 560040000),
    ]
    holder: list[PageServer] = []
    targets = [
        _target("aws", "us-east-1", "g5.xlarge", "on-demand", 1, "A10G", 4, 16),
        _target("aws", "us-east-1", "g5.xlarge", "spot", 1, "A10G", 4, 16),
        _target("gcp", "us-central1", "g2-standard-4", "on-demand", 1, "L4", 4, 16),
        _target("gcp", "us-central1", "g2-standard-4", "spot", 1, "L4", 4, 16),  # no spot SKU: left out
        _target("azure", "eastus", "Standard_NC4as_T4_v3", "on-demand", 1, "T4", 4, 28),
    ]
    pages = [[retail_item("Standard_NC4as_T4_v3", "eastus", "0.526", sku_name="NC4as T4 v3")]]
    with (
        pricing_stub,
        ec2_stub,
        serving(gce_route([skus])) as gce,
        serving(retail_route(pages, lambda: holder[0].url)) as retail,
    ):
        holder.append(retail)
        feeds = [
            AwsPriceFeed(lambda: pricing, lambda region: ec2),
            GcpPriceFeed(lambda: catalog_client(gce.url)),
            AzurePriceFeed(f"{retail.url}{RETAIL_PATH}"),
        ]
        rows, notes = generate(feeds, targets, NOW)

    catalog = Catalog.from_csv_text(catalog_csv(rows), "generated.csv")
    assert len(catalog) == 4
    spot = catalog.lookup("aws", "g5.xlarge", "us-east-1", "spot")
    assert spot is not None and spot.capacity_type == "spot" and spot.hourly_usd == Decimal("0.41")
    assert spot.source.startswith(
        "aws ec2 describe_spot_price_history us-east-1 (median of 3 zone(s): us-east-1a)"
    )
    g2 = catalog.lookup("gcp", "g2-standard-4", "us-central1", "on-demand")
    assert g2 is not None
    assert g2.hourly_usd == Decimal("0.024985") * 4 + Decimal("0.002927") * 16 + Decimal("0.56004")
    assert (g2.gpus, g2.gpu_model, g2.vcpus, g2.memory_gib) == (1, "L4", 4, 16)
    azure = catalog.lookup("azure", "Standard_NC4as_T4_v3", "eastus", "on-demand")
    assert azure is not None and azure.hourly_usd == Decimal("0.526")
    assert all(
        row.as_of == date(2026, 12, 1) and "(fetched 2026-12-01T05:00Z)" in row.source for row in catalog.rows
    )
    assert "no price: gcp us-central1 g2-standard-4 spot" in notes


class EveryPrice:
    """A feed with a price for anything (AWS spot: three zones), to drive the tool end to end."""

    def __init__(self, cloud: str) -> None:
        self.name = self.cloud = cloud

    def fetch(self, wants: Sequence[PriceWant], now: datetime) -> FeedPrices:
        prices: list[FeedPrice] = []
        for w in wants:
            zones = (
                [f"{w.region}{z}" for z in "abc"] if (w.cloud, w.capacity_type) == ("aws", "spot") else [None]
            )
            for n, zone in enumerate(zones, 1):
                prices.append(
                    FeedPrice(
                        w.cloud, w.region, zone, w.instance_type, w.capacity_type, Decimal(n), "fake api"
                    )
                )
        return FeedPrices(tuple(prices))


def test_the_tool_regenerates_the_named_clouds_and_keeps_the_others(tmp_path: Path) -> None:
    tool = _tool()
    out = tmp_path / "catalog.csv"
    out.write_text((ROOT / "operator/costwarden/pricing/catalog.csv").read_text())
    before = Catalog.from_csv_text(out.read_text(), "before")

    def make(names: Sequence[str]) -> list[Any]:
        return [EveryPrice(name) for name in names]

    assert tool.main([str(out), "aws"], make_feeds=make, now=NOW) == 0
    after = Catalog.from_csv_text(out.read_text(), str(out))
    aws = [r for r in after.rows if r.cloud == "aws"]
    assert len(aws) == len(tool.AWS_SHAPES) * 3 * 2
    assert {r.region for r in aws} == {"us-east-1", "us-west-2", "eu-west-1"}
    assert all(r.as_of == date(2026, 12, 1) for r in aws)
    assert [r for r in after.rows if r.cloud != "aws"] == [r for r in before.rows if r.cloud != "aws"]


def test_the_tool_without_credentials_says_so_and_leaves_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    class NoCredentials:
        name = cloud = "gcp"

        def fetch(self, wants: Sequence[PriceWant], now: datetime) -> FeedPrices:
            raise RuntimeError("Your default credentials were not found.")

    out = tmp_path / "catalog.csv"
    text = (ROOT / "operator/costwarden/pricing/catalog.csv").read_text()
    out.write_text(text)
    assert _tool().main([str(out), "gcp"], make_feeds=lambda names: [NoCredentials()], now=NOW) == 1
    assert out.read_text() == text
    err = capsys.readouterr().err
    assert "make catalog: gcp: RuntimeError: Your default credentials were not found." in err
    assert "left unchanged; this needs network access and credentials" in err


def test_the_tool_targets_cover_the_main_gpu_types() -> None:
    tool = _tool()
    kinds = {(t.cloud, t.instance_type) for t in tool.targets(["aws", "gcp", "azure"])}
    for needed in [
        ("aws", "p5.48xlarge"),
        ("aws", "p4d.24xlarge"),
        ("aws", "g6.48xlarge"),
        ("aws", "p3.2xlarge"),
        ("gcp", "a3-highgpu-8g"),
        ("gcp", "n1-standard-8+nvidia-tesla-t4x1"),
        ("azure", "Standard_ND96isr_H100_v5"),
        ("azure", "Standard_NV36ads_A10_v5"),
    ]:
        assert needed in kinds
