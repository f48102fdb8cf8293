"""The S3 billing source against moto's S3: AWS Data Exports (CUR 2.0 and FOCUS 1.0 Parquet,
generated here with every line type), manifests, legacy CUR, partitions without manifests.
Totals are computed in Python with Decimal (tests/billing_exports.py), independently of the SQL."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from costwarden.billing.sources import FAILED, STORED, UNCHANGED, BillingSourceError, source_from_uri
from costwarden.billing.store import BillingStore
from tests.billing_exports import (
    Cur2Line,
    FocusLine,
    Totals,
    cur2_totals,
    data_exports_manifest,
    focus_totals,
    legacy_cur_manifest,
    write_cur2_parquet,
    write_focus_parquet,
)

BUCKET = "example-billing"
OCT = datetime(2026, 10, 14, 3, tzinfo=UTC)
NOV = datetime(2026, 11, 3, 4, tzinfo=UTC)
D = Decimal


def cur_lines(start: datetime, scale: int = 1) -> list[Cur2Line]:
    tags = {"user:skypilot-cluster-name": "llama-2ea4"}
    return [
        Cur2Line(
            "Usage",
            "i-0fea4fd46592d050b",
            start,
            D("32.7726") * scale,
            public_on_demand_cost=D("32.7726"),
            tags=tags,
        ),
        Cur2Line(
            "SavingsPlanCoveredUsage",
            "i-0aaa",
            start,
            D("98.32") * scale,
            savings_plan_effective_cost=D("55.04") * scale,
        ),
        Cur2Line("SavingsPlanNegation", "i-0aaa", start, D("-98.32") * scale),
        Cur2Line(
            "DiscountedUsage", "i-0bbb", start, D("0"), reservation_effective_cost=D("21.957642") * scale
        ),
        Cur2Line("Usage", "i-0spot", start, D("9.8304") * scale, usage_type="SpotUsage:p4d.24xlarge"),
        Cur2Line("Credit", "", start, D("-12.5") * scale, usage_type="", product_code="AWSCredits"),
        Cur2Line("Refund", "", start, D("-0.75") * scale, usage_type="", product_code="AmazonEC2"),
        Cur2Line("Tax", "", start, D("4.125") * scale, usage_type="", product_code="AmazonEC2"),
    ]


def focus_lines(start: datetime) -> list[FocusLine]:
    return [
        FocusLine("Usage", "i-0fea4fd46592d050b", start, D("32.7726"), D("32.7726"), D("32.7726")),
        FocusLine(
            "Usage", "i-0spot", start, D("9.8304"), D("9.8304"), D("32.7726"), pricing_category="Dynamic"
        ),
        FocusLine("Usage", "i-0aaa", start, D("0"), D("55.04"), D("98.32"), pricing_category="Committed"),
        FocusLine("Credit", "", start, D("-12.5"), D("-12.5")),
    ]


class Bucket:
    """moto's S3 with the exports a test puts there; counts the objects fetched."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.client = boto3.client("s3", region_name="us-east-1")
        self.client.create_bucket(Bucket=BUCKET)
        self.gets: list[str] = []
        self.client.meta.events.register("before-parameter-build.s3.GetObject", self._count)

    def _count(self, params: dict[str, Any], **_: Any) -> None:
        self.gets.append(str(params["Key"]))

    def put(self, key: str, body: bytes) -> None:
        self.client.put_object(Bucket=BUCKET, Key=key, Body=body)

    def export(self, export: str, period: str, parts: list[bytes], prefix: str = "cur") -> list[str]:
        keys = [
            f"{prefix}/{export}/data/BILLING_PERIOD={period}/{export}-{i:05d}.snappy.parquet"
            for i in range(1, len(parts) + 1)
        ]
        for key, body in zip(keys, parts, strict=True):
            self.put(key, body)
        manifest = f"{prefix}/{export}/metadata/BILLING_PERIOD={period}/{export}-Manifest.json"
        self.put(manifest, data_exports_manifest(BUCKET, keys, export, period))
        return keys

    def cur(self, rows: list[Cur2Line]) -> bytes:
        path = self.tmp / "part.parquet"
        write_cur2_parquet(path, rows)
        return path.read_bytes()

    def focus(self, rows: list[FocusLine]) -> bytes:
        path = self.tmp / "part.parquet"
        write_focus_parquet(path, rows)
        return path.read_bytes()


