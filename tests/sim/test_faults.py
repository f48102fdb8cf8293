"""The stand-in's fault layer (costwarden.sim.faults): what each fault answers, on which requests,
reproducibly from a seed, and the ``--faults`` text of ``costwarden sim serve``."""

from __future__ import annotations

import argparse
import asyncio
import json
import time

import aiohttp
import pytest

from costwarden.sim import cli
from costwarden.sim.cluster import SimCluster
from costwarden.sim.faults import FaultInjector, Faults, FaultSpecError
from tests.sim.conftest import Api
from tests.sim.crd import pod

PODS = "/api/v1/namespaces/default/pods"


async def faulted(sim: SimCluster, api: Api, faults: Faults) -> Api:
    sim.set_faults(faults)
    return api


def test_the_spec_text_round_trips_and_names_what_is_wrong() -> None:
    text = "error=0.05,throttle=0.05:2,delay=0.1:0.5,conflict=0.05,gone=0.02,lost=0.01,cut-watch=20:10,seed=7"
    faults = Faults.parse(text)
    assert faults == Faults(
        error=0.05,
        throttle=0.05,
        retry_after=2,
        delay=0.1,
        delay_s=0.5,
        conflict=0.05,
        gone=0.02,
        lost=0.01,
        cut_watch=20,
        cut_watch_s=10,
        seed=7,
    )
    assert Faults.parse(faults.spec()) == faults
    assert Faults.parse("") == Faults() and not Faults().any
    assert Faults.parse("cut-watch=0:5").cut_watch_s == 5 and Faults.parse("cut-watch=0:5").any
    for bad, said in (
        ("error=2", "between 0 and 1"),
        ("errors=0.1", "no such fault"),
        ("error", "NAME=VALUE"),
        ("delay=x", "not a number"),
        ("cut-watch=-1", "negative"),
    ):
        with pytest.raises(FaultSpecError, match=said):
            Faults.parse(bad)
    assert Faults.parse(text).only("gone") == Faults(gone=0.02, retry_after=2, delay_s=0.5, seed=7)


def test_the_command_line_reads_faults() -> None:
    parser = argparse.ArgumentParser()
    cli.add_subparser(parser.add_subparsers())
    args = parser.parse_args(["sim", "serve", "--faults", "error=0.1,seed=3"])
    assert args.faults == Faults(error=0.1, seed=3)
    with pytest.raises(SystemExit):
        parser.parse_args(["sim", "serve", "--faults", "error=7"])


def test_decisions_are_reproducible_per_request_and_near_their_shares() -> None:
    def decisions(seed: int, paths: list[str]) -> list[bool]:
        injector = FaultInjector(Faults(error=0.3, seed=seed))
        return [injector.plan("GET", path, {}).answer is not None for path in paths]

    paths = [f"{PODS}/p{i % 7}" for i in range(1000)]
    first = decisions(7, paths)
    assert decisions(7, paths) == first
    assert decisions(8, paths) != first
    assert 250 < sum(first) < 350
    # another path's requests in between change nothing for this path's n-th request
    mixed = [p for path in paths for p in (path, "/api/v1/nodes")]
    assert decisions(7, mixed)[::2] == first


async def test_errors_throttles_and_conflicts_are_answered_and_counted(sim: SimCluster, api: Api) -> None:
    await sim.create(pod("a"))
    sim.set_faults(Faults(error=1.0))
    failed = await api.get(PODS)
    assert failed.status == 500 and failed.body["reason"] == "InternalError"
    assert (await api.get("/api/v1")).status == 200  # discovery is never faulted
    assert (await api.get("/version")).status == 200

    sim.set_faults(Faults(throttle=1.0, retry_after=3))
    throttled = await api.get(f"{PODS}/a")
    assert throttled.status == 429 and throttled.headers["Retry-After"] == "3"
    assert throttled.body["details"] == {"retryAfterSeconds": 3}

    sim.set_faults(Faults(conflict=1.0))
    assert (await api.get(f"{PODS}/a")).status == 200  # reads are never conflicts
    refused = await api.patch(f"{PODS}/a", {"metadata": {"labels": {"x": "1"}}})
    assert refused.status == 409 and refused.body["reason"] == "Conflict"
    assert "x" not in ((await sim.get("v1", "pods", "a")) or {})["metadata"].get("labels", {})
    assert sim.fault_counts() == {"requests": 2, "conflict": 1}
    sim.set_faults(None)
    assert sim.fault_counts() == {}


