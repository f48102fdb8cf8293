"""Each export format: how it is recognised from its header and how its columns map to FOCUS.

Sources of the column names and their meaning:

* FOCUS 1.0, 1.1 and 1.2 (https://focus.finops.org/focus-specification/): ``BilledCost``,
  ``EffectiveCost``, ``ListCost``, ``ChargePeriodStart/End``, ``ChargeCategory`` (FOCUS 1.0-preview
  called it ``ChargeType``), ``ProviderName`` (``ServiceProviderName`` from 1.3). Azure's
  FocusCost export and AWS's FOCUS Data Export are FOCUS files with ``x_`` columns added, and are
  read here as FOCUS.
* AWS CUR 2.0 (Data Exports; https://docs.aws.amazon.com/cur/latest/userguide/table-dictionary-cur2.html):
  snake_case ``line_item_*``, ``pricing_*``, ``savings_plan_*``, ``reservation_*``; the legacy CUR
  (https://docs.aws.amazon.com/cur/latest/userguide/data-dictionary.html) writes the same columns
  as ``lineItem/UnblendedCost``, which ``cur_key`` turns into ``line_item_unblended_cost``.
  Effective cost by line type, as AWS's own FOCUS export does: SavingsPlanCoveredUsage ->
  ``savings_plan_savings_plan_effective_cost``; DiscountedUsage -> ``reservation_effective_cost``;
  SavingsPlanNegation -> 0 (the covered usage already carries the cost); other lines -> unblended.
* GCP Cloud Billing export to BigQuery, standard or detailed usage cost
  (https://cloud.google.com/billing/docs/how-to/export-data-bigquery-tables/standard-usage), as CSV
  with nested fields flattened to ``sku.id``, ``resource.name``: net cost = ``cost`` + the sum of
  ``credits[].amount`` (credits are negative).
* Azure Cost Management exports, ActualCost and AmortizedCost, EA and MCA, PascalCase or camelCase
  (https://learn.microsoft.com/azure/cost-management-billing/automate/understand-usage-details-fields):
  ``CostInBillingCurrency`` (MCA), ``Cost`` (EA), ``PreTaxCost`` (older); ``Date`` or ``UsageDateTime``.
  The file does not say whether it is actual or amortized: its cost is both BilledCost and
  EffectiveCost here, so import ActualCost for invoices and AmortizedCost for effective rates.

Pure: builds SQL strings from a header, reads nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from costwarden.billing.columns import (
    ColumnMapping,
    Header,
    literal,
    money,
    money_check,
    month_start,
    optional,
    quote,
    require,
    stamp,
    stamp_check,
    text,
)

FOCUS = "FOCUS"
AWS_CUR = "AWS CUR"
GCP_BILLING = "GCP billing export"
AZURE_COST = "Azure cost export"

_SIGNATURES: dict[str, frozenset[str]] = {
    FOCUS: frozenset(
        {
            "billedcost",
            "effectivecost",
            "chargeperiodstart",
            "chargeperiodend",
            "chargecategory",
            "chargetype",
            "billingperiodstart",
            "billingcurrency",
            "providername",
        }
    ),
    AWS_CUR: frozenset(
        {
            "line_item_unblended_cost",
            "line_item_usage_start_date",
            "line_item_usage_end_date",
            "line_item_line_item_type",
            "line_item_usage_type",
            "line_item_resource_id",
            "bill_payer_account_id",
            "line_item_product_code",
        }
    ),
    GCP_BILLING: frozenset(
        {
            "cost",
            "usage_start_time",
            "usage_end_time",
            "sku.id",
            "service.id",
            "billing_account_id",
            "credits",
            "invoice.month",
            "cost_type",
        }
    ),
    AZURE_COST: frozenset(
        {
            "date",
            "usagedatetime",
            "costinbillingcurrency",
            "pretaxcost",
            "meterid",
            "metercategory",
            "subscriptionid",
            "subscriptionguid",
            "instanceid",
            "chargetype",
            "pricingmodel",
            "resourcegroup",
            "resourcegroupname",
        }
    ),
}


def _camel_to_snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def cur_key(name: str) -> str:
    """A CUR column's CUR 2.0 name: ``lineItem/UnblendedCost`` -> ``line_item_unblended_cost``."""
    category, slash, field = name.strip().partition("/")
    if not slash:
        return name.strip().lower()
    return f"{_camel_to_snake(category)}_{_camel_to_snake(field)}"


