"""Node -> USD/hour, and that price split into per-GPU, per-vCPU and per-GiB parts.

Resolution order (docs/pricing.md), first match wins:
  1. node annotation ``costwarden.dev/hourly-price``
  2. the overrides file, most specific ``instances`` key
  3. the live cloud feed (the optional ``live`` callable: costwarden.pricefeeds fills it)
  4. the bundled catalog (a GCE host row without its GPUs gets them added at the GPU rate)
  5. overrides ``gpuModels``: that per-GPU price, plus CPU and RAM at the default rates
  6. OpenCost-style defaults per GPU, vCPU and GiB (spot rates for spot nodes)

The split of a priced node (rules 1-4): CPU and RAM are charged at the default per-unit rates,
which is how GCE bills accelerator VMs (vCPU and RAM SKUs plus GPU SKUs) and what OpenCost's
defaults (GCP us-central1) encode; the GPUs take the remainder, shared equally. On a GPU node
CPU and RAM together never take more than ``MAX_HOST_SHARE`` of the node's price (both scaled
down by the same factor): the GPUs are why the node exists, and this also keeps the GPU share
non-negative when a node is cheap for its size. A node without GPUs splits its price between
vCPU and RAM in the ratio of the default rates. Nothing is rounded here; parts sum to the price
to Decimal precision.

Effective-rate factor. Rules 3, 4 and 6 are list prices; billing reconciliation learns what the
cloud really charges relative to them per (cloud, instance type, capacity type) and the optional
``factors`` callable returns that factor, which multiplies the price (its ``source`` says so).
The annotation and the overrides (rules 1, 2, 5) are prices a person set and are taken as given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from costwarden.pricing.catalog import Catalog, CatalogRow
from costwarden.pricing.classify import LABEL_GKE_ACCELERATOR, NodeFacts, classify_node
from costwarden.pricing.overrides import InstanceKey, PriceDefaults, PriceOverrides
from costwarden.records import ANNOTATION_NODE_PRICE, NodeRecord

MAX_HOST_SHARE = Decimal("0.5")
_CACHE_LIMIT = 4096
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class LiveQuote:
    """A live feed's price for a whole node, and where it came from (API, region, time fetched)."""

    hourly: Decimal
    source: str


@dataclass(frozen=True, slots=True)
class RateFactor:
    """Billed / estimated, learned from reconciled node-hours; ``source`` says from how many."""

    factor: Decimal
    source: str


LiveFeed = Callable[[NodeFacts], LiveQuote | None]
RateFactors = Callable[[NodeFacts], RateFactor | None]


@dataclass(frozen=True, slots=True)
class NodePrice:
    hourly: Decimal  # the whole node, USD/hour
    per_gpu: Decimal
    per_vcpu: Decimal
    per_gib: Decimal
    source: str  # which rule priced it, with its provenance
    facts: NodeFacts
    vcpus: Decimal = _ZERO  # the capacity the split used
    memory_gib: Decimal = _ZERO
    factor: Decimal = Decimal(1)  # the effective-rate factor applied (hourly / factor: the list price)


@dataclass(frozen=True, slots=True)
class _Capacity:
    gpus: int
    vcpus: Decimal
    gib: Decimal