async def test_a_lost_write_is_carried_out_and_answered_504(sim: SimCluster, api: Api) -> None:
    sim.set_faults(Faults(lost=1.0))
    answer = await api.post(PODS, pod("b"))
    assert answer.status == 504 and answer.body["reason"] == "Timeout"
    assert await sim.get("v1", "pods", "b") is not None
    again = await api.post(PODS, pod("b"))  # the client's retry meets its own write
    assert again.status == 409 and again.body["reason"] == "AlreadyExists"
    assert sim.fault_counts()["lost"] == 1  # a refused write is not lost


async def test_a_slow_request_is_served_late(sim: SimCluster, api: Api) -> None:
    sim.set_faults(Faults(delay=1.0, delay_s=0.3))
    started = time.monotonic()
    assert (await api.get(PODS)).status == 200
    assert time.monotonic() - started >= 0.3


async def test_gone_makes_watches_from_a_version_and_continued_lists_start_over(
    sim: SimCluster, api: Api
) -> None:
    created = await sim.create(pod("a"))
    sim.set_faults(Faults(gone=1.0))
    rv = created["metadata"]["resourceVersion"]
    async with asyncio.timeout(5), api.session.get(f"{PODS}?watch=true&resourceVersion={rv}") as response:
        assert response.status == 200
        events = [json.loads(line) async for line in response.content if line.strip()]
    assert [(e["type"], e["object"]["code"], e["object"]["reason"]) for e in events] == [
        ("ERROR", 410, "Expired")
    ]
    listed = await api.get(f"{PODS}?limit=1&continue=eyJzdGFydCI6IDF9")
    assert listed.status == 410 and listed.body["reason"] == "Expired"
    assert (await api.get(f"{PODS}?limit=1")).status == 200  # a fresh list is always served
    async with asyncio.timeout(5), api.session.get(f"{PODS}?watch=true&timeoutSeconds=1") as response:
        fresh = [json.loads(line) async for line in response.content if line.strip()]
    assert [e["type"] for e in fresh] == ["ADDED"]  # a watch without a version has nothing to expire


async def test_watch_streams_are_cut_mid_event(sim: SimCluster, api: Api) -> None:
    for name in "abc":
        await sim.create(pod(name))
    sim.set_faults(Faults(cut_watch=2))
    received: list[bytes] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async with asyncio.timeout(5), api.session.get(f"{PODS}?watch=true") as response:
            async for line in response.content:
                received.append(line)
    whole = [json.loads(line)["object"]["metadata"]["name"] for line in received if line.endswith(b"\n")]
    assert whole == ["a", "b"]
    assert sim.fault_counts()["cut_watch"] == 1

    sim.set_faults(Faults(cut_watch_s=0.3))
    started = time.monotonic()
    with pytest.raises(aiohttp.ClientPayloadError):
        async with asyncio.timeout(5), api.session.get(f"{PODS}?watch=true") as response:
            async for _ in response.content:
                pass
    assert 0.3 <= time.monotonic() - started < 3
    assert not sim.store._subscriptions.get(("", "pods"))  # the cut streams let go of the store


async def test_a_busy_watch_is_cut_on_time(sim: SimCluster, api: Api) -> None:
    """The time limit holds while events keep coming (it is no cancellation that a change
    arriving at the same moment could swallow)."""
    await sim.create(pod("a"))

    async def churn() -> None:
        for i in range(10_000):
            await sim.patch("v1", "pods", "a", {"metadata": {"labels": {"n": str(i)}}})
            await asyncio.sleep(0.01)

    sim.set_faults(Faults(cut_watch_s=0.3))
    busy = asyncio.create_task(churn())
    try:
        for _ in range(3):
            started = time.monotonic()
            with pytest.raises(aiohttp.ClientPayloadError):
                async with asyncio.timeout(5), api.session.get(f"{PODS}?watch=true") as response:
                    async for _ in response.content:
                        pass
            assert time.monotonic() - started < 2
    finally:
        busy.cancel()
    assert sim.fault_counts()["cut_watch"] == 3
