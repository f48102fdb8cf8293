"""The GCP feed through the real CloudCatalogClient (REST transport, anonymous credentials)
against a local Cloud Billing Catalog stand-in: pages, on-demand vs Spot SKUs, regions, exact money."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from costwarden.pricefeeds.gcp import GcpPriceFeed
from costwarden.pricefeeds.gcp_machines import instance_key, machine_shape, normalise_accelerator
from costwarden.pricefeeds.gcp_parse import money
from costwarden.pricefeeds.model import PriceWant
from tests.pricefeed_fakes import GCE_SKUS_PATH, catalog_client, gce_route, gce_sku, serving

NOW = datetime(2026, 12, 1, 5, 0, tzinfo=UTC)
US = ["us-central1", "us-east1"]


def _skus() -> list[list[dict[str, Any]]]:
    """Three pages, with the decoys a matcher must not take."""
    return [
        [
            gce_sku("A2C", "A2 Instance Core running in Americas", "CPU", "OnDemand", US, "h", 0, 31611000),
            gce_sku(
                "A2R", "A2 Instance Ram running in Americas", "RAM", "OnDemand", US, "GiBy.h", 0, 4237000
            ),
            gce_sku(
                "A2CS",
                "Spot Preemptible A2 Instance Core running in Americas",
                "CPU",
                "Preemptible",
                US,
                "h",
                0,
                12644000,
            ),
            gce_sku(
                "A2RS",
                "Spot Preemptible A2 Instance Ram running in Americas",
                "RAM",
                "Preemptible",
                US,
                "GiBy.h",
                0,
                1695000,
            ),
            # a commitment SKU of the same family: never a list price
            gce_sku(
                "A2CC",
                "Commitment v1: A2 Cpu in Americas for 1 Year",
                "CPU",
                "Commit1Yr",
                US,
                "h",
                0,
                19915000,
            ),
        ],
        [
            gce_sku(
                "A100", "Nvidia Tesla A100 GPU running in Americas", "GPU", "OnDemand", US, "h", 2, 933908000
            ),
            # the 80GB card's description contains "A100" too
            gce_sku(
                "A180",
                "Nvidia Tesla A100 80GB GPU running in Americas",
                "GPU",
                "OnDemand",
                US,
                "h",
                3,
                928000000,
            ),
            gce_sku(
                "A100S",
                "Nvidia Tesla A100 GPU attached to Spot Preemptible VMs running in Americas",
                "GPU",
                "Preemptible",
                US,
                "h",
                1,
                147200000,
            ),
            gce_sku(
                "A100D",
                "Nvidia Tesla A100 GPU attached to DWS Defined Duration VMs running in Americas",
                "GPU",
                "OnDemand",
                US,
                "h",
                1,
                613650000,
            ),
        ],
        [
            gce_sku(
                "N1C",
                "N1 Predefined Instance Core running in Americas",
                "N1Standard",
                "OnDemand",
                US,
                "h",
                0,
                31611000,
            ),
            gce_sku(
                "N1R",
                "N1 Predefined Instance Ram running in Americas",
                "N1Standard",
                "OnDemand",
                US,
                "GiBy.h",
                0,
                4237000,
            ),
            gce_sku(
                "T4", "Nvidia Tesla T4 GPU running in Americas", "GPU", "OnDemand", US, "h", 0, 350000000
            ),
            # a SKU for Iowa alone beats the Americas one for us-central1
            gce_sku(
                "T4IA",
                "Nvidia Tesla T4 GPU running in Iowa",
                "GPU",
                "OnDemand",
                ["us-central1"],
                "h",
                0,
                340000000,
            ),
            gce_sku(
                "T4VWS",
                "Nvidia Tesla T4 Virtual Workstation GPU running in Americas",
                "GPU",
                "OnDemand",
                US,
                "h",
                0,
                550000000,
            ),
            gce_sku(
                "EU",
                "A2 Instance Core running in Netherlands",
                "CPU",
                "OnDemand",
                ["europe-west4"],
                "h",
                0,
                1,
            ),
        ],
    ]


def _fetch(wants: list[PriceWant]) -> tuple[Any, list[str]]:
    with serving(gce_route(_skus())) as server:
        feed = GcpPriceFeed(lambda: catalog_client(server.url))
        result = feed.fetch(wants, NOW)
        paths = [path for path, _ in server.requests]
    return result, paths


def test_a2_on_demand_is_cores_plus_ram_plus_gpus_across_three_pages_exactly() -> None:
    result, paths = _fetch([PriceWant("gcp", "us-central1", "a2-highgpu-8g", "on-demand")])
    assert paths == [GCE_SKUS_PATH] * 3
    (price,) = result.prices
    expected = Decimal("0.031611") * 96 + Decimal("0.004237") * 680 + Decimal("2.933908") * 8
    assert isinstance(price.hourly, Decimal)
    assert price.hourly == expected == Decimal("29.38708")
    assert price.api == "gcp cloudbilling list_skus"
    assert "A2C" in price.detail and "A2R" in price.detail and "8 A100 x 2.933908 (A100)" in price.detail


def test_spot_uses_the_spot_preemptible_skus() -> None:
    result, _ = _fetch([PriceWant("gcp", "us-central1", "a2-highgpu-1g", "spot")])
    (price,) = result.prices
    assert price.capacity_type == "spot"
    assert price.hourly == Decimal("0.012644") * 12 + Decimal("0.001695") * 85 + Decimal("1.1472")
    assert "Spot Preemptible SKUs" in price.detail and "A100S" in price.detail


def test_n1_with_attached_t4_takes_the_most_specific_region_sku() -> None:
    result, _ = _fetch([PriceWant("gcp", "us-central1", "n1-standard-8+nvidia-tesla-t4x1", "on-demand")])
    (price,) = result.prices
    assert price.hourly == Decimal("0.031611") * 8 + Decimal("0.004237") * 30 + Decimal("0.34")
    assert "(T4IA)" in price.detail


def test_missing_skus_and_unknown_machines_are_notes() -> None:
    wants = [
        PriceWant("gcp", "europe-west4", "a2-highgpu-1g", "on-demand"),  # a Core SKU only there
        PriceWant("gcp", "us-central1", "a2-ultragpu-1g", "spot"),  # no spot A100 80GB SKU
        PriceWant("gcp", "us-central1", "z9-huge-1", "on-demand"),
    ]
    result, _ = _fetch(wants)
    assert result.prices == ()
    assert result.notes == (
        "europe-west4 a2-highgpu-1g on-demand: no A2 Instance Ram SKU",
        "us-central1 a2-ultragpu-1g spot: no A100-80GB GPU SKU",
        "us-central1 z9-huge-1: not a machine type this feed knows",
    )


def test_an_http_error_raises_out_of_fetch() -> None:
    with serving(gce_route([], status=503)) as server:
        feed = GcpPriceFeed(lambda: catalog_client(server.url), timeout=10)
        with pytest.raises(Exception, match="503"):
            feed.fetch([PriceWant("gcp", "us-central1", "a2-highgpu-1g", "on-demand")], NOW)


def test_no_gcp_want_makes_no_client() -> None:
    feed = GcpPriceFeed(lambda: pytest.fail("client made"))
    assert feed.fetch([PriceWant("aws", "us-east-1", "g5.xlarge", "on-demand")], NOW).prices == ()


def test_money_is_exact() -> None:
    assert money("2", 933908000) == Decimal("2.933908")
    assert money(0, 1) == Decimal("0.000000001")
    assert money(0, 100000000) + money(0, 200000000) == Decimal("0.3")


@pytest.mark.parametrize(
    ("model", "accelerator"),
    [
        ("nvidia-tesla-t4", "nvidia-tesla-t4"),
        ("Tesla-T4", "nvidia-tesla-t4"),
        ("T4", "nvidia-tesla-t4"),
        ("Tesla-V100-SXM2-16GB", "nvidia-tesla-v100"),
        ("nvidia-tesla-p100", "nvidia-tesla-p100"),
        ("nvidia-tesla-p4", "nvidia-tesla-p4"),
        ("nvidia-l4", None),  # L4 comes with G2, never attached to N1
        (None, None),
    ],
)
def test_gpu_model_names_normalise(model: str | None, accelerator: str | None) -> None:
    assert normalise_accelerator(model) == accelerator


def test_machine_table() -> None:
    assert instance_key("n1-standard-8", "Tesla-T4", 2) == "n1-standard-8+nvidia-tesla-t4x2"
    assert instance_key("a2-highgpu-8g", "nvidia-tesla-a100", 8) == "a2-highgpu-8g"
    shape = machine_shape("n1-highmem-16+nvidia-tesla-v100x2")
    assert shape is not None and (shape.vcpus, shape.memory_gib, shape.gpus) == (16, Decimal("104.0"), 2)
    a3 = machine_shape("a3-highgpu-8g")
    assert a3 is not None and (a3.family, a3.vcpus, a3.memory_gib, a3.gpus) == ("A3 Instance", 208, 1872, 8)
    assert machine_shape("a3-megagpu-8g") is not None
    assert machine_shape("g2-standard-48") is not None
    assert machine_shape("a2-highgpu-1g+nvidia-tesla-t4x1") is None
    assert machine_shape("n1-standard-8+nvidia-l4x1") is None