def _lower(name: str) -> str:
    return name.strip().lower()


_KEYS = {FOCUS: _lower, AWS_CUR: cur_key, GCP_BILLING: _lower, AZURE_COST: _lower}


def detect(names: Sequence[str]) -> str | None:
    """The format whose telltale columns ``names`` holds most of (at least two), or None."""
    scores = {fmt: len(_SIGNATURES[fmt] & {_KEYS[fmt](n) for n in names}) for fmt in _SIGNATURES}
    best = max(scores.values())
    winners = [fmt for fmt, score in scores.items() if score == best]
    if best < 2 or len(winners) > 1:
        return None
    return winners[0]


def mapping(format: str, names: Sequence[str], types: Mapping[str, str] | None = None) -> ColumnMapping:
    """How a file of ``format`` with columns ``names`` (of DuckDB ``types``, VARCHAR where not
    given) maps to FOCUS; MissingColumn when it cannot."""
    header = Header.of(names, _KEYS[format], types)
    return _BUILDERS[format](header)


def _source(*parts: str) -> str:
    return "CONCAT_WS('/', " + ", ".join(f"COALESCE({p}, '')" for p in parts) + ")"


def _focus(h: Header) -> ColumnMapping:
    billed = require(h, FOCUS, "billedcost")
    effective = require(h, FOCUS, "effectivecost")
    start = require(h, FOCUS, "chargeperiodstart")
    end = require(h, FOCUS, "chargeperiodend")
    period = h.get("billingperiodstart")
    provider = text(optional(h, "providername", "serviceprovidername"))
    account = text(optional(h, "billingaccountid"))
    list_cost = h.get("listcost")
    checks = [money_check(billed), money_check(effective), stamp_check(start), stamp_check(end)]
    if list_cost:
        checks.append(money_check(list_cost))
    if period:
        checks.append(stamp_check(period))
    charge_start = stamp(quote(start))
    return ColumnMapping(
        format=FOCUS,
        expressions={
            "ProviderName": provider,
            "BillingAccountId": account,
            "SubAccountId": text(optional(h, "subaccountid")),
            "BillingPeriodStart": stamp(quote(period)) if period else month_start(charge_start),
            "ChargePeriodStart": charge_start,
            "ChargePeriodEnd": stamp(quote(end)),
            "ChargeCategory": text(optional(h, "chargecategory", "chargetype")),
            "BillingCurrency": text(optional(h, "billingcurrency")),
            "BilledCost": money(quote(billed)),
            "EffectiveCost": money(quote(effective)),
            "ListCost": money(quote(list_cost)) if list_cost else "NULL",
            "ResourceId": text(optional(h, "resourceid")),
            "SkuId": text(optional(h, "skuid")),
            "ServiceName": text(optional(h, "servicename")),
            "RegionId": text(optional(h, "regionid", "region")),
            "Tags": h.json("tags"),
        },
        checks=tuple(checks),
        source=_source(literal(FOCUS), provider, account),
    )


_CUR_CATEGORY = """CASE {t}
    WHEN 'Tax' THEN 'Tax'
    WHEN 'Credit' THEN 'Credit' WHEN 'Refund' THEN 'Credit' WHEN 'BundledDiscount' THEN 'Credit'
    WHEN 'EdpDiscount' THEN 'Credit' WHEN 'PrivateRateDiscount' THEN 'Credit'
    WHEN 'RIFee' THEN 'Purchase' WHEN 'Fee' THEN 'Purchase'
    WHEN 'SavingsPlanRecurringFee' THEN 'Purchase' WHEN 'SavingsPlanUpfrontFee' THEN 'Purchase'
    ELSE 'Usage' END"""