@pytest.fixture
def bucket(tmp_path: Path) -> Iterator[Bucket]:
    with mock_aws():
        yield Bucket(tmp_path)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BillingStore]:
    with BillingStore(tmp_path / "billing.duckdb") as opened:
        yield opened


def by_period(store: BillingStore) -> dict[tuple[str, str], Totals]:
    """(format of the source, YYYY-MM) -> rows, billed, effective, as stored."""
    rows = store.connection.execute(
        "SELECT split_part(source, '/', 1), strftime(BillingPeriodStart, '%Y-%m'), count(*), "
        "sum(BilledCost), sum(EffectiveCost) FROM billing_lines GROUP BY ALL"
    ).fetchall()
    return {(str(f), str(p)): (int(n), D(b), D(e)) for f, p, n, b, e in rows}


def add(*totals: Totals) -> Totals:
    return (sum(t[0] for t in totals), sum((t[1] for t in totals), D(0)), sum((t[2] for t in totals), D(0)))


def test_cur2_and_focus_exports_are_stored_exactly_and_a_resync_fetches_nothing(
    bucket: Bucket, store: BillingStore
) -> None:
    oct_rows, nov_a, nov_b = cur_lines(OCT), cur_lines(NOV), cur_lines(NOV, scale=2)
    bucket.export("cur2", "2026-10", [bucket.cur(oct_rows)])
    bucket.export("cur2", "2026-11", [bucket.cur(nov_a), bucket.cur(nov_b)])
    bucket.export("focus", "2026-11", [bucket.focus(focus_lines(NOV))])
    source = source_from_uri(f"s3://{BUCKET}/cur", s3_client=bucket.client)

    report = source.sync(store)

    assert report.ok and [d.status for d in report.deliveries] == [STORED] * 3
    assert [(d.period, d.objects, d.downloaded) for d in report.deliveries] == [
        ("2026-10", 1, 1),
        ("2026-11", 2, 2),
        ("2026-11", 1, 1),
    ]
    assert by_period(store) == {
        ("AWS CUR", "2026-10"): cur2_totals(oct_rows),
        ("AWS CUR", "2026-11"): add(cur2_totals(nov_a), cur2_totals(nov_b)),
        ("FOCUS", "2026-11"): focus_totals(focus_lines(NOV)),
    }
    # The documented effective costs, spelled out once: SP-covered at the SP rate, the negation
    # at 0, the RI-discounted line at the reservation's rate, credits and refunds negative.
    assert cur2_totals(oct_rows)[1:] == (D("33.478"), D("110.475642"))
    tags = store.connection.execute(
        "SELECT DISTINCT Tags FROM billing_lines WHERE ResourceId = 'i-0fea4fd46592d050b' AND Tags LIKE '{%'"
    ).fetchall()
    assert json.loads(tags[0][0]) == {"user:skypilot-cluster-name": "llama-2ea4"}

    bucket.gets.clear()
    again = source.sync(store)
    assert [d.status for d in again.deliveries] == [UNCHANGED] * 3
    assert bucket.gets == [] and again.downloaded == 0  # not even a manifest read
    assert by_period(store)[("AWS CUR", "2026-11")] == add(cur2_totals(nov_a), cur2_totals(nov_b))


