"""``bq://project.dataset.table``: the GCP billing export in BigQuery, aggregated there.

Credentials: Application Default Credentials (GKE workload identity, a service account's
metadata server, ``gcloud auth application-default login``). Needs ``roles/bigquery.dataViewer``
on the dataset and ``roles/bigquery.jobUser`` on the project the queries run in (the table's).

Per sync: ``tables.get`` (the schema says detailed export or FOCUS view), one small probe query
(rows and newest ``export_time`` per invoice month), then, for each month that is new or whose
fingerprint changed, one aggregating query (costwarden.billing.sources.bigquery_sql) whose
per-resource-hour totals replace the store's lines of (this URI, that month) atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import duckdb
from google.api_core import retry as api_retry
from google.api_core.exceptions import GoogleAPIError
from google.auth.exceptions import GoogleAuthError
from google.cloud import bigquery
from requests.exceptions import RequestException

from costwarden.billing.sources.base import (
    FAILED,
    STORED,
    UNCHANGED,
    BillingSourceError,
    DeliveryResult,
    ObjectInfo,
    SyncReport,
)
from costwarden.billing.sources.bigquery_sql import TableShape, aggregate_sql, probe_sql, table_name
from costwarden.billing.sources.ledger import ObjectLedger
from costwarden.billing.store import BillingLine, BillingStore

# The labels kept as the line's Tags (JSON): SkyPilot's cluster label, GKE's cluster name.
DEFAULT_LABELS = ("skypilot-cluster-name", "goog-k8s-cluster-name")
_API_ERRORS = (GoogleAPIError, GoogleAuthError, RequestException)
# GCP cost_type -> FOCUS ChargeCategory (credits are folded into EffectiveCost, not lines).
_CATEGORIES = {"regular": "Usage", "tax": "Tax", "adjustment": "Adjustment", "rounding_error": "Adjustment"}


def invoice_months(now: datetime, count: int) -> list[str]:
    """``YYYYMM`` of the month of ``now`` and the ``count - 1`` before it, newest first."""
    year, month = now.year, now.month
    months = []
    for _ in range(count):
        months.append(f"{year:04d}{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return months


@dataclass
class BigQuerySource:
    """A BillingSource for ``bq://project.dataset.table``."""

    uri: str
    project: str
    dataset: str
    table: str
    client: Any = None  # a google.cloud.bigquery.Client; made from ADC when None
    look_back_months: int = 2
    labels: tuple[str, ...] = DEFAULT_LABELS
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    retry_deadline: float = 120.0  # seconds of retries (throttling, 5xx) before an API error

    def _fail(self, what: str, exc: BaseException) -> BillingSourceError:
        message = getattr(exc, "message", None) or str(exc)
        return BillingSourceError(self.uri, f"{what}: {type(exc).__name__}: {message}")

    def sync(self, store: BillingStore) -> SyncReport:
        retry = api_retry.Retry(deadline=self.retry_deadline)
        try:
            client = self.client if self.client is not None else bigquery.Client(project=self.project)
            schema = client.get_table(f"{self.project}.{self.dataset}.{self.table}", retry=retry).schema
        except _API_ERRORS as exc:
            raise self._fail("cannot read the table", exc) from exc
        shape = TableShape.of([(f.name, f.field_type, f.mode) for f in schema])
        if shape is None:
            raise BillingSourceError(
                self.uri, "neither a GCP detailed usage cost export nor its FOCUS view (no cost columns)"
            )
        table = table_name(self.project, self.dataset, self.table)
        months = invoice_months(self.now(), self.look_back_months)
        params = [bigquery.ArrayQueryParameter("invoice_months", "STRING", months)]
        try:
            probed = {
                str(row["invoice_month"]): ObjectInfo(
                    f"invoice_month={row['invoice_month']}",
                    f"{row['line_count']}/{row['fingerprint']}",
                    int(row["line_count"]),
                    self.now(),
                )
                for row in self._query(client, probe_sql(shape, table), params, retry)
            }
        except _API_ERRORS as exc:
            raise self._fail("cannot query the invoice months", exc) from exc
        ledger = ObjectLedger(store, self.uri)
        known = ledger.known()
        results = []
        for month in sorted(probed):
            info = probed[month]
            name, period = info.key, f"{month[:4]}-{month[4:]}"
            seen = known.get(info.key)
            if seen is not None and (seen.etag, seen.size) == (info.etag, info.size):
                results.append(DeliveryResult(name, period, UNCHANGED, objects=1))
                continue
            try:
                rows, replaced = self._month(
                    client, shape, table, month, store=store, ledger=ledger, info=info, retry=retry
                )
            except (*_API_ERRORS, TypeError, ValueError, duckdb.Error) as exc:
                error = BillingSourceError(self.uri, f"{type(exc).__name__}: {exc}", name)
                results.append(DeliveryResult(name, period, FAILED, error=error))
                continue
            results.append(
                DeliveryResult(
                    name, period, STORED, objects=1, downloaded=1, rows=rows, replaced_rows=replaced
                )
            )
        return SyncReport(self.uri, tuple(results))

    def _query(self, client: Any, sql: str, params: list[Any], retry: api_retry.Retry) -> Iterable[Any]:
        config = bigquery.QueryJobConfig(query_parameters=params, use_legacy_sql=False)
        rows: Iterable[Any] = client.query_and_wait(sql, job_config=config, retry=retry, project=self.project)
        return rows

    def _month(
        self,
        client: Any,
        shape: TableShape,
        table: str,
        month: str,
        *,
        store: BillingStore,
        ledger: ObjectLedger,
        info: ObjectInfo,
        retry: api_retry.Retry,
    ) -> tuple[int, int]:
        params = [
            bigquery.ArrayQueryParameter("invoice_months", "STRING", [month]),
            *(
                bigquery.ScalarQueryParameter(f"label_{i}", "STRING", key)
                for i, key in enumerate(self.labels)
            ),
        ]
        lines = [
            self._line(row)
            for row in self._query(client, aggregate_sql(shape, table, len(self.labels)), params, retry)
        ]
        period = datetime(int(month[:4]), int(month[4:]), 1, tzinfo=UTC)
        return store.replace_lines(self.uri, period, lines, then=ledger.recorder(info.key, [info]))

    def _line(self, row: Any) -> BillingLine:
        hour: datetime = row["hour"]
        tags = {key: row[f"label_{i}"] for i, key in enumerate(self.labels) if row[f"label_{i}"] is not None}
        category = str(row["charge_category"] or "")
        billed = _decimal(row["billed_cost"])
        return BillingLine(
            provider="Google Cloud",
            billing_account_id=row["billing_account_id"],
            sub_account_id=row["sub_account_id"],
            charge_period_start=hour,
            charge_period_end=hour + timedelta(hours=1),
            charge_category=_CATEGORIES.get(category.lower(), category or "Usage"),
            billing_currency=row["currency"],
            billed_cost=billed if billed is not None else Decimal(0),
            effective_cost=_decimal(row["effective_cost"]) or Decimal(0),
            list_cost=_decimal(row["list_cost"]),
            resource_id=row["resource_id"],
            sku_id=row["sku_id"],
            service_name=row["service_name"],
            region_id=row["region"],
            tags=json.dumps(tags, sort_keys=True) if tags else None,
        )


def _decimal(value: object) -> Decimal | None:
    """BigQuery's NUMERIC and BIGNUMERIC arrive as Decimal; anything else is refused (no float)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int | str):
        try:
            return Decimal(value)
        except ArithmeticError as exc:
            raise ValueError(f"money {value!r} is no number") from exc
    raise TypeError(f"money of type {type(value).__name__}, expected a decimal")
