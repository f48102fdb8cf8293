"""costwarden.billing.store and `costwarden billing`: every real export file stored with exact
totals (computed here with csv and Decimal, independently of the importer's SQL), idempotent
and atomic imports, restated periods replaced, bad files refused whole, CSV.gz and Parquet."""

from __future__ import annotations

import ast
import csv
import gzip
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

import duckdb
import pytest

from costwarden.billing.store import BillingImportError, BillingStore, Summary
from costwarden.cli import main

DATA = Path(__file__).parent.parent / "data" / "billing"
FOCUS_SAMPLE = DATA / "focus" / "focus_sample_1000.csv"
CUR20 = DATA / "cur" / "aws-cur-anonymize_sample-cur20.csv"

# Real files the importer must refuse, and the words the error must hold.
REFUSED = {
    "koku_test_cur.csv": ("koku_test_cur.csv", "differing lengths"),
    "commitment_discount_purchase_scenario_2.csv": ("ChargePeriodEnd", "2023-02-01T30:00:00Z"),
    "commitment_discount_purchase_scenario_3.csv": ("ChargePeriodEnd", "2023-02-01T30:00:00Z"),
}
ALL_FILES = sorted(p for p in DATA.rglob("*.csv"))
GOOD_FILES = [p for p in ALL_FILES if p.name not in REFUSED]

Totals = tuple[int, Decimal, Decimal]


ATTODOLLAR = Decimal("1e-18")


def _number(text: str | None) -> Decimal | None:
    """The store keeps 18 places, rounding half away from zero (Azure writes up to 28)."""
    if text is None or text.strip() in {"", "NULL"}:
        return None
    return Decimal(text.strip()).quantize(ATTODOLLAR, rounding=ROUND_HALF_UP)


