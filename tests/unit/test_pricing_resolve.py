"""Price resolution order, the GPU/vCPU/GiB split and its invariant."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costwarden.pricing import (
    Catalog,
    LiveQuote,
    NodeFacts,
    NodePrice,
    PriceBook,
    RateFactor,
    load_bundled_catalog,
    load_overrides_text,
)
from costwarden.records import NodeRecord

OPENCOST_CPU, OPENCOST_RAM = Decimal("0.031611"), Decimal("0.004237")


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_bundled_catalog()


def eks_node(
    instance_type: str = "p5.48xlarge",
    *,
    capacity_type: str = "ON_DEMAND",
    annotations: dict[str, str] | None = None,
    capacity: dict[str, str] | None = None,
) -> NodeRecord:
    body: dict[str, Any] = {
        "metadata": {
            "name": f"ip-10-0-1-{len(instance_type)}.ec2.internal",
            "labels": {
                "node.kubernetes.io/instance-type": instance_type,
                "topology.kubernetes.io/region": "us-east-1",
                "topology.kubernetes.io/zone": "us-east-1a",
                "eks.amazonaws.com/capacityType": capacity_type,
                "eks.amazonaws.com/nodegroup": "gpu",
            },
            "annotations": annotations or {},
        },
        "spec": {"providerID": "aws:///us-east-1a/i-0fea4fd46592d050b"},
        "status": {"capacity": capacity or {"cpu": "192", "memory": "2Ti", "nvidia.com/gpu": "8"}},
    }
    return NodeRecord.from_body(body)


def gke_node(instance_type: str, labels: dict[str, str], capacity: dict[str, str]) -> NodeRecord:
    return NodeRecord.from_body(
        {
            "metadata": {
                "name": "gke-pool-0a1b2c3d-wxyz",
                "labels": {
                    "cloud.google.com/gke-nodepool": "pool",
                    "node.kubernetes.io/instance-type": instance_type,
                    "topology.kubernetes.io/region": "us-central1",
                    "topology.kubernetes.io/zone": "us-central1-c",
                    **labels,
                },
            },
            "spec": {"providerID": "gce://ml-prod-4711/us-central1-c/gke-pool-0a1b2c3d-wxyz"},
            "status": {"capacity": capacity},
        }
    )


def dgx_node(**extra_labels: str) -> NodeRecord:
    return NodeRecord.from_body(
        {
            "metadata": {
                "name": "dgx-a100-01",
                "labels": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB", **extra_labels},
            },
            "status": {"capacity": {"cpu": "256", "memory": "2048Gi", "nvidia.com/gpu": "8"}},
        }
    )


def total(price: NodePrice) -> Decimal:
    return (
        price.per_gpu * price.facts.gpu_count
        + price.per_vcpu * price.vcpus
        + price.per_gib * price.memory_gib
    )


OVERRIDES = """
instances:
  p5.48xlarge: 40.00
  aws/us-east-1/p5.48xlarge/spot: 18.5
