"""``costwarden billing``: import local export files into a store, and summarise the store.

``costwarden billing import --store FILE PATH...`` stores the files as one delivery (format found
per file: FOCUS 1.x, AWS CUR 2.0 or legacy CUR, GCP billing export, Azure cost export; CSV,
gzipped CSV or Parquet). ``costwarden billing summary --store FILE --json`` prints
``{"rows": N, "billedCost": "...", "effectiveCost": "...", "byProvider": {NAME: {...}}}`` with
money as decimal strings. An error is one line on stderr naming the file (and column), exit 2.

``costwarden billing sync --store FILE --source URI...`` fetches what is new or changed from each
source (costwarden.billing.sources: ``s3://``, ``bq://``, ``azure://``, ``file://``) and prints one
line per delivery (stored, unchanged); a delivery or a source that fails is one line on stderr
naming the source and the object, the others are still synced, and the exit status is 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb

from costwarden.billing.store import BillingImportError, BillingStore, Summary, Totals


def add_subparser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    billing = subparsers.add_parser("billing", help="cloud billing exports in a local DuckDB store")
    actions = billing.add_subparsers(dest="billing_command", required=True)
    imp = actions.add_parser(
        "import",
        help="store export files (FOCUS, AWS CUR, GCP billing, Azure cost; CSV, CSV.gz, Parquet)",
    )
    imp.add_argument("--store", type=Path, required=True, help="the DuckDB file (created if absent)")
    imp.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="export files, one delivery")
    sync = actions.add_parser(
        "sync", help="fetch new or changed exports from S3, BigQuery, Azure Blob storage or a directory"
    )
    sync.add_argument("--store", type=Path, required=True, help="the DuckDB file (created if absent)")
    sync.add_argument(
        "--source",
        action="append",
        required=True,
        dest="sources",
        metavar="URI",
        help="s3://bucket/prefix, bq://project.dataset.table, azure://account/container/prefix or "
        "file:///path (repeatable)",
    )
    sync.add_argument(
        "--look-back-months",
        type=int,
        default=2,
        help="BigQuery: invoice months synced, the current one included (default 2)",
    )
    summary = actions.add_parser("summary", help="rows and cost in the store, in all and by provider")
    summary.add_argument("--store", type=Path, required=True, help="the DuckDB file")
    summary.add_argument("--json", action="store_true", help="one JSON object, money as decimal strings")


def decimal_text(value: Decimal) -> str:
    """``value`` as a plain decimal string: no exponent, no trailing zeros ("12.5", "0", "-3")."""
    text = format(value.normalize(), "f")
    return "0" if text in {"-0", "0"} else text


def _totals(totals: Totals) -> dict[str, Any]:
    return {
        "rows": totals.rows,
        "billedCost": decimal_text(totals.billed_cost),
        "effectiveCost": decimal_text(totals.effective_cost),
    }


def summary_json(summary: Summary) -> dict[str, Any]:
    """The contract shape of ``billing summary --json``."""
    return {
        **_totals(summary.total),
        "byProvider": {name: _totals(t) for name, t in sorted(summary.by_provider.items())},
    }


def _import(args: argparse.Namespace) -> int:
    with BillingStore(args.store) as store:
        results = store.import_files(args.paths)
    replaced = max((r.replaced_rows for r in results), default=0)
    for result in results:
        print(f"{result.path}: {result.format}, {result.rows} rows, {result.status}")
    if replaced:
        print(f"{replaced} rows of earlier files replaced (restated billing periods)")
    return 0


def _sync(args: argparse.Namespace) -> int:
    from costwarden.billing.sources import FAILED, STORED, BillingSourceError, source_from_uri

    try:
        sources = [source_from_uri(uri, look_back_months=args.look_back_months) for uri in args.sources]
    except ValueError as exc:
        print(f"costwarden billing: {exc}", file=sys.stderr)
        return 2
    failed = False
    with BillingStore(args.store) as store:
        for source in sources:
            try:
                report = source.sync(store)
            except BillingSourceError as exc:
                print(f"costwarden billing: {exc}", file=sys.stderr)
                failed = True
                continue
            for result in report.deliveries:
                if result.status == FAILED:
                    print(f"costwarden billing: {result.error}", file=sys.stderr)
                    failed = True
                    continue
                what = f"{result.objects} objects, {result.downloaded} fetched"
                if result.status == STORED:
                    what += f", {result.rows} rows"
                print(f"{source.uri}: {result.name}: {result.status} ({what})")
            if not report.deliveries:
                print(f"{source.uri}: no exports found")
    return 2 if failed else 0


def _summary(args: argparse.Namespace) -> int:
    if not args.store.exists():
        raise BillingImportError(args.store, "no such store")
    with BillingStore(args.store) as store:
        summary = store.summary()
    if args.json:
        print(json.dumps(summary_json(summary)))
        return 0
    rows = [("provider", "rows", "billed", "effective")]
    rows += [
        (name, str(t.rows), decimal_text(t.billed_cost), decimal_text(t.effective_cost))
        for name, t in sorted(summary.by_provider.items())
    ]
    total = summary.total
    rows.append(
        ("total", str(total.rows), decimal_text(total.billed_cost), decimal_text(total.effective_cost))
    )
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    return 0


def run(args: argparse.Namespace) -> int:
    try:
        if args.billing_command == "import":
            return _import(args)
        if args.billing_command == "sync":
            return _sync(args)
        return _summary(args)
    except BillingImportError as exc:
        print(f"costwarden billing: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the store itself (a directory, no permission)
        print(f"costwarden billing: {args.store}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except duckdb.Error as exc:  # the store itself: not a DuckDB file, locked by another process
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"costwarden billing: {args.store}: {first}", file=sys.stderr)
        return 2