def test_a_restated_month_replaces_it_whole_and_keeps_its_unchanged_part(
    bucket: Bucket, store: BillingStore
) -> None:
    nov_a, nov_b = cur_lines(NOV), cur_lines(NOV, scale=2)
    bucket.export("cur2", "2026-10", [bucket.cur(cur_lines(OCT))])
    bucket.export("cur2", "2026-11", [bucket.cur(nov_a), bucket.cur(nov_b)])
    source = source_from_uri(f"s3://{BUCKET}/cur", s3_client=bucket.client)
    source.sync(store)

    restated_b = cur_lines(NOV, scale=3)  # part 2 rewritten, part 1 byte for byte the same
    keys = bucket.export("cur2", "2026-11", [bucket.cur(nov_a), bucket.cur(restated_b)])
    bucket.gets.clear()
    report = source.sync(store)

    assert [(d.period, d.status) for d in report.deliveries] == [("2026-10", UNCHANGED), ("2026-11", STORED)]
    restated = report.deliveries[1]
    assert restated.replaced_rows == 2 * len(nov_a) and restated.rows == 2 * len(nov_a)
    assert sorted(bucket.gets) == sorted(
        [*keys, "cur/cur2/metadata/BILLING_PERIOD=2026-11/cur2-Manifest.json"]
    )
    assert by_period(store)[("AWS CUR", "2026-11")] == add(cur2_totals(nov_a), cur2_totals(restated_b))
    assert by_period(store)[("AWS CUR", "2026-10")] == cur2_totals(cur_lines(OCT))


