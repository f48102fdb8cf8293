"""The BigQuery billing source: the real google-cloud-bigquery client against a local fake of the
REST API (tests/bigquery_fake.py). The fake does not run SQL; it answers from raw export lines
held here, aggregated in Python with Decimal, and the tests check the SQL that was sent pushes
the aggregation down (groups by resource and hour, sums in BIGNUMERIC, months as parameters)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from costwarden.billing.sources import FAILED, STORED, UNCHANGED, BillingSourceError, source_from_uri
from costwarden.billing.sources.bigquery import BigQuerySource
from costwarden.billing.store import BillingStore
from tests.bigquery_fake import FakeBigQuery, serve

D = Decimal
URI = "bq://billing-project.billing_export.gcp_billing_export_resource_v1_0A0A0A_0B0B0B_0C0C0C"
TABLE = URI.removeprefix("bq://")
NOW = datetime(2026, 11, 20, 12, tzinfo=UTC)

DETAILED_SCHEMA = [
    {"name": "billing_account_id", "type": "STRING", "mode": "NULLABLE"},
    {"name": "service", "type": "RECORD", "mode": "NULLABLE"},
    {"name": "sku", "type": "RECORD", "mode": "NULLABLE"},
    {"name": "usage_start_time", "type": "TIMESTAMP", "mode": "NULLABLE"},
    {"name": "usage_end_time", "type": "TIMESTAMP", "mode": "NULLABLE"},
    {"name": "project", "type": "RECORD", "mode": "NULLABLE"},
    {"name": "labels", "type": "RECORD", "mode": "REPEATED"},
    {"name": "location", "type": "RECORD", "mode": "NULLABLE"},
    {"name": "resource", "type": "RECORD", "mode": "NULLABLE"},
    {"name": "export_time", "type": "TIMESTAMP", "mode": "NULLABLE"},
    {"name": "cost", "type": "FLOAT", "mode": "NULLABLE"},
    {"name": "currency", "type": "STRING", "mode": "NULLABLE"},
    {"name": "credits", "type": "RECORD", "mode": "REPEATED"},
    {"name": "invoice", "type": "RECORD", "mode": "NULLABLE"},
    {"name": "cost_type", "type": "STRING", "mode": "NULLABLE"},
]
RESULT_FIELDS = [
    *(
        {"name": n, "type": "STRING", "mode": "NULLABLE"}
        for n in ("invoice_month", "billing_account_id", "sub_account_id", "resource_id")
    ),
    {"name": "hour", "type": "TIMESTAMP", "mode": "NULLABLE"},
    *(
        {"name": n, "type": "STRING", "mode": "NULLABLE"}
        for n in ("sku_id", "service_name", "region", "charge_category", "currency", "label_0", "label_1")
    ),
    *(
        {"name": n, "type": "BIGNUMERIC", "mode": "NULLABLE"}
        for n in ("billed_cost", "effective_cost", "list_cost")
    ),
]


@dataclass(frozen=True)
class Line:
    """One raw line of the detailed export."""

    month: str
    resource: str
    start: datetime
    cost: Decimal
    credits: tuple[Decimal, ...] = ()
    sku: str = "CP-COMPUTEENGINE-VMIMAGE-A2-HIGHGPU-1G"
    cost_type: str = "regular"
    labels: dict[str, str] = field(default_factory=dict)
    exported: datetime = NOW


def answer(lines: list[Line]) -> Any:
    def respond(sql: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        months = set(params["invoice_months"])
        chosen = [line for line in lines if line.month in months]
        if "line_count" in sql:  # the probe
            fields = [
                {"name": "invoice_month", "type": "STRING"},
                {"name": "line_count", "type": "INTEGER"},
                {"name": "fingerprint", "type": "STRING"},
            ]
            by_month: dict[str, list[Line]] = defaultdict(list)
            for line in chosen:
                by_month[line.month].append(line)
            rows = [
                {
                    "invoice_month": m,
                    "line_count": len(ls),
                    "fingerprint": max(x.exported for x in ls).isoformat(),
                }
                for m, ls in sorted(by_month.items())
            ]
            return fields, rows
        keys = [params["label_0"], params["label_1"]]
        groups: dict[tuple[Any, ...], list[Decimal]] = {}
        for line in chosen:
            hour = line.start.replace(minute=0, second=0, microsecond=0)
            key = (
                line.month,
                line.resource,
                hour,
                line.sku,
                line.cost_type,
                *(line.labels.get(k) for k in keys),
            )
            totals = groups.setdefault(key, [D(0), D(0)])
            totals[0] += line.cost
            totals[1] += line.cost + sum(line.credits, D(0))
        rows = [
            {
                "invoice_month": k[0],
                "billing_account_id": "0A0A0A-0B0B0B-0C0C0C",
                "sub_account_id": "research-project",
                "resource_id": k[1],
                "hour": k[2],
                "sku_id": k[3],
                "service_name": "Compute Engine",
                "region": "us-central1",
                "charge_category": k[4],
                "currency": "USD",
                "label_0": k[5],
                "label_1": k[6],
                "billed_cost": v[0],
                "effective_cost": v[1],
                "list_cost": None,
            }
            for k, v in sorted(groups.items(), key=lambda kv: repr(kv[0]))
        ]
        return RESULT_FIELDS, rows

    return respond


def raw_lines() -> list[Line]:
    vm = "//compute.googleapis.com/projects/research-project/zones/us-central1-a/instances/llama-2ea4-head"
    label = {"skypilot-cluster-name": "llama-2ea4"}
    t0 = datetime(2026, 11, 3, 4, tzinfo=UTC)
    lines = [
        Line("202611", vm, t0 + timedelta(minutes=m), D("0.612345678"), (D("-0.1"),), labels=label)
        for m in (0, 15, 30, 45)  # four lines of one hour: one row back
    ]
    lines += [
        Line("202611", vm, t0 + timedelta(hours=1), D("2.449382716"), (D("-0.5"), D("-0.25")), labels=label),
        Line("202611", "gke-node-1", t0, D("1.0000001")),
        Line("202611", "", t0, D("0.07"), cost_type="tax"),
        Line("202610", vm, datetime(2026, 10, 30, 9, tzinfo=UTC), D("3.25"), (D("-3.25"),), labels=label),
        Line("202609", vm, datetime(2026, 9, 30, 9, tzinfo=UTC), D("99")),  # outside the look-back
    ]
    return lines


@pytest.fixture
def fake() -> Iterator[FakeBigQuery]:
    with serve(FakeBigQuery(tables={TABLE: DETAILED_SCHEMA})) as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BillingStore]:
    with BillingStore(tmp_path / "billing.duckdb") as opened:
        yield opened


def source(fake: FakeBigQuery) -> BigQuerySource:
    client = bigquery.Client(
        project="billing-project",
        credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
        client_options=ClientOptions(api_endpoint=fake.url),
    )
    made = source_from_uri(URI, bigquery_client=client)
    assert isinstance(made, BigQuerySource)
    return replace(made, now=lambda: NOW, retry_deadline=2.0)


def stored(store: BillingStore) -> dict[str, tuple[int, Decimal, Decimal]]:
    rows = store.connection.execute(
        "SELECT strftime(BillingPeriodStart, '%Y%m'), count(*), sum(BilledCost), sum(EffectiveCost) "
        "FROM billing_lines GROUP BY ALL"
    ).fetchall()
    return {str(m): (int(n), D(b), D(e)) for m, n, b, e in rows}


def expected(lines: list[Line], month: str) -> tuple[Decimal, Decimal]:
    chosen = [x for x in lines if x.month == month]
    return sum((x.cost for x in chosen), D(0)), sum((x.cost + sum(x.credits, D(0)) for x in chosen), D(0))


def test_the_aggregation_is_pushed_down_and_the_totals_land_exactly(
    fake: FakeBigQuery, store: BillingStore
) -> None:
    lines = raw_lines()
    fake.answer = answer(lines)
    report = source(fake).sync(store)

    assert [(d.period, d.status) for d in report.deliveries] == [("2026-10", STORED), ("2026-11", STORED)]
    probe, *aggregations = fake.queries
    assert probe[1]["invoice_months"] == ["202611", "202610"]  # current and previous month only
    for sql, params in aggregations:
        assert f"FROM `{TABLE}`" in sql and "WHERE invoice.month IN UNNEST(@invoice_months)" in sql
        assert "TIMESTAMP_TRUNC(usage_start_time, HOUR) AS hour" in sql
        assert "COALESCE(resource.global_name, resource.name) AS resource_id" in sql
        assert "GROUP BY invoice_month, billing_account_id, sub_account_id, resource_id, hour, sku_id" in sql
        assert "SUM(CAST(CAST(cost AS STRING) AS BIGNUMERIC)) AS billed_cost" in sql
        assert "UNNEST(credits)" in sql and "UNNEST(labels)" in sql
        assert params["label_0"] == "skypilot-cluster-name" and len(params["invoice_months"]) == 1
    assert stored(store) == {
        "202611": (4, *expected(lines, "202611")),  # 7 raw lines, 4 resource-hours
        "202610": (1, *expected(lines, "202610")),
    }
    head = store.connection.execute(
        "SELECT ChargePeriodStart, ChargePeriodEnd, BilledCost, EffectiveCost, Tags, ProviderName, "
        "ChargeCategory "
        "FROM billing_lines WHERE ResourceId LIKE '%llama-2ea4-head' AND BillingPeriodStart >= '2026-11-01' "
        "ORDER BY ChargePeriodStart LIMIT 1"
    ).fetchone()
    assert head == (
        datetime(2026, 11, 3, 4, tzinfo=UTC),
        datetime(2026, 11, 3, 5, tzinfo=UTC),
        D("2.449382712"),
        D("2.049382712"),
        '{"skypilot-cluster-name": "llama-2ea4"}',
        "Google Cloud",
        "Usage",
    )
    assert store.connection.execute(
        "SELECT ChargeCategory FROM billing_lines WHERE BilledCost = 0.07"
    ).fetchone() == ("Tax",)


def test_an_unchanged_month_is_not_queried_again_and_a_restated_one_replaces(
    fake: FakeBigQuery, store: BillingStore
) -> None:
    lines = raw_lines()
    fake.answer = answer(lines)
    bq = source(fake)
    bq.sync(store)

    fake.queries.clear()
    again = bq.sync(store)
    assert [d.status for d in again.deliveries] == [UNCHANGED, UNCHANGED]
    assert len(fake.queries) == 1  # the probe only

    later = NOW + timedelta(hours=6)
    restated = [replace(x, cost=x.cost * 2, exported=later) if x.month == "202610" else x for x in lines]
    fake.answer = answer(restated)
    fake.queries.clear()
    report = bq.sync(store)
    assert [(d.period, d.status) for d in report.deliveries] == [("2026-10", STORED), ("2026-11", UNCHANGED)]
    assert report.deliveries[0].replaced_rows == 1 and len(fake.queries) == 2
    assert stored(store)["202610"] == (1, *expected(restated, "202610"))
    assert stored(store)["202611"] == (4, *expected(lines, "202611"))


def test_an_api_error_names_the_source(fake: FakeBigQuery, store: BillingStore) -> None:
    fake.fail = (
        403,
        "accessDenied",
        "Access Denied: Table billing-project:billing_export: permission denied",
    )
    with pytest.raises(BillingSourceError) as caught:
        source(fake).sync(store)
    message = str(caught.value)
    assert message.startswith(f"{URI}: cannot read the table: Forbidden") and "Access Denied" in message
    assert "\n" not in message


def test_a_table_of_another_shape_is_refused(fake: FakeBigQuery, store: BillingStore) -> None:
    fake.tables[TABLE] = [{"name": "x", "type": "STRING", "mode": "NULLABLE"}]
    with pytest.raises(BillingSourceError, match="neither a GCP detailed usage cost export"):
        source(fake).sync(store)


def test_the_focus_view_is_aggregated_from_its_focus_columns(fake: FakeBigQuery, store: BillingStore) -> None:
    fake.tables[TABLE] = [
        {"name": n, "type": t, "mode": "NULLABLE"}
        for n, t in (
            ("BilledCost", "NUMERIC"),
            ("EffectiveCost", "NUMERIC"),
            ("ListCost", "NUMERIC"),
            ("ChargePeriodStart", "TIMESTAMP"),
            ("BillingPeriodStart", "TIMESTAMP"),
            ("Tags", "JSON"),
        )
    ]
    fake.answer = lambda sql, params: ([], [])
    report = source(fake).sync(store)
    assert report.deliveries == ()
    [(sql, _params)] = fake.queries
    assert "FORMAT_TIMESTAMP('%Y%m', BillingPeriodStart, 'UTC') AS invoice_month" in sql
    assert "CAST(SUM(CAST(BilledCost AS BIGNUMERIC)) AS STRING)" in sql


def test_a_failed_month_leaves_the_other_stored(fake: FakeBigQuery, store: BillingStore) -> None:
    lines = raw_lines()
    good = answer(lines)

    def respond(sql: str, params: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        fields, rows = good(sql, params)
        if "line_count" not in sql and params["invoice_months"] == ["202610"]:
            rows = [{**r, "billed_cost": "not a number"} for r in rows]
            fields = [{**f, "type": "STRING"} if f["name"] == "billed_cost" else f for f in fields]
        return fields, rows

    fake.answer = respond
    report = source(fake).sync(store)
    assert [(d.period, d.status) for d in report.deliveries] == [("2026-10", FAILED), ("2026-11", STORED)]
    assert str(report.deliveries[0].error).startswith(f"{URI}: invoice_month=202610: ")
    assert set(stored(store)) == {"202611"}