gpuModels: {"NVIDIA A100-SXM4-80GB": 2.25}
"""


def test_resolution_order_annotation_overrides_catalog_defaults(catalog: Catalog) -> None:
    overrides = load_overrides_text(OVERRIDES, "values.yaml")
    book = PriceBook(catalog, overrides)
    annotated = eks_node(annotations={"costwarden.dev/hourly-price": "33.3"})
    assert (book.price(annotated).hourly, book.price(annotated).source) == (
        Decimal("33.3"),
        "annotation costwarden.dev/hourly-price",
    )
    overridden = book.price(eks_node())
    assert (overridden.hourly, overridden.source) == (
        Decimal("40.00"),
        "overrides:values.yaml key p5.48xlarge",
    )
    listed = PriceBook(catalog).price(eks_node())
    assert listed.hourly == Decimal("55.04")
    assert listed.source == (
        "catalog: aws p5.48xlarge us-east-1 on-demand (karpenter-provider-aws "
        "pkg/providers/pricing/zz_generated.pricing_aws.go (generated 2026-07-20 for us-east-1; "
        "on-demand; the same figure at @031e72b generated 2026-01-19T13:23:24Z); prices from the "
        "AWS Price List API, 2026-07-20)"
    )
    unknown = PriceBook(catalog).price(eks_node("x9.metal"))
    assert unknown.source == "defaults: opencost"
    assert unknown.hourly == 8 * Decimal("0.95") + 192 * OPENCOST_CPU + 2048 * OPENCOST_RAM


def test_most_specific_override_key_wins(catalog: Catalog) -> None:
    book = PriceBook(catalog, load_overrides_text(OVERRIDES, "values.yaml"))
    spot = book.price(eks_node(capacity_type="SPOT"))
    assert (spot.hourly, spot.source) == (
        Decimal("18.5"),
        "overrides:values.yaml key aws/us-east-1/p5.48xlarge/spot",
    )
    assert book.price(eks_node(capacity_type="ON_DEMAND")).hourly == Decimal("40.00")


def test_live_feed_sits_between_overrides_and_catalog(catalog: Catalog) -> None:
    seen: list[NodeFacts] = []

    def live(facts: NodeFacts) -> LiveQuote | None:
        seen.append(facts)
        return LiveQuote(Decimal("50.5"), "aws pricing") if facts.instance_type == "p5.48xlarge" else None

    book = PriceBook(catalog, load_overrides_text("instances: {g5.xlarge: 0.9}", "o"), live=live)
    p5 = book.price(eks_node())
    assert (p5.hourly, p5.source) == (Decimal("50.5"), "live: aws pricing")
    assert seen[0].cloud == "aws" and seen[0].capacity_type == "on-demand"
    assert book.price(eks_node("g5.xlarge")).source == "overrides:o key g5.xlarge"
    assert book.price(eks_node("g4dn.xlarge")).hourly == Decimal("0.526")  # live said None -> catalog


def test_malformed_annotation_falls_through_and_is_reported(catalog: Catalog) -> None:
    price = PriceBook(catalog).price(eks_node(annotations={"costwarden.dev/hourly-price": "lots"}))
    assert price.hourly == Decimal("55.04")
    assert price.source.startswith("catalog: aws p5.48xlarge")
    assert "annotation costwarden.dev/hourly-price='lots' is not a USD amount, ignored" in price.source


def test_spot_node_uses_the_spot_row_and_without_one_the_on_demand_price(catalog: Catalog) -> None:
    node = eks_node(
        "g6.12xlarge",
        capacity_type="SPOT",
        capacity={"cpu": "48", "memory": "192Gi", "nvidia.com/gpu": "4"},
    )
    spot_row = catalog.lookup("aws", "g6.12xlarge", "us-east-1", "spot")
    assert spot_row is not None and spot_row.capacity_type == "spot"
    price = PriceBook(catalog).price(node)
    assert price.hourly == spot_row.hourly_usd
    assert price.source.startswith("catalog: aws g6.12xlarge us-east-1 spot (SkyPilot catalog")
    on_demand_only = Catalog(row for row in catalog.rows if row.capacity_type != "spot")
    fallback = PriceBook(on_demand_only).price(node)
    assert fallback.hourly == Decimal("4.6016")
    assert "no spot price listed; on-demand price used" in fallback.source
    # the split uses spot CPU/RAM rates for a spot node
    for priced in (price, fallback):
        assert priced.per_vcpu == Decimal("0.006655") and priced.per_gib == Decimal("0.000892")


def test_gke_spot_a3_uses_the_spot_row(catalog: Catalog) -> None:
    node = gke_node(
        "a3-highgpu-8g",
        {"cloud.google.com/gke-spot": "true", "cloud.google.com/gke-accelerator": "nvidia-h100-80gb"},
        {"cpu": "208", "memory": "1872Gi", "nvidia.com/gpu": "8"},
    )
    price = PriceBook(catalog).price(node)
    assert price.hourly == Decimal("20.19947")
    assert price.source.startswith("catalog: gcp a3-highgpu-8g us-central1 spot (SkyPilot catalog")


def test_gke_n1_with_attached_t4_uses_the_combined_row(catalog: Catalog) -> None:
    node = gke_node(
        "n1-standard-8",
        {"cloud.google.com/gke-preemptible": "true", "cloud.google.com/gke-accelerator": "nvidia-tesla-t4"},
        {"cpu": "8", "memory": "30817232Ki", "nvidia.com/gpu": "1"},
    )
    price = PriceBook(catalog).price(node)
    assert price.hourly == Decimal("0.2363")
    assert price.source.startswith("catalog: gcp n1-standard-8+nvidia-tesla-t4x1 us-central1 spot")
    assert price.facts.gpu_model == "nvidia-tesla-t4"


def test_gce_host_row_without_gpus_gets_them_added(catalog: Catalog) -> None:
    node = gke_node(
        "n1-standard-8",
        {"cloud.google.com/gke-accelerator": "nvidia-tesla-p4"},
        {"cpu": "8", "memory": "30Gi", "nvidia.com/gpu": "2"},
    )
    price = PriceBook(catalog).price(node)
    assert price.hourly == Decimal("0.38") + 2 * Decimal("0.95")
    assert price.source.endswith("+ 2 GPU(s) at defaults: opencost")
    assert total(price) == price.hourly


def test_gpu_models_price_unknown_instance_types(catalog: Catalog) -> None:
    book = PriceBook(catalog, load_overrides_text(OVERRIDES, "values.yaml"))
    price = book.price(dgx_node())
    assert price.per_gpu == Decimal("2.25")
    assert (price.per_vcpu, price.per_gib) == (OPENCOST_CPU, OPENCOST_RAM)
    assert price.hourly == 8 * Decimal("2.25") + 256 * OPENCOST_CPU + 2048 * OPENCOST_RAM
    assert (
        price.source == "overrides:values.yaml gpuModels NVIDIA A100-SXM4-80GB; cpu/ram at defaults: opencost"
    )


def test_defaults_for_on_prem_and_overridden_defaults(catalog: Catalog) -> None:
    plain = PriceBook(catalog).price(dgx_node())
    assert (plain.per_gpu, plain.per_vcpu, plain.per_gib) == (Decimal("0.95"), OPENCOST_CPU, OPENCOST_RAM)
    assert plain.facts.cloud == "unknown"
    custom = PriceBook(catalog, load_overrides_text("defaults: {gpu: 2.5}", "site.yaml")).price(dgx_node())
    assert custom.per_gpu == Decimal("2.5")
    assert custom.source == "defaults: overrides:site.yaml"
    spot = PriceBook(catalog).price(dgx_node(lifecycle="EC2Spot"))
    assert (spot.per_vcpu, spot.per_gib) == (Decimal("0.006655"), Decimal("0.000892"))


def test_gpu_node_split_charges_cpu_ram_at_default_rates(catalog: Catalog) -> None:
    price = PriceBook(catalog).price(eks_node())
    host = 192 * OPENCOST_CPU + 2048 * OPENCOST_RAM
    assert (price.per_vcpu, price.per_gib) == (OPENCOST_CPU, OPENCOST_RAM)
    assert price.per_gpu == (Decimal("55.04") - host) / 8
    assert total(price) == price.hourly


def test_gpu_node_host_share_is_capped_at_half_the_price(catalog: Catalog) -> None:
    # NV36ads_A10_v5: 36 vCPU and 440 GiB at default rates cost 3.002276 of its 3.2 USD/h.
    node = NodeRecord.from_body(
        {
            "metadata": {
                "name": "aks-a10-0",
                "labels": {
                    "node.kubernetes.io/instance-type": "Standard_NV36ads_A10_v5",
                    "topology.kubernetes.io/region": "eastus",
                    "kubernetes.azure.com/agentpool": "a10",
                },
            },
            "spec": {"providerID": "azure:///subscriptions/s/resourceGroups/r/providers/x/virtualMachines/0"},
            "status": {"capacity": {"cpu": "36", "memory": "440Gi", "nvidia.com/gpu": "1"}},
        }
    )
    price = PriceBook(catalog).price(node)
    assert price.hourly == Decimal("3.2")
    assert price.per_gpu == Decimal("1.6")
    assert price.per_vcpu * 36 + price.per_gib * 440 == Decimal("1.6")
    assert price.per_vcpu / price.per_gib == OPENCOST_CPU / OPENCOST_RAM


def test_cpu_only_node_splits_in_default_ratio(catalog: Catalog) -> None:
    node = gke_node("n1-standard-8", {}, {"cpu": "8", "memory": "30Gi"})
    price = PriceBook(catalog).price(node)
    assert price.hourly == Decimal("0.38") and price.per_gpu == 0
    assert abs(price.per_vcpu / price.per_gib - OPENCOST_CPU / OPENCOST_RAM) < Decimal("1e-20")
    assert abs(total(price) - price.hourly) < Decimal("1e-20")


def test_capacity_comes_from_catalog_when_record_has_none(catalog: Catalog) -> None:
    price = PriceBook(catalog).price(eks_node(capacity={}))
    assert (price.facts.gpu_count, price.vcpus, price.memory_gib) == (8, Decimal(192), Decimal(2048))
    assert total(price) == price.hourly


def test_price_is_memoized_per_record_and_price_all_keys_by_name(catalog: Catalog) -> None:
    book = PriceBook(catalog)
    node = eks_node()
    first = book.price(node)
    assert book.price(dataclasses.replace(node)) is first
    other = dataclasses.replace(node, name="ip-10-0-9-9.ec2.internal")
    prices = book.price_all([node, other])
    assert set(prices) == {node.name, other.name}
    assert prices[node.name] is first


_money = st.decimals(min_value=0, max_value=1000, places=6, allow_nan=False, allow_infinity=False)
_cpu = st.decimals(min_value=0, max_value=512, places=3, allow_nan=False, allow_infinity=False)
_gib = st.decimals(min_value=0, max_value=4096, places=4, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(
    hourly=st.one_of(st.none(), _money),
    gpus=st.integers(min_value=0, max_value=16),
    cpu=_cpu,
    gib=_gib,
    spot=st.booleans(),
)
def test_split_invariant(hourly: Decimal | None, gpus: int, cpu: Decimal, gib: Decimal, spot: bool) -> None:
    labels = (("lifecycle", "EC2Spot"),) if spot else ()
    node = NodeRecord(
        name="n", labels=labels, cpu_cores=cpu, memory_gib=gib, gpus=gpus, price_override=hourly
    )
    price = PriceBook(Catalog([])).price(node)
    assert min(price.per_gpu, price.per_vcpu, price.per_gib) >= 0
    if hourly is not None:
        assert price.hourly == hourly
    if gpus or cpu or gib or hourly is None:
        assert abs(total(price) - price.hourly) < Decimal("1e-9")
    else:  # a priced node with no known capacity: nothing to split over, all of it is idle cost
        assert (price.per_gpu, price.per_vcpu, price.per_gib) == (Decimal(0), Decimal(0), Decimal(0))
    if gpus and hourly is not None:
        assert price.per_gpu * gpus >= hourly / 2 - Decimal("1e-9")


def test_effective_rate_factor_scales_list_prices_only(catalog: Catalog) -> None:
    def factors(facts: NodeFacts) -> RateFactor | None:
        return RateFactor(Decimal("0.7"), "billing: 48 node-hours") if facts.cloud == "aws" else None

    overrides = load_overrides_text("instances: {g5.xlarge: 0.9}", "o")
    book = PriceBook(catalog, overrides, factors=factors)
    listed = PriceBook(catalog, overrides).price(eks_node())
    trued = book.price(eks_node())
    assert trued.hourly == listed.hourly * Decimal("0.7")
    assert trued.source.endswith("x 0.7 (billing: 48 node-hours)")
    assert trued.per_gpu * 8 + trued.per_vcpu * trued.vcpus + trued.per_gib * trued.memory_gib == trued.hourly
    # a price a person set is taken as given
    assert book.price(eks_node("g5.xlarge")).hourly == Decimal("0.9")
    annotated = book.price(eks_node(annotations={"costwarden.dev/hourly-price": "12"}))
    assert annotated.hourly == Decimal("12")
    # unknown instance: the defaults are list prices too
    unknown = book.price(eks_node("x9.metal"))
    assert unknown.hourly == PriceBook(catalog).price(eks_node("x9.metal")).hourly * Decimal("0.7")
    # with_feeds keeps overrides, drops the factor
    assert book.with_feeds(None, None).price(eks_node()).hourly == listed.hourly