def test_a_corrupt_object_fails_only_its_period_naming_the_key(bucket: Bucket, store: BillingStore) -> None:
    bucket.export("cur2", "2026-10", [bucket.cur(cur_lines(OCT))])
    source = source_from_uri(f"s3://{BUCKET}/cur", s3_client=bucket.client)
    source.sync(store)
    before = by_period(store)

    good = bucket.cur(cur_lines(OCT, scale=5))
    [key] = bucket.export("cur2", "2026-10", [good[: len(good) // 2]])  # a truncated Parquet file
    bucket.export("cur2", "2026-11", [bucket.cur(cur_lines(NOV))])
    report = source.sync(store)

    failed, stored = report.deliveries
    assert (failed.status, stored.status) == (FAILED, STORED)
    assert failed.error is not None and not report.ok
    message = str(failed.error)
    assert message.startswith(f"s3://{BUCKET}/cur: {key}: not a readable parquet file")
    assert "\n" not in message and failed.error.key == key
    assert by_period(store)[("AWS CUR", "2026-10")] == before[("AWS CUR", "2026-10")]  # the old month kept
    assert by_period(store)[("AWS CUR", "2026-11")] == cur2_totals(cur_lines(NOV))


def test_a_bad_value_names_the_key_and_the_column(
    bucket: Bucket, store: BillingStore, tmp_path: Path
) -> None:
    csv = (
        "line_item_usage_start_date,line_item_unblended_cost,line_item_line_item_type,bill_payer_account_id\n"
    )
    csv += "2026-11-03T04:00:00Z,ten cents,Usage,111122223333\n"
    key = "cur/plain/data/BILLING_PERIOD=2026-11/plain-00001.csv.gz"
    bucket.put(key, gzip.compress(csv.encode()))
    [failed] = source_from_uri(f"s3://{BUCKET}/cur", s3_client=bucket.client).sync(store).deliveries
    assert failed.error is not None and failed.error.column == "line_item_unblended_cost"
    assert f": {key}: " in str(failed.error) and "'ten cents'" in str(failed.error)


def test_without_manifests_billing_period_partitions_are_listed(bucket: Bucket, store: BillingStore) -> None:
    oct_rows, nov_rows = cur_lines(OCT), cur_lines(NOV)
    bucket.put("cur/cur2/data/BILLING_PERIOD=2026-10/cur2-00001.snappy.parquet", bucket.cur(oct_rows))
    bucket.put("cur/cur2/data/BILLING_PERIOD=2026-11/cur2-00001.snappy.parquet", bucket.cur(nov_rows))
    bucket.put(
        "cur/cur2/data/BILLING_PERIOD=2026-11/cur2-00002.snappy.parquet",
        bucket.cur(oct_rows[:0] + nov_rows[:3]),
    )
    bucket.put("cur/cur2/README.txt", b"not an export")
    report = source_from_uri(f"s3://{BUCKET}/cur/", s3_client=bucket.client).sync(store)
    assert [(d.period, d.status, d.objects) for d in report.deliveries] == [
        ("2026-10", STORED, 1),
        ("2026-11", STORED, 2),
    ]
    assert by_period(store)[("AWS CUR", "2026-11")] == add(cur2_totals(nov_rows), cur2_totals(nov_rows[:3]))


def test_legacy_cur_manifest_report_keys(bucket: Bucket, store: BillingStore) -> None:
    header = (
        "identity/LineItemId,lineItem/UsageStartDate,lineItem/UnblendedCost,lineItem/LineItemType,"
        "bill/PayerAccountId\n"
    )
    part = (
        header
        + "a,2026-11-03T04:00:00Z,1.25,Usage,111122223333\nb,2026-11-03T05:00:00Z,0.5,Tax,111122223333\n"
    )
    old = "cur/legacy/20261101-20261201/old-assembly/legacy-00001.csv.gz"
    new = "cur/legacy/20261101-20261201/new-assembly/legacy-00001.csv.gz"
    bucket.put(old, gzip.compress((header + "a,2026-11-03T04:00:00Z,99,Usage,111122223333\n").encode()))
    bucket.put(new, gzip.compress(part.encode()))
    bucket.put(
        "cur/legacy/20261101-20261201/legacy-Manifest.json",
        legacy_cur_manifest(BUCKET, "legacy", [new], "2026-11"),
    )
    [delivery] = source_from_uri(f"s3://{BUCKET}/cur", s3_client=bucket.client).sync(store).deliveries
    assert (delivery.status, delivery.period, delivery.objects, delivery.rows) == (STORED, "2026-11", 1, 2)
    assert by_period(store) == {("AWS CUR", "2026-11"): (2, D("1.75"), D("1.75"))}


def test_a_manifest_naming_a_missing_file_fails_its_period(bucket: Bucket, store: BillingStore) -> None:
    bucket.put(
        "cur/cur2/metadata/BILLING_PERIOD=2026-11/cur2-Manifest.json",
        data_exports_manifest(
            BUCKET, ["cur/cur2/data/BILLING_PERIOD=2026-11/gone.parquet"], "cur2", "2026-11"
        ),
    )
    [failed] = source_from_uri(f"s3://{BUCKET}/cur", s3_client=bucket.client).sync(store).deliveries
    assert failed.status == FAILED and "gone.parquet" in str(failed.error)


@pytest.mark.parametrize(
    ("code", "status"), [("AccessDenied", 403), ("SlowDown", 503), ("NoSuchBucket", 404)]
)
def test_an_api_error_is_a_billing_source_error_naming_the_source(
    bucket: Bucket, store: BillingStore, code: str, status: int
) -> None:
    with Stubber(bucket.client) as stub:
        stub.add_client_error("list_objects_v2", service_error_code=code, http_status_code=status)
        with pytest.raises(BillingSourceError) as caught:
            source_from_uri(f"s3://{BUCKET}/cur", s3_client=bucket.client).sync(store)
    assert str(caught.value).startswith(f"s3://{BUCKET}/cur: cannot list the bucket: {code}")


def test_the_default_client_comes_from_the_default_chain(bucket: Bucket, store: BillingStore) -> None:
    bucket.export("cur2", "2026-11", [bucket.cur(cur_lines(NOV))])
    report = source_from_uri(f"s3://{BUCKET}/cur").sync(store)  # boto3.client("s3") under moto
    assert [d.status for d in report.deliveries] == [STORED]


def test_a_delivery_over_the_bound_is_refused_before_download(bucket: Bucket, store: BillingStore) -> None:
    bucket.export("cur2", "2026-11", [bucket.cur(cur_lines(NOV))])
    source = source_from_uri(f"s3://{BUCKET}/cur", s3_client=bucket.client, max_delivery_bytes=100)
    bucket.gets.clear()
    [failed] = source.sync(store).deliveries
    assert failed.status == FAILED and "more than the bound of 100" in str(failed.error)
    assert bucket.gets == ["cur/cur2/metadata/BILLING_PERIOD=2026-11/cur2-Manifest.json"]
    assert by_period(store) == {}
