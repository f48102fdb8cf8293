"""The bundled catalog's rows from the live feeds: the core of ``tools/make_catalog.py``.

The same feeds, the same ``LivePrices.lookup`` (so an AWS spot row is the region's median zone,
as a node without a zone is priced), written in the columns ``pricing/catalog.py`` loads.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from costwarden.pricefeeds.live import DatedPrice, LivePrices
from costwarden.pricefeeds.model import PriceFeed, PriceWant
from costwarden.pricing import NodeFacts
from costwarden.pricing.catalog import COLUMNS, CatalogRow


@dataclass(frozen=True, slots=True)
class CatalogTarget:
    """A row to generate: which VM where, and the shape the catalog records with its price."""

    cloud: str
    region: str
    instance_type: str  # the catalog key (GCE N1 + GPUs: n1-standard-8+nvidia-tesla-t4x1)
    capacity_type: str  # on-demand | spot
    gpus: int
    gpu_model: str | None
    vcpus: Decimal
    memory_gib: Decimal

    @property
    def want(self) -> PriceWant:
        return PriceWant(self.cloud, self.region, self.instance_type, self.capacity_type)


def generate(
    feeds: Sequence[PriceFeed], targets: Sequence[CatalogTarget], now: datetime
) -> tuple[list[dict[str, str]], list[str]]:
    """Fetch every target's price (a feed's exception propagates: the tool reports it) and
    return the catalog rows found, in the targets' order, and a line per target left out."""
    wants = sorted({t.want for t in targets})
    entries: list[DatedPrice] = []
    notes: list[str] = []
    for feed in feeds:
        mine = [w for w in wants if w.cloud == feed.cloud]
        if mine:
            result = feed.fetch(mine, now)
            entries += [DatedPrice(price, now) for price in result.prices]
            notes += [f"{feed.name}: {note}" for note in result.notes]
    live = LivePrices(entries)
    rows: list[dict[str, str]] = []
    for target in targets:
        facts = NodeFacts(
            cloud=target.cloud,
            region=target.region,
            zone=None,
            instance_type=target.instance_type,
            capacity_type=target.capacity_type,
            gpu_count=target.gpus,
            gpu_model=target.gpu_model,
        )
        quote = live.lookup(facts)
        if quote is None:
            notes.append(
                f"no price: {target.cloud} {target.region} {target.instance_type} {target.capacity_type}"
            )
            continue
        rows.append(_row(target, quote.hourly, quote.source, now))
    return rows, notes


def row_of(row: CatalogRow) -> dict[str, str]:
    """An existing catalog row in the CSV's columns (rows of clouds not regenerated are kept)."""
    return {
        "cloud": row.cloud,
        "instance_type": row.instance_type,
        "region": row.region,
        "capacity_type": row.capacity_type,
        "hourly_usd": plain(row.hourly_usd),
        "gpus": str(row.gpus),
        "gpu_model": row.gpu_model or "",
        "vcpus": plain(row.vcpus),
        "memory_gib": plain(row.memory_gib),
        "source": row.source,
        "as_of": row.as_of.isoformat(),
    }


def catalog_csv(rows: Iterable[dict[str, str]]) -> str:
    """The CSV text, header first, in ``pricing/catalog.py``'s columns."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def plain(value: Decimal) -> str:
    """``55.04``, ``192``: no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


def _row(target: CatalogTarget, hourly: Decimal, source: str, now: datetime) -> dict[str, str]:
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
        "source": f"{source}; written by tools/make_catalog.py",
        "as_of": now.date().isoformat(),
    }
