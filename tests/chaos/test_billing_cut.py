"""A billing export cut in half (an upload that stopped mid-row) in a ``file://`` source: the real
operator's store refuses the file whole, spend keeps counting on the estimates, and once the
whole file lands the budget reaches the figure the whole file alone gives. A file cut at a row's
end cannot be told from a shorter export: its rows are stored, and the whole file restates them."""

from __future__ import annotations

import os
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from tests.component.test_billing_operator import INSTANCE, P5, REAL, _export, _line, billing_of
from tests.component.test_operator_spend import budget, seed_skypilot_cluster, status_of


def syncs(operator, uri: str, result: str) -> float:
    value = operator.runtime.metrics.registry.get_sample_value(
        "costwarden_billing_syncs_total", {"source": uri, "result": result}
    )
    return float(value or 0.0)


def test_an_export_cut_in_half_is_refused_whole_and_spend_keeps_counting(
    cluster, clock, start_operator, tmp_path: Path
) -> None:
    seed_skypilot_cluster(cluster, workers=0)  # one p5.48xlarge, 55.04/h, running since T0 - 1 h
    cluster.create(budget(limit=10_000))
    exports = tmp_path / "exports"
    exports.mkdir()
    uri = exports.as_uri()
    operator = start_operator(
        billing_store=tmp_path / "billing.duckdb",
        billing_sources=(uri,),
        billing_interval=0.2,
        billing_flush_interval=0.2,
    )
    cluster.wait_for(lambda: status_of(cluster).get("spend") == 55.04, timeout=20)
    clock.advance(timedelta(hours=2))
    cluster.wait_for(lambda: status_of(cluster).get("spend") == 165.12, timeout=20)

    # the whole export: 12:00-14:00 billed at the discounted rate
    whole_file = tmp_path / "whole.csv"
    _export(whole_file, [(_line(INSTANCE, hour, REAL), {}) for hour in (0, 1)])
    whole = whole_file.read_bytes()
    cut = whole[: len(whole) // 2]
    assert not cut.endswith(b"\n")  # cut mid-row
    failed_before = syncs(operator, uri, "error") + syncs(operator, uri, "partial")
    (exports / "focus-2026-11.csv").write_bytes(cut)
    cluster.wait_for(
        lambda: syncs(operator, uri, "error") + syncs(operator, uri, "partial") >= failed_before + 2,
        timeout=20,
    )
    assert billing_of(cluster).get("billedSpend") == 0.0  # nothing of the cut file was stored
    assert status_of(cluster)["spend"] == 165.12  # the estimates stand

    # cut at a row's end, the file reads as a shorter export (no CSV says how long it should be):
    # its hour is stored, and the whole file later restates the period
    header_and_one_row = whole[: whole.index(b"\n", whole.index(b"\n") + 1) + 1]
    (exports / "focus-2026-11.csv").write_bytes(header_and_one_row)
    cluster.wait_for(lambda: billing_of(cluster).get("billedSpend") == 38.53, timeout=20)

    clock.advance(timedelta(hours=1))  # and keep counting: 220.16 estimated, its first hour billed
    counting = float((Decimal("220.16") - P5 + REAL).quantize(Decimal("0.01")))
    cluster.wait_for(lambda: status_of(cluster).get("spend") == counting, timeout=20)

    os.replace(whole_file, exports / "focus-2026-11.csv")  # the upload is redone, whole
    # estimate 220.16 - 110.08 reconciled + 77.056 billed: what the whole file alone gives (the
    # short file's hour restated)
    expected = float((Decimal("220.16") - Decimal("110.08") + 2 * REAL).quantize(Decimal("0.01")))
    cluster.wait_for(lambda: status_of(cluster).get("spend") == expected, timeout=30)
    assert billing_of(cluster)["billedSpend"] == 77.06
    assert syncs(operator, uri, "ok") >= 1
