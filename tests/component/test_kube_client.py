"""``KubeClient`` on kubernetes_asyncio against the API stand-in: configuration, leases, lists,
watches, budgets, and the client's life on its event loop."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import textwrap
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Any

import kmock
import pytest
import yaml
from kubernetes_asyncio.config import ConfigException

from costwarden.operator.kube import KubeClient, KubeError, WriteResult, bearer_token, load_configuration
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.component.conftest import load_crd

NS = "research"
LEASES = kmock.resource("coordination.k8s.io", "v1", "leases")


@pytest.fixture
def sim() -> Iterator[ThreadedSimCluster]:
    with ThreadedSimCluster(history_limit=5) as cluster:
        cluster.create(shapes.namespace(NS))
        yield cluster


def lease(holder: str, resource_version: str | None = None) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": "costwarden", "namespace": NS}
    if resource_version is not None:
        metadata["resourceVersion"] = resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": metadata,
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    }


# ---- configuration


def test_configuration_loads_without_an_event_loop(sim):
    configuration = load_configuration(sim.kubeconfig)
    assert configuration.host == sim.url
    assert bearer_token(configuration) == "costwarden-sim-token"


async def test_configuration_loads_inside_a_running_loop(sim):
    configuration = load_configuration(sim.kubeconfig)  # the async loader runs on its own loop
    assert bearer_token(configuration) == "costwarden-sim-token"


def test_a_missing_kubeconfig_is_named(tmp_path):
    with pytest.raises(ConfigException, match=f"no kubeconfig file at {tmp_path / 'absent'}"):
        load_configuration(tmp_path / "absent")


def exec_kubeconfig(sim: ThreadedSimCluster, tmp_path: Path, expires: str) -> Path:
    """A kubeconfig whose credentials come from an exec plugin that counts its runs."""
    plugin = tmp_path / "plugin.py"
    plugin.write_text(
        textwrap.dedent(
            f"""
            import json, pathlib
            runs = pathlib.Path({str(tmp_path / "runs")!r})
            count = len(runs.read_text()) + 1 if runs.exists() else 1
            runs.write_text("x" * count)
            print(json.dumps({{
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "kind": "ExecCredential",
                "status": {{"token": f"exec-token-{{count}}", "expirationTimestamp": {expires!r}}},
            }}))
            """
        )
    )
    document = yaml.safe_load(sim.kubeconfig.read_text())
    document["users"][0]["user"] = {
        "exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": sys.executable,
            "args": [str(plugin)],
        }
    }
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(document))
    return path


def authorizations(sim: ThreadedSimCluster) -> list[str]:
    return [r.headers.get("Authorization", "") for r in sim.cluster.emulator["get", LEASES]]


async def test_an_exec_plugin_token_is_used_and_renewed_once_expired(sim, tmp_path):
    configuration = load_configuration(exec_kubeconfig(sim, tmp_path, "2001-01-01T00:00:00Z"))
    assert bearer_token(configuration) == "exec-token-1"  # kopf's login reads it synchronously
    client = KubeClient(configuration)
    try:
        await client.read_lease(NS, "costwarden")
        await client.read_lease(NS, "costwarden")
    finally:
        await client.close()
    assert authorizations(sim) == ["Bearer exec-token-2", "Bearer exec-token-3"]  # expired: rerun


async def test_an_exec_plugin_token_is_kept_until_it_expires(sim, tmp_path):
    configuration = load_configuration(exec_kubeconfig(sim, tmp_path, "2999-01-01T00:00:00Z"))
    client = KubeClient(configuration)
    try:
        await client.read_lease(NS, "costwarden")
        await client.read_lease(NS, "costwarden")
    finally:
        await client.close()
    assert authorizations(sim) == ["Bearer exec-token-1", "Bearer exec-token-1"]


# ---- leases


async def test_lease_create_read_replace_with_preconditions(kube):
    assert await kube.read_lease(NS, "costwarden") is None
    assert await kube.replace_lease(NS, "costwarden", lease("a", "1")) is WriteResult.GONE
    assert await kube.create_lease(NS, lease("a")) is WriteResult.DONE
    assert await kube.create_lease(NS, lease("b")) is WriteResult.CONFLICT  # someone was first

    stored = await kube.read_lease(NS, "costwarden")
    assert stored is not None and stored["spec"]["holderIdentity"] == "a"
    version = stored["metadata"]["resourceVersion"]
    assert await kube.replace_lease(NS, "costwarden", lease("b", version)) is WriteResult.DONE
    assert await kube.replace_lease(NS, "costwarden", lease("c", version)) is WriteResult.CONFLICT  # stale
    stored = await kube.read_lease(NS, "costwarden")
    assert stored is not None and stored["spec"]["holderIdentity"] == "b"


async def test_lease_writes_happen_in_dry_run_other_writes_do_not(sim, dry_kube):
    sim.create(shapes.plain_pod("p", namespace=NS, node="n"))
    assert await dry_kube.create_lease(NS, lease("dry")) is WriteResult.DONE
    stored = await dry_kube.read_lease(NS, "costwarden")
    assert stored is not None
    renewed = lease("dry", stored["metadata"]["resourceVersion"])
    assert await dry_kube.replace_lease(NS, "costwarden", renewed) is WriteResult.DONE
    assert await dry_kube.patch_pod_annotations(NS, "p", {"a": "b"}) is WriteResult.DRY_RUN
    assert list(sim.cluster.emulator["patch"]) == []


# ---- budgets and lists


async def test_read_budget_and_list_budgets(sim, kube):
    sim.create(load_crd())
    for name in ("a", "b", "c"):
        sim.create(
            {
                "apiVersion": "costwarden.dev/v1alpha1",
                "kind": "CostBudget",
                "metadata": {"name": name, "namespace": NS},
                "spec": {"limit": 10},
            }
        )
    budget = await kube.read_budget(NS, "b")
    assert budget is not None and budget["spec"]["limit"] == 10
    assert await kube.read_budget(NS, "absent") is None
    assert sorted(b["metadata"]["name"] for b in await kube.list_budgets()) == ["a", "b", "c"]
    assert len(await kube.list_budgets(NS)) == 3 and await kube.list_budgets("default") == []


async def test_list_raw_pages_and_list_pods_follows_them(sim, kube):
    for p in range(5):
        sim.create(shapes.plain_pod(f"p{p}", namespace=NS, node="n"))
    first = await kube.list_raw("pods", namespace=NS, limit=2)
    second = await kube.list_raw("pods", namespace=NS, limit=2, continue_token=first["metadata"]["continue"])
    assert [p["metadata"]["name"] for p in first["items"] + second["items"]] == ["p0", "p1", "p2", "p3"]
    assert first["metadata"]["resourceVersion"]
    assert len(await kube.list_pods()) == 5 and await kube.list_pods("default") == []
    with pytest.raises(ValueError, match="nodes are cluster-scoped"):
        await kube.list_raw("nodes", namespace=NS)
    with pytest.raises(ValueError, match="cannot list or watch 'secrets'"):
        await kube.list_raw("secrets")


# ---- watches


async def first_events(stream: AsyncGenerator[dict[str, Any], None], count: int) -> list[dict[str, Any]]:
    events = []
    async with asyncio.timeout(10), contextlib.aclosing(stream) as opened:
        async for event in opened:
            events.append(event)
            if len(events) == count:
                break
    return events


async def test_watch_raw_streams_events_from_a_resource_version(sim, kube):
    sim.create(shapes.plain_pod("p0", namespace=NS, node="n"))
    listed = await kube.list_raw("pods")
    sim.create(shapes.plain_pod("p1", namespace=NS, node="n"))
    sim.delete("v1", "pods", "p0", NS)
    events = await first_events(kube.watch_raw("pods", listed["metadata"]["resourceVersion"], 5), 2)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [
        ("ADDED", "p1"),
        ("DELETED", "p0"),
    ]
    request = list(sim.cluster.emulator["watch"])[-1]
    assert request.params["allowWatchBookmarks"] == "true" and request.params["timeoutSeconds"] == "5"


async def test_a_too_old_resource_version_arrives_as_an_error_event(sim, kube):
    for p in range(8):  # more than the stand-in's history of 5
        sim.create(shapes.plain_pod(f"p{p}", namespace=NS, node="n"))
    events = await first_events(kube.watch_raw("pods", "1", 5, namespace=NS), 1)
    assert events[0]["type"] == "ERROR" and events[0]["object"]["code"] == 410


async def test_a_refused_watch_raises_with_its_status(sim, kube):
    sim.cluster.emulator["watch", kmock.resource("", "v1", "nodes")] << 403
    with pytest.raises(KubeError, match="watch of nodes from resourceVersion 0: forbidden") as refused:
        await first_events(kube.watch_raw("nodes", "0", 5), 1)
    assert refused.value.status == 403


async def test_a_throttled_read_carries_retry_after(sim, kube):
    sim.cluster.emulator["get", LEASES] << 429 << {"Retry-After": "7"}
    with pytest.raises(KubeError, match="Lease research/costwarden: throttled") as throttled:
        await kube.read_lease(NS, "costwarden")
    assert (throttled.value.status, throttled.value.retry_after, kube.last_retry_after) == (429, 7.0, 7.0)


async def test_a_body_is_returned_as_sent_even_with_fields_the_models_do_not_know(sim, kube):
    sim.cluster.emulator["get", LEASES] << {"kind": "Lease", "spec": {"holderIdentity": "a", "future": 1}}
    assert await kube.read_lease(NS, "costwarden") == {
        "kind": "Lease",
        "spec": {"holderIdentity": "a", "future": 1},
    }


# ---- the client's life


async def test_close_then_use_again_opens_a_new_session(sim, kube):
    assert await kube.read_lease(NS, "x") is None
    await kube.close()
    assert await kube.read_lease(NS, "x") is None


def test_a_client_serves_the_loop_it_was_first_used_on(sim):
    client = KubeClient(load_configuration(sim.kubeconfig))

    async def read() -> Any:
        return await client.read_lease(NS, "x")

    fresh = asyncio.new_event_loop
    with asyncio.Runner(loop_factory=fresh) as first, asyncio.Runner(loop_factory=fresh) as second:
        assert first.run(read()) is None
        with pytest.raises(RuntimeError, match="was first used on another event loop"):
            second.run(read())
        first.run(client.close())


# ---- the environment's proxies (aiohttp's trust_env)


def _dead_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # the discard port: nothing answers
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")


async def test_without_proxy_variables_or_netrc_requests_do_not_look_them_up(sim, monkeypatch, tmp_path):
    for name in ("HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "absent-netrc"))
    client = KubeClient(load_configuration(sim.kubeconfig))
    try:
        assert client.trust_env is False
        assert await client.read_budget(NS, "absent") is None
        assert client._apis().client.rest_client.pool_manager.trust_env is False
    finally:
        await client.close()


async def test_a_proxy_variable_set_is_honoured(sim, monkeypatch):
    """HTTP_PROXY names a proxy that is not there: the client goes through it, and fails."""
    _dead_proxy(monkeypatch)
    client = KubeClient(load_configuration(sim.kubeconfig))
    try:
        assert client.trust_env is True
        with pytest.raises(KubeError):
            await client.read_budget(NS, "absent")
    finally:
        await client.close()


async def test_trust_env_false_goes_direct_whatever_the_environment_says(sim, monkeypatch):
    _dead_proxy(monkeypatch)
    client = KubeClient(load_configuration(sim.kubeconfig), trust_env=False)
    try:
        assert await client.read_budget(NS, "absent") is None
    finally:
        await client.close()
