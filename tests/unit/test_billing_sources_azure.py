"""The Azure Blob billing source: the real BlobServiceClient against a local fake of Blob storage
(tests/azure_blob_fake.py) holding Cost Management exports (FocusCost Parquet, manifest.json),
and the file:// source over the same layout."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from azure.core.credentials import AzureNamedKeyCredential
from azure.storage.blob import BlobServiceClient

from costwarden.billing.sources import FAILED, STORED, UNCHANGED, BillingSourceError, source_from_uri
from costwarden.billing.store import BillingStore
from tests.azure_blob_fake import ACCOUNT, KEY, FakeBlobStorage, serve
from tests.billing_exports import FocusLine, azure_manifest, focus_totals, write_focus_parquet

D = Decimal
NOV = datetime(2026, 11, 3, 4, tzinfo=UTC)
OCT = datetime(2026, 10, 3, 4, tzinfo=UTC)
URI = f"azure://{ACCOUNT}/exports/costs"


def lines(start: datetime, scale: int = 1) -> list[FocusLine]:
    vm = (
        "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/mc_gpu/providers/"
        "microsoft.compute/virtualmachinescalesets/aks-gpu/virtualmachines/3"
    )
    return [
        FocusLine(
            "Usage",
            vm,
            start,
            D("3.6720") * scale,
            D("2.2032") * scale,
            D("3.6720") * scale,
            provider="Microsoft",
        ),
        FocusLine(
            "Usage",
            vm,
            start,
            D("0.4406") * scale,
            D("0.4406") * scale,
            D("3.6720"),
            provider="Microsoft",
            pricing_category="Dynamic",
        ),
        FocusLine("Purchase", "", start, D("120") * scale, D("0"), provider="Microsoft"),
        FocusLine("Credit", "", start, D("-1.5"), D("-1.5"), provider="Microsoft"),
    ]


def parquet(tmp: Path, rows: list[FocusLine]) -> bytes:
    path = tmp / "part.parquet"
    write_focus_parquet(path, rows)
    return path.read_bytes()


def run(
    fake: FakeBlobStorage, tmp: Path, start: datetime, run_id: str, parts: list[list[FocusLine]]
) -> list[str]:
    first = f"{start:%Y%m}01"
    last = f"{start:%Y%m}30"
    base = f"costs/focus-daily/{first}-{last}/{run_id}"
    names = [f"{base}/part_0_{i:04d}.parquet" for i in range(1, len(parts) + 1)]
    bodies = [parquet(tmp, p) for p in parts]
    for name, body in zip(names, bodies, strict=True):
        fake.put("exports", name, body)
    fake.put(
        "exports",
        f"{base}/manifest.json",
        azure_manifest("focus-daily", names, [len(b) for b in bodies], first, last),
    )
    return names


@pytest.fixture
def fake() -> Iterator[FakeBlobStorage]:
    with serve(FakeBlobStorage(containers={"exports": {}})) as running:
        yield running


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BillingStore]:
    with BillingStore(tmp_path / "billing.duckdb") as opened:
        yield opened


def client(fake: FakeBlobStorage) -> BlobServiceClient:
    return BlobServiceClient(fake.account_url, credential=AzureNamedKeyCredential(ACCOUNT, KEY))


def totals(store: BillingStore) -> dict[str, tuple[int, Decimal, Decimal]]:
    rows = store.connection.execute(
        "SELECT strftime(BillingPeriodStart, '%Y-%m'), count(*), sum(BilledCost), sum(EffectiveCost) "
        "FROM billing_lines GROUP BY ALL"
    ).fetchall()
    return {str(p): (int(n), D(b), D(e)) for p, n, b, e in rows}


def test_focus_cost_exports_newest_run_only_new_or_changed(
    fake: FakeBlobStorage, store: BillingStore, tmp_path: Path
) -> None:
    run(fake, tmp_path, OCT, "run-oct", [lines(OCT)])
    run(fake, tmp_path, NOV, "run-1", [lines(NOV)])  # an earlier month-to-date run
    newest = run(fake, tmp_path, NOV, "run-2", [lines(NOV), lines(NOV, 2)])
    source = source_from_uri(URI, blob_service_client=client(fake))

    report = source.sync(store)
    assert [(d.period, d.status, d.objects) for d in report.deliveries] == [
        ("2026-10", STORED, 1),
        ("2026-11", STORED, 2),
    ]
    nov = focus_totals(lines(NOV) + lines(NOV, 2))
    assert totals(store) == {"2026-10": focus_totals(lines(OCT)), "2026-11": nov}
    assert set(newest) <= set(fake.gets) and not any("run-1" in g for g in fake.gets)

    fake.gets.clear()
    again = source.sync(store)
    assert [d.status for d in again.deliveries] == [UNCHANGED, UNCHANGED] and fake.gets == []

    restated = run(fake, tmp_path, NOV, "run-3", [lines(NOV, 3)])
    fake.gets.clear()
    report = source.sync(store)
    assert [(d.period, d.status) for d in report.deliveries] == [("2026-10", UNCHANGED), ("2026-11", STORED)]
    assert totals(store)["2026-11"] == focus_totals(lines(NOV, 3))
    assert sorted(fake.gets) == sorted([*restated, restated[0].rsplit("/", 1)[0] + "/manifest.json"])


def test_a_corrupt_blob_fails_its_period_only(
    fake: FakeBlobStorage, store: BillingStore, tmp_path: Path
) -> None:
    run(fake, tmp_path, OCT, "run-oct", [lines(OCT)])
    [name] = run(fake, tmp_path, NOV, "run-1", [lines(NOV)])
    fake.put("exports", name, b"PAR1 this is no parquet file")
    report = source_from_uri(URI, blob_service_client=client(fake)).sync(store)
    assert [(d.period, d.status) for d in report.deliveries] == [("2026-10", STORED), ("2026-11", FAILED)]
    assert str(report.deliveries[1].error).startswith(f"{URI}: {name}: not a readable parquet file")
    assert set(totals(store)) == {"2026-10"}


def test_a_forbidden_container_is_a_billing_source_error(fake: FakeBlobStorage, store: BillingStore) -> None:
    fake.fail = (403, "AuthorizationPermissionMismatch")
    with pytest.raises(BillingSourceError) as caught:
        source_from_uri(URI, blob_service_client=client(fake)).sync(store)
    assert str(caught.value).startswith(f"{URI}: cannot list the container: AuthorizationPermissionMismatch")


def test_the_account_url_and_credential_can_be_given(
    fake: FakeBlobStorage, store: BillingStore, tmp_path: Path
) -> None:
    run(fake, tmp_path, NOV, "run-1", [lines(NOV)])
    source = source_from_uri(
        URI, azure_account_url=fake.account_url, azure_credential=AzureNamedKeyCredential(ACCOUNT, KEY)
    )
    assert [d.status for d in source.sync(store).deliveries] == [STORED]


def test_a_local_directory_of_the_same_layout(store: BillingStore, tmp_path: Path) -> None:
    root = tmp_path / "exports"
    folder = root / "focus-daily" / "20261101-20261130" / "run-1"
    folder.mkdir(parents=True)
    write_focus_parquet(folder / "part_0_0001.parquet", lines(NOV))
    (folder / "manifest.json").write_bytes(
        azure_manifest(
            "focus-daily",
            ["focus-daily/20261101-20261130/run-1/part_0_0001.parquet"],
            [1],
            "20261101",
            "20261130",
        )
    )
    loose = root / "by-hand"
    loose.mkdir()
    write_focus_parquet(loose / "october.parquet", lines(OCT))
    source = source_from_uri(f"file://{root}")
    report = source.sync(store)
    assert [(d.name, d.status) for d in report.deliveries] == [
        ("by-hand", STORED),
        ("focus-daily/20261101-20261130", STORED),
    ]
    assert totals(store) == {"2026-10": focus_totals(lines(OCT)), "2026-11": focus_totals(lines(NOV))}
    assert [d.status for d in source.sync(store).deliveries] == [UNCHANGED, UNCHANGED]
    write_focus_parquet(loose / "october.parquet", lines(OCT, 2))  # rewritten: changed size or mtime
    assert [d.status for d in source.sync(store).deliveries] == [STORED, UNCHANGED]
    assert totals(store)["2026-10"] == focus_totals(lines(OCT, 2))
    single = source_from_uri(f"file://{loose / 'october.parquet'}").sync(store)
    assert [d.status for d in single.deliveries] == [STORED]
