"""What every billing source shares: its error, its report, and the one interface the operator
and ``costwarden billing sync`` call (``BillingSource.sync``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from costwarden.billing.store import BillingStore

STORED = "stored"  # fetched and stored (new, or a restated period)
UNCHANGED = "unchanged"  # every object already known: nothing downloaded
FAILED = "failed"  # nothing of this delivery stored; the error says why


class BillingSourceError(Exception):
    """A source that cannot be read, or one delivery of it that cannot be stored.

    ``str`` is one line naming the source's URI and, where one is at fault, the object (key or
    blob name) and the column."""

    def __init__(self, uri: str, message: str, key: str | None = None, column: str | None = None) -> None:
        self.uri = uri
        self.key = key
        self.column = column
        self.message = " ".join(message.split())  # one line
        where = f"{uri}: {key}" if key else uri
        super().__init__(f"{where}: {self.message}")


@dataclass(frozen=True, slots=True)
class ObjectInfo:
    """One object of a bucket, container or directory as listed: its key (the full name inside
    the bucket or container, or the path), its version tag (S3 or Blob ETag; mtime for files),
    its size and when it was last written."""

    key: str
    etag: str
    size: int
    modified: datetime


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """What became of one delivery: an export's billing period (``period`` ``YYYY-MM``), or a
    directory of files (``period`` empty)."""

    name: str  # the delivery's place: "<prefix>/<export>/BILLING_PERIOD=2026-11", a range, a folder
    period: str
    status: str  # STORED | UNCHANGED | FAILED
    objects: int = 0  # objects the delivery is made of
    downloaded: int = 0  # objects fetched this time
    downloaded_bytes: int = 0
    rows: int = 0  # lines stored
    replaced_rows: int = 0  # lines of earlier deliveries replaced (a restated period)
    error: BillingSourceError | None = None


@dataclass(frozen=True, slots=True)
class SyncReport:
    """One ``sync`` of one source: a result per delivery (billing period) it found."""

    uri: str
    deliveries: tuple[DeliveryResult, ...]

    @property
    def errors(self) -> tuple[BillingSourceError, ...]:
        return tuple(d.error for d in self.deliveries if d.error is not None)

    @property
    def stored(self) -> tuple[DeliveryResult, ...]:
        return tuple(d for d in self.deliveries if d.status == STORED)

    @property
    def unchanged(self) -> tuple[DeliveryResult, ...]:
        return tuple(d for d in self.deliveries if d.status == UNCHANGED)

    @property
    def downloaded(self) -> int:
        return sum(d.downloaded for d in self.deliveries)

    @property
    def ok(self) -> bool:
        return not self.errors


class BillingSource(Protocol):
    """A place billing exports land (S3, BigQuery, Blob storage, a directory).

    ``sync`` is blocking (the operator runs it in a thread) and brings the store up to date:
    only new or changed deliveries are fetched; a delivery that cannot be stored is a FAILED
    result (nothing of it stored) while the others are still stored. It raises
    BillingSourceError, naming the source, only when the source cannot be read at all
    (credentials, permission, throttling, network, no such bucket)."""

    @property
    def uri(self) -> str: ...

    def sync(self, store: BillingStore) -> SyncReport: ...
