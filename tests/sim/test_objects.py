"""Object semantics through HTTP: metadata, resourceVersion, subresources, finalizers, errors."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from costwarden.sim.cluster import SimCluster
from tests.clock import ManualClock
from tests.sim.conftest import Api
from tests.sim.crd import API_VERSION, budget, pod

PODS = "/api/v1/namespaces/default/pods"
BUDGETS = f"/apis/{API_VERSION}/namespaces/default/budgets"


async def test_create_fills_metadata_and_bumps_the_cluster_resource_version(api: Api) -> None:
    first = await api.post(PODS, pod("a"))
    second = await api.post(PODS, {**pod("ignored"), "metadata": {"generateName": "worker-"}})
    assert first.status == 201 and second.status == 201
    meta = first.body["metadata"]
    assert len(meta["uid"]) == 36 and meta["creationTimestamp"] == "2026-11-26T12:00:00Z"
    assert meta["generation"] == 1
    assert int(second.body["metadata"]["resourceVersion"]) == int(meta["resourceVersion"]) + 1
    assert (
        second.body["metadata"]["name"].startswith("worker-") and len(second.body["metadata"]["name"]) == 12
    )
    assert first.body["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


async def test_kind_and_api_version_default_from_the_url(api: Api) -> None:
    event = {"metadata": {"generateName": "kopf-event-"}, "reason": "Seen", "involvedObject": {"name": "a"}}
    reply = await api.post("/api/v1/namespaces/default/events", event)
    assert reply.status == 201
    assert (reply.body["apiVersion"], reply.body["kind"]) == ("v1", "Event")


async def test_errors_are_status_objects(api: Api) -> None:
    await api.post(PODS, pod("a"))
    duplicate = await api.post(PODS, pod("a"))
    missing = await api.get(f"{BUDGETS}/nope")
    no_namespace = await api.post("/api/v1/namespaces/ghost/pods", pod("a", namespace="ghost"))
    assert duplicate.status == 409 and duplicate.body["reason"] == "AlreadyExists"
    assert duplicate.body["message"] == 'pods "a" already exists'
    assert (
        missing.status == 404 and missing.body["message"] == 'budgets.testing.costwarden.dev "nope" not found'
    )
    assert missing.body["details"] == {"name": "nope", "group": "testing.costwarden.dev", "kind": "budgets"}
    assert {k: missing.body[k] for k in ("kind", "apiVersion", "status", "code")} == {
        "kind": "Status",
        "apiVersion": "v1",
        "status": "Failure",
        "code": 404,
    }
    assert no_namespace.status == 404 and no_namespace.body["message"] == 'namespaces "ghost" not found'


async def test_stale_resource_version_conflicts_on_put_and_patch(api: Api) -> None:
    created = (await api.post(BUDGETS, budget("b"))).body
    stale = created["metadata"]["resourceVersion"]
    updated = await api.patch(f"{BUDGETS}/b", {"spec": {"limit": 5}})
    assert updated.status == 200
    put = await api.put(f"{BUDGETS}/b", {**created, "spec": {"limit": 7}})
    patch = await api.patch(f"{BUDGETS}/b", {"metadata": {"resourceVersion": stale}, "spec": {"limit": 8}})
    assert put.status == 409 and put.body["reason"] == "Conflict"
    assert patch.status == 409
    assert "the object has been modified" in put.body["message"]


async def test_a_status_merge_patch_with_a_stale_resource_version_conflicts(api: Api) -> None:
    """As the API server: metadata.resourceVersion in a merge patch of the status subresource is
    a precondition; any write since (a status write, a spec change) makes it 409 Conflict and
    nothing is written, even when the patch would change nothing."""
    created = (await api.post(BUDGETS, budget("b"))).body
    first = created["metadata"]["resourceVersion"]
    written = await api.patch(
        f"{BUDGETS}/b/status", {"metadata": {"resourceVersion": first}, "status": {"spend": 1}}
    )
    assert written.status == 200 and written.body["status"] == {"spend": 1}
    second = written.body["metadata"]["resourceVersion"]
    assert second != first

    late = await api.patch(
        f"{BUDGETS}/b/status", {"metadata": {"resourceVersion": first}, "status": {"spend": 9}}
    )
    assert late.status == 409 and late.body["reason"] == "Conflict"
    assert late.body["message"] == (
        'Operation cannot be fulfilled on budgets.testing.costwarden.dev "b": '
        "the object has been modified; please apply your changes to the latest version and try again"
    )
    same = await api.patch(
        f"{BUDGETS}/b/status", {"metadata": {"resourceVersion": first}, "status": {"spend": 1}}
    )
    assert same.status == 409

    spec = await api.patch(f"{BUDGETS}/b", {"spec": {"limit": 5}})  # a user's edit moves it too
    third = spec.body["metadata"]["resourceVersion"]
    after_edit = await api.patch(
        f"{BUDGETS}/b/status", {"metadata": {"resourceVersion": second}, "status": {"spend": 2}}
    )
    assert after_edit.status == 409
    stored = await api.get(f"{BUDGETS}/b")
    assert stored.body["status"] == {"spend": 1} and stored.body["metadata"]["resourceVersion"] == third

    current = await api.patch(
        f"{BUDGETS}/b/status", {"metadata": {"resourceVersion": third}, "status": {"spend": 2}}
    )
    assert current.status == 200 and current.body["status"] == {"spend": 2}
    assert current.body["spec"]["limit"] == 5


async def test_failed_json_patch_test_is_422(api: Api) -> None:
    created = (await api.post(BUDGETS, budget("b"))).body
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": "1"},
        {"op": "replace", "path": "/spec/limit", "value": 1},
    ]
    failed = await api.patch(f"{BUDGETS}/b", ops, "application/json-patch+json")
    ops[0]["value"] = created["metadata"]["resourceVersion"]
    passed = await api.patch(f"{BUDGETS}/b", ops, "application/json-patch+json")
    assert failed.status == 422 and failed.body["reason"] == "Invalid"
    assert passed.status == 200 and passed.body["spec"]["limit"] == 1


async def test_generation_moves_on_spec_changes_only(api: Api) -> None:
    await api.post(BUDGETS, budget("b"))
    labelled = await api.patch(f"{BUDGETS}/b", {"metadata": {"labels": {"x": "y"}}})
    status = await api.patch(f"{BUDGETS}/b/status", {"status": {"spend": 3}})
    spec = await api.patch(f"{BUDGETS}/b", {"spec": {"limit": 9}})
    assert labelled.body["metadata"]["generation"] == 1
    assert status.body["metadata"]["generation"] == 1
    assert spec.body["metadata"]["generation"] == 2


async def test_noop_write_keeps_the_resource_version(api: Api) -> None:
    created = (await api.post(BUDGETS, budget("b", limit=5))).body
    same = await api.patch(f"{BUDGETS}/b", {"spec": {"limit": 5}})
    assert same.body["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def test_status_subresource_splits_writes(api: Api) -> None:
    created = await api.post(BUDGETS, {**budget("b"), "status": {"spend": 99}})
    assert "status" not in created.body
    main = await api.patch(f"{BUDGETS}/b", {"spec": {"limit": 2}, "status": {"spend": 1}})
    assert "status" not in main.body and main.body["spec"]["limit"] == 2
    status = await api.patch(f"{BUDGETS}/b/status", {"spec": {"limit": 3}, "status": {"spend": 1.5}})
    assert status.body["status"] == {"spend": 1.5} and status.body["spec"]["limit"] == 2
    replaced = await api.put(f"{BUDGETS}/b/status", {**status.body, "status": {"spend": 2.5}})
    assert replaced.body["status"] == {"spend": 2.5}
    pod_status = await api.post(PODS, {**pod("a"), "status": {"phase": "Running"}})
    assert pod_status.body["status"]["phase"] == "Pending"
    running = await api.patch(
        f"{PODS}/a/status", {"status": {"phase": "Running", "containerStatuses": [{"name": "main"}]}}
    )
    assert running.body["status"]["phase"] == "Running"
    # Go serializes these even when zero; typed clients (kubernetes Python client) require them
    assert running.body["status"]["containerStatuses"] == [
        {"name": "main", "ready": False, "restartCount": 0, "image": "", "imageID": ""}
    ]
    assert running.body["spec"]["containers"][0]["imagePullPolicy"] == "Always"


async def test_finalizers_hold_deletion_until_removed(api: Api, clock: ManualClock) -> None:
    await api.post(BUDGETS, {**budget("b"), "metadata": {"name": "b", "finalizers": ["x/y"]}})
    clock.advance(timedelta(minutes=1))
    deleting = await api.delete(f"{BUDGETS}/b", {"gracePeriodSeconds": 0, "propagationPolicy": "Background"})
    assert deleting.status == 200
    assert deleting.body["metadata"]["deletionTimestamp"] == "2026-11-26T12:01:00Z"
    assert (await api.get(f"{BUDGETS}/b")).status == 200
    more = await api.patch(f"{BUDGETS}/b", {"metadata": {"finalizers": ["x/y", "x/z"]}})
    assert more.status == 422
    released = await api.patch(f"{BUDGETS}/b", {"metadata": {"finalizers": None}})
    assert released.status == 200
    assert (await api.get(f"{BUDGETS}/b")).status == 404


async def test_eviction_and_events_k8s_io(api: Api) -> None:
    await api.post(PODS, pod("a"))
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "a"}, "deleteOptions": {}}
    evicted = await api.post(f"{PODS}/a/eviction", eviction)
    assert evicted.status == 201 and evicted.body["status"] == "Success"
    assert (await api.get(f"{PODS}/a")).status == 404
    assert (await api.get(f"{PODS}/a/eviction")).status in (404, 405)
    event = {
        "metadata": {"generateName": "x-"},
        "eventTime": "2026-11-26T12:00:00.000000Z",
        "reason": "Killed",
        "action": "Delete",
        "reportingController": "costwarden.dev/operator",
        "reportingInstance": "costwarden-0",
        "regarding": {"kind": "Pod", "name": "a", "namespace": "default"},
        "type": "Warning",
    }
    posted = await api.post("/apis/events.k8s.io/v1/namespaces/default/events", event)
    assert posted.status == 201 and posted.body["apiVersion"] == "events.k8s.io/v1"
    listed = await api.get("/apis/events.k8s.io/v1/events?fieldSelector=reason%3DKilled")
    assert [e["regarding"]["name"] for e in listed.body["items"]] == ["a"]


async def test_delete_preconditions_and_dry_run(api: Api) -> None:
    created = (await api.post(PODS, pod("a"))).body
    wrong = await api.delete(f"{PODS}/a", {"preconditions": {"uid": "other"}})
    dry = await api.call("DELETE", f"{PODS}/a?dryRun=All")
    assert wrong.status == 409 and dry.status == 200
    assert (await api.get(f"{PODS}/a")).body["metadata"]["uid"] == created["metadata"]["uid"]
    dry_create = await api.post(f"{PODS}?dryRun=All", pod("b"))
    assert dry_create.status == 201 and (await api.get(f"{PODS}/b")).status == 404


async def test_patch_flavours(api: Api) -> None:
    spec = {
        "containers": [
            {"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]},
            {"name": "b", "image": "y"},
        ]
    }
    await api.post(
        "/apis/apps/v1/namespaces/default/deployments",
        {"metadata": {"name": "d"}, "spec": {"template": {"spec": spec}}},
    )
    strategic = {
        "spec": {"template": {"spec": {"containers": [{"name": "a", "env": [{"name": "B", "value": "2"}]}]}}}
    }
    reply = await api.patch(
        "/apis/apps/v1/namespaces/default/deployments/d", strategic, "application/strategic-merge-patch+json"
    )
    containers = reply.body["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["a", "b"]
    assert containers[0]["env"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    assert reply.body["spec"]["replicas"] == 1
    refused = await api.patch(f"{BUDGETS}/b", {"spec": {}}, "application/strategic-merge-patch+json")
    assert refused.status == 415


async def test_server_side_apply_creates_then_merges(api: Api) -> None:
    applied = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata: {a: '1'}\n"
    first = await api.call(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c?fieldManager=t",
        applied,
        "application/apply-patch+yaml",
    )
    again = await api.call(
        "PATCH",
        "/api/v1/namespaces/default/configmaps/c?fieldManager=t",
        applied.replace("a: '1'", "b: '2'"),
        "application/apply-patch+yaml",
    )
    assert first.status == 201 and again.status == 200
    assert again.body["data"] == {"a": "1", "b": "2"}


async def test_scale_subresource(api: Api) -> None:
    deployments = "/apis/apps/v1/namespaces/default/deployments"
    await api.post(
        deployments,
        {"metadata": {"name": "d"}, "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "d"}}}},
    )
    scale = await api.get(f"{deployments}/d/scale")
    assert (scale.body["kind"], scale.body["apiVersion"]) == ("Scale", "autoscaling/v1")
    assert scale.body["spec"] == {"replicas": 2} and scale.body["status"]["selector"] == "app=d"
    patched = await api.patch(f"{deployments}/d/scale", {"spec": {"replicas": 0}})
    assert patched.body["spec"]["replicas"] == 0
    assert (await api.get(f"{deployments}/d")).body["spec"]["replicas"] == 0


async def test_namespace_deletion_cascades(api: Api, sim: SimCluster) -> None:
    await api.post("/api/v1/namespaces", {"metadata": {"name": "team"}})
    await api.post("/api/v1/namespaces/team/pods", pod("a", namespace="team"))
    await sim.create(
        {
            **budget("held", namespace="team"),
            "metadata": {"name": "held", "namespace": "team", "finalizers": ["x/y"]},
        }
    )
    deleting = await api.delete("/api/v1/namespaces/team")
    assert deleting.body["status"]["phase"] == "Terminating"
    refused = await api.post("/api/v1/namespaces/team/pods", pod("b", namespace="team"))
    assert refused.status == 403
    assert (await api.get("/api/v1/namespaces/team/pods/a")).status == 404
    await sim.patch(API_VERSION, "budgets", "held", {"metadata": {"finalizers": []}}, namespace="team")
    assert (await api.get("/api/v1/namespaces/team")).status == 404
    assert (await api.delete("/api/v1/namespaces/default")).status == 403


async def test_lists_are_typed_and_cluster_wide(api: Api) -> None:
    await api.post("/api/v1/namespaces", {"metadata": {"name": "other"}})
    await api.post(PODS, pod("a"))
    await api.post("/api/v1/namespaces/other/pods", pod("b", namespace="other"))
    everywhere = await api.get("/api/v1/pods")
    here = await api.get(PODS)
    assert everywhere.body["kind"] == "PodList" and everywhere.body["apiVersion"] == "v1"
    assert int(everywhere.body["metadata"]["resourceVersion"]) > 0
    assert [p["metadata"]["name"] for p in everywhere.body["items"]] == ["a", "b"]
    assert [p["metadata"]["name"] for p in here.body["items"]] == ["a"]
    assert {n["metadata"]["name"] for n in (await api.get("/api/v1/namespaces")).body["items"]} >= {
        "default",
        "kube-system",
    }


async def test_list_pagination(api: Api) -> None:
    for name in "abcde":
        await api.post(PODS, pod(name))
    first = await api.get(f"{PODS}?limit=2")
    assert [p["metadata"]["name"] for p in first.body["items"]] == ["a", "b"]
    token = first.body["metadata"]["continue"]
    rest = await api.get(f"{PODS}?limit=10&continue={token}")
    assert [p["metadata"]["name"] for p in rest.body["items"]] == ["c", "d", "e"]
    assert "continue" not in rest.body["metadata"]


async def test_selectors_on_lists(api: Api) -> None:
    await api.post(PODS, pod("a", labels={"app": "x", "tier": "web"}, nodeName="n1"))
    await api.post(PODS, pod("b", labels={"app": "y"}))
    await api.patch(f"{PODS}/b/status", {"status": {"phase": "Running"}})

    async def names(query: str) -> list[str]:
        return [p["metadata"]["name"] for p in (await api.get(f"/api/v1/pods?{query}")).body["items"]]

    assert await names("labelSelector=app%3Dx") == ["a"]
    assert await names("labelSelector=app%20in%20(x,y),!tier") == ["b"]
    assert await names("fieldSelector=spec.nodeName%3Dn1") == ["a"]
    assert await names("fieldSelector=status.phase%3DRunning,metadata.namespace%3Ddefault") == ["b"]
    assert await names("fieldSelector=metadata.name!%3Da") == ["b"]
    unsupported = await api.get("/api/v1/pods?fieldSelector=spec.bogus%3D1")
    assert unsupported.status == 400 and "field label not supported" in unsupported.body["message"]


async def test_in_process_calls_share_the_http_path(sim: SimCluster, api: Api) -> None:
    created = await sim.create(budget("b"))
    patched = await sim.patch(API_VERSION, "budgets", "b", {"status": {"spend": 4}}, subresource="status")
    over_http = await api.get(f"{BUDGETS}/b")
    assert over_http.body == patched
    assert int(patched["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])
    assert [b["metadata"]["name"] for b in await sim.list(API_VERSION, "budgets")] == ["b"]
    await sim.delete(API_VERSION, "Budget", "b")
    assert await sim.get(API_VERSION, "budgets", "b") is None
