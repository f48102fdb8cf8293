"""``azure://account/container/prefix``: Azure Cost Management exports in Blob storage.

Credentials: ``DefaultAzureCredential`` (AKS workload identity, a managed identity, the Azure
CLI's login); the identity needs the ``Storage Blob Data Reader`` role on the container (or the
account). The account URL is ``https://<account>.blob.core.windows.net`` unless given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from azure.core import MatchConditions
from azure.core.exceptions import AzureError, ResourceModifiedError
from azure.identity import DefaultAzureCredential
from azure.storage.blob import BlobServiceClient, ContainerClient

from costwarden.billing.sources.base import BillingSourceError, ObjectInfo, SyncReport
from costwarden.billing.sources.objects import ObjectSync
from costwarden.billing.store import BillingStore


def _why(exc: AzureError) -> str:
    code = getattr(exc, "error_code", None) or getattr(getattr(exc, "response", None), "status_code", None)
    first = (str(exc.message or exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{code}: {first}" if code else f"{type(exc).__name__}: {first}"


@dataclass
class BlobObjects:
    """The blobs under ``prefix`` of one container."""

    uri: str
    container: ContainerClient
    prefix: str
    bucket: str = ""

    def list(self) -> Sequence[ObjectInfo]:
        base = self.prefix.rstrip("/") + "/" if self.prefix else None
        try:
            return [
                ObjectInfo(str(blob.name), str(blob.etag).strip('"'), int(blob.size), blob.last_modified)
                for blob in self.container.list_blobs(name_starts_with=base)
            ]
        except AzureError as exc:
            raise BillingSourceError(self.uri, f"cannot list the container: {_why(exc)}") from exc

    def read(self, info: ObjectInfo, limit: int) -> bytes:
        if info.size > limit:
            raise BillingSourceError(self.uri, f"{info.size} bytes, more than {limit}", info.key)
        try:
            data: bytes = self.container.download_blob(info.key).readall()
        except AzureError as exc:
            raise BillingSourceError(self.uri, f"cannot fetch: {_why(exc)}", info.key) from exc
        if len(data) > limit:
            raise BillingSourceError(self.uri, f"more than {limit} bytes", info.key)
        return data

    def download(self, info: ObjectInfo, target: BinaryIO, limit: int) -> ObjectInfo:
        written = 0
        try:
            # The blob as listed: a blob rewritten since (a new run) fails this delivery, and the
            # next sync lists it again.
            stream = self.container.download_blob(
                info.key, etag=f'"{info.etag}"', match_condition=MatchConditions.IfNotModified
            )
            for chunk in stream.chunks():
                written += len(chunk)
                if written > limit:
                    raise BillingSourceError(self.uri, f"more than the bound of {limit} bytes", info.key)
                target.write(chunk)
        except ResourceModifiedError as exc:
            raise BillingSourceError(self.uri, "changed while it was fetched", info.key) from exc
        except AzureError as exc:
            raise BillingSourceError(self.uri, f"cannot fetch: {_why(exc)}", info.key) from exc
        return ObjectInfo(info.key, info.etag, written, info.modified)


@dataclass
class AzureBlobSource:
    """A BillingSource for ``azure://account/container/prefix``."""

    uri: str
    account_url: str
    container: str
    prefix: str
    service: Any = None  # a BlobServiceClient; made from account_url and the credential when None
    credential: Any = None  # DefaultAzureCredential() when None
    fetch: ObjectSync = field(default_factory=ObjectSync)

    def sync(self, store: BillingStore) -> SyncReport:
        service = self.service
        if service is None:
            credential = self.credential if self.credential is not None else DefaultAzureCredential()
            service = BlobServiceClient(self.account_url, credential=credential)
        objects = BlobObjects(self.uri, service.get_container_client(self.container), self.prefix)
        return self.fetch.sync(objects, store)
