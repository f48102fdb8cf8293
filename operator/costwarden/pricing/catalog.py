"""The bundled price catalog: dated list prices per (cloud, instance type, region, capacity type).

Every row names its source and the date the figure refers to, so a price shown to a user can
always be traced back. The catalog is a fallback below overrides and the live cloud feeds; it is
loaded once by the shell at startup (``load_bundled_catalog``), never at import.
"""

from __future__ import annotations

import csv
import dataclasses
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from importlib import resources

CLOUDS = ("aws", "gcp", "azure")
CAPACITY_TYPES = ("on-demand", "spot", "reserved")
ANY_REGION = "*"
COLUMNS = (
    "cloud",
    "instance_type",
    "region",
    "capacity_type",
    "hourly_usd",
    "gpus",
    "gpu_model",
    "vcpus",
    "memory_gib",
    "source",
    "as_of",
)
BUNDLED_ORIGIN = "costwarden/pricing/catalog.csv"


class CatalogError(ValueError):
    """A catalog file that cannot be used; the message names the file and line."""


@dataclass(frozen=True)
class CatalogRow:
    cloud: str
    instance_type: str
    region: str  # a region name, or "*" for any region
    capacity_type: str  # on-demand | spot | reserved
    hourly_usd: Decimal  # the whole node, USD/hour
    gpus: int
    gpu_model: str | None
    vcpus: Decimal
    memory_gib: Decimal
    source: str
    as_of: date

    def describe(self) -> str:
        """How this row is cited in a price's ``source``."""
        return (
            f"catalog: {self.cloud} {self.instance_type} {self.region} {self.capacity_type} "
            f"({self.source}, {self.as_of.isoformat()})"
        )


class Catalog:
    """Immutable after construction; lookups never raise."""

    def __init__(self, rows: Iterable[CatalogRow]) -> None:
        self._rows = tuple(rows)
        index: dict[tuple[str, str], list[CatalogRow]] = {}
        for row in self._rows:
            index.setdefault(_key(row.cloud, row.instance_type), []).append(row)
        self._index: Mapping[tuple[str, str], tuple[CatalogRow, ...]] = {
            key: tuple(sorted(found, key=lambda r: (r.region, r.capacity_type)))
            for key, found in index.items()
        }

    @property
    def rows(self) -> tuple[CatalogRow, ...]:
        return self._rows

    def __len__(self) -> int:
        return len(self._rows)

    def lookup(
        self, cloud: str, instance_type: str, region: str | None, capacity_type: str
    ) -> CatalogRow | None:
        """The best row for a node, or None.

        Region: the exact region first, then a "*" row, then any region of that cloud (the
        returned row keeps its own region and its source says a region was substituted).
        Capacity: a spot or reserved node with no such row gets the on-demand price, and the
        source says so; no discount is guessed.
        """
        row = self._find(cloud, instance_type, region, capacity_type)
        if row is not None or capacity_type == "on-demand":
            return row
        fallback = self._find(cloud, instance_type, region, "on-demand")
        if fallback is None:
            return None
        return _noted(fallback, f"no {capacity_type} price listed; on-demand price used")

    def _find(
        self, cloud: str, instance_type: str, region: str | None, capacity_type: str
    ) -> CatalogRow | None:
        rows = [
            r for r in self._index.get(_key(cloud, instance_type), ()) if r.capacity_type == capacity_type
        ]
        wanted = (region or "").lower()
        for row in rows:
            if wanted and row.region.lower() == wanted:
                return row
        for row in rows:
            if row.region == ANY_REGION:
                return row
        if not rows:
            return None
        return _noted(rows[0], f"region {region or 'unknown'} not listed; {rows[0].region} price used")

    @classmethod
    def from_csv_text(cls, text: str, origin: str) -> Catalog:
        """Parse catalog CSV; a bad header or row raises CatalogError naming ``origin`` and the line."""
        reader = csv.DictReader(io.StringIO(text))
        header = tuple(reader.fieldnames or ())
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise CatalogError(f"{origin}:1: missing column(s) {', '.join(missing)}")
        rows: list[CatalogRow] = []
        seen: dict[tuple[str, str, str, str], int] = {}
        for raw in reader:
            line = reader.line_num
            try:
                row = _parse_row(raw)
            except ValueError as exc:
                raise CatalogError(f"{origin}:{line}: {exc}") from None
            key = (row.cloud, row.instance_type.lower(), row.region.lower(), row.capacity_type)
            if key in seen:
                raise CatalogError(f"{origin}:{line}: duplicate of the row on line {seen[key]}")
            seen[key] = line
            rows.append(row)
        return cls(rows)


def load_bundled_catalog() -> Catalog:
    """The catalog shipped in the package (reads package data: call from the shell at startup)."""
    text = resources.files("costwarden.pricing").joinpath("catalog.csv").read_text(encoding="utf-8")
    return Catalog.from_csv_text(text, BUNDLED_ORIGIN)


def _key(cloud: str, instance_type: str) -> tuple[str, str]:
    return (cloud.lower(), instance_type.lower())


def _noted(row: CatalogRow, note: str) -> CatalogRow:
    return dataclasses.replace(row, source=f"{row.source}; {note}")


def _parse_row(raw: Mapping[str, str | None]) -> CatalogRow:
    def text(column: str, *, required: bool = True) -> str:
        value = (raw.get(column) or "").strip()
        if required and not value:
            raise ValueError(f"{column} is empty")
        return value

    cloud = text("cloud").lower()
    if cloud not in CLOUDS:
        raise ValueError(f"cloud {cloud!r} is not one of {', '.join(CLOUDS)}")
    capacity = text("capacity_type").lower()
    if capacity not in CAPACITY_TYPES:
        raise ValueError(f"capacity_type {capacity!r} is not one of {', '.join(CAPACITY_TYPES)}")
    hourly = _decimal(text("hourly_usd"), "hourly_usd")
    if hourly <= 0:
        raise ValueError(f"hourly_usd must be > 0, got {hourly}")
    gpus_text = text("gpus", required=False) or "0"
    if not gpus_text.isdigit():
        raise ValueError(f"gpus {gpus_text!r} is not a whole number")
    as_of_text = text("as_of")
    try:
        as_of = date.fromisoformat(as_of_text)
    except ValueError:
        raise ValueError(f"as_of {as_of_text!r} is not an ISO date (YYYY-MM-DD)") from None
    return CatalogRow(
        cloud=cloud,
        instance_type=text("instance_type"),
        region=text("region"),
        capacity_type=capacity,
        hourly_usd=hourly,
        gpus=int(gpus_text),
        gpu_model=text("gpu_model", required=False) or None,
        vcpus=_non_negative(text("vcpus", required=False) or "0", "vcpus"),
        memory_gib=_non_negative(text("memory_gib", required=False) or "0", "memory_gib"),
        source=text("source"),
        as_of=as_of,
    )


def _decimal(value: str, column: str) -> Decimal:
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"{column} {value!r} is not a number") from None
    if not result.is_finite():
        raise ValueError(f"{column} {value!r} is not a finite number")
    return result


def _non_negative(value: str, column: str) -> Decimal:
    result = _decimal(value, column)
    if result < 0:
        raise ValueError(f"{column} must be >= 0, got {result}")
    return result
