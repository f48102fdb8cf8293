"""Syncing a bucket, a container or a directory of export files into the store: the part S3,
Azure Blob and ``file://`` share.

Per delivery (an export's billing period, see costwarden.billing.sources.layout):

* its objects all known by ETag and size (table ``source_objects``) -> ``unchanged``, nothing
  downloaded (a manifest whose own ETag is known is not even read);
* otherwise every object of the delivery is downloaded, streamed to a temporary folder (a bound
  on the delivery's bytes), and stored as one delivery (``BillingStore.import_delivery``): the
  lines of its (source, billing period)s are replaced, the objects recorded in the same
  transaction;
* an object that cannot be fetched or stored fails that delivery alone (nothing of it stored,
  the error names the URI, the object and the column); the other deliveries are still synced.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

import duckdb

from costwarden.billing.sources.base import (
    FAILED,
    STORED,
    UNCHANGED,
    BillingSourceError,
    DeliveryResult,
    ObjectInfo,
    SyncReport,
)
from costwarden.billing.sources.layout import (
    MANIFEST_LIMIT,
    Delivery,
    ManifestError,
    deliveries,
    is_data,
    manifest_keys,
)
from costwarden.billing.sources.ledger import Known, ObjectLedger, unchanged
from costwarden.billing.store import BillingImportError, BillingStore

DEFAULT_MAX_DELIVERY_BYTES = 64 << 30  # one billing period of one export, on the store's disk


class ObjectStore(Protocol):
    """A bucket, container or directory under a prefix. Every method raises BillingSourceError
    (naming the URI and, where one is at fault, the object) rather than the SDK's own errors."""

    uri: str
    bucket: str  # for manifests that name their files by bucket (AWS); "" where none

    def list(self) -> Sequence[ObjectInfo]: ...

    def read(self, info: ObjectInfo, limit: int) -> bytes: ...

    def download(self, info: ObjectInfo, target: BinaryIO, limit: int) -> ObjectInfo:
        """Stream the object into ``target`` (at most ``limit`` bytes): the object as fetched."""
        ...


@dataclass(frozen=True, slots=True)
class ObjectSync:
    """How deliveries are fetched: the bound on one delivery's bytes, where they are spooled."""

    max_delivery_bytes: int = DEFAULT_MAX_DELIVERY_BYTES
    temp_dir: Path | None = None

    def sync(self, objects: ObjectStore, store: BillingStore) -> SyncReport:
        listing = objects.list()
        by_key = {o.key: o for o in listing}
        ledger = ObjectLedger(store, objects.uri)
        known = ledger.known()
        results = []
        for delivery in deliveries(listing):
            try:
                results.append(
                    self._one(objects, store, ledger, known=known, by_key=by_key, delivery=delivery)
                )
            except BillingSourceError as exc:
                results.append(DeliveryResult(delivery.name, delivery.period, FAILED, error=exc))
        return SyncReport(objects.uri, tuple(results))

    def _one(
        self,
        objects: ObjectStore,
        store: BillingStore,
        ledger: ObjectLedger,
        *,
        known: dict[str, Known],
        by_key: dict[str, ObjectInfo],
        delivery: Delivery,
    ) -> DeliveryResult:
        data_known = {k: v for k, v in known.items() if is_data(k)}
        files = delivery.files
        manifest = delivery.manifest
        if manifest is not None:
            recorded = [by_key.get(k) for k, v in data_known.items() if v.delivery == delivery.name]
            if _same(manifest, known, delivery.name) and all(
                info is not None and _same(info, known, delivery.name) for info in recorded
            ):
                return DeliveryResult(delivery.name, delivery.period, UNCHANGED, objects=len(recorded))
            text = objects.read(manifest, MANIFEST_LIMIT)
            try:
                keys = manifest_keys(delivery.kind, text, objects.bucket)
            except ManifestError as exc:
                raise BillingSourceError(objects.uri, str(exc), manifest.key) from exc
            missing = [k for k in keys if k not in by_key]
            if missing:
                raise BillingSourceError(objects.uri, f"listed in {manifest.key} but not found", missing[0])
            files = tuple(by_key[k] for k in dict.fromkeys(keys))
        if unchanged(files, data_known, delivery.name):
            if manifest is not None and not _same(manifest, known, delivery.name):
                ledger.record(delivery.name, [manifest, *files])
            return DeliveryResult(delivery.name, delivery.period, UNCHANGED, objects=len(files))
        return self._fetch(objects, store, ledger, delivery, files)

    def _fetch(
        self,
        objects: ObjectStore,
        store: BillingStore,
        ledger: ObjectLedger,
        delivery: Delivery,
        files: Sequence[ObjectInfo],
    ) -> DeliveryResult:
        total = sum(o.size for o in files)
        if total > self.max_delivery_bytes:
            raise BillingSourceError(
                objects.uri,
                f"delivery {delivery.name} holds {total} bytes, more than the bound of "
                f"{self.max_delivery_bytes}",
            )
        with tempfile.TemporaryDirectory(prefix="costwarden-billing-", dir=self.temp_dir) as spool:
            paths: dict[str, str] = {}
            fetched: list[ObjectInfo] = []
            budget = self.max_delivery_bytes
            for index, info in enumerate(files):
                path = Path(spool) / f"{index:05d}-{_safe(info.key)}"
                with path.open("wb") as target:
                    fetched.append(objects.download(info, target, budget))
                budget -= path.stat().st_size
                paths[str(path)] = info.key
            record = [delivery.manifest] if delivery.manifest is not None else []
            try:
                imported = store.import_delivery(
                    list(paths), then=ledger.recorder(delivery.name, [*record, *fetched])
                )
            except BillingImportError as exc:
                key = paths.get(exc.path, exc.path)
                raise BillingSourceError(objects.uri, exc.message, key, exc.column) from exc
            except duckdb.Error as exc:
                raise BillingSourceError(
                    objects.uri, f"cannot store delivery {delivery.name}: {exc}"
                ) from exc
        return DeliveryResult(
            delivery.name,
            delivery.period,
            STORED,
            objects=len(files),
            downloaded=len(files),
            downloaded_bytes=sum(o.size for o in fetched),
            rows=sum(r.rows for r in imported if r.status == STORED),
            replaced_rows=max((r.replaced_rows for r in imported), default=0),
        )


def _same(info: ObjectInfo, known: dict[str, Known], delivery: str) -> bool:
    seen = known.get(info.key)
    return seen is not None and (seen.etag, seen.size, seen.delivery) == (info.etag, info.size, delivery)


def _safe(key: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=-]+", "_", key.rsplit("/", 1)[-1])[-120:] or "object"
