"""The SQL sent to BigQuery for a GCP billing export table (pure: builds strings).

Two shapes of table, told apart by their schema:

* the detailed usage cost export, ``gcp_billing_export_resource_v1_<ACCOUNT>``
  (https://cloud.google.com/billing/docs/how-to/export-data-bigquery-tables/detailed-usage):
  ``cost`` and ``credits[].amount`` are FLOAT64; ``invoice.month`` is ``YYYYMM``; ``labels`` a
  REPEATED key/value RECORD;
* the FOCUS view of the export (https://cloud.google.com/billing/docs/how-to/export-data-bigquery-focus):
  FOCUS columns (``BilledCost``, ``EffectiveCost``, ``ChargePeriodStart``, ``BillingPeriodStart``, ``Tags``).

The aggregation is pushed down: BigQuery groups the lines by resource, hour
(``TIMESTAMP_TRUNC(…, HOUR)``), SKU, service, charge category and the attribution labels, and
sums the money, so that only per-resource-hour totals come back. Money is summed as BIGNUMERIC
and read back as ``Decimal``: a FLOAT64 column is cast through its text (``CAST(CAST(cost AS
STRING) AS BIGNUMERIC)``), as the local importer reads a Parquet DOUBLE, so no float is ever
added. The months are query parameters (``@invoice_months``), as are the label keys.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

DETAILED = "detailed"
FOCUS = "focus"

_FLOATS = {"FLOAT", "FLOAT64"}


@dataclass(frozen=True, slots=True)
class TableShape:
    """What the SQL needs of a table's schema: its kind and the types of the columns used."""

    kind: str  # DETAILED | FOCUS
    types: Mapping[str, str]  # top-level column -> BigQuery type ("RECORD", "FLOAT", "NUMERIC", ...)
    repeated: frozenset[str]  # top-level columns of mode REPEATED

    @classmethod
    def of(cls, fields: Sequence[tuple[str, str, str]]) -> TableShape | None:
        """From (name, type, mode) of the top-level fields; None when it is neither shape."""
        types = {name: kind.upper() for name, kind, _mode in fields}
        repeated = frozenset(name for name, _kind, mode in fields if mode.upper() == "REPEATED")
        if {"BilledCost", "EffectiveCost", "ChargePeriodStart", "BillingPeriodStart"} <= set(types):
            return cls(FOCUS, types, repeated)
        if {"cost", "usage_start_time", "invoice", "sku"} <= set(types):
            return cls(DETAILED, types, repeated)
        return None


def exact(expression: str, kind: str) -> str:
    """``expression`` (of BigQuery type ``kind``) as BIGNUMERIC, a FLOAT64 through its text."""
    if kind.upper() in _FLOATS:
        return f"CAST(CAST({expression} AS STRING) AS BIGNUMERIC)"
    return f"CAST({expression} AS BIGNUMERIC)"


def table_name(project: str, dataset: str, table: str) -> str:
    """The backquoted table path (the parts are checked by source_from_uri)."""
    return f"`{project}.{dataset}.{table}`"


def _labels(shape: TableShape, column: str, count: int) -> list[str]:
    parts = []
    for i in range(count):
        if column in shape.repeated:
            parts.append(
                f"(SELECT ANY_VALUE(l.value) FROM UNNEST({column}) AS l WHERE l.key = @label_{i})"
                f" AS label_{i}"
            )
        elif column in shape.types:  # FOCUS Tags as JSON or JSON text
            parts.append(f"JSON_VALUE({column}, CONCAT('$.\"', @label_{i}, '\"')) AS label_{i}")
        else:
            parts.append(f"CAST(NULL AS STRING) AS label_{i}")
    return parts


def month_of(shape: TableShape) -> str:
    if shape.kind == FOCUS:
        return "FORMAT_TIMESTAMP('%Y%m', BillingPeriodStart, 'UTC')"
    return "invoice.month"


def probe_sql(shape: TableShape, table: str) -> str:
    """Per invoice month: rows and a fingerprint that changes when the month is restated."""
    month = month_of(shape)
    if shape.kind == FOCUS:
        newest = f"CAST(SUM({exact('BilledCost', shape.types['BilledCost'])}) AS STRING)"
    else:
        newest = "CAST(MAX(export_time) AS STRING)" if "export_time" in shape.types else "''"
    return (
        f"SELECT {month} AS invoice_month, COUNT(*) AS line_count, {newest} AS fingerprint\n"
        f"FROM {table}\nWHERE {month} IN UNNEST(@invoice_months)\nGROUP BY invoice_month"
    )


def aggregate_sql(shape: TableShape, table: str, labels: int) -> str:
    """One row per invoice month, resource, hour, SKU, service, category and label values."""
    t = shape.types
    if shape.kind == FOCUS:
        keys = [
            f"{month_of(shape)} AS invoice_month",
            "BillingAccountId AS billing_account_id",
            "SubAccountId AS sub_account_id",
            "ResourceId AS resource_id",
            "TIMESTAMP_TRUNC(ChargePeriodStart, HOUR) AS hour",
            "SkuId AS sku_id",
            "ServiceName AS service_name",
            "RegionId AS region",
            "ChargeCategory AS charge_category",
            "BillingCurrency AS currency",
            *_labels(shape, "Tags", labels),
        ]
        sums = [
            f"SUM({exact('BilledCost', t['BilledCost'])}) AS billed_cost",
            f"SUM({exact('EffectiveCost', t['EffectiveCost'])}) AS effective_cost",
            f"SUM({exact('ListCost', t['ListCost'])}) AS list_cost"
            if "ListCost" in t
            else "NULL AS list_cost",
        ]
    else:
        credit = exact("c.amount", "FLOAT64")
        keys = [
            "invoice.month AS invoice_month",
            "billing_account_id",
            "project.id AS sub_account_id",
            "COALESCE(resource.global_name, resource.name) AS resource_id",
            "TIMESTAMP_TRUNC(usage_start_time, HOUR) AS hour",
            "sku.id AS sku_id",
            "service.description AS service_name",
            "location.region AS region",
            "cost_type AS charge_category",
            "currency",
            *_labels(shape, "labels", labels),
        ]
        cost = exact("cost", t["cost"])
        sums = [
            f"SUM({cost}) AS billed_cost",
            f"SUM({cost} + IFNULL((SELECT SUM({credit}) FROM UNNEST(credits) AS c), 0)) AS effective_cost",
            (
                f"SUM({exact('cost_at_list', t['cost_at_list'])}) AS list_cost"
                if "cost_at_list" in t
                else "NULL AS list_cost"
            ),
        ]
    names = [key.rsplit(" AS ", 1)[-1] for key in keys]
    return (
        "SELECT\n  "
        + ",\n  ".join([*keys, *sums])
        + f"\nFROM {table}\nWHERE {month_of(shape)} IN UNNEST(@invoice_months)\nGROUP BY "
        + ", ".join(names)
    )
