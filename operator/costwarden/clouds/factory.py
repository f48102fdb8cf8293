"""The cloud scopes ``costwarden run`` watches, from its ``--cloud`` values.

``aws:REGION[,REGION...]`` (one inventory per region), ``gcp:PROJECT[,PROJECT...]`` (one per
project) and ``azure:SUBSCRIPTION[,SUBSCRIPTION...]`` (one per subscription GUID). A malformed
value raises ValueError here, at start-up, naming the part that is wrong. Each cloud's module, and
with it its SDK (boto3, google-cloud-compute, azure-mgmt-compute), is imported only when a value
names that cloud: ``costwarden run`` without ``--cloud`` loads none of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from costwarden.clouds.base import VMInventory
from costwarden.engine.vms import CLOUDS

# us-east-1, eu-central-2, ap-southeast-4, us-gov-west-1, cn-north-1, us-isob-east-1, mx-central-1
AWS_REGION: Final = re.compile(r"[a-z]{2}(-[a-z]+)+-\d{1,2}")
# 6 to 30 lowercase letters, digits and hyphens, a letter first, no hyphen last; legacy projects
# of a Workspace domain are "example.com:my-project".
GCP_PROJECT: Final = re.compile(r"([a-z0-9][a-z0-9.-]*[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]")
AZURE_SUBSCRIPTION: Final = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
WHAT: Final = {"aws": "region", "gcp": "project id", "azure": "subscription GUID"}
FORMS: Final = "aws:REGION[,REGION...], gcp:PROJECT or azure:SUBSCRIPTION"


@dataclass(frozen=True, slots=True)
class CloudSpec:
    """One ``--cloud`` value: a cloud and its scopes (regions, projects or subscriptions)."""

    cloud: str  # aws | gcp | azure
    scopes: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.cloud}:{','.join(self.scopes)}"


def parse_cloud_spec(text: str) -> CloudSpec:
    """``aws:us-east-1,us-west-2`` -> CloudSpec("aws", ("us-east-1", "us-west-2")); the same
    scope twice is kept once. ValueError naming the bad part otherwise."""
    cloud, colon, rest = text.strip().partition(":")
    cloud = cloud.strip().lower()
    if not colon or not cloud:
        raise ValueError(f"--cloud {text!r}: expected {FORMS}")
    if cloud not in CLOUDS:
        raise ValueError(f"--cloud {text!r}: unknown cloud {cloud!r}, one of {', '.join(CLOUDS)}")
    what = WHAT[cloud]
    parts = [part.strip() for part in rest.split(",")]
    if not any(parts):
        raise ValueError(f"--cloud {text!r}: no {what} given after '{cloud}:'")
    scopes: list[str] = []
    for part in parts:
        scope = _scope(cloud, part)
        if scope is None:
            raise ValueError(f"--cloud {text!r}: malformed {cloud} {what} {part!r}{_hint(cloud)}")
        if scope not in scopes:
            scopes.append(scope)
    return CloudSpec(cloud, tuple(scopes))


def _scope(cloud: str, part: str) -> str | None:
    if cloud == "aws":
        region = part.lower()
        return region if AWS_REGION.fullmatch(region) else None
    if cloud == "gcp":
        return part if GCP_PROJECT.fullmatch(part) else None
    subscription = part.lower()
    return subscription if AZURE_SUBSCRIPTION.fullmatch(subscription) else None


def _hint(cloud: str) -> str:
    return {
        "aws": " (like us-east-1)",
        "gcp": " (6 to 30 lowercase letters, digits or hyphens, starting with a letter)",
        "azure": " (a GUID like 00000000-0000-0000-0000-000000000000)",
    }[cloud]


def inventories_from_specs(specs: Iterable[CloudSpec]) -> list[VMInventory]:
    """One inventory per AWS region, GCP project and Azure subscription named, each once, in the
    order given; SDK clients are made later, on each inventory's first call."""
    seen: set[tuple[str, str]] = set()
    inventories: list[VMInventory] = []
    for spec in specs:
        for scope in spec.scopes:
            if (spec.cloud, scope) in seen:
                continue
            seen.add((spec.cloud, scope))
            inventories.append(_inventory(spec.cloud, scope))
    return inventories


def _inventory(cloud: str, scope: str) -> VMInventory:
    if cloud == "aws":
        from costwarden.clouds.aws import AwsInventory

        return AwsInventory(scope)
    if cloud == "gcp":
        from costwarden.clouds.gcp import GcpInventory

        return GcpInventory(scope)
    if cloud == "azure":
        from costwarden.clouds.azure import AzureInventory

        return AzureInventory(scope)
    raise ValueError(f"unknown cloud {cloud!r}, one of {', '.join(CLOUDS)}")
