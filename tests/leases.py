"""One Lease with the API server's optimistic concurrency, in memory (a stale resourceVersion is
a 409), for leader-election tests that need no server."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from costwarden.operator.kube import KubeError, WriteResult


class Leases:
    def __init__(self) -> None:
        self.stored: dict[str, Any] | None = None
        self.version = 0
        self.reachable = True  # False: every call fails as if the API server were down

    async def read_lease(self, namespace: str, name: str) -> dict[str, Any] | None:
        if not self.reachable:
            raise KubeError("Lease: could not be read (connection refused)")
        return copy.deepcopy(self.stored)

    async def create_lease(self, namespace: str, body: Mapping[str, Any]) -> WriteResult:
        if not self.reachable:
            return WriteResult.FAILED
        return WriteResult.CONFLICT if self.stored is not None else self._store(body)

    async def replace_lease(self, namespace: str, name: str, body: Mapping[str, Any]) -> WriteResult:
        if not self.reachable:
            return WriteResult.FAILED
        if self.stored is None or body["metadata"].get("resourceVersion") != str(self.version):
            return WriteResult.CONFLICT
        return self._store(body)

    def _store(self, body: Mapping[str, Any]) -> WriteResult:
        self.version += 1
        self.stored = copy.deepcopy(dict(body))
        self.stored["metadata"]["resourceVersion"] = str(self.version)
        return WriteResult.DONE
