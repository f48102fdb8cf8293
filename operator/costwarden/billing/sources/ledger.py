"""Table ``source_objects`` of the store: which object of which source was fetched, by its ETag
and size, and for which delivery. A delivery whose objects all match the listing is not fetched
again; one whose manifest or any object changed (a restatement) is fetched whole.

BigQuery keeps the same bookkeeping per invoice month (key ``invoice_month=YYYYMM``, ETag the
newest ``export_time`` and the row count of that month)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb

from costwarden.billing.sources.base import ObjectInfo
from costwarden.billing.store import BillingStore

_DDL = """CREATE TABLE IF NOT EXISTS source_objects (
  source VARCHAR NOT NULL,
  delivery VARCHAR NOT NULL,
  key VARCHAR NOT NULL,
  etag VARCHAR NOT NULL,
  size BIGINT NOT NULL,
  synced_at TIMESTAMPTZ NOT NULL,
  PRIMARY KEY (source, key)
)"""


@dataclass(frozen=True, slots=True)
class Known:
    delivery: str
    etag: str
    size: int


class ObjectLedger:
    """The ``source_objects`` rows of one source (``uri``) in ``store``."""

    def __init__(self, store: BillingStore, uri: str) -> None:
        self._db = store.connection
        self.uri = uri
        self._db.execute(_DDL)

    def known(self) -> dict[str, Known]:
        rows = self._db.execute(
            "SELECT key, delivery, etag, size FROM source_objects WHERE source = ?", [self.uri]
        ).fetchall()
        return {str(k): Known(str(d), str(e), int(s)) for k, d, e, s in rows}

    def recorder(self, delivery: str, objects: Iterable[ObjectInfo]) -> _Recorder:
        """A callable for ``BillingStore.import_delivery(then=...)``: records ``objects`` as the
        delivery's objects, in the import's own transaction."""
        return _Recorder(self.uri, delivery, tuple(objects))

    def record(self, delivery: str, objects: Iterable[ObjectInfo]) -> None:
        """Record ``objects`` as the delivery's objects now (nothing imported)."""
        recorder = self.recorder(delivery, objects)
        self._db.begin()
        try:
            recorder(self._db)
            self._db.commit()
        except BaseException:
            self._db.rollback()
            raise


@dataclass(frozen=True, slots=True)
class _Recorder:
    uri: str
    delivery: str
    objects: tuple[ObjectInfo, ...]

    def __call__(self, db: duckdb.DuckDBPyConnection) -> None:
        db.execute("DELETE FROM source_objects WHERE source = ? AND delivery = ?", [self.uri, self.delivery])
        keys = [o.key for o in self.objects]
        if keys:  # an object that moved from another delivery
            db.execute(
                "DELETE FROM source_objects WHERE source = ? AND list_contains(?, key)", [self.uri, keys]
            )
            now = datetime.now(UTC)
            db.executemany(
                "INSERT INTO source_objects VALUES (?, ?, ?, ?, ?, ?)",
                [[self.uri, self.delivery, o.key, o.etag, o.size, now] for o in self.objects],
            )


def unchanged(objects: Iterable[ObjectInfo], known: dict[str, Known], delivery: str) -> bool:
    """True when every one of ``objects`` is known with its ETag and size, and every object
    recorded for ``delivery`` is among them (none vanished or moved)."""
    objects = list(objects)
    listed = {o.key for o in objects}
    for o in objects:
        seen = known.get(o.key)
        if seen is None or seen.etag != o.etag or seen.size != o.size or seen.delivery != delivery:
            return False
    return all(key in listed for key, k in known.items() if k.delivery == delivery)