def _cur_tags(h: Header) -> str:
    resource_tags = h.get("resource_tags")
    if resource_tags is not None:  # CUR 2.0: one column (JSON text in CSV)
        return h.json("resource_tags")
    legacy = sorted(h.keys_with_prefix("resource_tags_"))  # legacy: one column per tag
    if not legacy:
        return "NULL"
    pairs = ", ".join(f"{literal(name.partition('/')[2])}, {text(quote(name))}" for _key, name in legacy)
    return f"CAST(JSON_OBJECT({pairs}) AS VARCHAR)"


def _cur(h: Header) -> ColumnMapping:
    unblended = require(h, AWS_CUR, "line_item_unblended_cost")
    start = require(h, AWS_CUR, "line_item_usage_start_date")
    end = h.get("line_item_usage_end_date")
    period = h.get("bill_billing_period_start_date")
    line_type = h.get("line_item_line_item_type")
    sp_effective = h.get("savings_plan_savings_plan_effective_cost")
    ri_effective = h.get("reservation_effective_cost")
    public = h.get("pricing_public_on_demand_cost")
    checks = [money_check(unblended), stamp_check(start)]
    checks += [money_check(c) for c in (sp_effective, ri_effective, public) if c]
    checks += [stamp_check(c) for c in (end, period) if c]
    t = text(quote(line_type)) if line_type else "NULL"
    billed = money(quote(unblended))
    effective = f"CASE {t}"
    if sp_effective:
        effective += f" WHEN 'SavingsPlanCoveredUsage' THEN COALESCE({money(quote(sp_effective))}, 0)"
    if ri_effective:
        effective += f" WHEN 'DiscountedUsage' THEN COALESCE({money(quote(ri_effective))}, 0)"
    effective += f" WHEN 'SavingsPlanNegation' THEN 0 ELSE {billed} END"
    charge_start = stamp(quote(start))
    account = text(optional(h, "bill_payer_account_id"))
    return ColumnMapping(
        format=AWS_CUR,
        expressions={
            "ProviderName": "'AWS'",
            "BillingAccountId": account,
            "SubAccountId": text(optional(h, "line_item_usage_account_id")),
            "BillingPeriodStart": stamp(quote(period)) if period else month_start(charge_start),
            "ChargePeriodStart": charge_start,
            "ChargePeriodEnd": stamp(quote(end)) if end else "NULL",
            "ChargeCategory": _CUR_CATEGORY.format(t=t),
            "BillingCurrency": f"COALESCE({text(optional(h, 'line_item_currency_code'))}, 'USD')",
            "BilledCost": billed,
            "EffectiveCost": effective,
            "ListCost": money(quote(public)) if public else "NULL",
            "ResourceId": text(optional(h, "line_item_resource_id")),
            "SkuId": text(optional(h, "product_sku", "product_sku_id")),
            "ServiceName": text(optional(h, "product_product_name", "line_item_product_code")),
            "RegionId": text(optional(h, "product_region_code", "product_region")),
            "Tags": _cur_tags(h),
        },
        checks=tuple(checks),
        source=_source(literal(AWS_CUR), account),
    )


# Credits as BigQuery writes them to JSON (``"amount": -1.5``) or as a Python list's repr, which
# is how the flattened CSVs in the wild hold them (``'amount': -5e-06``).
_CREDIT_AMOUNTS = r"""['"]amount['"]\s*:\s*([-+0-9.eE]+)"""

_GCP_CATEGORY = """CASE LOWER({t})
    WHEN 'tax' THEN 'Tax' WHEN 'adjustment' THEN 'Adjustment' WHEN 'rounding_error' THEN 'Adjustment'
    ELSE 'Usage' END"""


