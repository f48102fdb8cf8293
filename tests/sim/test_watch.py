"""Watch streams: initial events, replay, 410, timeouts, selectors, bookmarks, tables."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Any

import aiohttp

from costwarden.sim.cluster import SimCluster
from tests.sim.conftest import TABLE, Api
from tests.sim.crd import pod

PODS = "/api/v1/namespaces/default/pods"
Event = dict[str, Any]


async def _events(api: Api, query: str, accept: str = "application/json") -> AsyncGenerator[Event, None]:
    async with api.session.get(f"{PODS}?watch=true&{query}", headers={"Accept": accept}) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/json")
        async for line in response.content:
            if line.strip():
                yield json.loads(line)


async def collect(
    api: Api,
    query: str,
    count: int,
    action: Callable[[], Awaitable[None]] | None = None,
    accept: str = "application/json",
) -> list[Event]:
    """The first ``count`` events of a watch; ``action`` runs once the first event proves it subscribed."""
    received: list[Event] = []
    stream = _events(api, query, accept)
    async with asyncio.timeout(10):
        async for event in stream:
            received.append(event)
            if len(received) == 1 and action is not None:
                await action()
            if len(received) >= count:
                break
    await stream.aclose()
    return received


def _summary(events: list[Event]) -> list[tuple[str, str]]:
    return [(e["type"], e["object"].get("metadata", {}).get("name", "")) for e in events]


async def test_initial_state_then_live_changes(api: Api, sim: SimCluster) -> None:
    await sim.create(pod("a"))

    async def changes() -> None:
        await sim.create(pod("b"))
        await sim.patch("v1", "pods", "b", {"metadata": {"labels": {"x": "1"}}})
        await sim.delete("v1", "pods", "a")

    events = await collect(api, "", 4, changes)
    assert _summary(events) == [("ADDED", "a"), ("ADDED", "b"), ("MODIFIED", "b"), ("DELETED", "a")]
    assert events[2]["object"]["metadata"]["labels"] == {"x": "1"}
    assert int(events[3]["object"]["metadata"]["resourceVersion"]) == sim.store.resource_version


async def test_replay_from_a_resource_version(api: Api, sim: SimCluster) -> None:
    created = await sim.create(pod("a"))
    await sim.patch("v1", "pods", "a", {"metadata": {"labels": {"x": "1"}}})
    await sim.create(pod("b"))
    events = await collect(api, f"resourceVersion={created['metadata']['resourceVersion']}", 2)
    assert _summary(events) == [("MODIFIED", "a"), ("ADDED", "b")]


async def test_too_old_resource_version_is_gone() -> None:
    async with SimCluster(history_limit=2) as sim, aiohttp.ClientSession(sim.url) as session:
        for name in "abc":
            await sim.create(pod(name))
        events = await collect(Api(session), "resourceVersion=1", 1)
    assert events[0]["type"] == "ERROR"
    assert (events[0]["object"]["code"], events[0]["object"]["reason"]) == (410, "Expired")


async def test_timeout_seconds_ends_the_stream(api: Api, sim: SimCluster) -> None:
    await sim.create(pod("a"))
    async with asyncio.timeout(10):
        events = [e async for e in _events(api, "timeoutSeconds=1")]
    assert _summary(events) == [("ADDED", "a")]


async def test_objects_moving_across_a_label_selector(api: Api, sim: SimCluster) -> None:

    await sim.create(pod("sentinel", labels={"app": "x"}))

    async def changes() -> None:
        await sim.create(pod("a", labels={"app": "y"}))
        await sim.patch("v1", "pods", "a", {"metadata": {"labels": {"app": "x"}}})
        await sim.patch("v1", "pods", "a", {"metadata": {"labels": {"extra": "1"}}})
        await sim.patch("v1", "pods", "a", {"metadata": {"labels": {"app": "z"}}})

    events = await collect(api, "labelSelector=app%3Dx", 4, changes)
    assert _summary(events) == [("ADDED", "sentinel"), ("ADDED", "a"), ("MODIFIED", "a"), ("DELETED", "a")]
    assert events[3]["object"]["metadata"]["labels"]["app"] == "z"


async def test_field_selector_on_watch(api: Api, sim: SimCluster) -> None:

    await sim.create(pod("sentinel", nodeName="n1"))

    async def changes() -> None:
        await sim.create(pod("elsewhere", nodeName="n2"))
        await sim.create(pod("here", nodeName="n1"))

    events = await collect(api, "fieldSelector=spec.nodeName%3Dn1", 2, changes)
    assert _summary(events) == [("ADDED", "sentinel"), ("ADDED", "here")]


async def test_initial_events_end_with_a_bookmark(api: Api, sim: SimCluster) -> None:
    await sim.create(pod("a"))
    events = await collect(
        api, "sendInitialEvents=true&resourceVersionMatch=NotOlderThan&allowWatchBookmarks=true", 3
    )
    assert _summary(events)[:2] == [("ADDED", "a"), ("BOOKMARK", "")]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}
    assert events[2]["type"] == "BOOKMARK"  # idle streams get periodic bookmarks (interval 0.2s here)
    assert int(events[2]["object"]["metadata"]["resourceVersion"]) >= int(
        events[0]["object"]["metadata"]["resourceVersion"]
    )


async def test_table_watch_sends_columns_once(api: Api, sim: SimCluster) -> None:
    await sim.create(pod("a"))

    async def changes() -> None:
        await sim.create(pod("b"))

    events = await collect(api, "", 2, changes, accept=TABLE)
    assert [e["object"]["kind"] for e in events] == ["Table", "Table"]
    assert "columnDefinitions" in events[0]["object"] and "columnDefinitions" not in events[1]["object"]
    assert [e["object"]["rows"][0]["cells"][0] for e in events] == ["a", "b"]
