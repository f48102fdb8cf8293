from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest

from costwarden.sim.cluster import SimCluster
from costwarden.sim.testing import ThreadedSimCluster
from tests.clock import ManualClock
from tests.sim.crd import budget_crd

T0 = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
TABLE = ",".join(
    [
        "application/json;as=Table;v=v1;g=meta.k8s.io",
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
        "application/json",
    ]
)


@dataclass
class Reply:
    status: int
    body: Any
    headers: Any


class Api:
    """A thin HTTP client for the stand-in: JSON in, (status, JSON, headers) out."""

    def __init__(self, session: aiohttp.ClientSession) -> None:
        self.session = session

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        content_type: str = "application/json",
        accept: str = "application/json",
    ) -> Reply:
        data = None if body is None else (body if isinstance(body, str) else json.dumps(body))
        headers = {"Content-Type": content_type, "Accept": accept}
        async with self.session.request(method, path, data=data, headers=headers) as response:
            text = await response.text()
            parsed = json.loads(text) if text and response.content_type == "application/json" else text
            return Reply(response.status, parsed, response.headers)

    async def get(self, path: str, accept: str = "application/json") -> Reply:
        return await self.call("GET", path, accept=accept)

    async def post(self, path: str, body: Any) -> Reply:
        return await self.call("POST", path, body)

    async def put(self, path: str, body: Any) -> Reply:
        return await self.call("PUT", path, body)

    async def patch(self, path: str, body: Any, content_type: str = "application/merge-patch+json") -> Reply:
        return await self.call("PATCH", path, body, content_type)

    async def delete(self, path: str, body: Any = None) -> Reply:
        return await self.call("DELETE", path, body)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
async def sim(clock: ManualClock) -> AsyncIterator[SimCluster]:
    async with SimCluster(clock=clock, bookmark_interval=0.2) as cluster:
        await cluster.create(budget_crd())
        yield cluster


@pytest.fixture
async def api(sim: SimCluster) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession(sim.url) as session:
        yield Api(session)


@pytest.fixture
def threaded() -> Iterator[ThreadedSimCluster]:
    with ThreadedSimCluster() as cluster:
        cluster.create(budget_crd())
        yield cluster