def _rows(path: Path) -> Iterator[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        yield from csv.DictReader(handle)


def _squash(name: str) -> str:
    """A column name without case, '/' or '_': lineItem/UnblendedCost ~ line_item_unblended_cost."""
    return re.sub(r"[/_]", "", name).lower()


def expected(path: Path, folder: str = "") -> dict[str, Totals]:
    """By provider: rows, billed, effective, read from the file by the export's documented rules."""
    folder = folder or path.relative_to(DATA).parts[0]
    out: dict[str, list[object]] = {}
    for raw in _rows(path):
        row = {_squash(k): v for k, v in raw.items()}
        if folder == "focus":
            provider = row.get("providername") or "unknown"
            if provider == "NULL":
                provider = "unknown"
            billed, effective = _number(row["billedcost"]), _number(row["effectivecost"])
        elif folder == "cur":
            provider = "AWS"
            billed = _number(row["lineitemunblendedcost"])
            kind = row.get("lineitemlineitemtype", "Usage")
            if kind == "SavingsPlanCoveredUsage":
                effective = _number(row.get("savingsplansavingsplaneffectivecost")) or Decimal(0)
            elif kind == "DiscountedUsage":
                effective = _number(row.get("reservationeffectivecost")) or Decimal(0)
            elif kind == "SavingsPlanNegation":
                effective = Decimal(0)
            else:
                effective = billed
        elif folder == "gcp":
            provider = "Google Cloud"
            billed = _number(row["cost"])
            credits = ast.literal_eval(row.get("credits") or "[]")
            effective = (billed or Decimal(0)) + sum(
                (_number(str(c["amount"])) or Decimal(0) for c in credits), Decimal(0)
            )
        else:
            provider = "Microsoft"
            cost = next(row[k] for k in ("costinbillingcurrency", "cost", "pretaxcost") if k in row)
            billed = effective = _number(cost)
        totals = out.setdefault(provider, [0, Decimal(0), Decimal(0)])
        totals[0] = int(str(totals[0])) + 1
        totals[1] = Decimal(str(totals[1])) + (billed or 0)
        totals[2] = Decimal(str(totals[2])) + (effective or 0)
    return {k: (int(str(v[0])), Decimal(str(v[1])), Decimal(str(v[2]))) for k, v in out.items()}


def as_totals(summary: Summary) -> dict[str, Totals]:
    return {k: (t.rows, t.billed_cost, t.effective_cost) for k, t in summary.by_provider.items()}


def state(store: BillingStore) -> tuple[dict[str, Totals], object]:
    return as_totals(store.summary()), store.files()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[BillingStore]:
    with BillingStore(tmp_path / "billing.duckdb") as opened:
        yield opened


@pytest.mark.parametrize("path", GOOD_FILES, ids=lambda p: p.name)
def test_every_real_file_is_stored_with_exact_totals(store: BillingStore, path: Path) -> None:
    [result] = store.import_files([path])
    assert result.status == "stored"
    want = expected(path)
    assert as_totals(store.summary()) == want
    assert result.rows == sum(t[0] for t in want.values())


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_real_files_that_break_the_format_are_refused_by_name(store: BillingStore, name: str) -> None:
    [path] = [p for p in ALL_FILES if p.name == name]
    store.import_files([CUR20])
    before = state(store)
    with pytest.raises(BillingImportError) as caught:
        store.import_files([path])
    message = str(caught.value)
    assert message.startswith(str(path))
    for words in REFUSED[name]:
        assert words in message
    assert state(store) == before


def test_the_same_delivery_twice_counts_once(store: BillingStore, tmp_path: Path) -> None:
    copy = tmp_path / "renamed.csv"
    shutil.copyfile(FOCUS_SAMPLE, copy)
    first = store.import_files([FOCUS_SAMPLE, FOCUS_SAMPLE])
    assert [r.status for r in first] == ["stored", "already stored"]
    again = store.import_files([FOCUS_SAMPLE, copy])
    assert [r.status for r in again] == ["already stored", "already stored"]
    assert as_totals(store.summary()) == expected(FOCUS_SAMPLE)
    assert len(store.files()) == 1


def test_a_restated_period_replaces_the_earlier_file(store: BillingStore, tmp_path: Path) -> None:
    other = DATA / "gcp" / "koku_gcp_2022-08-01_5.csv"
    store.import_files([CUR20, other])
    restated = tmp_path / "cur20-restated.csv"
    rows = list(csv.reader(CUR20.open(newline="")))
    cost = rows[0].index("line_item_unblended_cost")
    for row in rows[1:]:
        row[cost] = str(Decimal(row[cost]) * 3 + Decimal("0.0000000001"))
    with restated.open("w", newline="") as handle:
        csv.writer(handle).writerows(rows)
    [result] = store.import_files([restated])
    assert result.status == "stored" and result.replaced_rows == 4
    totals = as_totals(store.summary())
    assert totals["AWS"] == expected(restated, "cur")["AWS"]
    assert totals["Google Cloud"] == expected(other)["Google Cloud"]  # another source: untouched
    # The first delivery again is already known: it does not undo the restatement.
    assert store.import_files([CUR20])[0].status == "already stored"
    assert as_totals(store.summary())["AWS"] == expected(restated, "cur")["AWS"]


def test_a_file_missing_a_required_column_stores_nothing(store: BillingStore, tmp_path: Path) -> None:
    store.import_files([CUR20])
    before = state(store)
    broken = tmp_path / "no-billed-cost.csv"
    with FOCUS_SAMPLE.open(newline="") as src, broken.open("w", newline="") as dst:
        reader = csv.DictReader(src)
        fields = [f for f in reader.fieldnames or [] if f != "BilledCost"]
        writer = csv.DictWriter(dst, fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(reader)
    good = DATA / "gcp" / "koku_gcp_2022-08-01_5.csv"
    with pytest.raises(BillingImportError) as caught:
        store.import_files([good, broken])  # one delivery: the good file is not stored either
    assert caught.value.path == str(broken)
    assert caught.value.column == "billedcost"
    assert str(broken) in str(caught.value) and "billedcost" in str(caught.value)
    assert state(store) == before


def test_a_money_column_that_is_no_number_is_named(store: BillingStore, tmp_path: Path) -> None:
    bad = tmp_path / "bad-cost.csv"
    text = CUR20.read_text()
    bad.write_text(text.replace(",0.0104,0.0104,", ",ten cents,0.0104,", 1))
    with pytest.raises(BillingImportError) as caught:
        store.import_files([bad])
    assert caught.value.column == "line_item_unblended_cost"
    assert "'ten cents'" in str(caught.value)
    assert store.files() == []


def test_truncated_and_corrupt_files_store_nothing(store: BillingStore, tmp_path: Path) -> None:
    store.import_files([CUR20])
    before = state(store)
    data = FOCUS_SAMPLE.read_bytes()
    cut_csv = tmp_path / "cut.csv"
    cut_csv.write_bytes(data[: len(data) // 2])  # mid-row
    packed = gzip.compress(data)
    cut_gz = tmp_path / "cut.csv.gz"
    cut_gz.write_bytes(packed[: len(packed) // 2])
    bad_gz = tmp_path / "bad.csv.gz"
    middle = len(packed) // 2  # the header reads well; the damage is found on the full read
    bad_gz.write_bytes(
        packed[:middle] + bytes(b ^ 0xFF for b in packed[middle : middle + 200]) + packed[middle + 200 :]
    )
    parquet = tmp_path / "whole.parquet"
    duckdb.execute(
        f"COPY (SELECT * FROM read_csv('{FOCUS_SAMPLE}', all_varchar = true)) TO '{parquet}' (FORMAT PARQUET)"
    )
    cut_parquet = tmp_path / "cut.parquet"
    cut_parquet.write_bytes(parquet.read_bytes()[: parquet.stat().st_size // 2])
    for broken in (cut_csv, cut_gz, bad_gz, cut_parquet):
        with pytest.raises(BillingImportError) as caught:
            store.import_files([broken])
        assert str(caught.value).startswith(f"{broken}: not a readable"), str(caught.value)
        assert state(store) == before


def test_csv_gz_and_parquet_import_with_the_same_totals(store: BillingStore, tmp_path: Path) -> None:
    packed = tmp_path / "focus.csv.gz"
    packed.write_bytes(gzip.compress(FOCUS_SAMPLE.read_bytes()))
    text_parquet = tmp_path / "focus-text.parquet"
    typed_parquet = tmp_path / "cur-typed.parquet"  # DuckDB's own types: costs become DOUBLE
    duckdb.execute(
        f"COPY (SELECT * FROM read_csv('{FOCUS_SAMPLE}', all_varchar = true)) "
        f"TO '{text_parquet}' (FORMAT PARQUET)"
    )
    legacy = DATA / "cur" / "koku_aws_2023-06-01.csv"
    duckdb.execute(f"COPY (SELECT * FROM read_csv('{legacy}')) TO '{typed_parquet}' (FORMAT PARQUET)")
    for path, source in ((packed, FOCUS_SAMPLE), (text_parquet, FOCUS_SAMPLE), (typed_parquet, legacy)):
        with BillingStore(tmp_path / f"{path.name}.duckdb") as own:
            [result] = own.import_files([path])
            assert result.status == "stored"
            assert as_totals(own.summary()) == expected(source), path.name


def test_cli_import_and_summary_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "store.duckdb")
    files = [FOCUS_SAMPLE, CUR20, DATA / "gcp" / "koku_gcp_2022-08-01_5.csv"]
    assert main(["billing", "import", "--store", db, *map(str, files)]) == 0
    capsys.readouterr()
    assert main(["billing", "summary", "--store", db, "--json"]) == 0
    out = capsys.readouterr().out
    document = json.loads(out)
    assert list(document) == ["rows", "billedCost", "effectiveCost", "byProvider"]
    want: dict[str, Totals] = {}
    for path in files:
        for provider, (rows, billed, effective) in expected(path).items():
            r, b, e = want.get(provider, (0, Decimal(0), Decimal(0)))
            want[provider] = (r + rows, b + billed, e + effective)
    assert set(document["byProvider"]) == set(want)
    for provider, (rows, billed, effective) in want.items():
        entry = document["byProvider"][provider]
        assert list(entry) == ["rows", "billedCost", "effectiveCost"]
        assert entry["rows"] == rows
        assert isinstance(entry["billedCost"], str) and Decimal(entry["billedCost"]) == billed
        assert Decimal(entry["effectiveCost"]) == effective
        assert "E" not in entry["billedCost"] and "E" not in entry["effectiveCost"]
    assert document["rows"] == sum(t[0] for t in want.values())
    assert Decimal(document["billedCost"]) == sum((t[1] for t in want.values()), Decimal(0))
    assert Decimal(document["effectiveCost"]) == sum((t[2] for t in want.values()), Decimal(0))


def test_cli_error_is_one_line_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "store.duckdb")
    bad = DATA / "focus" / "spec-scenarios" / "commitment_discount_purchase_scenario_2.csv"
    assert main(["billing", "import", "--store", db, str(CUR20), str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bad) in err and "ChargePeriodEnd" in err
    assert main(["billing", "summary", "--store", db, "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {
        "rows": 0,
        "billedCost": "0",
        "effectiveCost": "0",
        "byProvider": {},
    }


def test_costwarden_run_without_a_store_loads_neither_billing_nor_duckdb_nor_cloud_sdks() -> None:
    # google.auth may load with the Kubernetes clients' own config loaders; google.cloud may not
    heavy = (
        "duckdb",
        "boto3",
        "botocore",
        "google.cloud",
        "azure",
        "costwarden.billing",
        "costwarden.pricefeeds",
    )
    probe = (
        "import contextlib, io, sys\n"
        "import costwarden.operator.app, costwarden.operator.handlers\n"
        "from costwarden.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['run', '--help'])\n"
        f"print(sorted(m for m in sys.modules if m.startswith({heavy!r})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_legacy_cur_tag_columns_become_one_json_object(store: BillingStore, tmp_path: Path) -> None:
    path = tmp_path / "legacy-tags.csv"
    path.write_text(
        "lineItem/UsageStartDate,lineItem/UnblendedCost,lineItem/LineItemType,bill/PayerAccountId,"
        "resourceTags/user:team,resourceTags/user:skypilot-cluster-name\n"
        "2026-11-03T04:00:00Z,1.25,Usage,111122223333,ml,llama-2ea4\n"
        "2026-11-03T05:00:00Z,0.5,Tax,111122223333,,\n"
    )
    store.import_files([path])
    rows = store._db.execute(  # the stored lines themselves
        "SELECT Tags, ChargeCategory, BillingPeriodStart, BilledCost FROM billing_lines "
        "ORDER BY ChargePeriodStart"
    ).fetchall()
    assert json.loads(rows[0][0]) == {"user:team": "ml", "user:skypilot-cluster-name": "llama-2ea4"}
    assert [r[1] for r in rows] == ["Usage", "Tax"]
    assert {r[2].isoformat() for r in rows} == {"2026-11-01T00:00:00+00:00"}
    assert [r[3] for r in rows] == [Decimal("1.25"), Decimal("0.5")]


def test_cur2_parquet_with_a_map_of_tags_stores_them_as_json(store: BillingStore, tmp_path: Path) -> None:
    path = tmp_path / "cur2.parquet"  # CUR 2.0 Parquet: typed columns, resource_tags a MAP
    duckdb.execute(
        "COPY (SELECT TIMESTAMPTZ '2026-11-03 04:00:00+00' AS line_item_usage_start_date, "
        "TIMESTAMPTZ '2026-11-03 05:00:00+00' AS line_item_usage_end_date, "
        "'SavingsPlanCoveredUsage' AS line_item_line_item_type, 98.32::DOUBLE AS line_item_unblended_cost, "
        "55.04::DOUBLE AS savings_plan_savings_plan_effective_cost, '111122223333' AS bill_payer_account_id, "
        "'i-0fea4fd46592d050b' AS line_item_resource_id, "
        "MAP {'user:skypilot-cluster-name': 'llama-2ea4'} AS resource_tags) "
        f"TO '{path}' (FORMAT PARQUET)"
    )
    store.import_files([path])
    rows = store._db.execute(
        "SELECT Tags, BilledCost, EffectiveCost, ResourceId FROM billing_lines"
    ).fetchall()
    assert [(json.loads(r[0]), r[1], r[2], r[3]) for r in rows] == [
        (
            {"user:skypilot-cluster-name": "llama-2ea4"},
            Decimal("98.32"),
            Decimal("55.04"),
            "i-0fea4fd46592d050b",
        )
    ]


def test_cli_a_store_that_is_no_duckdb_file_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for store_path in (tmp_path / "absent-dir" / "store.duckdb", CUR20):
        assert main(["billing", "import", "--store", str(store_path), str(CUR20)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"costwarden billing: {store_path}: ")
