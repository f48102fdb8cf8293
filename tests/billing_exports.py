"""Generated billing exports for tests and benchmarks: AWS CUR 2.0 and FOCUS 1.0 Parquet, the
manifests AWS Data Exports, legacy CUR and Azure Cost Management write, and the totals the
store must hold for them, computed here in Python with Decimal (independently of the SQL).

    rows = [Cur2Line("Usage", "i-0abc", T0, Decimal("3.06"), usage_type="BoxUsage:p4d.24xlarge")]
    write_cur2_parquet(path, rows)
    expected = cur2_totals(rows)  # (rows, billed, effective)

Shapes follow the CUR 2.0 data dictionary
(https://docs.aws.amazon.com/cur/latest/userguide/table-dictionary-cur2.html): costs are Parquet
DOUBLE, times TIMESTAMP, ``resource_tags`` a MAP<string, string>; and FOCUS 1.0
(https://focus.finops.org/focus-specification/v1-0/): every mandatory column, costs DECIMAL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

Totals = tuple[int, Decimal, Decimal]


@dataclass(frozen=True)
class Cur2Line:
    """One CUR 2.0 line. ``line_type``: Usage, SavingsPlanCoveredUsage, DiscountedUsage,
    SavingsPlanNegation, Credit, Refund, Tax, RIFee…; spot usage is ``Usage`` with a
    ``…SpotUsage:<type>`` usage type."""

    line_type: str
    resource_id: str
    start: datetime
    unblended_cost: Decimal
    usage_type: str = "BoxUsage:p4d.24xlarge"
    savings_plan_effective_cost: Decimal | None = None
    reservation_effective_cost: Decimal | None = None
    public_on_demand_cost: Decimal | None = None
    payer_account_id: str = "111122223333"
    usage_account_id: str = "444455556666"
    product_code: str = "AmazonEC2"
    region: str = "us-east-1"
    tags: dict[str, str] = field(default_factory=dict)

    def effective(self) -> Decimal:
        """The effective cost by the documented rules (as AWS's own FOCUS export)."""
        if self.line_type == "SavingsPlanCoveredUsage":
            return self.savings_plan_effective_cost or Decimal(0)
        if self.line_type == "DiscountedUsage":
            return self.reservation_effective_cost or Decimal(0)
        if self.line_type == "SavingsPlanNegation":
            return Decimal(0)
        return self.unblended_cost


def _month_start(when: datetime) -> datetime:
    return datetime(when.year, when.month, 1, tzinfo=UTC)


def _double(value: Decimal | None) -> float | None:
    """A cost as CUR 2.0 writes it (DOUBLE); test values keep under 15 significant digits."""
    return None if value is None else float(value)


def write_cur2_parquet(path: Path, rows: Sequence[Cur2Line]) -> Path:
    """Write ``rows`` as one CUR 2.0 Parquet file (one part of a Data Exports delivery)."""
    ts = pa.timestamp("us", tz="UTC")
    table = pa.table(
        {
            "bill_billing_period_start_date": pa.array([_month_start(r.start) for r in rows], ts),
            "bill_payer_account_id": [r.payer_account_id for r in rows],
            "line_item_usage_account_id": [r.usage_account_id for r in rows],
            "line_item_line_item_type": [r.line_type for r in rows],
            "line_item_usage_start_date": pa.array([r.start for r in rows], ts),
            "line_item_usage_end_date": pa.array([r.start + timedelta(hours=1) for r in rows], ts),
            "line_item_product_code": [r.product_code for r in rows],
            "line_item_usage_type": [r.usage_type for r in rows],
            "line_item_resource_id": [r.resource_id for r in rows],
            "line_item_unblended_cost": pa.array([_double(r.unblended_cost) for r in rows], pa.float64()),
            "line_item_currency_code": ["USD"] * len(rows),
            "savings_plan_savings_plan_effective_cost": pa.array(
                [_double(r.savings_plan_effective_cost) for r in rows], pa.float64()
            ),
            "reservation_effective_cost": pa.array(
                [_double(r.reservation_effective_cost) for r in rows], pa.float64()
            ),
            "pricing_public_on_demand_cost": pa.array(
                [_double(r.public_on_demand_cost) for r in rows], pa.float64()
            ),
            "product_region_code": [r.region for r in rows],
            "resource_tags": pa.array(
                [list(r.tags.items()) for r in rows], pa.map_(pa.string(), pa.string())
            ),
        }
    )
    pq.write_table(table, path)
    return path


def cur2_totals(rows: Iterable[Cur2Line]) -> Totals:
    rows = list(rows)
    return (
        len(rows),
        sum((r.unblended_cost for r in rows), Decimal(0)),
        sum((r.effective() for r in rows), Decimal(0)),
    )


@dataclass(frozen=True)
class FocusLine:
    """One FOCUS 1.0 line (ChargeCategory Usage, Purchase, Credit, Tax, Adjustment)."""

    charge_category: str
    resource_id: str
    start: datetime
    billed_cost: Decimal
    effective_cost: Decimal
    list_cost: Decimal | None = None
    provider: str = "AWS"
    billing_account_id: str = "111122223333"
    sub_account_id: str = "444455556666"
    pricing_category: str = "Standard"  # Standard, Dynamic (spot), Committed
    service_name: str = "Amazon Elastic Compute Cloud"
    sku_id: str = "8VCNEHQMSCQS4P39"
    region: str = "us-east-1"
    tags: dict[str, str] = field(default_factory=dict)


def write_focus_parquet(path: Path, rows: Sequence[FocusLine], money: str = "double") -> Path:
    """Write ``rows`` as one FOCUS 1.0 Parquet file with every mandatory column of FOCUS 1.0.

    ``money``: ``double`` (as the clouds' Parquet exports write costs, and what focus-validator's
    decimal check accepts) or ``decimal`` (DECIMAL(38, 18))."""
    ts = pa.timestamp("us", tz="UTC")

    def money_array(values: list[Decimal | None]) -> pa.Array:
        if money == "double":
            return pa.array([_double(v) for v in values], pa.float64())
        return pa.array(values, pa.decimal128(38, 18))

    n = len(rows)
    usage = [r.charge_category == "Usage" for r in rows]
    month = [_month_start(r.start) for r in rows]
    nxt = [(m + timedelta(days=32)).replace(day=1) for m in month]
    table = pa.table(
        {
            "AvailabilityZone": [None] * n,
            "BilledCost": money_array([r.billed_cost for r in rows]),
            "BillingAccountId": [r.billing_account_id for r in rows],
            "BillingAccountName": ["Example payer"] * n,
            "BillingCurrency": ["USD"] * n,
            "BillingPeriodEnd": pa.array(nxt, ts),
            "BillingPeriodStart": pa.array(month, ts),
            "ChargeCategory": [r.charge_category for r in rows],
            "ChargeClass": pa.array([None] * n, pa.string()),
            "ChargeDescription": [f"{r.charge_category} of {r.resource_id}" for r in rows],
            "ChargeFrequency": ["Usage-Based" if u else "One-Time" for u in usage],
            "ChargePeriodEnd": pa.array([r.start + timedelta(hours=1) for r in rows], ts),
            "ChargePeriodStart": pa.array([r.start for r in rows], ts),
            "CommitmentDiscountCategory": pa.array([None] * n, pa.string()),
            "CommitmentDiscountId": pa.array([None] * n, pa.string()),
            "CommitmentDiscountName": pa.array([None] * n, pa.string()),
            "CommitmentDiscountStatus": pa.array([None] * n, pa.string()),
            "CommitmentDiscountType": pa.array([None] * n, pa.string()),
            "ConsumedQuantity": money_array([Decimal(1) if u else None for u in usage]),
            "ConsumedUnit": ["Hours" if u else None for u in usage],
            "ContractedCost": money_array([r.list_cost or r.billed_cost for r in rows]),
            "ContractedUnitPrice": money_array(
                [r.list_cost if u else None for r, u in zip(rows, usage, strict=True)]
            ),
            "EffectiveCost": money_array([r.effective_cost for r in rows]),
            "InvoiceIssuerName": ["Amazon Web Services, Inc."] * n,
            "ListCost": money_array([r.list_cost or r.billed_cost for r in rows]),
            "ListUnitPrice": money_array(
                [r.list_cost if u else None for r, u in zip(rows, usage, strict=True)]
            ),
            "PricingCategory": [r.pricing_category if u else None for r, u in zip(rows, usage, strict=True)],
            "PricingQuantity": money_array([Decimal(1) if u else None for u in usage]),
            "PricingUnit": ["Hours" if u else None for u in usage],
            "ProviderName": [r.provider for r in rows],
            "PublisherName": [r.provider for r in rows],
            "RegionId": [r.region for r in rows],
            "RegionName": ["US East (N. Virginia)"] * n,
            "ResourceId": [r.resource_id for r in rows],
            "ResourceName": [r.resource_id for r in rows],
            "ResourceType": ["Instance"] * n,
            "ServiceCategory": ["Compute"] * n,
            "ServiceName": [r.service_name for r in rows],
            "SkuId": [r.sku_id if u else None for r, u in zip(rows, usage, strict=True)],
            "SkuPriceId": [f"{r.sku_id}.JRTCKXETXF" if u else None for r, u in zip(rows, usage, strict=True)],
            "SubAccountId": [r.sub_account_id for r in rows],
            "SubAccountName": ["research"] * n,
            "Tags": [json.dumps(r.tags, sort_keys=True) for r in rows],
        }
    )
    pq.write_table(table, path)
    return path


def focus_totals(rows: Iterable[FocusLine]) -> Totals:
    rows = list(rows)
    return (
        len(rows),
        sum((r.billed_cost for r in rows), Decimal(0)),
        sum((r.effective_cost for r in rows), Decimal(0)),
    )


def data_exports_manifest(bucket: str, keys: Sequence[str], export: str, period: str) -> bytes:
    """An AWS Data Exports ``<export>-Manifest.json``: ``dataFiles`` as ``s3://`` URIs
    (https://docs.aws.amazon.com/cur/latest/userguide/dataexports-manifest.html)."""
    year, month = (int(p) for p in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = (start + timedelta(days=32)).replace(day=1)
    return json.dumps(
        {
            "executionId": f"{export}-{period}-execution",
            "exportArn": f"arn:aws:bcm-data-exports:us-east-1:111122223333:export/{export}-0000",
            "exportName": export,
            "billingPeriod": {"start": start.isoformat(), "end": end.isoformat()},
            "bucket": bucket,
            "columns": [{"name": "line_item_unblended_cost", "type": "double"}],
            "dataFiles": [f"s3://{bucket}/{key}" for key in keys],
        }
    ).encode()


def legacy_cur_manifest(bucket: str, report: str, keys: Sequence[str], period: str) -> bytes:
    """A legacy CUR ``<report>-Manifest.json``: ``reportKeys`` as keys in the bucket."""
    year, month = (int(p) for p in period.split("-"))
    start = datetime(year, month, 1, tzinfo=UTC)
    end = (start + timedelta(days=32)).replace(day=1)
    return json.dumps(
        {
            "assemblyId": "20261103T040000Z-assembly",
            "reportName": report,
            "bucket": bucket,
            "billingPeriod": {
                "start": start.strftime("%Y%m%dT000000.000Z"),
                "end": end.strftime("%Y%m%dT000000.000Z"),
            },
            "compression": "GZIP",
            "contentType": "text/csv",
            "reportKeys": list(keys),
        }
    ).encode()


def azure_manifest(
    export: str, blob_names: Sequence[str], sizes: Sequence[int], start: str, end: str
) -> bytes:
    """An Azure Cost Management export ``manifest.json`` (the improved exports: ``blobs[]`` with
    ``blobName`` in the container, ``runInfo``)."""
    return json.dumps(
        {
            "manifestVersion": "2024-04-01",
            "byteCount": sum(sizes),
            "blobCount": len(blob_names),
            "dataRowCount": 0,
            "exportConfig": {"exportName": export, "type": "FocusCost", "dataVersion": "1.0"},
            "deliveryConfig": {"partitionData": True, "fileFormat": "Parquet"},
            "runInfo": {
                "executionType": "Scheduled",
                "submittedTime": f"{end[:4]}-{end[4:6]}-{end[6:]}T03:00:00Z",
                "runId": f"{export}-{start}-run",
                "startDate": f"{start[:4]}-{start[4:6]}-{start[6:]}T00:00:00",
                "endDate": f"{end[:4]}-{end[4:6]}-{end[6:]}T00:00:00",
            },
            "blobs": [
                {"blobName": name, "byteCount": size, "dataRowCount": 0}
                for name, size in zip(blob_names, sizes, strict=True)
            ],
        }
    ).encode()
