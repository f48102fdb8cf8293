"""tools/catalog_from_skypilot.py on hand-written excerpts of SkyPilot's vms.csv: per-region
on-demand and highest-zone spot prices, GCP host + GPU sums, exact Decimal money, and the merge
into an existing catalog."""

from __future__ import annotations

import importlib.util
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from types import ModuleType

import pytest

from costwarden.pricing import Catalog

ROOT = Path(__file__).resolve().parents[2]
HEADER = "cloud,instance_type,region,capacity_type,hourly_usd,gpus,gpu_model,vcpus,memory_gib,source,as_of\n"
COMMIT = "001367d22a0033fac286a8c71aeac7109e431bcb"

AWS_HEADER = "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,GpuInfo,Price,SpotPrice,Region,"
AWS = (
    AWS_HEADER
    + """AvailabilityZone
g5.xlarge,A10G,1.0,4.0,16.0,"{'Gpus': [{'Name': 'A10G', 'Count': 1}]}",1.006,0.417700,us-east-1,use1-az1
g5.xlarge,A10G,1.0,4.0,16.0,"{'Gpus': [{'Name': 'A10G', 'Count': 1}]}",1.006,0.397000,us-east-1,use1-az2
g5.xlarge,A10G,1.0,4.0,16.0,"{'Gpus': [{'Name': 'A10G', 'Count': 1}]}",1.1,,us-east-1,use1-az4
g5.xlarge,A10G,1.0,4.0,16.0,,1.006,,us-west-2,usw2-az1
m5.large,,,2.0,8.0,,0.096,0.040000,us-east-1,use1-az1
g4dn.xlarge,T4,1.0,4.0,16.0,,0.526,0.526000,eu-west-1,euw1-az1
p3.2xlarge,V100,1.0,8.0,64.0,,3.06,0.500000,us-east-1,use1-az1
"""
)

GCP = (
    "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,AvailabilityZone,"
    + """Price,SpotPrice
n1-standard-8,8.0,30.0,,,,us-central1,us-central1-a,0.1,0.01
n1-standard-8,8.0,30.0,,,,us-central1,us-central1-b,0.1,0.03
,,,T4,1,{'Gpus': [{'MemoryInfo': {'SizeInMiB': 16384}}]},us-central1,us-central1-a,0.2,0.02
,,,T4,2,{'Gpus': [{'MemoryInfo': {'SizeInMiB': 16384}}]},us-central1,us-central1-b,9.9,9.9
a3-highgpu-8g,208.0,1872.0,,,,europe-west4,europe-west4-b,9.93306,1.7888
,,,H100,8,{'Gpus': [{'MemoryInfo': {'SizeInMiB': 81920}}]},europe-west4,europe-west4-b,101.88413,18.3304
"""
)

