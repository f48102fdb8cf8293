"""``s3://bucket/prefix``: AWS Data Exports (CUR 2.0, FOCUS 1.0) and legacy CUR in S3.

Credentials come from boto3's default chain only (IRSA's web identity token in a pod, the
instance profile, the environment); boto3 itself honours ``AWS_ENDPOINT_URL``. Needs
``s3:ListBucket`` on the bucket (for the prefix) and ``s3:GetObject`` on the prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import boto3  # type: ignore[import-untyped]
from botocore.exceptions import BotoCoreError, ClientError  # type: ignore[import-untyped]

from costwarden.billing.sources.base import BillingSourceError, ObjectInfo, SyncReport
from costwarden.billing.sources.objects import ObjectSync
from costwarden.billing.store import BillingStore

_CHUNK = 1 << 20


def _why(exc: Exception) -> str:
    """The SDK error as one short phrase: ``AccessDenied: Access Denied``, ``SlowDown: …``."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code") or exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return f"{code}: {error.get('Message') or exc}"
    return f"{type(exc).__name__}: {exc}"


@dataclass
class S3Objects:
    """The objects under ``prefix`` of ``bucket``, through ``client`` (a boto3 S3 client)."""

    uri: str
    bucket: str
    prefix: str
    client: Any

    def list(self) -> Sequence[ObjectInfo]:
        base = self.prefix.rstrip("/") + "/" if self.prefix else ""
        found = []
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=base
            ):
                for item in page.get("Contents", []):
                    found.append(
                        ObjectInfo(
                            str(item["Key"]),
                            str(item.get("ETag", "")).strip('"'),
                            int(item["Size"]),
                            item["LastModified"],
                        )
                    )
        except (ClientError, BotoCoreError) as exc:
            raise BillingSourceError(self.uri, f"cannot list the bucket: {_why(exc)}") from exc
        return found

    def read(self, info: ObjectInfo, limit: int) -> bytes:
        if info.size > limit:
            raise BillingSourceError(self.uri, f"{info.size} bytes, more than {limit}", info.key)
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=info.key)["Body"]
            data: bytes = body.read(limit + 1)
        except (ClientError, BotoCoreError) as exc:
            raise BillingSourceError(self.uri, f"cannot fetch: {_why(exc)}", info.key) from exc
        if len(data) > limit:
            raise BillingSourceError(self.uri, f"more than {limit} bytes", info.key)
        return data

    def download(self, info: ObjectInfo, target: BinaryIO, limit: int) -> ObjectInfo:
        written = 0
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=info.key)
            for chunk in response["Body"].iter_chunks(_CHUNK):
                written += len(chunk)
                if written > limit:
                    raise BillingSourceError(self.uri, f"more than the bound of {limit} bytes", info.key)
                target.write(chunk)
        except (ClientError, BotoCoreError) as exc:
            raise BillingSourceError(self.uri, f"cannot fetch: {_why(exc)}", info.key) from exc
        etag = str(response.get("ETag", info.etag)).strip('"')
        return ObjectInfo(info.key, etag, written, info.modified)


@dataclass
class S3Source:
    """A BillingSource for ``s3://bucket/prefix``."""

    uri: str
    bucket: str
    prefix: str
    client: Any = None  # a boto3 S3 client; made from the default credential chain when None
    fetch: ObjectSync = field(default_factory=ObjectSync)

    def sync(self, store: BillingStore) -> SyncReport:
        try:
            client = self.client if self.client is not None else boto3.client("s3")
        except BotoCoreError as exc:
            raise BillingSourceError(self.uri, f"cannot make an S3 client: {_why(exc)}") from exc
        return self.fetch.sync(S3Objects(self.uri, self.bucket, self.prefix, client), store)
