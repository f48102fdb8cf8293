"""Feeds by name, with the clouds' SDK clients made the default way unless a caller injects them.

Defaults: boto3 with its default credential chain (environment, shared config, web identity
such as EKS IRSA or Pod Identity, instance profile); it honours ``AWS_ENDPOINT_URL`` and
``AWS_ENDPOINT_URL_PRICING`` / ``AWS_ENDPOINT_URL_EC2`` itself. The GCP catalog client with
Application Default Credentials (gRPC). Azure needs no credentials. Clients are made lazily in
the fetching thread, so a missing credential is the feed's failure, never the operator's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import urllib3
from google.cloud.billing_v1 import CloudCatalogClient

from costwarden.pricefeeds.aws import AwsPriceFeed
from costwarden.pricefeeds.azure import RETAIL_PRICES_URL, AzurePriceFeed
from costwarden.pricefeeds.gcp import GcpPriceFeed
from costwarden.pricefeeds.model import FEED_CLOUDS, PriceFeed

PRICING_API_REGION = "us-east-1"  # the Price List API also answers in eu-central-1, ap-south-1


def feeds_from_names(
    names: Iterable[str],
    *,
    aws_pricing: Callable[[], Any] | None = None,
    aws_ec2: Callable[[str], Any] | None = None,
    gcp_catalog: Callable[[], CloudCatalogClient] | None = None,
    azure_base_url: str = RETAIL_PRICES_URL,
    azure_http: urllib3.PoolManager | None = None,
) -> tuple[PriceFeed, ...]:
    """The feeds named (aws, gcp, azure), each once, in the order given; ValueError naming an
    unknown one. ``aws_pricing()``, ``aws_ec2(region)`` and ``gcp_catalog()`` make clients."""
    feeds: dict[str, PriceFeed] = {}
    for raw in names:
        name = raw.strip().lower()
        if name in feeds:
            continue
        if name == "aws":
            pricing, ec2 = aws_pricing, aws_ec2
            if pricing is None or ec2 is None:
                default_pricing, default_ec2 = _boto3_clients()
                pricing, ec2 = pricing or default_pricing, ec2 or default_ec2
            feeds[name] = AwsPriceFeed(pricing, ec2)
        elif name == "gcp":
            feeds[name] = GcpPriceFeed(gcp_catalog or CloudCatalogClient)
        elif name == "azure":
            feeds[name] = AzurePriceFeed(azure_base_url, azure_http)
        else:
            raise ValueError(f"unknown price feed {raw!r}: one of {', '.join(FEED_CLOUDS)}")
    return tuple(feeds.values())


def _boto3_clients() -> tuple[Callable[[], Any], Callable[[str], Any]]:
    """One boto3 session (sessions are not thread-safe; the feed uses it from one thread at a
    time) making the Pricing client and per-region EC2 clients, with bounded timeouts."""
    import boto3  # type: ignore[import-untyped]
    from botocore.config import Config  # type: ignore[import-untyped]

    config = Config(connect_timeout=10, read_timeout=60, retries={"mode": "standard", "max_attempts": 3})
    made: dict[str, Any] = {}

    def session() -> Any:
        if "session" not in made:
            made["session"] = boto3.session.Session()
        return made["session"]

    def pricing() -> Any:
        return session().client("pricing", region_name=PRICING_API_REGION, config=config)

    def ec2(region: str) -> Any:
        return session().client("ec2", region_name=region, config=config)

    return pricing, ec2
