"""Discovery, /version and /openapi/v3: what kopf's scanner and kubectl's RESTMapper read."""

from __future__ import annotations

from typing import Any

from costwarden.sim.cluster import SimCluster
from tests.sim.conftest import Api
from tests.sim.crd import GROUP, budget_crd


def _by_name(resources: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in resources}


async def test_core_discovery(api: Api) -> None:
    assert (await api.get("/api")).body["versions"] == ["v1"]
    core = (await api.get("/api/v1")).body
    assert core["groupVersion"] == "v1"
    resources = _by_name(core["resources"])
    assert {
        "namespaces",
        "pods",
        "pods/status",
        "nodes",
        "nodes/status",
        "events",
        "secrets",
        "configmaps",
    } <= set(resources)
    assert {"services", "serviceaccounts"} <= set(resources)
    assert resources["pods"]["namespaced"] is True and resources["pods"]["kind"] == "Pod"
    assert resources["pods"]["shortNames"] == ["po"] and "watch" in resources["pods"]["verbs"]
    assert resources["nodes"]["namespaced"] is False
    assert resources["pods/status"]["verbs"] == ["get", "patch", "update"]


async def test_group_discovery(api: Api) -> None:
    groups = {g["name"]: g for g in (await api.get("/apis")).body["groups"]}
    expected = {
        "apps",
        "batch",
        "apiextensions.k8s.io",
        "coordination.k8s.io",
        "events.k8s.io",
        "admissionregistration.k8s.io",
        "rbac.authorization.k8s.io",
        GROUP,
    }
    assert expected <= set(groups)
    assert groups["apps"]["preferredVersion"] == {"groupVersion": "apps/v1", "version": "v1"}
    apps = _by_name((await api.get("/apis/apps/v1")).body["resources"])
    assert {"deployments/scale", "statefulsets/scale", "replicasets/scale", "deployments/status"} <= set(apps)
    assert (apps["deployments/scale"]["group"], apps["deployments/scale"]["kind"]) == ("autoscaling", "Scale")
    crds = _by_name((await api.get("/apis/apiextensions.k8s.io/v1")).body["resources"])
    assert crds["customresourcedefinitions"]["shortNames"] == ["crd", "crds"]
    assert (await api.get("/apis/apps")).body["kind"] == "APIGroup"
    assert (await api.get("/apis/nothing.example.com/v1")).status == 404


async def test_crd_registers_its_resource(api: Api, sim: SimCluster) -> None:
    budgets = _by_name((await api.get(f"/apis/{GROUP}/v1")).body["resources"])
    assert budgets["budgets"]["shortNames"] == ["bu"] and budgets["budgets"]["categories"] == ["costs"]
    assert budgets["budgets"]["singularName"] == "budget" and "budgets/status" in budgets
    crd = (await api.get(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/budgets.{GROUP}")).body
    conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
    assert conditions == {"NamesAccepted": "True", "Established": "True"}
    assert crd["status"]["acceptedNames"]["kind"] == "Budget"
    assert crd["status"]["acceptedNames"]["listKind"] == "BudgetList"
    cluster_scoped = budget_crd()
    cluster_scoped["metadata"]["name"] = f"things.{GROUP}"
    cluster_scoped["spec"]["scope"] = "Cluster"
    cluster_scoped["spec"]["names"] = {"plural": "things", "kind": "Thing"}
    await sim.create(cluster_scoped)
    things = _by_name((await api.get(f"/apis/{GROUP}/v1")).body["resources"])
    assert things["things"]["namespaced"] is False
    created = await api.post(f"/apis/{GROUP}/v1/things", {"metadata": {"name": "t"}, "spec": {"limit": 1}})
    assert created.status == 201 and "namespace" not in created.body["metadata"]


async def test_deleting_a_crd_removes_its_objects_and_resource(api: Api, sim: SimCluster) -> None:
    await api.post(
        f"/apis/{GROUP}/v1/namespaces/default/budgets", {"metadata": {"name": "b"}, "spec": {"limit": 1}}
    )
    await api.delete(f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/budgets.{GROUP}")
    assert (await api.get(f"/apis/{GROUP}/v1")).status == 404
    assert (await api.get(f"/apis/{GROUP}/v1/budgets")).status == 404
    await sim.create(budget_crd())
    assert (await api.get(f"/apis/{GROUP}/v1/budgets")).body["items"] == []


async def test_invalid_crd_is_refused(api: Api) -> None:
    crd = budget_crd()
    crd["metadata"]["name"] = "wrong"
    reply = await api.post("/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    assert reply.status == 422
    assert reply.body["details"]["causes"][0]["field"] == "metadata.name"


async def test_version_and_health(api: Api) -> None:
    version = (await api.get("/version")).body
    assert (version["major"], version["minor"]) == ("1", "33")
    assert (await api.get("/healthz")).body == "ok"


async def test_openapi_v3_declares_field_validation(api: Api) -> None:
    root = (await api.get("/openapi/v3")).body["paths"]
    assert {"api/v1", "apis/apps/v1", f"apis/{GROUP}/v1"} <= set(root)
    document = (await api.get(root[f"apis/{GROUP}/v1"]["serverRelativeURL"])).body
    patch = document["paths"][f"/apis/{GROUP}/v1/namespaces/{{namespace}}/budgets/{{name}}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": GROUP, "version": "v1", "kind": "Budget"}
    assert any(p["name"] == "fieldValidation" and p["in"] == "query" for p in patch["parameters"])
    assert "application/strategic-merge-patch+json" not in patch["requestBody"]["content"]
    schema = document["components"]["schemas"]["dev.costwarden.testing.v1.Budget"]
    assert schema["properties"]["spec"]["required"] == ["limit"]
    assert (await api.get("/openapi/v2")).status == 404