AZURE = (
    AWS_HEADER
    + """Generation
Standard_ND96isr_H100_v5,H100,12,96.0,1900,H100,98.32,98.32,eastus,V2
Standard_NC4as_T4_v3,T4,1,4.0,28,T4,0.526,0.062699,eastus,"V1,V2"
"""
)


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    path = ROOT / "tools" / "catalog_from_skypilot.py"
    spec = importlib.util.spec_from_file_location("catalog_from_skypilot", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _rows(
    tool: ModuleType, cloud: str, text: str, *exclude: str
) -> tuple[dict[str, dict[str, str]], list[str]]:
    snapshot = tool.Snapshot(f"catalogs/v7/{cloud}/vms.csv", COMMIT, date(2025, 6, 1), "snapshot undated")
    rows, notes = tool.rows_from_listings(tool.read_listings(text), snapshot, tool.targets([cloud]), exclude)
    return {f"{r['region']} {r['instance_type']} {r['capacity_type']}": r for r in rows}, notes


def test_aws_on_demand_takes_the_highest_zone_when_zones_disagree(tool: ModuleType) -> None:
    rows, _ = _rows(tool, "aws", AWS)
    row = rows["us-east-1 g5.xlarge on-demand"]
    assert row["hourly_usd"] == "1.1"
    assert "Price, zones differ (1.006 to 1.1): highest of 3 zone(s)" in row["source"]
    assert (row["gpus"], row["gpu_model"], row["vcpus"], row["memory_gib"]) == ("1", "A10G", "4", "16")
    assert row["as_of"] == "2025-06-01"
    assert row["source"].startswith(
        "SkyPilot catalog skypilot-org/skypilot-catalog catalogs/v7/aws/vms.csv @001367d us-east-1; "
    )
    assert row["source"].endswith(
        "; snapshot undated; prices from the AWS Price List API and EC2 spot price history"
    )
    assert rows["us-west-2 g5.xlarge on-demand"]["source"].count("the same in 1 zone(s)") == 1


def test_aws_spot_is_the_highest_zone_and_zones_without_one_are_counted(tool: ModuleType) -> None:
    rows, notes = _rows(tool, "aws", AWS)
    row = rows["us-east-1 g5.xlarge spot"]
    assert Decimal(row["hourly_usd"]) == Decimal("0.4177")
    assert "SpotPrice, spot: highest of 2 zone(s), 1 more listed without one" in row["source"]
    assert "us-west-2 g5.xlarge spot" not in rows
    assert "no SpotPrice: aws us-west-2 g5.xlarge spot" in notes


def test_untracked_types_and_regions_are_ignored(tool: ModuleType) -> None:
    rows, notes = _rows(tool, "aws", AWS)
    assert not [key for key in rows if "m5.large" in key]
    assert {key.split()[0] for key in rows} <= {"us-east-1", "us-west-2", "eu-west-1"}
    assert "no Price: aws us-east-1 p5.48xlarge on-demand" in notes


def test_spot_not_below_on_demand_is_left_out(tool: ModuleType) -> None:
    rows, notes = _rows(tool, "aws", AWS)
    assert "eu-west-1 g4dn.xlarge on-demand" in rows
    assert "eu-west-1 g4dn.xlarge spot" not in rows
    assert "spot not below on-demand (0.526), left out: aws eu-west-1 g4dn.xlarge spot" in notes


def test_shape_comes_from_make_catalog_and_a_disagreeing_column_is_named(tool: ModuleType) -> None:
    rows, _ = _rows(tool, "aws", AWS)
    row = rows["us-east-1 p3.2xlarge on-demand"]
    assert row["memory_gib"] == "61"
    assert "shape per tools/make_catalog.py (SkyPilot's MemoryGiB 64)" in row["source"]


def test_exclude_patterns_leave_figures_out(tool: ModuleType) -> None:
    rows, notes = _rows(tool, "aws", AWS, "aws/*/g5.xlarge/on-demand")
    assert "us-east-1 g5.xlarge on-demand" not in rows
    assert "us-east-1 g5.xlarge spot" in rows
    assert "excluded: aws us-west-2 g5.xlarge on-demand" in notes


def test_gcp_vm_is_host_plus_gpus_in_the_same_zone_exactly(tool: ModuleType) -> None:
    rows, _ = _rows(tool, "gcp", GCP)
    attached = rows["us-central1 n1-standard-8+nvidia-tesla-t4x1 on-demand"]
    assert attached["hourly_usd"] == "0.3"  # 0.1 + 0.2, not 0.30000000000000004
    assert "Price: host n1-standard-8 0.1 + 1xT4 0.2, the same in 1 zone(s)" in attached["source"]
    spot = rows["us-central1 n1-standard-8+nvidia-tesla-t4x1 spot"]
    assert spot["hourly_usd"] == "0.03"  # zone b has no 1xT4 row: only zone a counts
    assert "spot: highest of 1 zone(s), 1 more listed without one" in spot["source"]
    host = rows["us-central1 n1-standard-8 spot"]
    assert host["hourly_usd"] == "0.03" and "highest of 2 zone(s)" in host["source"]
    a3 = rows["europe-west4 a3-highgpu-8g on-demand"]
    assert Decimal(a3["hourly_usd"]) == Decimal("9.93306") + Decimal("101.88413")
    assert (a3["gpus"], a3["gpu_model"], a3["vcpus"], a3["memory_gib"]) == ("8", "H100", "208", "1872")


def test_azure_is_priced_per_region(tool: ModuleType) -> None:
    rows, notes = _rows(tool, "azure", AZURE)
    t4 = rows["eastus Standard_NC4as_T4_v3 spot"]
    assert t4["hourly_usd"] == "0.062699"
    assert "SpotPrice, the region's price" in t4["source"]
    h100 = rows["eastus Standard_ND96isr_H100_v5 on-demand"]
    assert h100["gpus"] == "8" and "SkyPilot's AcceleratorCount 12" in h100["source"]
    assert "eastus Standard_ND96isr_H100_v5 spot" not in rows
    assert any("left out: azure eastus Standard_ND96isr_H100_v5 spot" in n for n in notes)


def test_bad_price_names_the_line(tool: ModuleType) -> None:
    text = AWS.replace("1.1,,us-east-1", "cheap,,us-east-1")
    with pytest.raises(ValueError, match=r"^x\.csv:4: Price 'cheap' is not a number$"):
        tool.read_listings(text, "x.csv")
    with pytest.raises(ValueError, match="missing column"):
        tool.read_listings("InstanceType,Region\n", "x.csv")


def _catalog_row(
    kind: str, region: str, capacity: str, price: str, source: str, as_of: str
) -> dict[str, str]:
    return {
        "cloud": "aws",
        "instance_type": kind,
        "region": region,
        "capacity_type": capacity,
        "hourly_usd": price,
        "gpus": "1",
        "gpu_model": "A10G",
        "vcpus": "4",
        "memory_gib": "16",
        "source": source,
        "as_of": as_of,
    }


def test_merge_replaces_same_key_and_keeps_the_rest(tool: ModuleType) -> None:
    old = [
        _catalog_row("g5.xlarge", "us-east-1", "spot", "0.3", "old", "2025-01-01"),
        _catalog_row("g5.xlarge", "eu-west-1", "on-demand", "1.123", "kept", "2025-01-01"),
        _catalog_row("g5.xlarge", "us-east-1", "on-demand", "1.006", "newer", "2026-07-20"),
    ]
    new = [
        _catalog_row("g5.xlarge", "us-east-1", "spot", "0.4177", "new", "2025-06-01"),
        _catalog_row("g5.xlarge", "us-east-1", "on-demand", "1.1", "new", "2025-06-01"),
    ]
    merged, notes = tool.merge(old, new)
    by_key = {(r["region"], r["capacity_type"]): r["source"] for r in merged}
    assert by_key == {
        ("eu-west-1", "on-demand"): "kept",
        ("us-east-1", "on-demand"): "new",
        ("us-east-1", "spot"): "new",
    }
    assert "replaced aws us-east-1 g5.xlarge spot 0.3 -> 0.4177" in notes

    kept, notes = tool.merge(old, new, keep_newer=True)
    assert {(r["region"], r["capacity_type"]): r["source"] for r in kept}[
        ("us-east-1", "on-demand")
    ] == "newer"
    assert any(n.startswith("kept aws us-east-1 g5.xlarge on-demand 1.006 (2026-07-20") for n in notes)


def test_main_merges_into_the_catalog_file(
    tool: ModuleType, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    vms = tmp_path / "vms.csv"
    vms.write_text(AWS)
    catalog = tmp_path / "catalog.csv"
    catalog.write_text(
        HEADER + "gcp,g2-standard-4,us-central1,on-demand,0.70683,1,L4,4,16,other,2026-11-26\n"
    )
    argv = [
        "aws",
        str(vms),
        "--catalog",
        str(catalog),
        "--path",
        "catalogs/v7/aws/vms.csv",
        "--commit",
        COMMIT,
        "--as-of",
        "2025-06-01",
        "--dating",
        "snapshot undated",
    ]
    assert tool.main(argv) == 0
    loaded = Catalog.from_csv_text(catalog.read_text(), "catalog.csv")
    assert loaded.lookup("gcp", "g2-standard-4", "us-central1", "on-demand") is not None
    spot = loaded.lookup("aws", "g5.xlarge", "us-east-1", "spot")
    assert spot is not None and spot.capacity_type == "spot" and spot.hourly_usd == Decimal("0.4177")
    assert spot.as_of == date(2025, 6, 1)
    assert "aws row(s) from" in capsys.readouterr().out

    vms.write_text(AWS.replace("1.1,,us-east-1", "cheap,,us-east-1"))
    before = catalog.read_text()
    assert tool.main(argv) == 1
    assert "Price 'cheap' is not a number" in capsys.readouterr().err
    assert catalog.read_text() == before
    with pytest.raises(SystemExit):
        tool.main([*argv[:7], "not-a-commit", *argv[8:]])
