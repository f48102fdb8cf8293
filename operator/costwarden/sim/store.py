"""Objects, the cluster-wide resourceVersion, the event history, and watch subscriptions.

Everything runs on one event loop, so no locks: a commit is synchronous (no awaits) and is
therefore atomic for every reader and watcher. Stored bodies are never mutated after a commit;
readers that hand bodies out copy them.
"""

from __future__ import annotations

import asyncio
import copy
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

GroupPlural = tuple[str, str]
ObjectKey = tuple[str, str]  # (namespace or "", name)


@dataclass(frozen=True)
class Change:
    """One committed write, as watchers see it (``old`` lets them track selector moves)."""

    rv: int
    resource: GroupPlural
    type: str  # ADDED | MODIFIED | DELETED
    obj: dict[str, Any]
    old: dict[str, Any] | None


@dataclass(eq=False)
class Subscription:
    resource: GroupPlural
    queue: asyncio.Queue[Change | None] = field(default_factory=asyncio.Queue)


def _key(obj: dict[str, Any]) -> ObjectKey:
    meta = obj.get("metadata", {})
    return (meta.get("namespace") or "", meta["name"])


class Store:
    def __init__(self, history_limit: int = 20_000) -> None:
        self._objects: dict[GroupPlural, dict[ObjectKey, dict[str, Any]]] = {}
        self._rv = 0
        self._history: deque[Change] = deque()
        self._history_limit = history_limit
        self._compacted = 0  # watches may start from any rv >= this
        self._subscriptions: dict[GroupPlural, set[Subscription]] = {}
        self.closed = False  # close_all() was called: the server is stopping

    @property
    def resource_version(self) -> int:
        return self._rv

    @property
    def compacted(self) -> int:
        return self._compacted

    def get(self, resource: GroupPlural, namespace: str | None, name: str) -> dict[str, Any] | None:
        return self._objects.get(resource, {}).get((namespace or "", name))

    def items(self, resource: GroupPlural, namespace: str | None = None) -> list[dict[str, Any]]:
        """Objects of a resource (in one namespace, or all), ordered by namespace and name."""
        bucket = self._objects.get(resource, {})
        keys = sorted(k for k in bucket if namespace is None or k[0] == namespace)
        return [bucket[k] for k in keys]

    def count_in_namespace(self, namespace: str) -> int:
        return sum(1 for bucket in self._objects.values() for ns, _ in bucket if ns == namespace)

    def resources(self) -> list[GroupPlural]:
        return [r for r, bucket in self._objects.items() if bucket]

    def commit(self, resource: GroupPlural, kind: str, obj: dict[str, Any]) -> dict[str, Any]:
        """Store (ADDED/MODIFIED) or remove (DELETED) ``obj`` under a new resourceVersion; return it."""
        self._rv += 1
        stored = copy.deepcopy(obj)
        stored.setdefault("metadata", {})["resourceVersion"] = str(self._rv)
        bucket = self._objects.setdefault(resource, {})
        key = _key(stored)
        old = bucket.get(key)
        if kind == "DELETED":
            bucket.pop(key, None)
        else:
            bucket[key] = stored
        change = Change(self._rv, resource, kind, stored, old)
        self._history.append(change)
        while len(self._history) > self._history_limit:
            self._compacted = self._history.popleft().rv
        for subscription in self._subscriptions.get(resource, ()):
            subscription.queue.put_nowait(change)
        return stored

    def history_since(self, resource: GroupPlural, rv: int) -> Iterator[Change]:
        return (c for c in self._history if c.rv > rv and c.resource == resource)

    def subscribe(self, resource: GroupPlural) -> Subscription:
        subscription = Subscription(resource)
        self._subscriptions.setdefault(resource, set()).add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscriptions.get(subscription.resource, set()).discard(subscription)

    def close_all(self) -> None:
        """End every watch (each gets a None); used when the server stops."""
        self.closed = True
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.queue.put_nowait(None)
