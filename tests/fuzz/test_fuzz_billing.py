"""Fuzzed billing exports: FOCUS, CUR 2.0, legacy CUR, GCP and Azure columns, some left out, some
added, in any order, with values of the wrong type (text for money, numbers out of DECIMAL(38, 18),
NaN, infinity, times DuckDB reads but Python cannot hold, impossible dates), files cut short and
gzip cut short.

An import stores a file or raises BillingImportError naming the file (and the column, when one is
at fault) with nothing stored; what is stored reads back as UTC times and finite money. A file
that is fine but for one bad value of a money or time column is refused naming that column.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.checks import check_billing_bad_cell, check_billing_file
from tests.fuzz.profile import fuzz
from tests.fuzz.strategies import billing_csvs


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where each example's file is written (module-scoped: hypothesis runs many in one test)."""
    return tmp_path_factory.mktemp("billing")


@fuzz(50)
@given(text=billing_csvs(), gzipped=st.integers(0, 3))
def test_a_billing_file_is_stored_or_refused_naming_the_file_and_column(
    files: Path, text: str, gzipped: int
) -> None:
    content = text.encode()
    if gzipped == 0:
        content = gzip.compress(content)[: max(10, len(content) // 2)]  # cut inside the stream
    elif gzipped == 1:
        content = gzip.compress(content)
    check_billing_file(files / "export.csv", content)


_GOOD_FILES = {
    "focus": (
        ["BilledCost", "EffectiveCost", "ChargePeriodStart", "ChargePeriodEnd", "ProviderName"],
        ["1.5", "1.25", "2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", "AWS"],
    ),
    "cur2": (
        [
            "line_item_unblended_cost",
            "line_item_usage_start_date",
            "line_item_usage_end_date",
            "line_item_line_item_type",
        ],
        ["3.06", "2026-11-01T00:00:00Z", "2026-11-01T01:00:00Z", "Usage"],
    ),
    "gcp": (
        ["cost", "usage_start_time", "usage_end_time", "sku.id"],
        ["0.5", "2026-11-01 00:00:00", "2026-11-01 01:00:00", "x"],
    ),
    "azure": (
        ["Date", "CostInBillingCurrency", "MeterId", "SubscriptionId"],
        ["11/01/2026", "2.5", "m", "s"],
    ),
}
_CHECKED = {
    "focus": ["BilledCost", "EffectiveCost", "ChargePeriodStart", "ChargePeriodEnd"],
    "cur2": ["line_item_unblended_cost", "line_item_usage_start_date", "line_item_usage_end_date"],
    "gcp": ["cost", "usage_start_time", "usage_end_time"],
    "azure": ["Date", "CostInBillingCurrency"],
}
_NOT_A_VALUE = st.sampled_from(
    [
        "abc",
        "1e400",
        "99999999999999999999999999999999999999",
        "NaN",
        "2026-02-30",
        "1/2/3",
        "infinity",
        "-infinity",
        "294247-01-10 04:00:54",
        "-0044-03-15",
        "0x10",
        "12 USD",
    ]
)


@fuzz(30)
@given(data=st.data())
def test_one_bad_value_is_refused_naming_its_column(files: Path, data: st.DataObject) -> None:
    fmt = data.draw(st.sampled_from(sorted(_GOOD_FILES)))
    header, row = _GOOD_FILES[fmt]
    column = data.draw(st.sampled_from(_CHECKED[fmt]))
    kind_is_time = any(w in column.lower() for w in ("date", "start", "end", "time"))
    bad = data.draw(_NOT_A_VALUE.filter(lambda v: not (kind_is_time and v == "0x10")))
    cells = list(row)
    cells[header.index(column)] = bad
    check_billing_bad_cell(files / f"{fmt}.csv", header, cells, column)
