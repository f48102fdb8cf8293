"""``source_from_uri``: a billing source from its URI (the contract of ``--billing-source`` and
``costwarden billing sync --source``):

* ``s3://bucket/prefix`` — AWS Data Exports (CUR 2.0, FOCUS 1.0) or legacy CUR in S3;
* ``bq://project.dataset.table`` — the GCP detailed usage cost export (or its FOCUS view) in BigQuery;
* ``azure://account/container/prefix`` — Azure Cost Management exports in Blob storage;
* ``file:///path`` — a local directory or file.

Each cloud's SDK is imported only when a URI of its scheme is given. The keyword arguments hand
over clients (tests, or an operator that shares them); without them each source makes its own
from the default credential chain of its cloud when it syncs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from costwarden.billing.sources.base import BillingSource
from costwarden.billing.sources.objects import DEFAULT_MAX_DELIVERY_BYTES, ObjectSync

# Bucket names: https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
# Project ids (optionally domain-scoped, "example.com:project"), dataset and table names:
# https://cloud.google.com/bigquery/docs/tables#table_naming
_PROJECT = re.compile(r"^(?:[a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")
_TABLE = re.compile(r"^[A-Za-z0-9_$-]{1,1024}$")
# Storage account names: 3-24 lower-case letters and digits; containers: 3-63, letters, digits, '-'.
_ACCOUNT = re.compile(r"^[a-z0-9]{3,24}$")
_CONTAINER = re.compile(r"^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$")


def _bad(uri: str, why: str) -> ValueError:
    return ValueError(f"billing source {uri!r}: {why}")


def source_from_uri(
    uri: str,
    *,
    s3_client: Any = None,
    bigquery_client: Any = None,
    blob_service_client: Any = None,
    azure_account_url: str | None = None,
    azure_credential: Any = None,
    look_back_months: int = 2,
    temp_dir: Path | None = None,
    max_delivery_bytes: int = DEFAULT_MAX_DELIVERY_BYTES,
) -> BillingSource:
    """The source ``uri`` names; ValueError naming ``uri`` when it is malformed or of no known scheme.

    ``look_back_months``: BigQuery invoice months synced (the current one and the ones before).
    ``temp_dir``, ``max_delivery_bytes``: where object deliveries are spooled and their bound."""
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    if parts.query or parts.fragment:
        raise _bad(uri, "a query or fragment is not part of a billing source URI")
    fetch = ObjectSync(max_delivery_bytes, temp_dir)
    if scheme == "s3":
        bucket, prefix = parts.netloc, parts.path.strip("/")
        if not _BUCKET.match(bucket):
            raise _bad(uri, "expected s3://bucket/prefix with a valid bucket name")
        from costwarden.billing.sources.s3 import S3Source

        return S3Source(uri, bucket, prefix, s3_client, fetch)
    if scheme == "bq":
        names = (parts.netloc + parts.path).split(".") if not parts.path.strip("/") else []
        if len(names) == 4 and ":" in names[1]:  # domain-scoped: example.com:project.dataset.table
            names = [f"{names[0]}.{names[1]}", names[2], names[3]]
        if len(names) != 3 or not (
            _PROJECT.match(names[0]) and _DATASET.match(names[1]) and _TABLE.match(names[2])
        ):
            raise _bad(uri, "expected bq://project.dataset.table")
        if look_back_months < 1:
            raise _bad(uri, "look_back_months must be at least 1")
        from costwarden.billing.sources.bigquery import BigQuerySource

        return BigQuerySource(uri, names[0], names[1], names[2], bigquery_client, look_back_months)
    if scheme == "azure":
        account = parts.netloc
        container, _, prefix = parts.path.strip("/").partition("/")
        if not _ACCOUNT.match(account) or not _CONTAINER.match(container):
            raise _bad(uri, "expected azure://account/container/prefix")
        from costwarden.billing.sources.azure_blob import AzureBlobSource

        url = azure_account_url or f"https://{account}.blob.core.windows.net"
        return AzureBlobSource(
            uri, url, container, prefix.strip("/"), blob_service_client, azure_credential, fetch
        )
    if scheme == "file":
        if parts.netloc not in {"", "localhost"} or not parts.path.startswith("/"):
            raise _bad(uri, "expected file:///absolute/path")
        from costwarden.billing.sources.local import LocalSource

        return LocalSource(uri, Path(unquote(parts.path)), fetch)
    raise _bad(uri, "unknown scheme (expected s3://, bq://, azure:// or file://)")
