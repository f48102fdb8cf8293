"""``file:///path``: a directory (or one file) of export files, for sites without cloud access.

The same layouts and rules as a bucket (costwarden.billing.sources.layout): an object is known
by its modification time and size (its "ETag"), and the store itself skips or replaces by the
files' SHA-256."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from costwarden.billing.sources.base import BillingSourceError, ObjectInfo, SyncReport
from costwarden.billing.sources.objects import ObjectSync
from costwarden.billing.store import BillingStore


def _info(path: Path, key: str) -> ObjectInfo:
    stat = path.stat()
    modified = datetime.fromtimestamp(stat.st_mtime, UTC)
    return ObjectInfo(key, f"{stat.st_mtime_ns:x}-{stat.st_size:x}", stat.st_size, modified)


@dataclass
class LocalObjects:
    """Files under ``root`` (keys: paths relative to it, ``/``-separated), or ``root`` itself."""

    uri: str
    root: Path
    bucket: str = ""

    def _path(self, key: str) -> Path:
        return self.root if self.root.is_file() else self.root / key

    def list(self) -> Sequence[ObjectInfo]:
        try:
            if self.root.is_file():
                return [_info(self.root, self.root.name)]
            if not self.root.is_dir():
                raise BillingSourceError(self.uri, "no such file or directory")
            return [
                _info(path, path.relative_to(self.root).as_posix())
                for path in sorted(self.root.rglob("*"))
                if path.is_file()
            ]
        except OSError as exc:
            raise BillingSourceError(self.uri, f"cannot list: {exc.strerror or exc}") from exc

    def read(self, info: ObjectInfo, limit: int) -> bytes:
        try:
            with self._path(info.key).open("rb") as handle:
                data = handle.read(limit + 1)
        except OSError as exc:
            raise BillingSourceError(self.uri, f"cannot read: {exc.strerror or exc}", info.key) from exc
        if len(data) > limit:
            raise BillingSourceError(self.uri, f"more than {limit} bytes", info.key)
        return data

    def download(self, info: ObjectInfo, target: BinaryIO, limit: int) -> ObjectInfo:
        path = self._path(info.key)
        try:
            now = _info(path, info.key)
            if now.size > limit:
                raise BillingSourceError(self.uri, f"more than the bound of {limit} bytes", info.key)
            with path.open("rb") as handle:
                shutil.copyfileobj(handle, target, 1 << 20)
        except OSError as exc:
            raise BillingSourceError(self.uri, f"cannot read: {exc.strerror or exc}", info.key) from exc
        return now


@dataclass
class LocalSource:
    """A BillingSource for ``file:///path``."""

    uri: str
    root: Path
    fetch: ObjectSync = field(default_factory=ObjectSync)

    def sync(self, store: BillingStore) -> SyncReport:
        return self.fetch.sync(LocalObjects(self.uri, self.root), store)
