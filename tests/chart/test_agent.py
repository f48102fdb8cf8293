"""The node agent's DaemonSet and Service (`agent.enabled`): least privilege, a command line the
agent accepts, GPU nodes only, and a label selector that finds the agents and nothing else."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from costwarden.cli import build_parser
from costwarden.telemetry.targets import parse_selector
from tests.chart.helm import NAMESPACE, HelmError, Manifest, find, kinds, needs_helm, template

pytestmark = needs_helm

AGENT_PORT = 9401


@pytest.fixture(scope="module")
def enabled(helm_home: Path) -> list[Manifest]:
    """The defaults with only the agent switched on."""
    return template(values={"agent.enabled": "true"}, home=helm_home)


def daemonset(manifests: list[Manifest]) -> Manifest:
    return find(manifests, "DaemonSet")


def pod(manifests: list[Manifest]) -> dict[str, Any]:
    return dict(daemonset(manifests)["spec"]["template"]["spec"])


def agent_container(manifests: list[Manifest]) -> dict[str, Any]:
    containers = pod(manifests)["containers"]
    assert [c["name"] for c in containers] == ["agent"]
    return dict(containers[0])


def operator_args(manifests: list[Manifest]) -> list[str]:
    return [
        str(a) for a in find(manifests, "Deployment")["spec"]["template"]["spec"]["containers"][0]["args"]
    ]


def agent_selector(manifests: list[Manifest]) -> str:
    (selector,) = [a.split("=", 1)[1] for a in operator_args(manifests) if a.startswith("--agent-selector=")]
    return selector


def test_off_by_default(default_manifests: list[Manifest]) -> None:
    assert "DaemonSet" not in kinds(default_manifests)
    assert [m["metadata"]["name"] for m in default_manifests if m["kind"] == "Service"] == ["cw-costwarden"]
    assert not [a for a in operator_args(default_manifests) if a.startswith("--agent-selector")]


@pytest.mark.parametrize("render", ["enabled", "all_manifests"])
def test_least_privilege(render: str, request: pytest.FixtureRequest) -> None:
    manifests = request.getfixturevalue(render)
    spec = pod(manifests)
    assert not spec.get("hostPID"), "NVML answers host PIDs anyway: the host's /proc is enough"
    assert not spec.get("hostNetwork") and not spec.get("hostIPC")
    assert spec["automountServiceAccountToken"] is False, "the agent never calls the Kubernetes API"
    assert "serviceAccountName" not in spec
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    container = agent_container(manifests)
    ctx = container["securityContext"]
    assert ctx["runAsNonRoot"] is True
    assert ctx["runAsUser"] == 65533, "a uid of its own, not the 65532 of the operator and distroless images"
    assert ctx["readOnlyRootFilesystem"] is True
    assert ctx["allowPrivilegeEscalation"] is False
    assert ctx["privileged"] is False
    assert ctx["capabilities"] == {"drop": ["ALL"]}
    assert ctx["seccompProfile"] == {"type": "RuntimeDefault"}
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env == {"NVIDIA_VISIBLE_DEVICES": "all", "NVIDIA_DRIVER_CAPABILITIES": "utility"}
    resources = container["resources"]
    assert not any("nvidia.com/gpu" in resources.get(kind, {}) for kind in ("requests", "limits")), (
        "the agent must not take a GPU from the workloads"
    )
    assert resources["limits"]["memory"]
    host_paths = {v["name"]: v["hostPath"] for v in spec["volumes"] if "hostPath" in v}
    assert host_paths == {"host-proc": {"path": "/proc", "type": "Directory"}}, "the host's /proc only"
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert set(mounts) == {"/tmp", "/host/proc"}
    assert mounts["/host/proc"] == {"name": "host-proc", "mountPath": "/host/proc", "readOnly": True}
    assert "--proc=/host/proc" in container["args"], "the agent reads the cgroups where they are mounted"


def test_gpu_nodes_only_and_the_runtime(enabled: list[Manifest], all_manifests: list[Manifest]) -> None:
    spec = pod(enabled)
    assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert spec["tolerations"] == [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert "runtimeClassName" not in spec, "the node's default runtime unless one is named"
    assert "affinity" not in spec
    full = pod(all_manifests)
    assert full["runtimeClassName"] == "nvidia"
    assert full["priorityClassName"] == "system-node-critical"
    assert full["securityContext"]["supplementalGroups"] == [44]
    assert full["affinity"]["nodeAffinity"]
    assert full["imagePullSecrets"] == [{"name": "regcred"}]


@pytest.mark.parametrize(("render", "interval"), [("enabled", 5.0), ("all_manifests", 2.5)])
def test_the_agent_accepts_its_command_line(
    render: str, interval: float, request: pytest.FixtureRequest
) -> None:
    manifests = request.getfixturevalue(render)
    container = agent_container(manifests)
    assert container["command"] == ["costwarden", "agent"], "the image's entrypoint is `costwarden run`"
    args, unknown = build_parser(load=["agent"]).parse_known_args(["agent", *container["args"]])
    assert unknown == []
    assert args.port == AGENT_PORT == container["ports"][0]["containerPort"]
    assert container["ports"][0]["name"] == "metrics"
    assert args.interval == interval
    assert args.proc == Path("/host/proc")
    assert args.verbose is (render == "all_manifests")
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/metrics", "port": "metrics"}


@pytest.mark.parametrize("render", ["enabled", "all_manifests"])
def test_the_operator_finds_the_agents_and_nothing_else(render: str, request: pytest.FixtureRequest) -> None:
    manifests = request.getfixturevalue(render)
    selector = parse_selector(agent_selector(manifests))
    agent_pod_labels = daemonset(manifests)["spec"]["template"]["metadata"]["labels"]
    operator_pod_labels = find(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert selector.matches(agent_pod_labels)
    assert not selector.matches(operator_pod_labels)
    assert daemonset(manifests)["metadata"]["namespace"] == NAMESPACE
    # and no selector of the operator's objects takes the agents in
    operator_selectors = [
        find(manifests, "Deployment")["spec"]["selector"]["matchLabels"],
        find(manifests, "Service", operator_service(manifests))["spec"]["selector"],
        find(manifests, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
    ]
    for labels in operator_selectors:
        assert not labels.items() <= agent_pod_labels.items(), labels
    assert not daemonset(manifests)["spec"]["selector"]["matchLabels"].items() <= operator_pod_labels.items()


def operator_service(manifests: list[Manifest]) -> str:
    return str(find(manifests, "Deployment")["metadata"]["name"])


@pytest.mark.parametrize("render", ["enabled", "all_manifests"])
def test_a_headless_service_lists_the_agents(render: str, request: pytest.FixtureRequest) -> None:
    manifests = request.getfixturevalue(render)
    name = daemonset(manifests)["metadata"]["name"]
    assert name == f"{operator_service(manifests)}-agent"
    service = find(manifests, "Service", name)
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["selector"] == daemonset(manifests)["spec"]["selector"]["matchLabels"]
    assert service["spec"]["ports"] == [
        {"name": "http-metrics", "port": AGENT_PORT, "targetPort": "metrics", "protocol": "TCP"}
    ]


@pytest.mark.parametrize(
    ("key", "value", "complaint"),
    [
        ("agent.interval", "0", "/agent/interval"),
        ("agent.runtimeClassName", "Not_A_Name", "/agent/runtimeClassName"),
        ("agent.port", "9500", "'port' not allowed"),  # the operator scrapes 9401
        ("agent.hostNetwork", "true", "'hostNetwork' not allowed"),
    ],
)
def test_schema_refuses_bad_agent_values(key: str, value: str, complaint: str, helm_home: Path) -> None:
    with pytest.raises(HelmError) as caught:
        template(values={"agent.enabled": "true", key: value}, home=helm_home)
    assert complaint in caught.value.stderr


def test_the_telemetry_sources_reach_the_operator(helm_home: Path) -> None:
    values = {
        "telemetry.prometheusUrl": "http://prometheus-operated.monitoring:9090",
        "telemetry.dcgmExporterSelector": "app=nvidia-dcgm-exporter",
        "telemetry.staleAfter": "60",
    }
    args = operator_args(template(values=values, home=helm_home))
    assert "--prometheus-url=http://prometheus-operated.monitoring:9090" in args
    assert "--dcgm-exporter-selector=app=nvidia-dcgm-exporter" in args
    assert "--telemetry-interval=15" in args and "--telemetry-stale-after=60" in args
    with pytest.raises(HelmError, match="prometheusUrl"):
        template(values={"telemetry.prometheusUrl": "prometheus:9090"}, home=helm_home)  # no scheme
