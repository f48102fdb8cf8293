"""costwarden.billing.formats: formats told apart by their headers, schema drift mapped (pure)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from costwarden.billing.columns import MissingColumn
from costwarden.billing.formats import AWS_CUR, AZURE_COST, FOCUS, GCP_BILLING, cur_key, detect, mapping

DATA = Path(__file__).parent.parent / "data" / "billing"


def header(path: Path) -> list[str]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return next(csv.reader(handle))


@pytest.mark.parametrize(
    ("folder", "expected"),
    [("focus", FOCUS), ("cur", AWS_CUR), ("gcp", GCP_BILLING), ("azure", AZURE_COST)],
)
def test_every_real_file_is_recognised(folder: str, expected: str) -> None:
    files = sorted((DATA / folder).rglob("*.csv"))
    assert files
    for path in files:
        assert detect(header(path)) == expected, path.name


def test_legacy_cur_names_become_cur2_names() -> None:
    assert cur_key("lineItem/UnblendedCost") == "line_item_unblended_cost"
    assert cur_key("lineItem/LineItemType") == "line_item_line_item_type"
    assert cur_key("savingsPlan/SavingsPlanEffectiveCost") == "savings_plan_savings_plan_effective_cost"
    assert cur_key("pricing/publicOnDemandCost") == "pricing_public_on_demand_cost"
    assert cur_key("bill/PayerAccountId") == "bill_payer_account_id"
    assert cur_key("line_item_unblended_cost") == "line_item_unblended_cost"


def test_focus_1_0_preview_charge_type_and_1_3_service_provider_name() -> None:
    names = [
        "BilledCost",
        "EffectiveCost",
        "ChargePeriodStart",
        "ChargePeriodEnd",
        "ChargeType",
        "ServiceProviderName",
    ]
    assert detect(names) == FOCUS
    columns = mapping(FOCUS, names)
    assert '"ChargeType"' in columns.expressions["ChargeCategory"]
    assert '"ServiceProviderName"' in columns.expressions["ProviderName"]


def test_azure_camel_and_pascal_case_map_alike() -> None:
    pascal = mapping(AZURE_COST, ["Date", "CostInBillingCurrency", "MeterId", "ResourceId"])
    camel = mapping(AZURE_COST, ["date", "costInBillingCurrency", "meterId", "resourceId"])
    assert pascal.expressions["BilledCost"] == camel.expressions["BilledCost"].replace(
        '"costInBillingCurrency"', '"CostInBillingCurrency"'
    )


@pytest.mark.parametrize(
    ("fmt", "names", "column"),
    [
        (FOCUS, ["EffectiveCost", "ChargePeriodStart", "ChargePeriodEnd", "BillingCurrency"], "billedcost"),
        (
            AWS_CUR,
            ["lineItem/UsageStartDate", "lineItem/LineItemType", "bill/PayerAccountId"],
            "line_item_unblended_cost",
        ),
        (GCP_BILLING, ["cost", "sku.id", "service.id"], "usage_start_time"),
        (AZURE_COST, ["Date", "MeterId", "SubscriptionId"], "costinbillingcurrency or cost or pretaxcost"),
    ],
)
def test_a_missing_required_column_is_named(fmt: str, names: list[str], column: str) -> None:
    assert detect(names) == fmt
    with pytest.raises(MissingColumn) as caught:
        mapping(fmt, names)
    assert caught.value.column == column


def test_unknown_or_ambiguous_headers_are_no_format() -> None:
    assert detect(["a", "b", "c"]) is None
    assert detect(["BilledCost"]) is None  # one telltale column is not enough