class PriceBook:
    """Prices nodes; remembers the answer per (immutable) node record."""

    def __init__(
        self,
        catalog: Catalog,
        overrides: PriceOverrides | None = None,
        live: LiveFeed | None = None,
        factors: RateFactors | None = None,
    ) -> None:
        self._catalog = catalog
        self._overrides = overrides if overrides is not None else PriceOverrides()
        self._live = live
        self._factors = factors
        self._cache: dict[NodeRecord, NodePrice] = {}

    def with_feeds(self, live: LiveFeed | None, factors: RateFactors | None) -> PriceBook:
        """A new book over the same catalog and overrides with these live prices and factors (the
        shell swaps books when a feed refreshes or billing is reconciled; nothing cached carries over)."""
        return PriceBook(self._catalog, self._overrides, live=live, factors=factors)

    @property
    def overrides(self) -> PriceOverrides:
        return self._overrides

    def price(self, node: NodeRecord) -> NodePrice:
        cached = self._cache.get(node)
        if cached is None:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            cached = self._cache[node] = self._resolve(node)
        return cached

    def facts(self, node: NodeRecord) -> NodeFacts:
        """What the node is (cloud, region, instance and capacity type), as pricing reads it."""
        return classify_node(node, self._catalog)

    def price_all(self, nodes: Iterable[NodeRecord]) -> dict[str, NodePrice]:
        return {node.name: self.price(node) for node in nodes}

    def _resolve(self, node: NodeRecord) -> NodePrice:
        facts = classify_node(node, self._catalog)
        row = self._catalog_row(node, facts)
        capacity = _capacity(node, facts, row)
        rates = self._defaults.rates(facts.capacity_type)
        note = f"; {node.price_override_error}, ignored" if node.price_override_error else ""
        priced = self._total(node, facts, row)
        if priced is not None:
            hourly, source, listed = priced
            factor = self._factor(facts) if listed else None
            if factor is not None:
                hourly, source = hourly * factor.factor, f"{source} x {factor.factor} ({factor.source})"
            per_gpu, per_vcpu, per_gib = _split(hourly, capacity, rates)
            return _price(hourly, (per_gpu, per_vcpu, per_gib), source + note, facts, capacity, factor)
        gpu_rate, source = _ZERO, self._defaults_source()
        listed = True
        if capacity.gpus:
            gpu_rate, gpu_source = self._gpu_rate(facts, rates[0])
            if gpu_source != source:
                source = f"{gpu_source}; cpu/ram at {source}"
                listed = False
        parts = (gpu_rate, rates[1], rates[2])
        factor = self._factor(facts) if listed else None
        if factor is not None:
            parts = (parts[0] * factor.factor, parts[1] * factor.factor, parts[2] * factor.factor)
            source = f"{source} x {factor.factor} ({factor.source})"
        hourly = parts[0] * capacity.gpus + parts[1] * capacity.vcpus + parts[2] * capacity.gib
        return _price(hourly, parts, source + note, facts, capacity, factor)

    def _factor(self, facts: NodeFacts) -> RateFactor | None:
        factor = self._factors(facts) if self._factors is not None else None
        if factor is None or factor.factor <= 0 or factor.factor == 1:
            return None
        return factor

    @property
    def _defaults(self) -> PriceDefaults:
        return self._overrides.defaults

    def _total(
        self, node: NodeRecord, facts: NodeFacts, row: CatalogRow | None
    ) -> tuple[Decimal, str, bool] | None:
        """Rules 1-4: a price for the whole node, its source and whether it is a list price, or None."""
        if node.price_override is not None:
            return node.price_override, f"annotation {ANNOTATION_NODE_PRICE}", False
        origin = self._overrides.origin
        found = self._overrides.instance_price(_instance_candidates(facts)) if facts.instance_type else None
        if found is not None:
            return found[1], f"overrides:{origin} key {found[0]}", False
        live = self._live(facts) if self._live is not None else None
        if live is not None:
            return live.hourly, f"live: {live.source}", True
        if row is None:
            return None
        if row.gpus or not facts.gpu_count:
            return row.hourly_usd, row.describe(), True
        gpu_rate, gpu_source = self._gpu_rate(facts, self._defaults.rates(facts.capacity_type)[0])
        hourly = row.hourly_usd + gpu_rate * facts.gpu_count
        listed = gpu_source == self._defaults_source()
        return hourly, f"{row.describe()} + {facts.gpu_count} GPU(s) at {gpu_source}", listed

    def _gpu_rate(self, facts: NodeFacts, default: Decimal) -> tuple[Decimal, str]:
        """Rules 5-6 for the GPU part: gpuModels, else the default per-GPU rate."""
        found = self._overrides.gpu_model_price(facts.gpu_model)
        if found is not None:
            return found[1], f"overrides:{self._overrides.origin} gpuModels {found[0]}"
        return default, self._defaults_source()

    def _defaults_source(self) -> str:
        if self._overrides.defaults_changed:
            return f"defaults: overrides:{self._overrides.origin}"
        return "defaults: opencost"

    def _catalog_row(self, node: NodeRecord, facts: NodeFacts) -> CatalogRow | None:
        if not facts.instance_type:
            return None
        accelerator = node.label_map.get(LABEL_GKE_ACCELERATOR)
        if facts.cloud == "gcp" and accelerator and facts.gpu_count:
            # GCE N1 VMs get GPUs attached; the catalog prices such pairs as "<type>+<accel>x<n>".
            combined = f"{facts.instance_type}+{accelerator}x{facts.gpu_count}"
            row = self._catalog.lookup(facts.cloud, combined, facts.region, facts.capacity_type)
            if row is not None:
                return row
        return self._catalog.lookup(facts.cloud, facts.instance_type, facts.region, facts.capacity_type)


def _split(
    hourly: Decimal, capacity: _Capacity, rates: tuple[Decimal, Decimal, Decimal]
) -> tuple[Decimal, Decimal, Decimal]:
    """(per GPU, per vCPU, per GiB) summing to ``hourly`` over ``capacity`` (module docstring)."""
    _, cpu_rate, ram_rate = rates
    host = cpu_rate * capacity.vcpus + ram_rate * capacity.gib
    if capacity.gpus:
        host_share = min(host, hourly * MAX_HOST_SHARE)
        scale = host_share / host if host else _ZERO
        return (hourly - host_share) / capacity.gpus, cpu_rate * scale, ram_rate * scale
    if not host:
        return _ZERO, _ZERO, _ZERO
    scale = hourly / host
    return _ZERO, cpu_rate * scale, ram_rate * scale


def _capacity(node: NodeRecord, facts: NodeFacts, row: CatalogRow | None) -> _Capacity:
    """The node's own capacity; the catalog's figures when the record has none."""
    vcpus, gib = node.cpu_cores, node.memory_gib
    if row is not None and not vcpus and not gib:
        vcpus, gib = row.vcpus, row.memory_gib
    return _Capacity(gpus=facts.gpu_count, vcpus=vcpus, gib=gib)


def _instance_candidates(facts: NodeFacts) -> list[InstanceKey]:
    """Override keys for this node, most specific first."""
    cloud, region = facts.cloud, (facts.region or "").lower() or None
    kind, cap = (facts.instance_type or "").lower(), facts.capacity_type
    candidates: list[InstanceKey] = []
    if region:
        candidates += [(cloud, region, kind, cap), (cloud, region, kind, None)]
    candidates += [
        (cloud, None, kind, cap),
        (cloud, None, kind, None),
        (None, None, kind, cap),
        (None, None, kind, None),
    ]
    return candidates


def _price(  # noqa: PLR0917 -- the figures, their provenance and what they were made of
    hourly: Decimal,
    parts: tuple[Decimal, Decimal, Decimal],
    source: str,
    facts: NodeFacts,
    capacity: _Capacity,
    factor: RateFactor | None = None,
) -> NodePrice:
    return NodePrice(
        hourly=hourly,
        per_gpu=parts[0],
        per_vcpu=parts[1],
        per_gib=parts[2],
        source=source,
        facts=facts,
        vcpus=capacity.vcpus,
        memory_gib=capacity.gib,
        factor=factor.factor if factor is not None else Decimal(1),
    )
