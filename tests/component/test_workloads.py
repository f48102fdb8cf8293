"""Kill, scale, resume and suspend through the real KubeClient against the API stand-in.

The stand-in has no controllers: Deployments, ReplicaSets (owned by their Deployment) and pods
(owned by their ReplicaSet) are created here by hand, as the controllers would have made them.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import logging
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import kmock
import pytest

from costwarden.operator.app import OperatorThread
from costwarden.operator.kube import (
    JOBSET_GROUP,
    KOPF_PERMISSIONS,
    METHOD_PERMISSIONS,
    REQUIRED_PERMISSIONS,
    KubeClient,
    ObjectRef,
    SecretError,
    StatusWrite,
    WriteResult,
)
from costwarden.operator.settings import OperatorSettings
from costwarden.operator.workloads import (
    ANNOTATION_REPLICAS_BEFORE,
    Outcome,
    TargetResult,
    kill_pods,
    resume_scaled,
    scale_to_zero,
    suspend,
)
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.component.conftest import T0, free_port, load_crd

NS = "research"
SKY = "llama-sweep-2ea4"


@pytest.fixture
def sim() -> Iterator[ThreadedSimCluster]:
    with ThreadedSimCluster() as cluster:
        cluster.create(shapes.namespace(NS))
        yield cluster


# ---- objects as the controllers would have made them


def owner_ref(kind: str, obj: dict[str, Any], api_version: str = "apps/v1") -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def pod_template(app: str) -> dict[str, Any]:
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": "main", "image": "trainer:1"}]},
    }


def workload(kind: str, name: str, replicas: int, owner: dict[str, Any] | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "namespace": NS, "labels": {"app": name}}
    if owner is not None:
        meta["ownerReferences"] = [owner]
    spec: dict[str, Any] = {
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": pod_template(name),
    }
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": meta, "spec": spec}


def seed_deployment(
    sim: ThreadedSimCluster, name: str = "trainer", replicas: int = 3
) -> tuple[str, list[str]]:
    """A Deployment, its ReplicaSet and its pods; returns the ReplicaSet's and the pods' names."""
    deployment = sim.create(workload("Deployment", name, replicas))
    rs = sim.create(workload("ReplicaSet", f"{name}-5d8f7c", replicas, owner_ref("Deployment", deployment)))
    pods = []
    for index in range(replicas):
        pod = shapes.plain_pod(f"{name}-5d8f7c-{index}", namespace=NS, node="gpu-1", labels={"app": name})
        pod["metadata"]["ownerReferences"] = [owner_ref("ReplicaSet", rs)]
        pods.append(sim.create(pod)["metadata"]["name"])
    return rs["metadata"]["name"], pods


def job(name: str) -> dict[str, Any]:
    template = pod_template(name)
    template["spec"]["restartPolicy"] = "Never"
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"parallelism": 2, "template": template},
    }


def jobset_crd() -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"jobsets.{JOBSET_GROUP}"},
        "spec": {
            "group": JOBSET_GROUP,
            "scope": "Namespaced",
            "names": {"kind": "JobSet", "plural": "jobsets", "singular": "jobset", "listKind": "JobSetList"},
            "versions": [
                {
                    "name": "v1alpha2",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {
                        "openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
                    },
                }
            ],
        },
    }


def get(sim: ThreadedSimCluster, api_version: str, plural: str, name: str) -> dict[str, Any]:
    obj = sim.get(api_version, plural, name, namespace=NS)
    assert obj is not None, f"{plural}/{name} is gone"
    return obj


def annotations_of(obj: dict[str, Any]) -> dict[str, str]:
    return dict(obj["metadata"].get("annotations") or {})


def writes(sim: ThreadedSimCluster) -> list[tuple[str, str | None]]:
    """(method, name) of every write request the stand-in received, in order."""
    return [
        (r.method.value, r.name)
        for r in sim.cluster.emulator
        if r.method.value in ("POST", "PUT", "PATCH", "DELETE")
    ]


# ---- kill


async def test_a_skypilot_cluster_is_killed_workers_first_head_last(sim, kube):
    pods = []
    for index in range(4):
        role = "head" if index == 0 else "worker"
        pod = shapes.skypilot_pod(SKY, "llama-sweep", namespace=NS, node=f"n{index}", role=role, index=index)
        name = sim.create(pod)["metadata"]["name"]
        sim.patch(
            "v1", "pods", name, {"status": shapes.running_status(T0)}, namespace=NS, subresource="status"
        )
        pods.append(name)
    head, workers = pods[0], pods[1:]

    results = await kill_pods(kube, NS, [*workers, head], grace_period_seconds=45)

    assert [r.result for r in results] == [Outcome.DONE] * 4
    assert [r.target for r in results] == [f"Pod {NS}/{name}" for name in [*workers, head]]
    assert results[0].message == "deleted with grace period 45s"
    deletes = [r for r in sim.cluster.emulator["delete", kmock.resource("", "v1", "pods")]]
    assert [r.name for r in deletes] == [*workers, head]
    assert all(r.namespace == NS and r.data["gracePeriodSeconds"] == 45 for r in deletes)
    assert sim.list("v1", "pods", namespace=NS) == []


async def test_a_vanished_pod_is_gone_not_failed(sim, kube):
    sim.create(shapes.plain_pod("alive", namespace=NS, node="n1"))

    results = await kill_pods(kube, NS, ["vanished", "alive"], grace_period_seconds=0)

    assert results == [
        TargetResult(f"Pod {NS}/vanished", Outcome.GONE, "not found: nothing left to stop"),
        TargetResult(f"Pod {NS}/alive", Outcome.DONE, "deleted with grace period 0s"),
    ]


async def test_throttling_and_forbidden_writes_are_reported_not_raised(sim, kube):
    for name in ("busy", "locked"):
        sim.create(shapes.plain_pod(name, namespace=NS, node="n1"))
    pods = kmock.resource("", "v1", "pods")
    sim.cluster.emulator["delete", pods, kmock.name("busy")] << 429 << {"Retry-After": "7"}
    sim.cluster.emulator["delete", pods, kmock.name("locked")] << 403

    busy, locked = await kill_pods(kube, NS, ["busy", "locked"], grace_period_seconds=30)

    assert (busy.result, busy.message) == (Outcome.THROTTLED, "throttled by the API server; retry after 7s")
    assert kube.last_retry_after == 7.0
    assert locked.result == Outcome.FAILED
    assert locked.message.startswith("forbidden: the operator may not delete")
    assert len(sim.list("v1", "pods", namespace=NS)) == 2


# ---- scale and resume


async def test_a_replicaset_is_scaled_through_its_deployment_and_resumed(sim, kube):
    rs, _ = seed_deployment(sim, replicas=3)

    scaled = await scale_to_zero(kube, NS, "ReplicaSet", rs)

    assert scaled.target == f"Deployment {NS}/trainer"
    assert scaled.result == Outcome.DONE
    assert scaled.message == (
        f"scaled from 3 to 0 replicas (owner of ReplicaSet {NS}/{rs}); {ANNOTATION_REPLICAS_BEFORE}=3"
    )
    deployment = get(sim, "apps/v1", "deployments", "trainer")
    assert deployment["spec"]["replicas"] == 0
    assert annotations_of(deployment)[ANNOTATION_REPLICAS_BEFORE] == "3"
    assert get(sim, "apps/v1", "replicasets", rs)["spec"]["replicas"] == 3  # left to the controller
    patches = list(sim.cluster.emulator["patch", kmock.resource("apps", "v1", "deployments")])
    assert len(patches) == 1 and patches[0].headers["Content-Type"] == "application/merge-patch+json"

    again = await scale_to_zero(kube, NS, "ReplicaSet", rs)

    assert again == TargetResult(
        f"Deployment {NS}/trainer",
        Outcome.DONE,
        f"already at 0 replicas ({ANNOTATION_REPLICAS_BEFORE}=3 kept) (owner of ReplicaSet {NS}/{rs})",
    )
    assert len(list(sim.cluster.emulator["patch", kmock.resource("apps", "v1", "deployments")])) == 1

    resumed = await resume_scaled(kube, NS, "Deployment", "trainer")

    assert (resumed.result, resumed.message) == (Outcome.DONE, "restored 3 replicas")
    deployment = get(sim, "apps/v1", "deployments", "trainer")
    assert deployment["spec"]["replicas"] == 3
    assert ANNOTATION_REPLICAS_BEFORE not in annotations_of(deployment)
    assert annotations_of(deployment) == {}

    nothing = await resume_scaled(kube, NS, "ReplicaSet", rs)
    assert nothing.result == Outcome.SKIPPED and "not scaled down by costwarden" in nothing.message


async def test_a_statefulset_is_scaled_and_resumed(sim, kube):
    sim.create(workload("StatefulSet", "ray-head", 2))

    scaled = await scale_to_zero(kube, NS, "StatefulSet", "ray-head")

    assert (scaled.target, scaled.result) == (f"StatefulSet {NS}/ray-head", Outcome.DONE)
    sts = get(sim, "apps/v1", "statefulsets", "ray-head")
    assert (sts["spec"]["replicas"], annotations_of(sts)) == (0, {ANNOTATION_REPLICAS_BEFORE: "2"})

    resumed = await resume_scaled(kube, NS, "StatefulSet", "ray-head")

    assert resumed.result == Outcome.DONE
    assert get(sim, "apps/v1", "statefulsets", "ray-head")["spec"]["replicas"] == 2


async def test_an_orphaned_replicaset_is_scaled_itself(sim, kube):
    sim.create(workload("ReplicaSet", "loose", 4))

    scaled = await scale_to_zero(kube, NS, "ReplicaSet", "loose")

    assert (scaled.target, scaled.result) == (f"ReplicaSet {NS}/loose", Outcome.DONE)
    assert get(sim, "apps/v1", "replicasets", "loose")["spec"]["replicas"] == 0


async def test_a_manual_scale_up_meanwhile_is_kept_on_resume(sim, kube):
    sim.create(workload("Deployment", "web", 3))
    await scale_to_zero(kube, NS, "Deployment", "web")
    sim.patch("apps/v1", "deployments", "web", {"spec": {"replicas": 1}}, namespace=NS)

    resumed = await resume_scaled(kube, NS, "Deployment", "web")

    assert (resumed.result, resumed.message) == (Outcome.DONE, "kept 1 replicas")
    web = get(sim, "apps/v1", "deployments", "web")
    assert (web["spec"]["replicas"], annotations_of(web)) == (1, {})


async def test_scale_edge_cases(sim, kube):
    sim.create(workload("Deployment", "idle", 0))
    bad = workload("Deployment", "bad", 0)
    bad["metadata"]["annotations"] = {ANNOTATION_REPLICAS_BEFORE: "many"}
    sim.create(bad)

    assert (await scale_to_zero(kube, NS, "Deployment", "idle")).message == "already at 0 replicas"
    assert annotations_of(get(sim, "apps/v1", "deployments", "idle")) == {}
    assert (await scale_to_zero(kube, NS, "Deployment", "absent")).result == Outcome.GONE
    assert (await resume_scaled(kube, NS, "Deployment", "absent")).result == Outcome.GONE
    assert (await scale_to_zero(kube, NS, "DaemonSet", "agents")).result == Outcome.SKIPPED
    broken = await resume_scaled(kube, NS, "Deployment", "bad")
    assert broken.result == Outcome.FAILED and "'many' is not a replica count" in broken.message


async def test_a_stale_resource_version_is_a_conflict(sim, kube):
    sim.create(workload("Deployment", "web", 2))

    result = await kube.scale(NS, "Deployment", "web", 0, {}, resource_version="1")

    assert result is WriteResult.CONFLICT
    assert get(sim, "apps/v1", "deployments", "web")["spec"]["replicas"] == 2


# ---- suspend


async def test_a_job_is_suspended(sim, kube):
    sim.create(job("finetune"))

    result = await suspend(kube, NS, "Job", "finetune")

    assert result == TargetResult(f"Job {NS}/finetune", Outcome.DONE, "suspended")
    assert get(sim, "batch/v1", "jobs", "finetune")["spec"]["suspend"] is True
    assert (await suspend(kube, NS, "Job", "absent")).result == Outcome.GONE
    assert (await suspend(kube, NS, "CronJob", "nightly")).result == Outcome.SKIPPED


async def test_a_jobset_is_suspended_where_its_crd_exists(sim, kube):
    missing = await suspend(kube, NS, "JobSet", "sweep")
    assert missing.result == Outcome.GONE
    assert "JobSet CRD jobset.x-k8s.io/v1alpha2 is not installed" in missing.message
    assert await kube.get_owner(NS, "JobSet", "sweep") is None

    sim.create(jobset_crd())
    sim.create(
        {
            "apiVersion": f"{JOBSET_GROUP}/v1alpha2",
            "kind": "JobSet",
            "metadata": {"name": "sweep", "namespace": NS},
            "spec": {
                "replicatedJobs": [{"name": "workers", "replicas": 4, "template": {"spec": job("w")["spec"]}}]
            },
        }
    )

    result = await suspend(kube, NS, "JobSet", "sweep")

    assert result == TargetResult(f"JobSet {NS}/sweep", Outcome.DONE, "suspended")
    assert get(sim, f"{JOBSET_GROUP}/v1alpha2", "jobsets", "sweep")["spec"]["suspend"] is True
    owner = await kube.get_owner(NS, "JobSet", "sweep")
    assert owner is not None and owner["spec"]["suspend"] is True


# ---- dry-run


async def test_dry_run_changes_nothing_and_says_what_it_would_do(sim, dry_kube, caplog):
    rs, pods = seed_deployment(sim, replicas=2)
    sim.create(workload("StatefulSet", "db", 1))
    sim.create(job("finetune"))
    before = writes(sim)
    caplog.set_level(logging.INFO, logger="costwarden.operator.kube")

    killed = await kill_pods(dry_kube, NS, pods, grace_period_seconds=30)
    scaled = await scale_to_zero(dry_kube, NS, "ReplicaSet", rs)
    sts = await scale_to_zero(dry_kube, NS, "StatefulSet", "db")
    suspended = await suspend(dry_kube, NS, "Job", "finetune")
    jobset = await suspend(dry_kube, NS, "JobSet", "sweep")

    assert [r.result for r in [*killed, scaled, sts, suspended, jobset]] == [Outcome.DRY_RUN] * 6
    assert killed[0].message == "would delete with grace period 30s"
    assert scaled.target == f"Deployment {NS}/trainer"
    assert scaled.message.startswith("would scale from 2 to 0 replicas (owner of ReplicaSet")
    assert suspended.message == "would suspend"
    assert writes(sim) == before
    assert len(sim.list("v1", "pods", namespace=NS)) == 2
    assert get(sim, "apps/v1", "deployments", "trainer")["spec"]["replicas"] == 2
    assert "suspend" not in get(sim, "batch/v1", "jobs", "finetune")["spec"]
    logged = [r.getMessage() for r in caplog.records]
    assert f"dry-run: would delete pod {NS}/{pods[0]} (grace period 30s)" in logged
    assert any(line.startswith(f"dry-run: would scale Deployment {NS}/trainer to 0") for line in logged)


async def test_dry_run_resume_reads_the_note_but_writes_nothing(sim, kube, dry_kube):
    sim.create(workload("Deployment", "web", 3))
    await scale_to_zero(kube, NS, "Deployment", "web")
    before = writes(sim)
    assert before == [("PATCH", "web")]

    resumed = await resume_scaled(dry_kube, NS, "Deployment", "web")
    again = await scale_to_zero(dry_kube, NS, "Deployment", "web")

    assert (resumed.result, resumed.message) == (Outcome.DRY_RUN, "would restore 3 replicas")
    assert again.result == Outcome.DRY_RUN and again.message.startswith("would change nothing")
    assert writes(sim) == before


# ---- secrets


def secret(name: str, data: dict[str, bytes]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


async def test_secret_values_are_decoded_and_errors_are_clear(sim, kube, dry_kube):
    sim.create(secret("slack", {"token": b"xoxb-123-456\n", "url": b"https://hooks.example/T0"}))
    sim.create({**secret("odd", {}), "data": {"token": "%%%not-base64"}})
    sim.create(secret("locked", {"token": b"x"}))
    sim.cluster.emulator["get", kmock.resource("", "v1", "secrets"), kmock.name("locked")] << 403

    assert await kube.read_secret_key(NS, "slack", "token") == "xoxb-123-456"
    assert await dry_kube.read_secret_key(NS, "slack", "url") == "https://hooks.example/T0"
    with pytest.raises(SecretError, match=rf"^Secret {NS}/slack has no key 'routingKey'$"):
        await kube.read_secret_key(NS, "slack", "routingKey")
    with pytest.raises(SecretError, match=rf"^Secret {NS}/pagerduty not found$") as gone:
        await kube.read_secret_key(NS, "pagerduty", "routingKey")
    assert gone.value.status == 404
    with pytest.raises(SecretError, match=rf"^Secret {NS}/locked: forbidden") as forbidden:
        await kube.read_secret_key(NS, "locked", "token")
    assert forbidden.value.status == 403
    with pytest.raises(SecretError, match="not base64-encoded UTF-8 text"):
        await kube.read_secret_key(NS, "odd", "token")


# ---- budget status


async def test_budget_status_is_patched_at_once_except_in_dry_run(sim, kube, dry_kube):
    seed_budget_and_pod(sim)
    record = {
        "id": "threshold/100/lifetime",
        "time": "2026-11-26T12:00:00Z",
        "trigger": "spend 100%",
        "action": "Kill",
    }

    assert await dry_kube.patch_budget_status(NS, "sweep", {"actions": [record]}) == StatusWrite(
        WriteResult.DRY_RUN
    )
    assert "status" not in get(sim, "costwarden.dev/v1alpha1", "costbudgets", "sweep")

    read = get(sim, "costwarden.dev/v1alpha1", "costbudgets", "sweep")["metadata"]["resourceVersion"]
    written = await kube.patch_budget_status(NS, "sweep", {"actions": [record]}, resource_version=read)
    budget = get(sim, "costwarden.dev/v1alpha1", "costbudgets", "sweep")
    assert written == StatusWrite(WriteResult.DONE, budget["metadata"]["resourceVersion"])
    assert written.resource_version != read
    assert budget["status"]["actions"] == [record]
    assert budget["spec"]["limit"] == 1
    # at the version read before that write: refused, nothing written
    stale = await kube.patch_budget_status(NS, "sweep", {"actions": []}, resource_version=read)
    assert stale == StatusWrite(WriteResult.CONFLICT)
    assert get(sim, "costwarden.dev/v1alpha1", "costbudgets", "sweep")["status"]["actions"] == [record]
    assert (await kube.patch_budget_status(NS, "absent", {"actions": []})).result is WriteResult.GONE


# ---- permissions


def permission_of(request: Any) -> tuple[str, str, str] | None:
    """The (apiGroup, resource, verb) an RBAC authorizer would check for a recorded request."""
    if request.resource is None:
        return None  # discovery and /version: allowed to every authenticated user
    resource = request.resource.plural + (f"/{request.subresource}" if request.subresource else "")
    method = request.method.value
    if method == "GET":
        verb = (
            "watch" if request.params.get("watch") in ("true", "1") else ("get" if request.name else "list")
        )
    else:
        verb = {"POST": "create", "PUT": "update", "PATCH": "patch", "DELETE": "delete"}[method]
    return (request.resource.group or "", resource, verb)


def test_required_permissions_cover_every_client_method_and_kopf():
    methods = {
        name
        for name, member in inspect.getmembers(KubeClient)
        if (inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member))
        and not name.startswith("_")
        and name != "close"  # the client's own lifecycle, no API call
    }
    assert methods == set(METHOD_PERMISSIONS)
    expected = set(KOPF_PERMISSIONS).union(*METHOD_PERMISSIONS.values())
    assert set(REQUIRED_PERMISSIONS) == expected
    assert list(REQUIRED_PERMISSIONS) == sorted(expected)


async def test_each_client_method_needs_exactly_its_listed_permissions(sim, kube):
    rs, pods = seed_deployment(sim, replicas=1)
    sim.create(job("finetune"))
    sim.create(secret("slack", {"token": b"t"}))
    seed_budget_and_pod(sim)
    pod_ref = ObjectRef("v1", "Pod", NS, pods[0])
    calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
        ("read_secret_key", (NS, "slack", "token"), {}),
        *[
            ("get_owner", (NS, kind, "x"), {})
            for kind in ("Deployment", "ReplicaSet", "StatefulSet", "Job", "JobSet")
        ],
        ("patch_pod_annotations", (NS, pods[0], {"a": "b"}), {}),
        ("post_event", (pod_ref,), {"reason": "R", "message": "m", "event_type": "Normal", "now": T0}),
        *[
            ("scale", (NS, kind, name, 0, {"a": None}), {})
            for kind, name in (("Deployment", "trainer"), ("ReplicaSet", rs), ("StatefulSet", "x"))
        ],
        ("suspend_job", (NS, "finetune"), {}),
        ("suspend_jobset", (NS, "x"), {}),
        ("delete_pod", (NS, pods[0], 1), {}),
        ("patch_budget_status", (NS, "sweep", {"actions": []}), {}),
        ("annotate_budget", (NS, "sweep", {"costwarden.dev/resume": "now"}), {}),
        ("read_budget", (NS, "sweep"), {}),
        ("list_budgets", (), {}),
        ("list_pods", (NS,), {}),
        *[("list_raw", (resource,), {"limit": 1}) for resource in ("pods", "nodes", "costbudgets")],
        *[("watch_raw", (resource, "0", 5), {}) for resource in ("pods", "nodes", "costbudgets")],
        ("read_lease", (NS, "costwarden"), {}),
        ("create_lease", (NS, {"metadata": {"name": "costwarden"}, "spec": {"holderIdentity": "a"}}), {}),
        ("replace_lease", (NS, "costwarden", {"metadata": {"name": "costwarden"}, "spec": {}}), {}),
    ]
    sent: dict[str, set[tuple[str, str, str] | None]] = {}
    for method, args, kwargs in calls:
        seen = len(list(sim.cluster.emulator))
        called = getattr(kube, method)(*args, **kwargs)
        if inspect.isasyncgen(called):  # a watch: its first event proves the request was made
            async with contextlib.aclosing(called) as events:
                await anext(events)
        else:
            await called
        sent.setdefault(method, set()).update(permission_of(r) for r in list(sim.cluster.emulator)[seen:])
    assert sent == {method: set(permissions) for method, permissions in METHOD_PERMISSIONS.items()}


def seed_budget_and_pod(sim: ThreadedSimCluster) -> None:
    sim.create(load_crd())
    sim.create(shapes.eks_p5_node("gpu-1"))
    pod = shapes.skypilot_pod(SKY, "llama-sweep", namespace=NS, node="gpu-1")
    sim.create(pod)
    running = {"status": shapes.running_status(T0 - timedelta(hours=1))}
    sim.patch("v1", "pods", pod["metadata"]["name"], running, namespace=NS, subresource="status")
    sim.create(
        {
            "apiVersion": "costwarden.dev/v1alpha1",
            "kind": "CostBudget",
            "metadata": {"name": "sweep", "namespace": NS},
            "spec": {
                "limit": 1,
                "period": "Lifetime",
                "selector": {},
                "thresholds": [{"percent": 50, "action": "Notify"}],
            },
        }
    )


@pytest.mark.parametrize(
    ("namespaces", "lease", "expected"),
    [
        (
            (),
            None,
            {
                ("", "pods", "watch"),
                ("", "nodes", "watch"),
                ("costwarden.dev", "costbudgets", "watch"),
                ("costwarden.dev", "costbudgets/status", "patch"),
            },
        ),
        (
            (),
            "costwarden",
            {
                ("coordination.k8s.io", "leases", "get"),
                ("coordination.k8s.io", "leases", "create"),
            },
        ),
        (
            (NS,),
            "costwarden",
            {
                ("", "pods", "list"),
                ("costwarden.dev", "costbudgets", "list"),
                ("coordination.k8s.io", "leases", "get"),
            },
        ),
    ],
    ids=["cluster-wide", "cluster-wide-lease", "namespaced-lease"],
)
def test_the_running_operator_uses_only_required_permissions(sim, namespaces, lease, expected):
    seed_budget_and_pod(sim)
    settings = OperatorSettings(
        kubeconfig=sim.kubeconfig,
        interval=0.2,
        accrual_interval=0.2,
        metrics_port=free_port(),
        metrics_host="127.0.0.1",
        annotation_interval=0.2,
        namespaces=namespaces,
        lease_name=lease,
        lease_namespace=NS,
        lease_duration=3,
        renew_deadline=2,
        retry_period=0.2,
    )
    operator = OperatorThread(settings, clock=lambda: T0).start()
    try:

        def budget_evaluated_and_announced() -> bool:
            budget = get(sim, "costwarden.dev/v1alpha1", "costbudgets", "sweep")
            return bool(budget.get("status", {}).get("phase")) and bool(
                sim.list("v1", "events", namespace=NS)
            )

        sim.wait_for(budget_evaluated_and_announced, timeout=10)
    finally:
        operator.stop()

    used = {permission_of(r) for r in sim.cluster.emulator} - {None}
    assert used <= set(REQUIRED_PERMISSIONS), sorted(used - set(REQUIRED_PERMISSIONS))
    assert expected <= used
