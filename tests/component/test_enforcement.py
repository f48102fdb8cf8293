"""Enforcement end to end: the real operator on the stand-in notifies, kills, scales, suspends —
safely (dry-run, --enforcement, protected and foreign namespaces) and exactly once."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import kmock

from costwarden.models import CostBudgetStatus
from costwarden.records import format_time
from costwarden.sim.testing import ThreadedSimCluster
from tests import shapes
from tests.component.conftest import T0
from tests.component.test_operator_spend import NS, budget, events_with, seed_skypilot_cluster, status_of
from tests.dcgm_pages import Gpu, page
from tests.prometheus_server import Pages
from tests.receiver import Receiver

CB = "costwarden.dev/v1alpha1"


def kill_budget(limit: float = 100, **spec: Any) -> dict[str, Any]:
    """Pods that each ran an hour on a p5 (55.04 USD each) against ``limit``: with two or more
    pods the default limit is crossed at once, 80 % Notify and 100 % Kill."""
    body = budget(limit=limit, **spec)
    body["spec"]["thresholds"] = [{"percent": 80, "action": "Notify"}, {"percent": 100, "action": "Kill"}]
    return body


def pod_names(cluster: ThreadedSimCluster, namespace: str = NS) -> list[str]:
    return sorted(p["metadata"]["name"] for p in cluster.list("v1", "pods", namespace=namespace))


def record(cluster: ThreadedSimCluster, prefix: str, name: str = "llama-sweep") -> dict[str, Any]:
    actions = status_of(cluster, name).get("actions", [])
    return next((a for a in actions if a["id"].startswith(prefix)), {})


def secret(name: str, **data: str) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": NS},
        "data": encoded,
    }


def test_kill_takes_the_whole_skypilot_cluster_workers_first_head_last(cluster, start_operator):
    head, *workers = seed_skypilot_cluster(cluster, workers=3)
    cluster.create(kill_budget(enforcement={"gracePeriodSeconds": 45}))
    start_operator()

    cluster.wait_for(lambda: record(cluster, "threshold/100").get("result") == "Done", timeout=20)
    assert pod_names(cluster) == []
    deletes = list(cluster.cluster.emulator["delete", kmock.resource("", "v1", "pods")])
    assert [r.name for r in deletes] == [*sorted(workers), head]
    assert all(r.data["gracePeriodSeconds"] == 45 for r in deletes)
    kill = record(cluster, "threshold/100")
    assert kill["action"] == "Kill" and len(kill["targets"]) == 4
    assert record(cluster, "threshold/80")["result"] == "Done"
    cluster.wait_for(lambda: status_of(cluster).get("phase") == "Enforced", timeout=20)
    cluster.wait_for(lambda: len(events_with(cluster, "CostBudgetKill")) == 4, timeout=20)


def test_dry_run_budget_and_dry_run_operator_destroy_nothing(cluster, start_operator):
    seed_skypilot_cluster(cluster, workers=1)
    cluster.create(kill_budget(enforcement={"dryRun": True}))
    start_operator()
    cluster.wait_for(lambda: record(cluster, "threshold/100").get("result") == "DryRun", timeout=20)
    assert "would kill" in record(cluster, "threshold/100")["message"]
    assert len(pod_names(cluster)) == 2
    assert list(cluster.cluster.emulator["delete", kmock.resource("", "v1", "pods")]) == []


def test_enforcement_dry_run_switch(cluster, start_operator):
    seed_skypilot_cluster(cluster, workers=1)
    cluster.create(kill_budget())
    start_operator(enforcement="dry-run")
    cluster.wait_for(lambda: record(cluster, "threshold/100").get("result") == "DryRun", timeout=20)
    assert "--enforcement=dry-run" in record(cluster, "threshold/100")["message"]
    assert len(pod_names(cluster)) == 2


def test_enforcement_off_records_skipped(cluster, start_operator):
    seed_skypilot_cluster(cluster, workers=1)
    cluster.create(kill_budget())
    start_operator(enforcement="off")
    cluster.wait_for(lambda: record(cluster, "threshold/100").get("result") == "Skipped", timeout=20)
    assert len(pod_names(cluster)) == 2


def test_a_budget_never_reaches_outside_its_namespace(cluster, start_operator):
    seed_skypilot_cluster(cluster, workers=1)  # research: the budget's pods
    cluster.create(shapes.namespace("other"))
    cluster.create(shapes.eks_p5_node("ip-10-0-9-9.ec2.internal"))
    stranger = shapes.skypilot_pod(
        "llama-sweep-2ea4",
        "llama-sweep",
        namespace="other",
        node="ip-10-0-9-9.ec2.internal",
        role="worker",
        index=7,
    )
    cluster.create(stranger)
    everything = kill_budget()
    everything["spec"]["selector"] = {}
    cluster.create(everything)
    start_operator()
    cluster.wait_for(lambda: record(cluster, "threshold/100").get("result") == "Done", timeout=20)
    assert pod_names(cluster) == []
    assert pod_names(cluster, "other") == ["llama-sweep-2ea4-worker7"]


def test_protected_namespaces_are_never_touched(cluster, start_operator):
    cluster.create(shapes.eks_p5_node("ip-10-0-1-10.ec2.internal"))
    pod = shapes.skypilot_pod(
        "sys-gpu-0001", "sys-gpu", namespace="kube-system", node="ip-10-0-1-10.ec2.internal"
    )
    cluster.create(pod)
    started = {"status": shapes.running_status(T0 - timedelta(hours=1))}
    cluster.patch("v1", "pods", "sys-gpu-0001-head", started, namespace="kube-system", subresource="status")
    guard = kill_budget(limit=10)
    guard["metadata"]["namespace"] = "kube-system"
    guard["spec"]["selector"] = {}
    guard["spec"].pop("skypilotCluster")
    cluster.create(guard)
    start_operator()

    def kill_record() -> dict[str, Any]:
        obj = cluster.get(CB, "costbudgets", "llama-sweep", namespace="kube-system") or {}
        return next(
            (a for a in obj.get("status", {}).get("actions", []) if a["id"].startswith("threshold/100")), {}
        )

    cluster.wait_for(lambda: kill_record().get("result") == "Skipped", timeout=20)
    assert "protected" in kill_record()["message"]
    assert pod_names(cluster, "kube-system") == ["sys-gpu-0001-head"]


def test_scale_remembers_replicas_and_suspend_stops_the_job(cluster, start_operator):
    cluster.create(shapes.namespace(NS))
    cluster.create(shapes.eks_p5_node("ip-10-0-1-10.ec2.internal"))
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "inference", "namespace": NS},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "inference"}},
            "template": {
                "metadata": {"labels": {"app": "inference"}},
                "spec": {"containers": [{"name": "c"}]},
            },
        },
    }
    dep = cluster.create(deployment)
    rs = cluster.create(
        {
            "apiVersion": "apps/v1",
            "kind": "ReplicaSet",
            "metadata": {
                "name": "inference-5d9c",
                "namespace": NS,
                "ownerReferences": [owner("Deployment", "apps/v1", dep)],
            },
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "inference"}},
                "template": deployment["spec"]["template"],
            },
        }
    )
    job = cluster.create(
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "eval", "namespace": NS},
            "spec": {"template": {"spec": {"containers": [{"name": "c"}], "restartPolicy": "Never"}}},
        }
    )
    for name, labels, ref in (
        ("inference-5d9c-a", {"app": "inference"}, owner("ReplicaSet", "apps/v1", rs)),
        ("eval-x1", {"app": "eval"}, owner("Job", "batch/v1", job)),
    ):
        body = shapes.plain_pod(name, namespace=NS, node="ip-10-0-1-10.ec2.internal", labels=labels)
        body["metadata"]["ownerReferences"] = [ref]
        body["spec"]["containers"][0]["resources"]["requests"]["nvidia.com/gpu"] = "4"
        cluster.create(body)
        status = {"status": shapes.running_status(T0 - timedelta(hours=1))}
        cluster.patch("v1", "pods", name, status, namespace=NS, subresource="status")
    for name, app, action in (("serve", "inference", "Scale"), ("evals", "eval", "Suspend")):
        cluster.create(
            {
                "apiVersion": CB,
                "kind": "CostBudget",
                "metadata": {"name": name, "namespace": NS},
                "spec": {
                    "limit": 1,
                    "selector": {"matchLabels": {"app": app}},
                    "thresholds": [{"percent": 100, "action": action}],
                },
            }
        )
    start_operator()

    cluster.wait_for(lambda: record(cluster, "threshold/100", "serve").get("result") == "Done", timeout=20)
    scaled = cluster.get("apps/v1", "deployments", "inference", namespace=NS) or {}
    assert scaled["spec"]["replicas"] == 0
    assert scaled["metadata"]["annotations"]["costwarden.dev/replicas-before"] == "3"
    cluster.wait_for(lambda: record(cluster, "threshold/100", "evals").get("result") == "Done", timeout=20)
    assert (cluster.get("batch/v1", "jobs", "eval", namespace=NS) or {})["spec"]["suspend"] is True


def owner(kind: str, api_version: str, obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
    }


def test_notifications_reach_slack_webhook_and_pagerduty(cluster, start_operator):
    seed_skypilot_cluster(cluster, workers=1)
    cluster.create(secret("slack", token="xoxb-test"))
    with Receiver() as receiver:
        cluster.create(secret("hooks", url=f"{receiver.url}/hook"))
        cluster.create(secret("pd", key="R0UTINGKEY"))
        body = kill_budget(limit=130)  # 110.08 of 130: the 80 % Notify fires, not the Kill
        body["spec"]["notify"] = {
            "slack": {"channel": "#gpu-spend", "tokenSecretRef": {"name": "slack", "key": "token"}},
            "webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}},
            "pagerduty": {"routingKeySecretRef": {"name": "pd", "key": "key"}},
        }
        cluster.create(body)
        start_operator(slack_api_url=f"{receiver.url}/api/", pagerduty_url=f"{receiver.url}/v2/enqueue")

        cluster.wait_for(lambda: record(cluster, "threshold/80").get("notification") == "Sent", timeout=20)
        assert record(cluster, "threshold/80")["result"] == "Done"
        slack = receiver.on("/api/chat.postMessage")
        assert len(slack) == 1
        assert slack[0].headers["Authorization"] == "Bearer xoxb-test"
        assert slack[0].body["channel"] == "#gpu-spend"
        blocks = str(slack[0].body["blocks"])
        assert "llama-sweep" in blocks and "research" in blocks and "alice" in blocks
        [posted] = receiver.on("/hook")
        hook = posted.body
        assert hook["id"] == "research/llama-sweep/threshold/80/lifetime"
        assert posted.headers["Idempotency-Key"] == hook["id"]
        assert hook["budget"] == "llama-sweep" and hook["spend"] == "110.08" and hook["limit"] == "130.00"
        assert hook["action"] == "Notify" and "Kill" in hook["nextStep"]
        page = receiver.on("/v2/enqueue")[0].body
        assert page["routing_key"] == "R0UTINGKEY" and page["event_action"] == "trigger"
        assert len(pod_names(cluster)) == 2
        condition = next(c for c in status_of(cluster)["conditions"] if c["type"] == "NotificationsDelivered")
        assert condition["status"] == "True"


def test_a_missing_secret_or_dead_receiver_is_a_condition_not_a_crash(cluster, start_operator):
    seed_skypilot_cluster(cluster, workers=0)
    with Receiver() as receiver:
        receiver.status_override = 500
        cluster.create(secret("hooks", url=f"{receiver.url}/hook"))
        body = budget(limit=100)  # 55.04 of 100: the 50 % Notify fires
        body["metadata"]["name"] = "dead-hook"
        body["spec"]["notify"] = {"webhook": {"urlSecretRef": {"name": "hooks", "key": "url"}}}
        cluster.create(body)
        missing = budget(limit=100)
        missing["metadata"]["name"] = "no-secret"
        missing["spec"]["notify"] = {
            "slack": {"channel": "#x", "tokenSecretRef": {"name": "nope", "key": "token"}}
        }
        cluster.create(missing)
        start_operator(notify_attempts=2, notify_backoff=0.01)

        def condition(name: str) -> dict[str, Any]:
            conditions = status_of(cluster, name).get("conditions", [])
            return next((c for c in conditions if c["type"] == "NotificationsDelivered"), {})

        cluster.wait_for(lambda: condition("no-secret").get("reason") == "SecretUnavailable", timeout=20)
        assert "Secret research/nope not found" in condition("no-secret")["message"]
        cluster.wait_for(lambda: condition("dead-hook").get("reason") == "DeliveryFailed", timeout=20)
        assert "2 attempts" in condition("dead-hook")["message"]
        assert len(receiver.on("/hook")) == 2
        assert record(cluster, "threshold/50", "dead-hook")["result"] == "Failed"
        assert status_of(cluster, "dead-hook")["phase"] == "Warning"


def test_a_restart_between_deciding_and_acting_acts_once(cluster, clock, start_operator):
    """A Pending Kill persisted by an operator that died before acting is carried out once."""
    seed_skypilot_cluster(cluster, workers=1)
    cluster.create(kill_budget())
    pending = {
        "id": "threshold/100/lifetime",
        "time": format_time(T0),
        "trigger": "spend 110.08 reached 100% of 100",
        "action": "Kill",
        "targets": [],
        "result": "Pending",
    }
    notified = {**pending, "id": "threshold/80/lifetime", "action": "Notify", "result": "Done"}
    cluster.patch(
        CB,
        "costbudgets",
        "llama-sweep",
        {"status": {"actions": [notified, pending]}},
        namespace=NS,
        subresource="status",
    )
    start_operator()
    cluster.wait_for(lambda: record(cluster, "threshold/100").get("result") == "Done", timeout=20)
    assert pod_names(cluster) == []
    assert record(cluster, "threshold/100").get("attempts") == 1
    assert len(events_with(cluster, "ThresholdCrossed")) == 0  # both crossings were decided before

    # The SkyPilot controller relaunches the cluster; the threshold has fired: no second kill.
    seed_again = shapes.skypilot_pod(
        "llama-sweep-2ea4", "llama-sweep", namespace=NS, node="ip-10-0-1-10.ec2.internal"
    )
    cluster.create(seed_again)
    clock.advance(timedelta(minutes=5))
    cluster.wait_for(
        lambda: status_of(cluster).get("lastEvaluated") == format_time(T0 + timedelta(minutes=5)), timeout=20
    )
    assert pod_names(cluster) == ["llama-sweep-2ea4-head"]
    kills = [a for a in status_of(cluster)["actions"] if a["action"] == "Kill"]
    assert len(kills) == 1


def test_resume_restores_scaled_workloads_only_once_the_limit_is_raised(cluster, start_operator):
    from costwarden.cli import main

    test_scale_remembers_replicas_and_suspend_stops_the_job(cluster, start_operator)
    kubeconfig = str(cluster.kubeconfig)

    assert main(["resume", "serve", "-n", NS, "--kubeconfig", kubeconfig]) == 0
    cluster.wait_for(
        lambda: "not resumed" in record(cluster, "threshold/100", "serve").get("message", ""), timeout=20
    )
    assert (cluster.get("apps/v1", "deployments", "inference", namespace=NS) or {})["spec"]["replicas"] == 0

    for name in ("serve", "evals"):
        cluster.patch(CB, "costbudgets", name, {"spec": {"limit": 1_000_000}}, namespace=NS)
        assert main(["resume", name, "-n", NS, "--kubeconfig", kubeconfig]) == 0
    cluster.wait_for(lambda: record(cluster, "threshold/100", "serve").get("resumedAt"), timeout=20)
    restored = cluster.get("apps/v1", "deployments", "inference", namespace=NS) or {}
    assert restored["spec"]["replicas"] == 3
    assert "costwarden.dev/replicas-before" not in restored["metadata"].get("annotations", {})
    cluster.wait_for(lambda: record(cluster, "threshold/100", "evals").get("resumedAt"), timeout=20)
    assert (cluster.get("batch/v1", "jobs", "eval", namespace=NS) or {})["spec"]["suspend"] is False

    def requested() -> bool:  # withdrawn once the outcome is stored: just after resumedAt shows
        budget_meta = (cluster.get(CB, "costbudgets", "serve", namespace=NS) or {})["metadata"]
        return "costwarden.dev/resume" in budget_meta.get("annotations", {})

    cluster.wait_for(lambda: not requested(), timeout=20)


def test_burn_rate_anomaly_fires_within_an_interval(cluster, clock, start_operator):
    """Expected 55.04/h (one p5); the cluster runs two: twice the expected rate trips a 1.5x rule."""
    seed_skypilot_cluster(cluster, workers=1)
    body = budget(limit=100_000, expectedHourlyRate=55.04, anomalies={"burnRate": {"multiplier": 1.5}})
    cluster.create(body)
    start_operator()
    cluster.wait_for(lambda: record(cluster, "anomaly/burnRate").get("result") == "Done", timeout=20)
    cluster.wait_for(lambda: len(events_with(cluster, "BurnRateAnomaly")) == 1, timeout=20)
    assert "110.08" in events_with(cluster, "BurnRateAnomaly")[0]["message"]
    clock.advance(timedelta(hours=1))
    cluster.wait_for(lambda: status_of(cluster).get("spend") == 220.16, timeout=20)
    assert len([a for a in status_of(cluster)["actions"] if a["id"].startswith("anomaly/burnRate")]) == 1


def idle_budget(for_minutes: int) -> dict[str, Any]:
    """A sweep budget whose only rule kills a pod idle (under 5 % GPU) for ``for_minutes``."""
    return {
        "apiVersion": CB,
        "kind": "CostBudget",
        "metadata": {"name": "sweep", "namespace": NS},
        "spec": {
            "limit": 100_000,
            "selector": {"matchLabels": {"sweep": "lr"}},
            "anomalies": {"idleGpu": {"belowPercent": 5, "forMinutes": for_minutes, "action": "Kill"}},
        },
    }


def idle_since(cluster: ThreadedSimCluster, name: str) -> dict[str, str]:
    return CostBudgetStatus.model_validate(status_of(cluster, name)).ledger.idle_since


def dcgm_exporter_pod(cluster: ThreadedSimCluster, node: str) -> None:
    """A running dcgm-exporter pod whose IP is this machine, where the test's page is served."""
    body = shapes.plain_pod("dcgm-exporter-x7k2p", namespace="gpu-operator", node=node)
    body["metadata"]["labels"] = {"app": "nvidia-dcgm-exporter"}
    cluster.create(shapes.namespace("gpu-operator"))
    cluster.create(body)
    status = {"status": {**shapes.running_status(T0), "podIP": "127.0.0.1"}}
    cluster.patch("v1", "pods", "dcgm-exporter-x7k2p", status, namespace="gpu-operator", subresource="status")


