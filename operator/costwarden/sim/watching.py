"""Watch streams: initial state or replay from a resourceVersion, then live changes.

Objects moving into or out of the selectors turn into ADDED or DELETED, like the apiserver's watch
cache does. A resourceVersion older than the retained history yields one ERROR event (410 Expired)
in a 200 stream, as the watch cache answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from costwarden.sim import errors
from costwarden.sim.addressing import Target
from costwarden.sim.objects import ObjectApi
from costwarden.sim.selectors import FieldSelector, LabelSelector
from costwarden.sim.store import Change

Event = dict[str, Any]
INITIAL_EVENTS_END = "k8s.io/initial-events-end"


@dataclass(frozen=True)
class WatchQuery:
    target: Target
    labels: LabelSelector = field(default_factory=LabelSelector)
    fields: FieldSelector = field(default_factory=FieldSelector)
    since: str | None = None
    send_initial_events: bool = False
    bookmarks: bool = False
    timeout: float | None = None


class Watch:
    """One watch request. ``open()`` validates and subscribes (raising ApiError); ``events()`` streams."""

    def __init__(self, api: ObjectApi, query: WatchQuery, bookmark_interval: float = 30.0) -> None:
        self._api = api
        self._query = query
        self._bookmark_interval = bookmark_interval
        self._since: int | None = None

    def open(self) -> None:
        since = self._query.since
        if since not in (None, "", "0"):
            try:
                self._since = int(str(since))
            except ValueError as exc:
                raise errors.bad_request(f'invalid resource version: "{since}"') from exc

    def _matches(self, obj: Mapping[str, Any] | None) -> bool:
        if obj is None:
            return False
        target, meta = self._query.target, obj.get("metadata", {})
        if target.namespace is not None and (meta.get("namespace") or "") != target.namespace:
            return False
        if target.name is not None and meta.get("name") != target.name:
            return False
        return self._query.labels.matches(obj) and self._query.fields.matches(obj)

    def _event(self, kind: str, obj: Mapping[str, Any]) -> Event:
        return {"type": kind, "object": self._api.present(self._query.target, obj)}

    def _translate(self, change: Change) -> Event | None:
        now_in = self._matches(change.obj)
        if change.type != "MODIFIED":
            return self._event(change.type, change.obj) if now_in else None
        was_in = self._matches(change.old)
        if was_in and now_in:
            return self._event("MODIFIED", change.obj)
        if now_in:
            return self._event("ADDED", change.obj)
        if was_in:
            return self._event("DELETED", change.obj)
        return None

    def _bookmark(self, rv: int, initial_end: bool = False) -> Event:
        info, version = self._query.target.info, self._query.target.version
        metadata: dict[str, Any] = {"resourceVersion": str(rv)}
        if initial_end:
            metadata["annotations"] = {INITIAL_EVENTS_END: "true"}
        return {
            "type": "BOOKMARK",
            "object": {"kind": info.kind, "apiVersion": info.api_version(version), "metadata": metadata},
        }

    async def events(self) -> AsyncGenerator[Event, None]:
        store = self._api.store
        info = self._query.target.info
        subscription = store.subscribe((info.group, info.plural))
        try:
            if self._since is None:
                rv = store.resource_version
                for obj in store.items((info.group, info.plural), self._query.target.namespace):
                    if self._matches(obj):
                        yield self._event("ADDED", obj)
                if self._query.send_initial_events and self._query.bookmarks:
                    yield self._bookmark(rv, initial_end=True)
            elif self._since < store.compacted:
                message = f"too old resource version: {self._since} ({store.compacted})"
                yield {"type": "ERROR", "object": errors.gone(message).status()}
                return
            else:
                for change in list(store.history_since((info.group, info.plural), self._since)):
                    if (event := self._translate(change)) is not None:
                        yield event
            async for event in self._live(subscription.queue):
                yield event
        finally:
            store.unsubscribe(subscription)

    async def _live(self, queue: asyncio.Queue[Change | None]) -> AsyncIterator[Event]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._query.timeout if self._query.timeout else None
        while True:
            wait = self._bookmark_interval
            if deadline is not None:
                wait = min(wait, deadline - loop.time())
                if wait <= 0:
                    return
            try:
                change = await asyncio.wait_for(queue.get(), wait)
            except TimeoutError:
                if self._query.bookmarks and (deadline is None or loop.time() < deadline):
                    yield self._bookmark(self._api.store.resource_version)
                continue
            if change is None:
                return
            if (event := self._translate(change)) is not None:
                yield event