def _gcp(h: Header) -> ColumnMapping:
    cost = require(h, GCP_BILLING, "cost")
    start = require(h, GCP_BILLING, "usage_start_time")
    end = h.get("usage_end_time")
    credits = h.get("credits")
    invoice_month = h.get("invoice.month", "invoice_month")
    checks = [money_check(cost), stamp_check(start)]
    if end:
        checks.append(stamp_check(end))
    billed = money(quote(cost))
    if credits:
        amounts = f"REGEXP_EXTRACT_ALL(COALESCE({text(quote(credits))}, ''), {literal(_CREDIT_AMOUNTS)}, 1)"
        credit_sum = f"COALESCE(LIST_SUM(LIST_TRANSFORM({amounts}, lambda a: {money('a')})), 0)"
        effective = f"({billed} + {credit_sum})"
    else:
        effective = billed
    charge_start = stamp(quote(start))
    period = (
        f"COALESCE(CAST(TRY_STRPTIME({text(quote(invoice_month))}, '%Y%m') AS TIMESTAMPTZ), "
        f"{month_start(charge_start)})"
        if invoice_month
        else month_start(charge_start)
    )
    account = text(optional(h, "billing_account_id"))
    return ColumnMapping(
        format=GCP_BILLING,
        expressions={
            "ProviderName": "'Google Cloud'",
            "BillingAccountId": account,
            "SubAccountId": text(optional(h, "project.id", "project_id")),
            "BillingPeriodStart": period,
            "ChargePeriodStart": charge_start,
            "ChargePeriodEnd": stamp(quote(end)) if end else "NULL",
            "ChargeCategory": _GCP_CATEGORY.format(t=text(optional(h, "cost_type"))),
            "BillingCurrency": text(optional(h, "currency")),
            "BilledCost": billed,
            "EffectiveCost": effective,
            "ListCost": money(optional(h, "cost_at_list")),
            "ResourceId": text(optional(h, "resource.global_name", "resource.name")),
            "SkuId": text(optional(h, "sku.id", "sku_id")),
            "ServiceName": text(optional(h, "service.description", "service_description")),
            "RegionId": text(optional(h, "location.region", "location_region")),
            "Tags": h.json("labels"),
        },
        checks=tuple(checks),
        source=_source(literal(GCP_BILLING), account),
    )


_AZURE_CATEGORY = """CASE LOWER({t})
    WHEN 'purchase' THEN 'Purchase' WHEN 'refund' THEN 'Credit' WHEN 'tax' THEN 'Tax'
    WHEN 'roundingadjustment' THEN 'Adjustment' ELSE 'Usage' END"""


def _azure(h: Header) -> ColumnMapping:
    cost = require(h, AZURE_COST, "costinbillingcurrency", "cost", "pretaxcost")
    day = require(h, AZURE_COST, "date", "usagedatetime")
    period = h.get("billingperiodstartdate")
    payg = h.get("paygcostinbillingcurrency")
    checks = [money_check(cost), stamp_check(day)]
    if period:
        checks.append(stamp_check(period))
    if payg:
        checks.append(money_check(payg))
    charge_start = stamp(quote(day))
    account = text(optional(h, "billingaccountid", "subscriptionid", "subscriptionguid"))
    tags = text(optional(h, "tags"))
    return ColumnMapping(
        format=AZURE_COST,
        expressions={
            "ProviderName": "'Microsoft'",
            "BillingAccountId": account,
            "SubAccountId": text(optional(h, "subscriptionid", "subscriptionguid")),
            "BillingPeriodStart": (
                f"COALESCE({month_start(stamp(quote(period)))}, {month_start(charge_start)})"
                if period
                else month_start(charge_start)
            ),
            "ChargePeriodStart": charge_start,
            "ChargePeriodEnd": f"{charge_start} + INTERVAL 1 DAY",
            "ChargeCategory": _AZURE_CATEGORY.format(t=text(optional(h, "chargetype"))),
            "BillingCurrency": text(optional(h, "billingcurrency", "billingcurrencycode", "currency")),
            "BilledCost": money(quote(cost)),
            "EffectiveCost": money(quote(cost)),
            "ListCost": money(quote(payg)) if payg else "NULL",
            "ResourceId": text(optional(h, "resourceid", "instanceid")),
            "SkuId": text(optional(h, "meterid")),
            "ServiceName": text(optional(h, "metercategory", "servicename")),
            "RegionId": text(optional(h, "resourcelocation")),
            # EA files write tags without the braces ("a": "b"); give them back.
            "Tags": (
                f"CASE WHEN {tags} IS NULL OR {tags} LIKE '{{%' THEN {tags} ELSE '{{' || {tags} || '}}' END"
            ),
        },
        checks=tuple(checks),
        source=_source(literal(AZURE_COST), account),
    )


_BUILDERS = {FOCUS: _focus, AWS_CUR: _cur, GCP_BILLING: _gcp, AZURE_COST: _azure}