def test_idle_gpu_kills_only_the_idle_pod_after_its_minutes(cluster, clock, start_operator):
    """Two single-pod SkyPilot clusters; dcgm-exporter reports one at 0 % GPU, the other at 97 %."""
    cluster.create(shapes.namespace(NS))
    gpus = []
    for index, utilization in enumerate((0, 97)):
        node = f"ip-10-0-3-{index}.ec2.internal"
        cluster.create(shapes.eks_p5_node(node))
        pod = shapes.skypilot_pod(f"trial{index}-beef", f"trial{index}", namespace=NS, node=node)
        pod["metadata"]["labels"]["sweep"] = "lr"
        pod["metadata"]["annotations"]["costwarden.dev/gpu-utilization"] = "50"  # forged: never read
        cluster.create(pod)
        status = {"status": shapes.running_status(T0)}
        cluster.patch("v1", "pods", f"trial{index}-beef-head", status, namespace=NS, subresource="status")
        gpus.append(Gpu(index, f"GPU-{index}", namespace=NS, pod=f"trial{index}-beef-head", util=utilization))
    dcgm_exporter_pod(cluster, "ip-10-0-3-0.ec2.internal")
    cluster.create(idle_budget(for_minutes=30))
    with Pages() as exporter:
        exporter.set("/metrics", page(gpus))
        start_operator(
            dcgm_exporter_selector="app=nvidia-dcgm-exporter",
            dcgm_exporter_port=int(exporter.address.rsplit(":", 1)[1]),
            telemetry_interval=0.3,
            telemetry_stale_after=3600,  # fresh across the clock's jumps (a sample is taken at "now")
        )
        cluster.wait_for(lambda: len(idle_since(cluster, "sweep")) == 1, timeout=20)
        clock.advance(timedelta(minutes=29))
        cluster.wait_for(
            lambda: (
                status_of(cluster, "sweep").get("lastEvaluated") == format_time(T0 + timedelta(minutes=29))
            ),
            timeout=20,
        )
        assert pod_names(cluster) == ["trial0-beef-head", "trial1-beef-head"]
        clock.advance(timedelta(minutes=1))
        cluster.wait_for(
            lambda: record(cluster, "anomaly/idleGpu", "sweep").get("result") == "Done", timeout=20
        )
    assert pod_names(cluster) == ["trial1-beef-head"]
    assert status_of(cluster, "sweep")["phase"] != "Enforced"  # an idle kill is not budget exhaustion
    assert status_of(cluster, "sweep")["gpuUtilization"] == 48.5
    assert status_of(cluster, "sweep")["wastedSpend"] == 27.52  # the idle p5's 30 minutes at 55.04/h

    def shown() -> dict[str, str]:
        return cluster.get("v1", "pods", "trial1-beef-head", namespace=NS)["metadata"]["annotations"]

    cluster.wait_for(lambda: shown()["costwarden.dev/gpu-utilization"] == "97.0", timeout=20)  # not "50"
    assert shown()["costwarden.dev/gpu-utilization-at"].startswith("2026-11-26T12:")
    condition = next(
        c for c in status_of(cluster, "sweep")["conditions"] if c["type"] == "TelemetryUnavailable"
    )
    assert condition["status"] == "False"


def test_destructive_actions_are_capped_per_minute(cluster, start_operator):
    seed_skypilot_cluster(cluster, workers=1)
    for name in ("first", "second"):
        body = kill_budget()
        body["metadata"]["name"] = name
        body["spec"]["enforcement"] = {"dryRun": False}
        cluster.create(body)
    start_operator(max_destructive_per_minute=1)

    def results() -> list[str]:
        return sorted(
            record(cluster, "threshold/100", name).get("result", "") for name in ("first", "second")
        )

    cluster.wait_for(lambda: results() == ["Done", "Pending"], timeout=20)
    waiting = next(
        record(cluster, "threshold/100", n)
        for n in ("first", "second")
        if record(cluster, "threshold/100", n)["result"] == "Pending"
    )
    assert "cap on destructive actions" in waiting["message"]
